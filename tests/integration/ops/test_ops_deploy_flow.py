"""Deploys and rollbacks against the real stack, under load.

The story, in file order: v1 -> v2 blue-green under load (its bake passes at
the tests' p95 threshold); the plain in-place recreate for comparison; a
broken v3 never served; a really slow v3 (a fault version adding
``SLOW_MS`` to every request) failing its bake on p95 latency and switched
back; rollback to the previous colour when it is not running; a deploy with
the worker, then a rollback to the previous colour it kept warm (traffic
back before the worker moves); a deploy with keep_previous_colour off and a
rollback restoring the database; two concurrent deploys; deploys killed
halfway and recovered; a Ctrl-C during the bake; back to v1; a rolling
deploy (start-first: no failed request), one of a version never healthy,
one cancelled while it recreates the serving container.

Each test stands alone and runs in any order: it shares no state with the
others. It starts with its preconditions (the ``_ensure_*`` / ``_serving_*``
helpers below), which bring the stack into the state the test needs through
the real CLI (``deploy`` / ``rollback``, ``lock break``) and do nothing when
the stack is already there. In file order each test leaves the state the
next one needs, so the preconditions cost nothing there; alone, or after
another test, they cost a deploy or a rollback or two. Every test first
recovers an interrupted deploy or a stale lock left by an earlier test that
was killed (``_no_interrupted_deploy``). The base version is the stack's
default, ``BASE`` (compose's default ``BLUE_VERSION``).

Timings are recorded as figures (``ops_helpers.record_figure``), never
asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from console.core.ops.context import OpContext
from tests.fault_versions import Fault, build_fault_version
from tests.integration.ops.ops_helpers import (
    cli_env,
    deploy_load,
    health,
    read_events_until,
    record_figure,
    run_cli,
    short_start_env,
    start_cli,
    wait_healthy,
)
from tests.load import HEALTH, LoadLoop, StreamFollower

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

BASE = "v1.0.0"
"""The stack's default version (compose's default ``BLUE_VERSION``)."""
V2 = "v2.0.0-opstest"
V3_BROKEN = "v3.0.0-opstest.broken"
V3_SLOW = "v3.0.1-opstest"
V4 = "v4.0.0-opstest"
BAKE = "4"
PROBE_TABLE = "stackdeck_ops_restore_probe"
DEFAULT_P95_MS = next(f.default for f in dataclasses.fields(OpContext) if f.name == "max_p95_ms")
"""The bake's default p95 threshold (``OpContext.max_p95_ms``: 2000 ms)."""
TEST_P95_MS = DEFAULT_P95_MS / 10
"""The default threshold scaled for the tests' short bakes (200 ms)."""
SLOW_MS = 500
"""What the slow version adds to every request: well above ``TEST_P95_MS``."""


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


def _colours(stack: Any) -> tuple[str, str]:
    """(serving, idle) colour, as nginx answers."""
    serving = str(wait_healthy(stack)["colour"])
    return serving, ("green" if serving == "blue" else "blue")


def _slot_version(stack: Any, colour: str) -> str | None:
    stack.reload_env()
    return stack.env.get(f"{colour.upper()}_VERSION")


