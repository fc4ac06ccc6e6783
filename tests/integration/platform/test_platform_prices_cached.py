"""The cached prices path of issue 15, on the real stack through nginx.

The API keeps each cached quote's entry (decoded and serialised once) per raw
Redis value, and batches its cache hit/miss counts instead of writing them on
every request. What must not change: the body is what ``JSONResponse`` would
render from the model (the same bytes), a quote re-cached with another price
is served at once, and every hit is counted in Redis: by the per-process
timer, and before ``/api/metrics/cache`` answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import redis

from platform_services.api.schemas import CacheMetricsBody, PricesBody
from platform_services.providers import keys

pytestmark = pytest.mark.stack

SYMBOLS = ["AAPL", "MSFT", "GOOGL"]
PATH = "/api/stocks/prices"


def _compact(content: object) -> bytes:
    """Starlette's JSONResponse rendering."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


@pytest.fixture
def cached(api: httpx.Client) -> Iterator[None]:
    for _ in range(2):  # the first may go to a provider; the second is served cached
        r = api.get(PATH, params={"symbols": ",".join(SYMBOLS)})
        assert r.status_code == 200, r.text
    yield


def test_cached_body_is_the_models_rendering(
    api: httpx.Client, rds: redis.Redis, cached: None
) -> None:
    r = api.get(PATH, params={"symbols": ",".join(SYMBOLS)})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert r.content == _compact(body)
    model = PricesBody.model_validate(body)
    assert [p.symbol for p in model.prices] == SYMBOLS
    assert model.count == 3 and model.stored == 0
    for item in body["prices"]:
        raw = rds.get(keys.price_cache_key(item["symbol"]))
        if raw is None:  # expired between the two reads
            continue
        stored = json.loads(raw)
        stored.pop("cached_at", None)
        if item["source"] == "cache":
            assert item == {**stored, "source": "cache", "stale": False, "currency": "USD"}


def test_a_recached_price_is_served_at_once(
    api: httpx.Client, rds: redis.Redis, cached: None
) -> None:
    key = keys.price_cache_key("AAPL")
    original = rds.get(key)
    assert original is not None
    ttl = max(int(rds.ttl(key)), 30)
    data = json.loads(original)
    try:
        for step in (1, 2):
            price = round(data["price"] + 1000 + step * 0.0101, 4)
            new = {**data, "price": price, "cached_at": datetime.now(UTC).isoformat()}
            rds.set(key, json.dumps(new), ex=ttl)
            r = api.get(PATH, params={"symbols": "AAPL"})
            assert r.status_code == 200
            got = r.json()["prices"][0]
            assert (got["price"], got["source"]) == (price, "cache")
            assert r.content == _compact(r.json())
    finally:
        rds.set(key, original, ex=ttl)


def _hits(rds: redis.Redis) -> int:
    return int(rds.get(keys.STATS_CACHE_HITS) or 0)


def test_every_hit_reaches_redis_within_the_delay(
    api: httpx.Client, rds: redis.Redis, cached: None
) -> None:
    api.get("/api/metrics/cache")  # nothing left waiting in the serving process
    before = _hits(rds)
    n = 20
    for _ in range(n):
        assert api.get(PATH, params={"symbols": ",".join(SYMBOLS)}).status_code == 200
    deadline = time.monotonic() + 10  # CACHE_STATS_DELAY_S is 1 s
    while _hits(rds) < before + 3 * n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # and no more than that: no count is written twice
    assert _hits(rds) == before + 3 * n


def test_cache_metrics_count_the_hits_still_waiting(api: httpx.Client, cached: None) -> None:
    before = CacheMetricsBody.model_validate(api.get("/api/metrics/cache").json())
    n = 10
    for _ in range(n):
        assert api.get(PATH, params={"symbols": ",".join(SYMBOLS)}).status_code == 200
    after = CacheMetricsBody.model_validate(api.get("/api/metrics/cache").json())
    assert after.hits - before.hits == 3 * n
    assert after.misses == before.misses
