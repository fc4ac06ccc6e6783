"""The price stream (/api/ws/prices) through the real nginx, and the runbook's
two test scripts (websocket_test.sh, pipeline_test.sh), green and broken.

Prices are made to land the way they do in production: a symbol's cache entry
is deleted (``cache:`` keys are disposable) and then the API's lookup or the
worker's own cycle fetches it from market-sim, caches and publishes it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from platform_services.providers import keys
from tests.conftest import Stack
from tests.integration.platform.pf_helpers import container_health, docker_exec, wait_for

pytestmark = pytest.mark.stack

UPDATE_BOUND_S = 30.0
"""Longest wait for a price that was made to land (it takes well under a second)."""


def ws_url(stack: Stack, symbols: str, path: str = "/api/ws/prices") -> str:
    return f"ws://127.0.0.1:{stack.http_port}{path}?symbols={symbols}"


def recv_json(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def wait_price(
    ws: ClientConnection, symbol: str, bound_s: float = UPDATE_BOUND_S
) -> dict[str, Any]:
    """The next ``price`` message for ``symbol`` (heartbeats and others skipped)."""
    deadline = time.monotonic() + bound_s
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = recv_json(ws, left)
        except TimeoutError:
            break
        seen.append(message.get("type", "?"))
        if message.get("type") == "price" and message["quote"]["symbol"] == symbol:
            quote: dict[str, Any] = message["quote"]
            return quote
    raise AssertionError(f"no price for {symbol} within {bound_s} s (messages seen: {seen})")


def land_by_lookup(api: httpx.Client, rds: redis.Redis, symbol: str) -> dict[str, Any]:
    """A fresh quote of ``symbol`` fetched by the API (cache entry deleted first)."""
    rds.delete(keys.price_cache_key(symbol))
    r = api.get("/api/stocks/prices", params={"symbols": symbol})
    assert r.status_code == 200, r.text
    assert r.json()["sources"] == {"provider": 1}, r.json()
    entry: dict[str, Any] = r.json()["prices"][0]
    return entry


def worker_cycle(stack: Stack, rds: redis.Redis) -> dict[str, Any]:
    """One cycle of the worker's own code (``--once``), retried while the
    running worker holds the cycle lock (bounded)."""
    deadline = time.monotonic() + 90
    while True:
        proc = docker_exec(
            stack.container("worker"), "python3", "-m", "platform_services.worker", "--once"
        )
        assert proc.returncode == 0, proc.stderr[-800:]
        summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        if "skipped" not in summary:
            return summary
        assert time.monotonic() < deadline, f"cycle lock never free: {summary}"
        time.sleep(0.5)


def run_script(stack: Stack, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(stack.repo / "scripts" / "testing" / name), *args],
        env=stack.proc_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def metric(stack: Stack, name: str, labels: str = "") -> float:
    text = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def wait_healthy(stack: Stack, service: str) -> None:
    wait_for(
        lambda: container_health(stack.container(service)) == "healthy",
        deadline_s=120,
        what=f"{service} healthy",
    )


# --- the stream ----------------------------------------------------------------------------


def test_snapshot_then_a_live_update_through_nginx(
    stack: Stack, api: httpx.Client, rds: redis.Redis
) -> None:
    with connect(ws_url(stack, "MSFT,AAPL"), open_timeout=10) as ws:
        snapshot = recv_json(ws, 10)
        assert snapshot["type"] == "snapshot"
        assert snapshot["symbols"] == ["MSFT", "AAPL"]
        assert snapshot["colour"] == stack.deploy_env()["ACTIVE_COLOUR"]
        assert {q["symbol"] for q in snapshot["quotes"]} | set(snapshot["missing"]) == {
            "MSFT",
            "AAPL",
        }
        fresh = land_by_lookup(api, rds, "MSFT")
        update = wait_price(ws, "MSFT")
    assert (update["price"], update["as_of"]) == (fresh["price"], fresh["as_of"])
    assert update["source"] == "provider"
    assert update["published_at"]  # when it was cached: the latency's origin


def test_the_workers_cycle_reaches_the_stream(stack: Stack, rds: redis.Redis) -> None:
    with connect(ws_url(stack, "GOOGL"), open_timeout=10) as ws:
        assert recv_json(ws, 10)["type"] == "snapshot"
        rds.delete(keys.price_cache_key("GOOGL"))
        summary = worker_cycle(stack, rds)
        assert "GOOGL" not in summary["unavailable"], summary
        update = wait_price(ws, "GOOGL")
    cached = json.loads(rds.get(keys.price_cache_key("GOOGL")) or "{}")
    assert (update["price"], update["as_of"]) == (cached["price"], cached["as_of"])


def test_snapshot_falls_back_to_the_stored_price(stack: Stack, rds: redis.Redis) -> None:
    """No cache entry: the last stored price, marked stale; no provider call."""
    worker_cycle(stack, rds)  # the watchlist has rows in the hypertable
    rds.delete(keys.price_cache_key("AMZN"))
    with connect(ws_url(stack, "AMZN"), open_timeout=10) as ws:
        snapshot = recv_json(ws, 10)
    assert snapshot["missing"] == []
    (quote,) = snapshot["quotes"]
    assert (quote["symbol"], quote["source"], quote["stale"]) == ("AMZN", "database", True)


@pytest.mark.parametrize(
    ("symbols", "headers", "status", "error"),
    [
        ("aapl", {}, 422, "invalid_symbols"),
        ("AAPL,,MSFT", {}, 422, "invalid_symbols"),
        ("AAPL", {"Origin": "http://evil.example"}, 403, "origin_not_allowed"),
    ],
)
def test_refused_at_the_handshake_with_the_apis_error(
    stack: Stack, symbols: str, headers: dict[str, str], status: int, error: str
) -> None:
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(stack, symbols), additional_headers=headers, open_timeout=10)
    response = caught.value.response
    assert response.status_code == status
    assert json.loads(response.body or b"{}")["error"] == error


def test_heartbeats_and_metrics(stack: Stack) -> None:
    sent_before = metric(stack, "investment_ws_messages_total", '{type="snapshot"}')
    with connect(ws_url(stack, "NVDA"), open_timeout=10) as ws:
        snapshot = recv_json(ws, 10)
        assert metric(stack, "investment_ws_connections") >= 1
        assert metric(stack, "investment_ws_feed_up") == 1
        assert metric(stack, "investment_ws_messages_total", '{type="snapshot"}') > sent_before
        bound = snapshot["heartbeat_s"] + 10
        deadline = time.monotonic() + bound
        kinds: list[str] = []
        while "heartbeat" not in kinds:
            left = deadline - time.monotonic()
            assert left > 0, f"no heartbeat within {bound} s (seen {kinds})"
            kinds.append(recv_json(ws, left)["type"])


# --- the runbook's scripts ------------------------------------------------------------------


def test_websocket_test_script_passes(stack: Stack) -> None:
    proc = run_script(stack, "websocket_test.sh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("handshake", "snapshot", "trigger", "update", "close"):
        assert f"ok [{stage}]" in proc.stdout
    assert "all stages passed" in proc.stdout


def test_pipeline_test_script_passes(stack: Stack) -> None:
    proc = run_script(stack, "pipeline_test.sh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("ingest", "hypertable", "api", "cache"):
        assert f"ok [{stage}]" in proc.stdout
    assert "all stages passed" in proc.stdout


def test_websocket_test_names_the_handshake_when_nothing_listens(stack: Stack) -> None:
    proc = subprocess.run(
        ["bash", str(stack.repo / "scripts" / "testing" / "websocket_test.sh")],
        env=stack.proc_env(HTTP_PORT="1"),  # nothing listens on port 1
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "FAIL [handshake]" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- broken on purpose, then restored ---------------------------------------------------------


def test_a_hand_off_closes_the_colours_streams_with_1012(stack: Stack) -> None:
    """What a deploy asks of a container it drains: ``POST
    /direct/<colour>/api/streams/hand-off`` with the admin token closes that
    colour's streams with 1012 (reconnect); without the token, 401 and the
    stream stays open."""
    active = stack.deploy_env()["ACTIVE_COLOUR"]
    url = f"{stack.base_url}/direct/{active}/api/streams/hand-off"
    with connect(
        ws_url(stack, "AAPL", path=f"/direct/{active}/api/ws/prices"), open_timeout=10
    ) as ws:
        assert recv_json(ws, 10)["type"] == "snapshot"
        refused = httpx.post(url, timeout=10)
        assert refused.status_code == 401, refused.text
        assert ws.ping().wait(10), "the stream closed without a token"
        told = httpx.post(
            url, headers={"Authorization": f"Bearer {stack.env['ADMIN_TOKEN']}"}, timeout=10
        )
        assert told.status_code == 200, told.text
        assert told.json()["handed_off"] >= 1
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # bounded by the recv timeout
                recv_json(ws, 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


@pytest.mark.destructive
def test_a_stopped_colour_closes_its_streams_and_nginx_takes_the_client_on(stack: Stack) -> None:
    active = stack.deploy_env()["ACTIVE_COLOUR"]
    idle = "green" if active == "blue" else "blue"
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", stack.container(f"backend_{idle}")],
        capture_output=True,
        text=True,
        check=False,
    )
    was_running = state.stdout.strip() == "true"
    for dependency in ("db", "redis"):  # `compose start` waits on their health
        wait_healthy(stack, dependency)
    if not was_running:
        stack.compose("start", f"backend_{idle}")
    try:
        wait_healthy(stack, f"backend_{idle}")
        with connect(
            ws_url(stack, "AAPL", path=f"/direct/{idle}/api/ws/prices"), open_timeout=10
        ) as ws:
            assert recv_json(ws, 10)["colour"] == idle
            stack.compose("stop", f"backend_{idle}")
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # heartbeats until the close (bounded by the recv timeout)
                    recv_json(ws, 30)
        assert closed.value.rcvd is not None, "dropped without a close frame"
        assert closed.value.rcvd.code == 1012  # service restart: reconnect
        with connect(ws_url(stack, "AAPL"), open_timeout=10) as ws:
            assert recv_json(ws, 10)["colour"] == active
    finally:
        if was_running:
            stack.compose("start", f"backend_{idle}")
            wait_healthy(stack, f"backend_{idle}")
        else:
            stack.compose("stop", f"backend_{idle}")


@pytest.mark.destructive
def test_pipeline_test_names_ingest_when_the_worker_is_stopped(stack: Stack) -> None:
    for dependency in ("db", "redis"):
        wait_healthy(stack, dependency)
    stack.compose("stop", "worker")
    try:
        proc = run_script(stack, "pipeline_test.sh")
    finally:
        stack.compose("start", "worker")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL [ingest]" in proc.stderr and "not running" in proc.stderr, proc.stderr
    assert "ok [" not in proc.stdout
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


@pytest.mark.destructive
def test_both_scripts_name_their_stage_when_market_sim_is_stopped(stack: Stack) -> None:
    stack.compose("stop", "market-sim")
    try:
        pipeline = run_script(stack, "pipeline_test.sh")
        websocket = run_script(stack, "websocket_test.sh", "--timeout", "10")
    finally:
        stack.compose("start", "market-sim")
        wait_healthy(stack, "market-sim")
    assert pipeline.returncode == 1, pipeline.stdout + pipeline.stderr
    assert "FAIL [ingest]" in pipeline.stderr, pipeline.stderr
    assert "got no quote for AAPL: finnhub unavailable" in pipeline.stderr, pipeline.stderr
    assert websocket.returncode == 1, websocket.stdout + websocket.stderr
    assert "ok [snapshot]" in websocket.stdout
    assert "FAIL [update]: no price update within 10 s" in websocket.stderr, websocket.stderr
    for proc in (pipeline, websocket):
        assert "Traceback" not in proc.stderr