def _precondition(stack: Any, why: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """One CLI operation run to reach a test's precondition (never asserted
    on beyond its success: the test's own assertions come after)."""
    print(f"[precondition] {why}: stackdeck {' '.join(args)}")
    r = run_cli(stack, *args, env=env)
    assert r.rc == 0, f"precondition ({why}) failed:\n{r.text()}"
    return r


def _no_interrupted_deploy(stack: Any) -> None:
    """No interrupted deploy and no stale lock (left by a test killed halfway)."""
    st = _status(stack)
    if st["lock"]["stale"]:
        _precondition(stack, "stale deploy lock", "lock", "break")
        st = _status(stack)
    # a stack that never saw a deploy has no journal: "deploy" is null
    if (st.get("deploy") or {}).get("interrupted"):
        _precondition(stack, "interrupted deploy", "rollback", "--force")
        st = _status(stack)
    assert not st["lock"]["held"] and not (st.get("deploy") or {}).get("interrupted"), st
    wait_healthy(stack)


def _image_exists(stack: Any, version: str) -> bool:
    r = subprocess.run(
        ["docker", "image", "inspect", f"{stack.backend_image}:{version}"],
        capture_output=True,
        text=True,
    )
    return r.returncode == 0


def _ensure_image(stack: Any, version: str) -> None:
    """The image of ``version`` exists (built as test_01 builds v2: ``deploy --build``;
    the state that leaves is for the next precondition to fix)."""
    if not _image_exists(stack, version):
        if health(stack)["version"] == version:  # cannot deploy what serves
            _serving_base(stack)
        _precondition(
            stack,
            f"image {version} missing",
            "deploy",
            "--version",
            version,
            "--build",
            "--services",
            "backend",
            "--bake-seconds",
            BAKE,
        )
    assert _image_exists(stack, version)


def _serving_base(stack: Any) -> dict[str, Any]:
    """BASE serves (whatever the idle colour holds)."""
    if wait_healthy(stack)["version"] != BASE:
        _precondition(stack, f"serving {BASE}", "rollback", "--version", BASE, "--force")
    got = wait_healthy(stack)
    assert got["version"] == BASE, got
    return got


def _serving(stack: Any, version: str) -> dict[str, Any]:
    """``version`` serves (whatever the idle colour holds)."""
    if version == BASE:
        return _serving_base(stack)
    if wait_healthy(stack)["version"] != version:
        _ensure_image(stack, version)
    if wait_healthy(stack)["version"] != version:
        _precondition(
            stack,
            f"serving {version}",
            "deploy",
            "--version",
            version,
            "--services",
            "backend",
            "--bake-seconds",
            BAKE,
        )
    got = wait_healthy(stack)
    assert got["version"] == version, got
    return got


def _serving_anything_but(stack: Any, version: str) -> dict[str, Any]:
    """Some version other than ``version`` serves: BASE, or V2 when ``version`` is BASE."""
    if wait_healthy(stack)["version"] == version:
        return _serving(stack, V2 if version == BASE else BASE)
    return wait_healthy(stack)


def _serving_v2_idle_holds_base(stack: Any) -> None:
    """V2 serves and the idle colour's slot holds BASE (running or stopped)."""
    _, idle = _colours(stack)
    if health(stack)["version"] == V2 and _slot_version(stack, idle) == BASE:
        return
    _ensure_image(stack, V2)
    _serving_base(stack)
    _serving(stack, V2)
    _, idle = _colours(stack)
    assert health(stack)["version"] == V2 and _slot_version(stack, idle) == BASE


def _serving_v2_idle_stopped_at_base(stack: Any) -> None:
    """V2 serves, the idle colour is stopped and its slot holds BASE: what the
    failed deploys of v3 leave (their undo puts the slot back, stopped), and
    what a deploy of V2 from BASE with keep_previous_colour off leaves."""

    def there() -> bool:
        _, idle = _colours(stack)
        return (
            health(stack)["version"] == V2
            and _container_state(stack, f"backend_{idle}") in ("exited", "created")
            and _slot_version(stack, idle) == BASE
        )

    if there():
        return
    _ensure_image(stack, V2)
    _serving_base(stack)
    _precondition(
        stack,
        f"serving {V2}, {BASE} stopped in the idle colour",
        "deploy",
        "--version",
        V2,
        "--services",
        "backend",
        "--bake-seconds",
        BAKE,
        env=cli_env(stack, STACKDECK_KEEP_PREVIOUS_COLOUR="false"),
    )
    assert there()


def _worker_on_base(stack: Any) -> None:
    stack.reload_env()
    if stack.env.get("WORKER_VERSION") != BASE or _container_version(stack, "worker") != BASE:
        # --force: a worker-only deploy of the version the backend serves
        _precondition(
            stack,
            f"worker on {BASE}",
            "deploy",
            "--version",
            BASE,
            "--services",
            "worker",
            "--force",
        )
    stack.reload_env()
    assert stack.env["WORKER_VERSION"] == BASE and _container_version(stack, "worker") == BASE


def _bake_event(r: Any) -> dict[str, Any]:
    return next(e for e in r.events if e["step"] == "bake" and e["status"] in ("ok", "fail"))


def test_01_blue_green_v1_to_v2_under_load(stack: Any) -> None:
    """Precondition: BASE serves (the previous colour, kept warm, will hold it)."""
    _no_interrupted_deploy(stack)
    _serving_base(stack)
    with deploy_load(stack) as load, StreamFollower(stack.base_url) as stream:
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
            "--max-p95-ms",
            f"{TEST_P95_MS:g}",
        )
    assert r.rc == 0, r.text()
    assert r.final["status"] == "done"
    load.result().assert_clean(reloads=1)
    # the threshold test_04's slow version fails at passes a normal version
    bake = _bake_event(r)
    assert bake["status"] == "ok", r.text()
    assert bake["data"]["p95_ms"] is not None and bake["data"]["p95_ms"] < TEST_P95_MS, bake
    assert bake["data"]["errors"] == 0, bake
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
    _assert_previous_colour_kept_warm(stack, r, last["from_colour"], BASE)
    # an open price stream left the old colour at the switch (1012) and
    # reconnected to the new one: it does not stay on the old version
    assert stream.closes == [1012] and not stream.errors, (stream.closes, stream.errors)
    assert [(c, v) for _, c, v in stream.snapshots] == [
        (last["from_colour"], BASE),
        (last["colour"], V2),
    ], stream.snapshots
    record_figure(
        "blue_green_deploy",
        {
            "duration_s": r.final["data"]["duration_s"],
            "cli_s": round(r.seconds, 1),
            "bake_p95_ms": bake["data"]["p95_ms"],
            "bake_threshold_ms": TEST_P95_MS,
            "load": load.result().summary(),
        },
    )


