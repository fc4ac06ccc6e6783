"""GET /api/stocks/prices: cache, providers within quota with fallback, storage,
and bad input that writes nothing."""

from __future__ import annotations

import contextlib
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
    pg,
    pg_val,
    price_rows,
    random_unknown_symbol,
    sim_call,
    wait_for,
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
    # The API adds its hit counts to Redis's totals in batches (CACHE_STATS_DELAY_S, 1 s).
    wait_for(
        lambda: int(rds.get(keys.STATS_CACHE_HITS) or 0) >= hits + 1,
        deadline_s=10,
        what="the cache hit counted in Redis",
        interval=0.2,
    )


def test_several_symbols_keep_the_requested_order(api: httpx.Client) -> None:
    r = api.get("/api/stocks/prices", params={"symbols": "MSFT,AAPL,MSFT"})
    assert r.status_code == 200
    body = PricesBody.model_validate(r.json())
    assert [p.symbol for p in body.prices] == ["MSFT", "AAPL"]
    assert body.count == 2


@contextlib.contextmanager
def _counters_at(rds: redis.Redis, limits: dict[str, int]) -> Iterator[None]:
    """Quota counters set to the given values (for 180 s at most), each put
    back as it was (value and TTL, or absent) afterwards."""
    saved = {k: (rds.get(k), rds.ttl(k)) for k in limits}
    for k, limit in limits.items():
        rds.set(k, limit, ex=180)
    try:
        yield
    finally:
        for k, (value, ttl) in saved.items():
            if value is None:
                rds.delete(k)
            else:
                rds.set(k, value, ex=max(ttl, 1))


@pytest.fixture
def finnhub_exhausted(rds: redis.Redis) -> Iterator[list[str]]:
    """Finnhub's counters at the limit for this minute and the next (a minute
    boundary during the test cannot reopen the window); restored afterwards."""
    spec = keys.provider_table()["finnhub"]
    now = datetime.now(UTC)
    quota_keys = [keys.quota_key_for(spec, now + timedelta(seconds=d)) for d in (0, 60)]
    with _counters_at(rds, dict.fromkeys(quota_keys, spec.limit)):
        yield quota_keys


def _calls_since(stack: Stack, last_id: int, symbol: str) -> list[tuple[str, str]]:
    """(provider, outcome) of the call log's rows for ``symbol`` after row ``last_id``."""
    rows = pg(
        stack,
        "SELECT provider, outcome FROM api_calls WHERE id > $1 AND symbol = $2 ORDER BY id",
        last_id,
        symbol,
    )
    return [(r["provider"], r["outcome"]) for r in rows]


def _last_call_id(stack: Stack) -> int:
    return int(pg_val(stack, "SELECT coalesce(max(id), 0) FROM api_calls"))


def _polygon_has_room(stack: Stack, rds: redis.Redis) -> dict[str, int] | None:
    """Polygon's current minute has a call left, by the ledger and by market-sim."""
    spec = keys.provider_table()["polygon"]
    ledger = int(rds.get(keys.quota_key_for(spec)) or 0)
    sim = int(sim_call(stack, "GET", "/_sim/stats")["quotas"]["polygon"]["calls"])
    return {"ledger": ledger, "sim": sim} if max(ledger, sim) < spec.limit else None


def test_exhausted_provider_falls_back_to_the_next_and_is_never_exceeded(
    stack: Stack, api: httpx.Client, rds: redis.Redis, finnhub_exhausted: list[str]
) -> None:
    # PRICE_PROVIDERS (unset in the test stack): finnhub, polygon, alpha_vantage.
    # Polygon allows 5 calls a minute and earlier tests may have spent them: wait
    # for a minute with room (at most until the next one, which
    # finnhub_exhausted still covers).
    wait_for(
        lambda: _polygon_has_room(stack, rds),
        deadline_s=75,
        interval=2,
        what="a Polygon minute with a call left (ledger and market-sim below 5)",
    )
    finnhub_now = keys.quota_key_for(keys.provider_table()["finnhub"])
    assert finnhub_now in finnhub_exhausted, f"{finnhub_now} left the exhausted windows"
    symbol = fresh_symbol(rds)
    last_id = _last_call_id(stack)

    r = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert r.status_code == 200, r.text
    price = PricesBody.model_validate(r.json()).prices[0]
    assert (price.source, price.provider, price.stale) == ("provider", "polygon", False), price
    # The call log: Polygon answered, Finnhub was never called.
    assert _calls_since(stack, last_id, symbol) == [("polygon", "ok")]
    # The denied call was not made: the counter did not move past the limit.
    assert all(int(rds.get(k) or 0) == 60 for k in finnhub_exhausted)


@pytest.fixture
def price_providers_exhausted(rds: redis.Redis) -> Iterator[dict[str, int]]:
    """Every quote provider's counter at its limit, for this window and the one a
    minute from now (a boundary during the test cannot reopen one); restored
    afterwards."""
    table = keys.provider_table()
    now = datetime.now(UTC)
    limits = {
        keys.quota_key_for(table[name], now + timedelta(seconds=d)): table[name].limit
        for name in ("finnhub", "polygon", "alpha_vantage")
        for d in (0, 60)
    }
    with _counters_at(rds, limits):
        yield limits


def test_every_provider_exhausted_serves_the_stored_price_marked_stale(
    stack: Stack, api: httpx.Client, rds: redis.Redis, price_providers_exhausted: dict[str, int]
) -> None:
    symbol = pg_val(stack, "SELECT symbol FROM prices ORDER BY time DESC LIMIT 1")
    assert symbol, "no stored price at all (the worker ingests the watchlist at start)"
    rds.delete(keys.price_cache_key(symbol))
    last_id = _last_call_id(stack)

    r = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert r.status_code == 200, r.text
    price = PricesBody.model_validate(r.json()).prices[0]
    assert (price.symbol, price.source, price.stale) == (symbol, "database", True), price
    assert _calls_since(stack, last_id, symbol) == []
    assert all(int(rds.get(k) or 0) == v for k, v in price_providers_exhausted.items())


def test_every_provider_exhausted_and_nothing_stored_is_503_with_retry_after(
    stack: Stack, api: httpx.Client, rds: redis.Redis, price_providers_exhausted: dict[str, int]
) -> None:
    symbol = random_unknown_symbol()  # nothing stored, and no provider may be asked
    last_id = _last_call_id(stack)

    r = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "prices_unavailable", r.text
    assert int(r.headers["Retry-After"]) > 0
    assert _calls_since(stack, last_id, symbol) == []
    assert all(int(rds.get(k) or 0) == v for k, v in price_providers_exhausted.items())


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
