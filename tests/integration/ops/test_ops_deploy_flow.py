"""Deploys and rollbacks against the real stack, under load.

One ordered story (the tests depend on each other's end state, so they run
in file order): v1 -> v2 blue-green under load; the plain in-place recreate
for comparison; a broken v3 never served; a bake failure switched back;
rollback to the previous colour when it is not running; a deploy with the
worker, then a rollback to the previous colour it kept warm (traffic back
before the worker moves); a deploy with keep_previous_colour off and a
rollback restoring the database; two concurrent deploys; deploys killed
halfway and recovered; back to v1.

Timings are recorded as figures (``ops_helpers.record_figure``), never
asserted.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.ops.ops_helpers import (
    cli_env,
    deploy_load,
    health,
    read_events_until,
    record_figure,
    run_cli,
    start_cli,
    wait_healthy,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

V2 = "v2.0.0-opstest"
V3_BROKEN = "v3.0.0-opstest.broken"
V3_SLOW = "v3.0.1-opstest"
V4 = "v4.0.0-opstest"
BAKE = "4"
PROBE_TABLE = "stackdeck_ops_restore_probe"

_state: dict[str, Any] = {}


def _history(stack: Any) -> list[dict[str, Any]]:
    path = stack.state_dir / "history.jsonl"
    return (
        [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    )


def _status(stack: Any) -> dict[str, Any]:
    r = run_cli(stack, "status")
    assert r.rc == 0, r.stderr
    return dict(json.loads(r.stdout))


def _container_state(stack: Any, service: str) -> str:
    r = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", stack.container(service)],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() or "missing"


def _container_started(stack: Any, service: str) -> str:
    """When the container last started (changes with every start)."""
    r = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", stack.container(service)],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip()


def _container_version(stack: Any, service: str) -> str:
    r = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            '{{index .Config.Labels "com.investment.version"}}',
            stack.container(service),
        ],
        capture_output=True,
        text=True,
    )
    return r.stdout.strip()


def _event_at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def _assert_previous_colour_kept_warm(stack: Any, r: Any, colour: str, version: str) -> None:
    """After a deploy: the previous colour runs, healthy, out of the upstream,
    and status, deploy.env and the events say so."""
    assert _container_state(stack, f"backend_{colour}") == "running"
    assert any(e["step"] == "keep-old" and e["status"] == "ok" for e in r.events), r.text()
    assert not any(e["step"] == "stop-old" for e in r.events), r.text()
    direct = httpx.get(f"{stack.base_url}/direct/{colour}/api/health", timeout=10)
    assert direct.status_code == 200 and direct.json()["version"] == version
    stack.reload_env()
    assert stack.env[f"{colour.upper()}_VERSION"] == version
    assert stack.env["ACTIVE_COLOUR"] != colour
    st = _status(stack)
    assert st["colours"][colour]["state"] == "running" and not st["colours"][colour]["serving"]
    assert (
        f"{colour} {version} running, out of the upstream: instant rollback target" in st["summary"]
    ), st["summary"]


def _pg(stack: Any, *sql: str) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(stack.pg_dsn)
        try:
            out = []
            for statement in sql:
                out.append(await conn.fetch(statement))
            return out
        finally:
            await conn.close()

    return asyncio.run(go())


def test_01_blue_green_v1_to_v2_under_load(stack: Any) -> None:
    base = wait_healthy(stack)
    if base["version"] in (V2, V3_SLOW, V4):  # left by an earlier run of this story
        r = run_cli(stack, "rollback", "--version", "v1.0.0", "--force")
        assert r.rc == 0, r.text()
        base = wait_healthy(stack)
    _state["base"] = base["version"]
    with deploy_load(stack) as load:
        r = run_cli(
            stack,
            "deploy",
            "--version",
            V2,
            "--build",
            "--services",
            "backend",
            "--bake-seconds",
            BAKE,
        )
    assert r.rc == 0, r.text()
    assert r.final["status"] == "done"
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == V2
    versions = load.result().versions()
    assert versions.get(V2, 0) > 0
    # after the switch was confirmed, nothing but v2 answered
    switched = next(e for e in r.events if e["step"] == "switch" and e["status"] == "ok")
    after = load.result().answers_since(switched["at"])
    assert set(after) == {V2} and after[V2] > 10, (after, load.result().summary())
    last = _history(stack)[-1]
    assert last["op"] == "deploy" and last["version"] == V2 and last["result"] == "ok"
    assert last["image_digest"].startswith("sha256:") and last["schema_revision"]
    assert last["user"] and last["colour"] != last["from_colour"]
    # the old colour keeps running, out of the upstream: the instant rollback target
    _assert_previous_colour_kept_warm(stack, r, last["from_colour"], _state["base"])
    record_figure(
        "blue_green_deploy",
        {
            "duration_s": r.final["data"]["duration_s"],
            "cli_s": round(r.seconds, 1),
            "load": load.result().summary(),
        },
    )


def test_02_plain_force_recreate_for_comparison(stack: Any) -> None:
    serving = health(stack)["colour"]
    with deploy_load(stack) as load:
        time.sleep(1)
        t0 = time.monotonic()
        stack.compose("up", "-d", "--force-recreate", "--no-deps", f"backend_{serving}")
        wait_healthy(stack)
        recreate_s = time.monotonic() - t0
        time.sleep(2)
    failed = load.result().failed()
    window = (max(s.t for s in failed) - min(s.t for s in failed)) if failed else 0.0
    record_figure(
        "plain_force_recreate",
        {
            "recreate_s": round(recreate_s, 1),
            "failed_window_s": round(window, 1),
            "load": load.result().summary(),
        },
    )
    assert load.samples  # the loop ran; failures here are the point of the comparison
    assert health(stack)["version"] == V2


def _build_broken(image: str, base: str) -> None:
    dockerfile = f"""