def test_02_plain_force_recreate_for_comparison(stack: Any) -> None:
    """Precondition: V2 serves."""
    _no_interrupted_deploy(stack)
    _serving(stack, V2)
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
    """Precondition: V2 serves and the idle colour's slot holds BASE."""
    _no_interrupted_deploy(stack)
    _serving_v2_idle_holds_base(stack)
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
    assert stack.env[f"{idle.upper()}_VERSION"] == BASE


def test_04_bake_failure_switches_back(stack: Any) -> None:
    """A really slow version (every request SLOW_MS longer) fails its bake on
    p95 latency at the default threshold scaled for tests (TEST_P95_MS) and
    is switched back. Precondition: V2 serves."""
    _no_interrupted_deploy(stack)
    _serving(stack, V2)
    build_fault_version(stack.backend_image, V2, V3_SLOW, Fault(latency_ms=SLOW_MS))
    with deploy_load(stack) as load:
        r = run_cli(
            stack,
            "deploy",
            "--version",
            V3_SLOW,
            "--services",
            "backend",
            "--bake-seconds",
            BAKE,
            "--max-p95-ms",
            f"{TEST_P95_MS:g}",
        )
        done_at = time.monotonic()
        time.sleep(2)
    assert r.rc == 1, r.text()
    msg = r.final["message"]
    assert "bake window failed" in msg and "p95 latency" in msg and "switched back" in msg, msg
    assert r.final["data"]["failed_step"] == "bake", r.final
    # the p95 the bake measured: the slow version's, above the threshold
    got = re.search(r"p95 latency (\d+) ms above the ([\d.]+) ms threshold", msg)
    assert got, msg
    p95_ms, threshold = int(got.group(1)), float(got.group(2))
    assert threshold == TEST_P95_MS, msg
    assert p95_ms >= SLOW_MS - 10, msg
    fail = _bake_event(r)
    assert fail["status"] == "fail" and "p95 latency" in fail["message"], r.text()
    assert [
        e["step"] for e in r.events if e["step"] == "switch" and e["status"] == "ok"
    ]  # it was switched to
    load.result().assert_clean(reloads=2)
    assert load.result().versions().get(V3_SLOW, 0) > 0, load.result().summary()  # it served
    assert set(load.result().versions(since=done_at)) == {V2}, load.result().summary()
    assert health(stack)["version"] == V2
    last = _history(stack)[-1]
    assert (
        last["version"] == V3_SLOW and last["result"] == "rolled-back" and "p95" in last["reason"]
    )
    assert last["bake"]["p95_ms"] >= SLOW_MS - 10 and last["bake"]["errors"] == 0, last["bake"]
    record_figure(
        "bake_failure_slow_version",
        {
            "slow_ms": SLOW_MS,
            "threshold_ms": TEST_P95_MS,
            "bake": last["bake"],
            "duration_s": last.get("duration_s"),
            "cli_s": round(r.seconds, 1),
            "load": load.result().summary(),
        },
    )


def test_05_rollback_to_previous_colour_under_load(stack: Any) -> None:
    """The failed deploys of v3 stopped the previous colour (their undo puts
    its slot back, stopped): the rollback starts it and waits for it.
    Precondition: V2 serves, the idle colour stopped and holding BASE."""
    _no_interrupted_deploy(stack)
    _serving_v2_idle_stopped_at_base(stack)
    base = BASE
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
    moves the worker back. Precondition: BASE serves, the worker on BASE."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_base(stack)
    _worker_on_base(stack)
    base = BASE
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
    """Precondition: BASE serves (the rollback goes back to it)."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_base(stack)
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
    assert health(stack)["version"] == BASE
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
    """Precondition: anything but V2 serves (so the deploy of V2 has work to do)."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_anything_but(stack, V2)
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


