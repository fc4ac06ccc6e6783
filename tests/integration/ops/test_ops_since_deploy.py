"""Since the deploy, against the real stack: a deploy snapshots
pg_stat_statements, a statement made slow on purpose after it is listed as
slower, a statement first run after it as new, and the Prometheus side
compares endpoints and services before and after.

The statements run over the stack's socket with asyncpg, the way the console
connects (``Settings.for_stack``). pg_stat_statements normalises constants, so
``pg_sleep(0.001)`` before the deploy and ``pg_sleep(0.05)`` after it are one
statement (one queryid) that got 50 times slower. Both test statements' own
entries are reset first (``pg_stat_statements_reset(0, 0, queryid)``), so a
second run of this test starts from the same counters (the queryids come from
EXPLAIN VERBOSE).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from console.core.models import SinceDeploySnapshot
from console.core.since import since_deploy
from tests.fault_versions import Fault, build_fault_version
from tests.integration.ops.ops_helpers import (
    REPO,
    cli_env,
    health,
    record_figure,
    run_cli,
    wait_healthy,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

BASE = "v1.0.0"
VERSIONS = ("v1.1.0-since", "v1.1.1-since")
"""Two plain versions (the real backend, no fault): the test deploys the one not serving."""
SLOW = "SELECT pg_sleep($1), md5($2::text)"
NEW = "SELECT count(*), min(g), max(g) FROM generate_series($1::int, $2::int) AS g WHERE g % $3::int = 0"
FAST_S, SLOW_S = 0.001, 0.05
CALLS = 5


async def _connect(settings: Any) -> Any:
    password = settings.pg_password.get_secret_value() if settings.pg_password else None
    return await asyncpg.connect(
        dsn=settings.pg_dsn.get_secret_value(), password=password or None, timeout=10
    )


async def _queryid(conn: Any, sql: str, *args: Any) -> str:
    """The statement's queryid, as pg_stat_statements keys it (EXPLAIN VERBOSE
    names it; the text cannot: aliases are not part of it, constants are
    normalised, and the view keeps the first text it saw)."""
    plan = json.loads(await conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}", *args))
    return str(plan[0]["Query Identifier"])


async def _calls(conn: Any, queryid: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE queryid = $1::bigint",
            int(queryid),
        )
    )


async def _before_the_deploy(settings: Any) -> dict[str, str]:
    """Reset both statements' entries, then run the slow one fast, CALLS times."""
    conn = await _connect(settings)
    try:
        ids = {
            "slow": await _queryid(conn, SLOW, 0.0, "x"),
            "new": await _queryid(conn, NEW, 1, 10, 3),
        }
        for qid in ids.values():
            await conn.execute("SELECT pg_stat_statements_reset(0, 0, $1::bigint)", int(qid))
            assert await _calls(conn, qid) == 0
        for i in range(CALLS):
            await conn.fetch(SLOW, FAST_S, f"before {i}")
        assert await _calls(conn, ids["slow"]) == CALLS and await _calls(conn, ids["new"]) == 0
        return ids
    finally:
        await conn.close()


async def _after_the_deploy(settings: Any, ids: dict[str, str]) -> None:
    conn = await _connect(settings)
    try:
        for i in range(CALLS):
            await conn.fetch(SLOW, SLOW_S, f"after {i}")
        for n in (1000, 2000, 3000):
            await conn.fetch(NEW, 1, n, 7)
        assert await _calls(conn, ids["new"]) == 3
    finally:
        await conn.close()


