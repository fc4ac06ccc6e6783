"""A slow PostgreSQL: long ``pg_sleep`` statements and a table held under an
ACCESS EXCLUSIVE lock, while the console watches and traffic flows.

The operator must see the long sessions and the lock wait in the database
panel; nothing in the console freezes (its own queries are bounded); the API
answers with a status (never nginx's 504 after 30 s of hanging); when the
load goes, the panel clears by itself and no acknowledged write is lost.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
import redis

from tests.conftest import Stack
from tests.reliability._harness import AckedWriter, LoadLoop, MonitorWatch, console_settings, figure

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

SLEEPERS = 3
SLEEP_S = 8
LOCK_S = 12


async def _sleeper(dsn: str, i: int) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f"SELECT pg_sleep({SLEEP_S}) /* reliability sleeper {i} */")
    finally:
        await conn.close()


async def _locker(dsn: str, locked: asyncio.Event, release: asyncio.Event) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE prices IN ACCESS EXCLUSIVE MODE")
            await conn.execute("LOCK TABLE reliability_acks IN ACCESS EXCLUSIVE MODE")
            locked.set()
            try:
                await asyncio.wait_for(release.wait(), timeout=LOCK_S)
            except TimeoutError:
                pass
    finally:
        await conn.close()


async def test_slow_postgres_is_shown_and_nothing_freezes(stack: Stack) -> None:
    symbol = (stack.env.get("WATCHLIST") or "AAPL,MSFT,GOOGL,AMZN,NVDA").split(",")[-1].strip()
    with figure(
        f"slow PostgreSQL ({SLEEPERS}x pg_sleep({SLEEP_S}), ACCESS EXCLUSIVE lock {LOCK_S} s)"
    ) as fig:
        async with MonitorWatch(console_settings(stack)) as watch:
            await watch.wait(
                lambda: watch.latest("database") is not None,
                within=30,
                what="database panel filled",
            )
            with LoadLoop(stack.base_url) as load, AckedWriter(stack.pg_dsn) as writer:
                await watch.wait(lambda: writer.acked_count > 10, within=30, what="writes flowing")
                t0 = time.monotonic()
                locked, release = asyncio.Event(), asyncio.Event()
                tasks = [asyncio.create_task(_sleeper(stack.pg_dsn, i)) for i in range(SLEEPERS)]
                locker = asyncio.create_task(_locker(stack.pg_dsn, locked, release))
                await asyncio.wait_for(locked.wait(), timeout=15)
                acked_at_lock = writer.acked_count

                def shows_load(s) -> bool:
                    sleeping = [x for x in s.sessions if "reliability sleeper" in x.query]
                    waiting = [x for x in s.sessions if (x.wait_event or "").startswith("Lock")]
                    return len(sleeping) >= SLEEPERS and len(waiting) >= 1

                rank, seen_s = await watch.seen_in_refreshes(
                    "database",
                    shows_load,
                    since=t0,
                    refreshes=3,
                    within=SLEEP_S,
                    what="database panel shows the sleepers and a lock wait",
                )
                assert rank <= 3, f"slow sessions shown only at database refresh #{rank}"
                snap = next(p for p in watch.payloads("database", since=t0) if shows_load(p))
                waiting = [x for x in snap.sessions if (x.wait_event or "").startswith("Lock")]
                # the console itself is not stuck behind the lock
                pg_state = watch.source_state("postgres")
                assert pg_state is not None and pg_state.ok, (
                    f"console's postgres source: {pg_state}"
                )
                n = (
                    len(watch.payloads("containers", since=t0)),
                    len(watch.payloads("health", since=t0)),
                )
                await watch.wait(
                    lambda: (
                        len(watch.payloads("containers", since=t0)) > n[0] + 1
                        and len(watch.payloads("health", since=t0)) > n[1] + 1
                    ),
                    within=15,
                    what="containers and health keep refreshing",
                )
                # the API answers with a status, not a hang
                async with httpx.AsyncClient(base_url=stack.base_url, timeout=40) as client:
                    db = await client.get("/api/health/database")
                    assert db.status_code in (200, 503), db.status_code
                    r = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
                    r.delete(f"cache:price:{symbol}")  # force the write path into the locked table
                    price = await client.get("/api/stocks/prices", params={"symbols": symbol})
                    assert price.status_code != 504, (
                        "the API hung on the locked table until nginx gave up"
                    )
                    assert price.status_code < 500 or price.status_code == 503, (
                        price.status_code,
                        price.text[:200],
                    )
                release.set()
                await asyncio.wait_for(locker, timeout=15)
                t_release = time.monotonic()
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=SLEEP_S + 10)
                # the writes resume and the panel clears by itself
                await watch.wait(
                    lambda: writer.acked_count > acked_at_lock + 10,
                    within=30,
                    what="writes resume",
                )
                recover_s = await watch.wait(
                    lambda: (
                        (s := watch.latest("database")) is not None
                        and s.taken_at.timestamp() > 0
                        and not any("reliability sleeper" in x.query for x in s.sessions)
                        and watch.payloads("database", since=t_release)
                    ),
                    within=30,
                    what="database panel clears",
                )
                await watch.wait(
                    lambda: any(
                        "pg_sleep" in q.query for q in watch.latest("database").slow_queries
                    ),
                    within=30,
                    what="pg_sleep in the slow-query list",
                )
                top = next(
                    q for q in watch.latest("database").slow_queries if "pg_sleep" in q.query
                )
                assert top.mean_ms >= SLEEP_S * 1000 * 0.9
            result = load.result()
        acked, found = writer.verify()
        assert not result.timeouts, f"{len(result.timeouts)} requests hung"
        assert found == acked, f"{acked - found} acknowledged rows lost"
        fig.operator_saw = (
            f"{SLEEPERS} sleeping sessions + {len(waiting)} lock waiter(s) at database refresh #{rank} "
            f"({seen_s:.1f} s); prices request -> {price.status_code}; pg_sleep in slow queries "
            f"(mean {top.mean_ms / 1000:.1f} s)"
        )
        fig.recover_s = round(recover_s, 1)
        fig.load(result)
        fig.rows_acked = acked
        fig.rows_lost = acked - found
        fig.extra = {"outcomes": result.outcomes(), "writer_failures": dict(writer.failures)}
