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


# --- after a console died in a deploy -----------------------------------------------

BACKEND_LINES = {f"set $active_backend backend_{c};" for c in ("blue", "green")}
FRONTEND_LINES = {f"set $active_frontend frontend_{c};" for c in ("blue", "green")}


def whole_conf_colour(conf: str) -> str | None:
    """The backend colour of an active.conf made of whole lines only: one
    ``$active_backend`` line for one colour and at most one
    ``$active_frontend`` line (the page's colour); None for anything else
    (a torn write, a surge slot left behind, two colours)."""
    lines = [line.strip() for line in conf.splitlines() if line.strip()]
    backend = [line for line in lines if line in BACKEND_LINES]
    frontend = [line for line in lines if line in FRONTEND_LINES]
    if len(backend) != 1 or len(frontend) > 1 or len(backend) + len(frontend) != len(lines):
        return None
    return backend[0].removeprefix("set $active_backend backend_").rstrip(";")


def assert_one_colour_served(stack: Stack, load: Any, since: float) -> str:
    """Right after a console died mid-deploy: active.conf is whole lines
    naming one backend colour, ``nginx -t`` passes, and every answer (after a 3 s window of them) came
    from the colour it names. Returns that colour."""
    import time

    conf = active_conf(stack)
    serving = whole_conf_colour(conf)
    assert serving is not None, f"active.conf is not whole lines for one colour: {conf!r}"
    nginx_t = docker("exec", stack.container("nginx"), "nginx", "-t", check=False)
    assert nginx_t.returncode == 0, nginx_t.stderr
    time.sleep(3)  # a window of answers after the kill
    colours = load.result().colours(since=since + 1)
    assert set(colours) == {serving}, (
        f"after the kill nginx served {dict(colours)} but active.conf says {serving}"
    )
    return serving


def assert_dead_deploy_explained_then_recovered(
    stack: Stack, *, pid: int | None, version: str, before_colour: str
) -> float:
    """A console holding the deploy lock died in the bake: ``stackdeck status``
    explains the stale lock and the interrupted deploy, a new deploy is refused
    naming the dead holder, and ``lock break`` + ``rollback`` bring traffic back
    to ``before_colour``. Returns the rollback's seconds."""
    import time

    status = stackdeck(stack, "status", "--json")
    assert status.returncode == 0, status.stdout[-1000:] + status.stderr[-1000:]
    st = json.loads(status.stdout)
    lock = st["lock"]
    assert lock["stale"] is True and lock["holder"]["op"] == "deploy", lock
    assert lock["alive"] is False and lock["holder"]["pid"] == pid, lock
    deploy = st["deploy"] or {}
    explanation = str((deploy.get("recovery") or {}).get("explanation", "")).lower()
    assert deploy.get("interrupted") is True, deploy
    assert "interrupted" in explanation and "bake" in explanation, explanation
    human = stackdeck(stack, "status")
    assert "interrupted" in human.stdout.lower() and "lock break" in human.stdout.lower(), (
        human.stdout
    )
    # a new deploy is refused, naming the dead holder
    again = stackdeck(stack, "deploy", "--version", version)
    assert again.returncode == 3, again.stdout + again.stderr
    said = (again.stdout + again.stderr).lower()
    assert "stale" in said and "deploy" in said and str(pid) in said, said
    # explicit recovery: break the lock, roll back
    broke = stackdeck(stack, "lock", "break")
    assert broke.returncode == 0, broke.stdout + broke.stderr
    t_rb = time.monotonic()
    rb = stackdeck(stack, "rollback", "--force", timeout=400)
    recover_s = time.monotonic() - t_rb
    assert rb.returncode == 0, rb.stdout[-2000:] + rb.stderr[-1000:]
    st2 = json.loads(stackdeck(stack, "status", "--json").stdout)
    assert not st2["lock"]["held"] and not st2["lock"]["stale"], st2["lock"]
    assert st2["serving_colour"] == before_colour, (
        f"after recovery nginx serves {st2['serving_colour']}; the verified colour was {before_colour}"
    )
    assert st2["deploy_env"]["ACTIVE_COLOUR"] == st2["serving_colour"], st2["deploy_env"]
    assert not (st2.get("deploy") or {}).get("interrupted"), st2.get("deploy")
    return recover_s
