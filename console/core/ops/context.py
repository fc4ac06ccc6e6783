"""What every operation needs to know: which stack, where its state lives, who asks.

:class:`OpContext` is built once per console or CLI invocation, from the
console's :class:`~console.core.config.Settings` (:meth:`OpContext.from_settings`),
the one place that resolves a stack's variables.
It is a plain, immutable value: operations never mutate it, so the TUI can
hand the same context to every operation it starts.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from console.core.errors import redact
from console.core.opfiles import proc_start_time
from console.core.stack import DEFAULT_IMAGE_PREFIX, StackNames, is_secret_key, published_ports

__all__ = [
    "APP_SERVICES",
    "COLOURS",
    "MONITORING_SERVICES",
    "SERVICES",
    "SURGE",
    "OpContext",
    "Operator",
    "backend_service",
    "discover_http_port",
    "frontend_service",
    "other_colour",
]

COLOURS = ("blue", "green")
"""The two backend colours."""

SURGE = "surge"
"""The rolling deploy's extra slot of a colour: compose service
``backend_<colour>_surge`` (profile ``surge``), container
``<stack>_backend_<colour>_surge_prod``. The new version starts there beside
the colour's container, serves while that container is recreated, and is
removed once the colour runs it (start-first, docs/CONTRACT.md)."""


def backend_service(colour: str, slot: str | None = None) -> str:
    """The compose service (and nginx upstream name) of a colour's slot:
    ``backend_blue``; with ``slot="surge"``, ``backend_blue_surge``."""
    return f"backend_{colour}" if slot is None else f"backend_{colour}_{slot}"


def frontend_service(colour: str) -> str:
    """The compose service (and nginx upstream name) of a frontend colour:
    ``frontend_blue``."""
    return f"frontend_{colour}"


APP_SERVICES = (
    "nginx",
    "backend_blue",
    "backend_green",
    "frontend_blue",
    "frontend_green",
    "worker",
    "db",
    "redis",
    "market-sim",
)
"""The platform's compose services (CONTRACT.md)."""
MONITORING_SERVICES = (
    "prometheus",
    "alertmanager",
    "alert_sink",
    "node_exporter",
    "postgres_exporter",
    "redis_exporter",
    "nginx_exporter",
    "stack_exporter",
)
"""The monitoring's compose services (README, "Monitoring")."""
SERVICES = APP_SERVICES + MONITORING_SERVICES
"""Every compose service of the bundled stack."""

_VERSION_VARS = (
    "BLUE_VERSION",
    "GREEN_VERSION",
    "WORKER_VERSION",
    "ACTIVE_COLOUR",
    "BLUE_SURGE_VERSION",
    "GREEN_SURGE_VERSION",
    "FRONTEND_VERSION",
    "FRONTEND_BLUE_VERSION",
    "FRONTEND_GREEN_VERSION",
    "FRONTEND_COLOUR",
)
"""deploy.env variables, and the surge slots' versions (which only the
rolling deploy sets, on the compose command that starts a surge). Never
inherited from the operator's shell: compose gives the shell environment
precedence over --env-file, so a stray ``BLUE_VERSION`` exported in a shell
would silently override deploy.env."""


