"""Draining a node from stackdeck (``stackdeck node drain``, what the
console's "Drain node" runs) under load: the backend's task on that node
moves to another, no request fails; then the node is activated again.

Needs two nodes: the module adds a second one to the swarm
(``scripts/swarm.sh up --nodes 2``; a swarm with more keeps them, as after
the three-node file, whose node 3 was killed and rejoined), spreads the
backend over one task per node (Swarm's spread) and drains node 2 (the
manager carries the db, redis and edge labels, and draining it is refused:
test_swarm_ops.py). Each test starts from every node active and ready and
the backend at one task per node, and leaves every node active (both
polled), so the two run in either order. Marker ``swarm``;
``bash scripts/swarm.sh test tests/swarm/test_swarm_ops_drain.py`` runs it
alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.load import MIXED, LoadLoop
from tests.swarm.conftest import record_figure
from tests.swarm.swarm import Swarm
from tests.swarm.test_swarm_ops import Ops

pytestmark = pytest.mark.swarm

NODES = 2


def _hostnames(swarm: Swarm) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in swarm.client.nodes.list()}


def _backend_nodes(swarm: Swarm) -> list[str]:
    names = _hostnames(swarm)
    return sorted(names.get(t["NodeID"], "?") for t in swarm.running_tasks("backend"))


def _node_states(swarm: Swarm) -> dict[str, tuple[str, str]]:
    """hostname -> (availability, state)."""
    return {
        n.attrs["Description"]["Hostname"]: (
            n.attrs["Spec"]["Availability"],
            n.attrs["Status"]["State"],
        )
        for n in swarm.client.nodes.list()
    }


def _backend_settled(swarm: Swarm, replicas: int) -> bool:
    """``replicas`` backend tasks running and no other task of it meant to
    run (none still starting or pending)."""
    svc = swarm.client.services.get(swarm.service("backend"))
    meant = svc.tasks(filters={"desired-state": "running"})
    return len(meant) == replicas and len(_backend_nodes(swarm)) == replicas


def _all_active(swarm: Swarm, ops: Ops) -> None:
    """Every node active again (``stackdeck node activate``), then polled
    until the manager says so and every node is ready."""
    for name, (availability, _) in _node_states(swarm).items():
        if availability != "active":
            r = ops.run("node", "activate", name)
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    swarm.wait(
        "every node active and ready",
        lambda: set(_node_states(swarm).values()) == {("active", "ready")},
        timeout=120,
    )


@pytest.fixture(scope="module")
def two_nodes(swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    r = swarm.script("up", "--nodes", str(NODES), timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    swarm.wait(
        f"{NODES} ready nodes",
        lambda: (
            sum(1 for n in swarm.client.nodes.list() if n.attrs["Status"]["State"] == "ready")
            >= NODES
        ),
        timeout=120,
    )
    ops = Ops(swarm, tmp_path_factory.mktemp("swarm-drain-state"))
    yield ops
    _all_active(swarm, ops)
    ops.run("scale", "backend=1")


@pytest.fixture
def spread(swarm: Swarm, two_nodes: Ops) -> Iterator[int]:
    """Before a test: every node active, the backend at one task per node
    (the count of nodes) with one on node 2, the node the tests drain. Swarm
    does not move running tasks back to a node activated again, so when node
    2 has none (after an earlier drain), one more task is scaled up: Swarm's
    spread places it on the node with the fewest. After the test: every node
    active again. The backend's replicas."""
    target = swarm.node(2)
    _all_active(swarm, two_nodes)
    replicas = len(_node_states(swarm))
    for _ in range(2):
        started = swarm.update_status("backend").get("StartedAt")
        r = two_nodes.run("scale", f"backend={replicas}")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        # a scale changes the replicas only: no rolling update of the tasks
        # (the SDK's own scale started one, and a drain during it was rolled back)
        status = swarm.update_status("backend")
        assert status.get("StartedAt") == started, status
        swarm.wait(
            f"{replicas} backend tasks running", lambda n=replicas: _backend_settled(swarm, n), 120
        )
        if target in _backend_nodes(swarm):
            break
        replicas += 1
    assert target in _backend_nodes(swarm), _backend_nodes(swarm)
    yield replicas
    _all_active(swarm, two_nodes)


