"""The API with nothing behind it (stores and providers refuse connections):
it starts, says it is unhealthy, and its HTTP hardening holds on every path.

No mocks: the app is the real one, pointed at closed local ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from platform_services.api.main import create_app
from platform_services.settings import Settings

CLOSED = "127.0.0.1:9"  # discard port: nothing listens, connections are refused


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"postgresql://postgres:x@{CLOSED}/investment_db",
        redis_url=f"redis://:x@{CLOSED}/0",
        alpha_vantage_base_url=f"http://{CLOSED}/alphavantage",
        finnhub_base_url=f"http://{CLOSED}/finnhub",
        polygon_base_url=f"http://{CLOSED}/polygon",
        newsapi_base_url=f"http://{CLOSED}/newsapi",
        jwt_secret="unit-test-secret-0123456789",
        admin_token="unit-test-admin-token-0123456789",
        app_version="v9.9.9",
        app_colour="green",
        db_timeout_s=1.0,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_is_503_unhealthy_with_reasons(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    assert body["version"] == "v9.9.9" and body["colour"] == "green"
    assert body["checks"]["database"]["status"] == "unhealthy"
    assert body["checks"]["cache"]["status"] == "unhealthy"
    assert "x@" not in r.text  # no credentials from the URLs in error messages
    assert client.get("/api/health/database").status_code == 503
    assert client.get("/api/health/cache").status_code == 503


def test_external_apis_unreachable_is_503(client: TestClient) -> None:
    r = client.get("/api/health/external-apis")
    assert r.status_code == 503
    assert all(p["reachable"] is False for p in r.json()["providers"].values())


def test_validation_happens_before_any_store_is_needed(client: TestClient) -> None:
    r = client.get("/api/stocks/prices", params={"symbols": "aapl"})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_symbols"


def test_prices_without_cache_ledger_or_database_are_503_not_a_provider_call(
    client: TestClient,
) -> None:
    r = client.get("/api/stocks/prices", params={"symbols": "AAPL"})
    assert r.status_code == 503
    assert r.json()["error"] == "prices_unavailable"
    assert int(r.headers["Retry-After"]) > 0
    assert "ledger unavailable" in r.json()["reasons"]["AAPL"]


def test_admin_checks_happen_before_the_cache_is_needed(client: TestClient) -> None:
    assert client.post("/api/cache/clear").status_code == 401
    r = client.post("/api/cache/clear", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_login_without_the_rate_limiter_is_refused_not_allowed(client: TestClient) -> None:
    r = client.post("/api/auth/login", json={"username": "admin", "password": "x"})
    assert r.status_code == 503  # no Redis: no attempt counter, so no login at all


def test_headers_and_body_limit(client: TestClient) -> None:
    r = client.post("/api/auth/login", content=b"x" * (17 * 1024))
    assert r.status_code == 413
    for response in (r, client.get("/api/health"), client.get("/nope")):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["cache-control"] == "no-store"
    assert (
        "access-control-allow-origin"
        not in client.get("/api/health", headers={"Origin": "https://x.example"}).headers
    )


def test_cors_only_when_configured() -> None:
    settings = Settings(
        redis_url=f"redis://{CLOSED}/0",
        database_url=f"postgresql://p@{CLOSED}/d",
        cors_origins="https://ok.example",
    )
    with TestClient(create_app(settings)) as c:
        ok = c.get("/openapi.json", headers={"Origin": "https://ok.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        bad = c.get("/openapi.json", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


def test_prometheus_metrics_render_without_stores(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "http_request_duration_seconds_bucket" in r.text
    assert "investment_daily_cost_projection" in r.text
