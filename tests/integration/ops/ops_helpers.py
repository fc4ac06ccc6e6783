"""Helpers of the operations tests: the CLI as a subprocess, the load they
run under, snapshots of the stack's state, and the figures file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import default_signals
from tests.load import HEALTH, LoadLoop

REPO = Path(__file__).resolve().parents[3]
FIGURES = Path(os.environ.get("STACKDECK_OPS_FIGURES", "/tmp/stackdeck-ops-figures.json"))


@dataclass
class CliResult:
    rc: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str
    seconds: float

    @property
    def final(self) -> dict[str, Any]:
        return self.events[-1] if self.events else {}

    @property
    def message(self) -> str:
        return str(self.final.get("message", "")) + self.stderr

    def steps(self, status: str | None = None) -> list[str]:
        return [e["step"] for e in self.events if status is None or e["status"] == status]

    def text(self) -> str:
        return (
            "\n".join(f"{e['status']:5} {e['step']:14} {e['message']}" for e in self.events)
            + self.stderr
        )


def cli_env(stack: Any, **extra: str) -> dict[str, str]:
    env = stack.proc_env()
    env.pop("STACKDECK_READ_ONLY", None)
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


SHORT_START_PERIOD = "10s"
"""BACKEND_HEALTH_START_PERIOD for a deploy of a version that never turns
healthy: the engine calls it unhealthy 10 s + 3 checks after it starts, not
60 s + 3 checks (test_03 of test_ops_deploy_flow keeps the stack's 60 s)."""


def short_start_env(stack: Any) -> dict[str, str]:
    """:func:`cli_env` whose deploy starts backend containers with
    :data:`SHORT_START_PERIOD` (only the containers that command creates)."""
    return cli_env(stack, BACKEND_HEALTH_START_PERIOD=SHORT_START_PERIOD)


def run_cli(
    stack: Any, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> CliResult:
    """``stackdeck --json ARGS`` against the test stack; events parsed."""
    t0 = time.monotonic()
    proc = subprocess.run(
        stack.cli_argv(*args),
        env=env or cli_env(stack),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    events = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return CliResult(proc.returncode, events, proc.stdout, proc.stderr, time.monotonic() - t0)


def start_cli(stack: Any, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        stack.cli_argv(*args),
        env=env or cli_env(stack),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=default_signals,
    )


def read_events_until(
    proc: subprocess.Popen[str], predicate: Any, timeout: float = 600
) -> list[dict[str, Any]]:
    """Read a running CLI's JSON events until ``predicate(event)`` is true."""
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(
                f"CLI ended (rc {proc.poll()}) before the expected event; saw {[e['step'] for e in seen]}"
            )
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError("timed out waiting for the event")


def deploy_load(stack: Any) -> LoadLoop:
    """The load every deploy test runs under (the suite's one loop, tests/load.py):
    two keep-alive connections, a request every 10 ms on each, ``/api/health``
    only (its answers name the version and the colour)."""
    return LoadLoop(
        stack.base_url, HEALTH, workers=2, pause=0.01, max_requests=50_000, max_seconds=900
    )


def image_of(container: str) -> str:
    """The image (repository:tag) a container was created from."""
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True
    )
    return str(json.loads(out.stdout)[0]["Config"]["Image"])


def alt_version(stack: Any, service: str, version: str, suffix: str) -> str:
    """The image of ``service`` at ``version`` under a second tag (what the
    scale tests move between is containers, not code); returns that tag."""
    repo = image_of(stack.container(service)).rsplit(":", 1)[0]
    alt = f"{version}.{suffix}" if "-" in version else f"{version}-{suffix}"
    subprocess.run(["docker", "tag", f"{repo}:{version}", f"{repo}:{alt}"], check=True)
    return alt


def record_figure(name: str, value: Any) -> None:
    """Keep a measurement for the report (not asserted: timings vary)."""
    data = {}
    if FIGURES.exists():
        try:
            data = json.loads(FIGURES.read_text())
        except ValueError:
            data = {}
    data[name] = value
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"[figure] {name}: {json.dumps(value, sort_keys=True)}")


def health(stack: Any) -> dict[str, Any]:
    r = httpx.get(f"{stack.base_url}/api/health", timeout=10)
    body = r.json()
    body["_status"] = r.status_code
    return dict(body)


def state_snapshot(stack: Any) -> dict[str, Any]:
    """What must not change when an operation is refused."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # image *ids*, not tags: a tag can move to a rebuilt image under us
    names = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}} {{.Name}} {{.State.Status}} {{.Image}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    active = subprocess.run(
        ["docker", "exec", stack.container("nginx"), "cat", "/etc/nginx/upstream/active.conf"],
        capture_output=True,
        text=True,
    ).stdout
    history = stack.state_dir / "history.jsonl"
    backups = sorted(p.name for p in (stack.state_dir / "backups").glob("*"))
    return {
        "containers": sorted(n for n in names if n),
        "deploy_env": (stack.state_dir / "deploy.env").read_text(),
        "active": active,
        "history": history.read_text() if history.exists() else "",
        "backups": backups,
        "journal": (stack.state_dir / "deploy-journal.json").read_text()
        if (stack.state_dir / "deploy-journal.json").exists()
        else "",
    }


def wait_healthy(stack: Any, seconds: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = health(stack)
            if last["_status"] == 200:
                return last
        except (httpx.HTTPError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"stack not healthy after {seconds} s: {last}")
