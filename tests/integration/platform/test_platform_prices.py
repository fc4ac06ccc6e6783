"""GET /api/stocks/prices: cache, providers within quota with fallback, storage,
and bad input that writes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from platform_services.api.schemas import PricesBody, UnknownSymbolsBody
from platform_services.providers import keys
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import (
    OFF_WATCHLIST,
    call_rows,
    price_rows,
    random_unknown_symbol,
    sim_call,
)

pytestmark = pytest.mark.stack


def fresh_symbol(rds: redis.Redis) -> str:
    """A symbol market-sim knows, with its cache entry removed (so a provider is asked)."""
    symbol = secrets.choice(OFF_WATCHLIST)
    rds.delete(keys.price_cache_key(symbol))
    return symbol


def test_miss_goes_to_a_provider_and_is_stored_then_served_from_cache(
    stack: Stack, api: httpx.Client, rds: redis.Redis
) -> None:
    symbol = fresh_symbol(rds)
    rows = price_rows(stack, [symbol])
    hits = int(rds.get(keys.STATS_CACHE_HITS) or 0)

    first = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert first.status_code == 200, first.text
    body = PricesBody.model_validate(first.json())
    assert [p.symbol for p in body.prices] == [symbol]
    assert body.prices[0].source == "provider"
    assert body.prices[0].price > 0
    assert body.stored == 1
    assert price_rows(stack, [symbol]) == rows + 1
    assert rds.ttl(keys.price_cache_key(symbol)) > 0

    second = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert second.status_code == 200
    again = PricesBody.model_validate(second.json())
    assert again.prices[0].source == "cache"
    assert again.prices[0].price == body.prices[0].price
    assert again.stored == 0
    assert price_rows(stack, [symbol]) == rows + 1  # a cache hit writes nothing
    assert int(rds.get(keys.STATS_CACHE_HITS) or 0) >= hits + 1


def test_several_symbols_keep_the_requested_order(api: httpx.Client) -> None:
    r = api.get("/api/stocks/prices", params={"symbols": "MSFT,AAPL,MSFT"})
    assert r.status_code == 200
    body = PricesBody.model_validate(r.json())
    assert [p.symbol for p in body.prices] == ["MSFT", "AAPL"]
    assert body.count == 2


@pytest.fixture
def finnhub_exhausted(rds: redis.Redis) -> Iterator[list[str]]:
    """Finnhub's counters at the limit for this minute and the next (a minute
    boundary during the test cannot reopen the window); restored afterwards."""
    spec = keys.provider_table()["finnhub"]
    now = datetime.now(UTC)
    quota_keys = [keys.quota_key_for(spec, now + timedelta(seconds=d)) for d in (0, 60)]
    saved = {k: (rds.get(k), rds.ttl(k)) for k in quota_keys}
    for k in quota_keys:
        rds.set(k, spec.limit, ex=180)
    try:
        yield quota_keys
    finally:
        for k, (value, ttl) in saved.items():
            if value is None:
                rds.delete(k)
            else:
                rds.set(k, value, ex=max(ttl, 1))


def test_exhausted_provider_falls_back_to_the_next_and_is_never_exceeded(
    stack: Stack, api: httpx.Client, rds: redis.Redis, finnhub_exhausted: list[str]
) -> None:
    symbol = fresh_symbol(rds)
    r = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert r.status_code in (200, 503), r.text
    if r.status_code == 200:
        price = PricesBody.model_validate(r.json()).prices[0]
        if price.source == "provider":
            assert price.provider in ("polygon", "alpha_vantage")
        else:
            # Polygon's minute and Alpha Vantage's day used up too (earlier runs
            # today): the last stored price, marked stale. Still no Finnhub call.
            assert price.source == "database" and price.stale
    else:
        assert int(r.headers["Retry-After"]) > 0
    # The denied call was not made: the counter did not move past the limit.
    assert all(int(rds.get(k) or 0) == 60 for k in finnhub_exhausted)


@pytest.fixture
def emergency(rds: redis.Redis) -> Iterator[None]:
    rds.set(keys.EMERGENCY_KEY, "1", ex=120)
    try:
        yield
    finally:
        rds.delete(keys.EMERGENCY_KEY)


def _calls_today(rds: redis.Redis) -> dict[str, int]:
    day = keys.utc_day()
    names = list(keys.provider_table())
    values = rds.mget([keys.stats_calls_key(n, day) for n in names])
    return {n: int(v or 0) for n, v in zip(names, values, strict=True)}


def test_emergency_key_blocks_every_provider_call(
    stack: Stack, api: httpx.Client, rds: redis.Redis, emergency: None
) -> None:
    calls = _calls_today(rds)
    rds.delete(keys.price_cache_key("AAPL"))
    has_rows = price_rows(stack, ["AAPL"]) > 0

    r = api.get("/api/stocks/prices", params={"symbols": "AAPL"})
    if has_rows:
        assert r.status_code == 200, r.text
        item = PricesBody.model_validate(r.json()).prices[0]
        assert item.source == "database" and item.stale is True
    else:
        assert r.status_code == 503
    unknown = random_unknown_symbol()
    r2 = api.get("/api/stocks/prices", params={"symbols": unknown})
    # No provider may be asked, so "unknown" cannot be decided: 503 with Retry-After.
    assert r2.status_code == 503, r2.text
    assert int(r2.headers["Retry-After"]) > 0
    assert r2.json()["error"] == "prices_unavailable"
    assert _calls_today(rds) == calls
    assert api.get("/api/metrics/api-usage").json()["emergency_rate_limit"]["active"] is True
    assert api.get("/api/health").json()["status"] == "degraded"


def test_unknown_symbol_is_404_and_nothing_is_stored(
    stack: Stack, api: httpx.Client, rds: redis.Redis
) -> None:
    known = fresh_symbol(rds)
    unknown = random_unknown_symbol()
    rows = price_rows(stack, [known, unknown])
    r = api.get("/api/stocks/prices", params={"symbols": f"{known},{unknown}"})
    assert r.status_code == 404, r.text
    body = UnknownSymbolsBody.model_validate(r.json())
    assert body.symbols == [unknown]
    assert body.error == "unknown_symbols"
    assert price_rows(stack, [known, unknown]) == rows
    # Asked again: answered from the negative cache, without a provider call.
    calls = call_rows(stack, [unknown])
    again = api.get("/api/stocks/prices", params={"symbols": unknown})
    assert again.status_code == 404
    assert call_rows(stack, [unknown]) == calls


MALFORMED = [
    "aapl",
    "AAPL,",
    ",AAPL",
    "AAPL,,MSFT",
    " AAPL",
    "AAPL MSFT",
    "AAPL;DROP TABLE prices",
    "1ABC",
    "TOOLONGSYMB",
    "A,B,C,D,E,F,G,H,I,J,K",
    "ÄPFEL",
    "AAPL%00",
    "A" * 250,
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_symbol_lists_are_422_and_write_nothing(
    stack: Stack, api: httpx.Client, rds: redis.Redis, raw: str
) -> None:
    candidates = sorted({raw, raw.strip(), raw.upper(), *raw.split(",")})
    before = (price_rows(stack, candidates), call_rows(stack, candidates))
    r = api.get("/api/stocks/prices", params={"symbols": raw})
    assert r.status_code == 422, r.text
    assert "detail" in r.json()
    assert (price_rows(stack, candidates), call_rows(stack, candidates)) == before
    assert rds.exists(keys.price_cache_key(raw)) == 0


def test_missing_or_repeated_symbols_parameter_is_422(api: httpx.Client) -> None:
    assert api.get("/api/stocks/prices").status_code == 422
    assert api.get("/api/stocks/prices?symbols=").status_code == 422
    assert api.get("/api/stocks/prices?symbols=AAPL&symbols=MSFT").status_code == 422


def test_a_provider_never_sees_more_calls_than_its_quota(
    stack: Stack, api: httpx.Client, rds: redis.Redis, finnhub_exhausted: list[str]
) -> None:
    """With Finnhub exhausted, a burst of misses spills onto Polygon (5/min): the
    ledger admits at most 5, the rest go to Alpha Vantage or get 503 + Retry-After,
    and market-sim (which refuses over-quota calls as the real API does) confirms
    it never saw a sixth Polygon call in the window."""
    for symbol in OFF_WATCHLIST:
        rds.delete(keys.price_cache_key(symbol))
    for symbol in OFF_WATCHLIST:
        r = api.get("/api/stocks/prices", params={"symbols": symbol})
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) > 0
        else:
            assert r.status_code == 200, r.text
            item = r.json()["prices"][0]
            # Either a fresh quote from another provider, or the stored one (stale).
            assert item["source"] in ("provider", "database")
            assert item["provider"] != "finnhub" or item["source"] == "database"
            assert item["stale"] is (item["source"] == "database")
    seen = sim_call(stack, "GET", "/_sim/stats")["quotas"]
    assert seen["polygon"]["calls"] <= 5
    assert seen["finnhub"]["calls"] <= 60
    assert seen["alpha_vantage"]["calls"] <= 25
    assert int(rds.get(keys.quota_key_for(keys.provider_table()["polygon"])) or 0) <= 5
    assert all(int(rds.get(k) or 0) == 60 for k in finnhub_exhausted)
