"""Alembic environment: DATABASE_URL from the environment (its password from
the Docker secret ``postgres_password`` on Swarm: platform_services.settings),
psycopg2 driver.

Migrations are expand-only (add tables, columns, indexes; never drop or
rename in the same release) so the previous colour keeps working against the
migrated schema during a blue-green switch and after a rollback.

A transaction-scoped advisory lock serialises concurrent runs (two colours, an
operator and the deploy tooling at once): the second run waits, then finds
nothing left to do.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

from platform_services.settings import get_settings

MIGRATION_LOCK_ID = 7_324_001
"""pg_advisory_xact_lock key of the migration runs (arbitrary, fixed)."""


if context.config.config_file_name is not None:
    # The [loggers] of alembic.ini: "Running upgrade 0001 -> 0002" on stderr.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    if not os.environ.get("DATABASE_URL", "").strip():
        raise SystemExit("DATABASE_URL is not set: cannot run migrations")
    url = get_settings().database_url.strip()
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
