"""Shared fixtures: the real bundled stack the integration tiers run against.

The stack is the one `scripts/setup.sh` brought up (``tests/stack.py``:
which one, and how to reach its parts). Which one: the same precedence as
scripts/lib.sh (environment, then .env, then defaults), with
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
from collections.abc import Iterator

import httpx
import pytest

# The stack helper lives in tests/stack.py (the benchmarks use it too);
# these names stay importable from here.
from tests.stack import REPO as REPO
from tests.stack import Stack as Stack
from tests.stack import bare_env as bare_env


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


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running bundled stack; fails (never skips) when it is not up."""
    s = Stack.from_environment()
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
    """Destructive tests last; within each group the collection order stays.

    The Swarm tier (marker ``swarm``: node containers with their own engines,
    minutes of set-up) runs only when asked for by a marker expression that
    names it (``pytest -m swarm``, ``bash scripts/swarm.sh test``); any other
    run deselects it."""
    if "swarm" not in (config.getoption("markexpr", "") or ""):
        swarm = [item for item in items if item.get_closest_marker("swarm") is not None]
        if swarm:
            config.hook.pytest_deselected(items=swarm)
            items[:] = [item for item in items if item.get_closest_marker("swarm") is None]
    items.sort(key=lambda item: item.get_closest_marker("destructive") is not None)