def _traffic(stack: Any, n: int = 40) -> None:
    """A few requests through nginx to two endpoints (bounded)."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        for i in range(n):
            http.get("/api/health")
            if i % 4 == 0:
                http.get("/api/stocks/prices", params={"symbols": "AAPL"})


def _compared(snap: SinceDeploySnapshot, group: str, metric: str) -> list[str]:
    return [
        c.subject
        for c in snap.comparisons
        if c.group == group and c.metric == metric and c.before is not None and c.after is not None
    ]


def test_since_the_deploy_lists_the_slower_and_the_new_statements(stack: Any) -> None:
    settings = stack.settings()
    serving = wait_healthy(stack)
    version = VERSIONS[1] if serving["version"] == VERSIONS[0] else VERSIONS[0]
    build_fault_version(stack.backend_image, BASE, version, Fault())

    _traffic(stack)
    ids = asyncio.run(_before_the_deploy(settings))
    r = run_cli(
        stack, "deploy", "--version", version, "--services", "backend", "--bake-seconds", "4"
    )
    assert r.rc == 0, r.text()
    assert health(stack)["version"] == version

    # the snapshot, taken when the deploy started, before any of its steps
    steps = r.steps()
    assert steps[:2] == ["begin", "pgss"], r.text()
    snap_event = r.events[1]
    assert snap_event["status"] == "info", r.text()
    op_id = r.events[0]["data"]["op_id"]
    path = Path(snap_event["data"]["path"])
    assert path == Path(settings.state_dir) / "pgss" / f"{op_id}.json"
    record = json.loads(path.read_text())
    assert record["op"] == "deploy" and record["params"]["version"] == version
    assert record["count"] == len(record["all"]) and 0 < len(record["top"]) <= 200
    record_figure("since.snapshot_seconds", snap_event["data"]["seconds"])
    record_figure("since.snapshot_bytes", path.stat().st_size)
    record_figure("since.snapshot_statements", record["count"])

    asyncio.run(_after_the_deploy(settings, ids))
    _traffic(stack)

    # Prometheus needs scrapes after the deploy: wait (bounded) until the
    # comparisons have an endpoint and the backend on both sides
    deadline = time.monotonic() + 120
    while True:
        t0 = time.monotonic()
        snap = asyncio.run(since_deploy(settings))
        took = time.monotonic() - t0
        backends = [s for s in _compared(snap, "service", "cpu") if s.startswith("backend_")]
        if (_compared(snap, "endpoint", "p95") and backends) or time.monotonic() > deadline:
            break
        _traffic(stack, 8)
        time.sleep(5)
    record_figure("since.since_deploy_seconds", round(took, 3))

    assert snap.deploy is not None and snap.deploy.op_id == op_id, snap.warnings
    assert snap.statements_snapshot_at is not None
    slower = {s.queryid: s for s in snap.slower}
    assert ids["slow"] in slower, (ids, snap.slower[:5], snap.warnings)
    s = slower[ids["slow"]]
    assert s.calls_before == CALLS and s.calls_after == CALLS
    assert s.ratio is not None and s.ratio > 10, s
    assert s.mean_ms_after is not None and s.mean_ms_after >= SLOW_S * 1000
    new = {n.queryid: n for n in snap.new_statements}
    assert ids["new"] in new and new[ids["new"]].calls_after == 3, snap.new_statements[:5]
    assert ids["slow"] not in new and ids["new"] not in slower

    assert "GET /api/health" in _compared(snap, "endpoint", "p95"), snap.comparisons
    assert _compared(snap, "endpoint", "error rate"), snap.comparisons
    for metric in ("cpu", "memory"):
        compared = _compared(snap, "service", metric)
        assert any(s.startswith("backend_") for s in compared), (metric, snap.comparisons)
        assert "db" in compared, (metric, compared)
    assert not any(w.startswith("no Prometheus") for w in snap.warnings), snap.warnings

    # the CLI shows the same, as a table and as one JSON object
    table = run_cli(stack, "since-deploy")  # run_cli asks for --json
    assert table.rc == 0, table.stderr
    shown = SinceDeploySnapshot.model_validate_json(table.stdout.strip().splitlines()[-1])
    assert shown.deploy is not None and shown.deploy.op_id == op_id
    assert ids["slow"] in {c.queryid for c in shown.slower}
    text = subprocess.run(
        stack.cli_argv("since-deploy", json_output=False),
        env=cli_env(stack),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert text.returncode == 0, text.stderr
    assert f"since the deploy {op_id}" in text.stdout and "slower statements" in text.stdout
    assert "SELECT pg_sleep($1), md5($2::text)" in text.stdout and "GET /api/health" in text.stdout
