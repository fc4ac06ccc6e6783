"""Read-only mode cannot be escaped from the command line.

Every command that writes, with valid arguments that would otherwise run, is
refused in read-only mode however read-only was asked for (``--read-only``,
``STACKDECK_READ_ONLY``, ``read_only = true`` in the config file) and
whatever else is on the command line; nothing changes, and the refusal is in
the audit log with ``read_only: true``. (The TUI side is in test_console_ui.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.reliability._cli import audit_lines, cli_env, fingerprint
from tests.reliability._harness import REPO, figure

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

WRITES = [
    ["deploy", "--version", "v1.0.0", "--force"],
    ["rollback", "--force"],
    ["backup", "--reason", "read-only test"],
    ["restore", "latest", "--confirm", "investment_db"],
    ["migrate"],
    ["vacuum"],
    ["cache", "flush"],
    ["cache", "flush", "--all", "--confirm", "x"],
    ["cache", "warm"],
    ["emergency-limit", "on", "--ttl", "60"],
    ["scale", "worker=0"],
    ["restart", "nginx"],
    ["lock", "break"],
]


def _batch(stack: Stack, argvs: list[list[str]], **env: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability._cli_batch"],
        input=json.dumps(argvs),
        cwd=REPO,
        env=cli_env(stack, **env),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_read_only_cannot_be_escaped_from_the_cli(stack: Stack, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("read_only = true\n", encoding="utf-8")
    before = fingerprint(stack)
    n_audit = len(audit_lines(stack))
    with figure("read-only mode, CLI (13 write commands x 3 ways)") as fig:
        rows = (
            _batch(stack, [["--read-only", *argv] for argv in WRITES])
            + _batch(stack, [list(argv) for argv in WRITES], STACKDECK_READ_ONLY="true")
            + _batch(stack, [list(argv) for argv in WRITES], STACKDECK_CONFIG=str(cfg))
        )
        after = fingerprint(stack)
        escaped = [
            f"{' '.join(r['argv'])}: exit {r['code']}: {r['out'][-200:]}"
            for r in rows
            if r["code"] != 2 or "read-only" not in r["out"].lower()
        ]
        audit = audit_lines(stack)[n_audit:]
        refusals = [a for a in audit if a.get("result") == "read-only"]
        fig.operator_saw = (
            f"{len(rows) - len(escaped)}/{len(rows)} refused with exit 2 and 'read-only'"
        )
        fig.notes = f"state unchanged: {before == after}; audited refusals: {len(refusals)}"
        assert not escaped, "read-only escaped:\n" + "\n".join(escaped)
        assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert len(refusals) >= len(rows) - 3, (
            f"{len(refusals)} refusals audited for {len(rows)} commands"
        )
        assert all(a.get("read_only") is True for a in refusals), refusals[:3]
