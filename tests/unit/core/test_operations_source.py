"""The operations source: it reads the audit log from where it stopped, and
turns another process's lock, audit lines and journal into events.

The files are written by the ops engine's own writers (``DeployLock``,
``audit``, ``Journal``), so a change of format on either side fails here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.core.config import Settings
from console.core.models import LockInfo, OpHolder
from console.core.ops.audit import audit
from console.core.ops.context import Operator
from console.core.ops.journal import Journal
from console.core.ops.lock import DeployLock, make_record
from console.core.sources.operations import AppendedLines, OperationsSource

NOW = datetime(2025, 3, 14, 14, 2, 11, tzinfo=UTC)
HOST = socket.gethostname()


# --- the audit log's tail ---------------------------------------------------------------


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_the_tail_starts_at_the_end_and_returns_only_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    tail = AppendedLines(log)
    assert tail.read() == []  # what was there before is history
    _append(log, b'{"n": 3}\n')
    assert tail.read() == [b'{"n": 3}']
    assert tail.read() == []
    _append(log, b'{"n": 4}\n{"n": 5}\n')
    assert tail.read() == [b'{"n": 4}', b'{"n": 5}']


def test_a_torn_last_line_waits_until_it_is_complete(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    tail = AppendedLines(log)
    tail.read()
    _append(log, b'{"n": 1}\n{"n": ')
    assert tail.read() == [b'{"n": 1}']
    _append(log, b"2}\n")
    assert tail.read() == [b'{"n": 2}']


def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    tail = AppendedLines(log)
    tail.read()
    with open(log, "r+b") as fh:
        fh.truncate(0)
    _append(log, b'{"n": 9}\n')
    assert tail.read() == [b'{"n": 9}']


def test_a_rotated_log_is_read_from_the_start_of_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b'{"n": 1}\n' * 50)
    tail = AppendedLines(log)
    tail.read()
    os.rename(log, tmp_path / "audit.log.1")
    assert tail.read() == []  # gone for a moment
    log.write_bytes(b'{"n": 2}\n')
    assert tail.read() == [b'{"n": 2}']
    # replaced by a longer file without a gap in between: another inode
    new = tmp_path / "new.log"
    new.write_bytes(b'{"n": 3}\n' * 60)
    os.replace(new, log)
    assert tail.read() == [b'{"n": 3}'] * 60


def test_a_burst_larger_than_max_read_keeps_its_last_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    tail = AppendedLines(log, max_read=100)
    tail.read()
    _append(log, b"".join(b'{"n": %03d}\n' % n for n in range(40)))
    lines = tail.read()
    assert lines and lines[-1] == b'{"n": 039}'
    assert all(line.startswith(b'{"n": ') for line in lines)  # no half line first


# --- the source, on files the ops engine writes -----------------------------------------


ALICE = Operator(user="alice", ssh_client="10.0.0.5", host=HOST, pid=4242, via="cli")


@pytest.fixture
def state(clean_env: Path) -> Path:
    """The stack's state folder (an isolated environment around it)."""
    path = clean_env / "state"
    path.mkdir()
    return path


def _source(state: Path) -> OperationsSource:
    settings = Settings(repo_root=state.parent, state_dir=state)
    return OperationsSource(settings, clock=lambda: NOW, own_pid=os.getpid(), host=HOST)


def _audit(state: Path, event: str, op_id: str, who: Operator = ALICE, **kw: object) -> None:
    audit(
        state / "audit.log",
        event=event,
        op="deploy",
        op_id=op_id,
        operator=who.as_dict(),
        params={"version": "v1.2.4"},
        **kw,  # type: ignore[arg-type]
    )


