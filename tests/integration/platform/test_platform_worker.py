"""The ingestion worker: heartbeat, health check, quota discipline, scale to 0."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import redis

from platform_services.providers import keys
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import container_health, docker_exec, wait_for

pytestmark = pytest.mark.stack


def test_heartbeat_is_fresh_and_the_health_check_passes(stack: Stack, rds: redis.Redis) -> None:
    raw = rds.get(keys.WORKER_HEARTBEAT_KEY)
    assert raw is not None
    beat = json.loads(raw)
    assert time.time() - beat["epoch"] < 60
    assert beat["watchlist"]
    proc = docker_exec(
        stack.container("worker"), "python3", "-m", "platform_services.worker", "--check"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("healthy")


def test_worker_ingests_the_watchlist_into_the_hypertable(stack: Stack) -> None:
    from tests.integration.platform.pf_helpers import price_rows

    watchlist = stack.env.get("WATCHLIST", "AAPL,MSFT,GOOGL,AMZN,NVDA").split(",")
    assert price_rows(stack, watchlist) >= 1


def test_a_cycle_under_the_emergency_key_makes_no_call(
    stack: Stack, rds: redis.Redis, emergency: None
) -> None:
    for symbol in stack.env.get("WATCHLIST", "AAPL,MSFT,GOOGL,AMZN,NVDA").split(","):
        rds.delete(keys.price_cache_key(symbol))  # so the cycle would have to call
    # The running worker may hold the cycle lock (its cycle takes seconds): wait
    # for the lock to be free, and try again should the running worker take it
    # between the check and our cycle. Bounded well inside the emergency key's
    # 120 s, so the cycle below still runs under it.
    bound_s = 90
    deadline = time.monotonic() + bound_s
    skipped: list[str] = []
    while True:
        if not rds.exists(keys.WORKER_LOCK_KEY):
            proc = docker_exec(
                stack.container("worker"), "python3", "-m", "platform_services.worker", "--once"
            )
            assert proc.returncode == 0, proc.stderr[-800:]
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
            if "skipped" not in summary:
                break
            skipped.append(summary["skipped"])
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the worker's cycle lock ({keys.WORKER_LOCK_KEY}) was never free for a cycle "
                f"within {bound_s} s (ttl now {rds.ttl(keys.WORKER_LOCK_KEY)} s; cycles "
                f"skipped: {len(skipped)}): a cycle never ended or never released it"
            )
        time.sleep(0.5)
    assert rds.exists(keys.EMERGENCY_KEY), "the emergency key expired before the cycle ran"
    assert summary["emergency_rate_limit"] is True
    assert summary["fetched"] == 0


def test_the_check_fails_without_a_heartbeat(stack: Stack) -> None:
    """--check reads the key; against a Redis database without it, it fails."""
    proc = docker_exec(
        stack.container("worker"),
        "sh",
        "-c",
        'REDIS_URL="${REDIS_URL%/0}/15" python3 -m platform_services.worker --check',
    )
    assert proc.returncode == 1
    assert "no heartbeat" in proc.stderr


@pytest.mark.destructive
def test_stack_stays_healthy_with_the_worker_scaled_to_zero(
    stack: Stack, api: httpx.Client
) -> None:
    for dependency in ("db", "redis"):  # `compose start` waits on their health
        wait_for(
            lambda d=dependency: container_health(stack.container(d)) == "healthy",
            deadline_s=120,
            what=f"{dependency} healthy",
        )
    stack.compose("stop", "worker")
    try:
        assert api.get("/api/health").status_code == 200
        r = api.get("/api/stocks/prices", params={"symbols": "AAPL"})
        assert r.status_code == 200
    finally:
        stack.compose("start", "worker")
    wait_for(
        lambda: (
            docker_exec(
                stack.container("worker"), "python3", "-m", "platform_services.worker", "--check"
            ).returncode
            == 0
        ),
        deadline_s=60,
        what="worker heartbeat back",
    )
