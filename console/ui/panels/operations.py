"""Operations panel: the step events of operations, streamed as they happen.

Unlike the other panels it does not render a snapshot: the app appends each
:class:`~console.core.models.OpEvent` of the running operation as it arrives,
so a deploy's progress (``healthy ✓ · migrated ✓ · switched ✓ · baking…``)
is visible line by line.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var
from textual.widgets import RichLog

from console.core.models import OpEvent
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
    return line


class OperationsPanel(Panel):
    """Live log of operations started from this console."""

    PANEL_ID = "operations"
    TITLE = "Operations"
    SHORT = "Ops"
    NUMBER = 8
    SOURCES = ()

    running: var[str | None] = var(None, init=False)
    """Name of the operation in progress (bound to the app)."""
    read_only: var[bool] = var(False, init=False)
    """Read-only mode (bound to the app): the idle text says why ops are off."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="idle")
        yield RichLog(max_lines=2000, wrap=True, markup=False, auto_scroll=True, id="ops-log")

    def on_mount(self) -> None:
        self.remove_class("-empty")
        self._render_idle()

    def refresh_panel(self) -> None:
        """No snapshot: the body is always shown."""
        self._render_idle()

    def watch_running(self) -> None:
        self._render_idle()

    def watch_read_only(self) -> None:
        self._render_idle()

    def _render_idle(self) -> None:
        if not self.is_mounted:
            return
        self.set_title(f"{self.TITLE} · {self.running} running…" if self.running else self.TITLE)
        idle = self.query_one(".idle", LiveText)
        if self._count:
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
            idle.update(
                Content.styled(
                    "no operations yet · d deploy · b rollback · v vacuum · f flush cache · "
                    "e emergency limit · r restart",
                    "dim",
                )
            )

    def add_event(self, event: OpEvent, now: datetime) -> None:
        self._count += 1
        self._render_idle()
        self.query_one(RichLog).write(format_op_event(event, Palette.from_app(self.app), now))

    @property
    def lines(self) -> list[str]:
        """Plain text of the log (for tests and the CLI-like export)."""
        return [strip.text for strip in self.query_one(RichLog).lines]
