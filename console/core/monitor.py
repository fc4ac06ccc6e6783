"""The monitor: every source on its own asyncio task, results into one sink.

``Monitor(settings, sink)`` runs the engine (containers), events, stats,
health, postgres, redis (quotas) and cost sources. Each one is independent:
the Docker daemon, the database, Redis and nginx can each go away and come
back without the others noticing. For every new snapshot the monitor calls
``sink(kind, snapshot)``; for every change of a source's liveness it calls
``sink("source", SourceState(...))``. Kinds: ``containers``, ``health``,
``stats``, ``database``, ``quotas``, ``cost``, ``alerts``, ``events``,
``history``, ``swarm`` (the stack's services, tasks and nodes when it is a
swarm stack, else why it is a compose project:
:mod:`console.core.sources.docker.swarm`), ``others`` (other operators'
operations and the deploy lock they
hold: :mod:`console.core.sources.operations`), ``source``.

History and alerts (:mod:`console.core.sources.prometheus`): the ``history``
source back-fills the charts from Prometheus (:meth:`Monitor.set_history`
changes its range or dashboard and polls it at once). The ``alerts`` the
monitor publishes are Prometheus' (``source="prometheus"``) while its
alerts source answers; when it fails, or no monitoring is configured, the
console's own :class:`~console.core.alerts.AlertEngine` (fed by stats, health
and cost all along) is published instead, with ``source="local"`` and a
``note`` saying why; its next answer switches back. Either way a snapshot is
published when it changed (the local one also on every evaluation while an
alert is pending or firing).

A failing source keeps its last good snapshot (``monitor.latest[kind]``),
reports ``SourceState(ok=False, last_ok, last_error, failures, next_retry)``
and is retried with exponential backoff capped at ``settings.backoff_cap``;
its next success reports ``ok=True`` again. Every await is bounded by a
timeout, so a wedged backend cannot hang a task, and ``await monitor.stop()``
ends the tasks, the streams and the connections within :data:`STOP_GRACE`,
without waiting for a call stuck in a slow backend (its thread is a daemon).

The sink may be a plain function or a coroutine function. It runs on the
monitor's event loop (the app's loop when the TUI starts the monitor); a sink
that raises is logged and does not disturb the sources.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from console.core.alerts import AlertEngine
from console.core.config import Settings
from console.core.errors import redact
from console.core.models import (
    AlertsSnapshot,
    ContainersSnapshot,
    CostSnapshot,
    HealthSnapshot,
    Snapshot,
    SourceState,
    StatsSnapshot,
    SwarmSnapshot,
)
from console.core.sources.base import Clock, Source, backoff_delay, utcnow

__all__ = ["Monitor", "Sink", "default_sources"]

log = logging.getLogger(__name__)

Sink = Callable[[str, Snapshot | SourceState], Awaitable[None] | None]
"""``sink(kind, payload)``; may return an awaitable."""

PROM_ALERTS = "prom-alerts"
"""Name of the source of Prometheus' alerts (:class:`~console.core.sources.prometheus.PromAlertsSource`)."""

SINK_TIMEOUT = 5.0
"""An async sink that takes longer than this is abandoned for that payload."""

STOP_GRACE = 0.25
"""Seconds :meth:`Monitor.stop` waits for the sources to end and close (the
quit waits for it): what is still busy after that (a call stuck in a daemon
that does not answer, a database slow under load) is abandoned."""


def default_sources(settings: Settings, *, clock: Clock = utcnow) -> list[Source]:
    """Every source of the bundled stack, sharing one docker client (the
    swarm source unless ``Settings.mode`` is ``compose``)."""
    from console.core.sources.cost import CostSource
    from console.core.sources.docker.containers import ContainersSource
    from console.core.sources.docker.events import EventsSource
    from console.core.sources.docker.handle import DockerHandle
    from console.core.sources.docker.stats import StatsSource
    from console.core.sources.docker.swarm import SwarmSource
    from console.core.sources.health import HealthSource
    from console.core.sources.operations import OperationsSource
    from console.core.sources.postgres import PostgresSource
    from console.core.sources.prometheus import HistorySource, PromAlertsSource
    from console.core.sources.redis_quota import QuotaSource
    from console.core.sources.swarm_stats import SwarmStatsSource

    handle = DockerHandle(settings)
    swarm: list[Source] = (
        []
        if settings.mode == "compose"
        else [SwarmSource(settings, handle, clock=clock), SwarmStatsSource(settings, clock=clock)]
    )
    return [
        ContainersSource(settings, handle, clock=clock),
        *swarm,
        EventsSource(settings, handle, clock=clock),
        StatsSource(settings, handle, clock=clock),
        HealthSource(settings, clock=clock),
        PostgresSource(settings, clock=clock),
        QuotaSource(settings, clock=clock),
        CostSource(settings, clock=clock),
        HistorySource(settings, clock=clock),
        PromAlertsSource(settings, clock=clock),
        OperationsSource(settings, clock=clock),
    ]


