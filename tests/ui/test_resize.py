"""A screen is laid out at the terminal's size, never at a stale one.

Textual lays a screen out at the size its Resize event carries, and a screen
whose layout changed its size posts itself a Resize of that size. Resize
events of an earlier size still pending in a screen's queue (the terminal
went from 40x15 to 80x24 while they waited) laid the dashboard out at the
old size; with other messages between two of them, each re-posted the
other without end and the console hung at 100 % CPU (the resize storm test,
tests/reliability/test_console_ui.py, twice in CI).
"""

from __future__ import annotations

import asyncio

import pytest
from textual.events import Resize
from textual.geometry import Size
from textual.screen import Screen

from tests.ui.fakes import make_app

STALE = Size(40, 15)
TERMINAL = Size(80, 24)


@pytest.mark.parametrize("screen_kind", ["dashboard", "help over the dashboard"])
async def test_a_stale_resize_never_lays_a_screen_out_at_its_old_size(
    screen_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    laid_out: list[tuple[str, Size | None]] = []
    layout = Screen._refresh_layout

    def watched(self: Screen[object], size: Size | None = None, scroll: bool = False) -> None:
        laid_out.append((type(self).__name__, size))
        layout(self, size, scroll)

    monkeypatch.setattr(Screen, "_refresh_layout", watched)
    app = make_app("normal")
    async with app.run_test(size=(TERMINAL.width, TERMINAL.height)) as pilot:
        await pilot.pause(0.3)
        if screen_kind != "dashboard":
            await pilot.press("question_mark")
            await pilot.pause(0.3)
        screen = app.screen
        laid_out.clear()
        # a batch (a mount, a switch of screens) keeps the repaint for later:
        # the Resize events queued meanwhile are not merged with each other
        with app.batch_update():
            screen.post_message(Resize(STALE, STALE))
            screen.call_later(lambda: None)
            screen.post_message(Resize(TERMINAL, TERMINAL))
            await asyncio.sleep(0.5)
        await asyncio.wait_for(pilot.pause(0.3), 10)
        assert app.size == TERMINAL and screen.size == TERMINAL
        assert laid_out, "the Resize events were not handled"
        assert all(size in (None, TERMINAL) for _, size in laid_out), laid_out
