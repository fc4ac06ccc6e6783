"""The Swarm operations' pure rules (console/core/ops/swarm/plan.py) and
their refusals through the engine, on a stack recorded from a real one-node
swarm (tests/unit/core/data/swarm_ops_stack.json: scripts/swarm.sh's stack,
environment values dropped) and a fake engine that records every write."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.core.models import OpEvent
from console.core.ops import run_op
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import BadInput
from console.core.ops.swarm import ops as swarm_ops
from console.core.ops.swarm import plan

DATA = json.loads((Path(__file__).parent / "data" / "swarm_ops_stack.json").read_text())
STACK = DATA["stack"]


def _services() -> list[dict[str, Any]]:
    return copy.deepcopy(DATA["services"])


def _nodes() -> list[dict[str, Any]]:
    return copy.deepcopy(DATA["nodes"])


def _service(short: str) -> dict[str, Any]:
    return next(s for s in _services() if s["Spec"]["Name"] == f"{STACK}_{short}")


def _second_node(labels: dict[str, str] | None = None) -> dict[str, Any]:
    node = copy.deepcopy(DATA["nodes"][0])
    node["ID"] = "n2" + node["ID"][2:]
    node["Description"]["Hostname"] = "node-2"
    node["Spec"] = {"Availability": "active", "Labels": labels or {}, "Role": "worker"}
    return node


# --- scaling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("short", "n", "words"),
    [
        ("db", 2, "db is pinned (node.labels.db == true)"),
        ("redis", 2, "redis is pinned"),
        ("nginx", 2, "nginx is pinned (node.labels.edge == true)"),
        ("prometheus", 2, "prometheus is pinned"),
        ("node_exporter", 2, "node_exporter is a global service"),
        ("worker", 2, "worker is a singleton on Swarm"),
        ("backend", 0, "backend cannot scale to 0"),
        ("backend", 5, "backend scales to at most 4 tasks (4 per schedulable node, 1 schedulable)"),
        ("backend", -1, "replica count must be 0 or more"),
    ],
)
def test_scale_refusals_name_why(short: str, n: int, words: str) -> None:
    services = {s["Spec"]["Name"].removeprefix(f"{STACK}_"): s for s in _services()}
    with pytest.raises(BadInput) as caught:
        plan.check_scale(services.get(short), short, n, _nodes(), STACK, services)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_scale_of_an_unknown_service_lists_the_stack_s_services() -> None:
    services = {s["Spec"]["Name"].removeprefix(f"{STACK}_"): s for s in _services()}
    with pytest.raises(BadInput, match=r"has no service 'nope'; its services: backend, db, "):
        plan.check_scale(None, "nope", 2, _nodes(), STACK, services)


@pytest.mark.parametrize(
    ("short", "n"), [("backend", 3), ("backend", 1), ("worker", 0), ("frontend", 2)]
)
def test_scale_allowed(short: str, n: int) -> None:
    plan.check_scale(_service(short), short, n, _nodes(), STACK)


def test_backend_limit_grows_with_schedulable_nodes() -> None:
    nodes = [*_nodes(), _second_node()]
    plan.check_scale(_service("backend"), "backend", 8, nodes, STACK)
    nodes[1]["Spec"]["Availability"] = "drain"
    with pytest.raises(BadInput, match="at most 4 tasks"):
        plan.check_scale(_service("backend"), "backend", 8, nodes, STACK)


def test_parse_swarm_scale() -> None:
    assert plan.parse_swarm_scale("backend=3") == ("backend", 3)
    assert plan.parse_swarm_scale("celery_worker=0") == ("worker", 0)
    assert plan.parse_swarm_scale("backend", "2") == ("backend", 2)
    with pytest.raises(BadInput, match="expected SERVICE=N"):
        plan.parse_swarm_scale("backend:3")


# --- nodes ---------------------------------------------------------------------------------


def test_unknown_node_is_refused_with_the_nodes_that_exist() -> None:
    nodes = [*_nodes(), _second_node()]
    with pytest.raises(BadInput) as caught:
        plan.find_node(nodes, "node-9")
    hostname = DATA["nodes"][0]["Description"]["Hostname"]
    assert str(caught.value) == f"no node 'node-9' in this swarm; its nodes: node-2, {hostname}"


def test_node_by_hostname_or_id_prefix() -> None:
    nodes = [*_nodes(), _second_node()]
    assert plan.find_node(nodes, "node-2")["ID"].startswith("n2")
    first = DATA["nodes"][0]
    assert plan.find_node(nodes, first["ID"][:8])["ID"] == first["ID"]
    with pytest.raises(BadInput):
        plan.find_node(nodes, first["ID"][:3])  # too short to be an id


def test_draining_the_last_node_that_can_run_the_db_is_refused() -> None:
    nodes = _nodes()
    with pytest.raises(BadInput) as caught:
        plan.check_drain(nodes, nodes[0], _services(), STACK)
    message = str(caught.value)
    assert "last schedulable node that can run db (node.labels.db == true)" in message
    assert "redis (node.labels.redis == true)" in message


def test_drain_allowed_where_every_pinned_service_has_another_node() -> None:
    labelled = _second_node({"db": "true", "redis": "true", "edge": "true"})
    nodes = [*_nodes(), labelled]
    plan.check_drain(nodes, nodes[0], _services(), STACK)
    # a worker node without labels never strands anything
    plain = _second_node()
    plan.check_drain([*_nodes(), plain], plain, _services(), STACK)
    # the other node is drained or down itself: node 1 is the last again
    labelled["Spec"]["Availability"] = "drain"
    with pytest.raises(BadInput, match="db"):
        plan.check_drain(nodes, nodes[0], _services(), STACK)


def test_node_satisfies_constraints() -> None:
    node = _nodes()[0]
    assert plan.node_satisfies(node, ["node.labels.db == true", "node.role==manager"])
    assert not plan.node_satisfies(node, ["node.labels.db != true"])
    assert not plan.node_satisfies(node, ["node.labels.gpu == true"])
    assert plan.node_satisfies(node, ["node.labels.gpu != true"])
    assert plan.node_satisfies(node, ["engine.labels.x == y"])  # not judged here


# --- images, outcomes, rollback target ------------------------------------------------------


def test_images_and_versions() -> None:
    current = "reg-1:5000/investment-backend:v1.0.0@sha256:" + "a" * 64
    assert plan.version_of(current) == "v1.0.0"
    assert plan.image_for_version(current, "v2") == "reg-1:5000/investment-backend:v2"
    assert plan.repository_path(current) == ("reg-1:5000", "investment-backend")
    assert plan.image_for_version("investment-backend:v1", "v2") == "investment-backend:v2"
    assert plan.repository_path("investment-backend:v1") == (None, "investment-backend")


def _task(image: str, state: str, err: str | None, at: str) -> dict[str, Any]:
    return {
        "ID": "t" * 25,
        "Spec": {"ContainerSpec": {"Image": image}},
        "Status": {"State": state, "Err": err, "Timestamp": at},
        "DesiredState": "shutdown",
    }


def test_update_outcomes() -> None:
    done = plan.update_outcome({"State": "completed", "Message": "update completed"})
    assert done.finished and done.ok and not done.rolled_back
    image = "reg:5000/investment-backend:v3"
    tasks = [
        _task(image, "failed", "old error", "2026-12-07T10:00:00Z"),
        _task(
            image + "@sha256:" + "b" * 64,
            "failed",
            "task: non-zero exit (143): dockerexec: unhealthy container",
            "2026-12-07T10:01:00Z",
        ),
        _task("reg:5000/investment-backend:v2", "failed", "other image", "2026-12-07T10:02:00Z"),
    ]
    status = {
        "State": "rollback_completed",
        "Message": "update rolled back due to failure or early termination of task x",
    }
    back = plan.update_outcome(status, tasks, image)
    assert back.finished and not back.ok and back.rolled_back
    assert back.reason == (
        "update rolled back due to failure or early termination of task x: task "
        "tttttttttttt: task: non-zero exit (143): dockerexec: unhealthy container"
    )
    started = plan.update_outcome({"State": "rollback_started", "Message": "m"})
    assert not started.finished and started.rolled_back
    paused = plan.update_outcome({"State": "paused", "Message": "update paused due to failure"})
    assert paused.finished and not paused.ok and not paused.rolled_back
    asked = plan.update_outcome(
        {"State": "rollback_completed", "Message": "rollback completed"}, rollback=True
    )
    assert asked.ok and not asked.rolled_back
    assert not plan.update_outcome(None).finished


def test_rollback_target_skips_the_version_that_failed() -> None:
    history = [
        {"op": "deploy", "result": "ok", "version": "v2", "from_version": "v1"},
        {"op": "deploy", "result": "rolled-back", "version": "v3", "from_version": "v2"},
    ]
    # Swarm's previous spec is v3 (it rolled back from it): the target is v1
    assert plan.rollback_target("v2", "v3", history) == ("v1", "update")
    assert plan.rollback_target("v2", "v1", history) == ("v1", "previous-spec")
    # no deploy brought the current version: the previous spec
    assert plan.rollback_target("v5", "v4", history) == ("v4", "previous-spec")
    assert plan.rollback_target("v1", None, []) is None
    assert plan.rollback_target("v1", "v1", []) is None


# --- through the engine: refusals change nothing -----------------------------------------------


class FakeEngine:
    """The recorded stack instead of a manager; every write is recorded (and
    none is expected from a refusal)."""

    writes: list[tuple[str, Any]] = []
    extra_nodes: list[dict[str, Any]] = []

    def __init__(self, ctx: OpContext):
        self.ctx = ctx

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def close(self) -> None:
        pass

    def full_name(self, short: str) -> str:
        return f"{self.ctx.stack}_{short}"

    def services(self) -> list[dict[str, Any]]:
        return _services()

    def service(self, short: str) -> dict[str, Any] | None:
        return next((s for s in _services() if s["Spec"]["Name"] == self.full_name(short)), None)

    def nodes(self) -> list[dict[str, Any]]:
        return _nodes() + self.extra_nodes

    def image_exists(self, image: str) -> bool | str:
        return True if image.endswith(":v1.0.0") else "manifest unknown: manifest unknown"

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "x"}}

    def update_image(self, *args: Any, **kwargs: Any) -> None:
        self.writes.append(("update", args))

    def rollback(self, *args: Any) -> None:
        self.writes.append(("rollback", args))

    def scale(self, *args: Any) -> None:
        self.writes.append(("scale", args))

    def set_availability(self, *args: Any) -> None:
        self.writes.append(("availability", args))


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeEngine]]:
    FakeEngine.writes = []
    FakeEngine.extra_nodes = []
    monkeypatch.setattr(swarm_ops, "SwarmEngine", FakeEngine)

    async def tags(ctx: OpContext, image: str) -> list[str]:
        return ["v1.0.0", "v1.1.0"]

    monkeypatch.setattr(swarm_ops, "registry_versions", tags)
    yield FakeEngine


def _ctx(tmp_path: Path, mode: str) -> OpContext:
    return OpContext(
        stack=STACK,
        repo=tmp_path,
        state_dir=tmp_path / "state",
        run_dir=tmp_path / "run",
        base_url="http://127.0.0.1:9",
        mode=mode,
        operator=Operator(user="tester", ssh_client=None, host="h", pid=1),
    )


def _run(name: str, ctx: OpContext, **params: Any) -> list[OpEvent]:
    async def go() -> list[OpEvent]:
        return [e async for e in run_op(name, ctx, **params)]

    return asyncio.run(go())


def _audit(ctx: OpContext) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ctx.audit_path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("scale", {"spec": "db=2"}, "db is pinned"),
        ("node-drain", {"node": "node-9"}, "no node 'node-9' in this swarm; its nodes: "),
        (
            "node-drain",
            {"node": DATA["nodes"][0]["Description"]["Hostname"]},
            "last schedulable node that can run db",
        ),
        ("deploy", {"version": "v9.9.9"}, "unknown version v9.9.9: the registry has no "),
        ("vacuum", {}, "vacuum acts on a compose project and this is a swarm stack"),
    ],
)
def test_swarm_refusals_change_nothing(
    tmp_path: Path, fake_engine: type[FakeEngine], name: str, params: dict[str, Any], words: str
) -> None:
    ctx = _ctx(tmp_path, "swarm")
    events = _run(name, ctx, **params)
    assert [e.status for e in events] == ["fail"], events
    assert words in events[0].message
    assert events[0].data["code"] == "bad-input"  # exit 2 on the CLI
    assert fake_engine.writes == []
    assert [(a["event"], a["result"]) for a in _audit(ctx)] == [("refused", "bad-input")]
    assert not ctx.lock_path.exists()


def test_unknown_version_lists_the_registry_s_versions(
    tmp_path: Path, fake_engine: type[FakeEngine]
) -> None:
    events = _run("deploy", _ctx(tmp_path, "swarm"), version="v9.9.9")
    assert "Available: v1.1.0, v1.0.0" in events[0].message
    assert "bash scripts/swarm.sh push investment-backend:v9.9.9" in events[0].message


def test_node_ops_are_refused_on_a_compose_project(tmp_path: Path) -> None:
    events = _run("node-drain", _ctx(tmp_path, "compose"), node="node-1")
    assert events[-1].data["code"] == "bad-input"
    assert "acts on a swarm stack's nodes and investment is a compose project" in events[-1].message


def test_auto_mode_asks_the_engine(tmp_path: Path, fake_engine: type[FakeEngine]) -> None:
    events = _run("scale", _ctx(tmp_path, "auto"), spec="redis=3")
    assert "redis is pinned" in events[-1].message


def test_drain_of_a_plain_node_runs(
    tmp_path: Path, fake_engine: type[FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation passes and the write is the node's availability (the wait
    for the tasks to move is the integration test's)."""
    fake_engine.extra_nodes = [_second_node()]
    ctx = _ctx(tmp_path, "swarm")
    params = asyncio.run(swarm_ops.validate_node_drain(ctx, swarm_ops.NodeParams(node="node-2")))
    assert params.node == "node-2"
    assert fake_engine.writes == []


def test_a_drain_refusal_names_the_data_services_first() -> None:
    """Sorted by name an edge service (alert_sink) came first and the
    database's constraint got lost in a long line: db and redis lead."""
    nodes = _nodes()
    services = _services()
    db = next(s for s in services if s["Spec"]["Name"] == f"{STACK}_db")
    sink = copy.deepcopy(db)
    sink["ID"] = "sink0000"
    sink["Spec"]["Name"] = f"{STACK}_alert_sink"
    with pytest.raises(BadInput) as caught:
        plan.check_drain(nodes, nodes[0], [sink, *services], STACK)
    message = str(caught.value)
    assert "last schedulable node that can run db (node.labels.db == true), redis (" in message
    assert message.index("redis (") < message.index("alert_sink (")
