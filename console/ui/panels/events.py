"""Events panel: the Docker event stream as a short timeline, newest first."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.reactive import var

from console.core.models import EngineEvent, EventsSnapshot
from console.ui.format import fmt_time, shorten
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.widgets.table import ListTable, Row

__all__ = ["EventsPanel", "event_style"]

_BAD = ("die", "kill", "oom", "unhealthy", "destroy")
_GOOD = ("start", "healthy", "create")


def event_style(event: EngineEvent, palette: Palette) -> str:
    action = event.action.lower()
    if any(word in action for word in _BAD) and "health_status: healthy" not in action:
        return f"bold {palette.err}"
    if "restart" in action or "stop" in action or "starting" in action:
        return palette.warn
    if any(word in action for word in _GOOD):
        return palette.ok
    return ""


class EventsPanel(Panel):
    """start, die, health changes, restarts; filterable."""

    PANEL_ID = "events"
    TITLE = "Events"
    NUMBER = 7
    SOURCES: ClassVar[tuple[str, ...]] = ("events",)
    FILTERABLE = True

    snapshot: var[EventsSnapshot | None] = var(None, init=False)
    """The newest event timeline."""

    def compose_body(self) -> ComposeResult:
        yield ListTable(
            [("at", "time"), ("container", "container"), ("action", "event"), ("detail", "detail")],
            id="events-table",
        )

    def empty_reason(self, snapshot: EventsSnapshot) -> str | None:
        return None if snapshot.events else "no engine events since the console started"

    def title_detail(self, snapshot: EventsSnapshot) -> str:
        return f"{len(snapshot.events)}"

    def render_snapshot(self, snapshot: EventsSnapshot) -> None:
        palette = self.palette
        rows: list[Row] = []
        seen: dict[str, int] = {}
        for event in reversed(snapshot.events):
            base = f"{event.at.isoformat()}|{event.container}|{event.action}"
            seen[base] = seen.get(base, 0) + 1
            key = f"{base}|{seen[base]}"
            cells = (
                Text(fmt_time(event.at, self.now), style=palette.muted),
                Text(event.service or event.container, style="bold"),
                Text(event.action, style=event_style(event, palette)),
                Text(shorten(event.detail or "", 60), style=palette.muted),
            )
            search = f"{event.container} {event.service or ''} {event.action} {event.detail or ''}"
            rows.append(Row(key=key, cells=cells, search=search))
        self.query_one(ListTable).set_rows(rows)
