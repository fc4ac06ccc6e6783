"""Shown instead of the dashboard when the terminal is below the minimum size."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

__all__ = ["MIN_HEIGHT", "MIN_WIDTH", "TooSmallScreen"]

MIN_WIDTH = 60
MIN_HEIGHT = 20


class TooSmallScreen(Screen[None]):
    """``terminal too small (need 60×20, have 40×15)``; goes away on resize."""

    def compose(self) -> ComposeResult:
        yield Static(id="too-small-message")

    def on_mount(self) -> None:
        self.update_size(self.app.size.width, self.app.size.height)

    def update_size(self, width: int, height: int) -> None:
        self.query_one("#too-small-message", Static).update(
            f"terminal too small (need {MIN_WIDTH}×{MIN_HEIGHT}, have {width}×{height})\n"
            "enlarge the window, or press q to quit"
        )