def discover_http_port(stack: str) -> int | None:
    """The port the stack's nginx container publishes on 127.0.0.1 (None
    when it is not running). Used when a stack is named without its port,
    so a command can never verify through another stack's nginx."""
    import subprocess

    try:
        r = subprocess.run(
            ["docker", "port", StackNames(stack).container("nginx"), "80/tcp"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in r.stdout.splitlines():
        host, _, port = line.strip().rpartition(":")
        if port.isdigit() and host in ("127.0.0.1", "0.0.0.0", "[::]", "::"):
            return int(port)
    return None


def other_colour(colour: str) -> str:
    """``blue`` <-> ``green``."""
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True)
class Operator:
    """Who runs an operation: recorded in the lock, the audit log and the history."""

    user: str
    """Login name (``SUDO_USER`` when run through sudo, so the human is named)."""
    ssh_client: str | None
    """Address of the SSH client (``SSH_CLIENT`` / ``SSH_CONNECTION``), None on a local tty."""
    host: str
    pid: int
    pid_start: int | None = None
    """Start time of the process (clock ticks), to tell a reused pid from ours."""
    via: str | None = None
    """Which interface runs it: ``tui`` (a console), ``cli`` (``stackdeck <command>``,
    a runbook script), None when not said (a library call, an older record)."""

    @classmethod
    def current(
        cls, environ: Mapping[str, str] | None = None, *, via: str | None = None
    ) -> Operator:
        env = os.environ if environ is None else environ
        user = env.get("SUDO_USER") or env.get("LOGNAME") or env.get("USER")
        if not user:
            try:
                user = pwd.getpwuid(os.getuid()).pw_name
            except KeyError:
                user = f"uid{os.getuid()}"
        ssh = None
        for var in ("SSH_CLIENT", "SSH_CONNECTION"):
            value = env.get(var, "").strip()
            if value:
                ssh = value.split()[0]
                break
        pid = os.getpid()
        return cls(
            user=user,
            ssh_client=ssh,
            host=socket.gethostname(),
            pid=pid,
            pid_start=proc_start_time(pid),
            via=via,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """``alice from 10.0.0.5`` / ``alice (local)``."""
        where = f"from {self.ssh_client}" if self.ssh_client else "(local)"
        return f"{self.user} {where}"


@dataclass(frozen=True)
class OpContext:
    """The stack an operation acts on, its state folder, and the operator."""

    stack: str
    """Compose project name and container-name prefix."""
    repo: Path
    """Repository root: ``compose/``, ``scripts/``, ``.env``."""
    state_dir: Path
    """deploy.env, lock, audit.log, history.jsonl, deploy-journal.json, backups/."""
    run_dir: Path
    """Unix sockets: ``postgresql/.s.PGSQL.5432``, ``redis/redis.sock``."""
    base_url: str
    """nginx on the host: ``http://127.0.0.1:<HTTP_PORT>``."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The stack's ``.env`` values (secrets: never log them)."""
    read_only: bool = False
    """Refuse every operation that changes the stack."""
    operator: Operator = field(default_factory=Operator.current)
    db_name: str = "investment_db"
    db_user: str = "postgres"
    image_repo: str = f"{DEFAULT_IMAGE_PREFIX}-backend"
    """``<IMAGE_PREFIX>-backend``: where versions of the backend are tagged."""
    bake_seconds: float = 30.0
    """Default bake window of a blue-green deploy (verification through nginx)."""
    health_timeout: float = 180.0
    """How long a starting container may take to become healthy."""
    max_p95_ms: float = 2000.0
    """Bake: p95 latency above this switches traffic back (runbook: 2 s)."""
    max_error_rate: float = 0.01
    """Bake: share of failed requests above this switches traffic back."""
    keep_previous_colour: bool = True
    """After a successful blue-green deploy the previous colour keeps running,
    out of the upstream, as the instant rollback target (False: stopped)."""
    http_timeout: float = 5.0
    docker: str = "docker"
    """The docker CLI."""
    extra_secrets: tuple[str, ...] = field(default=(), repr=False)
    alertmanager_url: str | None = None
    """The stack's Alertmanager (settings' ``alertmanager_url``); None: the
    one ``.env``/``HTTP_PORT`` name (as the operation notices use)."""
    tls_cert_file: Path | None = None
    """nginx's certificate (settings' ``tls_cert_file``); None:
    ``<state_dir>/tls/cert.pem``."""
    mode: str = "compose"
    """``compose``, ``swarm`` or ``auto`` (settings' ``mode``): which
    implementation of deploy, rollback and scale runs (auto: the engine is
    asked once per operation, :func:`console.core.ops.swarm.ops.resolve_mode`)."""
    docker_host: str | None = None
    """The engine the operations talk to (settings' ``docker_host``; None:
    ``DOCKER_HOST``, else the local socket). On a swarm stack: a manager's."""

    # --- construction ---------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Any, read_only: bool = False, **overrides: Any) -> OpContext:
        """From the console's :class:`~console.core.config.Settings`.

        ``read_only`` is or-ed with the settings' own ``read_only``: nothing
        on the command line can turn a read-only configuration writable.
        """
        from console.core.config import find_repo_root, read_env_file

        repo = getattr(settings, "repo_root", None) or find_repo_root() or Path.cwd()
        repo = Path(repo)
        env = read_env_file(repo / ".env")
        secrets: list[str] = []
        if hasattr(settings, "secret_values"):
            secrets = list(settings.secret_values())
        values: dict[str, Any] = {
            "stack": settings.project,
            "image_repo": f"{getattr(settings, 'image_prefix', DEFAULT_IMAGE_PREFIX)}-backend",
            "repo": repo,
            "state_dir": Path(settings.state_dir),
            "run_dir": Path(settings.run_dir),
            "base_url": str(settings.base_url).rstrip("/"),
            "env": env,
            "read_only": bool(read_only or getattr(settings, "read_only", False)),
            "keep_previous_colour": bool(getattr(settings, "keep_previous_colour", True)),
            "extra_secrets": tuple(secrets),
            "alertmanager_url": getattr(settings, "alertmanager_url", None),
            "tls_cert_file": getattr(settings, "tls_cert_file", None),
            "mode": str(getattr(settings, "mode", "compose") or "compose"),
            "docker_host": getattr(settings, "docker_host", None),
        }
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> OpContext:
        return dataclasses.replace(self, **changes)

    # --- names and paths ----------------------------------------------------------

    def container(self, service: str) -> str:
        """Container of a compose service: ``backend_blue`` -> ``<stack>_backend_blue_prod``."""
        return StackNames(self.stack).container(service)

    @property
    def http_port(self) -> int:
        port = urlsplit(self.base_url).port
        return port or 80

    @property
    def deploy_env_path(self) -> Path:
        return self.state_dir / "deploy.env"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "lock"

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def history_path(self) -> Path:
        return self.state_dir / "history.jsonl"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "deploy-journal.json"

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def deployment_log_path(self) -> Path:
        """Human-readable event log of deploys and rollbacks (the runbook's
        ``logs/deployment.log``, for ``tail -f``)."""
        return self.state_dir / "deployment.log"

    @property
    def pg_socket_dir(self) -> Path:
        return self.run_dir / "postgresql"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis" / "redis.sock"

    @property
    def compose_files(self) -> tuple[Path, Path]:
        base = self.repo / "compose"
        return base / "docker-compose.yml", base / "docker-compose.production.yml"

    def compose_argv(self, *args: str) -> list[str]:
        """``docker compose`` exactly as scripts/compose.sh runs it."""
        main, prod = self.compose_files
        return [
            self.docker,
            "compose",
            "-p",
            self.stack,
            "--project-directory",
            str(self.repo / "compose"),
            "-f",
            str(main),
            "-f",
            str(prod),
            "--env-file",
            str(self.repo / ".env"),
            "--env-file",
            str(self.deploy_env_path),
            *args,
        ]

    def subprocess_env(self) -> dict[str, str]:
        """Environment for docker/compose: the stack variables set, the
        deploy.env variables removed (deploy.env must win)."""
        env = {k: v for k, v in os.environ.items() if k not in _VERSION_VARS}
        env.update(
            STACK_NAME=self.stack,
            HTTP_PORT=str(self.http_port),
            RUN_DIR=str(self.run_dir),
            STACKDECK_STATE_DIR=str(self.state_dir),
        )
        # a service compose recreates keeps its ports (not compose's defaults)
        ports = published_ports({**self.env, **os.environ}, self.http_port)
        env.update({name: str(port) for name, port in ports.items()})
        return env

    @property
    def cert_path(self) -> Path:
        """nginx's certificate: the configured file, else ``<state_dir>/tls/cert.pem``."""
        return (
            Path(self.tls_cert_file) if self.tls_cert_file else self.state_dir / "tls" / "cert.pem"
        )

    # --- secrets ---------------------------------------------------------------

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in output: every secret-looking .env value."""
        out = list(self.extra_secrets)
        for key, value in self.env.items():
            if value and is_secret_key(key) and value not in ("offline-sim",):
                out.append(value)
        return out

    def redact(self, text: object) -> str:
        return redact(text, self.secrets)
