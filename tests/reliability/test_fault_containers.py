"""Kill each container in turn while the console watches and traffic flows.

For every service (the colour serving traffic, the idle colour, worker, db,
redis, nginx, market-sim), with the console's real Monitor running, a bounded
load loop on nginx and a writer committing rows to PostgreSQL:

1. ``docker kill`` (SIGKILL; Docker treats it as a manual stop, so the
   container stays down): the operator sees it down within one refresh; the
   API answers with a clear 5xx / degraded health / refused connection,
   never a hang.
2. ``docker start``: the console shows it back by itself (no restart of the
   console), the API answers 200 again.
3. A crash (SIGKILL of the container's main process from the host, which is
   what the restart policy is for): ``unless-stopped`` brings it back, the
   console shows the restart.

At the end no acknowledged row is missing and the prices table did not shrink.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._harness import (
    AckedWriter,
    Figure,
    LoadLoop,
    MonitorWatch,
    console_settings,
    count_rows,
    crash,
    docker,
    figure,
    running_and_healthy,
    state,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

SERVICES = ["serving", "idle", "worker", "db", "redis", "nginx", "market-sim"]

# What each fault must look like from outside, through nginx: the path to
# probe and whether it must fail (5xx / refused) while the container is down.
PROBES: dict[str, list[tuple[str, bool | None]]] = {
    # (path, True: must fail (5xx / refused), False: must stay 200, None: any answer, but an answer)
    "serving": [("/api/health", True)],
    "idle": [("/api/health", False), ("/direct/{idle}/api/health", True)],
    "worker": [("/api/health", False)],
    "db": [("/api/health/database", True), ("/api/health", True)],
    "redis": [
        ("/api/health/cache", True),
        ("/api/health", True),
        ("/api/health/external-apis", None),
    ],
    "nginx": [("/nginx-health", True)],
    "market-sim": [("/api/health/external-apis", True), ("/api/health", False)],
}

# Which console source goes stale when the container is down (besides the
# container list showing it exited).
STALE_SOURCE = {"db": "postgres", "redis": "redis"}


def _service_name(stack: Stack, which: str) -> str:
    active = stack.env.get("ACTIVE_COLOUR", "blue")
    idle = "green" if active == "blue" else "blue"
    return {"serving": f"backend_{active}", "idle": f"backend_{idle}"}.get(which, which)


def _probe(stack: Stack, path: str) -> tuple[int | None, str]:
    """One request with a client timeout: an HTTP status or a transport error
    name, and never a hang (a ReadTimeout is reported as such)."""
    try:
        r = httpx.get(stack.base_url + path, timeout=10)
        return r.status_code, r.text[:200]
    except httpx.ConnectError as exc:
        return None, f"refused: {exc}"
    except httpx.HTTPError as exc:
        return None, type(exc).__name__


async def _probe_until(
    stack: Stack, path: str, must_fail: bool, tries: int = 30
) -> list[tuple[int | None, str]]:
    """Probe once a second until the answer is the expected failure (or
    ``tries`` answers); every answer is kept so a hang anywhere is seen."""
    answers = []
    for _ in range(tries):
        status, body = await asyncio.to_thread(_probe, stack, path)
        answers.append((status, body))
        failed = status is None or status >= 500
        if failed == must_fail or not must_fail:
            break
        await asyncio.sleep(1)
    return answers


def _healthy_through_nginx(stack: Stack) -> bool:
    try:
        return httpx.get(stack.base_url + "/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("which", SERVICES)
async def test_kill_container(stack: Stack, which: str) -> None:
    stack.reload_env()
    service = _service_name(stack, which)
    name = stack.container(service)
    started_idle = False
    if which == "idle" and state(name)[0] != "running":
        docker("start", name)  # kept stopped for rollback after a deploy: run it for the test
        started_idle = True
    try:
        with figure(f"kill {which} ({service})") as fig:
            await _kill_and_recover(stack, which, name, fig)
    finally:
        if state(name)[0] != "running":
            docker("start", name, check=False)
        if started_idle:
            docker("stop", name, check=False)


async def _kill_and_recover(stack: Stack, which: str, name: str, fig: Figure) -> None:
    idle_colour = _service_name(stack, "idle").removeprefix("backend_")
    wait_until(
        lambda: running_and_healthy(name), timeout=120, what=f"{name} healthy before the fault"
    )
    wait_until(
        lambda: _healthy_through_nginx(stack), timeout=60, what="API healthy before the fault"
    )
    prices_before = await count_rows(stack.pg_dsn, "prices")
    saw: list[str] = []
    async with MonitorWatch(console_settings(stack)) as watch:
        await watch.wait(
            lambda: (c := watch.container(name)) is not None and c.state == "running",
            within=30,
            what="console lists the container running",
        )
        with LoadLoop(stack.base_url) as load, AckedWriter(stack.pg_dsn) as writer:
            await watch.wait(
                lambda: writer.acked_count > 20 and load.result().total > 10,
                within=30,
                what="load and writes flowing",
            )
            # --- 1. docker kill: down, and stays down
            t_fault = time.monotonic()
            docker("kill", "-s", "KILL", name)
            rank, seen_s = await watch.seen_in_refreshes(
                "containers",
                lambda s: any(c.name == name and c.state != "running" for c in s.containers),
                since=t_fault,
                what=f"console shows {name} not running",
            )
            assert rank <= 2, f"{name} shown down only at the {rank}th container refresh"
            saw.append(f"{name} exited (refresh #{rank}, {seen_s:.1f} s)")
            if source := STALE_SOURCE.get(which):
                bad = await _wait_source_failing(watch, source, t_fault)
                saw.append(f"{source} source stale: {bad.last_error}")
            # the API answers, clearly, and does not hang; health checks
            # cached by the API may take a few seconds to turn
            for path, must_fail in PROBES[which]:
                path = path.format(idle=idle_colour)
                answers = await _probe_until(stack, path, must_fail)
                hung = [b for st, b in answers if st is None and "Timeout" in b]
                assert not hung, f"{path} hung while {which} was down: {hung}"
                status, body = answers[-1]
                if must_fail is None:
                    assert status is not None, (
                        f"{path} gave no answer while {which} was down: {body}"
                    )
                elif must_fail:
                    assert status is None or status >= 500, (
                        f"{path} still answered {status} {len(answers)} s after {which} went down: {body}"
                    )
                else:
                    assert status == 200, f"{path} answered {status} while {which} was down: {body}"
                shown = status if status is not None else body.split(":")[0]
                saw.append(
                    f"{path} -> {shown}"
                    + (f" (after {len(answers)} tries)" if len(answers) > 1 else "")
                )
            # --- 2. docker start: the console follows by itself
            docker("start", name)
            t_back = time.monotonic()
            recover_s = await watch.wait(
                lambda: running_and_healthy(name) and _healthy_through_nginx(stack),
                within=120,
                what=f"{name} healthy and API 200 after docker start",
            )
            await watch.wait(
                lambda: (
                    (c := watch.container(name)) is not None
                    and c.state == "running"
                    and c.health in (None, "healthy")
                ),
                within=30,
                what=f"console shows {name} running and healthy again",
            )
            if source := STALE_SOURCE.get(which):
                await watch.wait(
                    lambda: (s := watch.source_state(source)) is not None and s.ok,
                    within=30,
                    what=f"{source} source recovers by itself",
                )
            console_s = time.monotonic() - t_back
            # --- 3. a crash: the restart policy brings it back
            restarts = state(name)[2]
            t_crash = time.monotonic()
            crash(name)
            policy_s = await watch.wait(
                lambda: (
                    state(name)[2] > restarts
                    and running_and_healthy(name)
                    and _healthy_through_nginx(stack)
                ),
                within=120,
                what=f"restart policy brings {name} back after a crash",
            )
            await watch.wait(
                lambda: (c := watch.container(name)) is not None and c.restart_count > restarts,
                within=30,
                what=f"console shows the restart count of {name} going up",
            )
            died = [
                e
                for snap in watch.payloads("events", since=t_crash)
                for e in snap.events
                if e.container == name and e.action == "die"
            ]
            assert died, f"no 'die' event for {name} in the console's timeline"
            saw.append(
                f"crash: die event, restarts {restarts}->{watch.container(name).restart_count}"
            )
        result = load.result()
        assert watch.monitor.running, "the monitor stopped"
    acked, found = writer.verify()
    prices_after = await count_rows(stack.pg_dsn, "prices")
    fig.operator_saw = "; ".join(saw)
    fig.recover_s = round(recover_s, 1)
    fig.load(result)
    fig.rows_acked = acked
    fig.rows_lost = acked - found
    fig.extra = {
        "console_back_s": round(console_s, 1),
        "restart_policy_s": round(policy_s, 1),
        "outcomes": result.outcomes(),
        "writer_failures": dict(writer.failures),
        "prices": [prices_before, prices_after],
    }
    assert not result.timeouts, f"requests hung (client timeout): {len(result.timeouts)}"
    assert acked > 0
    assert found == acked, f"{acked - found} acknowledged rows lost"
    assert prices_after >= prices_before, f"prices shrank: {prices_before} -> {prices_after}"


async def _wait_source_failing(watch: MonitorWatch, source: str, since: float) -> Any:
    await watch.wait(
        lambda: watch.failing_state_since(source, since) is not None,
        within=30,
        what=f"console marks the {source} source stale",
    )
    return watch.failing_state_since(source, since)
