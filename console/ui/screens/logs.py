"""Log view of one container: the last lines, then follow; pause and filter.

The lines come from an async iterator (``follow_logs`` of the engine source,
or a fake in tests) consumed by an async worker that posts one message per
line. The screen keeps a bounded buffer, so changing the filter or resuming
after a pause redraws from memory without asking Docker again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.reactive import var
from textual.widgets import Footer, Input, RichLog
from textual.worker import Worker, WorkerState

from console.core.models import LogLine
from console.ui.format import fmt_time
from console.ui.messages import LogsArrived
from console.ui.screens.base import ConsoleScreen
from console.ui.widgets.text import LiveText

__all__ = ["LogSource", "LogsScreen"]

LogSource = Callable[[], AsyncIterator[LogLine]]
"""Opens the stream of one container's log (tail, then follow)."""

BUFFER_LINES = 5000
FLUSH_S = 0.03
"""A batch of log lines is shown at most this long after its first line arrived."""
BATCH_MAX = 500
"""Lines per batch at most (a long tail arrives in several messages)."""


class LogsScreen(ConsoleScreen[None]):
    """Tail and follow one container's log.

    | key | action |
    |---|---|
    | f | follow on/off (off: the view holds still, new lines are kept) |
    | / | filter lines (case-insensitive substring) |
    | escape, q | back to the dashboard |
    """

    BINDINGS = [
        Binding(
            "f",
            "toggle_follow",
            "Follow",
            id="logs.follow",
            tooltip="Pause or resume following new lines",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="logs.filter",
            tooltip="Show only lines containing a text",
        ),
        Binding("escape,q", "close", "Back", id="logs.close", tooltip="Back to the dashboard"),
    ]

    AUTO_FOCUS = "#logs-view"

    following: var[bool] = var(True, init=False)
    """True: new lines are shown as they arrive and the view scrolls with them."""
    filter_text: var[str] = var("", init=False)
    """Only lines containing this (case-insensitive) are shown."""

    def __init__(self, container: str, source: LogSource, *, clock: Callable[[], datetime]) -> None:
        super().__init__(id="logs-screen")
        self.container = container
        self._source = source
        self._clock = clock
        self._buffer: deque[LogLine] = deque(maxlen=BUFFER_LINES)
        self._held = 0
        self._ended: str | None = None

    def compose(self) -> ComposeResult:
        yield LiveText(id="logs-status")
        yield Input(
            placeholder="filter… (enter: keep, esc: clear)", id="logs-filter", classes="filter"
        )
        yield RichLog(
            id="logs-view", max_lines=BUFFER_LINES, wrap=False, markup=False, auto_scroll=True
        )
        yield Footer()

    def on_mount(self) -> None:
        self._render_status()
        self._follow()

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def _follow(self) -> None:
        """Read the stream; post what arrived within FLUSH_S of the first
        line of a batch (at most BATCH_MAX lines) as one message."""
        lines = aiter(self._source())
        batch: list[LogLine] = []
        first_at = 0.0
        pending: asyncio.Future[LogLine] = asyncio.ensure_future(anext(lines))
        try:
            while True:
                wait = None if not batch else max(0.0, first_at + FLUSH_S - time.monotonic())
                done, _ = await asyncio.wait({pending}, timeout=wait)
                if pending in done:
                    try:
                        line = pending.result()
                    except StopAsyncIteration:
                        break
                    if not batch:
                        first_at = time.monotonic()
                    batch.append(line)
                    pending = asyncio.ensure_future(anext(lines))
                    if len(batch) < BATCH_MAX and time.monotonic() < first_at + FLUSH_S:
                        continue
                if batch:
                    self.post_message(LogsArrived(batch))
                    batch = []
        finally:
            pending.cancel()
            if batch:
                self.post_message(LogsArrived(batch))

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "logs":
            return
        if event.state == WorkerState.SUCCESS:
            self._ended = "end of log stream (container stopped?)"
        elif event.state == WorkerState.ERROR:
            self._ended = f"log stream failed: {event.worker.error}"
        else:
            return
        self.query_one(RichLog).write(Text(f"— {self._ended} —", style="dim italic"))
        self._render_status()

    @property
    def lines(self) -> list[str]:
        """The plain text of what the view shows (for tests)."""
        return [strip.text for strip in self.query_one(RichLog).lines]

    def _matches(self, line: LogLine) -> bool:
        needle = self.filter_text.strip().lower()
        return not needle or needle in line.text.lower()

    def _format(self, line: LogLine) -> Text:
        text = Text(no_wrap=True)
        if line.at is not None:
            text.append(fmt_time(line.at, self._clock()) + " ", style="dim")
        text.append(line.text.rstrip("\n"), style="red" if line.stream == "stderr" else "")
        return text

    def on_logs_arrived(self, message: LogsArrived) -> None:
        self._buffer.extend(message.lines)
        if not self.following:
            self._held += len(message.lines)
            self._render_status()
            return
        self._write([line for line in message.lines if self._matches(line)])
        self._render_status()

    def _write(self, lines: list[LogLine]) -> None:
        """One write for many lines (RichLog renders each write separately)."""
        if lines:
            self.query_one(RichLog).write(Text("\n").join(self._format(line) for line in lines))

    def _redraw(self) -> None:
        self.query_one(RichLog).clear()
        self._write([line for line in self._buffer if self._matches(line)])
        self._held = 0

    def _render_status(self) -> None:
        parts: list[str | tuple[str, str]] = [("logs", "bold"), f" · {self.container} · "]
        if self.following:
            parts.append(("following", "$success"))
        else:
            parts.append(("paused", "$warning bold"))
            if self._held:
                parts.append(f" ({self._held} new)")
        if self.filter_text:
            parts.append(f" · filter: {self.filter_text}")
        parts.append((f" · {len(self._buffer)} lines", "dim"))
        if self._ended:
            parts.append((f" · {self._ended}", "dim"))
        self.query_one("#logs-status", LiveText).update(Content.assemble(*parts))

    def watch_following(self, following: bool) -> None:
        log = self.query_one(RichLog)
        log.auto_scroll = following
        if following:
            self._redraw()
            log.scroll_end(animate=False)
        self._render_status()

    def watch_filter_text(self) -> None:
        self._redraw()
        self._render_status()

    def action_toggle_follow(self) -> None:
        self.following = not self.following

    def action_filter(self) -> None:
        bar = self.query_one("#logs-filter", Input)
        bar.add_class("-open")
        bar.focus()

    def action_close(self) -> None:
        bar = self.query_one("#logs-filter", Input)
        if bar.has_focus:
            bar.value = ""
            bar.remove_class("-open")
            self.query_one(RichLog).focus()
            return
        self.dismiss(None)

    @on(Input.Changed, "#logs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value

    @on(Input.Submitted, "#logs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.remove_class("-open")
        self.query_one(RichLog).focus()


def _utc_now() -> datetime:
    return datetime.now(UTC)
