"""The stackdeck TUI: live panels of one stack, and the operations on it.

Data flow (docs/ARCHITECTURE.md):

    Monitor (console.core) --sink(kind, payload)--> Messages (thread-safe post)
        --> DashboardScreen handlers set one typed reactive per kind
        --> panels bound with data_bind re-render in watch_snapshot

    key (or palette entry) --> flow (console.ui.flows: form, confirmation)
        --> StackdeckApp.start_operation --> ops runner (async generator of OpEvent)
        --> OpProgress messages --> the dashboard's OpsLog --> Operations panel

The parts:

- :class:`StackdeckApp` (this module): the monitor's life, the ops runner and
  its worker, a dropped SSH session, quitting, the help screen, the
  terminal-too-small screen;
- ``console.ui.screens.dashboard``: the panels, their state, layout and keys;
- ``console.ui.flows``: what each operation asks before it starts;
- ``console.ui.commands``: the command palette.

The app never blocks: the monitor runs in an async worker (its sources run
their own tasks and threads), operations, flows and log streams run in
workers, and everything that reaches a widget goes through a message handler
on the UI thread.

Keys (also on the ``?`` screen, generated from the bindings):

| key | action | notes |
|---|---|---|
| ? | help | every binding, with the reason when one is disabled |
| : , ctrl+p | command palette | every operation and view, by name |
| / | filter | on the focused list: containers, stats, slow queries, events |
| l | logs | tail/follow/filter the selected container's log |
| 1-8, [ ] | panels | show a panel (tabs at small sizes) / focus it (grid) |
| d b v f e r | operations | deploy, rollback, vacuum, flush cache, emergency limit, restart (from the table of operations) |
| c | cancel | the running VACUUM, on the server (confirmed, audited); shown only while one runs |
| q | quit | asks first while an operation runs |

Writing operations are disabled (greyed) while one runs, and in read-only
mode, where pressing them says why.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar, Protocol

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.screen import Screen
from textual.worker import Worker, WorkerCancelled, WorkerState

from console.core.config import Settings
from console.core.models import LogLine, OpEvent, Snapshot, SourceState, StatsSnapshot
from console.core.ops.table import OPERATIONS, OpParams
from console.ui.commands import DashboardCommands
from console.ui.messages import OpProgress, SnapshotArrived, SourceChanged, StatsTick
from console.ui.panels.base import FilterBar
from console.ui.panels.operations import RunningOp
from console.ui.screens.confirm import ConfirmScreen, TypedConfirmScreen
from console.ui.screens.dashboard import (
    COMMANDS_BINDING,
    HELP_BINDING,
    QUIT_BINDING,
    DashboardScreen,
    spec_of,
)
from console.ui.screens.deploy import DeployScreen
from console.ui.screens.help import HelpScreen, HelpSection
from console.ui.screens.logs import LogsScreen
from console.ui.screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from console.ui.widgets.chart import PlotextChart, begin_plotext_preload, preload_plotext

__all__ = [
    "LogFollower",
    "MonitorFactory",
    "OpCanceller",
    "OpsRunner",
    "StackdeckApp",
    "create_app",
]

Sink = Callable[[str, Any], None]


class MonitorLike(Protocol):
    """What the app needs of ``console.core.monitor.Monitor``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


MonitorFactory = Callable[[Settings, Sink], MonitorLike]
"""Builds the monitor: ``Monitor(settings, sink)`` by default, a fake in tests."""

OpsRunner = Callable[..., AsyncIterator[OpEvent]]
"""``runner(name, ctx, params)``: the step events of one operation
(``console.core.ops.run_op`` by default)."""

OpCanceller = Callable[..., Awaitable[str | None]]
"""``canceller(ctx, op=, op_id=, via=, stop=, **detail)``: audits the
operator's cancel, then awaits ``stop()`` (``console.core.ops.engine.cancel_op``
by default); returns a warning or None."""

LogFollower = Callable[[Settings, str, int], AsyncIterator[LogLine]]
"""``follower(settings, container, tail)``: a container's log, tail then follow."""

Clock = Callable[[], datetime]

VersionLister = Callable[[Any], Awaitable[list[str]]]
"""``lister(ctx)``: the versions that can be deployed without building
(an image, or a git tag to build from), oldest first."""

