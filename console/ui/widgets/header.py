"""The top line: project @ host, serving colour and version, alert count, clock."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import var

from console.core.colours import serving_colour
from console.core.models import AlertsSnapshot, ContainersSnapshot, HealthSnapshot
from console.ui.panels.base import EPOCH
from console.ui.widgets.text import LiveText

__all__ = ["HeaderBar", "serving_version"]


def serving_version(
    containers: ContainersSnapshot | None, health: HealthSnapshot | None
) -> tuple[str | None, str | None]:
    """(colour, version) that nginx serves: from the container list, else from
    what ``/api/health`` through nginx reported."""
    colour: str | None = serving_colour(containers, health)
    version = None
    if containers and colour:
        for info in containers.containers:
            if info.colour == colour and info.version:
                version = info.version
                break
    if health is not None:
        for result in health.results:
            if result.target == "nginx" and result.path == "/api/health" and result.version:
                version = version or result.version
                break
    return colour, version


class HeaderBar(Horizontal):
    """``stackdeck · investment @ host · serving green v1.2.3 · 2 alerts   14:02:11``."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; }
    HeaderBar > .left { width: 1fr; height: 1; }
    HeaderBar > .clock { width: 8; height: 1; }
    """

    containers: var[ContainersSnapshot | None] = var(None, init=False)
    """Bound to the app: for the serving colour and version."""
    health: var[HealthSnapshot | None] = var(None, init=False)
    """Bound to the app: fallback source of the served version."""
    alerts: var[AlertsSnapshot | None] = var(None, init=False)
    """Bound to the app: the alert count."""
    now: var[datetime] = var(EPOCH, init=False)
    """Bound to the app's clock."""
    op_running: var[str | None] = var(None, init=False)
    """Bound to the app: the operation in progress."""
    read_only: var[bool] = var(False, init=False)
    """Bound to the app: read-only mode is shown in the header."""

    def __init__(self, project: str, host: str) -> None:
        super().__init__(id="header")
        self.project = project
        self.host = host

    def compose(self) -> ComposeResult:
        yield LiveText(classes="left")
        yield LiveText(classes="clock")

    def on_mount(self) -> None:
        self._redraw()

    def _watch_any(self) -> None:
        self._redraw()

    watch_containers = watch_health = watch_alerts = watch_op_running = watch_read_only = _watch_any

    def watch_now(self) -> None:
        if self.is_mounted:
            clock = "--:--:--" if self.now == EPOCH else self.now.strftime("%H:%M:%S")
            self.query_one(".clock", LiveText).update(clock)

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        colour, version = serving_version(self.containers, self.health)
        parts: list[str | tuple[str, str]] = [
            ("stackdeck", "bold"),
            " · ",
            (self.project, "bold"),
            f" @ {self.host}",
        ]
        if colour or version:
            parts += [" · serving "]
            if colour:
                parts.append((colour, f"bold {'$primary' if colour == 'blue' else '$success'}"))
            if version:
                parts.append(f" {version}")
        elif self.containers is not None and self.containers.containers:
            parts.append((" · serving ?", "$warning"))
        elif self.containers is not None:
            parts.append((" · no containers", "$warning"))
        if self.alerts is not None:
            loud = [a for a in self.alerts.alerts if not a.silenced_by]
            firing = sum(1 for a in loud if a.firing)
            pending = len(loud) - firing
            if firing:
                parts.append(" · ")
                parts.append((f"{firing} alert{'s' if firing != 1 else ''}", "$error bold reverse"))
            else:
                parts.append((" · no alerts", "dim"))
            if pending:
                parts.append((f" (+{pending} pending)", "dim"))
        if self.op_running:
            parts += [" · ", (f"⟳ {self.op_running}", "$accent bold")]
        if self.read_only:
            parts += [" · ", ("READ-ONLY", "$warning bold reverse")]
        self.query_one(".left", LiveText).update(Content.assemble(*parts))
        self.watch_now()