@contextlib.contextmanager
def _killed_on_failure(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """A failure before the test's own signal never leaves the CLI running
    (its live lock would refuse every later test's operation)."""
    try:
        yield proc
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def test_08_deploy_killed_before_switch_then_rollback_recovers(stack: Any) -> None:
    """Precondition: anything but V4 serves (the deploy builds V4 if missing)."""
    _no_interrupted_deploy(stack)
    _serving_anything_but(stack, V4)
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V4, "--build", "--services", "backend", "--bake-seconds", BAKE
    )
    with _killed_on_failure(proc):
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
    """Precondition: image V4 exists, anything but V4 serves."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V4)
    _serving_anything_but(stack, V4)
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V4, "--services", "backend", "--bake-seconds", "300"
    )
    with _killed_on_failure(proc):
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
    """Precondition: image V2 exists, anything but V2 serves."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_anything_but(stack, V2)
    serving = health(stack)
    proc = start_cli(
        stack, "deploy", "--version", V2, "--services", "backend", "--bake-seconds", "300"
    )
    with _killed_on_failure(proc):
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
    """Precondition: anything but BASE serves."""
    _no_interrupted_deploy(stack)
    _serving_anything_but(stack, BASE)
    base = BASE
    with deploy_load(stack) as load:
        r = run_cli(stack, "rollback", "--version", base, "--force")
    assert r.rc == 0, r.text()
    load.result().assert_clean(reloads=1)
    assert health(stack)["version"] == base
    record_figure(
        "rollback_to_version",
        {"duration_s": r.final["data"]["duration_s"], "load": load.result().summary()},
    )


def _rolling_load(stack: Any) -> LoadLoop:
    """The load the rolling deploy was first measured under (279 of 3 242
    requests failed when it recreated the serving colour in place): four
    keep-alive connections, a request every 10 ms on each, ``/api/health``."""
    return LoadLoop(
        stack.base_url, HEALTH, workers=4, pause=0.01, max_requests=50_000, max_seconds=900
    )


def _surge_exists(stack: Any, colour: str) -> bool:
    return _container_state(stack, f"backend_{colour}_surge") != "missing"


def _nginx_reloads(r: Any, switches: int) -> int:
    """The reloads a rolling deploy caused: its switches, plus one when it
    found nginx without the surge routes (a site.conf newer than its config)."""
    return switches + sum(1 for e in r.events if "reloading its configuration" in e["message"])