SinceLoader = Callable[[Settings], Awaitable[Any]]
"""``loader(settings)``: the "since the deploy" snapshot
(``console.core.since.since_deploy`` by default)."""

SINCE_TIMEOUT_S = 20.0
"""How long the "since the deploy" view waits for its comparison."""

VERSIONS_TIMEOUT_S = 5.0
"""How long the deploy form waits for the list of versions before opening
without it."""

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


def _default_ops_runner(name: str, ctx: Any, params: OpParams) -> AsyncIterator[OpEvent]:
    from console.core.ops import run_op

    runner: AsyncIterator[OpEvent] = run_op(name, ctx, params)
    return runner


async def _default_op_canceller(ctx: Any, **kwargs: Any) -> str | None:
    from console.core.ops.engine import cancel_op

    return await cancel_op(ctx, **kwargs)


async def _default_version_lister(ctx: Any) -> list[str]:
    from console.core.ops.steps.images import deployable_versions

    return await deployable_versions(ctx)


async def _default_since_loader(settings: Settings) -> Any:
    from console.core.since import since_deploy

    return await since_deploy(settings)


def _default_log_follower(settings: Settings, container: str, tail: int) -> AsyncIterator[LogLine]:
    from console.core.sources.docker.logs import follow_logs

    return follow_logs(container, tail=tail, settings=settings)


def _terminal_closed(fd: int = 2) -> bool:
    """Whether the controlling terminal was hung up (its other side closed:
    an SSH session dropped, a tmux server killed): then every call on it
    fails with EIO. A SIGHUP sent by hand leaves it open."""
    import termios

    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    return False


def _terminal_gone(writer: threading.Thread | None) -> None:
    """The terminal closed under the console: a write to it fails with EIO,
    which ends Textual's writer thread, and every later write then blocked on
    its full queue (30 frames: the clock alone fills it in half a minute), so
    the console never exited, even in the middle of undoing a deploy. From
    here on the output goes to /dev/null (stdin is left: Textual's input
    thread ends on its own), and should the writer thread end all the same
    (a write already under way on the closed terminal), its queue is drained
    so that no write waits on it."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        null = -1
    if null >= 0:
        try:
            for fd in (1, 2):
                os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)
    queue = getattr(writer, "_queue", None)
    if writer is None or queue is None:
        return

    def drain() -> None:
        writer.join()
        while queue.get() is not None:  # None: the driver's stop(); its join() returns
            pass

    threading.Thread(target=drain, name=f"stackdeck-drain-{id(writer)}", daemon=True).start()


def _draining(writer: threading.Thread) -> bool:
    """Whether :func:`_terminal_gone` drains ``writer``'s queue."""
    return any(t.name == f"stackdeck-drain-{id(writer)}" for t in threading.enumerate())


