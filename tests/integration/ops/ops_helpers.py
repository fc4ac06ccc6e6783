"""Helpers of the operations tests: the CLI as a subprocess, a bounded load
loop against nginx, snapshots of the stack's state, and the figures file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import default_signals

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


def cli_argv(stack: Any, *args: str, json_output: bool = True) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "console",
        "--stack",
        stack.name,
        "--http-port",
        str(stack.http_port),
    ]
    if json_output:
        argv.append("--json")
    return [*argv, *args]


def run_cli(
    stack: Any, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> CliResult:
    """``stackdeck --json ARGS`` against the test stack; events parsed."""
    t0 = time.monotonic()
    proc = subprocess.run(
        cli_argv(stack, *args),
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
        cli_argv(stack, *args),
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


@dataclass
class Sample:
    t: float
    status: int | None
    version: str | None
    colour: str | None
    error: str | None


@dataclass
class LoadLoop:
    """GET /api/health through nginx in background threads until stopped,
    bounded by ``max_requests`` and ``max_seconds`` whatever happens."""

    base_url: str
    workers: int = 2
    max_requests: int = 50_000
    max_seconds: float = 900
    pause: float = 0.01
    samples: list[Sample] = field(default_factory=list)
    keepalive_retries: int = 0
    """Requests retried once after a keep-alive connection closed unanswered."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = 0.0
    stopped: float = 0.0
    wall_offset: float = 0.0
    """``time.time() - time.monotonic()`` at the start: turns an event's
    wall-clock time into the samples' clock."""

    def _worker(self) -> None:
        deadline = self.started + self.max_seconds
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if len(self.samples) >= self.max_requests:
                        return
                t = time.monotonic()
                s = self._get(client, t)
                with self._lock:
                    self.samples.append(s)
                time.sleep(self.pause)

    def _get(self, client: httpx.Client, t: float) -> Sample:
        for attempt in (1, 2):
            try:
                r = client.get("/api/health")
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # The server closed a reused keep-alive connection without an
                # answer (an nginx worker retiring after a reload). RFC 9112
                # 9.3.1 lets a client retry an idempotent request once on a
                # new connection, as curl and Go's net/http do; counted apart.
                if attempt == 1:
                    with self._lock:
                        self.keepalive_retries += 1
                    continue
                return Sample(t, None, None, None, f"{type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:
                return Sample(t, None, None, None, f"{type(exc).__name__}: {exc}")
            try:
                body = r.json()
            except ValueError:
                body = {}
            return Sample(t, r.status_code, body.get("version"), body.get("colour"), None)
        raise AssertionError("unreachable")

    def __enter__(self) -> LoadLoop:
        self.started = time.monotonic()
        self.wall_offset = time.time() - self.started
        for _ in range(self.workers):
            th = threading.Thread(target=self._worker, daemon=True)
            th.start()
            self._threads.append(th)
        # make sure traffic flows before the operation starts
        deadline = time.monotonic() + 30
        while not self.samples and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=20)
        self.stopped = time.monotonic()

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def versions(self, since: float = 0.0) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            if s.t >= since and s.status == 200:
                out[str(s.version)] = out.get(str(s.version), 0) + 1
        return out

    def answers_since(self, at: str) -> dict[str, int]:
        """Versions of the answers to requests sent after ``at`` (an event's
        ISO time): what nginx served once that event had happened."""
        from datetime import datetime

        return self.versions(since=datetime.fromisoformat(at).timestamp() - self.wall_offset)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.samples),
            "failed": len(self.failed),
            "keepalive_retries": self.keepalive_retries,
            "failures": sorted({f"{s.status} {s.error}" for s in self.failed})[:5],
            "versions": self.versions(),
            "seconds": round(self.stopped - self.started, 1),
        }


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
