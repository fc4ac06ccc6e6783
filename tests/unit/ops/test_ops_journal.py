"""Recovery decisions from the deploy journal (pure logic) and the journal file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.core.ops.journal import Journal, explain_journal, plan_recovery


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _journal(**kw: Any) -> dict[str, Any]:
    import socket

    started = datetime.now(UTC) - timedelta(minutes=4)
    base: dict[str, Any] = {
        "status": "running",
        "op": "deploy",
        "strategy": "blue-green",
        "version": "v2",
        "from_version": "v1",
        "from_colour": "blue",
        "to_colour": "green",
        "to_prev_version": "v0",
        "after_switch": "switch-back",
        "step": "wait-healthy",
        "switch_started": False,
        "switched": False,
        "bake_passed": False,
        "pid": _dead_pid(),
        "pid_start": None,
        "host": socket.gethostname(),
        "user": "alice",
        "started": started.isoformat(),
        "updated": started.isoformat(),
    }
    base.update(kw)
    return base


def test_nothing_to_do() -> None:
    assert plan_recovery(None, serving="blue").action == "none"
    for status in ("done", "failed", "rolled-back", "recovered"):
        assert plan_recovery(_journal(status=status), serving="blue").action == "none"


def test_live_process_is_never_touched() -> None:
    j = _journal(pid=os.getpid(), pid_start=None)
    plan = plan_recovery(j, serving="blue")
    assert plan.action == "running" and "still running" in plan.explanation
    assert plan_recovery(_journal(host="another-host"), serving="blue").action == "running"


def test_killed_before_the_switch_aborts_the_new_colour() -> None:
    plan = plan_recovery(_journal(step="wait-healthy"), serving="blue")
    assert plan.action == "abort"
    assert plan.traffic == "blue" and plan.stop == "green"
    assert plan.restore_slot == ("green", "v0")
    assert not plan.rewrite_nginx
    assert "interrupted at step 'wait-healthy' 4 min ago" in plan.explanation
    assert "Traffic never moved" in plan.explanation
    # no slot to restore when the colour held the same version
    assert plan_recovery(_journal(to_prev_version="v2"), serving="blue").restore_slot is None


def test_killed_between_journal_and_switch_rewrites_nginx_to_the_old_colour() -> None:
    # switch not journaled yet but someone/something points nginx elsewhere, or nginx unreadable
    plan = plan_recovery(_journal(), serving=None)
    assert plan.action == "abort" and plan.traffic == "blue" and plan.rewrite_nginx


def test_killed_during_the_bake_switches_back() -> None:
    j = _journal(step="bake", switch_started=True, switched=True)
    plan = plan_recovery(j, serving="green")
    assert plan.action == "switch-back"
    assert plan.traffic == "blue" and plan.stop == "green" and plan.rewrite_nginx
    assert "never verified" in plan.explanation
    # killed while writing the switch: nginx may still name blue
    plan = plan_recovery(_journal(step="switch", switch_started=True), serving="blue")
    assert plan.action == "switch-back" and not plan.rewrite_nginx


def test_killed_after_the_bake_keeps_the_new_colour() -> None:
    j = _journal(step="stop-old", switch_started=True, switched=True, bake_passed=True)
    plan = plan_recovery(j, serving="green")
    assert plan.action == "finalize" and plan.traffic == "green" and plan.stop == "blue"
    assert not plan.rewrite_nginx and plan.restore_slot is None


def test_killed_after_the_bake_leaves_the_warm_previous_colour_running() -> None:
    j = _journal(
        step="keep-old", switch_started=True, switched=True, bake_passed=True, keep_previous=True
    )
    plan = plan_recovery(j, serving="green")
    assert plan.action == "finalize" and plan.traffic == "green" and plan.stop is None
    assert "leaves blue running as the instant rollback target" in plan.explanation
    # a rollback stops the colour it left, whatever the deploy's setting was
    j = _journal(
        op="rollback",
        after_switch="finalize",
        step="verify",
        switch_started=True,
        switched=True,
        keep_previous=True,
    )
    assert plan_recovery(j, serving="green").stop == "blue"


def test_rollback_to_the_warm_colour_killed_before_its_switch_leaves_it_running() -> None:
    j = _journal(
        op="rollback",
        after_switch="finalize",
        step="wait-healthy",
        version="v1",
        from_version="v2",
        to_prev_version="v1",
        to_was_running=True,
    )
    plan = plan_recovery(j, serving="blue")
    assert plan.action == "abort" and plan.traffic == "blue"
    assert plan.stop is None and plan.restore_slot is None and not plan.rewrite_nginx
    assert "left so" in plan.explanation


def test_rollback_interrupted_after_its_switch_is_finalized() -> None:
    j = _journal(
        op="rollback", after_switch="finalize", step="verify", switch_started=True, switched=True
    )
    plan = plan_recovery(j, serving="green")
    assert plan.action == "finalize" and plan.traffic == "green"


def _rolling(**kw: Any) -> dict[str, Any]:
    """A rolling deploy of v2 onto blue (which ran v1), start-first."""
    return _journal(
        strategy="rolling", to_colour=None, prev_version="v1", to_prev_version=None, **kw
    )


def test_rolling_deploy_before_its_switch_removes_the_surge() -> None:
    plan = plan_recovery(_rolling(step="surge-healthy"), serving="blue")
    assert plan.action == "abort" and plan.traffic == "blue" and not plan.rewrite_nginx
    assert plan.remove_surge == "blue" and plan.start_version is None
    assert plan.stop is None and plan.restore_slot is None  # the other colour is not touched
    assert "rolling deploy of v2 on blue" in plan.explanation
    assert "never left backend_blue (v1)" in plan.explanation


def test_rolling_deploy_on_its_surge_goes_back_to_the_colours_own_container() -> None:
    j = _rolling(step="drain-old", switch_started=True, switched=True)
    plan = plan_recovery(j, serving="blue", serving_slot="surge")
    assert plan.action == "switch-back" and plan.traffic == "blue" and plan.rewrite_nginx
    assert plan.remove_surge == "blue" and plan.start_version is None  # blue still runs v1
    # nginx already back on blue's own container: nothing to rewrite, the surge still goes
    plan = plan_recovery(j, serving="blue")
    assert plan.action == "switch-back" and not plan.rewrite_nginx and plan.remove_surge == "blue"


def test_rolling_deploy_while_recreating_finishes_on_the_new_version() -> None:
    j = _rolling(step="replace-healthy", switch_started=True, switched=True, replace_started=True)
    plan = plan_recovery(j, serving="blue", serving_slot="surge")
    assert plan.action == "finalize" and plan.traffic == "blue" and plan.rewrite_nginx
    assert plan.start_version == "v2" and plan.remove_surge == "blue"
    assert "backend_blue_surge" in plan.explanation
    # nginx unreadable: written again, to the colour's own container
    assert plan_recovery(j, serving=None).rewrite_nginx


def test_rolling_deploy_after_its_switch_home_only_removes_the_surge() -> None:
    j = _rolling(step="remove-surge", switch_started=True, replace_started=True, home=True)
    plan = plan_recovery(j, serving="blue")
    assert plan.action == "finalize" and not plan.rewrite_nginx
    assert plan.start_version == "v2" and plan.remove_surge == "blue"


def test_rolling_deploy_of_3_containers_halfway_puts_the_pool_back() -> None:
    """Through nginx's pool (replicas=3): whether the colour's own container
    was being recreated or a replica replaced, the 3 containers go back to
    v1 through the pool; nginx's target (the colour) is never rewritten."""
    for step, more in (("replica-healthy", {}), ("replace-healthy", {"replace_started": True})):
        j = _rolling(step=step, switch_started=True, switched=True, replicas=3, **more)
        plan = plan_recovery(j, serving="blue")
        assert plan.action == "switch-back" and plan.pool_back, (step, plan)
        assert not plan.rewrite_nginx and plan.start_version is None
        assert plan.remove_surge == "blue" and "3 containers of v1" in plan.explanation
    # before the surge joined the pool: as with one container
    plan = plan_recovery(_rolling(step="smoke", replicas=3), serving="blue")
    assert plan.action == "abort" and not plan.pool_back
    # after the last pool change: only the surge is left to remove
    j = _rolling(step="drain-surge", switch_started=True, replace_started=True, home=True)
    plan = plan_recovery({**j, "replicas": 3}, serving="blue")
    assert plan.action == "finalize" and not plan.pool_back and plan.start_version is None


def test_journal_file_is_rewritten_whole(tmp_path: Path) -> None:
    path = tmp_path / "deploy-journal.json"
    j = Journal.begin(
        path, id="x", op="deploy", version="v2", from_colour="blue", to_colour="green"
    )
    j.step("start-idle")
    j.step("switch", switch_started=True)
    data = json.loads(path.read_text())
    assert data["step"] == "switch" and data["switch_started"] is True
    assert [s["step"] for s in data["steps"]] == ["start-idle", "switch"]
    j.finish("done")
    assert Journal.load(path)["status"] == "done"
    path.write_text("{torn")
    assert Journal.load(path) is None


def test_explain_for_status() -> None:
    out = explain_journal(_journal(step="bake", switch_started=True), serving="green")
    assert out is not None and out["interrupted"] is True
    assert out["recovery"]["action"] == "switch-back"
    assert explain_journal(None, "blue") is None
    done = explain_journal(_journal(status="done"), "blue")
    assert done is not None and done["interrupted"] is False
