"""The one stack helper of the tests and the benchmarks: where a bundled
stack is and how to reach each part of it (nginx, the sockets, the
containers, ``scripts/compose.sh``, the console's settings for it).

Names and folders come from :class:`console.core.stack.StackNames` (the
facts ``scripts/lib.sh`` reads too); which stack, from the environment with
the precedence of scripts/lib.sh (:meth:`Stack.from_environment`, the
tests' stack) or by name (:meth:`Stack.named`, the benchmarks' stack).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from console.core.config import read_env_file
from console.core.stack import DEFAULT_IMAGE_PREFIX, DEFAULT_STACK, StackNames

REPO = Path(__file__).resolve().parents[1]

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""A login shell's PATH on Debian: no .venv/bin, nothing of the project."""


def bare_env(**stack_vars: str) -> dict[str, str]:
    """The environment of a newcomer's shell (``env -i`` plus a login PATH):
    no virtualenv, no PYTHONPATH, so nothing of the project is importable
    from the system python3. Only the stack's variables are passed, and
    BASE_IMAGE and IMAGE_PREFIX, so a clone reuses the images this run built."""
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    for inherited in ("BASE_IMAGE", "IMAGE_PREFIX"):
        if os.environ.get(inherited):
            env[inherited] = os.environ[inherited]
    env.update(stack_vars)
    return env


