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

# (id, argv, words the error must contain (any of them, case-insensitive)). Each
# needle names what is wrong (the bad value as the error quotes it, or the error's
# own phrase): never a word that every line of that command prints anyway.
CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    # versions
    ("version without v", ["deploy", "--version", "1.2.3"], ("malformed version '1.2.3'",)),
    ("version double dot", ["deploy", "--version", "v1..2"], ("malformed version 'v1..2'",)),
    (
        "version shell",
        ["deploy", "--version", "v1.2.3;rm -rf /"],
        ("malformed version 'v1.2.3;rm -rf /'",),
    ),
    ("version empty", ["deploy", "--version", ""], ("version is required",)),
    ("version huge", ["deploy", "--version", "v" + "9" * 200], ("malformed version 'v999",)),
    ("version latest", ["deploy", "--version", "latest"], ("malformed version 'latest'",)),
    (
        "version unicode",
        ["deploy", "--version", "v１.２.３"],
        ("malformed version 'v\\uff11.\\uff12.\\uff13'",),
    ),
    (
        "version escape",
        ["deploy", "--version", "v1.2.3" + ESC],
        ("malformed version 'v1.2.3\\x1b]0;pwned",),
    ),
    ("version unknown", ["deploy", "--version", "v97.0.1"], ("v97.0.1",)),
    (
        "rollback version malformed",
        ["rollback", "--version", "v1.x", "--force"],
        ("malformed version 'v1.x'",),
    ),
    ("rollback version unknown", ["rollback", "--version", "v96.0.0", "--force"], ("v96.0.0",)),
    (
        "deploy strategy",
        ["deploy", "--version", "v1.0.0", "--strategy", "sideways"],
        ("argument --strategy: invalid choice: 'sideways'",),
    ),
    (
        "deploy bake seconds",
        ["deploy", "--version", "v1.0.0", "--bake-seconds", "-5"],
        ("bake_seconds must be between 0 and 3600, not -5",),
    ),
    (
        "deploy error rate",
        ["deploy", "--version", "v1.0.0", "--max-error-rate", "7"],
        ("max_error_rate must be between 0 and 1, not 7",),
    ),
    (
        "deploy services",
        ["deploy", "--version", "v1.0.0", "--services", "backend nosuch"],
        ("nosuch",),
    ),
    # services and scale
    ("restart unknown", ["restart", "nosuchservice"], ("unknown service 'nosuchservice'",)),
    (
        "restart injection",
        ["restart", "db; docker rm -f x"],
        ("unknown service 'db; docker rm -f x'",),
    ),
    ("restart escape", ["restart", "db" + ESC], ("unknown service 'db\\x1b]0;pwned",)),
    ("restart empty", ["restart", ""], ("unknown service ''",)),
    # Every line of `stackdeck scale` starts with "stackdeck scale:", so each
    # needle is the bad value as the error quotes it, or the error's own phrase.
    ("scale negative", ["scale", "worker=-1"], ("worker scales to 0..3, not -1",)),
    (
        "scale huge",
        ["scale", "worker=100000000000000000000"],
        ("worker scales to 0..3, not 100000000000000000000",),
    ),
    (
        "scale not a number",
        ["scale", "worker=lots"],
        ("expected SERVICE=N (e.g. worker=0), not 'worker=lots'",),
    ),
    (
        "scale float",
        ["scale", "worker=1.5"],
        ("expected SERVICE=N (e.g. worker=0), not 'worker=1.5'",),
    ),
    ("scale unknown service", ["scale", "nosuch=1"], ("unknown service 'nosuch'",)),
    ("scale db", ["scale", "db=3"], ("db does not scale",)),
    ("scale no count", ["scale", "worker"], ("expected SERVICE=N (e.g. worker=0), not 'worker'",)),
    # backups
    (
        "restore outside",
        ["restore", "/etc/passwd", "--confirm", "investment_db"],
        ("path '/etc/passwd' is outside the backup folder",),
    ),
    (
        "restore traversal",
        ["restore", "../../../../etc/passwd", "--confirm", "investment_db"],
        ("path '../../../../etc/passwd' is outside the backup folder",),
    ),
    (
        "restore missing",
        ["restore", "no-such-backup-20990101", "--confirm", "investment_db"],
        ("no such backup file",),
    ),
    (
        "restore control",
        ["restore", "x\x07y", "--confirm", "investment_db"],
        ("the path contains control characters",),
    ),
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
        ("backup_path '/etc/shadow' is outside the backup folder",),
    ),
    # cache, emergency, vacuum
    (
        "flush quota prefix",
        ["cache", "flush", "--prefix", "quota:"],
        ("prefix 'quota:' is outside the cache",),
    ),
    (
        "flush everything prefix",
        ["cache", "flush", "--prefix", ""],
        ("prefix '' is outside the cache",),
    ),
    ("flush star", ["cache", "flush", "--prefix", "*"], ("without control or glob characters",)),
    ("flushdb unconfirmed", ["cache", "flush", "--all"], ("type the Redis container's name",)),
    (
        "flushdb wrong confirm",
        ["cache", "flush", "--all", "--confirm", "yes"],
        ("type the Redis container's name",),
    ),
    ("emergency maybe", ["emergency-limit", "maybe"], ("takes on or off, not 'maybe'",)),
    (
        "emergency ttl negative",
        ["emergency-limit", "on", "--ttl", "-5"],
        ("ttl must be between 1 s and 7 days, not -5",),
    ),
    (
        "emergency ttl huge",
        ["emergency-limit", "on", "--ttl", "999999999999"],
        ("ttl must be between 1 s and 7 days, not 999999999999",),
    ),
    (
        "vacuum injection",
        ["vacuum", "users; DROP TABLE users"],
        ("not a table name: 'users; DROP TABLE users'",),
    ),
    ("vacuum unknown", ["vacuum", "no_such_table"], ("no table 'no_such_table'",)),
    (
        "vacuum catalog",
        ["vacuum", "pg_catalog.pg_class; select 1"],
        ("not a table name: 'pg_catalog.pg_class; select 1'",),
    ),
    ("vacuum escape", ["vacuum", "prices" + ESC], ("not a table name: 'prices\\x1b]0;pwned",)),
    (
        "warm bad symbols",
        ["cache", "warm", "--symbols", "AAPL,' OR 1=1"],
        ("not a ticker symbol",),
    ),
    # The usage line names --level anyway: the needle is argparse's complaint itself.
    (
        "verify level",
        ["verify", "--level", "everything"],
        ("argument --level: invalid choice: 'everything'",),
    ),
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
