"""Initial schema: users, prices (hypertable), api_calls, schema_migrations.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    op.execute(
        """
        CREATE TABLE IF NOT EXISTS users (
            id              bigserial PRIMARY KEY,
            username        text NOT NULL UNIQUE
                            CHECK (char_length(username) BETWEEN 1 AND 64),
            password_hash   text NOT NULL,
            role            text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
            disabled        boolean NOT NULL DEFAULT false,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz,
            last_login_at   timestamptz
        )
        """
    )

    # One row per observation: `time` is when the platform fetched the quote,
    # `quote_time` the provider's own timestamp of it.
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS prices (
            time            timestamptz NOT NULL,
            symbol          text NOT NULL,
            price           double precision NOT NULL CHECK (price > 0),
            open            double precision,
            high            double precision,
            low             double precision,
            previous_close  double precision,
            change          double precision,
            change_percent  double precision,
            volume          bigint,
            provider        text NOT NULL,
            quote_time      timestamptz
        )
        """
    )
    op.execute(
        "SELECT create_hypertable('prices', 'time', "
        "chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE)"
    )
    op.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS prices_symbol_time_key ON prices (symbol, time DESC)"
    )

    # Every outbound provider call, for the cost model and post-mortems.
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS api_calls (
            id          bigserial PRIMARY KEY,
            time        timestamptz NOT NULL DEFAULT now(),
            provider    text NOT NULL,
            operation   text NOT NULL,
            symbol      text,
            outcome     text NOT NULL,
            latency_ms  real,
            cost_usd    numeric(12, 6) NOT NULL DEFAULT 0
        )
        """
    )
    op.execute("CREATE INDEX IF NOT EXISTS api_calls_time_idx ON api_calls (time)")

    # The runbook asks `SELECT version FROM schema_migrations ORDER BY version DESC
    # LIMIT 1`: a view over Alembic's own table answers with the current revision.
    op.execute(
        "CREATE OR REPLACE VIEW schema_migrations AS "
        "SELECT version_num AS version FROM alembic_version"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS schema_migrations")
    op.execute("DROP TABLE IF EXISTS api_calls")
    op.execute("DROP TABLE IF EXISTS prices")
    op.execute("DROP TABLE IF EXISTS users")
