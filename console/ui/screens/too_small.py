"""Shown instead of the dashboard when the terminal is below the minimum size."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from console.ui.format import TIMES
from console.ui.screens.base import ConsoleScreen

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "TooSmallScreen"]

MIN_WIDTH = 60
MIN_HEIGHT = 20


class TooSmallScreen(ConsoleScreen[None]):
    """``terminal too small (need 60x20, have 40x15)`` (with a multiplication sign); goes away on resize."""

    def compose(self) -> ComposeResult:
        yield Static(id="too-small-message")

    def on_mount(self) -> None:
        self.update_size(self.app.size.width, self.app.size.height)

    def update_size(self, width: int, height: int) -> None:
        self.query_one("#too-small-message", Static).update(
            # Short lines: the message itself must fit the small terminal it is for.
            f"terminal too small\n"
            f"need {MIN_WIDTH}{TIMES}{MIN_HEIGHT}, have {width}{TIMES}{height}\n"
            "enlarge the window,\nor press q to quit"
        )
