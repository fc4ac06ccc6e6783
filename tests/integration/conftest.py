"""Fixtures shared by the integration tiers that talk to the stack as its
users do: the API through nginx on 127.0.0.1, and Redis through its socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import Stack


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def rds(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
