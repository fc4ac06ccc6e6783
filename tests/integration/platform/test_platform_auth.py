"""POST /api/auth/login and the tokens it issues: argon2 users in PostgreSQL,
HS256 JWTs with expiry, 401 on bad credentials, 429 after repeated failures."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import httpx
import jwt
import pytest

from platform_services.api.schemas import TokenBody
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import login, make_token, pg

pytestmark = pytest.mark.stack


def test_admin_login_returns_a_signed_expiring_admin_token(stack: Stack, api: httpx.Client) -> None:
    r = login(api, stack.env.get("ADMIN_USERNAME", "admin"), stack.env["ADMIN_PASSWORD"])
    assert r.status_code == 200, r.text
    body = TokenBody.model_validate(r.json())
    claims = jwt.decode(
        body.access_token, stack.env["JWT_SECRET"], algorithms=["HS256"], issuer="investment-api"
    )
    assert claims["role"] == "admin" and body.role == "admin"
    assert claims["exp"] - claims["iat"] == body.expires_in
    assert body.expires_in == int(stack.env.get("JWT_EXPIRE_MINUTES", "30")) * 60
    assert jwt.get_unverified_header(body.access_token)["alg"] == "HS256"


def test_test_user_gets_the_user_role(stack: Stack, api: httpx.Client) -> None:
    r = login(api, stack.env.get("TEST_USERNAME", "test"), stack.env["TEST_PASSWORD"])
    assert r.status_code == 200
    assert r.json()["role"] == "user"


def test_users_are_stored_with_argon2_hashes(stack: Stack) -> None:
    rows = pg(stack, "SELECT username, role, password_hash FROM users ORDER BY username")
    users = {r["username"]: r for r in rows}
    admin = users[stack.env.get("ADMIN_USERNAME", "admin")]
    assert admin["role"] == "admin"
    assert admin["password_hash"].startswith("$argon2id$")
    assert stack.env["ADMIN_PASSWORD"] not in admin["password_hash"]


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_bad_credentials_are_401(stack: Stack, api: httpx.Client, who: str) -> None:
    if who == "wrong-password":
        r = login(api, stack.env.get("TEST_USERNAME", "test"), "not-the-password")
    else:
        r = login(api, "nobody-" + secrets.token_hex(4), "whatever")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["detail"] == "invalid username or password"  # same answer both ways
    assert "access_token" not in r.text


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "admin"},
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": "a" * 65, "password": "x"},
        {"username": ["admin"], "password": "x"},
        "not an object",
    ],
)
def test_malformed_login_bodies_are_422(api: httpx.Client, payload: object) -> None:
    r = api.post("/api/auth/login", json=payload)
    assert r.status_code == 422


def test_non_json_body_is_422(api: httpx.Client) -> None:
    r = api.post(
        "/api/auth/login",
        content=b"username=admin&password=x",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 422


def test_repeated_failures_are_rate_limited_per_username_and_ip(api: httpx.Client) -> None:
    username = "brute-" + secrets.token_hex(4)
    codes = [login(api, username, f"guess-{i}").status_code for i in range(5)]
    assert codes == [401] * 5
    blocked = login(api, username, "guess-5")
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 300
    assert blocked.json()["error"] == "too_many_attempts"
    # Other usernames from the same address are not locked out.
    assert login(api, username + "-other", "x").status_code == 401


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _clear(api: httpx.Client, token: str) -> httpx.Response:
    return api.post("/api/cache/clear", headers={"Authorization": f"Bearer {token}"})


def test_expired_token_is_refused(stack: Stack, api: httpx.Client) -> None:
    token = make_token(stack, expires_in=timedelta(minutes=-5))
    r = _clear(api, token)
    assert r.status_code == 401
    assert r.json()["detail"] == "token expired"


def test_tampered_tokens_are_refused(stack: Stack, api: httpx.Client, user_jwt: str) -> None:
    header, payload, signature = user_jwt.split(".")
    # 1. Signature altered.
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _clear(api, f"{header}.{payload}.{flipped}").status_code == 401
    # 2. Payload promoted to admin, original signature kept.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    assert _clear(api, f"{header}.{_b64(claims)}.{signature}").status_code == 401
    # 3. alg "none".
    none_header = _b64({"alg": "none", "typ": "JWT"})
    assert _clear(api, f"{none_header}.{_b64(claims)}.").status_code == 401
    # 4. Signed with another key.
    assert (
        _clear(api, make_token(stack, secret="another-secret-of-32-characters!")).status_code == 401
    )
    # 5. Another issuer.
    assert _clear(api, make_token(stack, issuer="someone-else")).status_code == 401


def test_a_token_we_sign_ourselves_with_the_real_key_works(stack: Stack, api: httpx.Client) -> None:
    """The flip side of the tests above: the checks accept a correctly signed admin token."""
    assert _clear(api, make_token(stack)).status_code == 200
