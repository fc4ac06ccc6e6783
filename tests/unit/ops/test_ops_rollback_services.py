"""What a rollback moves back (issue 13 item 1): ``--services`` checked, and
without it the last successful deploy's services decide."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.ops.audit import record_history
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import BadInput
from console.core.ops.rollback import parse_rollback_services, rollback_services

REPO = Path(__file__).resolve().parents[3]


def _ctx(tmp_path: Path) -> OpContext:
    op = Operator(user="unit", ssh_client="192.0.2.1", host="h", pid=4242, pid_start=7)
    return OpContext(
        stack="unitr",
        repo=REPO,
        state_dir=tmp_path / "state",
        run_dir=tmp_path / "run",
        base_url="http://127.0.0.1:9",
        env={},
        operator=op,
    )


@pytest.mark.parametrize(
    ("given", "want"),
    [
        (None, None),
        ("", None),
        ("frontend", ["frontend"]),
        ("frontend backend", ["backend", "frontend"]),
        ("backend,frontend,backend", ["backend", "frontend"]),
        (["frontend"], ["frontend"]),
    ],
)
def test_services_are_parsed(given: object, want: list[str] | None) -> None:
    assert parse_rollback_services(given) == want


@pytest.mark.parametrize("given", ["worker", "db", "frontend nginx", "fr\x1bontend"])
def test_a_service_rollback_does_not_move_is_refused(given: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_rollback_services(given)
    assert info.value.field == "services"
    assert "rollback moves back backend and frontend" in str(info.value)
    assert "\x1b" not in str(info.value)


def _deploy(ctx: OpContext, services: list[str] | None, result: str = "ok") -> None:
    line = {"op": "deploy", "result": result, "version": "v1"}
    if services is not None:
        line["services"] = services  # type: ignore[assignment]
    record_history(ctx.history_path, line)


def test_the_last_deploy_decides_what_a_plain_rollback_moves(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert rollback_services(ctx, None) == ["backend"]  # no history: as before
    _deploy(ctx, ["frontend"])
    assert rollback_services(ctx, None) == ["frontend"]
    _deploy(ctx, ["backend", "frontend"], result="failed")  # a failed deploy does not count
    assert rollback_services(ctx, None) == ["frontend"]
    record_history(ctx.history_path, {"op": "rollback", "result": "ok", "services": ["frontend"]})
    assert rollback_services(ctx, None) == ["frontend"]  # rollbacks do not count either
    _deploy(ctx, ["backend", "frontend"])
    assert rollback_services(ctx, None) == ["backend", "frontend"]  # both went: both go back
    _deploy(ctx, ["backend"])  # the API alone since: the page stays where it is
    assert rollback_services(ctx, None) == ["backend"]
    _deploy(ctx, ["backend", "worker"])
    assert rollback_services(ctx, None) == ["backend"]
    _deploy(ctx, None)  # a line from before services were recorded
    assert rollback_services(ctx, None) == ["backend"]
    _deploy(ctx, ["frontend", "worker"])
    assert rollback_services(ctx, None) == ["frontend"]
    # named services win over the history
    assert rollback_services(ctx, ["backend"]) == ["backend"]


def test_the_backend_s_flags_mean_the_backend_whatever_the_history(tmp_path: Path) -> None:
    # --version / --restore-db / --backup-path after a frontend-only deploy:
    # the operator means the API (its checks and messages are the backend's)
    ctx = _ctx(tmp_path)
    _deploy(ctx, ["frontend"])
    assert rollback_services(ctx, None) == ["frontend"]
    assert rollback_services(ctx, None, backend_flags=True) == ["backend"]
    assert rollback_services(ctx, ["frontend"], backend_flags=True) == ["frontend"]


def test_a_rolling_deploy_whose_page_failed_still_names_the_api_s_previous_version(
    tmp_path: Path,
) -> None:
    # a rolling "backend frontend" deploy: the API was verified on v3 and
    # stays, the page's step failed after it; the history line is a failure
    # with backend_committed, and a rollback still finds v2 behind v3
    from console.core.ops.rollback import _previous_version_from_history

    ctx = _ctx(tmp_path)
    record_history(
        ctx.history_path,
        {"op": "deploy", "result": "ok", "version": "v2", "from_version": "v1",
         "services": ["backend"]},
    )  # fmt: skip
    failed = {"op": "deploy", "result": "failed", "version": "v3", "from_version": "v2",
              "services": ["backend", "frontend"]}  # fmt: skip
    record_history(ctx.history_path, failed)
    assert _previous_version_from_history(ctx, "v3") is None  # a plain failure does not count
    record_history(ctx.history_path, {**failed, "backend_committed": True})
    assert _previous_version_from_history(ctx, "v3") == "v2"
