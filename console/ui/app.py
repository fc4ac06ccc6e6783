"""The stackdeck TUI: live panels of one stack, and the operations on it.

Data flow (see docs/CONTRACT.md):

    Monitor (console.core) --sink(kind, payload)--> Messages (thread-safe post)
        --> App handlers set one typed reactive per kind
        --> panels bound with data_bind re-render in watch_snapshot

    key binding --> form / confirmation --> ops runner (async generator of OpEvent)
        --> OpProgress messages --> Operations panel

The app never blocks: the monitor runs in an async worker (its sources run
their own tasks and threads), operations and log streams run in workers,
and everything that reaches a widget goes through a message handler on the
UI thread.

Layout: a grid of panels at 120x32 and above; below that the same panel
widgets are shown one at a time behind a tab bar (so no widget state is
lost when the terminal is resized); below 60x20 a "terminal too small"
screen replaces the dashboard.

Key bindings (also on the ``?`` screen, generated from these):

| key | action | notes |
|---|---|---|
| ? | help | every binding, with the reason when one is disabled |
| : , ctrl+p | command palette | every action, operations included |
| / | filter | on the focused list: containers, stats, slow queries, events |
| l | logs | tail/follow/filter the selected container's log |
| 1-8, [ ] | panels | show a panel (tabs at small sizes) / focus it (grid) |
| d | deploy | form (version, strategy), then confirmation |
| b | rollback | confirmation |
| v | vacuum | confirmation; warns about long transactions |
| f | flush cache | scope, then confirmation; FLUSHDB needs the target typed |
| e | emergency limit | toggle, confirmation |
| r | restart | the selected service, confirmation |
| q | quit | |

The write bindings (d b v f e r) are disabled (greyed) while an operation
runs, and in read-only mode, where pressing them says why.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar, Protocol

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.content import Content
from textual.events import Key, Resize
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Tab, Tabs
from textual.worker import Worker, WorkerState

from console.core.config import Settings
from console.core.models import (
    AlertsSnapshot,
    ContainersSnapshot,
    CostSnapshot,
    DatabaseSnapshot,
    EventsSnapshot,
    HealthSnapshot,
    LogLine,
    OpEvent,
    QuotaSnapshot,
    Snapshot,
    SourceState,
    StatsSnapshot,
)
from console.ui.messages import OpProgress, SnapshotArrived, SourceChanged, StatsTick
from console.ui.panels import PANEL_CLASSES
from console.ui.panels.base import EPOCH, ContainerSelected, Panel
from console.ui.panels.containers import ContainersPanel
from console.ui.panels.cost import CostPanel
from console.ui.panels.database import LONG_QUERY_S, DatabasePanel
from console.ui.panels.events import EventsPanel
from console.ui.panels.health import HealthPanel
from console.ui.panels.operations import OperationsPanel
from console.ui.panels.quotas import QuotasPanel
from console.ui.panels.stats import StatsPanel
from console.ui.screens.confirm import ConfirmScreen, FlushScreen, TypedConfirmScreen
from console.ui.screens.deploy import DeployRequest, DeployScreen
from console.ui.screens.help import HelpScreen, HelpSection
from console.ui.screens.logs import LogsScreen
from console.ui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from console.ui.widgets.alerts import AlertsLine
from console.ui.widgets.chart import PlotextChart, begin_plotext_preload, preload_plotext
from console.ui.widgets.header import HeaderBar, serving_version

__all__ = [
    "GRID_MIN_HEIGHT",
    "GRID_MIN_WIDTH",
    "READ_ONLY_REASON",
    "WRITE_ACTIONS",
    "LogFollower",
    "MonitorFactory",
    "OpsRunner",
    "StackdeckApp",
    "create_app",
]

GRID_MIN_WIDTH = 120
"""Below this many columns the panels are tabs."""
GRID_MIN_HEIGHT = 32
"""Below this many rows the panels are tabs."""

READ_ONLY_REASON = "read-only mode: started with --read-only"

Sink = Callable[[str, Any], None]


class MonitorLike(Protocol):
    """What the app needs of ``console.core.monitor.Monitor``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


MonitorFactory = Callable[[Settings, Sink], MonitorLike]
"""Builds the monitor: ``Monitor(settings, sink)`` by default, a fake in tests."""

OpsRunner = Callable[..., AsyncIterator[OpEvent]]
"""``runner(name, ctx, **params)``: the step events of one operation
(``console.core.ops.run_op`` by default)."""

