"""Bad input on the command line: each gets a clear, specific error, exit
status 2 (bad input), a refusal line in the audit log, and changes nothing.

Every text field gets unicode and control characters too, and nothing the
operator typed comes back raw to the terminal (no escape-sequence injection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.reliability._cli import audit_lines, cli_env, fingerprint, has_raw_control, stackdeck
from tests.reliability._harness import REPO, Figure, record

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

ESC = "\x1b]0;pwned\x07\x1b[2J"
"""An OSC title change, a bell and a clear-screen: must never reach the terminal raw."""

# (id, argv, words the error must contain (any of them, case-insensitive))
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    # versions
    ("version without v", ["deploy", "--version", "1.2.3"], ("malformed", "version")),
    ("version double dot", ["deploy", "--version", "v1..2"], ("malformed",)),
    ("version shell", ["deploy", "--version", "v1.2.3;rm -rf /"], ("malformed",)),
    ("version empty", ["deploy", "--version", ""], ("required", "version")),
    ("version huge", ["deploy", "--version", "v" + "9" * 200], ("malformed",)),
    ("version latest", ["deploy", "--version", "latest"], ("malformed",)),
    ("version unicode", ["deploy", "--version", "v１.２.３"], ("malformed",)),
    ("version escape", ["deploy", "--version", "v1.2.3" + ESC], ("malformed",)),
    ("version unknown", ["deploy", "--version", "v97.0.1"], ("v97.0.1",)),
    ("rollback version malformed", ["rollback", "--version", "v1.x", "--force"], ("malformed",)),
    ("rollback version unknown", ["rollback", "--version", "v96.0.0", "--force"], ("v96.0.0",)),
    ("deploy strategy", ["deploy", "--version", "v1.0.0", "--bake-seconds", "-5"], ("bake",)),
    ("deploy error rate", ["deploy", "--version", "v1.0.0", "--max-error-rate", "7"], ("error",)),
    (
        "deploy services",
        ["deploy", "--version", "v1.0.0", "--services", "backend nosuch"],
        ("nosuch",),
    ),
    # services and scale
    ("restart unknown", ["restart", "nosuchservice"], ("nosuchservice", "unknown")),
    ("restart injection", ["restart", "db; docker rm -f x"], ("unknown", "service")),
    ("restart escape", ["restart", "db" + ESC], ("unknown", "service")),
    ("restart empty", ["restart", ""], ("service",)),
    ("scale negative", ["scale", "worker=-1"], ("between", "scale", "replica")),
    ("scale huge", ["scale", "worker=100000000000000000000"], ("between", "replica")),
    ("scale not a number", ["scale", "worker=lots"], ("number", "replica", "scale")),
    ("scale float", ["scale", "worker=1.5"], ("number", "replica", "scale", "whole")),
    ("scale unknown service", ["scale", "nosuch=1"], ("nosuch",)),
    ("scale db", ["scale", "db=3"], ("db", "scale")),
    ("scale no count", ["scale", "worker"], ("service=n", "worker=", "scale")),
    # backups
    (
        "restore outside",
        ["restore", "/etc/passwd", "--confirm", "investment_db"],
        ("inside", "backup"),
    ),
    (
        "restore traversal",
        ["restore", "../../../../etc/passwd", "--confirm", "investment_db"],
        ("inside", "backup"),
    ),
    (
        "restore missing",
        ["restore", "no-such-backup-20990101", "--confirm", "investment_db"],
        ("no such", "backup"),
    ),
    ("restore control", ["restore", "x\x07y", "--confirm", "investment_db"], ("control", "backup")),
    (
        "rollback backup outside",
        [
            "rollback",
            "--restore-db",
            "--backup-path",
            "/etc/shadow",
            "--confirm",
            "investment_db",
            "--force",
        ],
        ("inside", "backup"),
    ),
    # cache, emergency, vacuum
    ("flush quota prefix", ["cache", "flush", "--prefix", "quota:"], ("prefix", "cache")),
    ("flush everything prefix", ["cache", "flush", "--prefix", ""], ("prefix",)),
    ("flush star", ["cache", "flush", "--prefix", "*"], ("prefix",)),
    ("flushdb unconfirmed", ["cache", "flush", "--all"], ("confirm",)),
    ("flushdb wrong confirm", ["cache", "flush", "--all", "--confirm", "yes"], ("confirm",)),
    ("emergency maybe", ["emergency-limit", "maybe"], ("on", "off")),
    ("emergency ttl negative", ["emergency-limit", "on", "--ttl", "-5"], ("ttl",)),
    ("emergency ttl huge", ["emergency-limit", "on", "--ttl", "999999999999"], ("ttl",)),
    ("vacuum injection", ["vacuum", "users; DROP TABLE users"], ("table",)),
    ("vacuum unknown", ["vacuum", "no_such_table"], ("no_such_table",)),
    ("vacuum catalog", ["vacuum", "pg_catalog.pg_class; select 1"], ("table",)),
    ("vacuum escape", ["vacuum", "prices" + ESC], ("table",)),
    ("warm bad symbols", ["cache", "warm", "--symbols", "AAPL,' OR 1=1"], ("symbol",)),
    ("verify level", ["verify", "--level", "everything"], ("level", "invalid choice")),
]


@pytest.fixture(scope="module")
def refused(stack: Stack) -> dict[str, Any]:
    """Run every case through the CLI's entry point (one process for all),
    between two fingerprints of the stack."""
    before_all = fingerprint(stack)
    audit_before = len(audit_lines(stack))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability._cli_batch"],
        input=json.dumps([argv for _, argv, _ in CASES]),
        cwd=REPO,
        env=cli_env(stack),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    results = {name: row for (name, _, _), row in zip(CASES, rows, strict=True)}
    after_all = fingerprint(stack)
    audit = audit_lines(stack)[audit_before:]
    record(
        Figure(
            fault=f"CLI bad input ({len(CASES)} cases)",
            operator_saw="exit codes "
            + ", ".join(sorted({str(r["code"]) for r in results.values()})),
            notes=f"refused with exit 2: {sum(1 for r in results.values() if r['code'] == 2)}/{len(CASES)}; "
            f"state unchanged: {before_all == after_all}; "
            f"audit refusals: {sum(1 for a in audit if a.get('event') == 'refused')}",
            extra={
                "passed": before_all == after_all and all(r["code"] == 2 for r in results.values())
            },
        )
    )
    return {"results": results, "before": before_all, "after": after_all, "audit": audit}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_cli_input_is_refused_clearly(
    refused: dict, case: tuple[str, list[str], tuple[str, ...]]
) -> None:
    name, _argv, words = case
    row = refused["results"][name]
    out = row["out"]
    assert row["code"] == 2, f"exit {row['code']} (want 2: bad input):\n{out[-800:]}"
    assert "Traceback" not in out, out[-1500:]
    assert any(w.lower() in out.lower() for w in words), (
        f"error does not say what is wrong ({words}):\n{out[-600:]}"
    )
    assert not has_raw_control(out), (
        f"raw control characters echoed to the terminal: {out[-300:]!r}"
    )


def test_refused_input_changed_nothing(refused: dict) -> None:
    before, after = refused["before"], refused["after"]
    diff = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not diff, f"refused commands changed the stack: {diff}"


def test_refusals_are_audited_with_operator_identity(refused: dict) -> None:
    audit = refused["audit"]
    refusals = [a for a in audit if a.get("event") == "refused"]
    assert refusals, "no refusal reached the audit log"
    user = (
        os.environ.get("SUDO_USER") or os.environ.get("LOGNAME") or os.environ.get("USER") or "root"
    )
    for a in refusals:
        assert a.get("user") in (user, "root"), a
        assert "host" in a and "pid" in a and "ssh_client" in a, a
        assert not has_raw_control(str(a)), a


def test_symlink_in_backup_folder_pointing_outside_is_refused(stack: Stack) -> None:
    link = stack.state_dir / "backups" / "reliability-evil.dump"
    before = None
    try:
        link.symlink_to(Path("/etc/passwd"))
        before = fingerprint(stack)
        proc = stackdeck(stack, "restore", link.name, "--confirm", "investment_db")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out[-600:]
        assert "inside" in out.lower() or "outside" in out.lower() or "symlink" in out.lower(), out[
            -600:
        ]
    finally:
        link.unlink(missing_ok=True)
    after = fingerprint(stack)
    after["backups"] = [b for b in after["backups"]]
    assert before is not None
    before["backups"] = [b for b in before["backups"] if b != link.name]
    assert after == before


@pytest.mark.parametrize(
    "argv",
    [["deploy", "--version", "v1..2"], ["restart", "nosuchservice"], ["restore", "/etc/passwd"]],
    ids=["deploy", "restart", "restore"],
)
def test_exit_status_of_the_real_command(stack: Stack, argv: list[str]) -> None:
    """The same refusals from a separate ``stackdeck`` process: exit 2, one
    clear line on stderr, no traceback."""
    proc = stackdeck(stack, *argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "stackdeck" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
