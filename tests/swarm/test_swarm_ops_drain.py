"""Draining a node from stackdeck (``stackdeck node drain``, what the
console's "Drain node" runs) under load: the backend's task on that node
moves to the other, no request fails; then the node is activated again.

Needs two nodes: the module adds a second one to the swarm
(``scripts/swarm.sh up --nodes 2``; a swarm with more keeps them), spreads
the backend over two tasks (one per node: Swarm's spread) and drains the
node that is not the manager (the manager carries the db, redis and edge
labels, and draining it is refused: test_swarm_ops.py). Marker ``swarm``;
``bash scripts/swarm.sh test tests/swarm/test_swarm_ops_drain.py`` runs it
alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

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
    r = ops.run("scale", "backend=2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    yield ops
    ops.run("node", "activate", swarm.node(2))
    ops.run("scale", "backend=1")


def test_drain_moves_the_tasks_without_a_failed_request(swarm: Swarm, two_nodes: Ops) -> None:
    target = swarm.node(2)
    swarm.wait("a backend task on each node", lambda: len(set(_backend_nodes(swarm))) == 2)
    before = _backend_nodes(swarm)
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
    assert target not in after and len(after) == 2, after
    assert (
        f"backend.2 -> {swarm.manager}" in r.stdout or f"backend.1 -> {swarm.manager}" in r.stdout
    )
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
