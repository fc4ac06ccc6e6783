"""The Swarm deploy and rollback as sequences (update -> wait -> bake ->
rollback) against a stateful fake engine: the recorded stack
(tests/unit/core/data/swarm_ops_stack.json), whose specs, previous specs and
update statuses change as a manager's would. What is checked: what was
written to the engine, the history line every path leaves, and that an
engine error is a one-line failure, never an internal error."""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from console import cli
from console.core.models import OpEvent
from console.core.ops import run_op
from console.core.ops.audit import read_jsonl
from console.core.ops.context import OpContext
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.swarm import ops as swarm_ops
from console.core.ops.swarm import plan
from console.core.ops.table import NodeParams, RollbackParams
from tests.unit.core.test_swarm_ops import STACK, _ctx, _nodes, _second_node, _service

REGISTRY = "swopssw-registry:5000/investment-backend"


class StatefulEngine:
    """A manager's engine for the backend and the worker: an update moves
    the spec to the new image (the old spec becomes the previous one) and
    ends as ``outcome`` says; Swarm's own rollback puts the previous spec
    back and clears it (swarmkit's updater), ``service rollback`` swaps the
    two; a rollback without a previous spec is refused as the engine does."""

    specs: dict[str, dict[str, Any]] = {}
    writes: list[tuple[str, ...]] = []
    outcome = "completed"
    """How Swarm ends an update of the backend: completed, rollback_completed, rollback_paused."""
    update_delay_s = 0.0
    """How long the update call takes (it runs on a thread, as the SDK's does)."""
    fail: dict[str, Exception] = {}
    """A write ("update:backend", "update:worker", "rollback") that raises."""
    clock = itertools.count(1)

    def __init__(self, ctx: OpContext):
        self.ctx = ctx

    @classmethod
    def reset(cls) -> None:
        cls.specs = {short: _service(short) for short in ("backend", "worker")}
        cls.writes = []
        cls.outcome = "completed"
        cls.update_delay_s = 0.0
        cls.fail = {}

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def close(self) -> None:
        pass

    def full_name(self, short: str) -> str:
        return f"{self.ctx.stack}_{short}"

    def _status(self, svc: dict[str, Any], state: str, message: str) -> None:
        svc["UpdateStatus"] = {
            "State": state,
            "StartedAt": f"2026-12-07T16:00:{next(self.clock):02d}Z",
            "Message": message,
        }

    def service(self, short: str) -> dict[str, Any] | None:
        svc = self.specs.get(short)
        return copy.deepcopy(svc) if svc is not None else None

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        svc = next(s for s in self.specs.values() if s["ID"] == service_id)
        image = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        n = svc["Spec"]["Mode"]["Replicated"]["Replicas"]
        return [
            {
                "ID": f"task{i}",
                "Slot": i,
                "NodeID": "n1",
                "DesiredState": "running",
                "Spec": {"ContainerSpec": {"Image": image}},
                "Status": {"State": "running", "Timestamp": "2026-12-07T16:00:00Z"},
            }
            for i in range(1, n + 1)
        ]

    def image_exists(self, image: str) -> bool | str:
        return True

    @staticmethod
    def _swap(svc: dict[str, Any]) -> None:
        svc["Spec"], svc["PreviousSpec"] = svc["PreviousSpec"], svc["Spec"]

    def update_image(self, short: str, image: str, *, force: bool = False) -> None:
        time.sleep(self.update_delay_s)
        if f"update:{short}" in self.fail:
            raise self.fail[f"update:{short}"]
        self.writes.append(("update", short, plan.version_of(image)))
        svc = self.specs[short]
        svc["PreviousSpec"] = copy.deepcopy(svc["Spec"])
        svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = image
        outcome = self.outcome if short == "backend" else "completed"
        if outcome == "completed":
            self._status(svc, "completed", "update completed")
        else:  # Swarm's failure_action: rollback (it clears the previous spec), completed or paused
            svc["Spec"] = svc.pop("PreviousSpec")
            message = {
                "rollback_completed": "update rolled back due to failure or early termination of task x",
                "rollback_paused": "rollback paused due to failure or early termination of task y",
            }[outcome]
            self._status(svc, outcome, message)

    def rollback(self, short: str) -> None:
        svc = self.specs[short]
        if "rollback" in self.fail:
            raise self.fail["rollback"]
        if not svc.get("PreviousSpec"):
            raise docker.errors.APIError(
                f"rpc error: code = FailedPrecondition desc = service {short} does not have a previous spec"
            )
        self.writes.append(("rollback", short))
        self._swap(svc)
        self._status(svc, "rollback_completed", "rollback completed")

    def services(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(s) for s in self.specs.values()]

    def nodes(self) -> list[dict[str, Any]]:
        return [*_nodes(), _second_node()]


