"""The dashboard: the panels of one stack, their layout, and the keys on them.

The screen owns what the panels show (one typed reactive per snapshot kind,
bound to the panels with ``data_bind``), the layout (a grid at 120x32 and
above, one panel at a time behind a tab bar below that) and the dashboard's
keys. Keys bound here are inactive while a dialog is open on top, so no key
needs gating against the screen it is pressed on.

Operation keys come from the table of operations
(:data:`console.core.ops.table.OPERATIONS`): an operation with a ``key``
gets a binding ``op('<name>')``; every operation is also in the command
palette (``console.ui.commands``). Pressing one runs its flow
(``console.ui.flows``: form, confirmation) and then the app's ops runner.
Writing operations are greyed while one runs, in read-only mode and (those
that take the deploy lock) while another operator holds it; pressing one
then says why. When that lock is released they come back on their own.
While a cancellable operation runs (a VACUUM), ``c`` cancels it after a
confirmation (``StackdeckApp.cancel_operation``: audited, then the same
cancel as quitting or SIGHUP); the key is in the footer only then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.events import Key
from textual.reactive import var
from textual.widgets import Footer, Tab, Tabs

from console.core.models import (
    AlertsSnapshot,
    ContainersSnapshot,
    CostSnapshot,
    DatabaseSnapshot,
    EventsSnapshot,
    HealthSnapshot,
    HistorySnapshot,
    LogLine,
    OpsLog,
    OtherOpsSnapshot,
    QuotaSnapshot,
    SourceState,
    StatsSnapshot,
    SwarmSnapshot,
    SwarmStatsSnapshot,
)
from console.core.ops.table import OPERATIONS, OpSpec
from console.ui.compositor import RegionCompositor
from console.ui.format import fmt_range, next_range
from console.ui.messages import OpProgress, SnapshotArrived, SourceChanged, StatsTick
from console.ui.panels import PANEL_CLASSES
from console.ui.panels.base import EPOCH, ContainerSelected, Panel
from console.ui.panels.containers import ContainersPanel
from console.ui.panels.cost import CostPanel
from console.ui.panels.database import DatabasePanel
from console.ui.panels.events import EventsPanel
from console.ui.panels.health import HealthPanel
from console.ui.panels.operations import OperationsPanel, RunningOp, running_op
from console.ui.panels.quotas import QuotasPanel
from console.ui.panels.stats import StatsPanel
from console.ui.screens.base import ConsoleScreen
from console.ui.screens.confirm import ConfirmScreen
from console.ui.widgets.alerts import AlertsLine
from console.ui.widgets.header import HeaderBar, lock_reason, serving_version

if TYPE_CHECKING:
    from datetime import datetime

    from console.ui.app import StackdeckApp

__all__ = [
    "CANCEL_BINDING",
    "COMMANDS_BINDING",
    "COMPOSE_REASON",
    "GRID_MIN_HEIGHT",
    "GRID_MIN_WIDTH",
    "HELP_BINDING",
    "QUIT_BINDING",
    "READ_ONLY_REASON",
    "SWARM_REASON",
    "DashboardScreen",
    "op_bindings",
    "spec_of",
]

PanelT = TypeVar("PanelT", bound=Panel)

GRID_MIN_WIDTH = 120
"""Below this many columns the panels are tabs."""
GRID_MIN_HEIGHT = 32
"""Below this many rows the panels are tabs."""

READ_ONLY_REASON = "read-only mode: started with --read-only"
SWARM_REASON = (
    "a swarm stack: this operation acts on a compose project; on Swarm stackdeck "
    "deploys, rolls back, scales and drains or activates nodes"
)
COMPOSE_REASON = "a compose project: draining or activating a node is for a swarm stack"

HELP_BINDING = Binding("question_mark", "app.help", "Help", id="help", tooltip="Every key binding")
QUIT_BINDING = Binding(
    "q",
    "app.quit",
    "Quit",
    id="quit",
    tooltip="Leave stackdeck (asks first while an operation runs)",
)
COMMANDS_BINDING = Binding(
    "colon",
    "app.command_palette",
    "Cmds",
    id="commands",
    tooltip="Command palette: every action by name (also ctrl+p)",
)
"""On the app (every screen) and first on the dashboard, so the footer keeps
its order: at 80 columns the first ones stay visible."""
CANCEL_BINDING = Binding(
    "c",
    "cancel_op",
    "Cancel op",
    id="cancel-op",
    tooltip="While a VACUUM runs: cancel it on the server (pg_cancel_backend; confirmed, audited)",
)
"""Shown only while a cancellable operation runs (``OpSpec.cancellable``);
early in the list so it stays in the footer at 80 columns."""


def op_bindings() -> list[Binding]:
    """The key binding of every operation of the table that has a key."""
    return [
        Binding(
            spec.key.key,
            f"op('{spec.name}')",
            spec.key.label,
            id=spec.key.id,
            tooltip=spec.key.tooltip,
        )
        for spec in OPERATIONS.values()
        if spec.key is not None
    ]


def _stale_after(interval: float) -> float:
    return max(3 * interval, interval + 10.0)


class DashboardScreen(ConsoleScreen[None]):
    """The main screen: header, alerts line, panels (grid or tabs), footer."""

    BINDINGS: ClassVar[list[BindingType]] = [
        HELP_BINDING,
        QUIT_BINDING,
        CANCEL_BINDING,
        *op_bindings(),
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
        COMMANDS_BINDING,
        Binding(
            "t",
            "cycle_range",
            "Range",
            id="range",
            tooltip="Time range of every chart: 15m, 1h, 6h, 24h (from Prometheus)",
        ),
        Binding(
            "a",
            "alerts",
            "Alerts",
            id="alerts",
            tooltip="Alerts (pending, firing), silences; silence an alert",
        ),
        Binding(
            "w",
            "since_deploy",
            "Since deploy",
            id="since-deploy",
            tooltip="What changed since the last deploy: endpoints, services, slower and new queries",
        ),
        Binding(
            "g",
            "dashboards",
            "Dashboards",
            id="dashboards",
            tooltip="The runbook's four dashboards over the chosen time range",
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
    swarm: var[SwarmSnapshot | None] = var(None, init=False)
    """The stack's services, tasks and nodes when it is a swarm stack (or
    why it is a compose project)."""
    health: var[HealthSnapshot | None] = var(None, init=False)
    """Health endpoints through nginx and per colour."""
    swarm_stats: var[SwarmStatsSnapshot | None] = var(None, init=False)
    """A swarm stack's stats per node and task, health per task (Prometheus)."""
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
    history: var[HistorySnapshot | None] = var(None, init=False)
    """Prometheus' range queries and the operation markers (every chart)."""
    history_range: var[int] = var(3600, init=False)
    """The charts' time range in seconds (``t`` steps through RANGES)."""
    events: var[EventsSnapshot | None] = var(None, init=False)
    """Engine event timeline."""
    ops_log: var[OpsLog] = var(OpsLog, init=False)
    """The events of the operations started from this console, and those of
    other operators (from ``others``) as they arrive."""
    others: var[OtherOpsSnapshot | None] = var(None, init=False, bindings=True)
    """Other operators' operations and the deploy lock another process holds
    (the lock-taking keys are greyed while it does)."""
    sources: var[dict[str, SourceState]] = var(dict, init=False)
    """Liveness of every source, by source name."""
    now: var[datetime] = var(EPOCH, init=False)
    """The clock, ticking once a second (the app's, injected in tests)."""
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

    def __init__(self, project: str, hostname: str, *, read_only: bool, now: datetime) -> None:
        super().__init__(id="dashboard-screen")
        # a frame renders the lines of its dirty regions, not their bounding
        # box (the clock and a quota countdown widened it over the screen)
        self._compositor = RegionCompositor()
        self.project = project
        self.hostname = hostname
        self._mounted = False
        self._ticked: list[Panel] = []
        """The panels the clock ticks (listed at mount; they never change)."""
        self._others_seq = 0
        """The ``seq`` of the last event of ``others`` put in ``ops_log``."""
        self.set_reactive(DashboardScreen.read_only, read_only)
        self.set_reactive(DashboardScreen.now, now)

    @property
    def stack_app(self) -> StackdeckApp:
        from console.ui.app import StackdeckApp

        app = self.app
        assert isinstance(app, StackdeckApp)
        return app

    # --- composition -------------------------------------------------------

    def compose(self) -> ComposeResult:
        settings = self.stack_app.settings
        yield HeaderBar(self.project, self.hostname).data_bind(
            containers=DashboardScreen.containers,
            health=DashboardScreen.health,
            alerts=DashboardScreen.alerts,
            now=DashboardScreen.now,
            op_running=DashboardScreen.op_running,
            read_only=DashboardScreen.read_only,
            others=DashboardScreen.others,
        )
        yield AlertsLine().data_bind(
            alerts=DashboardScreen.alerts, sources=DashboardScreen.sources, now=DashboardScreen.now
        )
        yield Tabs(
            *[
                Tab(f"{cls.NUMBER} {cls.SHORT}", id=f"tab-{cls.PANEL_ID}")
                for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER)
            ],
            id="panel-tabs",
        )
        refresh = settings.refresh
        alerts = settings.alerts
        # ``now`` is not bound: watch_now ticks the panels it moves (Panel.tick)
        bind = {"sources": DashboardScreen.sources}
        with Container(id="dashboard"):
            with Horizontal(id="columns"):
                with Vertical(id="left", classes="column"):
                    yield self._clocked(
                        ContainersPanel(
                            stale_after=_stale_after(refresh.containers), mode=settings.mode
                        ).data_bind(
                            snapshot=DashboardScreen.containers, swarm=DashboardScreen.swarm, **bind
                        )
                    )
                    yield self._clocked(
                        StatsPanel(
                            stale_after=_stale_after(refresh.stats),
                            cpu_alert=alerts.cpu.threshold,
                            mem_alert=alerts.memory.threshold,
                            mode=settings.mode,
                        ).data_bind(
                            snapshot=DashboardScreen.stats,
                            swarm=DashboardScreen.swarm,
                            swarm_stats=DashboardScreen.swarm_stats,
                            selected=DashboardScreen.selected_container,
                            history=DashboardScreen.history,
                            **bind,
                        )
                    )
                    yield self._clocked(
                        DatabasePanel(stale_after=_stale_after(refresh.database)).data_bind(
                            snapshot=DashboardScreen.database, **bind
                        )
                    )
                with Vertical(id="right", classes="column"):
                    yield self._clocked(
                        HealthPanel(
                            stale_after=_stale_after(refresh.health), mode=settings.mode
                        ).data_bind(
                            snapshot=DashboardScreen.health,
                            containers=DashboardScreen.containers,
                            swarm=DashboardScreen.swarm,
                            swarm_stats=DashboardScreen.swarm_stats,
                            **bind,
                        )
                    )
                    yield self._clocked(
                        QuotasPanel(stale_after=_stale_after(refresh.quotas)).data_bind(
                            snapshot=DashboardScreen.quotas, **bind
                        )
                    )
                    yield self._clocked(
                        CostPanel(stale_after=_stale_after(refresh.cost)).data_bind(
                            snapshot=DashboardScreen.cost, **bind
                        )
                    )
                    yield self._clocked(
                        EventsPanel().data_bind(snapshot=DashboardScreen.events, **bind)
                    )
            yield self._clocked(
                OperationsPanel(cancel_key=CANCEL_BINDING.key).data_bind(
                    snapshot=DashboardScreen.ops_log,
                    running=DashboardScreen.op_running,
                    read_only=DashboardScreen.read_only,
                    others=DashboardScreen.others,
                    **bind,
                )
            )
        yield Footer(compact=True)

    def _clocked(self, panel: PanelT) -> PanelT:
        """``panel`` with the clock's time before its first render (the
        clock reaches panels through :meth:`watch_now`, not a binding)."""
        panel.set_reactive(Panel.now, self.now)
        return panel

    def watch_now(self, now: datetime) -> None:
        # the panels, listed once at mount: a DOM query a second cost more
        # than the ticks it delivers
        for panel in self._ticked:
            # the rule Textual applies to bound watchers: none for a widget
            # that is closing (the app's clock still ticks while it quits)
            if not (panel._closing or panel._pruning):
                panel.tick(now)

    def on_mount(self) -> None:
        self._mounted = True
        self._ticked = self.panels
        self.watch_swarm(self.swarm)
        self.apply_size(self.app.size.width, self.app.size.height)
        self.watch_compact(self.compact)
        self.query_one(ContainersPanel).focus_default()

    # --- panels and layout -------------------------------------------------

    @property
    def panels(self) -> list[Panel]:
        return list(self.query(Panel))

    def panel(self, panel_id: str) -> Panel:
        return self.query_one(f"#{panel_id}", Panel)

    def _ordered_panel_ids(self) -> list[str]:
        return [cls.PANEL_ID for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER)]

    def apply_size(self, width: int, height: int) -> None:
        """Grid or tabs for a terminal of ``width`` x ``height``."""
        self.compact = width < GRID_MIN_WIDTH or height < GRID_MIN_HEIGHT

    def watch_swarm(self, swarm: SwarmSnapshot | None) -> None:
        """A swarm stack: the Containers panel (services, tasks, nodes) gets
        the room the Stats panel has in compose mode (docker stats sees only
        the engine the console talks to)."""
        if self._mounted:
            self.query_one("#dashboard").set_class(self.swarm_mode(), "-swarm")
            self.query_one(OperationsPanel).swarm = self.swarm_mode()

    def swarm_mode(self) -> bool:
        """Whether the stack is a swarm stack (the swarm source's verdict, or
        ``mode = "swarm"`` before its first snapshot)."""
        if self.swarm is not None:
            return self.swarm.mode == "swarm"
        return self.stack_app.settings.mode == "swarm"

    def watch_compact(self, compact: bool) -> None:
        if not self._mounted:
            return  # on_mount applies it
        # The classes of the active panel first, without restyling: the
        # change of ``-compact`` below restyles the whole dashboard with them
        # (and when it does not change, they match no rule; see
        # ``_show_active_panel``). Restyling the columns for each class
        # cost the first frame ~0.1 s of CPU.
        self._show_active_panel(update=False)
        self.query_one("#dashboard").set_class(compact, "-compact")
        self.query_one("#panel-tabs").display = compact

    def watch_active_panel(self) -> None:
        self._show_active_panel()

    def _show_active_panel(self, *, update: bool = True) -> None:
        if not self._mounted:
            return
        active = self.panel(self.active_panel)
        # ``-active`` and ``-holds-active`` only match under
        # ``#dashboard.-compact`` (app.tcss): in the grid they need no
        # restyle, and a change of ``-compact`` restyles everything.
        update = update and self.compact
        for panel in self.panels:
            panel.set_class(panel is active, "-active", update=update)
        # In compact mode only the containers on the way to the active panel are shown.
        for container in self.query("#columns, .column"):
            container.set_class(active in container.walk_children(), "-holds-active", update=update)
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
            self.set_focus(None)

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
            label = f"{base}!" if stale else base
            # the setter lays the tab bar out again even for the same text,
            # and the sources change about once a second
            if tab.label.plain != label:
                tab.label = label

    # --- what the monitor and the ops runner send ---------------------------------

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        if message.kind in _SNAPSHOT_KINDS:
            setattr(self, message.kind, message.snapshot)

    def on_stats_tick(self, message: StatsTick) -> None:
        self.stats = message.snapshot

    def on_source_changed(self, message: SourceChanged) -> None:
        self.sources = {**self.sources, message.state.name: message.state}

    def watch_others(self, others: OtherOpsSnapshot | None) -> None:
        """Other operators' new events go to the Operations panel's log."""
        if others is None:
            return
        log = self.ops_log
        for event in others.events:
            seq = event.data.get("seq")
            if isinstance(seq, int) and seq > self._others_seq:
                log = log.add(event)
        self._others_seq = max(self._others_seq, others.seq)
        if log is not self.ops_log:
            self.ops_log = log

    def on_op_progress(self, message: OpProgress) -> None:
        event = message.event
        self.ops_log = self.ops_log.add(event)
        if event.status == "done":
            self.notify(event.message or f"{event.op} done", title=event.op)
        elif event.status == "fail" and event.step == "result":
            self.notify(event.message or f"{event.op} failed", title=event.op, severity="error")

    @on(ContainerSelected)
    def _container_selected(self, message: ContainerSelected) -> None:
        self.selected_container = message.container

    # --- keys: enabled / disabled ------------------------------------------------

    def write_block_reason(self) -> str | None:
        """Why writing operations are disabled right now, or None."""
        if self.read_only:
            return READ_ONLY_REASON
        if self.op_running:
            return f"{self.op_running} is running: wait for it to finish"
        return None

    def mode_block_reason(self, spec: OpSpec) -> str | None:
        """Why ``spec`` does not apply to this stack's mode: a compose
        operation on a swarm stack, a node's on a compose project; or None."""
        if self.swarm_mode():
            return None if spec.on_swarm else SWARM_REASON
        return COMPOSE_REASON if spec.swarm_only else None

    def swarm_backend(self) -> tuple[str | None, str | None]:
        """The swarm stack's backend image (registry and name) and version."""
        if self.swarm is not None:
            for service in self.swarm.services:
                if service.service == "backend":
                    return service.image or None, service.tag or None
        return None, None

    def selected_node(self) -> tuple[str, str] | None:
        """(id, hostname) of the swarm node under the cursor of the Containers panel."""
        key = self.selected() or ""
        if not key.startswith("node:") or self.swarm is None:
            return None
        node_id = key.removeprefix("node:")
        for node in self.swarm.nodes:
            if node.id == node_id:
                return node.id, node.hostname
        return None

    def lock_block_reason(self) -> str | None:
        """Why a lock-taking operation cannot start: another process holds
        the deploy lock (or left it stale), or None."""
        lock = self.others.lock if self.others is not None else None
        return lock_reason(lock, self.now) if lock is not None else None

    def block_reason(self, spec: OpSpec) -> str | None:
        """Why ``spec`` cannot start now, or None."""
        if not spec.writes:
            return None
        reason = self.write_block_reason()
        if reason is None:
            reason = self.mode_block_reason(spec)
        if reason is None and spec.takes_lock:
            reason = self.lock_block_reason()
        return reason

    def cancellable_op(self) -> RunningOp | None:
        """The running operation when the cancel key may stop it, else None."""
        spec = OPERATIONS.get(self.op_running or "")
        if spec is None or not spec.cancellable:
            return None
        return running_op(self.ops_log, spec.name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.app.screen is not self and not action.startswith("app."):
            # A dialog is on top: its keys are the ones that work. The keys
            # bound here are already inactive; this hides them from the
            # footer below the dialog too.
            return False
        if action == "cancel_op":
            return self.cancellable_op() is not None  # absent from the footer otherwise
        if action == "op" and parameters:
            spec = OPERATIONS.get(str(parameters[0]))
            if spec is not None and self.block_reason(spec) is not None:
                return None  # shown greyed in the footer
        return True

    def on_screen_suspend(self) -> None:
        self.refresh_bindings()  # the footer below the dialog: see check_action

    def on_screen_resume(self) -> None:
        self.refresh_bindings()

    def on_key(self, event: Key) -> None:
        """A disabled operation key falls through to here: say why it did nothing."""
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            spec = spec_of(binding)
            if spec is not None:
                reason = self.block_reason(spec)
                if reason:
                    self.notify(reason, title=binding.description, severity="warning")
                    event.stop()
                return

    # --- actions --------------------------------------------------------------------

    def action_op(self, name: str) -> None:
        """Ask for the operation's parameters and confirmation, then run it."""
        spec = OPERATIONS[name]
        reason = self.block_reason(spec)
        if reason:
            self.notify(reason, title=spec.title, severity="warning")
            return
        from console.ui.flows import run_flow

        self.run_worker(run_flow(self, spec), group="flow", exclusive=True, exit_on_error=False)

    def action_cancel_op(self) -> None:
        """Confirm, then cancel the running VACUUM (audited; its session is
        cancelled on the server by the operation's own clean-up)."""
        state = self.cancellable_op()
        if state is None:
            self.notify("no operation to cancel", severity="information")
            return
        spec = OPERATIONS[state.op]
        target = f" of {state.target}" if state.target else ""
        session = f" {state.session_pid}" if state.session_pid else ""
        where = f"; it stands at: {state.progress.describe()}" if state.progress else ""
        body = (
            f"Its database session{session} gets pg_cancel_backend{where}. "
            "Nothing is lost: what it finished stays done, the lock is released "
            "and it can run again later. Your cancel is written to the audit log."
        )

        def decided(confirmed: bool | None) -> None:
            current = self.cancellable_op()
            if confirmed and current is not None and current.op_id == state.op_id:
                self.stack_app.cancel_operation(current, via=f"key {CANCEL_BINDING.key}")

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel {spec.title}{target}?",
                body,
                confirm_label=f"Stop {spec.title}",
            ),
            decided,
        )

    def action_cycle_range(self) -> None:
        """The next time range; every chart follows once Prometheus answers."""
        self.history_range = next_range(self.history_range)
        self.stack_app.set_history(range_seconds=self.history_range)
        reason = self.history_missing()
        note = f" (no history: {reason})" if reason else ""
        self.notify(f"charts: last {fmt_range(self.history_range)}{note}", title="Range")

    def history_missing(self) -> str | None:
        """Why the charts have no history, or None when they have it."""
        history = self.history
        if history is None:
            return "waiting for Prometheus"
        return None if history.available else history.reason or "Prometheus did not answer"

    def action_alerts(self) -> None:
        from console.ui.screens.alerts import AlertsScreen

        self.app.push_screen(AlertsScreen())

    def action_since_deploy(self) -> None:
        from console.ui.screens.since import SinceDeployScreen

        self.app.push_screen(SinceDeployScreen())

    def action_dashboards(self) -> None:
        from console.ui.screens.charts import DashboardsScreen

        self.app.push_screen(DashboardsScreen())

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

    def selected(self) -> str | None:
        """The selected container: the last one highlighted, else the containers cursor."""
        if self.selected_container:
            return self.selected_container
        table = self.query_one(ContainersPanel).table
        return table.cursor_key if table is not None else None

    def selected_service(self) -> tuple[str | None, str | None]:
        """(container, its compose service) under the cursor."""
        container = self.selected()
        if container and self.containers is not None:
            for info in self.containers.containers:
                if info.name == container:
                    return container, info.service
        return container, None

    def action_logs(self) -> None:
        container = self.selected()
        if container is None:
            self.notify("no container selected (Containers panel, 1)", severity="warning")
            return
        app = self.stack_app

        def source() -> AsyncIterator[LogLine]:
            return app.follow_log(container, 200)

        from console.ui.screens.logs import LogsScreen

        app.push_screen(LogsScreen(container, source, clock=app.clock))

    # --- facts the flows show ---------------------------------------------------------

    def serving_and_idle(self) -> tuple[str | None, str | None]:
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

    def redis_target(self) -> str:
        """The Redis container's name (what a FLUSHDB's typed confirmation asks for)."""
        if self.containers is not None:
            for info in self.containers.containers:
                if info.service in ("redis", "cache"):
                    return info.name
        return self.stack_app.settings.container_name("redis")

    def operation_bindings(self) -> list[Binding]:
        """The operations' keys, then the cancel key (the help's first section)."""
        return [b for b in self._all_bindings() if spec_of(b) is not None] + [CANCEL_BINDING]

    def view_bindings(self) -> list[Binding]:
        return [b for b in self._all_bindings() if spec_of(b) is None and b is not CANCEL_BINDING]

    def _all_bindings(self) -> Iterable[Binding]:
        return [b for b in self.BINDINGS if isinstance(b, Binding)]


_SNAPSHOT_KINDS = frozenset(
    {
        "containers",
        "health",
        "stats",
        "database",
        "quotas",
        "cost",
        "alerts",
        "events",
        "history",
        "others",
        "swarm",
        "swarm_stats",
    }
)
"""Snapshot kinds of the monitor; each is a reactive of the same name."""


def spec_of(binding: Binding) -> OpSpec | None:
    """The operation a binding runs (``op('deploy')``), or None."""
    action = binding.action
    if action.startswith("op(") and action.endswith(")"):
        return OPERATIONS.get(action[3:-1].strip("'\""))
    return None
