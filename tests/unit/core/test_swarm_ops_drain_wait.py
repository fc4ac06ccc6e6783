"""The node drain's wait (console/core/ops/swarm/ops.py ``_availability``,
plan.drain_check) against a fake manager whose tasks follow a script, one
entry per read after the drain: the end check must hold over consecutive
reads (a replacement seen running once can fail and drop), a task Swarm
cannot place must fail the drain with Swarm's reason and the command that
undoes it (audited), and a task on a node that is down is not a moved one."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.core.models import OpEvent
from console.core.ops import run_op
from console.core.ops.context import OpContext
from console.core.ops.swarm import ops as swarm_ops
from console.core.ops.swarm import plan
from tests.unit.core.test_swarm_ops import STACK, _ctx, _nodes, _second_node, _service

NO_NODE = "no suitable node (1 node not available for new tasks; 2 nodes not ready)"


def _node(n: int, state: str = "ready") -> dict[str, Any]:
    node = _second_node()
    node["ID"] = f"n{n}" + node["ID"][2:]
    node["Description"]["Hostname"] = f"node-{n}"
    node["Status"] = {"State": state, "Addr": f"10.0.0.{n}"}
    return node


def _task(
    tid: str,
    slot: int,
    node: str | None,
    state: str = "running",
    desired: str = "running",
    err: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state, "Timestamp": "2026-12-07T19:00:00Z"}
    if err:
        status["Err"] = err
    return {
        "ID": tid,
        "ServiceID": BACKEND["ID"],
        "Slot": slot,
        "NodeID": ScriptedEngine.node_ids.get(node or "", ""),
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Image": "registry/investment-backend:v1.0.0"}},
        "Status": status,
    }


BACKEND = _service("backend")  # two replicas


class ScriptedEngine:
    """A manager: the backend (2 tasks) on nodes 1-3. Before the drain its
    tasks are ``before``; after it, each read of the tasks takes the next
    entry of ``script`` (the last one repeats)."""

    node_ids: dict[str, str] = {}
    nodes_now: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []
    script: list[list[dict[str, Any]]] = []
    reads_after = 0
    writes: list[tuple[str, str]] = []
    status: dict[str, Any] | None = None
    """The backend's UpdateStatus before the drain."""
    status_after: dict[str, Any] | None = None
    """... and after it (Swarm's own rollback, say)."""
    replicas_after: int | None = None

    def __init__(self, ctx: OpContext):
        self.ctx = ctx

    @classmethod
    def reset(cls) -> None:
        cls.nodes_now = [_nodes()[0], _node(2), _node(3)]
        cls.nodes_now[0]["Description"]["Hostname"] = "node-1"
        cls.node_ids = {n["Description"]["Hostname"]: n["ID"] for n in cls.nodes_now}
        cls.before, cls.script, cls.reads_after, cls.writes = [], [], 0, []
        cls.status = {"State": "completed", "StartedAt": "2026-12-07T19:00:00Z"}
        cls.status_after = None
        cls.replicas_after = None

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def close(self) -> None:
        pass

    def full_name(self, short: str) -> str:
        return f"{self.ctx.stack}_{short}"

    def services(self) -> list[dict[str, Any]]:
        svc = copy.deepcopy(BACKEND)
        svc["UpdateStatus"] = copy.deepcopy(
            self.status_after if self.writes and self.status_after else self.status
        )
        if self.writes and self.replicas_after is not None:
            svc["Spec"]["Mode"]["Replicated"]["Replicas"] = self.replicas_after
        return [svc]

    def nodes(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.nodes_now)

    def stack_tasks(self) -> list[dict[str, Any]]:
        if not self.writes:
            return copy.deepcopy(self.before)
        i = min(type(self).reads_after, len(self.script) - 1)
        type(self).reads_after += 1
        return copy.deepcopy(self.script[i])

    def set_availability(self, node_id: str, availability: str) -> None:
        self.writes.append((node_id, availability))
        for node in self.nodes_now:
            if node["ID"] == node_id:
                node["Spec"]["Availability"] = availability


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ScriptedEngine]]:
    ScriptedEngine.reset()
    monkeypatch.setattr(swarm_ops, "SwarmEngine", ScriptedEngine)
    monkeypatch.setattr(swarm_ops, "POLL_S", 0.01)
    monkeypatch.setattr(swarm_ops, "UNPLACED_S", 0.1)
    yield ScriptedEngine


