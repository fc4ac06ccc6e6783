"""Shared fixtures: the real bundled stack the integration tiers run against.

The stack is the one `scripts/setup.sh` brought up. Which one: the same
precedence as scripts/lib.sh (environment, then .env, then defaults), with
``STACKDECK_TEST_STACK`` taking priority over ``STACK_NAME`` so a developer can
point the tests at a private stack while other stacks run on the engine.
``scripts/test.sh`` uses a stack of its own (``sdtest`` on port 18080), so
tests never touch a stack someone else is using.

Tests marked ``destructive`` (deploys, killing containers, stopping the
database) run after every other test, so the read-only tiers see a calm stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.core.config import read_env_file as _read_env_file
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


def default_signals() -> None:
    """``preexec_fn`` for a child a test will signal: SIGINT, SIGTERM and SIGHUP
    at their defaults. A suite started in the background (``cmd &``, a CI
    runner) inherits SIGINT ignored, and an ignored SIGINT stays ignored
    across exec, so the test's Ctrl-C would do nothing in the child."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def base_image() -> str:
    """The base the stack's images were built from (test.sh builds one per run)."""
    return os.environ.get("BASE_IMAGE") or "debian:trixie-slim"


@dataclass
class Stack:
    """Where the real stack is and how to reach each part of it."""

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
        return (
            f"unix://{self.run_dir / 'redis' / 'redis.sock'}?password={self.env['REDIS_PASSWORD']}"
        )

    @property
    def redis_socket(self) -> Path:
        return self.run_dir / "redis" / "redis.sock"

    def container(self, service: str) -> str:
        """Container name of a compose service (db → ``<stack>_db_prod``)."""
        return StackNames(self.name).container(service)

    def proc_env(self) -> dict[str, str]:
        """Environment for subprocesses that must address this stack."""
        env = dict(os.environ)
        env.update(
            STACK_NAME=self.name,
            HTTP_PORT=str(self.http_port),
            RUN_DIR=str(self.run_dir),
            STACKDECK_STATE_DIR=str(self.state_dir),
            IMAGE_PREFIX=self.image_prefix,
        )
        return env

    def bare_env(self) -> dict[str, str]:
        """:func:`bare_env` addressing this stack."""
        return bare_env(
            STACK_NAME=self.name,
            HTTP_PORT=str(self.http_port),
            RUN_DIR=str(self.run_dir),
            STACKDECK_STATE_DIR=str(self.state_dir),
            IMAGE_PREFIX=self.image_prefix,
        )

    @property
    def backend_image(self) -> str:
        return f"{self.image_prefix}-backend"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run scripts/compose.sh (docker compose with this stack's files and env)."""
        return subprocess.run(
            ["bash", str(self.repo / "scripts" / "compose.sh"), *args],
            env=self.proc_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

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

    def reload_env(self) -> None:
        self.env = {
            **_read_env_file(self.repo / ".env"),
            **_read_env_file(self.state_dir / "deploy.env"),
        }


def _resolve_stack() -> Stack:
    dotenv = _read_env_file(REPO / ".env")
    name = (
        os.environ.get("STACKDECK_TEST_STACK")
        or os.environ.get("STACK_NAME")
        or dotenv.get("STACK_NAME")
        or DEFAULT_STACK
    )
    port = int(os.environ.get("HTTP_PORT") or dotenv.get("HTTP_PORT") or 80)
    names = StackNames(name)
    run_dir = Path(os.environ.get("RUN_DIR") or dotenv.get("RUN_DIR") or names.run_dir)
    state_dir = Path(os.environ.get("STACKDECK_STATE_DIR") or names.state_dir)
    prefix = os.environ.get("IMAGE_PREFIX") or dotenv.get("IMAGE_PREFIX") or DEFAULT_IMAGE_PREFIX
    stack = Stack(
        name=name, http_port=port, run_dir=run_dir, state_dir=state_dir, image_prefix=prefix
    )
    stack.reload_env()
    return stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running bundled stack; fails (never skips) when it is not up."""
    s = _resolve_stack()
    try:
        r = httpx.get(f"{s.base_url}/api/health", timeout=10)
    except httpx.HTTPError as exc:
        pytest.fail(
            f"stack {s.name!r} does not answer on {s.base_url} ({exc}); "
            f"bring it up with: STACK_NAME={s.name} HTTP_PORT={s.http_port} bash scripts/setup.sh"
        )
    if r.status_code != 200:
        pytest.fail(
            f"stack {s.name!r} is up but /api/health answered {r.status_code}: {r.text[:200]}"
        )
    yield s


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Destructive tests last; within each group the collection order stays."""
    items.sort(key=lambda item: item.get_closest_marker("destructive") is not None)
