"""Running the real ``stackdeck`` CLI against the test stack, and a fingerprint
of everything an operation could change (to prove a refused one changed
nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Stack, default_signals
from tests.reliability._harness import REPO, docker


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = stack.proc_env()
    env.pop("STACKDECK_CONFIG", None)
    for k in ("BLUE_VERSION", "GREEN_VERSION", "WORKER_VERSION", "ACTIVE_COLOUR"):
        env.pop(k, None)
    env.update(
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        XDG_CONFIG_HOME=str(REPO / "var" / "reliability" / "noconfig"),
    )
    env.update(extra)
    return env


def stackdeck(
    stack: Stack, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``stackdeck ARGS`` as a separate process (exactly what an operator runs)."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        cwd=REPO,
        env=cli_env(stack, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def popen_stackdeck(stack: Stack, *args: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "console", *args],
        cwd=REPO,
        env=cli_env(stack, **env),
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=default_signals,
    )


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return None


def _lock(path: Path) -> Any:
    """Who holds the deploy lock (an empty, free lock file is no lock)."""
    from console.core.ops.lock import lock_state

    st = lock_state(path)
    return {"held": st.held, "stale": st.stale, "holder": st.holder}


def active_conf(stack: Stack) -> str:
    r = docker(
        "exec", stack.container("nginx"), "cat", "/etc/nginx/upstream/active.conf", check=False
    )
    return r.stdout.strip() if r.returncode == 0 else f"<unreadable: {r.stderr.strip()[:80]}>"


def fingerprint(stack: Stack) -> dict[str, Any]:
    """What a refused operation must leave as it was: deploy state, lock,
    journal, backups, nginx's active colour, the containers (id, image, state),
    the worker count and the emergency switch. The audit log, the history and
    deployment.log may grow (a refusal is recorded there) and are left out."""
    state = stack.state_dir
    ids = docker(
        "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={stack.name}"
    ).stdout.split()
    containers = {}
    if ids:
        for c in json.loads(docker("inspect", *ids).stdout):
            containers[c["Name"].lstrip("/")] = (
                c["Id"][:12],
                c["Config"]["Image"],
                c["State"]["Status"],
            )
    backups = (
        sorted(p.name for p in (state / "backups").glob("*"))
        if (state / "backups").exists()
        else []
    )
    emergency = docker(
        "exec",
        stack.container("redis"),
        "redis-cli",
        "--no-auth-warning",
        "exists",
        "emergency_rate_limit",
        check=False,
    ).stdout.strip()
    return {
        "deploy.env": _digest(state / "deploy.env"),
        "lock": _lock(state / "lock"),
        "journal": _digest(state / "deploy-journal.json"),
        "backups": backups,
        "active.conf": active_conf(stack),
        "containers": containers,
        "emergency": emergency,
    }


def audit_lines(stack: Stack) -> list[dict[str, Any]]:
    path = stack.state_dir / "audit.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"_raw": line})
    return out


def has_raw_control(text: str) -> bool:
    """Control characters other than newline/tab: a terminal-injection risk
    when echoed from input (the CLI must escape what the operator typed)."""
    return any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in text)


def running(stack: Stack) -> dict[str, str]:
    ids = docker(
        "ps", "-q", "--filter", f"label=com.docker.compose.project={stack.name}"
    ).stdout.split()
    if not ids:
        return {}
    return {
        c["Name"].lstrip("/"): c["Config"]["Image"]
        for c in json.loads(docker("inspect", *ids).stdout)
    }


def env_without(keys: list[str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys}
