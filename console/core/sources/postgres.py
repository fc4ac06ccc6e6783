"""PostgreSQL: slow statements, live sessions, connections, size, dead tuples.

One asyncpg connection, opened lazily and reused; on any connection-level
error it is dropped and the next poll reconnects (after the monitor's
backoff). Every query is bounded twice: ``statement_timeout`` on the server
and a client-side timeout, so a wedged server cannot hang the poll.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.models import ActiveSession, DatabaseSnapshot, SlowQuery, TableHealth
from console.core.sources.base import Clock, Source, utcnow

__all__ = ["PostgresSource", "normalise_query"]

Q_SLOW = """
SELECT query, calls, mean_exec_time, total_exec_time, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
  AND query NOT ILIKE 'SET %' AND query NOT ILIKE 'SHOW %'
ORDER BY mean_exec_time DESC
LIMIT $1
"""

Q_SESSIONS = """
SELECT pid, usename, application_name, state,
       EXTRACT(EPOCH FROM (clock_timestamp() - COALESCE(query_start, backend_start)))::float8 AS duration_s,
       CASE WHEN wait_event IS NULL THEN NULL ELSE wait_event_type || ':' || wait_event END AS wait,
       COALESCE(query, '') AS query
FROM pg_stat_activity
WHERE state IS NOT NULL AND state <> 'idle'
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
ORDER BY query_start ASC NULLS LAST
LIMIT 50
"""

Q_OVERVIEW = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
       current_setting('max_connections')::int AS max_connections,
       pg_database_size(current_database())::int8 AS db_size,
       to_regclass('public.schema_migrations') IS NOT NULL AS has_schema_migrations,
       to_regclass('public.alembic_version') IS NOT NULL AS has_alembic_version,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS has_pgss
"""

Q_TABLES = """
SELECT schemaname || '.' || relname AS tbl, n_live_tup, n_dead_tup, last_vacuum, last_autovacuum
FROM pg_stat_user_tables
ORDER BY n_dead_tup DESC, n_live_tup DESC
LIMIT $1
"""


def normalise_query(text: str, limit: int = 500) -> str:
    """One line, collapsed whitespace, bounded length (for the panel)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class PostgresSource(Source):
    name = "postgres"
    kind = "database"

    def __init__(self, settings: Settings, *, clock: Clock = utcnow) -> None:
        super().__init__(settings, clock=clock)
        self._conn: Any = None
        self._lock = asyncio.Lock()

    @property
    def interval(self) -> float:
        return self.settings.refresh.database

    @property
    def query_timeout(self) -> float:
        return self.settings.request_timeout

    async def _connect(self) -> Any:
        import asyncpg

        password = (
            self.settings.pg_password.get_secret_value() if self.settings.pg_password else None
        )
        timeout_ms = int(self.query_timeout * 1000)
        try:
            return await asyncio.wait_for(
                asyncpg.connect(
                    dsn=self.settings.pg_dsn.get_secret_value(),
                    password=password or None,
                    timeout=self.settings.request_timeout,
                    command_timeout=self.query_timeout,
                    statement_cache_size=0,
                    server_settings={
                        "application_name": "stackdeck-console",
                        "statement_timeout": str(timeout_ms),
                        "lock_timeout": "1000",
                        "idle_in_transaction_session_timeout": "10000",
                    },
                ),
                timeout=self.settings.request_timeout + 1.0,
            )
        except TimeoutError:
            raise SourceError(
                "postgres", f"connect timed out after {self.settings.request_timeout:g} s"
            ) from None
        except Exception as exc:
            raise SourceError("postgres", f"cannot connect: {redact(exc)}") from None

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return list(
            await asyncio.wait_for(self._conn.fetch(query, *args), timeout=self.query_timeout + 0.5)
        )

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(timeout=1.0), timeout=1.5)
            except Exception:
                conn.terminate()
            except asyncio.CancelledError:
                conn.terminate()  # the console quits: close the socket, no goodbye
                raise

    async def poll(self) -> DatabaseSnapshot:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            try:
                return await self._collect()
            except SourceError:
                raise
            except Exception as exc:
                # Connection-level trouble (server restarted, socket gone):
                # drop the connection so the next poll reconnects.
                await self._drop()
                what = "query timed out" if isinstance(exc, TimeoutError) else redact(exc)
                raise SourceError("postgres", str(what)) from None

    async def _collect(self) -> DatabaseSnapshot:
        import asyncpg

        warnings: list[str] = []
        overview = (await self._fetch(Q_OVERVIEW))[0]
        slow: list[SlowQuery] = []
        if overview["has_pgss"]:
            try:
                for row in await self._fetch(Q_SLOW, self.settings.slow_queries):
                    slow.append(
                        SlowQuery(
                            query=normalise_query(row["query"] or ""),
                            calls=int(row["calls"]),
                            mean_ms=round(float(row["mean_exec_time"]), 3),
                            total_ms=round(float(row["total_exec_time"]), 3),
                            rows=int(row["rows"]),
                        )
                    )
            except asyncpg.PostgresError as exc:
                warnings.append(f"pg_stat_statements: {redact(exc)}")
        else:
            warnings.append("pg_stat_statements is not installed in this database")
        sessions = [
            ActiveSession(
                pid=int(row["pid"]),
                user=row["usename"],
                application=row["application_name"] or None,
                state=row["state"],
                duration_s=round(float(row["duration_s"]), 3)
                if row["duration_s"] is not None
                else None,
                wait_event=row["wait"],
                query=normalise_query(row["query"]),
            )
            for row in await self._fetch(Q_SESSIONS)
        ]
        sessions.sort(key=lambda s: s.duration_s or 0.0, reverse=True)
        tables = [
            TableHealth(
                table=row["tbl"],
                live_tuples=int(row["n_live_tup"] or 0),
                dead_tuples=int(row["n_dead_tup"] or 0),
                last_vacuum=_aware(row["last_vacuum"]),
                last_autovacuum=_aware(row["last_autovacuum"]),
            )
            for row in await self._fetch(Q_TABLES, 10)
        ]
        schema_version = await self._schema_version(overview, warnings)
        return DatabaseSnapshot(
            taken_at=self.clock(),
            slow_queries=slow,
            sessions=sessions,
            connections=int(overview["connections"]),
            max_connections=int(overview["max_connections"]),
            db_size_bytes=int(overview["db_size"]),
            tables=tables,
            schema_version=schema_version,
            warnings=warnings,
        )

    async def _schema_version(self, overview: Any, warnings: list[str]) -> str | None:
        import asyncpg

        queries = []
        if overview["has_schema_migrations"]:
            queries.append(
                "SELECT version::text AS v FROM schema_migrations ORDER BY version DESC LIMIT 1"
            )
        if overview["has_alembic_version"]:
            queries.append("SELECT version_num::text AS v FROM alembic_version LIMIT 1")
        for query in queries:
            try:
                rows = await self._fetch(query)
            except asyncpg.PostgresError as exc:
                warnings.append(f"schema version: {redact(exc)}")
                continue
            if rows:
                return str(rows[0]["v"])
        return None

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is not None else value.astimezone()
