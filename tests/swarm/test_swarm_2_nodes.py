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


class AckedWriter:
    """Inserts numbered rows into the database, one transaction each, with
    psql inside the database's task (node 1); a number is printed only once
    its COMMIT was acknowledged. Bounded in time."""

    def __init__(self, swarm: Swarm, seconds: int = 150) -> None:
        self.swarm = swarm
        self.tag = uuid.uuid4().hex[:12]
        self.stop_file = f"/tmp/swarm-acks-stop-{self.tag}"
        loop = (
            "psql -qAt -h /var/run/postgresql -U postgres -d investment_db -c "
            "'CREATE TABLE IF NOT EXISTS swarm_acks (tag text NOT NULL, n integer NOT NULL)' "
            "&& i=0 && end=$((SECONDS + " + str(seconds) + ")) && "
            f"while [ $SECONDS -lt $end ] && [ ! -e {self.stop_file} ]; do i=$((i + 1)); "
            "psql -qAt -h /var/run/postgresql -U postgres -d investment_db -c "
            f"\"INSERT INTO swarm_acks VALUES ('{self.tag}', $i)\" >/dev/null && echo $i; "
            "sleep 0.1; done"
        )
        # argv all the way down (docker exec passes it as is): no shell quoting
        self.proc = subprocess.Popen(
            [
                "docker",
                "exec",
                swarm.manager,
                "docker",
                "exec",
                self._db_container(),
                "bash",
                "-c",
                loop,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> set[int]:
        """Stop writing (a file the loop looks for, so it ends on its own and
        every acknowledgement it printed is read); the acknowledged numbers."""
        self.swarm.docker("exec", self._db_container(), "touch", self.stop_file)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return {int(line) for line in out.splitlines() if line.strip().isdigit()}

    def rows(self) -> set[int]:
        """The numbers in the table."""
        out = self.swarm.docker(
            "exec",
            self._db_container(),
            "psql",
            "-qAt",
            "-h",
            "/var/run/postgresql",
            "-U",
            "postgres",
            "-d",
            "investment_db",
            "-c",
            f"SELECT n FROM swarm_acks WHERE tag = '{self.tag}'",
        )
        return {int(line) for line in out.split()}

    def _db_container(self) -> str:
        return self.swarm.docker(
            "ps", "-q", "-f", f"label=com.docker.swarm.service.name={self.swarm.service('db')}"
        ).strip()


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
    writer = AckedWriter(swarm)
    load = LoadLoop(
        swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=240
    )
    load.start()
    try:
        time.sleep(3)  # traffic and writes flow before the loss
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
        time.sleep(5)  # the stack serves on the nodes left
    finally:
        result = load.stop()
        acked = writer.stop()
    found = writer.rows()
    lost = acked - found
    figures: dict[str, Any] = {
        "nodes": NODES,
        "killed": victim,
        "worker_was_on": worker_node,
        "node_down_after_s": round(down_s, 1),
        "backend_rescheduled_after_s": round(resched_s, 1),
        "load": result.summary(),
        "failed_after_reschedule": len(result.failed(t0=t_back + 1)),
        "slowest_ms": max((s.ms or 0) for s in result.samples),
        "rows_acked": len(acked),
        "rows_lost": len(lost),
    }
    record_figure("swarm_node_loss", figures)
    assert acked, "the writer acknowledged nothing"
    assert not lost, f"{len(lost)} acknowledged rows lost: {sorted(lost)[:10]}"
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