def _version(short: str = "backend") -> str:
    return plan.version_of(
        StatefulEngine.specs[short]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[StatefulEngine]]:
    StatefulEngine.reset()
    monkeypatch.setattr(swarm_ops, "SwarmEngine", StatefulEngine)
    monkeypatch.setattr(swarm_ops, "POLL_S", 0.01)

    async def served(ctx: OpContext, version: str, within_s: float = 20.0) -> str:
        return _version()  # nginx serves what the backend's spec runs

    monkeypatch.setattr(swarm_ops, "_served_version", served)
    monkeypatch.setattr(swarm_ops, "bake", _bake_passes)
    yield StatefulEngine


async def _bake_passes(*args: Any, **kwargs: Any) -> None:
    return None


async def _bake_fails(*args: Any, **kwargs: Any) -> None:
    raise OpFailed("p95 900 ms > 500 ms", step="bake", data={"p95_ms": 900})


def _run(name: str, ctx: OpContext, **params: Any) -> list[OpEvent]:
    async def go() -> list[OpEvent]:
        return [e async for e in run_op(name, ctx, **params)]

    return asyncio.run(go())


def _history(ctx: OpContext) -> list[dict[str, Any]]:
    return read_jsonl(ctx.history_path)


def _assert_tidy(events: list[OpEvent]) -> OpEvent:
    last = events[-1]
    assert last.step == "result"
    assert "internal error" not in last.message, last.message
    assert "traceback" not in (last.data or {}), last.data
    assert "\n" not in last.message
    return last


# --- 1. rollback never goes to the version that just failed -------------------------------


def test_rollback_target_never_takes_the_version_a_deploy_from_current_failed_at() -> None:
    # the stack file deployed v1; stackdeck's deploy of v2 failed its bake and
    # stackdeck ran `service rollback`: the spec is v1, the previous spec v2
    history = [{"op": "deploy", "result": "rolled-back", "version": "v2", "from_version": "v1"}]
    assert plan.rollback_target("v1", "v2", history) is None
    failed = [{**history[0], "result": "failed"}]
    assert plan.rollback_target("v1", "v2", failed) is None
    # a deploy of v2 from another version failing does not make v2 off limits
    elsewhere = [{**history[0], "from_version": "v0"}]
    assert plan.rollback_target("v1", "v2", elsewhere) == ("v2", "previous-spec")


def test_rollback_candidates_name_the_history_s_versions() -> None:
    history = [
        {"op": "deploy", "result": "ok", "version": "v1", "from_version": "v0"},
        {"op": "deploy", "result": "rolled-back", "version": "v2", "from_version": "v1"},
    ]
    assert plan.rollback_candidates("v1", history) == ["v0"]
    assert plan.rollback_candidates("v0", history) == ["v1"]  # v2 never served


