"""Alerts and silences: what Prometheus (or, without it, the console) says is
pending or firing, and what Alertmanager keeps quiet.

| key | action |
|---|---|
| s | silence the selected alert: duration and comment, confirmed, audited |
| x | expire the selected silence (confirmed, audited) |
| escape, q | back to the dashboard |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widgets import Footer, Label

from console.core.models import Alert, AlertsSnapshot, Silence
from console.ui.format import fmt_duration, seconds_between, shorten
from console.ui.screens.base import OverDashboard
from console.ui.widgets.table import ListTable, Row
from console.ui.widgets.text import LiveText

__all__ = ["AlertsScreen", "alert_matchers", "alert_row", "silence_row"]

SUBJECT_LABELS = ("name", "service", "colour", "route", "provider", "mountpoint")
"""Labels that tell one alert of a rule from another (kept in its silence)."""


def alert_matchers(alert: Alert) -> dict[str, str]:
    """What a silence of ``alert`` matches: its rule and the labels that name
    its subject (not its value-like labels: status, instance)."""
    out = {"alertname": alert.labels.get("alertname", alert.rule)}
    for key in SUBJECT_LABELS:
        if alert.labels.get(key):
            out[key] = alert.labels[key]
    return out


def _state(alert: Alert) -> Text:
    if alert.silenced_by:
        return Text("silenced", style="dim")
    if alert.firing:
        return Text("FIRING", style="bold red")
    return Text("pending", style="yellow")


def alert_row(alert: Alert, now: datetime) -> Row:
    held = fmt_duration(max(0.0, seconds_between(now, alert.pending_since)), parts=2)
    key = "|".join(
        [alert.rule, alert.subject, *(f"{k}={v}" for k, v in sorted(alert.labels.items()))]
    )
    cells = (
        _state(alert),
        Text(alert.rule, style="bold"),
        Text(alert.subject),
        Text(f"{alert.value:.4g}", justify="right"),
        Text(
            f"{alert.threshold:g}" if alert.threshold == alert.threshold else "–", justify="right"
        ),
        Text(held, justify="right"),
        Text(alert.message, overflow="ellipsis"),
    )
    return Row(key=key, cells=cells, search=f"{alert.rule} {alert.subject} {alert.message}")


def silence_row(silence: Silence, now: datetime) -> Row:
    left = fmt_duration(max(0.0, seconds_between(silence.ends_at, now)), parts=2)
    cells = (
        Text(silence.id[:8]),
        Text(silence.matchers),
        Text(f"{left} left", justify="right"),
        Text(silence.created_by),
        Text(silence.comment, overflow="ellipsis"),
    )
    return Row(key=silence.id, cells=cells, search=f"{silence.matchers} {silence.comment}")


class AlertsScreen(OverDashboard):
    """Pending and firing alerts with their threshold, value and age; the
    active silences; keys to silence an alert and to expire a silence."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="alerts.back"),
        Binding(
            "s", "silence", "Silence", id="alerts.silence", tooltip="Silence the selected alert"
        ),
        Binding("x", "expire", "Expire", id="alerts.expire", tooltip="Expire the selected silence"),
    ]

    def __init__(self) -> None:
        super().__init__(id="alerts-screen")
        self._alerts: dict[str, Alert] = {}
        self._silences: dict[str, Silence] = {}

    def compose(self) -> ComposeResult:
        yield LiveText(id="alerts-title", classes="screen-title")
        yield LiveText(id="alerts-source", classes="screen-note")
        yield ListTable(
            [
                ("state", "state"),
                ("rule", "rule"),
                ("subject", "subject"),
                ("value", "value>"),
                ("threshold", "threshold>"),
                ("since", "for>"),
                ("message", "message"),
            ],
            id="alerts-table",
        )
        yield Label("Silences (Alertmanager)", classes="section-title")
        yield ListTable(
            [
                ("id", "id"),
                ("matchers", "matchers"),
                ("left", "until>"),
                ("by", "by"),
                ("comment", "comment"),
            ],
            id="silences-table",
        )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.dash, "alerts", self._redraw, init=False)
        self.watch(self.dash, "now", self._redraw, init=False)
        self._redraw()
        self.query_one("#alerts-table", ListTable).focus()

    def _redraw(self, *_: Any) -> None:
        snapshot: AlertsSnapshot | None = self.dash.alerts
        now = self.dash.now
        alerts = snapshot.alerts if snapshot else []
        silences = snapshot.silences if snapshot else []
        firing = sum(1 for a in alerts if a.firing and not a.silenced_by)
        pending = sum(1 for a in alerts if not a.firing)
        self.query_one("#alerts-title", LiveText).update(
            Content.from_markup(
                "[b]Alerts[/b]  $firing firing · $pending pending · $silences silences",
                firing=str(firing),
                pending=str(pending),
                silences=str(len(silences)),
            )
        )
        if snapshot is None:
            note = Content.styled("waiting for the first evaluation…", "dim")
        elif snapshot.source == "prometheus":
            note = Content.styled(
                "evaluated by the stack's Prometheus; silences from Alertmanager", "dim"
            )
        else:
            reason = snapshot.note or "Prometheus did not answer"
            note = Content.styled(
                f"LOCAL evaluation by this console ({reason}); no silences without Alertmanager",
                "$warning",
            )
        self.query_one("#alerts-source", LiveText).update(note)
        self._alerts = {}
        rows = []
        for alert in alerts:
            row = alert_row(alert, now)
            self._alerts[row.key] = alert
            rows.append(row)
        self.query_one("#alerts-table", ListTable).set_rows(rows)
        self._silences = {s.id: s for s in silences}
        self.query_one("#silences-table", ListTable).set_rows(
            [silence_row(s, now) for s in silences]
        )

    def selected_alert(self) -> Alert | None:
        key = self.query_one("#alerts-table", ListTable).cursor_key
        return self._alerts.get(key) if key else None

    def selected_silence(self) -> Silence | None:
        key = self.query_one("#silences-table", ListTable).cursor_key
        return self._silences.get(key) if key else None

    def _blocked(self, title: str) -> bool:
        reason = self.dash.write_block_reason()
        if (
            reason is None
            and self.dash.alerts is not None
            and self.dash.alerts.source != "prometheus"
        ):
            reason = "no Alertmanager answers: silences need the stack's monitoring"
        if reason:
            self.notify(reason, title=title, severity="warning")
            return True
        return False

    def action_silence(self) -> None:
        alert = self.selected_alert()
        if alert is None:
            self.notify("no alert selected", title="Silence", severity="warning")
            return
        if self._blocked("Silence"):
            return
        self._silence_flow(alert)

    def action_expire(self) -> None:
        silence = self.selected_silence()
        if silence is None:
            self.notify(
                "no silence selected (tab to the silences list)", title="Expire", severity="warning"
            )
            return
        if self._blocked("Expire silence"):
            return
        self._expire_flow(silence)

    @work(group="alerts-flow", exclusive=True, exit_on_error=False)
    async def _silence_flow(self, alert: Alert) -> None:
        from console.core.ops.table import OPERATIONS
        from console.ui.screens.confirm import ConfirmScreen
        from console.ui.screens.params import ParamsScreen

        spec = OPERATIONS["silence"]
        matchers = alert_matchers(alert)
        initial = silence_form_values(matchers)
        params = await self.app.push_screen_wait(ParamsScreen(spec, initial=initial))
        if params is None:
            return
        shown = ", ".join(f"{k}={v}" for k, v in matchers.items())
        body = Content.assemble(
            "Silence ",
            (shorten(shown, 200), "bold"),
            f" for {getattr(params, 'duration', '?')}. Notifications stop until then; "
            "the alert stays visible here, marked silenced.",
        )
        if await self.app.push_screen_wait(
            ConfirmScreen("Silence the alert?", body, confirm_label="Silence")
        ):
            self.dash.stack_app.start_operation("silence", params)

    @work(group="alerts-flow", exclusive=True, exit_on_error=False)
    async def _expire_flow(self, silence: Silence) -> None:
        from console.core.ops.table import OPERATIONS, parse_params
        from console.ui.screens.confirm import ConfirmScreen

        spec = OPERATIONS["silence-expire"]
        params = parse_params(spec, {"silence_id": silence.id})
        body = Content.assemble(
            "Expire the silence ",
            (silence.matchers, "bold"),
            f" by {silence.created_by}? Its alerts notify again.",
        )
        if await self.app.push_screen_wait(
            ConfirmScreen("Expire the silence?", body, confirm_label="Expire")
        ):
            self.dash.stack_app.start_operation("silence-expire", params)


def silence_form_values(matchers: dict[str, str]) -> dict[str, Any]:
    """The silence form's initial values for an alert's matchers."""
    extra = [f"{k}={v}" for k, v in matchers.items() if k != "alertname"]
    return {"alertname": matchers.get("alertname", ""), "matchers": extra, "duration": "1h"}