@dataclass
class _Runtime:
    source: Source
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    last_ok: datetime | None = None
    state: SourceState | None = None
    task: asyncio.Task[None] | None = None


class Monitor:
    """Runs every source and feeds the sink. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        sources: Sequence[Source] | None = None,
        clock: Clock = utcnow,
        autostart: bool = True,
        backoff_base: float = 1.0,
    ) -> None:
        """Create the monitor. Inside a running event loop it starts at once
        (``autostart``); otherwise call ``await monitor.start()``."""
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self.backoff_base = backoff_base
        self.sources: list[Source] = (
            list(sources) if sources is not None else default_sources(settings, clock=clock)
        )
        self.alerts = AlertEngine.from_settings(settings, clock=clock)
        self.latest: dict[str, Snapshot] = {}
        """The last good snapshot of each kind (kept while its source fails)."""
        self._runtimes: dict[str, _Runtime] = {}
        self._started = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_alerts: list[tuple[str, str, bool]] | None = None
        self._prom_alerts: Source | None = next(
            (s for s in self.sources if s.kind == "alerts" and s.name == PROM_ALERTS), None
        )
        self._local_note: str | None = None
        """Why the alerts are the console's own (None: Prometheus answers, or
        there is no Prometheus alerts source at all)."""
        self._alerts_mode: str | None = "local" if self._prom_alerts is None else None
        """Whose alerts are published: ``prometheus`` (its last poll answered),
        ``local`` (the console's own), None until the Prometheus source first
        reports (so the start does not flash the local ones)."""
        self._last_prom_alerts: dict[str, Any] | None = None
        self._last_swarm: SwarmSnapshot | None = None
        """The previous swarm snapshot, to tell what changed (events)."""
        self._closing: list[asyncio.Future[None]] = []
        """The sources' closers, kept referenced while they finish after stop()."""
        self._wire_events()
        if autostart:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._start_tasks(loop)

    # --- public API ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start every source's task (idempotent)."""
        self._start_tasks(asyncio.get_running_loop())

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Cancel the tasks, close streams and connections (idempotent).

        Returns within about ``grace`` seconds whatever the backends do: the
        sources' closing goes on in the background past that (their sockets
        are closed by then or at exit), and no thread is waited for. A
        console quitting under load must not wait for a slow call."""
        if self._stopping:
            return
        self._stopping = True
        deadline = asyncio.get_running_loop().time() + grace
        tasks = [rt.task for rt in self._runtimes.values() if rt.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        handles = {
            id(h): h for src in self.sources if (h := getattr(src, "handle", None)) is not None
        }
        self._closing = [
            *(asyncio.ensure_future(self._close_source(src)) for src in self.sources),
            *(asyncio.ensure_future(h.aclose()) for h in handles.values()),
        ]
        left = deadline - asyncio.get_running_loop().time()
        await asyncio.wait(self._closing, timeout=max(left, 0.05))

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._started and not self._stopping

    @property
    def states(self) -> dict[str, SourceState]:
        """The current state of each source that has reported one, by source name."""
        return {name: rt.state for name, rt in self._runtimes.items() if rt.state is not None}

    def source(self, name: str) -> Source | None:
        """A source by name (engine, events, stats, health, postgres, redis, cost)."""
        rt = self._runtimes.get(name)
        return rt.source if rt else next((s for s in self.sources if s.name == name), None)

    def set_history(self, range_seconds: int | None = None, view: str | None = None) -> None:
        """Change the history's range (900, 3600, 21600 or 86400 s) and/or the
        dashboard whose charts it queries besides the main ones (a name of
        :data:`~console.core.history.DASHBOARDS`; ``""`` for none), then poll
        it now. None leaves that setting as it is. A bad value raises
        ValueError with a one-line reason, and nothing changes."""
        from console.core.history import DASHBOARDS, RANGES
        from console.core.sources.prometheus import HistorySource

        src = self.source("history")
        if not isinstance(src, HistorySource):
            raise ValueError("this monitor has no history source")
        if range_seconds is not None and range_seconds not in RANGES:
            shown = ", ".join(str(r) for r in RANGES)
            raise ValueError(f"history range must be one of {shown} seconds, not {range_seconds!r}")
        if view and view not in DASHBOARDS:
            raise ValueError(f"unknown dashboard {view!r}; known: {', '.join(DASHBOARDS)}")
        if range_seconds is not None:
            src.range_seconds = range_seconds
        if view is not None:
            src.view = view or None
        self.refresh("history")

    def refresh(self, name: str | None = None) -> None:
        """Poll a source (by source name or sink kind) now, or all of them;
        also cuts a failing source's backoff short."""
        for rt in self._runtimes.values():
            if name is None or rt.source.name == name or rt.source.kind == name:
                rt.wake.set()

    # --- internals ----------------------------------------------------------------------

    def _wire_events(self) -> None:
        from console.core.sources.docker.events import EventsSource

        for src in self.sources:
            if isinstance(src, EventsSource):
                src.on_event = self._on_engine_event

    def _on_engine_event(self, _event: Any) -> None:
        """Called from the events thread: refresh containers and stats soon."""
        loop = self._loop
        if loop is None or self._stopping:
            return
        try:
            loop.call_soon_threadsafe(self._after_engine_event)
        except RuntimeError:
            pass  # loop closed

    def _after_engine_event(self) -> None:
        from console.core.sources.docker.stats import StatsSource

        for src in self.sources:
            if isinstance(src, StatsSource):
                src.request_relist()
        self.refresh("engine")
        self.refresh("stats")

    def _start_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._started or self._stopping:
            return
        self._started = True
        self._loop = loop
        for src in self.sources:
            rt = _Runtime(source=src)
            src.early = functools.partial(self._publish, src)
            self._runtimes[src.name] = rt
            rt.task = loop.create_task(self._run(rt), name=f"stackdeck-source-{src.name}")

    async def _close_source(self, src: Source) -> None:
        try:
            await asyncio.wait_for(src.aclose(), timeout=5.0)
        except Exception as exc:
            log.debug("closing %s: %s", src.name, redact(exc))

    async def _emit(self, kind: str, payload: Snapshot | SourceState) -> None:
        try:
            result = self.sink(kind, payload)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, timeout=SINK_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sink failed for %s: %s", kind, redact(exc))

    async def _sleep(self, rt: _Runtime, seconds: float) -> None:
        """Sleep, or wake early when :meth:`refresh` is called."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(rt.wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        rt.wake.clear()

    async def _run(self, rt: _Runtime) -> None:
        src = rt.source
        while not self._stopping:
            rt.wake.clear()
            try:
                snapshot = await asyncio.wait_for(src.poll(), timeout=src.poll_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                partial = getattr(exc, "snapshot", None)
                if isinstance(partial, Snapshot):
                    await self._publish(src, partial)
                await self._failed(rt, exc)
                continue
            await self._succeeded(rt)
            if snapshot is not None:
                await self._publish(src, snapshot)
            await self._sleep(rt, src.interval)

    async def _succeeded(self, rt: _Runtime) -> None:
        rt.failures = 0
        rt.last_ok = self.clock()
        if rt.state is None or not rt.state.ok:
            rt.state = SourceState(name=rt.source.name, ok=True, last_ok=rt.last_ok)
            await self._emit("source", rt.state)

    async def _failed(self, rt: _Runtime, exc: BaseException) -> None:
        rt.failures += 1
        delay = backoff_delay(rt.failures, base=self.backoff_base, cap=self.settings.backoff_cap)
        reason = _reason(exc)
        rt.state = SourceState(
            name=rt.source.name,
            ok=False,
            last_ok=rt.last_ok,
            last_error=self.settings.redact(reason),
            failures=rt.failures,
            next_retry=self.clock() + timedelta(seconds=delay),
        )
        log.info("source %s failed (%d): %s", rt.source.name, rt.failures, rt.state.last_error)
        await self._emit("source", rt.state)
        if rt.source is self._prom_alerts:
            await self._alerts_local(f"{rt.state.last_error}: evaluated by this console")
        await self._sleep(rt, delay)

    async def _publish(self, src: Source, snapshot: Snapshot) -> None:
        if src is self._prom_alerts and isinstance(snapshot, AlertsSnapshot):
            await self._alerts_from_prometheus(snapshot)
            return
        self.latest[src.kind] = snapshot
        await self._emit(src.kind, snapshot)
        if isinstance(snapshot, ContainersSnapshot):
            self._note_containers(snapshot)
        elif isinstance(snapshot, SwarmSnapshot):
            self._note_swarm(snapshot)
        fed = True
        if isinstance(snapshot, StatsSnapshot):
            self.alerts.feed_stats(snapshot)
        elif isinstance(snapshot, HealthSnapshot):
            self.alerts.feed_health(snapshot)
        elif isinstance(snapshot, CostSnapshot):
            self.alerts.feed_cost(snapshot)
        else:
            fed = False
        if fed:
            # Fed whatever the mode, so the fallback is current the moment
            # Prometheus stops answering.
            await self._publish_local()

    def _note_containers(self, snapshot: ContainersSnapshot) -> None:
        """Tell the health source which colours are stopped on standby (it
        does not ask them); a change polls it at once, so a colour a deploy
        just started is asked without waiting a full interval."""
        from console.core.sources.health import HealthSource

        for src in self.sources:
            if isinstance(src, HealthSource) and src.note_containers(snapshot):
                self.refresh(src.name)

    def _note_swarm(self, snapshot: SwarmSnapshot) -> None:
        """The swarm's changes since its last snapshot (a node down, a task
        rescheduled, an update's state) go to the events timeline."""
        from console.core.sources.docker.events import EventsSource
        from console.core.sources.docker.swarm import swarm_changes
        from console.core.sources.swarm_stats import SwarmStatsSource

        before, self._last_swarm = self._last_swarm, snapshot
        for src in self.sources:  # per-node stats: only a swarm stack has them
            if isinstance(src, SwarmStatsSource) and src.note_mode(snapshot.mode):
                self.refresh(src.name)
        changes = swarm_changes(before, snapshot)
        for src in self.sources:
            if isinstance(src, EventsSource) and src.add(changes):
                self.refresh(src.name)

    # --- alerts: Prometheus while it answers, the console's own otherwise ----------------

    async def _alerts_from_prometheus(self, snapshot: AlertsSnapshot) -> None:
        if snapshot.source != "prometheus":
            # The source is not authoritative (no monitoring configured).
            await self._alerts_local(snapshot.note or "no Prometheus: evaluated by this console")
            return
        switched = self._alerts_mode != "prometheus"
        self._alerts_mode = "prometheus"
        self._local_note = None
        key = snapshot.model_dump(exclude={"taken_at"})
        if switched or key != self._last_prom_alerts:
            self._last_prom_alerts = key
            self.latest["alerts"] = snapshot
            await self._emit("alerts", snapshot)

    async def _alerts_local(self, note: str) -> None:
        """Prometheus does not answer: the console's evaluation, saying why."""
        switched = self._alerts_mode != "local" or note != self._local_note
        self._alerts_mode = "local"
        self._local_note = note
        await self._publish_local(force=switched)

    async def _publish_local(self, *, force: bool = False) -> None:
        if self._alerts_mode != "local":
            return  # Prometheus' alerts are shown (or its first answer is awaited)
        alerts = self.alerts.snapshot()
        if self._local_note:
            alerts = alerts.model_copy(update={"note": self._local_note})
        signature = [(a.rule, a.subject, a.firing) for a in alerts.alerts]
        # Publish on every change of the set, and on every evaluation while
        # something is pending or firing (values and durations move).
        if force or signature != self._last_alerts or alerts.alerts:
            self._last_alerts = signature
            self.latest["alerts"] = alerts
            await self._emit("alerts", alerts)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
