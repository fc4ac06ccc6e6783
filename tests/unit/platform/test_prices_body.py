"""The cached prices path (issue 15): the body assembled from each entry's
kept rendering is JSONResponse's body byte for byte, and an entry is kept per
raw cache value, so a re-cached quote is never served from the old one."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from platform_services.api.routes import prices_body
from platform_services.market import CACHE_ENTRY_MEMO_MAX, MarketService, PriceEntry
from platform_services.providers import keys
from platform_services.providers.clients import Quote
from platform_services.settings import Settings

AS_OF = datetime(2026, 12, 7, 22, 35, tzinfo=UTC)


def quote(symbol: str, price: float, **extra: Any) -> Quote:
    return Quote(symbol=symbol, price=price, provider="finnhub", as_of=AS_OF, **extra)


def test_body_is_jsonresponse_bytes() -> None:
    entries = [
        PriceEntry(quote("AAPL", 170.6239, open=178.02, volume=None), "cache"),
        PriceEntry(quote("BRK.B", 1e-7, change_percent=-3.988, volume=12), "provider"),
        PriceEntry(quote("ÉX", 12.0), "database", stale=True),
    ]
    stamp = "2026-12-07T22:36:00.123456+00:00"
    expected = JSONResponse(
        {
            "prices": [e.to_json() for e in entries],
            "count": 3,
            "sources": {"cache": 1, "provider": 1, "database": 1},
            "stored": 2,
            "timestamp": stamp,
        }
    ).body
    assert prices_body(entries, 2, stamp) == expected


def test_single_entry_body() -> None:
    entries = [PriceEntry(quote("MSFT", 400.5), "cache")]
    body = prices_body(entries, 0, "t")
    assert json.loads(body)["prices"] == [entries[0].to_json()]
    expected = {
        "prices": [entries[0].to_json()],
        "count": 1,
        "sources": {"cache": 1},
        "stored": 0,
        "timestamp": "t",
    }
    assert body == JSONResponse(expected).body


class _Pipe:
    def __init__(self, totals: dict[str, int]) -> None:
        self.totals = totals
        self.queued: list[tuple[str, int]] = []

    def incrby(self, key: str, n: int) -> None:
        self.queued.append((key, n))

    def expire(self, *_: Any) -> None: ...

    async def execute(self) -> list[Any]:
        for key, n in self.queued:
            self.totals[key] = self.totals.get(key, 0) + n
        return []


class _Redis:
    """Only what the cached path calls: MGET and the statistics pipeline."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.totals: dict[str, int] = {}
        self.round_trips = 0

    async def mget(self, names: list[str]) -> list[str | None]:
        self.round_trips += 1
        return [self.values.get(n) for n in names]

    def pipeline(self, transaction: bool = False) -> _Pipe:
        self.round_trips += 1
        return _Pipe(self.totals)


def _cached(q: Quote, cached_at: str) -> str:
    return json.dumps({**q.to_json(), "cached_at": cached_at})


def test_entry_kept_per_cache_value_and_replaced_when_the_value_changes() -> None:
    redis = _Redis()
    market = MarketService(Settings(), redis, None, None, {})  # type: ignore[arg-type]

    async def price() -> float:
        result = await market.lookup(["AAPL"])
        return result.entries["AAPL"].quote.price

    redis.values["cache:price:AAPL"] = _cached(quote("AAPL", 100.0), "a")
    first = asyncio.run(market.lookup(["AAPL"])).entries["AAPL"]
    again = asyncio.run(market.lookup(["AAPL"])).entries["AAPL"]
    assert again is first  # decoded and serialised once
    redis.values["cache:price:AAPL"] = _cached(quote("AAPL", 101.5), "b")
    assert asyncio.run(price()) == 101.5
    entry = asyncio.run(market.lookup(["AAPL"])).entries["AAPL"]
    assert json.loads(prices_body([entry], 0, "t"))["prices"][0]["price"] == 101.5


def test_memo_is_bounded() -> None:
    redis = _Redis()
    market = MarketService(Settings(), redis, None, None, {})  # type: ignore[arg-type]
    for i in range(CACHE_ENTRY_MEMO_MAX + 5):
        redis.values["cache:price:AAPL"] = _cached(quote("AAPL", float(i)), str(i))
        asyncio.run(market.lookup(["AAPL"]))
    assert len(market._from_cache) <= CACHE_ENTRY_MEMO_MAX


def test_stats_at_once_without_a_delay() -> None:
    redis = _Redis()
    market = MarketService(Settings(), redis, None, None, {})  # type: ignore[arg-type]
    redis.values["cache:price:AAPL"] = _cached(quote("AAPL", 1.0), "a")
    asyncio.run(market.lookup(["AAPL", "MSFT"]))
    assert redis.totals[keys.STATS_CACHE_HITS] == 1
    assert redis.totals[keys.STATS_CACHE_MISSES] == 1


def test_stats_batched_then_flushed_by_timer_or_on_demand() -> None:
    redis = _Redis()
    market = MarketService(
        Settings(),
        redis,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        stats_delay_s=0.05,
    )
    redis.values["cache:price:AAPL"] = _cached(quote("AAPL", 1.0), "a")

    async def scenario() -> None:
        for _ in range(5):
            await market.lookup(["AAPL"])
        assert redis.round_trips == 5  # the MGETs only: no statistics round trip yet
        assert keys.STATS_CACHE_HITS not in redis.totals
        await asyncio.sleep(0.2)  # the timer's flush
        assert redis.totals[keys.STATS_CACHE_HITS] == 5
        await market.lookup(["AAPL"])
        await market.flush_cache_stats()  # on demand (/api/metrics/cache, shutdown)
        assert redis.totals[keys.STATS_CACHE_HITS] == 6
        await asyncio.sleep(0.1)  # the cancelled timer adds nothing twice
        assert redis.totals[keys.STATS_CACHE_HITS] == 6

    asyncio.run(scenario())
