"""Another operator's deploy, seen live by a running console (issue 16, item 4).

The real app (``create_app`` + ``run_test``, the real Monitor and its
operations source) watches the real stack while a real ``stackdeck deploy``
runs as a separate CLI process, as a second operator's terminal would. The
console must show that deploy in its Operations panel with the CLI's pid,
user and host, the lock in its header, the deploy key greyed with the reason,
and once the CLI has ended, the keys enabled again without anything done in
the console.

The deploy alternates between the stack's base version and a copy of it
under another version name (``FROM <prefix>-backend:v1.0.0``, built here),
so the test can run again on the stack it left. Waits are bounded polls of
the app's state.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

from console.ui.app import StackdeckApp, create_app
from console.ui.panels import OperationsPanel
from console.ui.screens.deploy import DeployScreen
from console.ui.widgets.header import HeaderBar
from tests.conftest import Stack
from tests.fault_versions import Fault, build_fault_version
from tests.integration.console.test_app_live import live_settings, until
from tests.integration.ops.ops_helpers import health, start_cli, wait_healthy

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

BASE = "v1.0.0"
"""The stack's default version (compose's default ``BLUE_VERSION``)."""
OTHER = "v1.0.1-otherop"
"""The same backend under another version name."""
BAKE = "6"


def _ensure_other_image(stack: Stack) -> None:
    r = subprocess.run(
        ["docker", "image", "inspect", f"{stack.backend_image}:{OTHER}"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        build_fault_version(stack.backend_image, BASE, OTHER, Fault())


def _header(app: StackdeckApp) -> str:
    return str(app.query_one(HeaderBar).query_one(".left").render())


def _events_of(app: StackdeckApp, pid: int) -> list[Any]:
    return [e for e in app.dashboard.ops_log.events if e.data.get("pid") == pid]


async def test_a_deploy_from_the_cli_is_seen_live_and_greys_the_keys(stack: Stack) -> None:
    _ensure_other_image(stack)
    serving = wait_healthy(stack)["version"]
    target = OTHER if serving != OTHER else BASE
    app: StackdeckApp = create_app(live_settings(stack, read_only=False), hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        dash = app.dashboard
        await until(
            pilot,
            lambda: dash.sources.get("operations") is not None and dash.sources["operations"].ok,
            limit_s=30,
            what="the operations source's first look",
        )
        assert dash.check_action("op", ("deploy",)) is True
        proc = start_cli(
            stack, "deploy", "--version", target, "--services", "backend", "--bake-seconds", BAKE
        )
        try:
            # the lock, its holder (the CLI process), the greyed key
            await until(
                pilot,
                lambda: (
                    dash.others is not None
                    and dash.others.lock is not None
                    and dash.others.lock.holder.pid == proc.pid
                ),
                limit_s=120,
                what="the CLI's deploy lock in the console",
            )
            assert dash.others is not None and dash.others.lock is not None
            lock = dash.others.lock
            assert lock.op == "deploy" and not lock.stale
            assert lock.holder.host == socket.gethostname() and lock.holder.via == "cli"
            who = lock.holder.who
            await until(
                pilot,
                lambda: f"lock: deploy by {who}" in _header(app),
                limit_s=10,
                what="the lock in the header",
            )
            assert dash.check_action("op", ("deploy",)) is None
            assert app.screen.active_bindings["d"].enabled is False
            await pilot.press("d")
            await pilot.pause()
            assert not isinstance(app.screen, DeployScreen)
            assert any(
                f"deploy in progress by {who}" in n.message and f"pid {proc.pid}" in n.message
                for n in app._notifications
            ), [n.message for n in app._notifications]
            # the operation's rows: its start with who/where, its steps as they come
            await until(
                pilot,
                lambda: any(e.status == "info" for e in _events_of(app, proc.pid)),
                limit_s=120,
                what="a journal step of the CLI's deploy",
            )
            begin = _events_of(app, proc.pid)[0]
            assert begin.step == "begin" and f"pid {proc.pid}" in begin.message
            assert who in begin.message
            lines = app.query_one(OperationsPanel).lines
            assert any(who in line for line in lines), lines
            await until(
                pilot, lambda: proc.poll() is not None, limit_s=600, what="the CLI's deploy to end"
            )
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-3000:] + err[-3000:]
        # released: the keys come back on their own, the end is in the log
        await until(
            pilot,
            lambda: (
                dash.others is not None
                and dash.others.lock is None
                and dash.check_action("op", ("deploy",)) is True
            ),
            limit_s=30,
            what="the keys to come back after the CLI ended",
        )
        assert app.screen.active_bindings["d"].enabled is True
        assert "lock:" not in _header(app)
        await until(
            pilot,
            lambda: any(e.status == "done" for e in _events_of(app, proc.pid)),
            limit_s=30,
            what="the end of the CLI's deploy in the Operations panel",
        )
        op_ids = {e.data.get("op_id") for e in _events_of(app, proc.pid)}
        assert len(op_ids) == 1
        assert sum(e.step == "begin" for e in _events_of(app, proc.pid)) == 1
    assert health(stack)["version"] == target
