"""Bad input and read-only mode: a clear, specific error, exit 2, nothing changed.

Run against the real stack: the checks that need it (an image exists, a
table exists, the compose file's services) are real, and "nothing changed"
is checked on the containers, deploy.env, nginx's active file, the history,
the backups and the journal.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ops.ops_helpers import REPO, cli_env, run_cli, state_snapshot

pytestmark = pytest.mark.stack


def _refused(
    stack: Any, args: list[str], *needles: str, rc: int = 2, env: dict[str, str] | None = None
) -> None:
    before = state_snapshot(stack)
    r = run_cli(stack, *args, env=env)
    assert r.rc == rc, r.text()
    final = r.final
    assert final["status"] == "fail" and final["step"] == "result", r.text()
    for needle in needles:
        assert needle in final["message"], (needle, final["message"])
    assert state_snapshot(stack) == before, f"{args} changed the stack"


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        ("1.2.3", "malformed version '1.2.3'"),
        ("v1.2.3;reboot", "malformed version"),
        ("v1.2.3\x1b[2J", "malformed version 'v1.2.3\\x1b[2J'"),
        ("vé1", "malformed version"),
        ("v" + "9" * 100, "malformed version"),
    ],
)
def test_malformed_version(stack: Any, version: str, needle: str) -> None:
    _refused(stack, ["deploy", "--version", version], needle, "v1.2.3")


def test_unknown_version(stack: Any) -> None:
    _refused(
        stack,
        ["deploy", "--version", "v99.99.99-nosuch"],
        "unknown version v99.99.99-nosuch",
        f"no image {stack.backend_image}:v99.99.99-nosuch",
        "--build",
    )
    _refused(
        stack, ["rollback", "--version", "v99.99.99-nosuch"], "unknown version v99.99.99-nosuch"
    )


def test_other_deploy_parameters(stack: Any) -> None:
    _refused(stack, ["deploy", "--version", "v1.0.0", "--environment", "staging"], "production")
    _refused(
        stack,
        ["deploy", "--version", "v1.0.0", "--services", "backend database"],
        "unknown service 'database'",
    )
    _refused(
        stack,
        ["deploy", "--version", "v1.0.0", "--bake-seconds", "-5"],
        "bake_seconds must be between 0",
    )
    _refused(
        stack,
        ["deploy", "--version", "v1.0.0", "--max-error-rate", "7"],
        "max_error_rate must be between 0 and 1",
    )


def test_missing_backup_path(stack: Any) -> None:
    missing = stack.state_dir / "backups" / "20000101T000000Z-000000.dump"
    _refused(stack, ["restore", str(missing), "--confirm", "investment_db"], "no such backup file")
    _refused(stack, ["restore", "nosuchid", "--confirm", "investment_db"], "no such backup file")
    _refused(
        stack,
        ["rollback", "--restore-db", "--backup-path", str(missing), "--confirm", "investment_db"],
        "no such backup file",
    )


def test_path_outside_backup_folder(stack: Any, tmp_path: Path) -> None:
    outside = tmp_path / "evil.dump"
    outside.write_bytes(b"PGDMP")
    _refused(
        stack, ["restore", str(outside), "--confirm", "investment_db"], "outside the backup folder"
    )
    _refused(
        stack, ["restore", "/etc/passwd", "--confirm", "investment_db"], "outside the backup folder"
    )
    sneaky = f"{stack.state_dir}/backups/../deploy.env"
    _refused(stack, ["restore", sneaky, "--confirm", "investment_db"], "outside the backup folder")
    link = stack.state_dir / "backups" / "link-to-outside.dump"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    try:
        _refused(
            stack, ["restore", str(link), "--confirm", "investment_db"], "outside the backup folder"
        )
    finally:
        link.unlink()
    _refused(
        stack,
        ["rollback", "--restore-db", "--backup-path", "/etc/passwd", "--confirm", "investment_db"],
        "outside the backup folder",
    )


def test_restore_needs_the_typed_database_name(stack: Any) -> None:
    # the name check happens whatever the path
    _refused(
        stack, ["rollback", "--restore-db", "--confirm", "investment"], "type the database name"
    )
    _refused(
        stack, ["rollback", "--backup-path", "x"], "--backup-path is only used with --restore-db"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["restart", "databse"], "unknown service 'databse'"),
        (["restart", "nginx\x07"], "unknown service 'nginx\\x07'"),
        (["scale", "frontnd=2"], "unknown service 'frontnd'"),
        (["scale", "frontend=2"], "frontend does not scale"),
        (["scale", "frontend_blue=2"], "frontend_blue does not scale"),
        (["scale", "worker=-1"], "worker scales to 0..3, not -1"),
        (["scale", "worker=1000000"], "worker scales to 0..3, not 1000000"),
        (["scale", "worker=many"], "SERVICE=N"),
        (["scale", "db=2"], "does not scale"),
        (["scale", "worker=4"], "worker scales to 0..3"),
        (["vacuum", "no_such_table"], "no table 'no_such_table'"),
        (["vacuum", "users; DROP TABLE users"], "not a table name"),
        (["cache", "flush", "--prefix", "quota:"], "outside the cache"),
        (["cache", "flush", "--all"], "type the Redis container's name"),
        (["cache", "warm", "--symbols", "AAPL,<script>"], "not a ticker symbol"),
        (["emergency-limit", "maybe"], "on or off"),
        (["emergency-limit", "on", "--ttl", "0"], "between 1 s and 7 days"),
    ],
)
def test_bad_operation_input(stack: Any, args: list[str], needle: str) -> None:
    _refused(stack, args, needle)


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "--version", "v1.0.0"],
        ["rollback"],
        ["backup"],
        ["restore", "x", "--confirm", "investment_db"],
        ["migrate"],
        ["vacuum"],
        ["cache", "flush"],
        ["cache", "warm"],
        ["emergency-limit", "on"],
        ["scale", "worker=0"],
        ["restart", "worker"],
        ["lock", "break"],
    ],
)
def test_read_only_refuses_every_write(stack: Any, args: list[str]) -> None:
    _refused(stack, ["--read-only", *args], "read-only mode", "nothing was changed")


def test_read_only_from_the_environment_cannot_be_overridden(stack: Any) -> None:
    env = cli_env(stack, STACKDECK_READ_ONLY="true")
    _refused(stack, ["backup"], "read-only mode", env=env)


def test_read_only_still_reads(stack: Any) -> None:
    r = run_cli(stack, "--read-only", "verify", "--level", "smoke")
    assert r.rc == 0, r.text()
    assert r.final["status"] == "done"


def test_refusals_are_audited(stack: Any) -> None:
    from console.core.ops.audit import read_jsonl

    run_cli(stack, "--read-only", "backup", env=cli_env(stack, SSH_CLIENT="203.0.113.9 51000 22"))
    last = read_jsonl(stack.state_dir / "audit.log")[-1]
    assert last["op"] == "backup" and last["event"] == "refused" and last["result"] == "read-only"
    assert last["ssh_client"] == "203.0.113.9"
    assert last["read_only"] is True


def _script(stack: Any, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A runbook script as a newcomer's shell runs it: no .venv on PATH, no
    PYTHONPATH, from another folder. Whatever it answers, never a traceback."""
    r = subprocess.run(
        [str(REPO / "scripts" / path), *args],
        env=stack.bare_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def test_runbook_scripts_run_from_a_bare_shell(stack: Any) -> None:
    # The precondition that makes this test mean something: the system
    # interpreter cannot import the console (the scripts must not rely on it).
    probe = subprocess.run(
        ["python3", "-c", "import console.cli"],
        env=stack.bare_env(),
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "No module named 'console'" in probe.stderr, probe.stderr
    before = state_snapshot(stack)
    # the runbook's exact invocation, with a version that does not exist
    r = _script(
        stack,
        "deployment/blue_green_deploy.sh",
        "--version",
        "v0.0.0-never",
        "--environment",
        "production",
        "--services",
        "backend frontend",
    )
    assert r.returncode == 2 and "unknown version v0.0.0-never" in r.stderr, r.stdout + r.stderr
    r = _script(
        stack,
        "deployment/rollback.sh",
        "--backup-path",
        "/etc/passwd",
        "--restore-db",
        "--confirm",
        "investment_db",
    )
    assert r.returncode == 2 and "outside the backup folder" in r.stderr, r.stdout + r.stderr
    r = _script(stack, "deployment/rollback.sh", "--version", "v1.2", "--read-only")
    assert r.returncode == 2 and "read-only" in r.stderr, r.stdout + r.stderr
    r = _script(stack, "optimization/cache_warmer.sh", "--read-only")
    assert r.returncode == 2 and "read-only" in r.stderr, r.stdout + r.stderr
    assert state_snapshot(stack) == before
    r = _script(stack, "testing/api_smoke_test.sh")
    assert r.returncode == 0 and "verification passed" in r.stdout, r.stdout + r.stderr
    r = _script(stack, "testing/critical_path_test.sh")
    assert r.returncode == 0 and "verification passed" in r.stdout, r.stdout + r.stderr
    r = _script(stack, "deployment/pre_deployment_check.sh", "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert {"engine", "database", "timescaledb"} <= {e["step"] for e in lines}, r.stdout + r.stderr
    r = _script(stack, "backup.sh", "--list")
    assert r.returncode == 0, r.stdout + r.stderr