def test_failed_bake_then_rollback_refuses_the_failed_version(
    tmp_path: Path, engine: type[StatefulEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(tmp_path, "swarm")
    monkeypatch.setattr(swarm_ops, "bake", _bake_fails)
    events = _run("deploy", ctx, version="v1.1.0", bake_seconds=5)
    last = _assert_tidy(events)
    assert "Rolled investment_backend back to v1.0.0" in last.message
    assert engine.writes == [("update", "backend", "v1.1.0"), ("rollback", "backend")]
    assert [h["result"] for h in _history(ctx)] == ["rolled-back"]
    assert _version() == "v1.0.0"  # and the previous spec is v1.1.0, the one that failed

    events = _run("rollback", ctx)
    last = _assert_tidy(events)
    assert last.data["code"] == "bad-input"
    assert "runs v1.0.0 and has nothing to roll back to" in last.message
    assert "previous spec v1.1.0 is the version a deploy from v1.0.0 failed at" in last.message
    assert "--version VERSION" in last.message
    assert len(engine.writes) == 2  # nothing more written
    assert _version() == "v1.0.0"


def test_deploy_then_rollback_goes_back_through_the_previous_spec(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    ctx = _ctx(tmp_path, "swarm")
    assert _run("deploy", ctx, version="v1.1.0", bake_seconds=5)[-1].status == "done"
    assert _version() == _version("worker") == "v1.1.0"
    events = _run("rollback", ctx)
    assert events[-1].status == "done", events[-1].message
    assert _version() == _version("worker") == "v1.0.0"
    assert ("rollback", "backend") in engine.writes
    assert [(h["op"], h["result"]) for h in _history(ctx)] == [
        ("deploy", "ok"),
        ("rollback", "ok"),
    ]


# --- 2. Swarm rolled back already ---------------------------------------------------------


@pytest.mark.parametrize("outcome", ["rollback_completed", "rollback_paused"])
def test_no_second_rollback_when_swarm_rolled_back(
    tmp_path: Path, engine: type[StatefulEngine], outcome: str
) -> None:
    engine.outcome = outcome
    ctx = _ctx(tmp_path, "swarm")
    events = _run("deploy", ctx, version="v1.1.0", bake_seconds=5)
    last = _assert_tidy(events)
    assert last.status == "fail"
    assert engine.writes == [("update", "backend", "v1.1.0")]  # no `service rollback`
    (line,) = _history(ctx)
    if outcome == "rollback_completed":
        assert line["result"] == "rolled-back"
        assert "Swarm rolled investment_backend back to v1.0.0" in last.message
    else:
        assert line["result"] == "failed"
        assert "rollback_paused" in last.message
        assert "rollback paused" in line["reason"]


# --- 3. cancelled while the update call is in flight ----------------------------------------


def _cancel_after(ctx: OpContext, seconds: float, **params: Any) -> list[OpEvent]:
    seen: list[OpEvent] = []

    async def go() -> None:
        async def consume() -> None:
            async for event in run_op("deploy", ctx, **params):
                seen.append(event)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    return seen


def test_cancel_while_the_update_call_is_in_flight_rolls_back(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    engine.update_delay_s = 0.5
    ctx = _ctx(tmp_path, "swarm")
    _cancel_after(ctx, 0.2, version="v1.1.0", bake_seconds=5)
    assert engine.writes == [("update", "backend", "v1.1.0"), ("rollback", "backend")]
    assert _version() == "v1.0.0"
    (line,) = _history(ctx)
    assert line["result"] == "rolled-back"
    assert "cancelled at step update; rolled back to v1.0.0" in line["reason"]


def test_cancel_whose_rollback_fails_is_recorded_failed(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    engine.update_delay_s = 0.5
    engine.fail = {"rollback": docker.errors.APIError("connection aborted")}
    ctx = _ctx(tmp_path, "swarm")
    _cancel_after(ctx, 0.2, version="v1.1.0", bake_seconds=5)
    assert engine.writes == [("update", "backend", "v1.1.0")]
    (line,) = _history(ctx)
    assert line["result"] == "failed"
    assert "the rollback did not happen: connection aborted" in line["reason"]


def test_cancel_before_the_update_landed_changes_nothing(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    engine.update_delay_s = 0.5
    engine.fail = {"update:backend": docker.errors.APIError("update out of sequence")}
    ctx = _ctx(tmp_path, "swarm")
    _cancel_after(ctx, 0.2, version="v1.1.0", bake_seconds=5)
    assert engine.writes == []
    (line,) = _history(ctx)
    assert line["result"] == "failed"
    assert "nothing was changed" in line["reason"]


# --- 4. engine errors end in the history, in one line ---------------------------------------


def test_engine_error_in_the_automatic_rollback_is_recorded(
    tmp_path: Path, engine: type[StatefulEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swarm_ops, "bake", _bake_fails)
    engine.fail = {"rollback": docker.errors.APIError("connection aborted")}
    ctx = _ctx(tmp_path, "swarm")
    last = _assert_tidy(_run("deploy", ctx, version="v1.1.0", bake_seconds=5))
    assert "the rollback did not complete (error: connection aborted)" in last.message
    (line,) = _history(ctx)
    assert line["result"] == "failed"
    assert "p95 900 ms > 500 ms" in line["reason"] and "connection aborted" in line["reason"]


def test_engine_error_moving_the_worker_keeps_the_deploy(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    engine.fail = {"update:worker": docker.errors.APIError("worker update refused")}
    ctx = _ctx(tmp_path, "swarm")
    events = _run("deploy", ctx, version="v1.1.0", bake_seconds=5)
    assert events[-1].status == "done", events[-1].message
    assert any(
        e.status == "warn" and "worker did not move to v1.1.0 (worker update refused)" in e.message
        for e in events
    )
    assert [h["result"] for h in _history(ctx)] == ["ok"]


def test_engine_error_in_a_rollback_to_a_version_is_recorded(
    tmp_path: Path, engine: type[StatefulEngine]
) -> None:
    engine.fail = {"update:backend": docker.errors.APIError("update out of sequence")}
    ctx = _ctx(tmp_path, "swarm")
    last = _assert_tidy(_run("rollback", ctx, version="v1.1.0", force=True))
    assert last.message == "rollback to v1.1.0 failed: update out of sequence"
    (line,) = _history(ctx)
    assert (line["op"], line["result"], line["reason"]) == (
        "rollback",
        "failed",
        "update out of sequence",
    )


# --- 5. the deploy's time grows with the replicas ------------------------------------------


def test_update_timeout_grows_with_replicas_per_parallelism() -> None:
    svc = _service("backend")  # 2 replicas, parallelism 1, monitor 20 s, delay 2 s
    assert swarm_ops._update_timeout(svc, 30.0) == 2 * (30 + 20 + 2) + swarm_ops.SETTLE_S
    svc["Spec"]["Mode"]["Replicated"]["Replicas"] = 4
    assert swarm_ops._update_timeout(svc, 30.0) == 4 * (30 + 20 + 2) + swarm_ops.SETTLE_S
    svc["Spec"]["UpdateConfig"]["Parallelism"] = 3
    assert swarm_ops._update_timeout(svc, 30.0) == 2 * (30 + 20 + 2) + swarm_ops.SETTLE_S
    svc["Spec"]["UpdateConfig"]["Parallelism"] = 0  # all at once
    assert swarm_ops._update_timeout(svc, 30.0) == 30 + 20 + 2 + swarm_ops.SETTLE_S


# --- 6. rollback's services as a list --------------------------------------------------------


def test_rollback_services_given_as_a_list(tmp_path: Path, engine: type[StatefulEngine]) -> None:
    ctx = _ctx(tmp_path, "swarm")
    for services in (["backend"], "backend", "backend,worker", ["backend", "worker"]):
        params = RollbackParams(services=services, version="v1.1.0")
        asyncio.run(swarm_ops.validate_swarm_rollback(ctx, params))
    for services in (["frontend"], "backend frontend"):
        with pytest.raises(BadInput, match="on a swarm stack rollback moves the backend"):
            params = RollbackParams(services=services, version="v1.1.0")
            asyncio.run(swarm_ops.validate_swarm_rollback(ctx, params))
    assert engine.writes == []


# --- 7. the CLI's drain prompt ---------------------------------------------------------------


def _prompted(monkeypatch: pytest.MonkeyPatch, answer: str) -> list[str]:
    asked: list[str] = []

    def fake_input(prompt: str) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.setattr("builtins.input", fake_input)
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    return asked


def _args(force: bool = False) -> argparse.Namespace:
    return argparse.Namespace(json=False, force=force)


def test_drain_of_an_unknown_node_is_refused_without_a_prompt(
    tmp_path: Path, engine: type[StatefulEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _prompted(monkeypatch, "y")
    ctx = _ctx(tmp_path, "swarm")
    assert cli._confirmations(_args(), ctx, "node-drain", {"node": "node-9"}) is None
    assert asked == []  # the run refuses it (audited), nothing asked
    assert cli._confirmations(_args(), ctx, "node-drain", {"node": "node-2"}) is None
    assert asked == ["Drain node-2: every task on it moves to other nodes? [y/N] "]


def test_drain_prompt_declined_and_skipped_with_force(
    tmp_path: Path, engine: type[StatefulEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _prompted(monkeypatch, "n")
    ctx = _ctx(tmp_path, "swarm")
    assert cli._confirmations(_args(), ctx, "node-drain", {"node": "node-2"}) == 2
    assert len(asked) == 1
    assert cli._confirmations(_args(force=True), ctx, "node-drain", {"node": "node-2"}) is None
    assert len(asked) == 1
    args = cli.build_parser().parse_args(["node", "drain", "node-2", "--force"])
    assert args.force is True
    assert cli.build_parser().parse_args(["node", "activate", "node-2", "--force"]).force is True
    assert NodeParams(node="node-2").force is False
    assert STACK == ctx.stack
