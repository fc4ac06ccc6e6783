"""Versions of the backend that misbehave on purpose, for the deploy and
bake tests: really slow, failing a share of requests, turning unhealthy.

Each one is an image ``FROM <prefix>-backend:<base>`` with one small ASGI
wrapper around the real app (``platform_services.api.main:app``): the code
that runs is the real backend, plus the one fault. Nothing in the product
knows about it. A fault can be armed by a file (``arm_fault``): the version
then behaves until the test, having seen traffic switched to it, turns the
fault on inside that container (a version that breaks under real traffic).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TRIGGER = "/tmp/stackdeck-fault-on"

WRAPPER = '''\
"""A fault around the real backend (tests only): see tests/fault_versions.py."""
import asyncio
import itertools
import os

from platform_services.api.main import app as _app

LATENCY_S = float(os.environ.get("FAULT_LATENCY_MS", "0")) / 1000
ERROR_EVERY = int(os.environ.get("FAULT_ERROR_EVERY", "0"))
UNHEALTHY = os.environ.get("FAULT_UNHEALTHY") == "1"
TRIGGER = os.environ.get("FAULT_TRIGGER", "")
_count = itertools.count(1)


def _armed():
    return not TRIGGER or os.path.exists(TRIGGER)


async def _answer(send, status, body):
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http" or not _armed():
        return await _app(scope, receive, send)
    if LATENCY_S:
        await asyncio.sleep(LATENCY_S)
    path = scope.get("path", "")
    if UNHEALTHY and path == "/api/health":
        return await _answer(send, 503, b'{"status": "unhealthy", "fault": "injected"}')
    # the container's own health check (curl on 127.0.0.1) is spared: what
    # fails is the traffic nginx sends (uvicorn takes the client from
    # X-Forwarded-For)
    local = (scope.get("client") or ("",))[0] == "127.0.0.1"
    if ERROR_EVERY and not local and next(_count) % ERROR_EVERY == 0:
        return await _answer(send, 500, b'{"detail": "fault injected"}')
    return await _app(scope, receive, send)
'''


@dataclass(frozen=True)
class Fault:
    latency_ms: int = 0
    error_every: int = 0
    """Every Nth request through nginx answers 500 (4: a 25 % share)."""
    unhealthy: bool = False
    """``/api/health`` answers 503, so the container's health check fails too."""
    armed_by_file: bool = False
    """Off until :func:`arm_fault` creates the trigger file in the container."""

    def env(self) -> dict[str, str]:
        out = {
            "FAULT_LATENCY_MS": str(self.latency_ms),
            "FAULT_ERROR_EVERY": str(self.error_every),
            "FAULT_UNHEALTHY": "1" if self.unhealthy else "0",
        }
        if self.armed_by_file:
            out["FAULT_TRIGGER"] = TRIGGER
        return out


def build_fault_version(repo: str, base: str, version: str, fault: Fault) -> str:
    """Build ``repo:version`` from ``repo:base`` with ``fault``; return the ref."""
    env_lines = " \\\n    ".join(f"{k}={v}" for k, v in fault.env().items())
    dockerfile = f"""
FROM {repo}:{base}
COPY stackdeck_fault.py /app/stackdeck_fault.py
ENV APP_VERSION={version} \\
    {env_lines}
LABEL com.investment.version={version}
CMD ["python3", "-m", "uvicorn", "stackdeck_fault:app", \\
     "--host", "0.0.0.0", "--port", "8000", "--no-server-header", "--proxy-headers", \\
     "--forwarded-allow-ips", "*", "--timeout-graceful-shutdown", "10"]
"""
    ref = f"{repo}:{version}"
    with tempfile.TemporaryDirectory(prefix="stackdeck-fault-") as tmp:
        Path(tmp, "Dockerfile").write_text(dockerfile)
        Path(tmp, "stackdeck_fault.py").write_text(WRAPPER)
        r = subprocess.run(
            ["docker", "build", "-q", "-t", ref, tmp],
            capture_output=True,
            text=True,
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
    if r.returncode != 0:
        raise AssertionError(f"building the fault version {ref} failed: {r.stderr[-2000:]}")
    return ref


def arm_fault(container: str) -> None:
    """Turn the fault on inside a running container of a fault version."""
    subprocess.run(["docker", "exec", container, "touch", TRIGGER], check=True, capture_output=True)