def test_drain_moves_the_tasks_without_a_failed_request(
    swarm: Swarm, two_nodes: Ops, spread: int
) -> None:
    target = swarm.node(2)
    before = _backend_nodes(swarm)
    assert target in before, before
    t0 = time.monotonic()
    with LoadLoop(
        swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=300
    ) as load:
        time.sleep(2)
        r = two_nodes.run("node", "drain", target)
        took = time.monotonic() - t0
        time.sleep(2)
    result = load.result()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    after = _backend_nodes(swarm)
    record_figure(
        "swarm_ops_drain",
        {
            "nodes": len(_hostnames(swarm)),
            "backend_before": before,
            "backend_after": after,
            "seconds": round(took, 1),
            "message": r.stdout.strip().splitlines()[-1],
            "load": result.summary(),
        },
    )
    # what the drain reported held: the backend at its count, none on the
    # drained node, and the moved task named with the node it runs on
    assert target not in after and len(after) == spread, after
    said = next(line for line in r.stdout.splitlines() if f"{target} drained in " in line)
    moved = [m for m in said.split(" s: ", 1)[-1].split("; ") if "backend." in m]
    assert moved and all(" -> " in m and "(not placed)" not in m for m in moved), r.stdout
    assert all(m.split(" -> ")[1].strip() in after for m in moved), (moved, after)
    node = next(
        n for n in swarm.client.nodes.list() if n.attrs["Description"]["Hostname"] == target
    )
    assert node.attrs["Spec"]["Availability"] == "drain"
    result.assert_clean(reloads=0)
    audit = [(a["event"], a["op"]) for a in two_nodes.audit()]
    assert audit[-2:] == [("start", "node-drain"), ("end", "node-drain")]

    r = two_nodes.run("node", "activate", target)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    node.reload()
    assert node.attrs["Spec"]["Availability"] == "active"


async def test_drain_from_the_console_under_load(swarm: Swarm, two_nodes: Ops, spread: int) -> None:
    """The real console (run_test) on the swarm: the node under the cursor,
    "Drain node", confirmed with y; the backend's task there moves, no
    request fails."""
    import asyncio

    from console.core.config import Settings
    from console.ui.app import create_app
    from console.ui.screens.confirm import ConfirmScreen
    from console.ui.screens.dashboard import DashboardScreen

    target = swarm.node(2)
    assert target in _backend_nodes(swarm), _backend_nodes(swarm)
    settings = Settings(
        project=swarm.stack,
        docker_host=swarm.docker_host,
        base_url=swarm.base_url,
        state_dir=str(two_nodes.state),
        prometheus_url=None,
        alertmanager_url=None,
    )
    app = create_app(settings, preload=False)
    async with app.run_test(size=(160, 48)) as pilot:
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        node_id = None
        for _ in range(300):  # the swarm source's first poll (bounded)
            await pilot.pause(0.1)
            if dash.swarm is not None and dash.swarm_mode():
                node_id = next((n.id for n in dash.swarm.nodes if n.hostname == target), None)
                if node_id:
                    break
        assert node_id, "the console did not show the swarm's nodes"
        load = LoadLoop(
            swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=300
        )
        async with load:
            dash.selected_container = f"node:{node_id}"
            dash.action_op("node-drain")
            for _ in range(50):
                await pilot.pause(0.1)
                if isinstance(app.screen, ConfirmScreen):
                    break
            assert isinstance(app.screen, ConfirmScreen), app.screen
            assert app.screen.title_text == f"Drain {target}?"

            def results() -> list[Any]:
                return [
                    e
                    for e in dash.ops_log.events
                    if e.op == "node-drain" and e.step == "result" and e.status in ("done", "fail")
                ]

            seen = len(results())
            await pilot.press("y")
            for _ in range(1800):  # the drain (bounded by its own timeout)
                await pilot.pause(0.1)
                if len(results()) > seen:
                    break
            await asyncio.sleep(1)
        result = load.result()
        final = results()[seen:]
    assert final and final[-1].status == "done", [e.message for e in dash.ops_log.events]
    after = _backend_nodes(swarm)
    record_figure(
        "swarm_ops_drain_console",
        {"message": final[-1].message, "backend_after": after, "load": result.summary()},
    )
    assert target not in after and len(after) == spread, after
    result.assert_clean(reloads=0)
    assert ("start", "node-drain") in [(a["event"], a["op"]) for a in two_nodes.audit()][-3:]
