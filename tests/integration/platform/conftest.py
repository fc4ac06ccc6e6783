"""Fixtures of the platform API tests (helpers live in pf_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from platform_services.providers import keys
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import login


@pytest.fixture
def emergency(rds: redis.Redis) -> Iterator[None]:
    """The emergency rate-limit switch on for the test (two minutes at most)."""
    rds.set(keys.EMERGENCY_KEY, "1", ex=120)
    try:
        yield
    finally:
        rds.delete(keys.EMERGENCY_KEY)


@pytest.fixture(scope="session")
def admin_jwt(stack: Stack, api: httpx.Client) -> str:
    r = login(api, stack.env.get("ADMIN_USERNAME", "admin"), stack.env["ADMIN_PASSWORD"])
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture(scope="session")
def user_jwt(stack: Stack, api: httpx.Client) -> str:
    r = login(api, stack.env.get("TEST_USERNAME", "test"), stack.env["TEST_PASSWORD"])
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token
