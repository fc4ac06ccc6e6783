"""PostgreSQL and Redis for the operations: the unix sockets in ``$RUN_DIR``
(asyncpg, redis-py asyncio), and ``docker exec`` of psql/pg_dump/pg_restore
inside the db container (peer authentication, no password on the command line)."""

from __future__ import annotations

import re
from typing import Any

from console.core.ops.context import OpContext
from console.core.ops.errors import OpFailed
from console.core.ops.proc import Result, docker_exec

__all__ = [
    "connect_pg",
    "connect_redis",
    "psql",
    "quote_ident",
    "schema_revision",
]


def quote_ident(name: str) -> str:
    """SQL identifier quoting (``"my""table"``)."""
    return '"' + name.replace('"', '""') + '"'


async def connect_pg(ctx: OpContext, database: str | None = None, timeout_s: float = 10.0) -> Any:
    """An asyncpg connection over the bind-mounted socket (peer auth as root,
    the password as a fallback)."""
    import asyncpg

    sock = ctx.pg_socket_dir
    if not (sock / ".s.PGSQL.5432").exists():
        raise OpFailed(
            f"PostgreSQL socket {sock}/.s.PGSQL.5432 is missing: is {ctx.container('db')} running?",
            step="database",
        )
    try:
        return await asyncpg.connect(
            host=str(sock),
            user=ctx.db_user,
            database=database or ctx.db_name,
            password=ctx.env.get("POSTGRES_PASSWORD") or None,
            timeout=timeout_s,
            server_settings={"application_name": "stackdeck-ops"},
        )
    except (OSError, TimeoutError) as exc:
        raise OpFailed(
            ctx.redact(f"cannot connect to PostgreSQL on {sock}: {exc}"), step="database"
        ) from None
    except Exception as exc:  # asyncpg.PostgresError and friends
        raise OpFailed(
            ctx.redact(f"PostgreSQL refused the connection: {exc}"), step="database"
        ) from None


def connect_redis(ctx: OpContext, decode: bool = True) -> Any:
    """A redis-py asyncio client over the socket, with the stack's password."""
    import redis.asyncio as aioredis

    if not ctx.redis_socket.exists():
        raise OpFailed(
            f"Redis socket {ctx.redis_socket} is missing: is {ctx.container('redis')} running?",
            step="redis",
        )
    return aioredis.Redis(
        unix_socket_path=str(ctx.redis_socket),
        password=ctx.env.get("REDIS_PASSWORD") or None,
        socket_timeout=10,
        decode_responses=decode,
    )


async def psql(
    ctx: OpContext,
    *sql: str,
    database: str | None = None,
    timeout_s: float = 120,
    check: bool = True,
) -> Result:
    """Run statements with psql inside the db container, one ``-c`` each (so
    statements that cannot run in a transaction block, like CREATE DATABASE,
    work), tuples only, unaligned."""
    args = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-A",
        "-t",
        "-h",
        "/var/run/postgresql",
        "-d",
        database or ctx.db_name,
    ]
    for statement in sql:
        args += ["-c", statement]
    return await docker_exec(
        ctx,
        ctx.container("db"),
        *args,
        user="postgres",
        timeout_s=timeout_s,
        check=check,
        what="psql",
    )


_REV = re.compile(r"^[0-9A-Za-z_]+$")


async def schema_revision(ctx: OpContext, database: str | None = None) -> str | None:
    """The Alembic revision the database is at (``alembic_version``), None when unknown."""
    r = await psql(
        ctx,
        "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version",
        database=database,
        check=False,
        timeout_s=30,
    )
    if not r.ok:
        return None
    value = r.stdout.strip()
    return value or None