LogFollower = Callable[[Settings, str, int], AsyncIterator[LogLine]]
"""``follower(settings, container, tail)``: a container's log, tail then follow."""

Clock = Callable[[], datetime]

WRITE_ACTIONS: frozenset[str] = frozenset(
    {"deploy", "rollback", "vacuum", "flush_cache", "emergency", "restart"}
)
"""Actions that change the stack: confirmed, disabled while an op runs and in read-only mode."""

_DASHBOARD_ACTIONS = WRITE_ACTIONS | {"filter", "logs", "show_panel", "next_panel", "prev_panel"}

_KIND_TO_ATTR = {
    "containers": "containers",
    "health": "health",
    "stats": "stats",
    "database": "database",
    "quotas": "quotas",
    "cost": "cost",
    "alerts": "alerts",
    "events": "events",
}

OP_NAMES = {
    "deploy": "deploy",
    "rollback": "rollback",
    "vacuum": "vacuum",
    "flush_cache": "cache-flush",
    "emergency": "emergency-limit",
    "restart": "restart",
}
"""UI action -> ops engine operation name."""


GC_FREEZE_AFTER_S = 8.0
"""Seconds after mount when the long-lived objects are frozen out of the
garbage collector's passes (see ``on_mount``)."""
HANGUP_UNDO_TIMEOUT_S = 300.0
"""After SIGHUP, how long the cancelled operation may take to undo itself
(a deploy switching back, stopping the new colour) before the console exits."""


def _default_clock() -> datetime:
    return datetime.now().astimezone()


def _default_monitor_factory(settings: Settings, sink: Sink) -> MonitorLike:
    # Runs in a thread: also import what the sources would otherwise import on
    # the event loop at their first poll (asyncpg, redis: ~0.4 s together).
    import asyncpg  # noqa: F401
    import redis.asyncio  # noqa: F401

    from console.core.monitor import Monitor

    monitor: MonitorLike = Monitor(settings, sink)
    return monitor


def _default_ops_runner(name: str, ctx: Any, **params: Any) -> AsyncIterator[OpEvent]:
    from console.core.ops import run_op

    runner: AsyncIterator[OpEvent] = run_op(name, ctx, **params)
    return runner


def _default_log_follower(settings: Settings, container: str, tail: int) -> AsyncIterator[LogLine]:
    from console.core.sources.engine import follow_logs

    return follow_logs(container, tail=tail, settings=settings)