FROM {image}:{base}
# compose's own health check (curl .../api/health) overrides an image HEALTHCHECK,
# so curl itself fails here: whichever check runs, it reports unhealthy,
# while the app itself would answer normally.
USER root
RUN printf '#!/bin/sh\\nexit 7\\n' > /usr/local/bin/curl && chmod 0755 /usr/local/bin/curl
USER app
ENV APP_VERSION={V3_BROKEN}
LABEL com.investment.version={V3_BROKEN}
HEALTHCHECK --interval=2s --timeout=2s --retries=2 CMD false
"""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Dockerfile").write_text(dockerfile)
        subprocess.run(
            ["docker", "build", "-q", "-t", f"{image}:{V3_BROKEN}", tmp],
            check=True,
            capture_output=True,
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )


def test_03_broken_v3_is_never_served(stack: Any) -> None:
    _build_broken(stack.backend_image, V2)
    before = health(stack)
    idle = "green" if before["colour"] == "blue" else "blue"
    with deploy_load(stack) as load:
        r = run_cli(
            stack, "deploy", "--version", V3_BROKEN, "--services", "backend", "--bake-seconds", BAKE
        )
        time.sleep(1)  # a moment after the command: still nothing from v3
    assert r.rc == 1, r.text()
    assert "health check" in r.final["message"] and "never left" in r.final["message"], r.final[
        "message"
    ]
    load.result().assert_clean(reloads=0)
    assert V3_BROKEN not in load.result().versions(), load.result().summary()
    assert health(stack)["version"] == V2
    last = _history(stack)[-1]
    assert last["version"] == V3_BROKEN and last["result"] == "failed"
    assert "wait-healthy" in last["reason"] and "health check" in last["reason"]
    # the idle colour is stopped and its slot holds the version it had before
    assert _container_state(stack, f"backend_{idle}") in ("exited", "created")
    stack.reload_env()
    assert stack.env[f"{idle.upper()}_VERSION"] == _state["base"]


def test_04_bake_failure_switches_back(stack: Any) -> None:
    with deploy_load(stack) as load:
        r = run_cli(
            stack,
            "deploy",
            "--version",
            V3_SLOW,
            "--build",
            "--services",
            "backend",
            "--bake-seconds",
            BAKE,
            "--max-p95-ms",
            "0.001",  # no real request is that fast: the bake must fail
        )
        done_at = time.monotonic()
        time.sleep(2)
    assert r.rc == 1, r.text()
    msg = r.final["message"]
    assert "bake window failed" in msg and "p95 latency" in msg and "switched back" in msg, msg
    assert [
        e["step"] for e in r.events if e["step"] == "switch" and e["status"] == "ok"
    ]  # it was switched to
    load.result().assert_clean(reloads=2)
    assert set(load.result().versions(since=done_at)) == {V2}, load.result().summary()
    assert health(stack)["version"] == V2
    last = _history(stack)[-1]
    assert (
        last["version"] == V3_SLOW and last["result"] == "rolled-back" and "p95" in last["reason"]
    )


def test_05_rollback_to_previous_colour_under_load(stack: Any) -> None:
    """The failed deploys of v3 stopped the previous colour (their undo puts
    its slot back, stopped): the rollback starts it and waits for it."""
    base = _state["base"]
    serving = health(stack)["colour"]
    idle = "green" if serving == "blue" else "blue"
    assert _container_state(stack, f"backend_{idle}") in ("exited", "created")
    with deploy_load(stack) as load:
        r = run_cli(stack, "rollback", "--force")
    assert r.rc == 0, r.text()
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == base
    prepare = next(e for e in r.events if e["step"] == "prepare")
    assert prepare["data"]["warm"] is False, r.text()
    assert any(e["step"] == "start" and e["status"] == "start" for e in r.events), r.text()
    switch = next(e for e in r.events if e["step"] == "switch" and e["status"] == "ok")
    assert switch["message"].startswith(f"traffic back on {idle} ({base})"), switch
    last = _history(stack)[-1]
    assert last["op"] == "rollback" and last["version"] == base and last["result"] == "ok"
    assert any(e["step"] == "verify" and "schema version" in e["message"] for e in r.events)
    record_figure(
        "rollback_previous_colour",
        {
            "duration_s": r.final["data"]["duration_s"],
            "until_switched_s": switch["data"]["seconds"],
            "load": load.result().summary(),
        },
    )


def test_05b_rollback_to_the_warm_previous_colour_before_the_worker(stack: Any) -> None:
    """A deploy of backend and worker keeps the previous colour running; the
    rollback checks it, switches nginx, says traffic is back, and only then
    moves the worker back."""
    base = _state["base"]
    before = health(stack)
    assert before["version"] == base
    stack.reload_env()
    assert stack.env["WORKER_VERSION"] == base
    with deploy_load(stack) as load:
        r = run_cli(stack, "deploy", "--version", V2, "--bake-seconds", BAKE)
    assert r.rc == 0, r.text()
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == V2
    _assert_previous_colour_kept_warm(stack, r, before["colour"], base)
    worker = [e for e in r.events if e["step"] == "worker"]
    assert worker and worker[-1]["status"] == "ok" and V2 in worker[-1]["message"], r.text()
    assert _container_version(stack, "worker") == V2
    assert stack.env["WORKER_VERSION"] == V2
    started = _container_started(stack, f"backend_{before['colour']}")
    deploy_worker_s = (_event_at(worker[-1]) - _event_at(worker[0])).total_seconds()

    with deploy_load(stack) as load:
        r = run_cli(stack, "rollback", "--force")
    assert r.rc == 0, r.text()
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == base and health(stack)["colour"] == before["colour"]
    prepare = next(e for e in r.events if e["step"] == "prepare")
    assert prepare["data"]["warm"] is True, r.text()
    # the kept colour was not (re)started: same container, same start time
    assert _container_started(stack, f"backend_{before['colour']}") == started
    assert not any(e["step"] == "start" and e["status"] == "start" for e in r.events), r.text()
    steps = [e["step"] for e in r.events]
    switch_i = next(
        i for i, e in enumerate(r.events) if e["step"] == "switch" and e["status"] == "ok"
    )
    switch = r.events[switch_i]
    assert switch["message"].startswith(f"traffic back on {before['colour']} ({base})"), switch
    # the worker moves back after traffic is back, never before
    worker_i = steps.index("worker")
    assert switch_i < worker_i, r.text()
    worker = [e for e in r.events if e["step"] == "worker"]
    assert _event_at(switch) <= _event_at(worker[0])
    assert worker[-1]["status"] == "ok" and base in worker[-1]["message"], r.text()
    assert _container_version(stack, "worker") == base
    stack.reload_env()
    assert stack.env["WORKER_VERSION"] == base and stack.env["ACTIVE_COLOUR"] == before["colour"]
    last = _history(stack)[-1]
    assert last["op"] == "rollback" and last["version"] == base and last["result"] == "ok"
    # the colour left (v2) is stopped, kept for a roll-forward
    assert _container_state(stack, f"backend_{last['from_colour']}") == "exited"
    record_figure(
        "rollback_warm_previous_colour",
        {
            "duration_s": r.final["data"]["duration_s"],
            "until_switched_s": switch["data"]["seconds"],
            "worker_s": round((_event_at(worker[-1]) - _event_at(worker[0])).total_seconds(), 1),
            "deploy_worker_s": round(deploy_worker_s, 1),
            "load": load.result().summary(),
        },
    )


def test_06_rollback_with_restore_db(stack: Any) -> None:
    _pg(
        stack,
        f"DROP TABLE IF EXISTS {PROBE_TABLE}",
        f"CREATE TABLE {PROBE_TABLE} (id int PRIMARY KEY, note text)",
        f"INSERT INTO {PROBE_TABLE} VALUES (1, 'before the backup')",
    )
    serving = health(stack)["colour"]
    r = run_cli(
        stack,
        "deploy",
        "--version",
        V2,
        "--services",
        "backend",
        "--bake-seconds",
        BAKE,
        "--backup",
        "always",
        env=cli_env(stack, STACKDECK_KEEP_PREVIOUS_COLOUR="false"),
    )
    assert r.rc == 0, r.text()
    # keep_previous_colour off: the previous colour is stopped after the bake
    assert any(e["step"] == "stop-old" and e["status"] == "ok" for e in r.events), r.text()
    assert not any(e["step"] == "keep-old" for e in r.events), r.text()
    assert _container_state(stack, f"backend_{serving}") == "exited"
    backup_id = r.final["data"]["backup_id"]
    assert backup_id and _history(stack)[-1]["backup_id"] == backup_id
    _pg(
        stack,
        f"INSERT INTO {PROBE_TABLE} VALUES (2, 'after the backup')",
        f"DELETE FROM {PROBE_TABLE} WHERE id = 1",
    )

    refused = run_cli(stack, "rollback", "--restore-db", "--confirm", "investment")
    assert refused.rc == 2 and "type the database name" in refused.final["message"]
    assert [tuple(x) for x in _pg(stack, f"SELECT id FROM {PROBE_TABLE} ORDER BY id")[0]] == [(2,)]

    r = run_cli(stack, "rollback", "--restore-db", "--confirm", "investment_db", "--force")
    assert r.rc == 0, r.text()
    rows = [tuple(x) for x in _pg(stack, f"SELECT id, note FROM {PROBE_TABLE} ORDER BY id")[0]]
    assert rows == [(1, "before the backup")]
    assert health(stack)["version"] == _state["base"]
    assert wait_healthy(stack)["checks"]["database"]["status"] == "healthy"
    last = _history(stack)[-1]
    assert (
        last["op"] == "rollback" and last["backup_id"] == backup_id and last["restore_db"] is True
    )
    dbs = _pg(stack, "SELECT datname FROM pg_database WHERE datname LIKE 'investment_db__%'")[0]
    assert list(dbs) == []  # no leftover copies
    _pg(stack, f"DROP TABLE IF EXISTS {PROBE_TABLE}")
    record_figure("rollback_with_restore_db", {"duration_s": r.final["data"]["duration_s"]})


def test_07_two_concurrent_deploys(stack: Any) -> None:
    first = start_cli(
        stack, "deploy", "--version", V2, "--services", "backend", "--bake-seconds", "8"
    )
    try:
        seen = read_events_until(first, lambda e: e["step"] == "start-idle")
        op_id = seen[0]["data"]["op_id"]
        second = run_cli(stack, "deploy", "--version", V2, "--services", "backend")
        assert second.rc == 3, second.text()
        msg = second.final["message"]
        assert "deploy lock is held by deploy by" in msg and f"pid {first.pid}" in msg, msg
        assert second.final["data"]["holder"]["op_id"] == op_id
        out, _ = first.communicate(timeout=600)
        assert first.returncode == 0, out[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert health(stack)["version"] == V2


def test_08_deploy_killed_before_switch_then_rollback_recovers(stack: Any) -> None:
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V4, "--build", "--services", "backend", "--bake-seconds", BAKE
    )
    read_events_until(proc, lambda e: e["step"] == "wait-healthy" and e["status"] == "start")
    proc.kill()
    proc.wait()
    st = _status(stack)
    dep = st["deploy"]
    assert dep["interrupted"] is True and dep["version"] == V4, dep
    assert dep["recovery"]["action"] == "abort"
    assert "interrupted at step 'wait-healthy'" in dep["recovery"]["explanation"]
    assert "Traffic never moved" in dep["recovery"]["explanation"]
    assert st["lock"]["stale"] is True
    assert any(line.startswith("INTERRUPTED") for line in st["summary"])
    assert health(stack)["version"] == serving["version"]  # traffic untouched

    refused = run_cli(stack, "rollback", "--force")
    assert refused.rc == 3 and "stale deploy lock" in refused.final["message"]
    assert run_cli(stack, "lock", "break").rc == 0
    r = run_cli(stack, "rollback", "--force")
    assert r.rc == 0, r.text()
    assert any(e["step"] == "recover" and e["status"] == "warn" for e in r.events)
    assert health(stack)["version"] == serving["version"]
    st = _status(stack)
    assert st["deploy"]["interrupted"] is False and st["deploy"]["status"] == "recovered"
    assert _container_state(stack, f"backend_{dep['to_colour']}") in ("exited", "created")
    interrupted = [h for h in _history(stack) if h.get("result") == "interrupted"]
    assert interrupted and interrupted[-1]["version"] == V4


def test_09_deploy_killed_during_bake_next_deploy_recovers(stack: Any) -> None:
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V4, "--services", "backend", "--bake-seconds", "300"
    )
    read_events_until(proc, lambda e: e["step"] == "bake" and e["status"] == "start")
    proc.kill()
    proc.wait()
    assert health(stack)["version"] == V4  # killed after the switch
    st = _status(stack)
    assert st["deploy"]["interrupted"] is True
    assert st["deploy"]["recovery"]["action"] == "switch-back", st["deploy"]
    assert run_cli(stack, "lock", "break").rc == 0
    with deploy_load(stack) as load:
        r = run_cli(
            stack, "deploy", "--version", V4, "--services", "backend", "--bake-seconds", BAKE
        )
    assert r.rc == 0, r.text()
    recover = [e for e in r.events if e["step"] == "recover"]
    assert recover and any(f"traffic on {serving['colour']}" in e["message"] for e in recover), (
        r.text()
    )
    load.result().assert_clean(reloads=2)
    assert health(stack)["version"] == V4


def test_09b_ctrl_c_during_bake_switches_back_and_releases_the_lock(stack: Any) -> None:
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V2, "--services", "backend", "--bake-seconds", "300"
    )
    read_events_until(proc, lambda e: e["step"] == "bake" and e["status"] == "start")
    assert health(stack)["version"] == V2
    proc.send_signal(signal.SIGINT)  # the operator's Ctrl-C
    proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert health(stack)["version"] == serving["version"]  # switched back
    st = _status(stack)
    assert st["lock"]["held"] is False and st["lock"]["stale"] is False
    assert st["deploy"]["status"] == "rolled-back" and st["deploy"]["interrupted"] is False
    last = _history(stack)[-1]
    assert (
        last["version"] == V2 and last["result"] == "rolled-back" and "cancelled" in last["reason"]
    )


def test_10_rollback_to_v1_by_version(stack: Any) -> None:
    base = _state["base"]
    with deploy_load(stack) as load:
        r = run_cli(stack, "rollback", "--version", base, "--force")
    assert r.rc == 0, r.text()
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == base
    record_figure(
        "rollback_to_version",
        {"duration_s": r.final["data"]["duration_s"], "load": load.result().summary()},
    )


def test_11_rolling_deploy_recreates_in_place(stack: Any) -> None:
    before = health(stack)
    with deploy_load(stack) as load:
        r = run_cli(
            stack, "deploy", "--strategy", "rolling", "--version", V2, "--services", "backend"
        )
    assert r.rc == 0, r.text()
    after = wait_healthy(stack)
    assert after["version"] == V2 and after["colour"] == before["colour"]  # same colour, in place
    last = _history(stack)[-1]
    assert last["strategy"] == "rolling" and last["result"] == "ok"
    record_figure(
        "rolling_deploy",
        {"duration_s": r.final["data"]["duration_s"], "load": load.result().summary()},
    )
    r = run_cli(stack, "rollback", "--version", _state["base"], "--force")
    assert r.rc == 0, r.text()
    assert health(stack)["version"] == _state["base"]
