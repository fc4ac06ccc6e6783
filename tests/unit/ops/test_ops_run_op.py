"""run_op's safety net (read-only, validation, lock, audit) and the CLI's
parsing and exit codes: the parts that need no stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.cli import build_parser
from console.core.models import OpEvent
from console.core.ops import OPERATIONS, OpContext, result_code, run_op
from console.core.ops.audit import read_jsonl
from console.core.ops.context import Operator
from console.core.ops.lock import DeployLock, lock_state, make_record

REPO = Path(__file__).resolve().parents[3]
SECRET = "pw-Secret-0123456789abcdef"


def _ctx(tmp_path: Path, **kw: Any) -> OpContext:
    op = Operator(user="unit", ssh_client="192.0.2.1", host="h", pid=1, pid_start=None)
    values: dict[str, Any] = {
        "stack": "unitx",
        "repo": REPO,
        "state_dir": tmp_path / "state",
        "run_dir": tmp_path / "run",
        "base_url": "http://127.0.0.1:9",
        "env": {"POSTGRES_PASSWORD": SECRET},
        "operator": op,
    }
    values.update(kw)
    return OpContext(**values)


async def _events(name: str, ctx: OpContext, **params: Any) -> list[OpEvent]:
    return [e async for e in run_op(name, ctx, **params)]


def test_registry_flags() -> None:
    writes = {n for n, s in OPERATIONS.items() if s.writes}
    assert writes >= {
        "deploy",
        "rollback",
        "backup",
        "restore",
        "migrate",
        "vacuum",
        "cache-flush",
        "scale",
        "restart",
        "lock-break",
        "silence",
        "silence-expire",
    }
    assert {n for n, s in OPERATIONS.items() if not s.writes} == {
        "preflight",
        "verify",
        "status",
        "silence-list",
        "since-deploy",
    }
    # destructive: the TUI's confirmation is red with the focus on Cancel
    assert OPERATIONS["restore"].destructive and OPERATIONS["rollback"].destructive
    assert not OPERATIONS["deploy"].destructive and not OPERATIONS["backup"].destructive
    assert not OPERATIONS["lock-break"].takes_lock and OPERATIONS["deploy"].takes_lock


async def test_unknown_operation(tmp_path: Path) -> None:
    events = await _events("frobnicate", _ctx(tmp_path))
    assert len(events) == 1 and events[0].status == "fail" and result_code(events[0]) == "bad-input"
    assert "unknown operation 'frobnicate'" in events[0].message


async def test_read_only_refuses_writes_before_anything(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, read_only=True)
    for name, spec in OPERATIONS.items():
        if not spec.writes:
            continue
        events = await _events(name, ctx, version="v1", password=SECRET)
        assert events[-1].status == "fail" and result_code(events[-1]) == "read-only", name
        assert "read-only mode" in events[-1].message
    assert not (tmp_path / "state" / "lock").exists()  # no lock was even taken
    audit = read_jsonl(tmp_path / "state" / "audit.log")
    assert {a["op"] for a in audit} == {n for n, s in OPERATIONS.items() if s.writes}
    assert all(
        a["event"] == "refused" and a["result"] == "read-only" and a["user"] == "unit"
        for a in audit
    )
    assert SECRET not in (tmp_path / "state" / "audit.log").read_text()


async def test_validation_refuses_before_the_lock(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    events = await _events("emergency-limit", ctx, state="sideways")
    assert result_code(events[-1]) == "bad-input" and "on or off" in events[-1].message
    events = await _events("scale", ctx, spec="worker=-3")
    assert (
        result_code(events[-1]) == "bad-input"
        and "worker scales to 0..3, not -3" in events[-1].message
    )
    events = await _events("deploy", ctx, version="v1.2.3\x00")
    assert result_code(events[-1]) == "bad-input"
    assert events[-1].data["field"] == "version"
    assert not lock_state(ctx.lock_path).held


async def test_lock_busy_names_the_holder(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    holder = Operator(
        user="bob",
        ssh_client="198.51.100.2",
        host=Operator.current().host,
        pid=Operator.current().pid,
    )
    lock = DeployLock(ctx.lock_path)
    lock.acquire(make_record(holder, "deploy", "held"))
    try:
        events = await _events("emergency-limit", ctx, state="on")
    finally:
        lock.release()
    final = events[-1]
    assert result_code(final) == "lock-busy"
    assert "deploy by bob from 198.51.100.2" in final.message
    assert final.data["holder"]["op_id"] == "held"


async def test_lock_break_clears_a_stale_lock_and_is_audited(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.state_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: ASYNC220
    dead.wait()
    record = make_record(
        Operator(user="zed", ssh_client=None, host=ctx.operator.host, pid=dead.pid), "deploy", "x"
    )
    ctx.lock_path.write_text(json.dumps(record))
    assert lock_state(ctx.lock_path).stale
    events = await _events("lock-break", ctx)
    assert events[-1].status == "done" and "zed" in events[-1].message
    assert not lock_state(ctx.lock_path).stale
    audit = read_jsonl(ctx.audit_path)
    assert [(a["op"], a["event"]) for a in audit] == [
        ("lock-break", "start"),
        ("lock-break", "end"),
    ]
    assert audit[-1]["result"] == "ok"


def test_parser_accepts_global_options_after_the_command() -> None:
    p = build_parser()
    a = p.parse_args(["deploy", "--version", "v1", "--stack", "s1", "--json", "--read-only"])
    assert (a.stack, a.json, a.read_only, a.version) == ("s1", True, True, "v1")
    a = p.parse_args(["--stack", "s2", "--json", "cache", "flush", "--dry-run"])
    assert (a.stack, a.json, a.dry_run) == ("s2", True, True)
    a = p.parse_args(["--stack", "s3", "status"])
    assert a.stack == "s3" and a.json is False
    a = p.parse_args(["rollback", "--backup-path", "/x", "--restore-db", "--force"])
    assert a.restore_db and a.force and a.backup_path == "/x" and a.version is None


def test_cli_bad_usage_exits_2() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "console", "deploy"], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 2 and "--version" in r.stderr


def test_cli_read_only_json_output(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "STACK_NAME": "unitcli",
        "STACKDECK_STATE_DIR": str(tmp_path),
        "HOME": str(tmp_path),
        "STACKDECK_CONFIG": "",
    }
    r = subprocess.run(
        [sys.executable, "-m", "console", "--json", "--read-only", "restart", "db"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2, r.stderr
    lines = [OpEvent.model_validate_json(x) for x in r.stdout.splitlines()]
    assert lines and lines[-1].status == "fail" and lines[-1].data["code"] == "read-only"
    r = subprocess.run(
        [sys.executable, "-m", "console", "--read-only", "restart", "db"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "read-only mode" in r.stderr and "✗" in r.stdout


@pytest.mark.parametrize(
    "argv", [["scale", "worker=eleventy"], ["emergency-limit", "on", "--ttl", "-1"]]
)
def test_cli_bad_input_exits_2(tmp_path: Path, argv: list[str]) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "STACK_NAME": "unitcli",
        "STACKDECK_STATE_DIR": str(tmp_path),
        "HOME": str(tmp_path),
    }
    r = subprocess.run(
        [sys.executable, "-m", "console", *argv], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert r.returncode == 2, r.stdout + r.stderr
