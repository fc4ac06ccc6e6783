"""The swarm source's parsers and its mode detection, on the engine's JSON.

``data/swarm_api_shapes.json``: the shapes of the Engine API reference
(``GET /info``, ``/services?status=true``, ``/tasks``, ``/nodes``) for cases
a one-node swarm cannot show (a global service, a task no node can take, a
failed task of a rolled-back image, a drained node that is down).
``data/swarm_one_node.json``: recorded from a real one-node swarm (a node
container of ``scripts/swarm.sh``) by ``tests/unit/core/data/record_swarm.py``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.sources.docker import swarm as parse
from console.core.sources.docker.swarm import SwarmSource

DATA = Path(__file__).parent / "data"
SHAPES: dict[str, Any] = json.loads((DATA / "swarm_api_shapes.json").read_text())
NOW = datetime(2026, 12, 7, 11, 42, 30, tzinfo=UTC)


def snapshot_of(data: dict[str, Any]) -> Any:
    return parse.swarm_snapshot(
        taken_at=NOW,
        stack=data["stack"],
        info=data["info"],
        services=data["services"],
        tasks=data["tasks"],
        nodes=data["nodes"],
    )


def test_image_tag_beside_the_digest_stack_deploy_pins() -> None:
    digest = "@sha256:4f1e0b7d6c2a9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
    assert parse.service_image("investment-backend:v1.2.3" + digest) == (
        "investment-backend",
        "v1.2.3",
    )
    assert parse.service_image("registry:5000/investment-db:latest" + digest) == (
        "registry:5000/investment-db",
        "latest",
    )
    assert parse.service_image("registry:5000/investment-db" + digest) == (
        "registry:5000/investment-db",
        "4f1e0b7d6c2a",
    )
    assert parse.service_image("nginx") == ("nginx", "latest")


def test_nodes_role_availability_state_labels() -> None:
    snap = snapshot_of(SHAPES)
    # managers first, the leader first among them
    assert [n.hostname for n in snap.nodes] == ["node-1", "node-2", "node-3"]
    node1, node2, node3 = snap.nodes
    assert (node1.role, node1.leader, node1.reachability) == ("manager", True, "reachable")
    assert node1.labels == {"investment.db": "true"}
    assert node1.engine_version == "26.1.5+dfsg1"
    assert (node2.role, node2.availability, node2.state) == ("worker", "active", "ready")
    assert (node3.availability, node3.state, node3.message) == (
        "drain",
        "down",
        "heartbeat failure",
    )
    assert snap.node_id == node1.id


def test_services_replicas_and_update_state() -> None:
    snap = snapshot_of(SHAPES)
    # stack order: the edge first, then the backend
    assert [s.service for s in snap.services] == ["nginx", "backend"]
    nginx, backend = snap.services
    assert (backend.name, backend.mode, backend.running, backend.desired) == (
        "investment_backend",
        "replicated",
        2,
        3,
    )
    assert (backend.image, backend.tag) == ("investment-backend", "v1.2.3")
    assert backend.update_state == "rollback_completed"
    assert (nginx.mode, nginx.running, nginx.desired) == ("global", 2, 2)
    assert nginx.ports == ["8080->80/tcp host"]


def test_tasks_matched_to_services_and_nodes() -> None:
    snap = snapshot_of(SHAPES)
    nginx, backend = snap.services
    # the task of another stack's service is nobody's here
    assert sum(len(s.tasks) for s in snap.services) == 7
    assert {t.node for t in nginx.tasks} == {"node-1", "node-2"}
    assert all(t.slot is None for t in nginx.tasks)
    by_id = {t.id: t for t in backend.tasks}
    failed = by_id["tb3aaaaaaaaa"]
    assert (failed.slot, failed.node, failed.state, failed.desired_state) == (
        3,
        "node-3",
        "failed",
        "shutdown",
    )
    assert (failed.error, failed.exit_code, failed.tag) == ("task: non-zero exit (1)", 1, "v1.3.0")
    pending = by_id["tb3bbbbbbbbb"]
    assert pending.node is None and pending.node_id is None
    assert pending.error is not None and pending.error.startswith("no suitable node")
    assert pending.since == datetime(2026, 12, 7, 11, 42, 0, 250000, tzinfo=UTC)
    assert pending.name == "backend.3"
    assert nginx.tasks[0].name == "nginx.node-1"


def test_shown_tasks_live_ones_and_why_a_slot_is_empty() -> None:
    backend = snapshot_of(SHAPES).services[1]
    shown = [(t.name, t.state) for t in backend.shown_tasks]
    # slot 1's old task (shut down by the update) is history: not shown; slot
    # 3 shows the pending replacement, its failed predecessor is history too
    assert shown == [
        ("backend.1", "running"),
        ("backend.2", "running"),
        ("backend.3", "pending"),
    ]
    last = backend.last_error
    assert last is not None and last.id == "tb3bbbbbbbbb"


def test_a_slot_with_no_live_task_shows_its_newest_failure() -> None:
    data = json.loads(json.dumps(SHAPES))
    data["tasks"] = [t for t in data["tasks"] if not t["ID"].startswith("tb3b")]
    backend = snapshot_of(data).services[1]
    shown = [(t.name, t.state, t.error) for t in backend.shown_tasks]
    assert shown[-1] == ("backend.3", "failed", "task: non-zero exit (1)")


def test_counts_from_the_tasks_without_service_status() -> None:
    """API < 1.41 has no ServiceStatus: running and desired from the tasks."""
    data = json.loads(json.dumps(SHAPES))
    for service in data["services"]:
        del service["ServiceStatus"]
    nginx, backend = snapshot_of(data).services
    assert (backend.running, backend.desired) == (2, 3)
    assert (nginx.running, nginx.desired) == (2, 2)


@pytest.mark.parametrize(
    ("swarm", "has_services", "mode", "words"),
    [
        ({}, None, "compose", "not part of a swarm (swarm state: inactive)"),
        ({"LocalNodeState": "pending"}, None, "compose", "swarm state: pending"),
        (
            {"LocalNodeState": "active", "ControlAvailable": False, "NodeID": "abc"},
            None,
            "compose",
            "swarm worker (node abc): services are read on a manager",
        ),
        (
            {"LocalNodeState": "active", "ControlAvailable": True},
            False,
            "compose",
            "no swarm service labelled com.docker.stack.namespace=investment",
        ),
        (
            {"LocalNodeState": "active", "ControlAvailable": True},
            True,
            "swarm",
            "swarm stack 'investment'",
        ),
    ],
)
def test_stack_mode(
    swarm: dict[str, Any], has_services: bool | None, mode: str, words: str
) -> None:
    found, reason = parse.stack_mode({"Swarm": swarm}, "investment", has_services=has_services)
    assert found == mode
    assert words in reason


def test_stack_mode_without_info() -> None:
    assert parse.stack_mode(None, "x", has_services=None)[0] == "compose"


# --- the source's verdicts, on a fake engine answering with the shapes ------------


class FakeApi:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.down = False
        self.calls: list[str] = []

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise ConnectionError("Connection refused")

    def info(self) -> dict[str, Any]:
        self._check("info")
        return self.data["info"]

    def services(self, filters: dict[str, Any], status: bool | None = None) -> list[Any]:
        self._check("services")
        label = filters["label"]
        return [
            s
            for s in self.data["services"]
            if label.endswith(s["Spec"]["Labels"].get(parse.STACK_LABEL, "?"))
        ]

    def tasks(self, filters: dict[str, Any]) -> list[Any]:
        self._check("tasks")
        return [t for t in self.data["tasks"] if t["ServiceID"] in filters["service"]]

    def nodes(self) -> list[Any]:
        self._check("nodes")
        return self.data["nodes"]


class FakeHandle:
    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def info(self, refresh: bool = False) -> dict[str, Any]:
        return dict(self.api.info())

    def forget_cache(self) -> None:
        pass

    async def call(self, fn: Any, *args: Any, **_: Any) -> Any:
        return fn(*args)


def source(data: dict[str, Any], mode: str = "auto") -> tuple[SwarmSource, FakeApi]:
    api = FakeApi(data)
    settings = Settings(project="investment", mode=mode)  # type: ignore[arg-type]
    return SwarmSource(settings, FakeHandle(api), clock=lambda: NOW), api  # type: ignore[arg-type]


def test_source_in_a_swarm_publishes_every_poll() -> None:
    src, api = source(SHAPES)
    first = asyncio.run(src.poll())
    assert first is not None and first.mode == "swarm"
    assert [s.service for s in first.services] == ["nginx", "backend"]
    assert src.interval == src.settings.refresh.containers
    assert asyncio.run(src.poll()) is not None
    assert api.calls[:4] == ["info", "services", "tasks", "nodes"]


def test_source_on_a_compose_engine_publishes_the_verdict_once() -> None:
    data = {
        **SHAPES,
        "info": {"ServerVersion": "20.10.24", "Swarm": {"LocalNodeState": "inactive"}},
    }
    src, api = source(data)
    first = asyncio.run(src.poll())
    assert first is not None and first.mode == "compose"
    assert first.reason is not None and "not part of a swarm" in first.reason
    assert first.services == [] and first.engine_version == "20.10.24"
    # the same verdict again: nothing new; and it asks only now and then
    assert asyncio.run(src.poll()) is None
    assert src.interval == parse.DETECT_INTERVAL
    assert "services" not in api.calls
    # the engine goes away: the containers source says so, this one is quiet
    api.down = True
    assert asyncio.run(src.poll()) is None


def test_source_loses_the_engine_in_swarm_mode() -> None:
    src, api = source(SHAPES)
    assert asyncio.run(src.poll()) is not None
    api.down = True
    with pytest.raises(SourceError, match="cannot connect to the engine"):
        asyncio.run(src.poll())


def test_source_forced_swarm_on_a_worker_says_what_to_do() -> None:
    info = {"Swarm": {"LocalNodeState": "active", "ControlAvailable": False, "NodeID": "w1"}}
    src, _ = source({**SHAPES, "info": info}, mode="swarm")
    with pytest.raises(SourceError) as caught:
        asyncio.run(src.poll())
    text = str(caught.value)
    assert "point DOCKER_HOST at a manager" in text and "STACKDECK_MODE=swarm" in text


def test_stack_removed_turns_back_to_compose() -> None:
    src, api = source(SHAPES)
    assert asyncio.run(src.poll()).mode == "swarm"  # type: ignore[union-attr]
    api.data = {**SHAPES, "services": []}
    after = asyncio.run(src.poll())
    assert after is not None and after.mode == "compose"
    assert after.reason is not None and "no swarm service labelled" in after.reason


# --- recorded from a real one-node swarm ---------------------------------------------

RECORDED: dict[str, Any] = json.loads((DATA / "swarm_one_node.json").read_text())
"""``swc-console``: 2 replicas of the market-sim image, scaled 3 and back to 2,
then ``service update --image`` to a tag the registry does not have: the
update paused, slot 2 rejected five times (the engine keeps 5 tasks a slot)."""


def test_recorded_swarm_an_update_paused_on_a_missing_image() -> None:
    snap = snapshot_of(RECORDED)
    assert snap.mode == "swarm" and snap.engine_version == "26.1.5+dfsg1"
    (web,) = snap.services
    assert (web.name, web.service, web.mode) == ("swc-console_web", "web", "replicated")
    assert (web.running, web.desired) == (1, 2)
    assert (web.image, web.tag) == ("swc-swarm-registry:5000/swc-market-sim", "nosuchtag")
    assert web.update_state == "paused"
    assert web.update_message is not None and web.update_message.startswith(
        "update paused due to failure"
    )
    assert len(web.tasks) == 6


def test_recorded_swarm_tasks_shown_one_per_slot() -> None:
    (web,) = snapshot_of(RECORDED).services
    shown = [(t.name, t.state, t.desired_state, t.tag) for t in web.shown_tasks]
    # slot 1 still runs the old image (pinned to its digest: the tag is kept);
    # slot 2 has no live task: its newest rejection says why
    assert shown == [
        ("web.1", "running", "running", "latest"),
        ("web.2", "rejected", "ready", "nosuchtag"),
    ]
    rejected = web.shown_tasks[1]
    assert rejected.id == "zecr4f8si5qv"
    assert rejected.error == "No such image: swc-swarm-registry:5000/swc-market-sim:nosuchtag"
    assert web.last_error is not None and web.last_error.id == "zecr4f8si5qv"
    assert {t.node for t in web.tasks} == {"swc-swarm-node-1"}


def test_recorded_swarm_the_node() -> None:
    snap = snapshot_of(RECORDED)
    (node,) = snap.nodes
    assert (node.hostname, node.role, node.leader, node.availability, node.state) == (
        "swc-swarm-node-1",
        "manager",
        True,
        "active",
        "ready",
    )
    assert node.labels == {"db": "true", "edge": "true", "redis": "true"}
    assert node.id == snap.node_id == RECORDED["info"]["Swarm"]["NodeID"]


NODE_DOWN: dict[str, Any] = json.loads((DATA / "swarm_node_down.json").read_text())
"""``swc-spread``: 2 replicas over two nodes, node 2's container killed; 30 s
later: node 2 down, its task still ``running`` (the last state it reported)
with desired ``shutdown``, the replacement running on node 1. The engine's
``ServiceStatus`` says 3 running of 2."""


def test_recorded_node_down_its_task_is_lost_and_not_counted() -> None:
    snap = snapshot_of(NODE_DOWN)
    assert NODE_DOWN["services"][0]["ServiceStatus"]["RunningTasks"] == 3
    (web,) = snap.services
    assert (web.running, web.desired) == (2, 2)
    by_node = {(t.slot, t.node): t for t in web.shown_tasks}
    lost = by_node[(2, "swc-swarm-node-2")]
    assert (lost.state, lost.desired_state, lost.node_state) == ("running", "shutdown", "down")
    assert lost.lost and not lost.running
    again = by_node[(2, "swc-swarm-node-1")]
    assert again.running and not again.lost
    down = next(n for n in snap.nodes if n.hostname == "swc-swarm-node-2")
    assert (down.state, down.message, down.role) == ("down", "heartbeat failure", "worker")


@pytest.mark.parametrize(("mode", "has"), [("auto", True), ("swarm", True), ("compose", False)])
def test_the_monitor_runs_the_swarm_source_unless_compose(mode: str, has: bool) -> None:
    from console.core.monitor import default_sources

    sources = default_sources(Settings(project="investment", mode=mode))  # type: ignore[arg-type]
    swarm = [s for s in sources if isinstance(s, SwarmSource)]
    assert bool(swarm) is has
    if swarm:
        # one docker client for the engine sources
        containers = next(s for s in sources if s.name == "engine")
        assert swarm[0].handle is containers.handle  # type: ignore[attr-defined]
        assert swarm[0].forced is (mode == "swarm")


# --- the swarm's changes as events (recorded snapshots, one step back) ------------------


def _at(data: dict[str, Any], seconds: float) -> Any:
    return snapshot_of(data).model_copy(update={"taken_at": NOW + timedelta(seconds=seconds)})


def test_changes_node_down_task_lost_and_rescheduled() -> None:
    """Before: node 2 ready, web.2 running there. After (as recorded): node 2
    down, web.2 there lost, a new web.2 on node 1."""
    before = json.loads(json.dumps(NODE_DOWN))
    for node in before["nodes"]:
        if node["Description"]["Hostname"] == "swc-swarm-node-2":
            node["Status"] = {"State": "ready", "Addr": node["Status"]["Addr"]}
    before["tasks"] = [t for t in before["tasks"] if not t["ID"].startswith("sn95")]
    for t in before["tasks"]:
        t["DesiredState"] = "running"
    changes = parse.swarm_changes(_at(before, 0), _at(NODE_DOWN, 30))
    seen = [(e.container, e.action, e.detail, e.origin) for e in changes]
    assert seen == [
        ("swc-swarm-node-2", "node down", "was ready (heartbeat failure)", "swarm"),
        ("web.2", "rescheduled", "swc-swarm-node-2 -> swc-swarm-node-1", "swarm"),
        ("web.2", "task lost", "node swc-swarm-node-2 down", "swarm"),
    ]
    assert {e.at for e in changes} == {NOW + timedelta(seconds=30)}


def test_changes_update_paused_and_a_task_rejected() -> None:
    before = json.loads(json.dumps(RECORDED))
    del before["services"][0]["UpdateStatus"]
    before["tasks"] = [t for t in before["tasks"] if not t["ID"].startswith("zecr")]
    changes = parse.swarm_changes(_at(before, 0), _at(RECORDED, 3))
    seen = [(e.container, e.action, e.detail) for e in changes]
    assert seen[0][:2] == ("swc-console_web", "update paused")
    assert (seen[0][2] or "").startswith("update paused due to failure")
    assert seen[1] == (
        "web.2",
        "task rejected",
        "No such image: swc-swarm-registry:5000/swc-market-sim:nosuchtag",
    )
    assert len(seen) == 2


def test_changes_scale_drain_join_and_nothing_at_the_start() -> None:
    after = json.loads(json.dumps(SHAPES))
    before = json.loads(json.dumps(SHAPES))
    before["services"][0]["ServiceStatus"]["DesiredTasks"] = 2
    before["nodes"] = [n for n in before["nodes"] if n["Description"]["Hostname"] != "node-2"]
    for node in before["nodes"]:
        if node["Description"]["Hostname"] == "node-3":
            node["Spec"]["Availability"] = "active"
    changes = parse.swarm_changes(_at(before, 0), _at(after, 5))
    seen = {(e.container, e.action, e.detail) for e in changes}
    assert seen == {
        ("node-2", "node joined", "worker, ready"),
        ("node-3", "node drain", "was active"),
        ("investment_backend", "scaled", "2 -> 3 tasks"),
    }
    assert parse.swarm_changes(None, _at(after, 5)) == []
    assert parse.swarm_changes(_at(after, 0), _at(after, 5)) == []


async def test_the_monitor_puts_the_swarm_changes_in_the_events_timeline() -> None:
    from console.core.monitor import Monitor
    from console.core.sources.docker.events import EventsSource
    from console.core.sources.docker.handle import DockerHandle

    settings = Settings(project="swc-spread", prometheus_url=None)
    handle = DockerHandle(settings)  # never asked: nothing here polls
    events = EventsSource(settings, handle)
    swarm = SwarmSource(settings, handle)
    published: list[tuple[str, Any]] = []
    monitor = Monitor(
        settings,
        lambda kind, payload: published.append((kind, payload)),
        sources=[swarm, events],
        autostart=False,
    )
    before = json.loads(json.dumps(NODE_DOWN))
    for node in before["nodes"]:
        node["Status"]["State"] = "ready"
    await monitor._publish(swarm, _at(before, 0))
    assert list(events._events) == []  # the first snapshot is no change
    await monitor._publish(swarm, _at(NODE_DOWN, 30))
    timeline = [(e.container, e.action) for e in events._events]
    assert ("swc-swarm-node-2", "node down") in timeline
    assert [k for k, _ in published] == ["swarm", "swarm"]
    handle.close()
