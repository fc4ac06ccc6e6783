"""Cost, API usage and cache metrics, and the Prometheus endpoint."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import redis

from platform_services.api.schemas import ApiUsageBody, CacheMetricsBody, CostBody
from platform_services.providers import keys
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import pg

pytestmark = pytest.mark.stack


def test_cost_metrics(stack: Stack, api: httpx.Client) -> None:
    r = api.get("/api/metrics/cost")
    assert r.status_code == 200
    body = CostBody.model_validate(r.json())
    assert body.monthly_budget == float(stack.env.get("MONTHLY_BUDGET", "50"))
    assert body.daily_target == round(body.monthly_budget / 30, 2)
    assert body.daily_projection > 0
    assert body.month_end_projection >= body.month_to_date > 0
    assert {"compute", "storage", "provider_calls"} <= set(body.components)
    assert body.daily_projection == pytest.approx(sum(body.components.values()), abs=1e-3)
    # Issue 16: the platform records each day's cost as it happens (cost_days),
    # and its modelled history does not reach before the first recorded day.
    today = datetime.now(UTC).date()
    recorded = sorted(body.recorded_days)
    assert recorded and recorded[-1] == today.isoformat(), recorded
    days = [date.fromisoformat(d) for d, _ in body.daily_history]
    assert days == sorted(days) and days[-1] == today
    assert days[0] == date.fromisoformat(recorded[0]) and len(days) <= 30
    row = pg(
        stack,
        "SELECT cost_usd, first_recorded_at, last_recorded_at FROM cost_days WHERE day = $1",
        today,
    )
    assert row, "today has no row in cost_days"
    assert body.recorded_days[today.isoformat()].cost == pytest.approx(row[0][0])
    assert dict(body.daily_history)[today.isoformat()] == pytest.approx(row[0][0])
    # a later report moves today's record, never its start
    first_at = row[0][1]
    again = CostBody.model_validate(api.get("/api/metrics/cost").json())
    later = pg(
        stack, "SELECT first_recorded_at, last_recorded_at FROM cost_days WHERE day = $1", today
    )
    assert later[0][0] == first_at and later[0][1] >= row[0][2]
    assert (
        again.recorded_days[today.isoformat()].first == body.recorded_days[today.isoformat()].first
    )
    assert body.degraded_inputs == []
    assert body.budget_status == ("over" if body.daily_projection > body.daily_target else "ok")


def test_api_usage_per_provider(stack: Stack, api: httpx.Client) -> None:
    r = api.get("/api/metrics/api-usage")
    assert r.status_code == 200
    body = ApiUsageBody.model_validate(r.json())
    expected = {
        "alpha_vantage": (25, "day"),
        "finnhub": (60, "minute"),
        "polygon": (5, "minute"),
        "newsapi": (int(stack.env.get("NEWSAPI_DAILY_LIMIT", "100")), "day"),
    }
    assert {n: (u.limit, u.window) for n, u in body.providers.items()} == expected
    now = datetime.now(UTC)
    for usage in body.providers.values():
        resets = datetime.fromisoformat(usage.resets_at)
        assert now < resets <= now + timedelta(seconds=usage.window_seconds + 1)
        assert usage.remaining == max(0, usage.limit - usage.used)


def test_cache_metrics_count_hits_and_misses(api: httpx.Client, rds: redis.Redis) -> None:
    before = CacheMetricsBody.model_validate(api.get("/api/metrics/cache").json())
    rds.delete(keys.price_cache_key("IBM"))
    assert api.get("/api/stocks/prices", params={"symbols": "IBM"}).status_code == 200  # miss
    assert api.get("/api/stocks/prices", params={"symbols": "IBM"}).status_code == 200  # hit
    after = CacheMetricsBody.model_validate(api.get("/api/metrics/cache").json())
    assert after.hits >= before.hits + 1
    assert after.misses >= before.misses + 1
    assert 0.0 <= after.hit_rate <= 1.0
    assert after.hit_rate == pytest.approx(after.hits / (after.hits + after.misses), abs=1e-3)
    assert after.keys >= 1


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_prometheus_endpoint(api: httpx.Client) -> None:
    api.get("/api/health")
    api.get("/api/this-route-does-not-exist-" + "x" * 5)
    cost = api.get("/api/metrics/cost").json()
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    count = _sample(
        text, "http_request_duration_seconds_count", method="GET", route="/api/health", status="200"
    )
    assert count is not None and count >= 1
    assert _sample(text, "http_request_duration_seconds_bucket", route="/api/health", le="+Inf")
    # Unmatched paths share one label value: the raw path never becomes a label.
    assert 'route="unmatched"' in text
    assert "this-route-does-not-exist" not in text
    projection = _sample(text, "investment_daily_cost_projection")
    assert projection is not None and projection == pytest.approx(
        cost["daily_projection"], rel=0.05
    )
    assert re.search(r"^investment_provider_calls_total\{", text, re.M)
    assert _sample(text, "investment_cache_hits_total") is not None
    assert _sample(text, "investment_cache_misses_total") is not None
    assert _sample(text, "investment_provider_quota_limit", provider="polygon") == 5.0
