"""Stop the Docker daemon itself while the console runs, then start it again.

The console (the real Textual app, with its real Monitor) must keep running,
say that the engine is unreachable, and come back by itself when the daemon
answers again: no restart of the console.

This stops *every* container on the machine (dockerd runs without
--live-restore), so the module runs last (its name), restores the daemon in
a ``finally`` whatever happens, and brings this stack back with
scripts/setup.sh. Containers of other stacks come back through their restart
policy (unless-stopped) when the daemon starts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._harness import (
    REPO,
    LoadLoop,
    app_wait,
    console_settings,
    engine_answers,
    figure,
    screen_text,
    wait_engine_settled,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

PIDFILE = Path("/var/run/docker.pid")


def _load(stack: Stack) -> LoadLoop:
    """Bounded load on nginx: with the engine down it must be refused at once,
    never hang."""
    return LoadLoop(stack.base_url, max_requests=3000, max_seconds=240, pause=0.1)


def _dockerd_pid() -> int:
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, 0)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _engine_up() -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "engine.sh")],
        check=True,
        timeout=180,
        capture_output=True,
        text=True,
    )


def _setup(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh")],
        env=stack.proc_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _api_ok(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.base_url}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


async def test_docker_daemon_stop_and_start(stack: Stack) -> None:
    from console.ui.app import create_app

    wait_engine_settled()
    pid = _dockerd_pid()
    app = create_app(console_settings(stack))
    try:
        with figure("stop and restart the Docker daemon") as fig:
            async with app.run_test(size=(160, 48)) as pilot, _load(stack) as load:
                await app_wait(
                    pilot,
                    lambda: (
                        app.dashboard.containers is not None
                        and (s := app.dashboard.sources.get("engine")) is not None
                        and s.ok
                    ),
                    within=60,
                    what="engine source ok first",
                )
                t_stop = time.monotonic()
                os.kill(pid, signal.SIGTERM)
                await app_wait(pilot, lambda: not _alive(pid), within=120, what="dockerd exits")
                stopped_s = time.monotonic() - t_stop
                seen_s = await app_wait(
                    pilot,
                    lambda: (s := app.dashboard.sources.get("engine")) is not None and not s.ok,
                    within=60,
                    what="console says the engine is unreachable",
                )
                engine_state = app.dashboard.sources["engine"]
                await pilot.pause(1.0)
                text = screen_text(app)
                shown = "engine" in text.lower() and any(
                    w in text.lower()
                    for w in ("unreachable", "stale", "down", "refused", "no engine")
                )
                alive_while_down = app.return_code is None
                # start it again; the console is not touched
                t_start = time.monotonic()
                await asyncio.to_thread(_engine_up)
                engine_s = time.monotonic() - t_start
                back_s = await app_wait(
                    pilot,
                    lambda: (s := app.dashboard.sources.get("engine")) is not None and s.ok,
                    within=120,
                    what="console's engine source recovers by itself",
                )
                await app_wait(
                    pilot,
                    lambda: (
                        app.dashboard.containers is not None
                        and app.dashboard.containers.taken_at.timestamp() > 0
                        and any(c.state == "running" for c in app.dashboard.containers.containers)
                    ),
                    within=120,
                    what="console lists running containers again",
                )
                text_after = screen_text(app)
                result = load.result()
            fig.load(result)
            fig.operator_saw = (
                f"engine source stale after {seen_s:.1f} s: '{engine_state.last_error}'"
                + ("; shown on screen" if shown else "; NOT named on screen")
            )
            fig.recover_s = round(back_s, 1)
            fig.extra = {
                "dockerd_stop_s": round(stopped_s, 1),
                "engine_start_s": round(engine_s, 1),
                "outcomes": result.outcomes(),
            }
            assert not result.timeouts, (
                f"{len(result.timeouts)} requests hung while the engine was down"
            )
            assert alive_while_down, "the console exited while the engine was down"
            assert shown, f"the screen does not say the engine is unreachable:\n{text}"
            assert stack.name in text_after
    finally:
        if not engine_answers():
            _engine_up()
        setup = _setup(stack)
        assert setup.returncode == 0, setup.stderr[-2000:]
    wait_until(lambda: _api_ok(stack), timeout=180, what="stack healthy again after setup")
