"""The README, followed to the letter by a newcomer, from a clean clone.

A clone of this checkout, a shell with nothing of the project on PATH or in
the system python3 (``env -i`` plus a login PATH), a stack of its own
(``sdnew`` on 127.0.0.1:18090) so the suite's stack is never touched:

1. a runbook script before any set-up: it creates the console's ``.venv``
   itself and answers with the checks that failed, not a traceback;
2. the README's first command, ``bash scripts/up.sh``, non-interactively
   (stdout a pipe, no stdin): it brings the stack up, says how to open the
   console, writes no terminal escape into the pipe, and exits 0;
3. ``stackdeck status`` and a runbook script against that stack;
4. set-up again: it builds nothing, recreates nothing, migrates nothing;
5. ``scripts/down.sh``: refuses ``--purge`` without a terminal or ``--yes``,
   then removes the stack and its state.

The base image is the one this test run built with mmdebstrap (BASE_IMAGE
from scripts/test.sh), so the clone's images are found up to date: the
fresh-machine path of the base itself is what test.sh runs on every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.core.stack import StackNames
from tests.conftest import REPO, bare_env

pytestmark = pytest.mark.stack

NAME = "sdnew"
PORT = 18090
STATE = StackNames(NAME).state_dir
RUN = StackNames(NAME).run_dir


def _env() -> dict[str, str]:
    return bare_env(STACK_NAME=NAME, HTTP_PORT=str(PORT))


def _run(clone: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        list(argv),
        cwd=clone,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert "\x1b[" not in r.stdout, f"terminal escapes written into a pipe: {r.stdout[-500:]!r}"
    return r


def _project_objects(kind: str) -> list[str]:
    """Containers/volumes/networks of the sdnew compose project."""
    args = {
        "container": ["ps", "-aq"],
        "volume": ["volume", "ls", "-q"],
        "network": ["network", "ls", "-q"],
    }
    r = subprocess.run(
        ["docker", *args[kind], "--filter", f"label=com.docker.compose.project={NAME}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.split()


def _containers_state() -> dict[str, tuple[str, str]]:
    """name -> (id, StartedAt) of every container of the project."""
    ids = _project_objects("container")
    r = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True)
    return {c["Name"]: (c["Id"], c["State"]["StartedAt"]) for c in json.loads(r.stdout)}


def _image_ids() -> dict[str, str]:
    r = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = _env().get("IMAGE_PREFIX", "investment")
    return dict(line.split() for line in r.stdout.splitlines() if line.startswith(f"{prefix}-"))


def _purge(clone: Path) -> None:
    if (clone / "scripts" / "down.sh").exists():
        subprocess.run(
            ["bash", "scripts/down.sh", "--purge", "--yes"],
            cwd=clone,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=300,
        )


@pytest.fixture
def clone(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A clean clone of this checkout's HEAD, and no sdnew stack before or after."""
    where = tmp_path_factory.mktemp("newcomer") / "stackdeck"
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True, timeout=120)
    _purge(where)
    assert not _project_objects("container"), "an earlier sdnew stack could not be removed"
    try:
        yield where
    finally:
        _purge(where)
        shutil.rmtree(where, ignore_errors=True)


def test_newcomer_follows_the_readme(clone: Path) -> None:
    assert not (clone / ".venv").exists() and not (clone / ".env").exists()

    # 1. a runbook script before set-up: creates .venv, then names what is missing
    r = _run(clone, "scripts/deployment/pre_deployment_check.sh", timeout=600)
    assert (clone / ".venv" / "bin" / "stackdeck").exists(), r.stderr[-2000:]
    assert r.returncode == 1, r.stdout + r.stderr
    assert "scripts/setup.sh creates it" in r.stdout, r.stdout

    # 2. the README's first command, not on a terminal
    r = _run(clone, "bash", "scripts/up.sh", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "not a terminal, so the console is not opened" in r.stdout, r.stdout
    assert f"{clone}/.venv/bin/stackdeck" in r.stdout, r.stdout
    health = httpx.get(f"http://127.0.0.1:{PORT}/api/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
    assert (clone / ".env").stat().st_mode & 0o077 == 0, ".env must be readable by its owner only"

    # 3. the console headless, and one runbook script
    r = _run(clone, ".venv/bin/stackdeck", "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run(clone, "scripts/testing/api_smoke_test.sh")
    assert r.returncode == 0 and "verification passed" in r.stdout, r.stdout + r.stderr

    # 4. set-up is idempotent: nothing built, recreated or migrated
    before, images = _containers_state(), _image_ids()
    assert len(before) >= 6, before
    r = _run(clone, "bash", "scripts/setup.sh", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "building" not in r.stderr and "up to date" in r.stderr, r.stderr
    assert "no migration" in r.stderr and "creating" not in r.stderr, r.stderr
    assert _containers_state() == before, "a second setup.sh recreated or restarted containers"
    assert _image_ids() == images, "a second setup.sh rebuilt an image"

    # 4b. a site configuration changed in the checkout (a pull) is loaded by
    #     set-up: nginx reloads it (gracefully, nothing recreated)
    site = clone / "compose" / "nginx" / "conf" / "site.conf"
    marker = "    location = /nginx-health {"
    assert marker in site.read_text()
    site.write_text(
        site.read_text().replace(
            marker, '    location = /fresh-check { return 200 "reloaded\\n"; }\n' + marker, 1
        )
    )
    assert httpx.get(f"http://127.0.0.1:{PORT}/fresh-check", timeout=10).status_code != 200
    r = _run(clone, "bash", "scripts/setup.sh", timeout=600)
    assert r.returncode == 0 and "site configuration loaded" in r.stderr, r.stderr[-3000:]
    check = httpx.get(f"http://127.0.0.1:{PORT}/fresh-check", timeout=10)
    assert check.status_code == 200 and check.text == "reloaded\n", check.text
    assert _containers_state() == before, "loading nginx's configuration recreated containers"

    # 5. down: --purge is confirmed; without a terminal it needs --yes
    r = _run(clone, "bash", "scripts/down.sh", "--purge")
    assert r.returncode == 1 and "add --yes" in r.stderr, r.stderr
    assert _containers_state() == before and STATE.exists(), "a refused purge removed something"
    r = _run(clone, "bash", "scripts/down.sh", "--purge", "--yes")
    assert r.returncode == 0, r.stderr
    assert not _project_objects("container") and not _project_objects("volume"), r.stderr
    assert not _project_objects("network"), r.stderr
    assert not STATE.exists() and not RUN.exists(), r.stderr


def test_screenshot_script_from_the_system_python(tmp_path: Path) -> None:
    """``python3 scripts/screenshot.py`` as the README's reader types it: the
    system interpreter has no textual, so the script moves itself into .venv."""
    out = tmp_path / "shot.svg"
    r = subprocess.run(
        ["python3", str(REPO / "scripts" / "screenshot.py"), "--size", "80x24", "-o", str(out)],
        cwd="/",
        env=bare_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.returncode == 0 and out.stat().st_size > 10_000, r.stdout + r.stderr
