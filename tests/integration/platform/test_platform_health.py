"""Health endpoints through nginx: the runbook's post-deployment verification."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from platform_services.api.schemas import (
    CacheHealth,
    DatabaseHealth,
    ExternalApisHealth,
    HealthBody,
)
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import container_health, sim_call, wait_for

pytestmark = pytest.mark.stack


def test_health_reports_status_version_colour_uptime(stack: Stack, api: httpx.Client) -> None:
    r = api.get("/api/health")
    assert r.status_code == 200
    body = HealthBody.model_validate(r.json())
    assert body.status in ("healthy", "degraded")
    active = stack.env.get("ACTIVE_COLOUR", "blue")
    assert body.colour == active
    assert body.version == stack.env[f"{active.upper()}_VERSION"]
    assert body.uptime_s > 0
    assert body.checks.database.status == "healthy"
    assert body.checks.cache.status == "healthy"
    assert body.checks.external_apis.total == 4


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_each_colour_answers_for_itself(stack: Stack, api: httpx.Client, colour: str) -> None:
    state = stack.compose("ps", "--status", "running", "--services", check=False).stdout.split()
    # set-up starts both colours (the standby is warm for an instant rollback)
    assert f"backend_{colour}" in state, f"backend_{colour} is not running: {state}"
    r = api.get(f"/direct/{colour}/api/health")
    assert r.status_code == 200
    assert r.json()["colour"] == colour
    assert r.json()["version"] == stack.env[f"{colour.upper()}_VERSION"]


def test_database_health(api: httpx.Client) -> None:
    r = api.get("/api/health/database")
    assert r.status_code == 200
    body = DatabaseHealth.model_validate(r.json())
    assert body.status == "healthy"
    assert body.timescaledb  # the extension is installed
    assert body.schema_version is not None


def test_cache_health_round_trips_a_value(api: httpx.Client) -> None:
    r = api.get("/api/health/cache")
    assert r.status_code == 200
    body = CacheHealth.model_validate(r.json())
    assert body.status == "healthy"
    assert body.redis_version


def test_external_apis_report_reachability_and_quota_left(api: httpx.Client) -> None:
    r = api.get("/api/health/external-apis")
    assert r.status_code == 200
    body = ExternalApisHealth.model_validate(r.json())
    assert set(body.providers) == {"alpha_vantage", "finnhub", "polygon", "newsapi"}
    limits = {name: p.quota_limit for name, p in body.providers.items()}
    assert limits["alpha_vantage"] == 25 and limits["finnhub"] == 60 and limits["polygon"] == 5
    for provider in body.providers.values():
        assert provider.reachable is True
        assert provider.quota_left is not None and 0 <= provider.quota_left <= provider.quota_limit


@pytest.fixture
def finnhub_down(stack: Stack, api: httpx.Client) -> Iterator[None]:
    sim_call(stack, "POST", "/_sim/fault?provider=finnhub&mode=down")
    try:
        yield
    finally:
        sim_call(stack, "POST", "/_sim/fault?provider=finnhub&mode=ok")
        wait_for(
            lambda: api.get("/api/health/external-apis").json()["status"] == "healthy",
            deadline_s=30,
            what="providers reachable again",
        )


def test_unreachable_provider_degrades_but_does_not_fail_health(
    api: httpx.Client, finnhub_down: None
) -> None:
    ext = wait_for(
        lambda: (
            (r := api.get("/api/health/external-apis")).json()["providers"]["finnhub"]["reachable"]
            is False
            and r
        ),
        deadline_s=30,
        what="finnhub reported unreachable",
    )
    assert ext.status_code == 200
    assert ext.json()["status"] == "degraded"
    assert ext.json()["providers"]["polygon"]["reachable"] is True
    health = api.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["external_apis"]["reachable"] == 3


@pytest.mark.destructive
@pytest.mark.parametrize(("service", "path"), [("redis", "cache"), ("db", "database")])
def test_health_is_503_while_a_store_is_down(
    stack: Stack, api: httpx.Client, service: str, path: str
) -> None:
    container = stack.container(service)
    subprocess.run(["docker", "pause", container], check=True, capture_output=True)
    try:
        r = api.get("/api/health")
        assert r.status_code == 503
        body = HealthBody.model_validate(r.json())
        assert body.status == "unhealthy"
        assert getattr(body.checks, path).status == "unhealthy"
        detail = api.get(f"/api/health/{path}")
        assert detail.status_code == 503
        assert detail.json()["status"] == "unhealthy" and detail.json()["error"]
        if service == "redis":
            # No cache and no quota ledger: no provider is called, stored prices are served.
            prices = api.get("/api/stocks/prices", params={"symbols": "AAPL"})
            assert prices.status_code == 200, prices.text
            assert prices.json()["prices"][0]["source"] == "database"
            assert prices.json()["prices"][0]["stale"] is True
    finally:
        subprocess.run(["docker", "unpause", container], check=True, capture_output=True)
        # The engine marked the paused container unhealthy; later tests (and
        # compose's depends_on) need it healthy again, not just answering.
        wait_for(
            lambda: container_health(container) == "healthy",
            deadline_s=120,
            what=f"{container} healthy again",
        )
    wait_for(lambda: api.get("/api/health").status_code == 200, deadline_s=60, what="healthy again")
