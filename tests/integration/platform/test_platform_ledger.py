"""The quota ledger against the stack's real Redis (unix socket), under concurrency."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from platform_services.providers import keys
from platform_services.providers.ledger import QuotaLedger
from tests.conftest import Stack

pytestmark = pytest.mark.stack


def own_window(window_seconds: int) -> datetime:
    """A moment inside a window of our own, in 2001: no live call can share it, and
    every attempt of a test uses the same moment, so no boundary can split it."""
    base = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(0, 3000))
    start = keys.window_start(window_seconds, base + timedelta(seconds=random.randrange(86400)))
    return start + timedelta(seconds=window_seconds / 2)


async def _ledger(stack: Stack) -> tuple[Redis, QuotaLedger]:
    # One connection per attempt: all 200 really are in flight at once.
    redis = Redis.from_url(stack.redis_url, decode_responses=True, max_connections=256)
    return redis, QuotaLedger(redis, keys.provider_table())


async def test_200_parallel_attempts_on_polygon_admit_exactly_5(stack: Stack) -> None:
    redis, ledger = await _ledger(stack)
    moment = own_window(60)
    spec = ledger.providers["polygon"]
    key = keys.quota_key_for(spec, moment)
    stats_key = keys.stats_calls_key("polygon", keys.utc_day(moment))
    try:
        await redis.delete(key, stats_key)
        results = await asyncio.gather(*(ledger.acquire("polygon", now=moment) for _ in range(200)))
        admitted = [r for r in results if r.admitted]
        assert len(admitted) == 5
        assert sorted(r.used for r in admitted) == [1, 2, 3, 4, 5]
        assert Counter(r.reason for r in results if not r.admitted) == {"exhausted": 195}
        assert int(await redis.get(key)) == 5
        assert int(await redis.get(stats_key)) == 5  # only admitted calls are counted
        ttl = await redis.ttl(key)
        assert 0 < ttl <= 30 + keys.QUOTA_GRACE_S + 1
        assert all(r.resets_at == keys.resets_at(60, moment) for r in results)
    finally:
        await redis.delete(key, stats_key)
        await redis.aclose()


async def test_200_parallel_attempts_from_separate_clients(stack: Stack) -> None:
    """Several connections pools (as several API processes and the worker would be)."""
    moment = own_window(60)
    clients = [await _ledger(stack) for _ in range(4)]
    spec = clients[0][1].providers["finnhub"]
    key = keys.quota_key_for(spec, moment)
    stats_key = keys.stats_calls_key("finnhub", keys.utc_day(moment))
    try:
        results = await asyncio.gather(
            *(clients[i % 4][1].acquire("finnhub", now=moment) for i in range(200))
        )
        assert sum(r.admitted for r in results) == 60
        assert int(await clients[0][0].get(key)) == 60
    finally:
        await clients[0][0].delete(key, stats_key)
        for redis, _ in clients:
            await redis.aclose()


async def test_a_lower_caller_limit_keeps_headroom(stack: Stack) -> None:
    redis, ledger = await _ledger(stack)
    moment = own_window(60)
    key = keys.quota_key_for(ledger.providers["polygon"], moment)
    stats_key = keys.stats_calls_key("polygon", keys.utc_day(moment))
    try:
        worker = await asyncio.gather(
            *(ledger.acquire("polygon", now=moment, limit=4) for _ in range(10))
        )
        assert sum(r.admitted for r in worker) == 4
        api = await asyncio.gather(*(ledger.acquire("polygon", now=moment) for _ in range(10)))
        assert sum(r.admitted for r in api) == 1
        # A caller can lower the limit, never raise it.
        more = await ledger.acquire("polygon", now=moment, limit=1000)
        assert not more.admitted
    finally:
        await redis.delete(key, stats_key)
        await redis.aclose()


async def test_windows_are_independent(stack: Stack) -> None:
    redis, ledger = await _ledger(stack)
    moment = own_window(60)
    nxt = moment + timedelta(seconds=60)
    spec = ledger.providers["polygon"]
    cleanup = [keys.quota_key_for(spec, t) for t in (moment, nxt)]
    cleanup += [keys.stats_calls_key("polygon", keys.utc_day(t)) for t in (moment, nxt)]
    try:
        first = await asyncio.gather(*(ledger.acquire("polygon", now=moment) for _ in range(7)))
        second = await asyncio.gather(*(ledger.acquire("polygon", now=nxt) for _ in range(7)))
        assert sum(r.admitted for r in first) == 5
        assert sum(r.admitted for r in second) == 5
    finally:
        await redis.delete(*cleanup)
        await redis.aclose()


async def test_emergency_key_denies_everything_without_counting(stack: Stack) -> None:
    redis, ledger = await _ledger(stack)
    moment = own_window(86400)
    spec = ledger.providers["alpha_vantage"]
    key = keys.quota_key_for(spec, moment)
    had_emergency = await redis.exists(keys.EMERGENCY_KEY)
    try:
        await redis.set(keys.EMERGENCY_KEY, "1", ex=30)
        results = await asyncio.gather(*(ledger.acquire(n, now=moment) for n in ledger.providers))
        assert [r.reason for r in results] == ["emergency"] * len(ledger.providers)
        assert not any(r.admitted for r in results)
        assert await redis.get(key) is None
        active, ttl = await ledger.emergency()
        assert active and ttl is not None and 0 < ttl <= 30
    finally:
        if not had_emergency:
            await redis.delete(keys.EMERGENCY_KEY)
        await redis.delete(key)
        await redis.aclose()
    assert (await _lift(stack)) is True


async def _lift(stack: Stack) -> bool:
    redis, ledger = await _ledger(stack)
    try:
        moment = own_window(86400)
        key = keys.quota_key_for(ledger.providers["alpha_vantage"], moment)
        admitted = (await ledger.acquire("alpha_vantage", now=moment)).admitted
        await redis.delete(key, keys.stats_calls_key("alpha_vantage", keys.utc_day(moment)))
        return admitted
    finally:
        await redis.aclose()
