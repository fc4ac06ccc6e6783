"""The top line: project @ host, serving colour and version, alert count,
another operator's deploy lock, clock."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import var

from console.core.colours import serving_colour
from console.core.models import (
    AlertsSnapshot,
    ContainersSnapshot,
    HealthSnapshot,
    LockInfo,
    OtherOpsSnapshot,
)
from console.ui.format import fmt_duration, fmt_time, seconds_between
from console.ui.panels.base import EPOCH
from console.ui.widgets.text import LiveText

__all__ = ["HeaderBar", "lock_reason", "lock_summary", "serving_version"]


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


NARROW = 100
"""Below this many columns the header leaves out the product's name while
another operator's lock is shown."""

LOCK_HINT = "`stackdeck lock show`, then `stackdeck lock break`"
"""What to do about a stale lock (the CLI's commands)."""


def _gone(lock: LockInfo) -> str:
    pid = lock.holder.pid if lock.holder.pid is not None else "?"
    return f"pid {pid} gone" if lock.alive is False else f"pid {pid} no longer holds it"


def lock_summary(lock: LockInfo, now: datetime) -> str:
    """The header's words for another operator's lock:
    ``lock: deploy by alice@host2 (cli) 1m12s``, or
    ``lock: STALE deploy by alice@host2 (cli), pid 4242 gone: stackdeck lock show``."""
    if lock.stale:
        return f"lock: STALE {lock.op} by {lock.holder.who}, {_gone(lock)}: stackdeck lock show"
    age = f" {fmt_duration(seconds_between(now, lock.started))}" if lock.started is not None else ""
    return f"lock: {lock.op} by {lock.holder.who}{age}"


def lock_reason(lock: LockInfo, now: datetime) -> str:
    """Why a lock-taking key is greyed: ``deploy in progress by
    alice@host2 (cli) since 14:02:11`` (pid and SSH client too), or how to
    clear a stale lock."""
    holder = lock.holder
    since = f" since {fmt_time(lock.started, now)}" if lock.started is not None else ""
    if lock.stale:
        return (
            f"stale deploy lock: {lock.op} by {holder.who}{since} was interrupted "
            f"({_gone(lock)}); see {LOCK_HINT}"
        )
    where = f" from {holder.ssh_client}" if holder.ssh_client else ""
    pid = f", pid {holder.pid}" if holder.pid is not None else ""
    return f"{lock.op} in progress by {holder.who}{since}{where}{pid}: wait for it to finish"


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
    others: var[OtherOpsSnapshot | None] = var(None, init=False)
    """Bound to the app: the deploy lock another operator holds."""

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
    watch_others = _watch_any

    def watch_now(self) -> None:
        if self.others is not None and self.others.lock is not None:
            self._redraw()  # the lock's age moves with the clock
        else:
            self._draw_clock()

    def _draw_clock(self) -> None:
        if self.is_mounted:
            clock = "--:--:--" if self.now == EPOCH else self.now.strftime("%H:%M:%S")
            self.query_one(".clock", LiveText).update(clock)

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        colour, version = serving_version(self.containers, self.health)
        lock = self.others.lock if self.others is not None else None
        parts: list[str | tuple[str, str]] = [
            ("stackdeck", "bold"),
            " · ",
            (self.project, "bold"),
            f" @ {self.host}",
        ]
        if lock is not None:
            # Another operator's lock comes first: at 80 columns it is what
            # must stay visible (the alerts line below has the alerts), and
            # the product's name makes room for it.
            if self.app.size.width < NARROW:
                parts = parts[2:]
            parts += [
                " · ",
                (lock_summary(lock, self.now), "$error bold" if lock.stale else "$warning bold"),
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
        self._draw_clock()
