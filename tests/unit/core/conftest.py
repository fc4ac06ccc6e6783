"""Fixtures of the console-core unit tests: an environment without any stack
or STACKDECK_ variable, and a fake clock."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core.config import _STACK_VARS

DATA = Path(__file__).parent / "data"

STACK_VARS = (*_STACK_VARS, "HTTP_PORT")
"""Every stack variable the console reads (config.py's own list)."""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No STACKDECK_* or stack variable, an empty config home, cwd in tmp."""
    for key in list(os.environ):
        if key.startswith("STACKDECK_") or key in STACK_VARS:
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "config-home"
    home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def v1_samples() -> list[dict[str, Any]]:
    """Two successive stats messages recorded on this host (cgroup v1,
    ``--cpus 0.5 --memory 64m``, a busy loop, 20 MiB written to /tmp)."""
    return json.loads((DATA / "stats_cgroup_v1.json").read_text())


@pytest.fixture
def v2_samples() -> list[dict[str, Any]]:
    """Two successive stats messages in the cgroup v2 layout (4 CPUs, 1 GiB
    limit, 40 MiB inactive file cache, eth0 counters, block I/O)."""
    return json.loads((DATA / "stats_cgroup_v2.json").read_text())
