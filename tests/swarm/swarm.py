"""The Swarm tier's helper: where the swarm of scripts/swarm.sh is and how to
reach it from the host (the way the console will).

* HTTP: nginx published on ``127.0.0.1:SWARM_HTTP_PORT`` (node 1).
* The manager's engine: the docker SDK on its unix socket in the swarm's
  state folder (``unix://<state>/api/docker.sock``, root's only; what
  ``swarm.sh env`` prints): services, tasks, UpdateStatus, read-only here.
* Changes (``docker service update/scale``) run the node's own CLI inside
  the manager container (``docker exec <manager> docker ...``), as
  scripts/swarm.sh does: the host engine never enters swarm mode.

Settings: the environment with scripts/swarm.sh's names and defaults.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from console.core.config import swarm_api_socket
from console.core.stack import StackNames
from tests.stack import REPO

SWARM_SH = REPO / "scripts" / "swarm.sh"


_VERSIONS = ("BACKEND_VERSION", "FRONTEND_VERSION")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class Swarm:
    name: str
    http_port: int
    prometheus_port: int
    stack: str
    image_prefix: str
    state_dir: Path
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_environment(cls) -> Swarm:
        stack = _env("STACK_NAME", "investment")
        name = _env("SWARM_NAME", f"{stack}-swarm")
        return cls(
            name=name,
            http_port=int(_env("SWARM_HTTP_PORT", "8080")),
            prometheus_port=int(_env("SWARM_PROMETHEUS_PORT", "9090")),
            stack=stack,
            image_prefix=_env("IMAGE_PREFIX", "investment"),
            state_dir=Path(os.environ.get("SWARM_STATE_DIR") or StackNames(name).state_dir),
        )

    # --- where -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def manager(self) -> str:
        return f"{self.name}-node-1"

    def node(self, i: int) -> str:
        return f"{self.name}-node-{i}"

    @property
    def registry(self) -> str:
        """The registry as the nodes name it."""
        return f"{self.name}-registry:5000"

    def service(self, short: str) -> str:
        return f"{self.stack}_{short}"

    @property
    def api_socket(self) -> Path:
        """The manager's engine API on the host (scripts/swarm.sh's rule)."""
        return swarm_api_socket({"SWARM_STATE_DIR": str(self.state_dir)}, self.stack)

    @property
    def docker_host(self) -> str:
        """``DOCKER_HOST`` of the manager's engine (``swarm.sh env``)."""
        return f"unix://{self.api_socket}"

    @property
    def client(self) -> Any:
        """The docker SDK on the manager's engine (its socket on the host)."""
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.docker_host, timeout=30)
        return self._client

    # --- doing -----------------------------------------------------------------

    @property
    def stackdeck_state(self) -> Path:
        """stackdeck's state folder for scripts/swarm.sh here (its deploy
        lock and audit log), the swarm's own, never the host's default."""
        return self.state_dir / "stackdeck"

    def script(
        self, *args: str, timeout: float = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``scripts/swarm.sh ARGS``; ``env`` added to the environment."""
        return subprocess.run(
            ["bash", str(SWARM_SH), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={
                # a version only where a test names one (deploy keeps the running one)
                **{k: v for k, v in os.environ.items() if k not in _VERSIONS},
                "SWARM_NAME": self.name,
                "SWARM_STATE_DIR": str(self.state_dir),
                "STACKDECK_STATE_DIR": str(self.stackdeck_state),
                **(env or {}),
            },
        )

    def docker(self, *args: str, node: str | None = None, timeout: float = 300) -> str:
        """``docker ARGS`` with the CLI of a node (the manager by default)."""
        r = subprocess.run(
            ["docker", "exec", node or self.manager, "docker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} on {node or self.manager}: {r.stderr[-1500:]}"
            )
        return r.stdout

    def in_node(self, *args: str, node: str | None = None, timeout: float = 60) -> str:
        """``ARGS`` run in a node container (the manager by default)."""
        r = subprocess.run(
            ["docker", "exec", node or self.manager, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} in {node or self.manager}: {r.stderr[-1500:]}")
        return r.stdout

    # --- reading ---------------------------------------------------------------

    def inspect(self, short: str) -> dict[str, Any]:
        return self.client.services.get(self.service(short)).attrs

    def update_status(self, short: str) -> dict[str, Any]:
        return self.inspect(short).get("UpdateStatus") or {}

    def image_of(self, short: str) -> str:
        """The service's image, without the digest Swarm pins it to."""
        spec = self.inspect(short)["Spec"]["TaskTemplate"]["ContainerSpec"]
        return spec["Image"].split("@", 1)[0]

    def running_tasks(self, short: str) -> list[dict[str, Any]]:
        svc = self.client.services.get(self.service(short))
        return [
            t
            for t in svc.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"
        ]

    def wait(self, what: str, predicate: Any, timeout: float = 180, every: float = 0.5) -> float:
        """Poll until ``predicate()`` is true; the seconds it took."""
        t0 = time.monotonic()
        last: Any = None
        while time.monotonic() - t0 < timeout:
            last = predicate()
            if last:
                return time.monotonic() - t0
            time.sleep(every)
        raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")

    def task_container(self, short: str, node: str | None = None) -> str:
        """The id of a running container of the service on ``node`` (the
        manager by default), read with that node's own CLI."""
        cid = self.docker(
            "ps",
            "-q",
            "-f",
            f"label=com.docker.swarm.service.name={self.service(short)}",
            node=node,
        ).split()
        assert cid, f"no running {short} container on {node or self.manager}"
        return cid[0]

    def node_address(self, node: str) -> str:
        """A node container's address on the nodes' network (from the host)."""
        r = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                f'{{{{ (index .NetworkSettings.Networks "{self.name}_net").IPAddress }}}}',
                node,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return r.stdout.strip()

    def prometheus_targets(self, job: str) -> list[dict[str, Any]]:
        """Prometheus's active targets of ``job`` (on 127.0.0.1, basic auth)."""
        r = httpx.get(
            f"http://127.0.0.1:{self.prometheus_port}/api/v1/targets",
            params={"state": "active"},
            auth=("stackdeck", self.secrets()["monitoring_password"]),
            timeout=10,
        )
        r.raise_for_status()
        return [t for t in r.json()["data"]["activeTargets"] if t["labels"].get("job") == job]

    def sink_messages(self) -> dict[str, Any]:
        """The alert sink's GET /messages, asked inside its task (no published
        port; the credential read from the secret there, never on a command
        line)."""
        out = self.docker(
            "exec",
            self.task_container("alert_sink"),
            "sh",
            "-c",
            'curl -fsS -u "stackdeck:$(cat /run/secrets/monitoring_password)" '
            "http://127.0.0.1:9099/messages",
        )
        result: dict[str, Any] = json.loads(out)
        return result

    def left_behind(self) -> list[str]:
        """What of this swarm the host engine has: containers (nodes, the
        registry), volumes and networks by its label or its names."""

        def names(*cmd: str) -> list[str]:
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            return r.stdout.split()

        label = f"com.investment.swarm={self.name}"
        ours = re.compile(
            rf"^({re.escape(self.name)}-node-\d+|{re.escape(self.name)}-registry"
            rf"|{re.escape(self.name)}_node-\d+|{re.escape(self.name)}_registry"
            rf"|{re.escape(self.name)}_net)$"
        )
        found = set(
            names("docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
        )
        found |= {n for n in names("docker", "ps", "-a", "--format", "{{.Names}}") if ours.match(n)}
        found |= {n for n in names("docker", "volume", "ls", "-q") if ours.match(n)}
        found |= set(
            names("docker", "network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}")
        )
        found |= {
            n for n in names("docker", "network", "ls", "--format", "{{.Name}}") if ours.match(n)
        }
        return sorted(found)

    def secrets(self) -> dict[str, str]:
        """The secrets scripts/swarm.sh generated (never print them)."""
        folder = self.state_dir / "secrets"
        return {p.name: p.read_text().strip() for p in folder.iterdir() if p.is_file()}
