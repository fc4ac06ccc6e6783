"""Every line of docs/RUNBOOK.md's ``run on this stack`` column, run against
the real stack as an operator's shell runs it (``bash -u -o pipefail`` from
the checkout's root, no virtualenv on PATH, the stack's variables and
``.env``/``deploy.env`` set; stdin not a terminal). Each must end within its
bound with a status the document allows; the failure message keeps every
failing line's output.

Read-only lines run with the read-only tiers; the lines that change the stack
(deploys, rollbacks, restarts, flushes) run in the destructive group, in the
document's order, and the stack is put back afterwards: v1.0.0 serving, the
worker on v1.0.0 and running, the emergency switch off.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REPO, base_image
from tests.integration.ops.ops_helpers import health, run_cli, wait_healthy
from tests.runbook_doc import Line, parse

pytestmark = pytest.mark.stack

BASE = "v1.0.0"
"""The version set-up installs (what the stack goes back to)."""
READ_BOUND_S = 90
WRITE_BOUND_S = 300


@dataclass
class Ran:
    line: Line
    rc: int | None
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc in self.line.exits

    def report(self) -> str:
        status = "timed out" if self.rc is None else f"exit {self.rc}"
        want = " or ".join(map(str, self.line.exits))
        return (
            f"--- {self.line.id}\n$ {self.line.run}\n{status} (want {want}) "
            f"after {self.seconds:.1f} s\n{self.output[-3000:]}"
        )


def _env(stack: Any) -> dict[str, str]:
    """An operator's shell after the document's 'Run from' lines: .env and
    deploy.env (read again before each line: a deploy changes the serving
    colour) and the stack's variables."""
    stack.reload_env()
    return {
        **stack.env,
        **stack.bare_env(),
        "BASE_IMAGE": os.environ.get("BASE_IMAGE") or base_image(),
    }


def _run(stack: Any, line: Line, bound: float) -> Ran:
    assert line.run is not None
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            ["bash", "-u", "-o", "pipefail", "-c", line.run],
            cwd=REPO,
            env=_env(stack),
            capture_output=True,
            text=True,
            timeout=bound,
            stdin=subprocess.DEVNULL,
        )
        rc: int | None = r.returncode
        output = r.stdout + r.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = None, _text(exc.stdout) + _text(exc.stderr)
    ran = Ran(line, rc, output, time.monotonic() - t0)
    assert "Traceback" not in ran.output, ran.report()
    return ran


def _text(data: str | bytes | None) -> str:
    """What a timed-out child wrote (bytes, whatever ``text`` asked for)."""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _run_all(stack: Any, lines: list[Line], bound: float) -> list[Ran]:
    assert lines, "no lines to run: the document did not parse as expected"
    done = [_run(stack, line, bound) for line in lines]
    failed = [r for r in done if not r.ok]
    summary = ", ".join(f"{r.seconds:.1f}" for r in done)
    assert not failed, (
        f"{len(failed)} of {len(done)} lines of docs/RUNBOOK.md failed:\n"
        + "\n".join(r.report() for r in failed)
        + f"\n(seconds per line: {summary})"
    )
    return done


def test_the_read_only_lines_run(stack: Any) -> None:
    wait_healthy(stack)
    _run_all(stack, [x for x in parse() if x.run and not x.writes], READ_BOUND_S)


def _put_back(stack: Any) -> None:
    """The stack as set-up left it, whatever the lines did (each step only
    when needed, so a clean run costs nothing here)."""
    problems = []

    def cli(*args: str) -> None:
        r = run_cli(stack, *args)
        if r.rc != 0:
            problems.append(
                f"stackdeck {' '.join(args)}: exit {r.rc}\n{r.stdout[-1500:]}{r.stderr}"
            )

    cli("emergency-limit", "off")
    cli("scale", "worker=1")
    wait_healthy(stack)
    if health(stack)["version"] != BASE:
        cli("rollback", "--version", BASE, "--force")
    stack.reload_env()
    if stack.env.get("WORKER_VERSION") != BASE:
        cli("deploy", "--version", BASE, "--services", "worker", "--force")
    if stack.env.get("FRONTEND_VERSION", BASE) != BASE:
        # the web frontend's colours (the runbook's lines deploy it too)
        cli("deploy", "--version", BASE, "--services", "frontend", "--force")
    assert not problems, "\n".join(problems)
    assert wait_healthy(stack)["version"] == BASE


@pytest.fixture
def put_back(stack: Any) -> Iterator[None]:
    yield
    _put_back(stack)


@pytest.mark.destructive
def test_the_lines_that_change_the_stack_run(stack: Any, put_back: None) -> None:
    wait_healthy(stack)
    _run_all(stack, [x for x in parse() if x.run and x.writes], WRITE_BOUND_S)
