"""``stackdeck scale worker=N`` against the real stack: the worker plus N-1
active standbys (compose service ``worker_replica``), each with its own
heartbeat (``worker:heartbeats``); one ingestion cycle per interval slot
whichever worker claims it (the cycle lock and ``worker:cycle:<slot>``); a
killed worker's next cycle taken by another; a blue-green deploy and its
rollback with ``WORKER_REPLICAS=2`` moving both workers.

The workers run with ``WORKER_INTERVAL_S=4`` here (given to the CLI, which
passes it to compose), so a test sees several cycles in seconds; every test
ends with one worker on the stack's default interval.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from platform_services.providers import keys
from tests.integration.ops.ops_helpers import cli_env, health, record_figure, run_cli, wait_healthy

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

INTERVAL = 4


def _fast(stack: Any) -> dict[str, str]:
    return cli_env(stack, WORKER_INTERVAL_S=str(INTERVAL))


def _workers(stack: Any) -> list[dict[str, Any]]:
    """``docker inspect`` of the worker's own container, then each replica (any state)."""
    ids = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={stack.name}",
            "--filter",
            "label=com.docker.compose.service=worker_replica",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = subprocess.run(
        ["docker", "inspect", stack.container("worker"), *ids],
        capture_output=True,
        text=True,
    )
    return list(json.loads(out.stdout or "[]"))


def _running(stack: Any) -> list[dict[str, Any]]:
    return [i for i in _workers(stack) if i["State"]["Status"] == "running"]


def _name(info: dict[str, Any]) -> str:
    return str(info["Name"]).lstrip("/")


def _deploy_env(stack: Any) -> str:
    return (stack.state_dir / "deploy.env").read_text()


def _cycles(container: str, since: float) -> list[dict[str, Any]]:
    """The worker's ``cycle done`` / ``cycle skipped`` log records since ``since`` (epoch)."""
    r = subprocess.run(
        ["docker", "logs", "--since", f"{since:.3f}", container],
        capture_output=True,
        text=True,
    )
    out = []
    for line in (r.stdout + r.stderr).splitlines():
        if '"cycle ' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") in ("cycle done", "cycle skipped"):
            out.append(rec)
    return out


def _alive(rds: redis.Redis) -> dict[str, dict[str, Any]]:
    return keys.alive_workers(rds.hgetall(keys.WORKER_HEARTBEATS_KEY), time.time())


async def _panel(stack: Any) -> list[Any]:
    """The containers the console's panel shows (:class:`ContainersSource`), in its order."""
    from console.core.sources.docker.containers import ContainersSource
    from console.core.sources.docker.handle import DockerHandle
    from tests.integration.console.test_sources import settings_for

    handle = DockerHandle(settings_for(stack))
    try:
        return list((await ContainersSource(handle.settings, handle).poll()).containers)
    finally:
        await handle.aclose()


@pytest.fixture
def one_fast_worker(stack: Any) -> Iterator[None]:
    """One worker on a 4 s interval before; one worker on the default interval after."""
    wait_healthy(stack)
    r = run_cli(stack, "scale", "worker=1", env=_fast(stack))
    assert r.rc == 0, r.text()
    try:
        yield
    finally:
        r = run_cli(stack, "scale", "worker=1")
        assert r.rc == 0, r.text()


