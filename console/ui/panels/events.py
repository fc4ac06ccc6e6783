"""Events panel: the Docker event stream as a short timeline, newest first.

In swarm mode it also has the swarm's changes (origin ``swarm``: a node
down or drained, a task rescheduled, failed or lost, an update's state, a
scale), found by comparing the swarm source's snapshots.

Events from before the console started (recalled at start from the engine's
buffer, ``docker inspect`` and the audit log) carry :data:`BEFORE_MARK` before
their time and are dimmed; the title counts them."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.reactive import var

from console.core.models import EngineEvent, EventsSnapshot
from console.ui.format import fmt_duration, fmt_time, seconds_between, shorten
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.widgets.table import ListTable, Row

__all__ = ["BEFORE_MARK", "EventsPanel", "event_style"]

BEFORE_MARK = "‹"
"""Marks the time of an event that happened before the console started."""

_BAD = ("die", "kill", "oom", "unhealthy", "destroy")
_GOOD = ("start", "healthy", "create")


_SWARM_BAD = ("down", "failed", "rejected", "lost", "removed", "paused", "disconnected")
_SWARM_WARN = ("rescheduled", "drain", "pause", "rollback", "update started", "scaled")
_SWARM_GOOD = ("ready", "active", "joined", "created", "completed")


def event_style(event: EngineEvent, palette: Palette) -> str:
    action = event.action.lower()
    if event.origin == "swarm":  # the swarm's changes: their own words
        for words, style in (
            (_SWARM_BAD, f"bold {palette.err}"),
            (_SWARM_WARN, palette.warn),
            (_SWARM_GOOD, palette.ok),
        ):
            if any(word in action for word in words):
                return style
        return ""
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
        if snapshot.events:
            return None
        if snapshot.since is not None and snapshot.started_at is not None:
            back = fmt_duration(seconds_between(snapshot.started_at, snapshot.since), parts=1)
            return (
                f"no engine events since {fmt_time(snapshot.since, self.now)}"
                f" ({back} before the console started)"
            )
        return "no engine events since the console started"

    def title_detail(self, snapshot: EventsSnapshot) -> str:
        earlier = sum(1 for e in snapshot.events if e.before_start)
        if not earlier:
            return f"{len(snapshot.events)}"
        return f"{len(snapshot.events)} · {BEFORE_MARK} {earlier} before the console started"

    def render_snapshot(self, snapshot: EventsSnapshot) -> None:
        palette = self.palette
        rows: list[Row] = []
        seen: dict[str, int] = {}
        for event in reversed(snapshot.events):
            base = f"{event.at.isoformat()}|{event.container}|{event.action}"
            seen[base] = seen.get(base, 0) + 1
            key = f"{base}|{seen[base]}"
            at = fmt_time(event.at, self.now)
            earlier = event.before_start
            cells = (
                Text(f"{BEFORE_MARK} {at}" if earlier else at, style=palette.muted),
                Text(event.service or event.container, style="bold dim" if earlier else "bold"),
                Text(
                    event.action,
                    style=f"{event_style(event, palette)} dim".strip()
                    if earlier
                    else event_style(event, palette),
                ),
                Text(shorten(event.detail or "", 60), style=palette.muted),
            )
            search = f"{event.container} {event.service or ''} {event.action} {event.detail or ''}"
            if earlier:
                search += " before start"
            rows.append(Row(key=key, cells=cells, search=search))
        self.query_one(ListTable).set_rows(rows)
