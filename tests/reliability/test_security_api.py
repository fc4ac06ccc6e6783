"""The API's own defences, through nginx on 127.0.0.1: argon2 hashes, JWTs
whose expiry and signature are checked, a login rate limit, admin routes
closed to normal users, security headers on every response, CORS closed.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest

from tests.conftest import Stack
from tests.reliability._harness import pg_query

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

ADMIN_ROUTE = "/api/cache/clear"


@pytest.fixture(scope="module")
def api(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.base_url, timeout=15) as client:
        yield client


def _login(api: httpx.Client, user: str, password: str) -> httpx.Response:
    return api.post("/api/auth/login", json={"username": user, "password": password})


@pytest.fixture(scope="module")
def user_token(api: httpx.Client, stack: Stack) -> str:
    r = _login(api, stack.env.get("TEST_USERNAME", "test"), stack.env["TEST_PASSWORD"])
    assert r.status_code == 200, r.text
    body = r.json()
    token = body.get("access_token") or body.get("token")
    assert isinstance(token, str) and token.count(".") == 2, body
    return token


def test_passwords_are_argon2id_hashes(stack: Stack) -> None:
    rows = pg_query(stack.pg_dsn, "SELECT username, password_hash FROM users")
    assert rows, "no users in the users table"
    secrets = {stack.env.get("ADMIN_PASSWORD"), stack.env.get("TEST_PASSWORD")}
    for row in rows:
        h = row["password_hash"]
        assert h.startswith("$argon2id$"), f"{row['username']}: not an argon2id hash"
        assert h not in secrets
        assert not any(s and s in h for s in secrets)


def test_jwt_has_an_expiry_and_is_signed_hs256(user_token: str) -> None:
    header = json.loads(base64.urlsafe_b64decode(user_token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = jwt.decode(user_token, options={"verify_signature": False})
    assert claims["exp"] > time.time()
    assert 0 < claims["exp"] - claims["iat"] <= 24 * 3600


def _forge(stack: Stack, user_token: str, **changes: object) -> dict[str, object]:
    claims = jwt.decode(user_token, options={"verify_signature": False})
    claims.update(changes)
    return claims


def test_tampered_and_forged_tokens_are_refused(
    api: httpx.Client, stack: Stack, user_token: str
) -> None:
    secret = stack.env["JWT_SECRET"]
    as_admin = _forge(stack, user_token, role="admin")
    cases = {
        "wrong signing key": jwt.encode(as_admin, "x" * 32, algorithm="HS256"),
        "alg none": jwt.encode(as_admin, None, algorithm="none"),
        "payload swapped, signature kept": ".".join(
            [
                user_token.split(".")[0],
                base64.urlsafe_b64encode(json.dumps(as_admin).encode()).rstrip(b"=").decode(),
                user_token.split(".")[2],
            ]
        ),
        "expired (real key)": jwt.encode(
            _forge(
                stack,
                user_token,
                role="admin",
                iat=int(time.time()) - 7200,
                exp=int(time.time()) - 3600,
            ),
            secret,
            algorithm="HS256",
        ),
        "no exp (real key)": jwt.encode(
            {k: v for k, v in as_admin.items() if k != "exp"}, secret, algorithm="HS256"
        ),
        "garbage": "not.a.token",
    }
    for what, token in cases.items():
        r = api.post(ADMIN_ROUTE, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, f"{what}: {r.status_code} {r.text[:200]}"


def test_admin_route_refuses_normal_users_and_anonymous(api: httpx.Client, user_token: str) -> None:
    assert api.post(ADMIN_ROUTE).status_code == 401
    assert (
        api.post(
            ADMIN_ROUTE, headers={"Authorization": "Bearer wrong-token-wrong-token"}
        ).status_code
        == 401
    )
    r = api.post(ADMIN_ROUTE, headers={"Authorization": f"Bearer {user_token}"})
    assert r.status_code == 403, r.text


def test_admin_token_is_accepted(api: httpx.Client, stack: Stack) -> None:
    r = api.post(ADMIN_ROUTE, headers={"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"})
    assert r.status_code == 200, r.text


def test_login_is_rate_limited(api: httpx.Client) -> None:
    user = f"nobody-{uuid.uuid4().hex[:10]}"
    statuses = [_login(api, user, "wrong password").status_code for _ in range(12)]
    assert 429 in statuses, f"no 429 after {len(statuses)} failed logins: {statuses}"
    first = statuses.index(429)
    assert all(s == 401 for s in statuses[:first]), statuses
    assert all(s == 429 for s in statuses[first:]), statuses
    assert first <= 10, f"{first} failed attempts allowed before 429"
    r = _login(api, user, "wrong password")
    assert r.status_code == 429
    assert r.headers.get("retry-after", "").isdigit(), dict(r.headers)


def test_wrong_credentials_say_nothing_about_the_user(api: httpx.Client, stack: Stack) -> None:
    known = _login(api, stack.env.get("TEST_USERNAME", "test"), f"wrong-{uuid.uuid4().hex[:6]}")
    unknown = _login(api, f"ghost-{uuid.uuid4().hex[:8]}", "wrong")
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()


REQUIRED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": None,
    "referrer-policy": None,
    "content-security-policy": None,
}


def _responses(api: httpx.Client, stack: Stack) -> dict[str, httpx.Response]:
    out = {
        "GET /api/health": api.get("/api/health"),
        "GET /api/health/database": api.get("/api/health/database"),
        "GET /api/stocks/prices ok": api.get("/api/stocks/prices", params={"symbols": "AAPL"}),
        "GET /api/stocks/prices 4xx": api.get("/api/stocks/prices", params={"symbols": "!!bad!!"}),
        "GET unknown path 404": api.get(f"/api/nope-{uuid.uuid4().hex[:6]}"),
        "POST /api/auth/login 401": _login(api, "ghost", "ghost"),
        "POST /api/cache/clear 401": api.post(ADMIN_ROUTE),
        "GET /metrics": api.get("/metrics"),
        "GET /openapi.json": api.get("/openapi.json"),
        "GET /nginx-health (nginx)": api.get("/nginx-health"),
        "GET /direct/blue/api/health": api.get("/direct/blue/api/health"),
        "GET 32 KB header (nginx 400)": api.get("/api/health", headers={"X-Big": "a" * 32768}),
        "POST oversized body 413 (nginx)": api.post(
            "/api/auth/login",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
        ),
    }
    return out


def test_security_headers_on_every_response(api: httpx.Client, stack: Stack) -> None:
    missing: dict[str, list[str]] = {}
    for what, r in _responses(api, stack).items():
        lacks = [
            h
            for h, value in REQUIRED_HEADERS.items()
            if h not in r.headers or (value is not None and r.headers[h] != value)
        ]
        if lacks:
            missing[f"{what} ({r.status_code})"] = lacks
    assert not missing, f"responses without security headers: {missing}"


def test_no_server_version_disclosed(api: httpx.Client, stack: Stack) -> None:
    for what, r in _responses(api, stack).items():
        server = r.headers.get("server", "")
        assert not any(ch.isdigit() for ch in server), f"{what}: Server: {server}"
        assert "x-powered-by" not in r.headers, what


@pytest.mark.parametrize(
    "path", ["/api/health", "/api/stocks/prices?symbols=AAPL", "/api/auth/login"]
)
def test_cors_is_closed_by_default(api: httpx.Client, path: str) -> None:
    origin = "https://evil.example"
    pre = api.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert "access-control-allow-origin" not in pre.headers, dict(pre.headers)
    assert "access-control-allow-credentials" not in pre.headers
    simple = api.get(path if "login" not in path else "/api/health", headers={"Origin": origin})
    assert "access-control-allow-origin" not in simple.headers, dict(simple.headers)
