"""The operations' keys and flows on a swarm stack (issue 14): deploy and
rollback open their swarm flows and run with a swarm context; a node
selected in the Containers panel is drained after a confirmation; the
node operations are greyed on a compose project."""

from __future__ import annotations

from typing import Any

from console.core.ops.table import OPERATIONS, DeployParams, NodeParams, RollbackParams
from console.ui.panels.operations import OperationsPanel
from console.ui.screens.confirm import ConfirmScreen
from console.ui.screens.dashboard import COMPOSE_REASON, DashboardScreen
from console.ui.screens.deploy import DeployScreen

from .fakes import FakeOps, make_app

BIG = (160, 48)


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def started(pilot: Any, ops: FakeOps) -> None:
    """The operation started (FakeOps holds it until released); then let it end."""
    for _ in range(5):
        await pilot.pause()
    ops.release.set()
    await settle(pilot)


async def test_deploy_key_runs_the_swarm_deploy() -> None:
    ops = FakeOps()
    app = make_app("swarm", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, DeployScreen)
        await pilot.press(*"v1.2.4", "enter")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "Swarm rolls the backend's tasks start-first" in str(confirm.body)
        assert ops.calls == []  # nothing runs before the confirmation
        await pilot.press("y")
        await started(pilot, ops)
        name, ctx, params = ops.calls[0]
        assert (name, params) == ("deploy", DeployParams(version="v1.2.4", strategy="blue-green"))
        assert ctx.mode == "swarm"  # the engine runs the swarm implementation


async def test_rollback_key_says_what_swarm_does() -> None:
    ops = FakeOps()
    app = make_app("swarm", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "service rollback" in str(confirm.body)
        await pilot.press("y")
        await started(pilot, ops)
        assert [(c[0], c[2]) for c in ops.calls] == [("rollback", RollbackParams())]


async def test_the_selected_node_is_drained_after_a_confirmation() -> None:
    ops = FakeOps()
    app = make_app("swarm", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        dash.selected_container = "node:n2"  # the row key of node-2 in the Containers panel
        dash.action_op("node-drain")
        await pilot.pause()
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.title_text == "Drain node-2?"
        await pilot.press("n")  # backed out: nothing runs
        for _ in range(3):
            await pilot.pause()
        assert ops.calls == []
        dash.action_op("node-drain")
        await pilot.pause()
        await pilot.pause()
        await pilot.press("y")
        await started(pilot, ops)
        assert [(c[0], c[2]) for c in ops.calls] == [("node-drain", NodeParams(node="node-2"))]


async def test_node_operations_are_greyed_on_a_compose_project() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        for name in ("node-drain", "node-activate"):
            assert dash.block_reason(OPERATIONS[name]) == COMPOSE_REASON
            assert dash.check_action("op", (name,)) is None
        assert dash.block_reason(OPERATIONS["deploy"]) is None


async def test_the_idle_operations_line_names_the_keys_that_run_there() -> None:
    """A swarm stack's Operations panel offers deploy and rollback, not the
    compose-only vacuum, flush, emergency limit or restart (their keys are
    greyed there); a compose project's offers all of them."""
    for mode, shown, hidden in (
        ("swarm", ["d deploy", "b rollback"], ["v vacuum", "f flush", "r restart"]),
        ("normal", ["d deploy", "b rollback", "v vacuum", "r restart"], []),
    ):
        app = make_app(mode)
        async with app.run_test(size=BIG) as pilot:
            await settle(pilot)
            idle = str(app.screen.query_one(OperationsPanel).query_one(".idle").render())
            assert all(k in idle for k in shown), (mode, idle)
            assert not any(k in idle for k in hidden), (mode, idle)
