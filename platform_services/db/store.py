"""asyncpg access to the platform's tables (created by the Alembic migrations).

The pool is created lazily and re-created after a failure, so the API starts
(and reports ``unhealthy``) while PostgreSQL is down, and recovers by itself
when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from platform_services.providers.clients import Article, Quote

log = logging.getLogger(__name__)


RETRY_AFTER_FAILURE_S = 2.0
"""After a failed connect, calls fail fast for this long instead of each waiting."""


class StoreUnavailable(Exception):
    """PostgreSQL could not be reached (recently)."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool


class Store:
    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 5, timeout: float = 3.0):
        self._dsn = dsn
        self._min = min_size
        self._max = max_size
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._failed_at = 0.0
        self.application_name = "investment-api"

    async def pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE_S:
            raise StoreUnavailable("database unreachable (retrying shortly)")
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await asyncio.wait_for(
                        asyncpg.create_pool(
                            self._dsn,
                            min_size=self._min,
                            max_size=self._max,
                            timeout=self.timeout,
                            command_timeout=10,
                            max_inactive_connection_lifetime=300,
                            server_settings={"application_name": self.application_name},
                        ),
                        timeout=self.timeout + 1,
                    )
                except (
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    self._failed_at = time.monotonic()
                    raise StoreUnavailable(f"database unreachable ({type(exc).__name__})") from exc
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

    async def fetch(self, query: str, *args: Any, timeout_s: float | None = None) -> list[Any]:
        pool = await self.pool()
        return list(await pool.fetch(query, *args, timeout=timeout_s))

    async def fetchval(self, query: str, *args: Any, timeout_s: float | None = None) -> Any:
        pool = await self.pool()
        return await pool.fetchval(query, *args, timeout=timeout_s)

    async def execute(self, query: str, *args: Any, timeout_s: float | None = None) -> str:
        pool = await self.pool()
        return await pool.execute(query, *args, timeout=timeout_s)

    # --- health ---------------------------------------------------------------------

    async def check(self) -> dict[str, Any]:
        """One round trip plus what an operator wants to see next to it."""
        pool = await asyncio.wait_for(self.pool(), timeout=self.timeout)
        async with pool.acquire(timeout=self.timeout) as conn:
            row = await conn.fetchrow(
                """
                SELECT 1 AS ok,
                       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS tsdb,
                       to_regclass('public.alembic_version') IS NOT NULL AS migrated,
                       current_setting('server_version') AS server_version
                """,
                timeout=self.timeout,
            )
            version = None
            if row["migrated"]:
                version = await conn.fetchval(
                    "SELECT version_num FROM alembic_version LIMIT 1", timeout=self.timeout
                )
        return {
            "schema_version": version,
            "timescaledb": row["tsdb"],
            "server_version": row["server_version"],
            "pool_size": pool.get_size(),
            "pool_idle": pool.get_idle_size(),
        }

    async def table_exists(self, name: str) -> bool:
        return bool(await self.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{name}"))

    # --- prices ---------------------------------------------------------------------

    async def insert_quotes(self, quotes: Sequence[Quote], fetched_at: datetime) -> int:
        if not quotes:
            return 0
        rows = [
            (
                fetched_at,
                q.symbol,
                q.price,
                q.open,
                q.high,
                q.low,
                q.previous_close,
                q.change,
                q.change_percent,
                q.volume,
                q.provider,
                q.as_of,
            )
            for q in quotes
        ]
        pool = await self.pool()
        await pool.executemany(
            """
            INSERT INTO prices (time, symbol, price, open, high, low, previous_close,
                                change, change_percent, volume, provider, quote_time)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT DO NOTHING
            """,
            rows,
        )
        return len(rows)

    async def latest_quotes(self, symbols: Iterable[str], max_age_days: int = 7) -> list[Quote]:
        rows = await self.fetch(
            """
            SELECT DISTINCT ON (symbol) symbol, price, open, high, low, previous_close, change,
                   change_percent, volume, provider, quote_time, time
            FROM prices
            WHERE symbol = ANY($1::text[]) AND time > now() - make_interval(days => $2)
            ORDER BY symbol, time DESC
            """,
            list(symbols),
            max_age_days,
        )
        return [
            Quote(
                symbol=r["symbol"],
                price=r["price"],
                provider=r["provider"],
                as_of=r["quote_time"] or r["time"],
                open=r["open"],
                high=r["high"],
                low=r["low"],
                previous_close=r["previous_close"],
                change=r["change"],
                change_percent=r["change_percent"],
                volume=r["volume"],
            )
            for r in rows
        ]

    async def insert_articles(self, symbol: str, articles: Sequence[Article]) -> int:
        if not articles:
            return 0
        pool = await self.pool()
        await pool.executemany(
            """
            INSERT INTO news_articles (symbol, title, url, source, description, published_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (symbol, url) DO NOTHING
            """,
            [(symbol, a.title, a.url, a.source, a.description, a.published_at) for a in articles],
        )
        return len(articles)

    # --- provider call log (cost model) ------------------------------------------------

    async def log_call(
        self,
        provider: str,
        operation: str,
        symbol: str | None,
        outcome: str,
        latency_ms: float | None,
        cost_usd: float,
    ) -> None:
        await self.execute(
            """
            INSERT INTO api_calls (provider, operation, symbol, outcome, latency_ms, cost_usd)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            provider,
            operation,
            symbol,
            outcome,
            latency_ms,
            cost_usd,
        )

    async def call_costs_by_day(self, since: date) -> dict[date, dict[str, tuple[int, float]]]:
        """``{day: {provider: (calls, usd)}}`` from ``since`` (UTC days) to today."""
        rows = await self.fetch(
            """
            SELECT (time AT TIME ZONE 'UTC')::date AS day, provider,
                   count(*) AS calls, COALESCE(sum(cost_usd), 0)::float8 AS usd
            FROM api_calls
            WHERE time >= ($1::date)::timestamp AT TIME ZONE 'UTC'
            GROUP BY 1, 2
            """,
            since,
        )
        out: dict[date, dict[str, tuple[int, float]]] = {}
        for r in rows:
            out.setdefault(r["day"], {})[r["provider"]] = (int(r["calls"]), float(r["usd"]))
        return out

    async def record_cost_day(self, day: date, cost_usd: float) -> None:
        """Today's cost so far (issue 16): the first write of a day sets when
        its record began, every later one moves its cost and last time."""
        await self.execute(
            """
            INSERT INTO cost_days (day, cost_usd) VALUES ($1, $2)
            ON CONFLICT (day) DO UPDATE
               SET cost_usd = EXCLUDED.cost_usd, last_recorded_at = now()
            """,
            day,
            cost_usd,
        )

    async def cost_days(self, since: date) -> list[tuple[date, float, datetime, datetime]]:
        """The recorded days from ``since``: (day, cost, first and last recorded at)."""
        rows = await self.fetch(
            "SELECT day, cost_usd, first_recorded_at, last_recorded_at FROM cost_days"
            " WHERE day >= $1 ORDER BY day",
            since,
        )
        return [
            (r["day"], float(r["cost_usd"]), r["first_recorded_at"], r["last_recorded_at"])
            for r in rows
        ]

    async def database_size(self) -> int:
        return int(await self.fetchval("SELECT pg_database_size(current_database())"))

    # --- users ------------------------------------------------------------------------------

    async def get_user(self, username: str) -> User | None:
        row = await (await self.pool()).fetchrow(
            "SELECT id, username, password_hash, role, disabled FROM users WHERE username = $1",
            username,
        )
        if row is None:
            return None
        return User(
            id=row["id"],
            username=row["username"],
            password_hash=row["password_hash"],
            role=row["role"],
            disabled=row["disabled"],
        )

    async def touch_login(self, user_id: int) -> None:
        await self.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)

    async def upsert_bootstrap_user(self, username: str, password_hash: str, role: str) -> bool:
        """Create the user if missing; returns True when a row was inserted."""
        status = await self.execute(
            """
            INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
            ON CONFLICT (username) DO NOTHING
            """,
            username,
            password_hash,
            role,
        )
        return status.endswith(" 1")

    async def set_password(self, user_id: int, password_hash: str, role: str) -> None:
        await self.execute(
            "UPDATE users SET password_hash = $2, role = $3, updated_at = now() WHERE id = $1",
            user_id,
            password_hash,
            role,
        )
