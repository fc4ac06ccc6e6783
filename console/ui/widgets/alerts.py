"""The always-visible alerts line: firing alerts first, pending ones dimmed."""

from __future__ import annotations

from datetime import datetime

from textual.content import Content
from textual.reactive import var

from console.core.models import Alert, AlertsSnapshot, SourceState
from console.ui.format import fmt_duration, seconds_between
from console.ui.panels.base import EPOCH
from console.ui.widgets.text import LiveText

__all__ = ["AlertsLine", "alert_text"]


def alert_text(alert: Alert, now: datetime) -> str:
    """``HighCPUUsage backend_green 86% > 80% for 6m``."""
    held = fmt_duration(max(0.0, seconds_between(now, alert.pending_since)), parts=1)
    message = alert.message or f"{alert.subject} {alert.value:g} > {alert.threshold:g}"
    return f"{alert.rule} {message} · {held}"


class AlertsLine(LiveText):
    """One line under the header; never hidden, so a firing alert is never off-screen."""

    DEFAULT_CSS = """
    AlertsLine { height: 1; }
    """

    alerts: var[AlertsSnapshot | None] = var(None, init=False)
    """Bound to the app: the evaluated rules."""
    sources: var[dict[str, SourceState]] = var(dict, init=False)
    """Bound to the app: alerts say when their inputs are stale."""
    now: var[datetime] = var(EPOCH, init=False)
    """Bound to the app's clock (the ``for`` durations grow)."""

    def __init__(self) -> None:
        super().__init__(id="alerts-line")

    def on_mount(self) -> None:
        self._redraw()

    def watch_alerts(self) -> None:
        self._redraw()

    def watch_sources(self) -> None:
        self._redraw()

    def watch_now(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        snapshot = self.alerts
        alerts = snapshot.alerts if snapshot else []
        firing = [a for a in alerts if a.firing and not a.silenced_by]
        pending = [a for a in alerts if not a.firing and not a.silenced_by]
        silenced = [a for a in alerts if a.silenced_by]
        self.set_class(bool(firing), "-firing")
        now = self.now
        parts: list[str | tuple[str, str]] = []
        if snapshot is None:
            parts.append(("alerts: waiting for the first evaluation…", "dim"))
        elif not firing and not pending:
            parts.append(("✓ no alerts", "$success"))
        for index, alert in enumerate(firing):
            # reverse: still stands out when NO_COLOR turns the palette into greys
            parts.append(
                (
                    "▲ ALERT" if index == 0 else " · ",
                    "$error bold reverse" if index == 0 else "$error",
                )
            )
            if index == 0:
                parts.append(" ")
            parts.append((alert_text(alert, now), "$error" if index else "$error bold"))
        for index, alert in enumerate(pending):
            lead = " · " if parts and (firing or index) else ""
            parts.append((f"{lead}pending {alert_text(alert, now)}", "dim"))
        if silenced:
            parts.append((f"  · {len(silenced)} silenced", "dim"))
        if snapshot is not None and snapshot.source == "local" and snapshot.note:
            # The console's own evaluation (the monitor says why: no Prometheus).
            parts.append(("  │ local alerts", "$warning bold"))
            parts.append((f": {snapshot.note}", "$warning"))
        failing = [s for s in self.sources.values() if not s.ok]
        if failing:
            names = ", ".join(sorted(s.name for s in failing))
            parts.append((f"  │ sources down: {names}", "$warning"))
        self.update(Content.assemble(*parts))
