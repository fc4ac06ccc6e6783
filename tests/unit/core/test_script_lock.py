"""A shell script holds stackdeck's deploy lock through the project's own
lock code (console/core/ops/script_lock.py, what scripts/swarm.sh deploy
runs): taken on the script's descriptor, it outlives the python process,
refuses stackdeck (and a second script) while held, and is released with
the audit log's end line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.core.ops.context import Operator
from console.core.ops.errors import LockBusy
from console.core.ops.lock import DeployLock, lock_state, make_record
from tests.stack import REPO

# a script's life: the lock file on fd 8, take, (work), release; $1 the state folder.
# ``-S``: no site-packages, as the host's bare python3 that swarm.sh runs has
# none of the console's dependencies (an import of one fails the test)
SCRIPT = """
exec 8<>"$1/lock"
lock() { PYTHONPATH="$REPO" "$PY" -S -m console.core.ops.script_lock "$@"; }
lock take 8 "$1" swarm.deploy op-1 swarm=s1 || exit $?
echo taken
read -r _  # until the test says go on
lock release 8 "$1" swarm.deploy op-1 ok backend_version=v1.2.3
"""


def _script(state: Path) -> subprocess.Popen[str]:
    (state / "lock").touch()
    return subprocess.Popen(
        ["bash", "-c", SCRIPT, "script", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"REPO": str(REPO), "PY": sys.executable, "PATH": "/usr/bin:/bin"},
    )


def _audit(state: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]


def test_a_script_holds_the_lock_until_it_releases_it(tmp_path: Path) -> None:
    script = _script(tmp_path)
    assert script.stdout is not None and script.stdin is not None
    try:
        assert script.stdout.readline().strip() == "taken"
        state = lock_state(tmp_path / "lock")
        assert state.held and state.holder is not None
        assert state.holder["op"] == "swarm.deploy" and state.holder["pid"] == script.pid
        with pytest.raises(LockBusy, match=r"held by swarm\.deploy by .* \(pid \d+"):
            DeployLock(tmp_path / "lock").acquire(
                make_record(Operator.current(), "deploy", "op-2"), wait=0.1
            )
        second = _script(tmp_path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2, err
        assert err.count("\n") == 1 and "refused: the deploy lock is held by swarm.deploy" in err
        script.stdin.write("go\n")
        script.stdin.flush()
        assert script.wait(timeout=30) == 0, script.stderr.read() if script.stderr else ""
    finally:
        script.kill()
    assert not lock_state(tmp_path / "lock").held and not lock_state(tmp_path / "lock").stale
    events = [(a["event"], a["op_id"]) for a in _audit(tmp_path)]
    assert events == [("start", "op-1"), ("refused", "op-1"), ("end", "op-1")]
    end = _audit(tmp_path)[-1]
    assert end["result"] == "ok" and end["params"] == {"backend_version": "v1.2.3"}
    # and stackdeck takes it again
    lock = DeployLock(tmp_path / "lock")
    lock.acquire(make_record(Operator.current(), "deploy", "op-3"))
    lock.release()


def test_bad_arguments_are_one_usage_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "console.core.ops.script_lock", "take", "x"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 64 and r.stderr.startswith("usage:") and "Traceback" not in r.stderr


def test_an_audit_log_that_cannot_be_written_leaves_no_stale_lock(tmp_path: Path) -> None:
    """The start line fails (the audit log a folder here; a full disk in the
    field): one line, exit 1, and no holder record that would refuse every
    stackdeck operation as stale until ``lock break``."""
    (tmp_path / "audit.log").mkdir()
    script = _script(tmp_path)
    out, err = script.communicate(timeout=30)
    assert script.returncode == 1, err
    assert "taken" not in out
    assert err.count("\n") == 1 and "writing the audit log" in err, err
    assert "Traceback" not in err
    state = lock_state(tmp_path / "lock")
    assert not state.held and not state.stale, state
