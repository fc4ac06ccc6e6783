"""HTTP hardening: security headers on every response, CORS closed, body size limit."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack

pytestmark = pytest.mark.stack

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _responses(stack: Stack, api: httpx.Client) -> dict[str, httpx.Response]:
    return {
        "200": api.get("/api/health"),
        "404 route": api.get("/api/nope"),
        "404 symbol": api.get("/api/stocks/prices", params={"symbols": "ZQNOPEQZ"}),
        "422": api.get("/api/stocks/prices", params={"symbols": "bad symbol"}),
        "401": api.post("/api/cache/clear"),
        "413": api.post("/api/auth/login", content=b"{" + b" " * 20000 + b"}"),
        "metrics": api.get("/metrics"),
    }


def test_security_headers_on_every_response(stack: Stack, api: httpx.Client) -> None:
    for name, r in _responses(stack, api).items():
        for header, value in EXPECTED.items():
            assert r.headers.get(header) == value, f"{name}: {header}"
        csp = r.headers.get("content-security-policy", "")
        assert csp.startswith("default-src 'none'"), name
        if name != "metrics":
            assert r.headers.get("cache-control") == "no-store", name
        assert r.headers.get("content-type", "").startswith(("application/json", "text/plain")), (
            name
        )


def test_cors_is_closed_by_default(api: httpx.Client) -> None:
    origin = {"Origin": "https://evil.example"}
    r = api.get("/api/health", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    pre = api.options(
        "/api/cache/clear",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers
    assert pre.status_code in (404, 405)


@pytest.mark.parametrize("size", [16 * 1024 + 1, 40 * 1024])
def test_oversized_bodies_are_413(api: httpx.Client, size: int) -> None:
    r = api.post(
        "/api/auth/login",
        content=b'{"username":"a","password":"' + b"x" * size + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert "too large" in r.json()["detail"]


def test_streamed_oversized_body_is_413(api: httpx.Client) -> None:
    def chunks():  # no Content-Length: chunked transfer encoding
        yield b'{"username":"a","password":"'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    r = api.post("/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_openapi_document_is_served_and_docs_ui_is_not(api: httpx.Client) -> None:
    spec = api.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert "/api/stocks/prices" in paths and "/api/auth/login" in paths
    assert set(paths["/api/auth/login"]["post"]["responses"]) >= {"200", "401", "413", "422", "429"}
    assert api.get("/api/docs").status_code == 404
    assert api.get("/docs").status_code == 404
