"""Operations panel: the step events of operations, streamed as they happen.

It renders an :class:`~console.core.models.OpsLog` like every other panel
renders its snapshot: the dashboard replaces the log with one event more for
each :class:`~console.core.models.OpEvent` of the running operation, and the
panel writes the new lines, so a deploy's progress
(``healthy ✓ · migrated ✓ · switched ✓ · baking…``) is visible line by line.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var
from textual.widgets import RichLog

from console.core.models import OpEvent, OpsLog, OtherOpsSnapshot
from console.core.ops.table import OPERATIONS
from console.ui.format import fmt_time
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.widgets.text import LiveText

__all__ = ["OperationsPanel", "format_op_event"]

_MARKS = {
    "start": ("▶", "accent"),
    "ok": ("✓", "ok"),
    "fail": ("✗", "err"),
    "info": ("·", "muted"),
    "warn": ("!", "warn"),
    "done": ("✔", "ok"),
}


def format_op_event(event: OpEvent, palette: Palette, now: datetime) -> Text:
    """``14:01:02 deploy ✓ wait-healthy  green healthy, reports v1.2.3``."""
    mark, tone = _MARKS.get(event.status, ("·", "muted"))
    style = getattr(palette, tone)
    line = Text(no_wrap=False)
    line.append(fmt_time(event.at, now), style=palette.muted)
    line.append(f" {event.op} ", style="bold")
    line.append(f"{mark} ", style=f"bold {style}" if tone in ("err", "ok") else style)
    line.append(event.step, style=style if event.status in ("fail", "warn", "done") else "")
    if event.message:
        line.append(
            f"  {event.message}", style=f"bold {palette.err}" if event.status == "fail" else ""
        )
    by = event.data.get("by")
    if by and event.step != "begin":  # another operator's (its begin line names them)
        line.append(f"  · {by}", style=palette.muted)
    return line


class OperationsPanel(Panel):
    """Live log of operations started from this console, and of other
    operators' (another console, the CLI, a script) as their lock, audit
    lines and journal steps appear."""

    PANEL_ID = "operations"
    TITLE = "Operations"
    SHORT = "Ops"
    NUMBER = 8
    SOURCES = ()

    snapshot: var[OpsLog | None] = var(None, init=False)
    """The operations' events (bound to the dashboard)."""
    running: var[str | None] = var(None, init=False)
    """Name of the operation in progress (bound to the dashboard)."""
    read_only: var[bool] = var(False, init=False)
    """Read-only mode (bound to the dashboard): the idle text says why ops are off."""
    others: var[OtherOpsSnapshot | None] = var(None, init=False)
    """Other operators' operations (bound to the dashboard): the title names
    the one that holds the deploy lock."""

    def __init__(self) -> None:
        super().__init__()
        self._written: tuple[OpEvent, ...] = ()
        """The events already in the log widget."""

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="idle")
        yield RichLog(max_lines=2000, wrap=True, markup=False, auto_scroll=True, id="ops-log")

    def on_mount(self) -> None:
        self.remove_class("-empty")
        self._render_idle()

    def refresh_panel(self) -> None:
        """The body is always shown; the events not yet written are appended."""
        if not self.is_mounted:
            return
        events = self.snapshot.events if self.snapshot is not None else ()
        written = self._written
        log = self.query_one(RichLog)
        if events[: len(written)] != written or len(events) < len(written):
            # the log dropped its oldest events: write it anew
            log.clear()
            written = ()
        if len(events) > len(written):
            palette, now = Palette.from_app(self.app), self.now
            for event in events[len(written) :]:
                log.write(format_op_event(event, palette, now))
        self._written = events
        self._render_idle()

    def watch_running(self) -> None:
        self._render_idle()

    def watch_read_only(self) -> None:
        self._render_idle()

    def watch_others(self) -> None:
        self._render_idle()

    def _render_idle(self) -> None:
        if not self.is_mounted:
            return
        lock = self.others.lock if self.others is not None else None
        if self.running:
            self.set_title(f"{self.TITLE} · {self.running} running…")
        elif lock is not None and not lock.stale:
            pid = f", pid {lock.holder.pid}" if lock.holder.pid is not None else ""
            self.set_title(f"{self.TITLE} · {lock.op} by {lock.holder.who}{pid} running…")
        else:
            self.set_title(self.TITLE)
        idle = self.query_one(".idle", LiveText)
        if self._written:
            idle.display = False
            return
        idle.display = True
        if self.read_only:
            idle.update(
                Content.assemble(
                    ("read-only mode", "$warning bold"),
                    ": operations are disabled (started with --read-only)",
                )
            )
        else:
            keys = [f"{spec.key.key} {spec.key.words}" for spec in OPERATIONS.values() if spec.key]
            idle.update(Content.styled(" · ".join(["no operations yet", *keys]), "dim"))

    @property
    def lines(self) -> list[str]:
        """Plain text of the log (for tests and the CLI-like export)."""
        return [strip.text for strip in self.query_one(RichLog).lines]
