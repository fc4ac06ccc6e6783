"""The deploy lock: flock + holder record, across real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.core.ops.context import Operator
from console.core.ops.errors import LockBusy
from console.core.ops.lock import (
    DeployLock,
    break_lock,
    describe_holder,
    format_age,
    holder_alive,
    lock_state,
    make_record,
)

REPO = Path(__file__).resolve().parents[3]


def _operator(user: str = "alice", ssh: str | None = "10.0.0.5") -> Operator:
    me = Operator.current({})
    return Operator(user=user, ssh_client=ssh, host=me.host, pid=me.pid, pid_start=me.pid_start)


def _hold_in_child(path: Path) -> subprocess.Popen[str]:
    """A separate process that takes the lock and sleeps (prints 'held')."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from console.core.ops.context import Operator
        from console.core.ops.lock import DeployLock, make_record
        op = Operator.current({{"USER": "bob", "SSH_CLIENT": "192.0.2.7 50000 22"}})
        lock = DeployLock(Path({str(path)!r}))
        lock.acquire(make_record(op, "deploy", "child1"))
        print("held", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_record_round_trip_and_release(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = DeployLock(path)
    lock.acquire(make_record(_operator(), "deploy", "abc"))
    st = lock_state(path)
    assert st.held and not st.stale
    assert (
        st.holder is not None
        and st.holder["user"] == "alice"
        and st.holder["ssh_client"] == "10.0.0.5"
    )
    assert st.holder["op"] == "deploy" and st.holder["pid"] == os.getpid()
    lock.release()
    st = lock_state(path)
    assert not st.held and not st.stale and st.holder is None


def test_second_acquire_in_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    first = DeployLock(path)
    first.acquire(make_record(_operator(), "vacuum", "one"))
    try:
        with pytest.raises(LockBusy) as info:
            DeployLock(path).acquire(make_record(_operator("carol"), "deploy", "two"), wait=0.1)
        assert "vacuum by alice from 10.0.0.5" in str(info.value)
        assert not info.value.stale
    finally:
        first.release()


def test_other_process_holder_is_named_then_stale_after_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    child = _hold_in_child(path)
    try:
        with pytest.raises(LockBusy) as info:
            DeployLock(path).acquire(make_record(_operator(), "deploy", "me"), wait=0.1)
        msg = str(info.value)
        assert "deploy by bob from 192.0.2.7" in msg and f"pid {child.pid}" in msg
        with pytest.raises(LockBusy, match="live process"):
            break_lock(path)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    st = lock_state(path)
    assert st.stale and not st.held and st.alive is False
    assert st.holder is not None and st.holder["user"] == "bob"
    # a stale lock still refuses, and says how to clear it
    with pytest.raises(LockBusy) as info:
        DeployLock(path).acquire(make_record(_operator(), "deploy", "me"), wait=0.1)
    assert (
        info.value.stale
        and "lock break" in str(info.value)
        and "process is gone" in str(info.value)
    )
    cleared = break_lock(path)
    assert cleared is not None and cleared["user"] == "bob"
    lock = DeployLock(path)
    lock.acquire(make_record(_operator(), "deploy", "me"))
    lock.release()
    assert break_lock(path) is None


def test_holder_alive_detects_dead_and_reused_pids() -> None:
    me = Operator.current()
    rec = make_record(me, "deploy", "x")
    assert holder_alive(rec) is True
    assert holder_alive({**rec, "pid_start": (me.pid_start or 0) + 1}) is False  # pid reused
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert holder_alive({**rec, "pid": proc.pid, "pid_start": None}) is False
    assert holder_alive({**rec, "host": "elsewhere.example"}) is None


def test_describe_and_age() -> None:
    started = datetime.now(UTC) - timedelta(minutes=3, seconds=5)
    rec = {
        "op": "deploy",
        "user": "alice",
        "ssh_client": None,
        "pid": 42,
        "host": "h",
        "started": started.isoformat(),
    }
    assert describe_holder(rec) == "deploy by alice (pid 42 on h) for 3 min"
    assert (
        format_age(5) == "5 s"
        and format_age(7300) == "2 h 1 min"
        and format_age(90000) == "1 d 1 h"
    )
    assert "not written" in describe_holder(None)


def test_corrupt_record_is_reported_stale_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text("{not json")
    st = lock_state(path)
    assert st.stale and st.holder == {"corrupt": "{not json"}
    json.dumps(st.as_dict())
    with pytest.raises(LockBusy):
        DeployLock(path).acquire(make_record(_operator(), "deploy", "me"), wait=0)
    time.sleep(0)