class StackdeckApp(App[None]):
    """The operations console. Build it with :func:`create_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "stackdeck"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        # Footer order: at 80 columns the first ones stay visible.
        Binding("question_mark", "help", "Help", id="help", tooltip="Every key binding"),
        Binding(
            "q",
            "quit",
            "Quit",
            id="quit",
            tooltip="Leave stackdeck (asks first while an operation runs)",
        ),
        Binding(
            "d",
            "deploy",
            "Deploy",
            id="deploy",
            tooltip="Deploy a version: form (version, strategy), then confirmation",
        ),
        Binding(
            "b",
            "rollback",
            "Rollback",
            id="rollback",
            tooltip="Roll back to the previous version (confirmation)",
        ),
        Binding(
            "v",
            "vacuum",
            "Vacuum",
            id="vacuum",
            tooltip="VACUUM (ANALYZE) the database (confirmation)",
        ),
        Binding(
            "f",
            "flush_cache",
            "Flush",
            id="flush_cache",
            tooltip="Flush cache keys; FLUSHDB needs the target's name typed",
        ),
        Binding(
            "e",
            "emergency",
            "Emergency",
            id="emergency",
            tooltip="Turn the emergency rate limit on or off (confirmation)",
        ),
        Binding(
            "r",
            "restart",
            "Restart",
            id="restart",
            tooltip="Restart the selected service (confirmation)",
        ),
        Binding(
            "l", "logs", "Logs", id="logs", tooltip="Tail and follow the selected container's log"
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="filter",
            tooltip="Filter the focused list: containers, stats, slow queries, events",
        ),
        Binding(
            "colon",
            "command_palette",
            "Cmds",
            id="commands",
            tooltip="Command palette: every action by name (also ctrl+p)",
        ),
        Binding(
            "left_square_bracket",
            "prev_panel",
            "Prev panel",
            show=False,
            id="panel.prev",
            tooltip="Previous panel (tab)",
        ),
        Binding(
            "right_square_bracket",
            "next_panel",
            "Next panel",
            show=False,
            id="panel.next",
            tooltip="Next panel (tab)",
        ),
        *[
            Binding(
                str(cls.NUMBER),
                f"show_panel('{cls.PANEL_ID}')",
                cls.TITLE,
                show=False,
                id=f"panel.{cls.NUMBER}",
                tooltip=f"Show the {cls.TITLE} panel",
            )
            for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER)
        ],
    ]

    # --- state: one typed reactive per snapshot kind --------------------------

    containers: var[ContainersSnapshot | None] = var(None, init=False)
    """Containers of the compose project and the serving colour."""
    health: var[HealthSnapshot | None] = var(None, init=False)
    """Health endpoints through nginx and per colour."""
    stats: var[StatsSnapshot | None] = var(None, init=False)
    """Docker stats of every running container."""
    database: var[DatabaseSnapshot | None] = var(None, init=False)
    """Slow queries, sessions, size, dead tuples."""
    quotas: var[QuotaSnapshot | None] = var(None, init=False)
    """Provider quotas and the emergency flag."""
    cost: var[CostSnapshot | None] = var(None, init=False)
    """Cost projection."""
    alerts: var[AlertsSnapshot | None] = var(None, init=False)
    """Evaluated alert rules."""
    events: var[EventsSnapshot | None] = var(None, init=False)
    """Engine event timeline."""
    sources: var[dict[str, SourceState]] = var(dict, init=False)
    """Liveness of every source, by source name."""
    now: var[datetime] = var(EPOCH, init=False)
    """The clock, ticking once a second (injected in tests)."""
    selected_container: var[str | None] = var(None, init=False)
    """Container under the cursor in Containers or Stats (logs, restart, chart)."""
    op_running: var[str | None] = var(None, init=False, bindings=True)
    """The operation in progress; the write bindings are greyed while set."""
    read_only: var[bool] = var(False, init=False, bindings=True)
    """Read-only mode: write bindings disabled for the whole session."""
    compact: var[bool] = var(False, init=False)
    """True below GRID_MIN_WIDTH x GRID_MIN_HEIGHT: one panel at a time, with tabs."""
    active_panel: var[str] = var("containers", init=False)
    """The panel shown in compact mode (and the last one jumped to)."""

    def __init__(
        self,
        settings: Settings,
        *,
        monitor_factory: MonitorFactory | None = None,
        clock: Clock | None = None,
        ops_runner: OpsRunner | None = None,
        log_follower: LogFollower | None = None,
        hostname: str | None = None,
        preload: bool = True,
    ) -> None:
        super().__init__()
        self._preload = preload
        self.settings = settings
        self._monitor_factory = monitor_factory or _default_monitor_factory
        self._clock: Clock = clock or _default_clock
        self._ops_runner = ops_runner
        self._log_follower = log_follower or _default_log_follower
        self.hostname = hostname or socket.gethostname()
        self._monitor: MonitorLike | None = None
        self._op_context: Any = None
        self._mounted = False
        self.set_reactive(StackdeckApp.read_only, bool(settings.read_only))
        self.set_reactive(StackdeckApp.now, self._clock())

    # --- composition -------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.settings.project, self.hostname).data_bind(
            containers=StackdeckApp.containers,
            health=StackdeckApp.health,
            alerts=StackdeckApp.alerts,
            now=StackdeckApp.now,
            op_running=StackdeckApp.op_running,
            read_only=StackdeckApp.read_only,
        )
        yield AlertsLine().data_bind(
            alerts=StackdeckApp.alerts, sources=StackdeckApp.sources, now=StackdeckApp.now
        )
        yield Tabs(
            *[
                Tab(f"{cls.NUMBER} {cls.SHORT}", id=f"tab-{cls.PANEL_ID}")
                for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER)
            ],
            id="panel-tabs",
        )
        refresh = self.settings.refresh
        alerts = self.settings.alerts

        def stale_after(interval: float) -> float:
            return max(3 * interval, interval + 10.0)

        bind = {"sources": StackdeckApp.sources, "now": StackdeckApp.now}
        with Container(id="dashboard"):
            with Horizontal(id="columns"):
                with Vertical(id="left", classes="column"):
                    yield ContainersPanel(stale_after=stale_after(refresh.containers)).data_bind(
                        snapshot=StackdeckApp.containers, **bind
                    )
                    yield StatsPanel(
                        stale_after=stale_after(refresh.stats),
                        cpu_alert=alerts.cpu.threshold,
                        mem_alert=alerts.memory.threshold,
                    ).data_bind(
                        snapshot=StackdeckApp.stats,
                        selected=StackdeckApp.selected_container,
                        **bind,
                    )
                    yield DatabasePanel(stale_after=stale_after(refresh.database)).data_bind(
                        snapshot=StackdeckApp.database, **bind
                    )
                with Vertical(id="right", classes="column"):
                    yield HealthPanel(stale_after=stale_after(refresh.health)).data_bind(
                        snapshot=StackdeckApp.health, **bind
                    )
                    yield QuotasPanel(stale_after=stale_after(refresh.quotas)).data_bind(
                        snapshot=StackdeckApp.quotas, **bind
                    )
                    yield CostPanel(stale_after=stale_after(refresh.cost)).data_bind(
                        snapshot=StackdeckApp.cost, **bind
                    )
                    yield EventsPanel().data_bind(snapshot=StackdeckApp.events, **bind)
            yield OperationsPanel().data_bind(
                running=StackdeckApp.op_running, read_only=StackdeckApp.read_only, **bind
            )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._mounted = True
        self.now = self._clock()
        self.set_interval(1.0, self._tick, name="clock")
        self._apply_size(self.size.width, self.size.height)
        self._show_active_panel()
        self.query_one(ContainersPanel).focus_default()
        self._start_monitor()
        self._watch_hangup()
        # Once the dashboard is up, the objects that live as long as the app
        # (Textual's DOM and styles, pydantic's schemas, imported modules) are
        # taken out of the garbage collector's full passes: those passes
        # walked all of them and stalled the event loop ~100 ms every few
        # seconds (bench: "largest loop stall"). Now, after the first frame,
        # and again once the lazily imported modules (plotext, asyncpg, redis,
        # docker) and the first snapshots are in.
        if self._preload:
            self.call_after_refresh(gc.freeze)
            self.set_timer(GC_FREEZE_AFTER_S, gc.freeze, name="gc-freeze")
        if self._preload and begin_plotext_preload():
            self.call_after_refresh(
                self.run_worker, preload_plotext, thread=True, group="preload", exit_on_error=False
            )

    def _tick(self) -> None:
        self.now = self._clock()

    # --- panels and layout -------------------------------------------------

    @property
    def panels(self) -> list[Panel]:
        return list(self.query(Panel))

    def panel(self, panel_id: str) -> Panel:
        return self.query_one(f"#{panel_id}", Panel)

    def _ordered_panel_ids(self) -> list[str]:
        return [cls.PANEL_ID for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER)]

    def on_resize(self, event: Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        too_small = width < MIN_WIDTH or height < MIN_HEIGHT
        if too_small:
            if isinstance(self.screen, TooSmallScreen):
                self.screen.update_size(width, height)
            else:
                self.push_screen(TooSmallScreen(id="too-small"))
        elif isinstance(self.screen, TooSmallScreen):
            self.pop_screen()
        self.compact = width < GRID_MIN_WIDTH or height < GRID_MIN_HEIGHT

    def watch_compact(self, compact: bool) -> None:
        self.query_one("#dashboard").set_class(compact, "-compact")
        self.query_one("#panel-tabs").display = compact
        self._show_active_panel()

    def watch_active_panel(self) -> None:
        self._show_active_panel()

    def _show_active_panel(self) -> None:
        if not self._mounted:
            return
        active = self.panel(self.active_panel)
        for panel in self.panels:
            panel.set_class(panel is active, "-active")
        # In compact mode only the containers on the way to the active panel are shown.
        for container in self.query("#columns, .column"):
            container.set_class(active in container.walk_children(), "-holds-active")
        tabs = self.query_one("#panel-tabs", Tabs)
        tab_id = f"tab-{self.active_panel}"
        if tabs.active != tab_id:
            tabs.active = tab_id

    @on(Tabs.TabActivated, "#panel-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        tab_id = event.tab.id or ""
        if tab_id.startswith("tab-"):
            self.active_panel = tab_id.removeprefix("tab-")

    def action_show_panel(self, panel_id: str) -> None:
        self.active_panel = panel_id
        panel = self.panel(panel_id)
        if not panel.focus_default():
            # Nothing to focus in it: drop the focus so keys like / refer to this panel.
            self.screen.set_focus(None)

    def _step_panel(self, step: int) -> None:
        ids = self._ordered_panel_ids()
        index = ids.index(self.active_panel) if self.active_panel in ids else 0
        self.action_show_panel(ids[(index + step) % len(ids)])

    def action_next_panel(self) -> None:
        self._step_panel(1)

    def action_prev_panel(self) -> None:
        self._step_panel(-1)

    def watch_sources(self) -> None:
        """Mark tabs of stale panels (the grid shows it in each border)."""
        for panel in self.panels:
            # a source that changes while the app is shutting down (its
            # widgets already removed) has no tab left to mark
            tab = next(iter(self.query(f"#tab-{panel.id}").results(Tab)), None)
            if tab is None:
                continue
            stale = panel.failing_source(self.sources) is not None
            tab.set_class(stale, "-stale")
            base = f"{panel.NUMBER} {panel.SHORT}"
            tab.label = f"{base}!" if stale else base

    # --- monitor -------------------------------------------------------------

    def _sink(self, kind: str, payload: Any) -> None:
        """Called by the monitor from its tasks or threads: post, never touch widgets."""
        if kind == "stats" and isinstance(payload, StatsSnapshot):
            self.post_message(StatsTick(payload))
        elif kind == "source" and isinstance(payload, SourceState):
            self.post_message(SourceChanged(payload))
        elif isinstance(payload, Snapshot):
            self.post_message(SnapshotArrived(kind, payload))

    @work(group="monitor", exclusive=True, exit_on_error=False)
    async def _start_monitor(self) -> None:
        # Built in a thread: constructing sources must never stall the first frame.
        self._monitor = await asyncio.to_thread(self._monitor_factory, self.settings, self._sink)
        await self._monitor.start()

    async def _stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                await monitor.stop()
            except Exception as exc:  # shutting down: report, never hang the exit
                self.log.error(f"monitor stop failed: {exc}")

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        attr = _KIND_TO_ATTR.get(message.kind)
        if attr is not None:
            setattr(self, attr, message.snapshot)

    def on_stats_tick(self, message: StatsTick) -> None:
        self.stats = message.snapshot

    def on_source_changed(self, message: SourceChanged) -> None:
        self.sources = {**self.sources, message.state.name: message.state}

    @on(ContainerSelected)
    def _container_selected(self, message: ContainerSelected) -> None:
        self.selected_container = message.container

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "preload" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR):
            for chart in self.query(PlotextChart):
                chart.refresh()
        elif worker.group == "monitor" and event.state == WorkerState.ERROR:
            reason = str(worker.error) or type(worker.error).__name__
            self.sources = {
                **self.sources,
                "monitor": SourceState(name="monitor", ok=False, last_error=reason),
            }
            self.notify(f"monitor failed: {reason}", severity="error", timeout=10)
        elif worker.group == "ops" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            name = self.op_running or worker.name
            if event.state == WorkerState.ERROR:
                error = worker.error
                self._op_failed(name, f"{type(error).__name__}: {error}")
            elif event.state == WorkerState.CANCELLED:
                self._op_failed(name, "cancelled")
            self.op_running = None

    # --- a dropped SSH session ----------------------------------------------------

    def _watch_hangup(self) -> None:
        """SIGHUP (the SSH session dropped) cancels a running operation the
        way Ctrl-C cancels the CLI's: the deploy switches traffic back, the
        VACUUM is cancelled on the server, the lock is released; then the
        console exits. Without this the process died mid-operation."""
        import signal

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hung_up)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            return
        self._hangup_handler = True

    def _unwatch_hangup(self) -> None:
        import signal

        if getattr(self, "_hangup_handler", False):
            self._hangup_handler = False
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _hung_up(self) -> None:
        if getattr(self, "_hanging_up", False):
            return
        self._hanging_up = True
        # kept: the loop holds only a weak reference to a task
        self._hangup_task = asyncio.get_running_loop().create_task(self._finish_after_hangup())

    async def _finish_after_hangup(self) -> None:
        for worker in [w for w in self.workers if w.group == "ops" and w.is_running]:
            worker.cancel()
            try:
                # the operation's own undo runs to its end (bounded by its steps)
                await asyncio.wait_for(worker.wait(), timeout=HANGUP_UNDO_TIMEOUT_S)
            except Exception as exc:  # cancelled, failed, or too slow: exit anyway
                self.log.error(f"after SIGHUP: {worker.name}: {type(exc).__name__}: {exc}")
        await self._stop_monitor()
        self.exit(return_code=129)

    async def action_quit(self) -> None:
        if self.op_running:

            async def decided(confirmed: bool | None) -> None:
                if confirmed:
                    await self._stop_monitor()
                    self.exit()

            self.push_screen(
                ConfirmScreen(
                    f"{self.op_running} is running. Quit anyway?",
                    "Quitting cancels the operation where it stands; "
                    "`stackdeck status` explains the state it leaves.",
                    confirm_label="Quit",
                    destructive=True,
                ),
                decided,
            )
            return
        await self._stop_monitor()
        self.exit()

    async def on_unmount(self) -> None:
        self._unwatch_hangup()
        await self._stop_monitor()

    # --- bindings: enabled / disabled ------------------------------------------

    def _on_dashboard(self) -> bool:
        return len(self.screen_stack) <= 1 or self.screen is self.screen_stack[0]

    def write_block_reason(self) -> str | None:
        """Why write actions are disabled right now, or None."""
        if self.read_only:
            return READ_ONLY_REASON
        if self.op_running:
            return f"{self.op_running} is running: wait for it to finish"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _DASHBOARD_ACTIONS and not self._on_dashboard():
            return False
        if action in WRITE_ACTIONS and self.write_block_reason() is not None:
            return None  # shown greyed in the footer
        return True

    def on_key(self, event: Key) -> None:
        """A disabled write key falls through to here: say why it did nothing."""
        if not self._on_dashboard():
            return
        for binding in self._bindings_for_key(event.key):
            if binding.action in WRITE_ACTIONS:
                reason = self.write_block_reason()
                if reason:
                    self.notify(reason, title=binding.description, severity="warning")
                    event.stop()
                return

    def _bindings_for_key(self, key: str) -> Iterable[Binding]:
        return self._bindings.key_to_bindings.get(key, ())

    def _blocked(self, action: str) -> bool:
        """For callers outside the binding system (palette): notify and refuse."""
        reason = self.write_block_reason() if action in WRITE_ACTIONS else None
        if reason:
            self.notify(reason, severity="warning")
            return True
        return False

    # --- read-only actions -------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(
            HelpScreen(
                self.help_sections(),
                key_display=self.get_key_display,
                disabled_reason=lambda b: (
                    self.write_block_reason() if b.action in WRITE_ACTIONS else None
                ),
            )
        )

    def help_sections(self) -> list[HelpSection]:
        from console.ui.panels.base import FilterBar
        from console.ui.screens.confirm import ConfirmScreen as _Confirm

        operations = [
            b for b in self.BINDINGS if isinstance(b, Binding) and b.action in WRITE_ACTIONS
        ]
        general = [
            b for b in self.BINDINGS if isinstance(b, Binding) and b.action not in WRITE_ACTIONS
        ]
        palette = [
            Binding(
                self.COMMAND_PALETTE_BINDING,
                "command_palette",
                "Commands",
                tooltip="Command palette (same as :)",
            ),
        ]
        return [
            ("Operations (confirmed; disabled while one runs and in read-only mode)", operations),
            ("Navigation and views", general + palette),
            ("Filter bar", FilterBar.BINDINGS),
            ("Log view", LogsScreen.BINDINGS),
            ("Confirmation", _Confirm.BINDINGS),
            (
                "Deploy form and typed confirmation",
                [
                    Binding(
                        "enter", "submit", "Submit", tooltip="Validate the version, then confirm"
                    ),
                    *DeployScreen.BINDINGS,
                    *TypedConfirmScreen.BINDINGS,
                ],
            ),
        ]

    def _focused_panel(self) -> Panel | None:
        node = self.focused
        while node is not None:
            if isinstance(node, Panel):
                return node
            node = node.parent  # type: ignore[assignment]
        return None

    def action_filter(self) -> None:
        panel = self._focused_panel()
        if panel is None:
            panel = self.panel(self.active_panel)
        if panel is None or not panel.FILTERABLE:
            self.notify(
                "filter works on Containers (1), Stats (3), Slow queries (4) and Events (7): "
                "go to one of them first",
                severity="information",
            )
            return
        panel.open_filter()

    def _selected(self) -> str | None:
        """The selected container: the last one highlighted, else the containers cursor."""
        if self.selected_container:
            return self.selected_container
        table = self.query_one(ContainersPanel).table
        return table.cursor_key if table is not None else None

    def action_logs(self) -> None:
        container = self._selected()
        if container is None:
            self.notify("no container selected (Containers panel, 1)", severity="warning")
            return

        def source() -> AsyncIterator[LogLine]:
            return self._log_follower(self.settings, container, 200)

        self.push_screen(LogsScreen(container, source, clock=self._clock))

    # --- operations ----------------------------------------------------------------

    def _ops_context(self) -> Any:
        if self._op_context is None:
            try:
                from console.core.ops.context import OpContext

                self._op_context = OpContext.from_settings(
                    self.settings, read_only=bool(self.settings.read_only)
                )
            except Exception as exc:
                if self._ops_runner is None:
                    raise
                self.log.warning(f"no OpContext ({exc}); passing None to the injected runner")
        return self._op_context

    def start_operation(self, action: str, **params: Any) -> None:
        """Run an operation (after its confirmation); progress goes to the ops log."""
        if self._blocked(action):
            return
        name = OP_NAMES[action]
        self.op_running = name
        self._run_operation(name, params)

    @work(group="ops", exclusive=True, exit_on_error=False)
    async def _run_operation(self, name: str, params: dict[str, Any]) -> None:
        runner = self._ops_runner or _default_ops_runner
        ctx = self._ops_context()
        async for event in runner(name, ctx, **params):
            self.post_message(OpProgress(event))

    def on_op_progress(self, message: OpProgress) -> None:
        self.query_one(OperationsPanel).add_event(message.event, self._clock())
        event = message.event
        if event.status == "done":
            self.notify(event.message or f"{event.op} done", title=event.op)
        elif event.status == "fail" and event.step == "result":
            self.notify(event.message or f"{event.op} failed", title=event.op, severity="error")

    def _op_failed(self, name: str, reason: str) -> None:
        event = OpEvent(at=self._clock(), op=name, step="result", status="fail", message=reason)
        self.post_message(OpProgress(event))

    def _confirm(self, action: str, screen: ConfirmScreen, **params: Any) -> None:
        def done(confirmed: bool | None) -> None:
            if confirmed:
                self.start_operation(action, **params)

        self.push_screen(screen, done)

    def _serving_and_idle(self) -> tuple[str | None, str | None]:
        """``green v1.2.3`` and ``blue v1.2.2`` from the container list."""
        colour, version = serving_version(self.containers, self.health)
        serving = " ".join(p for p in (colour, version) if p) or None
        idle = None
        if self.containers is not None and colour:
            for info in self.containers.containers:
                if info.colour and info.colour != colour:
                    idle = " ".join(p for p in (info.colour, info.version, f"({info.state})") if p)
                    break
        return serving, idle

    def action_deploy(self) -> None:
        if self._blocked("deploy"):
            return
        serving, idle = self._serving_and_idle()

        def confirm(request: DeployRequest | None) -> None:
            if request is None:
                return
            body = Content.assemble(
                "Deploy ",
                (request.version, "bold"),
                f" to {self.settings.project} with the ",
                (request.strategy, "bold"),
                " strategy.\n",
                (
                    "The idle colour starts, is verified, then nginx switches to it; "
                    "failures switch back automatically."
                    if request.strategy == "blue-green"
                    else "Services are recreated one at a time, health checked between them."
                ),
            )
            self._confirm(
                "deploy",
                ConfirmScreen(f"Deploy {request.version}?", body, confirm_label="Deploy"),
                version=request.version,
                strategy=request.strategy,
            )

        self.push_screen(DeployScreen(self.settings.project, serving, idle), confirm)

    def action_rollback(self) -> None:
        if self._blocked("rollback"):
            return
        serving, idle = self._serving_and_idle()
        body = "Switch traffic back to the previous version"
        if serving and idle:
            body += f": {serving} → {idle}"
        body += ". Instant when the old colour still exists."
        self._confirm(
            "rollback",
            ConfirmScreen("Roll back?", body, confirm_label="Roll back", destructive=True),
        )

    def action_vacuum(self) -> None:
        if self._blocked("vacuum"):
            return
        warning = None
        if self.database is not None:
            long = [s for s in self.database.sessions if (s.duration_s or 0) >= LONG_QUERY_S]
            if long:
                oldest = max(long, key=lambda s: s.duration_s or 0)
                warning = (
                    f"{len(long)} transaction(s) running for a long time (pid {oldest.pid}): "
                    "VACUUM cannot remove tuples they may still see"
                )
        self._confirm(
            "vacuum",
            ConfirmScreen(
                "VACUUM (ANALYZE) all tables?",
                "Runs outside a transaction; progress is shown in the Operations panel.",
                confirm_label="Vacuum",
                warning=warning,
            ),
        )

    def _redis_target(self) -> str:
        if self.containers is not None:
            for info in self.containers.containers:
                if info.service in ("redis", "cache"):
                    return info.name
        return self.settings.container_name("redis")

    def action_flush_cache(self) -> None:
        if self._blocked("flush_cache"):
            return
        target = self._redis_target()

        def scoped(scope: str | None) -> None:
            if scope == "prefix":
                self._confirm(
                    "flush_cache",
                    ConfirmScreen(
                        "Flush cache keys?",
                        f"Removes the cache:* keys of {target} (SCAN + UNLINK). "
                        "Quota counters and the emergency flag are kept.",
                        confirm_label="Flush",
                    ),
                )
            elif scope == "all":

                def typed(confirmed: bool | None) -> None:
                    if confirmed:
                        self.start_operation("flush_cache", all=True, confirm=target)

                self.push_screen(
                    TypedConfirmScreen(
                        "FLUSHDB: remove every key?",
                        Content.assemble(
                            "Every key of ",
                            (target, "bold"),
                            " is deleted with FLUSHDB. The quota counters and the emergency "
                            "flag are saved first and restored right after.",
                        ),
                        expected=target,
                    ),
                    typed,
                )

        self.push_screen(FlushScreen(target), scoped)

    def action_emergency(self) -> None:
        if self._blocked("emergency"):
            return
        current = bool(self.quotas and self.quotas.emergency_limit)
        turn_on = not current
        self._confirm(
            "emergency",
            ConfirmScreen(
                f"Turn the emergency rate limit {'ON' if turn_on else 'OFF'}?",
                "No outbound provider calls for an hour (TTL 3600 s), or until it is turned off."
                if turn_on
                else "Provider calls resume within their normal quotas.",
                confirm_label="Turn on" if turn_on else "Turn off",
                destructive=turn_on,
            ),
            state="on" if turn_on else "off",
        )

    def action_restart(self) -> None:
        if self._blocked("restart"):
            return
        container = self._selected()
        service = None
        if container and self.containers is not None:
            for info in self.containers.containers:
                if info.name == container:
                    service = info.service
        if service is None:
            self.notify("select a container first (Containers panel, 1)", severity="warning")
            return
        self._confirm(
            "restart",
            ConfirmScreen(
                f"Restart {service}?",
                f"Restarts container {container}. Requests it serves fail while it restarts.",
                confirm_label="Restart",
                destructive=True,
            ),
            service=service,
        )

    # --- command palette -------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        def write(action: str, title: str, help_text: str) -> SystemCommand:
            reason = self.write_block_reason()
            suffix = f" (disabled: {reason})" if reason else ""
            return SystemCommand(title, help_text + suffix, getattr(self, f"action_{action}"))

        if self._on_dashboard():
            yield write(
                "deploy", "Deploy a version", "Form: version and strategy, then confirmation"
            )
            yield write("rollback", "Roll back", "Switch back to the previous version")
            yield write("vacuum", "VACUUM (ANALYZE)", "Reclaim dead tuples in the database")
            yield write(
                "flush_cache", "Flush cache", "cache:* keys, or FLUSHDB with a typed confirmation"
            )
            yield write("emergency", "Toggle emergency rate limit", "On/off with TTL")
            yield write(
                "restart", "Restart selected service", "docker restart of the selected container"
            )
            yield SystemCommand(
                "Logs of selected container", "Tail, follow, filter", self.action_logs
            )
            yield SystemCommand("Filter list", "Filter the focused list", self.action_filter)
            for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER):
                yield SystemCommand(
                    f"Show {cls.TITLE}",
                    f"Key {cls.NUMBER}",
                    lambda pid=cls.PANEL_ID: self.action_show_panel(pid),
                )
        yield SystemCommand("Help: keys", "Every key binding", self.action_help)
        yield from super().get_system_commands(screen)


def create_app(
    settings: Settings,
    *,
    monitor_factory: MonitorFactory | None = None,
    clock: Clock | None = None,
    ops_runner: OpsRunner | None = None,
    log_follower: LogFollower | None = None,
    hostname: str | None = None,
    preload: bool = True,
) -> StackdeckApp:
    """The app factory used by the CLI, ``python -m console.ui`` and the tests.

    - ``monitor_factory(settings, sink)``: default ``console.core.monitor.Monitor``.
    - ``clock()``: timezone-aware now; the header clock and every age use it.
    - ``ops_runner(name, ctx, **params)``: default ``console.core.ops.run_op``.
    - ``log_follower(settings, container, tail)``: default the engine's ``follow_logs``.
    - ``hostname``: shown in the header (default: this machine's name).
    - ``preload``: import plotext in a thread after the first frame (charts
      draw sparklines until then) and freeze the long-lived objects out of
      the garbage collector's passes; off for tests that need exact frames
      or create many apps in one process (frozen objects are never freed).
    """
    return StackdeckApp(
        settings,
        monitor_factory=monitor_factory,
        clock=clock,
        ops_runner=ops_runner,
        log_follower=log_follower,
        hostname=hostname,
        preload=preload,
    )
