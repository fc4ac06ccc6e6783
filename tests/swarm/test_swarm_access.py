"""Who may change the swarm (issue 14, the second review's open items):

* the manager's engine API is a unix socket in a root-only folder of the
  swarm's state folder: root's ``docker version`` answers through it, another
  local user (nobody) cannot connect, and no engine listens on TCP;
* ``swarm.sh deploy`` without ``BACKEND_VERSION`` keeps the running version
  (never a rollback past stackdeck's bake), and is refused while stackdeck's
  deploy lock is held (nothing changed), both in stackdeck's audit log;
* ``swarm.sh down`` checks that nothing of the swarm is left, and names what
  is (a throwaway swarm name of its own, no swarm needed).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.core.ops.context import Operator
from console.core.ops.lock import DeployLock, make_record
from tests.swarm.conftest import BASE_VERSION
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm

NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
KEPT = "v1.0.1-swkeep"
"""The base image under another tag: a version to roll to and keep."""


# --- the engine API --------------------------------------------------------------


def test_the_engine_api_is_a_socket_only_root_can_reach(swarm: Swarm) -> None:
    sock = swarm.api_socket
    assert stat.S_ISSOCK(sock.stat().st_mode), sock
    folder = sock.parent.stat()
    assert folder.st_uid == 0 and stat.S_IMODE(folder.st_mode) == 0o700, oct(folder.st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) & 0o007 == 0, oct(sock.stat().st_mode)
    # what `swarm.sh env` prints is a DOCKER_HOST the host's CLI takes
    env = swarm.script("env")
    assert env.returncode == 0 and env.stdout.strip() == swarm.docker_host, env
    r = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "DOCKER_HOST": env.stdout.strip()},
    )
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert swarm.client.info()["Swarm"]["ControlAvailable"]  # the manager's engine
    # another local user: refused by the kernel before the engine sees it
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(b'GET /version HTTP/1.0\\r\\n\\r\\n')\n"
        "print(s.recv(200))\n"
    )
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    r = subprocess.run(
        [*NOBODY, python, "-c", probe, str(sock)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode != 0 and "PermissionError" in r.stderr, (r.stdout, r.stderr[-500:])


def test_no_engine_listens_on_tcp(swarm: Swarm) -> None:
    """Node 1 publishes the edge and the monitoring only, and no process in
    it listens for the engine API on TCP (2375/2376) or was started with a
    ``tcp://`` host."""
    ports = json.loads(
        subprocess.run(
            ["docker", "inspect", "-f", "{{json .NetworkSettings.Ports}}", swarm.manager],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    published = {p for p, binds in ports.items() if binds}
    assert published == {"80/tcp", "443/tcp", "9090/tcp", "9093/tcp"}, ports
    tables = swarm.in_node("cat", "/proc/net/tcp", "/proc/net/tcp6")
    listening = {
        int(f[1].rsplit(":", 1)[1], 16)
        for f in (line.split() for line in tables.splitlines()[1:])
        if len(f) > 3 and f[3] == "0A"
    }
    assert not listening & {2375, 2376}, sorted(listening)
    cmdlines = swarm.in_node("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "dockerd" in cmdlines and "tcp://" not in cmdlines, cmdlines


# --- deploy: the running version, stackdeck's lock ---------------------------------


def _indexes(swarm: Swarm) -> dict[str, int]:
    return {s.name: s.attrs["Version"]["Index"] for s in swarm.client.services.list()}


def _audit(swarm: Swarm) -> list[dict[str, Any]]:
    path = swarm.stackdeck_state / "audit.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def test_deploy_is_refused_while_stackdecks_lock_is_held(swarm: Swarm) -> None:
    before = _indexes(swarm)
    lock = DeployLock(swarm.stackdeck_state / "lock")
    operator = Operator.current(via="cli")
    lock.acquire(make_record(operator, "deploy", "test-holder"))
    try:
        r = swarm.script("deploy", env={"BACKEND_VERSION": BASE_VERSION}, timeout=120)
    finally:
        lock.release()
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"deploy by {operator.user}" in lines[0] and f"pid {os.getpid()}" in lines[0], lines
    assert _indexes(swarm) == before  # no service changed
    refused = [a for a in _audit(swarm) if a["event"] == "refused"]
    assert refused and refused[-1]["op"] == "swarm.deploy", refused


@pytest.fixture
def kept_version(swarm: Swarm) -> Iterator[str]:
    """KEPT pushed; afterwards the stack file's version again."""
    image = f"{swarm.image_prefix}-backend"
    subprocess.run(["docker", "tag", f"{image}:{BASE_VERSION}", f"{image}:{KEPT}"], check=True)
    try:
        r = swarm.script("push", f"{image}:{KEPT}", timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        yield KEPT
    finally:
        subprocess.run(["docker", "rmi", f"{image}:{KEPT}"], capture_output=True)
        r = swarm.script("deploy", env={"BACKEND_VERSION": BASE_VERSION})
        assert r.returncode == 0, r.stderr[-2000:]


def test_deploy_without_a_version_keeps_the_running_one(swarm: Swarm, kept_version: str) -> None:
    swarm.docker(
        "service",
        "update",
        "--detach=false",
        "--quiet",
        "--image",
        f"{swarm.registry}/{swarm.image_prefix}-backend:{kept_version}",
        swarm.service("backend"),
    )
    assert swarm.image_of("backend").endswith(f"-backend:{kept_version}")
    r = swarm.script("deploy")  # no BACKEND_VERSION (Swarm.script drops it)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"keeps its running version {kept_version}" in r.stderr, r.stderr[-2000:]
    assert swarm.image_of("backend").endswith(f"-backend:{kept_version}")
    # the worker runs the backend's image: the stack file's follows it
    assert swarm.image_of("worker").endswith(f"-backend:{kept_version}")
    ours = [a for a in _audit(swarm) if a["op"] == "swarm.deploy" and a["event"] == "end"]
    assert ours and ours[-1]["result"] == "ok", ours
    assert ours[-1]["params"]["backend_version"] == kept_version


# --- down: nothing left, or said ------------------------------------------------------


def test_down_names_what_it_could_not_remove(swarm_name_scratch: Swarm) -> None:
    """A node volume held by a container that is not the swarm's (so it
    cannot be removed): down says so, names it and fails; once free, down
    removes everything and says removed."""
    s = swarm_name_scratch
    node_image = f"{s.image_prefix}-node:latest"

    def docker(*args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True)

    docker("network", "create", "--label", f"com.investment.swarm={s.name}", f"{s.name}_net")
    docker("volume", "create", f"{s.name}_node-1")
    docker("create", "--name", s.node(1), "--label", f"com.investment.swarm={s.name}", node_image)
    docker("run", "-d", "--name", f"{s.name}-holder", "-v", f"{s.name}_node-1:/held",
           "--entrypoint", "sleep", node_image, "600")  # fmt: skip
    try:
        r = s.script("down", "--yes", timeout=120)
        assert r.returncode != 0, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert "not fully removed" in last and f"volume {s.name}_node-1" in last, r.stderr
        assert s.node(1) not in last  # the node container went
        assert s.left_behind() == [f"{s.name}_node-1"]
        assert (s.state_dir / "secrets").is_dir()  # kept while the data is
    finally:
        subprocess.run(["docker", "rm", "-f", f"{s.name}-holder"], capture_output=True)
    r = s.script("down", "--yes", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "removed" in r.stderr.strip().splitlines()[-1]
    assert s.left_behind() == []
    assert not (s.state_dir / "secrets").exists()


@pytest.fixture
def swarm_name_scratch(tmp_path: Path) -> Iterator[Swarm]:
    """A swarm name no swarm has (``<SWARM_NAME>-dt``), its state in tmp_path."""
    base = Swarm.from_environment()
    s = Swarm(
        name=f"{base.name}-dt",
        http_port=base.http_port,
        prometheus_port=base.prometheus_port,
        stack=base.stack,
        image_prefix=base.image_prefix,
        state_dir=tmp_path / "state",
    )
    (s.state_dir / "secrets").mkdir(parents=True)
    (s.state_dir / "secrets" / "postgres_password").write_text("x")
    yield s
    for args in (
        ["rm", "-f", f"{s.name}-holder", s.node(1)],
        ["volume", "rm", f"{s.name}_node-1"],
        ["network", "rm", f"{s.name}_net"],
    ):
        subprocess.run(["docker", *args], capture_output=True)