class StackdeckApp(App[None]):
    """The operations console. Build it with :func:`create_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "stackdeck"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {DashboardCommands}

    BINDINGS: ClassVar[list[BindingType]] = [HELP_BINDING, QUIT_BINDING, COMMANDS_BINDING]
    """On every screen but a dialog; the dashboard lists the same ones first."""

    def __init__(
        self,
        settings: Settings,
        *,
        monitor_factory: MonitorFactory | None = None,
        clock: Clock | None = None,
        ops_runner: OpsRunner | None = None,
        log_follower: LogFollower | None = None,
        version_lister: VersionLister | None = None,
        since_loader: SinceLoader | None = None,
        hostname: str | None = None,
        preload: bool = True,
        op_canceller: OpCanceller | None = None,
        leave: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._leave = leave
        self._op_canceller = op_canceller or _default_op_canceller
        self._cancel_note: str | None = None
        self._version_lister = version_lister or _default_version_lister
        self._since_loader = since_loader or _default_since_loader
        self._history_wish: dict[str, Any] = {}
        self._preload = preload
        self.settings = settings
        self._monitor_factory = monitor_factory or _default_monitor_factory
        self.clock: Clock = clock or _default_clock
        self._ops_runner = ops_runner
        self._log_follower = log_follower or _default_log_follower
        self.hostname = hostname or socket.gethostname()
        self._monitor: MonitorLike | None = None
        self._stopping_monitor: asyncio.Future[None] | None = None
        """The monitor's stop begun by a quit (awaited in ``on_unmount``)."""
        self._op_context: Any = None
        self._hangup_handler = False
        self._hanging_up = False
        self._hangup_task: asyncio.Task[None] | None = None
        self._plotext_pending = False
        """plotext's import is due, to start once the monitor is built."""
        self.dashboard = DashboardScreen(
            settings.project,
            self.hostname,
            read_only=bool(settings.read_only),
            now=self.clock(),
        )

    def get_default_screen(self) -> Screen[Any]:
        return self.dashboard

    def on_mount(self) -> None:
        self._tick()
        self.set_interval(1.0, self._tick, name="clock")
        self._apply_size(self.size.width, self.size.height)
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
        # plotext (~0.2 s of CPU to import) is loaded in a thread once the
        # monitor is built (``_start_monitor``): both imports at once made the
        # sources start later; the charts draw their fallback until then.
        self._plotext_pending = self._preload and begin_plotext_preload()

    def _tick(self) -> None:
        self.dashboard.now = self.clock()

    # --- terminal size -------------------------------------------------------

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
        self.dashboard.apply_size(width, height)

    # --- monitor -------------------------------------------------------------

    def _sink(self, kind: str, payload: Any) -> None:
        """Called by the monitor from its tasks or threads: post, never touch widgets."""
        if kind == "stats" and isinstance(payload, StatsSnapshot):
            self.dashboard.post_message(StatsTick(payload))
        elif kind == "source" and isinstance(payload, SourceState):
            self.dashboard.post_message(SourceChanged(payload))
        elif isinstance(payload, Snapshot):
            self.dashboard.post_message(SnapshotArrived(kind, payload))

    @work(group="monitor", exclusive=True, exit_on_error=False)
    async def _start_monitor(self) -> None:
        # Built in a thread: constructing sources must never stall the first frame.
        try:
            self._monitor = await asyncio.to_thread(
                self._monitor_factory, self.settings, self._sink
            )
        finally:
            if self._plotext_pending:
                self._plotext_pending = False
                # and after a frame: never beside the first one
                self.call_after_refresh(
                    self.run_worker,
                    preload_plotext,
                    thread=True,
                    group="preload",
                    exit_on_error=False,
                )
        if self._history_wish:
            self.set_history(**self._history_wish)
        await self._monitor.start()

    async def _stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                # bounded by the monitor (Monitor.stop's grace): a slow call
                # is abandoned, never waited for
                await monitor.stop()
            except Exception as exc:  # shutting down: report, never hang the exit
                self.log.error(f"monitor stop failed: {exc}")

    def _quit(self) -> None:
        """Leave now: the monitor stops while Textual restores the terminal
        and takes the screen down (``on_unmount`` waits for the end of that
        stop), instead of one after the other. When nothing is left to finish
        and the CLI gave a way to end the process, it ends at once (see
        :meth:`_leave_at_once`)."""
        if self._leave is not None and self._nothing_to_finish():
            self._leave_at_once()
            return
        if self._stopping_monitor is None:
            self._stopping_monitor = asyncio.ensure_future(self._stop_monitor())
        self.exit()

    def _nothing_to_finish(self) -> bool:
        """No operation runs or undoes itself (the normal exit cancels it and
        waits for its undo), and no operation's notice is still being sent."""
        if self.dashboard.op_running or any(
            w.is_running for w in self.workers if w.group in ("ops", "cancel")
        ):
            return False
        from console.core.ops.notify import NOTICE_THREAD  # imported by then (httpx)

        return not any(t.name == NOTICE_THREAD and t.is_alive() for t in threading.enumerate())

    def _leave_at_once(self) -> None:
        """Restore the terminal and end the process, without taking the DOM
        down widget by widget or closing the sources' connections one by one.

        Nothing is lost: the monitor only reads, the state files are written
        as things happen, and the kernel closes every socket. What this
        skips (Textual's unmount of every widget, the sources' goodbyes, the
        interpreter's teardown) cost 0.3-1 s under load, while the operator
        waits for a prompt (issue 16: leaving is never slower than 0.5 s).
        If the terminal cannot be restored this way, the normal exit runs."""
        driver = self._driver
        try:
            if driver is not None:
                # Textual joins its input thread here, which polls its exit
                # flag every 0.1 s and then waits another 0.1 s: 0.2 s of the
                # quit. The process ends next, so that thread is not waited
                # for (the attribute unknown to another Textual: it is joined).
                if getattr(driver, "_key_thread", None) is not None:
                    driver._key_thread = None  # type: ignore[attr-defined]
                driver.stop_application_mode()  # mouse, paste, alt screen, termios
                driver.close()  # its writer thread flushes what is queued and ends
        except Exception as exc:
            self.log.error(f"quick exit failed, leaving the normal way: {exc}")
            self._leave = None
            self._quit()
            return
        assert self._leave is not None
        self._leave(0)

    def follow_log(self, container: str, tail: int) -> AsyncIterator[LogLine]:
        """A container's log, tail then follow (the log screen's source)."""
        return self._log_follower(self.settings, container, tail)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "preload" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR):
            for chart in self.dashboard.query(PlotextChart):
                chart.refresh()
        elif worker.group == "monitor" and event.state == WorkerState.ERROR:
            reason = str(worker.error) or type(worker.error).__name__
            self.dashboard.sources = {
                **self.dashboard.sources,
                "monitor": SourceState(name="monitor", ok=False, last_error=reason),
            }
            self.notify(f"monitor failed: {reason}", severity="error", timeout=10)
        elif worker.group == "ops" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            name = self.dashboard.op_running or worker.name
            if event.state == WorkerState.ERROR:
                error = worker.error
                self._op_failed(name, f"{type(error).__name__}: {error}")
            elif event.state == WorkerState.CANCELLED:
                note, self._cancel_note = self._cancel_note, None
                self._op_failed(name, note or "cancelled")
            self.dashboard.op_running = None

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

        if self._hangup_handler:
            self._hangup_handler = False
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def _hung_up(self) -> None:
        if self._hanging_up:
            return
        self._hanging_up = True
        if _terminal_closed():
            _terminal_gone(getattr(self._driver, "_writer_thread", None))
        # kept: the loop holds only a weak reference to a task
        self._hangup_task = asyncio.get_running_loop().create_task(self._finish_after_hangup())

    async def _finish_after_hangup(self) -> None:
        await self._stop_operations("after SIGHUP")
        await self._stop_monitor()
        writer = getattr(self._driver, "_writer_thread", None)
        if writer is not None and not writer.is_alive() and not _draining(writer):
            # Textual's writer thread ended (a write failed) with no drain
            # behind it (the terminal seemed open at the hangup): Textual's
            # shutdown would wait for ever on that thread's full queue. The
            # operations are undone and the monitor stopped: nothing is left
            # that a normal exit would do.
            logging.shutdown()
            os._exit(129)
        self.exit(return_code=129)

    async def _stop_operations(self, why: str) -> None:
        """Cancel the running operation and wait while it undoes itself (a
        deploy switches back, a VACUUM is cancelled on the server, the lock
        is released): what SIGHUP and the cancel key both do."""
        for worker in [w for w in self.workers if w.group == "ops" and w.is_running]:
            worker.cancel()
            try:
                # the operation's own undo runs to its end (bounded by its steps)
                await asyncio.wait_for(worker.wait(), timeout=HANGUP_UNDO_TIMEOUT_S)
            except WorkerCancelled:
                pass  # what was asked
            except Exception as exc:  # failed, or too slow: go on anyway
                self.log.error(f"{why}: {worker.name}: {type(exc).__name__}: {exc}")

    # --- operations ----------------------------------------------------------------

    def _ops_context(self) -> Any:
        if self._op_context is None:
            try:
                from console.core.ops.context import OpContext, Operator

                self._op_context = OpContext.from_settings(
                    self.settings,
                    read_only=bool(self.settings.read_only),
                    operator=Operator.current(via="tui"),
                )
            except Exception as exc:
                if self._ops_runner is None:
                    raise
                self.log.warning(f"no OpContext ({exc}); passing None to the injected runner")
        return self._op_context

    async def available_versions(self) -> list[str]:
        """The versions the deploy form offers (empty when they cannot be listed in time):
        on a swarm stack, the tags of the backend's repository in the swarm's registry."""
        try:
            image, _ = self.dashboard.swarm_backend()
            if self.dashboard.swarm_mode() and self._version_lister is _default_version_lister:
                from console.core.ops.swarm.ops import registry_versions

                found = await asyncio.wait_for(
                    registry_versions(self._ops_context(), image or ""), VERSIONS_TIMEOUT_S
                )
                return found or []
            return await asyncio.wait_for(
                self._version_lister(self._ops_context()), VERSIONS_TIMEOUT_S
            )
        except Exception as exc:  # no docker, slow daemon: the form still opens
            self.log.warning(f"cannot list versions: {type(exc).__name__}: {exc}")
            return []

    def set_history(self, **wish: Any) -> None:
        """Ask the monitor's history for another ``range_seconds`` or ``view``
        (a dashboard's charts); remembered until the monitor is up."""
        self._history_wish.update(wish)
        setter = getattr(self._monitor, "set_history", None)
        if setter is not None:
            try:
                setter(**wish)
            except Exception as exc:  # a monitor without history: the charts stay live-only
                self.log.warning(f"history: {type(exc).__name__}: {exc}")

    async def since_deploy(self) -> Any:
        """The "since the deploy" comparison (raises on timeout or failure)."""
        return await asyncio.wait_for(self._since_loader(self.settings), SINCE_TIMEOUT_S)

    def database_name(self) -> str:
        """The database a restore replaces (what its typed confirmation asks for)."""
        try:
            return str(self._ops_context().db_name)
        except Exception:
            return "the database"

    def start_operation(self, name: str, params: OpParams) -> None:
        """Run operation ``name`` (after its flow); progress goes to the Operations panel."""
        spec = OPERATIONS[name]
        reason = self.dashboard.block_reason(spec)
        if reason:
            self.notify(reason, title=spec.title, severity="warning")
            return
        self.dashboard.op_running = name
        self._run_operation(name, params)

    @work(group="ops", exclusive=True, exit_on_error=False)
    async def _run_operation(self, name: str, params: OpParams) -> None:
        runner = self._ops_runner or _default_ops_runner
        ctx = self._ops_context()
        if ctx is not None and getattr(ctx, "mode", None) == "auto":
            # the swarm source's verdict, so the engine need not ask again
            ctx = ctx.replace(mode="swarm" if self.dashboard.swarm_mode() else "compose")
        async for event in runner(name, ctx, params):
            self.dashboard.post_message(OpProgress(event))

    def cancel_operation(self, state: RunningOp, *, via: str) -> None:
        """The operator's cancel of the running operation (the dashboard's
        cancel key, once confirmed): one audit line naming who and how, then
        the same cancel as SIGHUP (:meth:`_stop_operations`)."""
        self._cancel_running(state, via)

    @work(group="cancel", exclusive=True, exit_on_error=False)
    async def _cancel_running(self, state: RunningOp, via: str) -> None:
        detail: dict[str, Any] = {}
        if state.session_pid is not None:
            detail["session_pid"] = state.session_pid
        if state.target:
            detail["target"] = state.target
        session = (
            f": session {state.session_pid} cancelled on the server" if state.session_pid else ""
        )
        self._cancel_note = f"cancelled by the operator ({via}){session}"
        try:
            warning = await self._op_canceller(
                self._ops_context(),
                op=state.op,
                op_id=state.op_id or "",
                via=via,
                stop=lambda: self._stop_operations(f"cancel ({via})"),
                **detail,
            )
        except Exception as exc:  # the canceller failed before stopping: stop anyway
            self.log.error(f"cancel: {type(exc).__name__}: {exc}")
            warning = f"cancel: {type(exc).__name__}: {exc}"
            await self._stop_operations(f"cancel ({via})")
        if warning:
            self.notify(warning, title="Cancel", severity="warning", timeout=10)

    def _op_failed(self, name: str, reason: str) -> None:
        event = OpEvent(at=self.clock(), op=name, step="result", status="fail", message=reason)
        self.dashboard.post_message(OpProgress(event))

    # --- quit and help ---------------------------------------------------------------

    async def action_quit(self) -> None:
        running = self.dashboard.op_running
        if running:

            def decided(confirmed: bool | None) -> None:
                if confirmed:
                    self._quit()

            self.push_screen(
                ConfirmScreen(
                    f"{running} is running. Quit anyway?",
                    "Quitting cancels the operation where it stands; "
                    "`stackdeck status` explains the state it leaves.",
                    confirm_label="Quit",
                    destructive=True,
                ),
                decided,
            )
            return
        self._quit()

    async def on_unmount(self) -> None:
        self._unwatch_hangup()
        if self._stopping_monitor is not None:
            await self._stopping_monitor
        await self._stop_monitor()

    def action_help(self) -> None:
        dash = self.dashboard

        def disabled(binding: Binding) -> str | None:
            spec = spec_of(binding)
            return dash.block_reason(spec) if spec is not None else None

        self.push_screen(
            HelpScreen(
                self.help_sections(), key_display=self.get_key_display, disabled_reason=disabled
            )
        )

    def help_sections(self) -> list[HelpSection]:
        dash = self.dashboard
        palette = [
            Binding(
                self.COMMAND_PALETTE_BINDING,
                "command_palette",
                "Commands",
                tooltip="Command palette (same as :)",
            ),
        ]
        in_palette = [
            Binding(
                "colon",
                f"op('{spec.name}')",
                spec.title,
                tooltip=spec.help,
                id=f"palette.{spec.name}",
            )
            for spec in OPERATIONS.values()
            if spec.key is None
        ]
        return [
            (
                "Operations (confirmed; disabled while one runs and in read-only mode)",
                dash.operation_bindings(),
            ),
            ("Navigation and views", dash.view_bindings() + palette),
            ("Filter bar", FilterBar.BINDINGS),
            ("Log view", LogsScreen.BINDINGS),
            ("Confirmation", ConfirmScreen.BINDINGS),
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
            ("More operations, by name in the command palette (:)", in_palette),
        ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("Help: keys", "Every key binding", self.action_help)
        yield from super().get_system_commands(screen)


def create_app(
    settings: Settings,
    *,
    monitor_factory: MonitorFactory | None = None,
    clock: Clock | None = None,
    ops_runner: OpsRunner | None = None,
    log_follower: LogFollower | None = None,
    version_lister: VersionLister | None = None,
    since_loader: SinceLoader | None = None,
    hostname: str | None = None,
    preload: bool = True,
    op_canceller: OpCanceller | None = None,
    leave: Callable[[int], None] | None = None,
) -> StackdeckApp:
    """The app factory used by the CLI, ``python -m console.ui`` and the tests.

    - ``monitor_factory(settings, sink)``: default ``console.core.monitor.Monitor``.
    - ``clock()``: timezone-aware now; the header clock and every age use it.
    - ``ops_runner(name, ctx, **params)``: default ``console.core.ops.run_op``.
    - ``log_follower(settings, container, tail)``: default the engine's ``follow_logs``.
    - ``version_lister(ctx)``: the deploy form's versions (default: images and git tags).
    - ``since_loader(settings)``: the "since the deploy" view's comparison
      (default ``console.core.since.since_deploy``).
    - ``hostname``: shown in the header (default: this machine's name).
    - ``preload``: import plotext in a thread after the first frame (charts
      draw sparklines until then) and freeze the long-lived objects out of
      the garbage collector's passes; off for tests that need exact frames
      or create many apps in one process (frozen objects are never freed).
    - ``op_canceller(ctx, op=, op_id=, via=, stop=, **detail)``: the cancel
      key's audit-then-stop (default ``console.core.ops.engine.cancel_op``).
    - ``leave(code)``: ends the process without returning (the CLI's); given,
      a quit with nothing left to finish restores the terminal and calls it
      instead of Textual's full shutdown. Tests leave it out.
    """
    return StackdeckApp(
        settings,
        monitor_factory=monitor_factory,
        clock=clock,
        ops_runner=ops_runner,
        log_follower=log_follower,
        version_lister=version_lister,
        since_loader=since_loader,
        hostname=hostname,
        preload=preload,
        op_canceller=op_canceller,
        leave=leave,
    )
