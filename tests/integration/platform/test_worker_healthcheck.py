"""The worker's container health check (defect 14 in docs/RELIABILITY.md):
the age of the heartbeat file the worker touches after each heartbeat it
writes to Redis, read with sh/stat/date, so no Python starts every probe.

The check's logic is exercised with the exact command compose configured,
run by ``docker exec`` against files of the test's own (the live heartbeat
file is never aged, so the container's health is not disturbed); the
destructive test restarts the worker and checks that it comes back healthy
from its own heartbeat, not from one its previous run left behind.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import Stack
from tests.integration.platform.pf_helpers import docker_exec, wait_for

pytestmark = pytest.mark.stack

HEARTBEAT_FILE = "/run/worker/heartbeat"
# The check's sign that the image writes the heartbeat file (older images keep
# `python3 -m platform_services.worker --check`).
MARKER = "/app/platform_services/worker/heartbeat.py"


def _inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True
    ).stdout
    data: dict[str, Any] = json.loads(out)[0]
    return data


def _check_command(stack: Stack) -> str:
    test = _inspect(stack.container("worker"))["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD-SHELL", test
    command: str = test[1]
    return command


def _run_check(
    stack: Stack, heartbeat_file: str, max_age: str | None = None, command: str | None = None
) -> tuple[int, str]:
    """The configured check, run by hand against another heartbeat file."""
    env = ["-e", f"WORKER_HEARTBEAT_FILE={heartbeat_file}"]
    if max_age is not None:
        env += ["-e", f"WORKER_HEARTBEAT_MAX_AGE_S={max_age}"]
    command = command or _check_command(stack)
    proc = subprocess.run(
        ["docker", "exec", *env, stack.container("worker"), "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_the_health_check_starts_no_python(stack: Stack) -> None:
    data = _inspect(stack.container("worker"))
    command = _check_command(stack)
    assert MARKER in command, command
    assert docker_exec(stack.container("worker"), "test", "-f", MARKER).returncode == 0
    # Python only in the branch for images without the marker
    assert "python" not in command.split("--check", 1)[1], command
    assert "WORKER_HEARTBEAT_FILE" in command
    env = dict(e.split("=", 1) for e in data["Config"]["Env"])
    assert env.get("WORKER_HEARTBEAT_FILE") == HEARTBEAT_FILE
    # a tmpfs: a restarted container starts without the previous run's file
    assert "/run/worker" in (data["HostConfig"].get("Tmpfs") or {})
    # the live probes pass on the worker's own file
    outputs = [entry["Output"] for entry in data["State"]["Health"]["Log"]]
    assert any("heartbeat file" in out for out in outputs), outputs


def test_an_image_without_the_heartbeat_file_keeps_the_python_check(stack: Stack) -> None:
    """A rollback to an image built before the heartbeat file: the same
    command falls back to ``worker --check`` (the Redis heartbeat), so such a
    worker still turns healthy. Simulated by pointing the marker elsewhere."""
    command = _check_command(stack).replace(MARKER, "/nonexistent/heartbeat.py")
    code, out = _run_check(stack, "/nonexistent/heartbeat", command=command)
    assert code == 0, out
    assert out.startswith("healthy: heartbeat"), out


def test_the_check_follows_the_heartbeat_file_age(stack: Stack) -> None:
    worker = stack.container("worker")
    probe = "/tmp/healthcheck-test.heartbeat"
    try:
        code, out = _run_check(stack, probe)
        assert code != 0, f"passed without a heartbeat file: {out}"

        assert docker_exec(worker, "touch", probe).returncode == 0
        code, out = _run_check(stack, probe)
        assert code == 0, out
        assert "heartbeat file" in out

        assert docker_exec(worker, "touch", "-d", "2 minutes ago", probe).returncode == 0
        code, out = _run_check(stack, probe)
        assert code != 0, f"passed with a 2-minute-old heartbeat: {out}"
        # the limit is WORKER_HEARTBEAT_MAX_AGE_S, as for `worker --check`
        code, out = _run_check(stack, probe, max_age="300")
        assert code == 0, out
    finally:
        docker_exec(worker, "rm", "-f", probe)


def test_the_live_heartbeat_file_is_fresh(stack: Stack) -> None:
    worker = stack.container("worker")
    proc = docker_exec(
        worker, "sh", "-c", f"echo $(( $(date +%s) - $(stat -c %Y {HEARTBEAT_FILE}) ))"
    )
    assert proc.returncode == 0, proc.stderr
    age = int(proc.stdout.strip())
    # written every WORKER_HEARTBEAT_S (10 s); 60 s is the check's limit
    assert 0 <= age <= 60, f"heartbeat file {age} s old"


@pytest.mark.destructive
def test_a_restarted_worker_is_healthy_from_its_own_heartbeat(stack: Stack) -> None:
    worker = stack.container("worker")
    wait_for(
        lambda: _inspect(worker)["State"].get("Health", {}).get("Status") == "healthy",
        deadline_s=180,
        what="worker healthy before the restart",
    )
    before = _inspect(worker)["State"]["StartedAt"]
    marker = "/run/worker/left-by-the-previous-run"
    assert docker_exec(worker, "touch", marker).returncode == 0
    t0 = time.monotonic()
    subprocess.run(["docker", "restart", worker], capture_output=True, check=True, timeout=120)

    def healthy_again() -> bool:
        state = _inspect(worker)["State"]
        return state["StartedAt"] != before and state.get("Health", {}).get("Status") == "healthy"

    wait_for(
        healthy_again, deadline_s=180, interval=0.25, what="worker healthy after docker restart"
    )
    took = time.monotonic() - t0
    # nothing of the previous run's /run/worker survived the restart
    assert docker_exec(worker, "test", "-e", marker).returncode != 0
    last = _inspect(worker)["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == 0 and "heartbeat file" in last["Output"], last
    print(f"worker healthy {took:.1f} s after docker restart")  # a figure, not asserted