def test_11_rolling_deploy_is_start_first_without_failed_requests(stack: Any) -> None:
    """The surge container takes the traffic while the serving colour's own
    container is recreated: not one request fails, and the colour's own
    container ends on the new version. Precondition: image V2 exists,
    anything but V2 serves."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_anything_but(stack, V2)
    before = health(stack)
    colour = before["colour"]
    with _rolling_load(stack) as load, StreamFollower(stack.base_url) as stream:
        r = run_cli(
            stack, "deploy", "--strategy", "rolling", "--version", V2, "--services", "backend"
        )
    assert r.rc == 0, r.text()
    result = load.result()
    result.assert_clean(reloads=_nginx_reloads(r, 2))
    # An open price stream does not hold the drains: each drained container
    # hands its streams off (1012), the page reconnects to what serves then,
    # and the container is drained without waiting for the stream to end.
    for step in ("drain-old", "drain-surge"):
        drained = [e for e in r.events if e["step"] == step and e["status"] == "ok"]
        assert drained and "drained: no request" in drained[0]["message"], r.text()
        assert not [e for e in r.events if e["step"] == step and e["status"] == "warn"]
    assert stream.closes == [1012, 1012] and not stream.errors, (stream.closes, stream.errors)
    assert [(c, v) for _, c, v in stream.snapshots][-1] == (colour, V2), stream.snapshots
    # the steps, in order: start-first
    done = list(dict.fromkeys(e["step"] for e in r.events if e["status"] == "ok"))
    order = ["start-surge", "surge-healthy", "smoke", "switch-surge", "drain-old", "replace"]
    order += ["replace-healthy", "switch-home", "remove-surge"]
    assert [s for s in done if s in order] == order, r.text()
    # the surge really served (nginx names the target it routed to), then
    # the colour's own container, on the new version only
    seen = result.colours()
    assert seen.get(f"{colour}_surge", 0) > 0, result.colour_changes()
    home = next(e for e in r.events if e["step"] == "switch-home" and e["status"] == "ok")
    after = result.answers_since(home["at"])
    assert set(after) == {V2} and after[V2] > 10, (after, result.summary())
    now = wait_healthy(stack)
    assert now["version"] == V2 and now["colour"] == colour  # same colour
    # a normal stack again: the colour's own container runs V2, no surge
    assert _container_version(stack, f"backend_{colour}") == V2
    assert _slot_version(stack, colour) == V2
    assert not _surge_exists(stack, colour)
    st = _status(stack)
    assert st["serving_colour"] == colour and st["serving_slot"] is None
    assert st["colours"][colour]["version"] == V2 and st["deploy"]["interrupted"] is False
    last = _history(stack)[-1]
    assert last["strategy"] == "rolling" and last["result"] == "ok" and last["version"] == V2
    record_figure(
        "rolling_deploy",
        {
            "duration_s": r.final["data"]["duration_s"],
            "cli_s": round(r.seconds, 1),
            "load": result.summary(),
            "surge_answers": seen.get(f"{colour}_surge", 0),
        },
    )


def test_12_rolling_deploy_of_a_version_never_healthy_leaves_the_old_serving(
    stack: Any,
) -> None:
    """The surge of a version whose health check always fails is removed;
    traffic never leaves the old container. Precondition: image V2 exists
    (the broken version is built on it), anything but V3_BROKEN serves."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _build_broken(stack.backend_image, V2)
    before = health(stack)
    colour = before["colour"]
    started = _container_started(stack, f"backend_{colour}")
    with _rolling_load(stack) as load:
        r = run_cli(
            stack,
            "deploy",
            "--strategy",
            "rolling",
            "--version",
            V3_BROKEN,
            "--services",
            "backend",
            env=short_start_env(stack),
        )
    assert r.rc == 1, r.text()
    message = r.final["message"]
    assert "failed at surge-healthy" in message and "health check" in message, message
    assert f"never left backend_{colour}" in message, message
    assert "Traceback" not in r.stderr, r.stderr
    result = load.result()
    result.assert_clean(reloads=_nginx_reloads(r, 0))
    assert V3_BROKEN not in result.versions(), result.summary()
    assert health(stack)["version"] == before["version"]
    # the old container was never touched, the surge is gone, deploy.env unchanged
    assert _container_started(stack, f"backend_{colour}") == started
    assert not _surge_exists(stack, colour)
    assert _slot_version(stack, colour) == before["version"]
    last = _history(stack)[-1]
    assert last["version"] == V3_BROKEN and last["result"] == "failed"
    assert last["reason"].startswith("surge-healthy:"), last["reason"]


def test_13_rolling_deploy_cancelled_while_recreating_goes_back_without_failed_requests(
    stack: Any,
) -> None:
    """Ctrl-C once the colour's own container is being recreated with the new
    version (the surge serves it): the container is put back on the old
    version while the surge keeps serving, traffic goes back to it, the surge
    is removed; not one request fails. Precondition: image V2 exists,
    anything but V2 serves."""
    _no_interrupted_deploy(stack)
    _ensure_image(stack, V2)
    _serving_anything_but(stack, V2)
    before = health(stack)
    colour = before["colour"]
    with _rolling_load(stack) as load:
        proc = start_cli(
            stack, "deploy", "--strategy", "rolling", "--version", V2, "--services", "backend"
        )
        with _killed_on_failure(proc):
            seen = read_events_until(
                proc, lambda e: e["step"] == "replace-healthy" and e["status"] == "start"
            )
            proc.send_signal(signal.SIGINT)  # the operator's Ctrl-C
            proc.communicate(timeout=300)
    assert proc.returncode == 130
    reloads = 2 + sum(1 for e in seen if "reloading its configuration" in e["message"])
    load.result().assert_clean(reloads=reloads)
    assert health(stack)["version"] == before["version"]
    assert _container_version(stack, f"backend_{colour}") == before["version"]
    assert _slot_version(stack, colour) == before["version"]
    assert not _surge_exists(stack, colour)
    st = _status(stack)
    assert st["lock"]["held"] is False and st["serving_slot"] is None
    assert st["deploy"]["status"] == "rolled-back" and st["deploy"]["interrupted"] is False
    last = _history(stack)[-1]
    assert last["strategy"] == "rolling" and last["result"] == "rolled-back"
    assert "cancelled at step replace-healthy" in last["reason"], last["reason"]
    r = run_cli(stack, "rollback", "--version", BASE, "--force")
    assert r.rc == 0, r.text()
    assert health(stack)["version"] == BASE