def _quick(tmp_path: Path) -> OpContext:
    """A context whose drain gives up after a few seconds (the timeout is
    health_timeout + SETTLE_S), so code that waits for the wrong thing ends."""
    return dataclasses.replace(_ctx(tmp_path, "swarm"), health_timeout=1.0)


def _drain(ctx: OpContext, node: str = "node-2") -> list[OpEvent]:
    async def go() -> list[OpEvent]:
        return [e async for e in run_op("node-drain", ctx, node=node, force=True)]

    return asyncio.run(go())


def _audit_end(ctx: OpContext) -> dict[str, Any]:
    lines = [json.loads(line) for line in ctx.audit_path.read_text().splitlines()]
    return next(a for a in reversed(lines) if a["event"] == "end")


def _start(engine: type[ScriptedEngine]) -> None:
    engine.before = [_task("t1", 1, "node-1"), _task("t2", 2, "node-2")]


def _old_t2_shut() -> dict[str, Any]:
    return _task("t2", 2, "node-2", state="shutdown", desired="shutdown")


def test_a_task_swarm_cannot_place_fails_the_drain_with_swarm_s_reason(
    tmp_path: Path, engine: type[ScriptedEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swarm_ops, "SETTLE_S", 3.0)
    _start(engine)
    engine.script = [
        [_task("t1", 1, "node-1"), _old_t2_shut(), _task("t2b", 2, None, "pending", err=NO_NODE)]
    ]
    ctx = _quick(tmp_path)
    events = _drain(ctx)
    last = events[-1]
    assert last.status == "fail", [e.message for e in events]
    assert last.step == "result" and "\n" not in last.message
    assert f"Swarm cannot place backend.2: {NO_NODE}" in last.message, last.message
    assert "stackdeck node activate node-2" in last.message, last.message
    assert f"docker service ps --no-trunc {STACK}_backend" in last.message
    assert "internal error" not in last.message
    end = _audit_end(ctx)
    assert end["result"] == "failed" and NO_NODE in end["message"], end
    # the drain was the one write: the operator decides to activate
    assert engine.writes == [(engine.node_ids["node-2"], "drain")]


def test_one_good_read_then_a_task_drops_is_not_done_yet(
    tmp_path: Path, engine: type[ScriptedEngine]
) -> None:
    _start(engine)
    good_once = [_task("t1", 1, "node-1"), _old_t2_shut(), _task("t2b", 2, "node-3")]
    dropped = [
        _task("t1", 1, "node-1"),
        _old_t2_shut(),
        _task(
            "t2b", 2, "node-3", state="failed", desired="shutdown", err="task: non-zero exit (1)"
        ),
        _task("t2c", 2, "node-1", state="starting"),
    ]
    settled = [*dropped[:3], _task("t2c", 2, "node-1")]
    engine.script = [good_once, dropped, dropped, settled]
    ctx = _quick(tmp_path)
    events = _drain(ctx)
    last = events[-1]
    assert last.status == "done", [e.message for e in events]
    # ended on the settled state, held over consecutive reads: the task that
    # runs is the replacement on node-1, not the one that dropped on node-3
    assert "backend.2 -> node-1" in last.message, last.message
    assert engine.reads_after >= 3 + swarm_ops.HOLD_POLLS, engine.reads_after
    assert _audit_end(ctx)["result"] == "ok"


def test_a_task_on_a_node_that_is_down_is_not_a_moved_task(
    tmp_path: Path, engine: type[ScriptedEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After node-3 was lost and rejoined, the manager can still list its
    old task as running (desired running) until node-3's engine reports:
    it is not where backend.2 moved to."""
    monkeypatch.setattr(swarm_ops, "SETTLE_S", 0.5)
    engine.nodes_now[2]["Status"]["State"] = "down"
    _start(engine)
    engine.script = [[_task("t1", 1, "node-1"), _old_t2_shut(), _task("t2b", 2, "node-3")]]
    ctx = _quick(tmp_path)
    events = _drain(ctx)
    last = events[-1]
    assert last.status == "fail", [e.message for e in events]
    assert "short: backend" in last.message and "stackdeck node activate node-2" in last.message


def test_drain_check_lists_what_keeps_it_from_done() -> None:
    ScriptedEngine.reset()
    nodes = ScriptedEngine.nodes_now
    tasks = [
        _task("t1", 1, "node-1"),
        _task("t2", 2, "node-2"),
        _task("t3", 3, None, "pending", err=NO_NODE),
        _task("t4", 4, "node-3", "preparing"),
    ]
    svc = copy.deepcopy(BACKEND)
    svc["Spec"]["Mode"]["Replicated"]["Replicas"] = 4
    check = plan.drain_check([svc], tasks, nodes, ScriptedEngine.node_ids["node-2"], STACK)
    assert [t["ID"] for t in check.left] == ["t2"]
    assert check.short == ["backend"]
    assert check.unplaced == {"t3": f"backend.3: {NO_NODE}"}
    assert check.starting == {"t4": "backend.4 preparing on node-3"}
    assert not check.done
    moved = [tasks[0], _task("t2b", 2, "node-3")]
    done = plan.drain_check([BACKEND], moved, nodes, ScriptedEngine.node_ids["node-2"], STACK)
    assert done.done, done


def test_drain_while_swarm_updates_a_service_is_refused_and_changes_nothing(
    tmp_path: Path, engine: type[ScriptedEngine]
) -> None:
    engine.status = {"State": "updating", "StartedAt": "2026-12-07T19:12:33.02Z"}
    _start(engine)
    ctx = _quick(tmp_path)
    last = _drain(ctx)[-1]
    assert last.status == "fail" and last.data["code"] == "bad-input", last
    assert last.message.startswith(
        "refusing to drain while Swarm updates backend (updating since 2026-12-07T19:12:33)"
    ), last.message
    assert engine.writes == []
    lines = [json.loads(line) for line in ctx.audit_path.read_text().splitlines()]
    assert [a["event"] for a in lines] == ["refused"]


def test_a_rollback_by_swarm_during_the_drain_fails_it_with_swarm_s_message(
    tmp_path: Path, engine: type[ScriptedEngine]
) -> None:
    """What the drain after the node-loss file met: a scale's update still
    in flight, the drain stopped a task of it, Swarm rolled the scale back
    (one task again). The tasks then look settled; the drain must not say
    it is done."""
    _start(engine)
    engine.status_after = {
        "State": "rollback_completed",
        "StartedAt": "2026-12-07T19:12:50Z",
        "Message": "rollback completed",
    }
    engine.replicas_after = 1  # the previous spec's
    engine.script = [[_task("t1", 1, "node-1"), _old_t2_shut()]]
    ctx = _quick(tmp_path)
    last = _drain(ctx)[-1]
    assert last.status == "fail", last
    assert "Swarm rolled back backend (rollback_completed: rollback completed)" in last.message
    assert "stackdeck node activate node-2" in last.message
    assert _audit_end(ctx)["result"] == "failed"


class _Api:
    """The docker SDK's low-level client, as far as SwarmEngine.scale uses it."""

    def __init__(self, svc: dict[str, Any]) -> None:
        self.svc = svc
        self.posted: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def inspect_service(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.svc)

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post_json(self, url: str, data: dict[str, Any], params: dict[str, Any]) -> object:
        self.posted.append((url, data, params))
        return object()

    def _result(self, resp: object, json: bool = False) -> dict[str, Any]:
        return {}


def test_scale_posts_the_spec_with_only_its_replicas_changed(tmp_path: Path) -> None:
    """docker-py's Service.scale merges the spec through its model and adds
    DNSConfig {} to the task template: a rolling update of every task."""
    svc = copy.deepcopy(BACKEND)
    svc["Version"] = {"Index": 41}
    api = _Api(svc)
    real = swarm_ops.SwarmEngine(_ctx(tmp_path, "swarm"))
    real._client = type("Client", (), {"api": api})()
    real.scale("backend", 3)
    (url, spec, params) = api.posted[0]
    assert url == f"/services/{svc['ID']}/update" and params == {"version": 41}
    want = copy.deepcopy(svc["Spec"])
    want["Mode"]["Replicated"]["Replicas"] = 3
    assert spec == want