def test_scale_worker_1_2_1_one_cycle_per_slot_and_a_killed_worker_is_replaced(
    stack: Any, rds: redis.Redis, one_fast_worker: None
) -> None:
    t0 = time.time()
    r = run_cli(stack, "scale", "worker=2", env=_fast(stack))
    assert r.rc == 0, r.text()
    scale_up_s = round(r.seconds, 1)
    running = _running(stack)
    assert len(running) == 2, [_name(i) for i in running]
    hosts = {i["Config"]["Hostname"]: _name(i) for i in running}
    assert "WORKER_REPLICAS=2" in _deploy_env(stack)
    # each worker's own heartbeat, and /api/health counts both
    assert set(hosts) <= set(_alive(rds)), (hosts, _alive(rds))
    workers = health(stack)["checks"]["workers"]
    assert workers["alive"] >= 2 and set(hosts) <= set(workers["workers"]), workers
    # the console's containers panel (its source) lists each worker, in one place
    panel = [(c.service, c.name) for c in asyncio.run(_panel(stack)) if "worker" in c.service]
    assert panel == [("worker", stack.container("worker")), ("worker_replica", _name(running[1]))]

    # A window of several slots: every slot run by exactly one worker, the
    # cycles never overlapping, the other worker skipping that slot.
    deadline = time.monotonic() + 12 * INTERVAL
    while time.monotonic() < deadline:
        records = {h: _cycles(n, t0) for h, n in hosts.items()}
        if all(len(recs) >= 4 for recs in records.values()):
            break
        time.sleep(1)
    else:
        pytest.fail(f"fewer than 4 cycles each in {12 * INTERVAL} s: {records}")
    done = [rec for recs in records.values() for rec in recs if rec["msg"] == "cycle done"]
    slots = [rec["slot"] for rec in done]
    assert len(slots) == len(set(slots)), f"a slot ran twice: {sorted(slots)}"
    spans = sorted((rec["began"], rec["ended"]) for rec in done)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    skipped = {
        rec["slot"] for recs in records.values() for rec in recs if rec["msg"] == "cycle skipped"
    }
    assert skipped & set(slots), (slots, skipped)  # the standby tried, and found it taken

    # Kill (SIGKILL: no clean stop) the worker that ran the latest cycle.
    last = max(done, key=lambda rec: rec["ended"])
    holder_host = last["worker"].split(":")[0]
    holder, other = hosts[holder_host], next(n for h, n in hosts.items() if h != holder_host)
    killed_at = time.time()
    subprocess.run(["docker", "kill", holder], check=True, capture_output=True)
    kill_slot = int(killed_at // INTERVAL)
    took: dict[str, Any] | None = None
    deadline = time.monotonic() + 4 * INTERVAL
    while took is None and time.monotonic() < deadline:
        took = next(
            (
                rec
                for rec in _cycles(other, killed_at)
                if rec["msg"] == "cycle done" and rec["slot"] > kill_slot
            ),
            None,
        )
        time.sleep(0.5)
    assert took is not None, f"{other} ran no cycle in {4 * INTERVAL} s after {holder} was killed"
    taken_after_s = round(took["ended"] - killed_at, 1)

    r = run_cli(stack, "scale", "worker=1", env=_fast(stack))
    assert r.rc == 0, r.text()
    running = _running(stack)
    assert [_name(i) for i in running] == [stack.container("worker")]
    assert len(_workers(stack)) == 1  # the replica removed, not only stopped
    assert "WORKER_REPLICAS=1" in _deploy_env(stack)
    record_figure(
        "scale_worker_1_2_1",
        {
            "scale_up_s": scale_up_s,
            "scale_down_s": round(r.seconds, 1),
            "cycles_in_window": len(done),
            "killed": holder,
            "next_cycle_by_the_other_s_after_kill": taken_after_s,
        },
    )


def _alt_version(stack: Any, version: str) -> str:
    """The worker's image under a second tag: what moves is containers, not code."""
    image = json.loads(
        subprocess.run(
            ["docker", "inspect", stack.container("worker")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )[0]["Config"]["Image"]
    repo = image.rsplit(":", 1)[0]
    alt = f"{version}.workers" if "-" in version else f"{version}-workers"
    subprocess.run(["docker", "tag", f"{repo}:{version}", f"{repo}:{alt}"], check=True)
    return alt


def _versions(stack: Any, rds: redis.Redis) -> tuple[list[str], dict[str, str]]:
    """Each running worker's version label, and the version in its own heartbeat."""
    running = _running(stack)
    alive = _alive(rds)
    labels = [i["Config"]["Labels"]["com.investment.version"] for i in running]
    beats = {_name(i): str(alive.get(i["Config"]["Hostname"], {}).get("version")) for i in running}
    return labels, beats


@pytest.mark.parametrize("strategy", ["blue-green", "rolling"])
def test_deploy_and_back_move_both_workers(
    stack: Any, rds: redis.Redis, one_fast_worker: None, strategy: str
) -> None:
    """WORKER_REPLICAS=2: a deploy (blue-green: ``move_worker``; rolling:
    ``recreate-worker``) recreates both workers on the new version, each
    confirmed by its own heartbeat; the way back (a rollback; a rolling
    deploy of the version before) moves both back."""
    # The worker may run another version than the API (a deploy of "backend
    # frontend" leaves it): the deploy moves both to ``alt``, the way back
    # both to the API's version before.
    version = health(stack)["version"]
    alt = _alt_version(stack, version)
    try:
        r = run_cli(stack, "scale", "worker=2", env=_fast(stack))
        assert r.rc == 0, r.text()
        r = run_cli(
            stack,
            "deploy",
            "--version",
            alt,
            "--services",
            "backend worker",
            *(("--bake-seconds", "3") if strategy == "blue-green" else ("--strategy", "rolling")),
            env=_fast(stack),
        )
        assert r.rc == 0, r.text()
        labels, beats = _versions(stack, rds)
        assert labels == [alt, alt], labels
        assert set(beats.values()) == {alt} and len(beats) == 2, beats
        assert f"WORKER_VERSION={alt}" in _deploy_env(stack)
        step = "worker" if strategy == "blue-green" else "recreate-worker"
        worker_ok = [e for e in r.events if e["step"] == step and e["status"] == "ok"]
        assert any("2 worker(s)" in e["message"] for e in worker_ok), r.text()

        if strategy == "blue-green":
            r = run_cli(stack, "rollback", "--version", version, env=_fast(stack))
        else:
            r = run_cli(
                stack,
                "deploy",
                "--version",
                version,
                "--services",
                "backend worker",
                "--strategy",
                "rolling",
                env=_fast(stack),
            )
        assert r.rc == 0, r.text()
        labels, beats = _versions(stack, rds)
        assert labels == [version, version], labels
        assert set(beats.values()) == {version} and len(beats) == 2, beats
        assert f"WORKER_VERSION={version}" in _deploy_env(stack)
    finally:
        if f"WORKER_VERSION={alt}" in _deploy_env(stack) or health(stack)["version"] == alt:
            # a failed check above: back on the version before, before the tag goes
            back = (
                ("rollback",) if strategy == "blue-green" else ("deploy", "--strategy", "rolling")
            )
            r = run_cli(stack, *back, "--version", version)
            assert r.rc == 0, r.text()
        image = _workers(stack)[0]["Config"]["Image"]
        subprocess.run(["docker", "rmi", f"{image.rsplit(':', 1)[0]}:{alt}"], capture_output=True)
