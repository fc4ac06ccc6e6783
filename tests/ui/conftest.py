"""UI test set-up: no animations, no cursor blink, deterministic sizes and clock."""

from __future__ import annotations

import os

os.environ["TEXTUAL_ANIMATIONS"] = "none"
os.environ.pop("NO_COLOR", None)

import pytest
from textual.widgets import Input


def _steady_cursor(self: Input) -> None:
    self._cursor_visible = True


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes two screenshots of the same state differ."""
    monkeypatch.setattr(Input, "_toggle_cursor", _steady_cursor)


@pytest.fixture(autouse=True)
def _no_real_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """UI tests never reach a real engine: a stray default factory would fail fast."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