@dataclass
class Stack:
    """Where a real stack is and how to reach each part of it."""

    name: str
    http_port: int
    run_dir: Path
    state_dir: Path
    repo: Path = REPO
    image_prefix: str = DEFAULT_IMAGE_PREFIX
    """Image names: ``<prefix>-backend:<version>`` (IMAGE_PREFIX; test.sh uses the stack's name)."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """.env merged with deploy.env (secrets included: never print them; kept
    out of the repr so a failing test's report cannot show them)."""

    # --- which stack ----------------------------------------------------------

    @classmethod
    def from_environment(cls, repo: Path = REPO) -> Stack:
        """The stack the environment names, with scripts/lib.sh's precedence
        (environment, then ``.env``, then the defaults);
        ``STACKDECK_TEST_STACK`` comes before ``STACK_NAME``, so a developer can
        point the tests at a private stack while other stacks run."""
        dotenv = read_env_file(repo / ".env")
        name = (
            os.environ.get("STACKDECK_TEST_STACK")
            or os.environ.get("STACK_NAME")
            or dotenv.get("STACK_NAME")
            or DEFAULT_STACK
        )
        names = StackNames(name)
        stack = cls(
            name=name,
            http_port=int(os.environ.get("HTTP_PORT") or dotenv.get("HTTP_PORT") or 80),
            run_dir=Path(os.environ.get("RUN_DIR") or dotenv.get("RUN_DIR") or names.run_dir),
            state_dir=Path(os.environ.get("STACKDECK_STATE_DIR") or names.state_dir),
            repo=repo,
            image_prefix=_image_prefix(dotenv),
        )
        stack.reload_env()
        return stack

    @classmethod
    def named(
        cls,
        name: str,
        http_port: int,
        *,
        run_dir: str | Path | None = None,
        state_dir: str | Path | None = None,
        repo: Path = REPO,
    ) -> Stack:
        """The stack called ``name`` on ``http_port``, in its default folders
        unless given; the image prefix as scripts/lib.sh resolves it."""
        names = StackNames(name)
        stack = cls(
            name=name,
            http_port=http_port,
            run_dir=Path(run_dir or names.run_dir),
            state_dir=Path(state_dir or names.state_dir),
            repo=repo,
            image_prefix=_image_prefix(read_env_file(repo / ".env")),
        )
        stack.reload_env()
        return stack

    # --- addresses --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pg_dsn(self) -> str:
        """asyncpg DSN over the bind-mounted unix socket (peer auth as root)."""
        return f"postgresql://postgres@/investment_db?host={self.run_dir / 'postgresql'}"

    @property
    def redis_url(self) -> str:
        """redis-py URL over the bind-mounted unix socket, with the password."""
        return f"unix://{self.redis_socket}?password={self.env['REDIS_PASSWORD']}"

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis" / "redis.sock"

    @property
    def backend_image(self) -> str:
        return f"{self.image_prefix}-backend"

    def container(self, service: str) -> str:
        """Container name of a compose service (db → ``<stack>_db_prod``)."""
        return StackNames(self.name).container(service)

    # --- state ------------------------------------------------------------------

    def deploy_env(self) -> dict[str, str]:
        """deploy.env as it is now (active colour, versions)."""
        return read_env_file(self.state_dir / "deploy.env")

    def reload_env(self) -> None:
        self.env = {**read_env_file(self.repo / ".env"), **self.deploy_env()}

    def healthy(self) -> bool:
        """Whether nginx answers 200 on /api/health."""
        try:
            return httpx.get(f"{self.base_url}/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    # --- processes ----------------------------------------------------------------

    def _stack_vars(self) -> dict[str, str]:
        from console.core.stack import monitoring_ports

        ports = monitoring_ports(self.env, self.http_port)  # this stack's, not the shell's
        return {
            "STACK_NAME": self.name,
            "HTTP_PORT": str(self.http_port),
            "RUN_DIR": str(self.run_dir),
            "STACKDECK_STATE_DIR": str(self.state_dir),
            "IMAGE_PREFIX": self.image_prefix,
            **{name: str(port) for name, port in ports.items()},
        }

    def proc_env(self, **extra: str) -> dict[str, str]:
        """Environment for a process that must address this stack (scripts,
        the console, the ops CLI)."""
        return {**os.environ, **self._stack_vars(), **extra}

    def bare_env(self) -> dict[str, str]:
        """:func:`bare_env` addressing this stack."""
        return bare_env(**self._stack_vars())

    def cli_argv(self, *args: str, json_output: bool = True) -> list[str]:
        """The argv of ``stackdeck [--json] ARGS`` addressing this stack, run
        from this checkout by the running interpreter."""
        argv = [sys.executable, "-m", "console", "--stack", self.name]
        argv += ["--http-port", str(self.http_port)]
        return [*argv, *(["--json"] if json_output else []), *args]

    def script(
        self, name: str, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run ``scripts/<name>`` for this stack."""
        return subprocess.run(
            ["bash", str(self.repo / "scripts" / name), *args],
            env=self.proc_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run scripts/compose.sh (docker compose with this stack's files and env)."""
        return self.script("compose.sh", *args, check=check, timeout=timeout)

    def exec(
        self,
        service: str,
        *argv: str,
        env: dict[str, str] | None = None,
        check: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``docker exec`` in a service's container, with ``env`` set in it."""
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(
            ["docker", "exec", *options, self.container(service), *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def psql(self, sql: str, *, check: bool = True, timeout: float = 60) -> str:
        """One statement through ``psql`` in the db container, the runbook's
        way (``-tA``: bare values); its output, stripped. A failure raises
        with psql's message unless ``check`` is false."""
        r = self.exec(
            "db",
            "psql",
            "-U",
            "postgres",
            "-d",
            "investment_db",
            "-tA",
            "-c",
            sql,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"psql {sql!r} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout.strip()

    def redis_cli(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``redis-cli`` in the cache container (the container's REDISCLI_AUTH
        authenticates)."""
        return self.exec("redis", "redis-cli", "--no-auth-warning", *argv, timeout=timeout)

    def active_conf(self) -> subprocess.CompletedProcess[str]:
        """nginx's ``upstream/active.conf`` (which colour serves)."""
        return self.exec("nginx", "cat", "/etc/nginx/upstream/active.conf")

    def project_ids(self, *, running_only: bool = True) -> list[str]:
        """Ids of the project's containers (label ``com.docker.compose.project``)."""
        return self._ps("{{.ID}}", running_only)

    def project_containers(self, *, running_only: bool = True) -> list[str]:
        """Names of the project's containers, sorted."""
        return sorted(self._ps("{{.Names}}", running_only))

    def _ps(self, fmt: str, running_only: bool) -> list[str]:
        args = ["docker", "ps", "--filter", f"label=com.docker.compose.project={self.name}"]
        if not running_only:
            args.append("-a")
        return subprocess.run(
            [*args, "--format", fmt], capture_output=True, text=True, check=True, timeout=120
        ).stdout.split()

    # --- the console ----------------------------------------------------------------

    def settings(self, **overrides: Any) -> Any:
        """The console's Settings for this stack (its ``.env``, these folders)."""
        from console.core.config import Settings

        values: dict[str, Any] = {
            "project": self.name,
            "base_url": self.base_url,
            "run_dir": self.run_dir,
            "state_dir": self.state_dir,
            "image_prefix": self.image_prefix,
            **overrides,
        }
        return Settings.for_stack(self.repo, **values)

    def op_context(self, **overrides: Any) -> Any:
        """The ops engine's context for this stack, built as the CLI builds it."""
        from console.core.ops.context import OpContext

        return OpContext.from_settings(self.settings(**overrides))


def _image_prefix(dotenv: dict[str, str]) -> str:
    return os.environ.get("IMAGE_PREFIX") or dotenv.get("IMAGE_PREFIX") or DEFAULT_IMAGE_PREFIX
