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
    def incrby(self, *_: Any) -> None: ...
    def expire(self, *_: Any) -> None: ...
    async def execute(self) -> list[Any]:
        return []


class _Redis:
    """Only what the cached path calls: MGET and the statistics pipeline."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def mget(self, names: list[str]) -> list[str | None]:
        return [self.values.get(n) for n in names]

    def pipeline(self, transaction: bool = False) -> _Pipe:
        return _Pipe()


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