def test_another_operators_deploy_appears_with_its_lock_steps_and_end(state: Path) -> None:
    src = _source(state)
    first = src.scan()
    assert first is not None and first.lock is None and first.events == []
    assert src.scan() is None  # nothing changed: nothing published

    lock = DeployLock(state / "lock")
    lock.acquire(make_record(ALICE, "deploy", "op1"))
    _audit(state, "start", "op1")
    snap = src.scan()
    assert snap is not None and snap.lock is not None
    assert snap.lock.op == "deploy" and not snap.lock.stale
    assert snap.lock.holder == OpHolder(
        user="alice", host=HOST, pid=4242, ssh_client="10.0.0.5", via="cli"
    )
    assert [(e.op, e.step, e.status) for e in snap.events] == [("deploy", "begin", "start")]
    assert "alice@" in snap.events[0].message and "pid 4242" in snap.events[0].message

    journal = Journal.begin(state / "deploy-journal.json", id="op1", op="deploy", **ALICE.as_dict())
    journal.step("preflight")
    journal.step("start-idle")
    snap = src.scan()
    assert snap is not None
    assert [e.step for e in snap.events] == ["begin", "preflight", "start-idle"]
    journal.step("wait-healthy")
    journal.finish("done")
    lock.release()
    _audit(state, "end", "op1", result="ok", message="deployed v1.2.4", duration_s=61.0)
    snap = src.scan()
    assert snap is not None and snap.lock is None
    assert [(e.step, e.status) for e in snap.events][-2:] == [
        ("wait-healthy", "info"),
        ("end", "done"),
    ]
    assert [e.data["seq"] for e in snap.events] == [1, 2, 3, 4, 5] and snap.seq == 5
    assert {e.data["by"] for e in snap.events} == {f"alice@{HOST} (cli)"}
    assert src.scan() is None


def test_this_consoles_own_operations_are_left_out(state: Path) -> None:
    me = Operator(user="bob", ssh_client=None, host=HOST, pid=os.getpid(), via="tui")
    src = _source(state)
    src.scan()
    lock = DeployLock(state / "lock")
    lock.acquire(make_record(me, "deploy", "mine"))
    _audit(state, "start", "mine", who=me)
    Journal.begin(state / "deploy-journal.json", id="mine", op="deploy", **me.as_dict()).step(
        "preflight"
    )
    snap = src.scan()
    assert snap is None or (snap.lock is None and snap.events == [])
    lock.release()


def test_a_failed_or_refused_operation_ends_as_such(state: Path) -> None:
    src = _source(state)
    src.scan()
    _audit(state, "start", "op2")
    _audit(state, "end", "op2", result="rolled-back", message="bake: p95 2400 ms")
    _audit(state, "refused", "op3", result="lock-busy", message="the deploy lock is held")
    snap = src.scan()
    assert snap is not None
    assert [(e.step, e.status) for e in snap.events] == [
        ("begin", "start"),
        ("result", "fail"),
        ("refused", "warn"),
    ]
    assert snap.events[1].message == "rolled-back: bake: p95 2400 ms"


def test_a_lock_left_by_a_dead_process_is_stale(state: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)  # a process that has ended
    gone = Operator(user="alice", ssh_client=None, host=HOST, pid=pid, via="cli")
    # what a holder killed mid-operation leaves: the record, no flock
    (state / "lock").write_text(json.dumps(make_record(gone, "deploy", "op9", now=NOW)) + "\n")
    snap = _source(state).scan()
    assert snap is not None and snap.lock is not None
    assert snap.lock.stale and snap.lock.alive is False
    assert snap.lock.holder.pid == pid
    assert snap.events == []  # an interrupted operation is not announced as starting


def test_a_corrupt_record_or_audit_line_is_skipped(state: Path) -> None:
    src = _source(state)
    (state / "audit.log").write_bytes(b"")
    src.scan()
    _append(state / "audit.log", b'{"event": "start", "op_id": "x", "op": "dep')  # torn
    _audit(state, "start", "op4")  # append_jsonl starts it on a fresh line
    snap = src.scan()
    assert snap is not None and [e.data["op_id"] for e in snap.events] == ["op4"]


@pytest.mark.parametrize("stale", [False, True])
def test_lock_info_round_trips(stale: bool) -> None:
    info = LockInfo(op="deploy", holder=OpHolder(user="a", host="h"), stale=stale)
    assert LockInfo.model_validate(info.model_dump(mode="json")) == info


def test_an_operation_begun_before_the_console_looked_ends_without_a_begin(state: Path) -> None:
    _audit(state, "start", "op5")  # before the source's first look: history
    src = _source(state)
    src.scan()
    _audit(state, "end", "op5", result="ok", message="verified")
    snap = src.scan()
    assert snap is not None
    assert [(e.step, e.status, e.message) for e in snap.events] == [("end", "done", "verified")]
    assert snap.events[0].data["by"] == f"alice@{HOST} (cli)"
