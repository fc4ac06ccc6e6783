"""POST /api/cache/clear: admin only, clears cache keys and nothing else."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
import redis

from platform_services.api.schemas import CacheClearBody
from platform_services.providers import keys
from tests.conftest import Stack

pytestmark = pytest.mark.stack


@pytest.fixture
def planted(rds: redis.Redis) -> Iterator[dict[str, list[str]]]:
    """Cache keys that must go, and look-alike keys that must stay."""
    tag = secrets.token_hex(4)
    doomed = [f"{keys.CACHE_PREFIX}test:{tag}:{i}" for i in range(25)]
    kept = [f"cachetest:{tag}", f"cache{tag}", f"x:{keys.CACHE_PREFIX}{tag}"]
    for k in doomed + kept:
        rds.set(k, "1", ex=300)
    try:
        yield {"doomed": doomed, "kept": kept}
    finally:
        rds.delete(*doomed, *kept)


def _clear(api: httpx.Client, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return api.post("/api/cache/clear", headers=headers)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Bearer wrong-token-0123456789abcdef", 401),
        ("Basic YWRtaW46YWRtaW4=", 401),
        ("Bearer not.a.jwt", 401),
    ],
)
def test_missing_or_invalid_credentials_are_401_and_clear_nothing(
    api: httpx.Client,
    rds: redis.Redis,
    planted: dict[str, list[str]],
    authorization: str | None,
    status: int,
) -> None:
    r = _clear(api, authorization)
    assert r.status_code == status
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert rds.exists(*planted["doomed"]) == len(planted["doomed"])


def test_wrong_static_token_close_to_the_real_one_is_401(
    stack: Stack, api: httpx.Client, rds: redis.Redis, planted: dict[str, list[str]]
) -> None:
    real = stack.env["ADMIN_TOKEN"]
    for wrong in (real[:-1], real + "x", real.upper() if real.upper() != real else real.lower()):
        assert _clear(api, f"Bearer {wrong}").status_code == 401
    assert rds.exists(*planted["doomed"]) == len(planted["doomed"])


def test_non_admin_jwt_is_403_and_clears_nothing(
    api: httpx.Client, rds: redis.Redis, planted: dict[str, list[str]], user_jwt: str
) -> None:
    r = _clear(api, f"Bearer {user_jwt}")
    assert r.status_code == 403
    assert r.json()["detail"] == "admin role required"
    assert rds.exists(*planted["doomed"]) == len(planted["doomed"])


def _quota_and_stats(rds: redis.Redis) -> dict[str, str]:
    """Quota and statistics keys that will not expire in the next 30 s on their own."""
    found = {}
    for pattern in (f"{keys.QUOTA_PREFIX}*", f"{keys.STATS_PREFIX}*"):
        for k in rds.scan_iter(match=pattern, count=1000):
            ttl = rds.ttl(k)
            if ttl == -1 or ttl > 30:
                found[k] = rds.get(k)
    return found


@pytest.mark.parametrize("credential", ["static-token", "admin-jwt"])
def test_admin_clears_cache_keys_only(
    stack: Stack,
    api: httpx.Client,
    rds: redis.Redis,
    planted: dict[str, list[str]],
    admin_jwt: str,
    credential: str,
) -> None:
    # A quota counter of a window of our own, so a concurrent call cannot change it.
    quota_key = keys.quota_key("polygon", "minute", 1)
    rds.set(quota_key, "3", ex=300)
    rds.set(keys.EMERGENCY_KEY + ":probe-not-the-real-key", "1", ex=300)
    before = _quota_and_stats(rds)
    assert before, "expected quota and statistics keys in a running stack"
    token = stack.env["ADMIN_TOKEN"] if credential == "static-token" else admin_jwt
    try:
        r = _clear(api, f"Bearer {token}")
        assert r.status_code == 200, r.text
        body = CacheClearBody.model_validate(r.json())
        assert body.cleared >= len(planted["doomed"])
        assert rds.exists(*planted["doomed"]) == 0
        assert rds.exists(*planted["kept"]) == len(planted["kept"])
        after = _quota_and_stats(rds)
        # Every quota and statistics key is still there, and no counter went down.
        assert set(before) <= set(after)
        assert rds.get(quota_key) == "3"
        assert rds.exists(keys.EMERGENCY_KEY + ":probe-not-the-real-key") == 1
    finally:
        rds.delete(quota_key, keys.EMERGENCY_KEY + ":probe-not-the-real-key")


def test_body_over_the_limit_is_413_before_anything_is_cleared(
    stack: Stack, api: httpx.Client, rds: redis.Redis, planted: dict[str, list[str]]
) -> None:
    r = api.post(
        "/api/cache/clear",
        headers={"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"},
        content=b"x" * (32 * 1024),
    )
    assert r.status_code == 413
    assert rds.exists(*planted["doomed"]) == len(planted["doomed"])
