"""The stack on three Swarm nodes: the backend spread over them, then one
node lost (its container killed: its engine and every task on it die at
once) under load and while rows are written. Measured: when the manager
marks the node down, when the backend has all its tasks running again on
the nodes left (reschedule), the requests that failed meanwhile; asserted:
Swarm reschedules, the stack serves afterwards, no acknowledged row is lost,
and the node rejoins when its container starts again (scripts/swarm.sh up).

The database, the cache and the edge stay on node 1 (their labels): a
node-local volume cannot follow a task to another node, so that node is the
one Swarm cannot lose (docs/SCALE-OUT.md). The node killed is another one.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.load import MIXED, LoadLoop
from tests.swarm.conftest import record_figure
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm

NODES = 3
REPLICAS = 3


def _nodes_ready(swarm: Swarm) -> dict[str, str]:
    return {
        n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"]
        for n in swarm.client.nodes.list()
    }


def _node_names(swarm: Swarm) -> dict[str, str]:
    """node id -> hostname (the node container's name)."""
    return {n.id: n.attrs["Description"]["Hostname"] for n in swarm.client.nodes.list()}


def _backend_nodes(swarm: Swarm) -> list[str]:
    names = _node_names(swarm)
    return sorted(names.get(t["NodeID"], "?") for t in swarm.running_tasks("backend"))


WRITER = """
import asyncio, os, sys, time
import asyncpg
from platform_services.settings import get_settings
tag, seconds, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
async def main():
    url = get_settings().database_url
    end = time.monotonic() + seconds
    conn, i = None, 0
    while time.monotonic() < end and not os.path.exists(stop):
        try:
            if conn is None:
                conn = await asyncpg.connect(url, timeout=5)
            i += 1
            await conn.execute("INSERT INTO swarm_acks VALUES ($1, $2)", tag, i)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            print("error", type(exc).__name__, file=sys.stderr, flush=True)
            conn = None
            await asyncio.sleep(0.5)
            continue
        print(i, flush=True)
        await asyncio.sleep(0.1)
asyncio.run(main())
"""
"""Numbered rows, one autocommitted INSERT each, with the backend's own
settings (the secret password, ``db`` over the overlay); a number is printed
only once its INSERT was acknowledged."""


class AckedWriter:
    """Inserts numbered rows into the database from a backend task on
    ``node``, over the overlay network to the database on node 1 (the API
    has no endpoint that writes numbered rows; this is the path the API's
    writes take, from a node that is not the database's). The acknowledged
    numbers are read as they come. Bounded in time."""

    def __init__(self, swarm: Swarm, node: str, seconds: int = 150) -> None:
        self.swarm = swarm
        self.node = node
        self.tag = f"{node.rsplit('-', 1)[-1]}-{uuid.uuid4().hex[:8]}"
        self.stop_file = f"/tmp/swarm-acks-stop-{self.tag}"
        self.container = swarm.task_container("backend", node=node)
        self.acked: list[int] = []
        # argv all the way down (docker exec passes it as is): no shell quoting
        self.proc = subprocess.Popen(
            [
                "docker",
                "exec",
                node,
                "docker",
                "exec",
                self.container,
                "python3",
                "-c",
                WRITER,
                self.tag,
                str(seconds),
                self.stop_file,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.acked.append(int(line))

    def stop(self) -> set[int]:
        """Stop writing (a file the loop looks for, so it ends on its own and
        every acknowledgement it printed is read); the acknowledged numbers.
        A writer whose node was lost has ended with it."""
        subprocess.run(
            [
                "docker",
                "exec",
                self.node,
                "docker",
                "exec",
                self.container,
                "touch",
                self.stop_file,
            ],
            capture_output=True,
            timeout=60,
        )
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reader.join(timeout=10)
        return set(self.acked)

    def rows(self) -> set[int]:
        """The numbers in the table."""
        out = self.swarm.docker(
            "exec",
            _db_container(self.swarm),
            *PSQL,
            "-c",
            f"SELECT n FROM swarm_acks WHERE tag = '{self.tag}'",
        )
        return {int(line) for line in out.split()}


PSQL = ("psql", "-qAt", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "investment_db")


def _db_container(swarm: Swarm) -> str:
    return swarm.task_container("db")


def test_backend_spreads_over_three_nodes(swarm: Swarm) -> None:
    r = swarm.script("up", "--nodes", str(NODES))
    assert r.returncode == 0, r.stderr[-3000:]
    states = _nodes_ready(swarm)
    assert len(states) == NODES and set(states.values()) == {"ready"}, states
    swarm.docker(
        "service", "scale", "--detach=false", f"{swarm.service('backend')}={REPLICAS}", timeout=600
    )
    swarm.wait(
        f"{REPLICAS} backend tasks",
        lambda: len(swarm.running_tasks("backend")) == REPLICAS,
        timeout=300,
    )
    # Swarm's spread strategy: one task per node
    assert _backend_nodes(swarm) == sorted(swarm.node(i) for i in range(1, NODES + 1))
    # the node exporter is global: one task per node, the new ones included,
    # and Prometheus scrapes each of them (and each backend task)
    swarm.wait(
        "a node exporter on every node", lambda: len(swarm.running_tasks("node_exporter")) == NODES
    )
    for job, n in (("node", NODES), ("backend", REPLICAS)):
        swarm.wait(
            f"{n} {job} targets up in Prometheus",
            lambda job=job, n=n: [t["health"] for t in swarm.prometheus_targets(job)] == ["up"] * n,
            timeout=120,
            every=3,
        )


def test_node_loss_reschedules_without_losing_acknowledged_rows(swarm: Swarm) -> None:
    victim = swarm.node(NODES)
    assert victim in _backend_nodes(swarm), _backend_nodes(swarm)
    names = _node_names(swarm)
    worker_node = [names.get(t["NodeID"]) for t in swarm.running_tasks("worker")]
    swarm.docker(
        "exec",
        _db_container(swarm),
        *PSQL,
        "-c",
        "CREATE TABLE IF NOT EXISTS swarm_acks (tag text NOT NULL, n integer NOT NULL)",
    )
    # one writer on a node that stays, one on the node that is lost
    writers = [AckedWriter(swarm, swarm.node(2)), AckedWriter(swarm, victim)]
    load = LoadLoop(
        swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=240
    )
    load.start()
    try:
        # traffic and writes flow before the loss (polled, bounded)
        swarm.wait(
            "rows acknowledged by both writers and 40 answers before the loss",
            lambda: all(len(w.acked) >= 10 for w in writers) and load.result().total >= 40,
            timeout=60,
            every=0.2,
        )
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        t_kill = time.monotonic()
        down_s = swarm.wait(
            f"the manager marks {victim} down",
            lambda: _nodes_ready(swarm).get(victim) == "down",
            timeout=120,
        )

        def rescheduled() -> bool:
            where = _backend_nodes(swarm)
            return len(where) == REPLICAS and victim not in where

        swarm.wait("the backend rescheduled on the nodes left", rescheduled, timeout=180)
        resched_s = time.monotonic() - t_kill
        t_back = time.monotonic()
        # the stack serves on the nodes left: 60 answers after it (polled)
        swarm.wait(
            "60 answers after the reschedule",
            lambda: len(load.result().after(t_back + 1)) >= 60,
            timeout=60,
            every=0.2,
        )
    finally:
        result = load.stop()
        acked = {w.node: w.stop() for w in writers}
    found = {w.node: w.rows() for w in writers}
    lost = {node: sorted(acked[node] - found[node]) for node in acked}
    figures: dict[str, Any] = {
        "nodes": NODES,
        "killed": victim,
        "worker_was_on": worker_node,
        "node_down_after_s": round(down_s, 1),
        "backend_rescheduled_after_s": round(resched_s, 1),
        "load": result.summary(),
        "failed_after_reschedule": len(result.failed(t0=t_back + 1)),
        "slowest_ms": max((s.ms or 0) for s in result.samples),
        "rows_acked": {node: len(a) for node, a in acked.items()},
        "rows_lost": {node: len(x) for node, x in lost.items()},
    }
    record_figure("swarm_node_loss", figures)
    assert all(acked.values()), f"a writer acknowledged nothing: {figures['rows_acked']}"
    assert not any(lost.values()), (
        f"acknowledged rows lost: { {n: x[:10] for n, x in lost.items()} }"
    )
    assert not result.failed(t0=t_back + 1), result.summary()
    assert httpx.get(f"{swarm.base_url}/api/health", timeout=10).status_code == 200


def test_lost_node_rejoins_when_started_again(swarm: Swarm) -> None:
    r = swarm.script("up", "--nodes", str(NODES))
    assert r.returncode == 0, r.stderr[-3000:]
    swarm.wait(
        "every node ready again",
        lambda: (
            set(_nodes_ready(swarm).values()) == {"ready"} and len(_nodes_ready(swarm)) == NODES
        ),
        timeout=180,
    )
    swarm.docker("service", "scale", "--detach=false", f"{swarm.service('backend')}=1", timeout=300)
    swarm.wait("one backend task", lambda: len(swarm.running_tasks("backend")) == 1)
