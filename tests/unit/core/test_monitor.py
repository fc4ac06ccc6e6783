"""The monitor's supervision of sources: fan-out to the sink, last good
snapshot kept on failure, backoff and recovery, timeouts, clean stop.

Uses small in-process fake sources (no Docker, database or network here; the
real sources are exercised in tests/integration/console)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from console.core.config import Settings
from console.core.errors import register_secret
from console.core.models import ContainerStats, Snapshot, SourceState, StatsSnapshot
from console.core.monitor import Monitor
from console.core.sources.base import Source

WAIT = 10.0  # generous upper bound for a condition to come true (not a timed assert)


class FakeSource(Source):
    def __init__(
        self, settings: Settings, name: str, kind: str, behaviour: Callable[[int], Any]
    ) -> None:
        super().__init__(settings)
        self.name = name
        self.kind = kind
        self.behaviour = behaviour
        self.calls = 0
        self.closed = False
        self._interval = 0.01
        self._timeout = 1.0

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def poll_timeout(self) -> float:
        return self._timeout

    async def poll(self) -> Snapshot | None:
        self.calls += 1
        result = self.behaviour(self.calls)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        self.closed = True


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def __call__(self, kind: str, payload: Any) -> None:
        self.items.append((kind, payload))
        self.changed.set()

    def states(self, name: str) -> list[SourceState]:
        return [p for k, p in self.items if k == "source" and p.name == name]

    def of(self, kind: str) -> list[Any]:
        return [p for k, p in self.items if k == kind]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout=WAIT)


def snap(n: int = 0) -> StatsSnapshot:
    return StatsSnapshot(taken_at=datetime.now(UTC), total_cpu_percent=float(n))


@pytest.fixture
def settings(clean_env: Path) -> Settings:
    return Settings(repo_root=clean_env, backoff_cap=0.05, alerts={"cpu": {"for_seconds": 0}})


async def test_snapshots_reach_the_sink_and_stop_closes(settings: Settings) -> None:
    rec = Recorder()
    a = FakeSource(settings, "stats", "stats", lambda n: snap(n))
    b = FakeSource(settings, "redis", "quotas", lambda n: None)  # nothing new
    monitor = Monitor(settings, rec, sources=[a, b], autostart=False)
    await monitor.start()
    await monitor.start()  # idempotent
    await rec.until(lambda: len(rec.of("stats")) >= 3)
    assert [s.ok for s in rec.states("stats")] == [True]  # one state change only
    assert rec.states("redis")[0].ok
    assert rec.of("quotas") == []
    assert monitor.latest["stats"] is rec.of("stats")[-1]
    await monitor.stop()
    await monitor.stop()
    assert a.closed and b.closed
    assert not monitor.running
    calls = a.calls
    await asyncio.sleep(0.05)
    assert a.calls == calls  # no polling after stop


async def test_stop_abandons_a_blocked_engine_call_and_a_slow_close(settings: Settings) -> None:
    """Quitting under load (issue 16): ``stop()`` returns while a source's
    docker call is still blocked and another source's close is still busy.
    The blocked call's thread is a daemon, so nothing joins it at exit (a
    ``ThreadPoolExecutor``'s threads are joined by ``concurrent.futures`` at
    interpreter exit: the quit waited for the slowest call)."""
    import threading

    from console.core.sources.docker.handle import DockerHandle

    handle = DockerHandle(settings)
    entered, release = threading.Event(), threading.Event()
    callers: list[threading.Thread] = []

    def blocking_call() -> StatsSnapshot:
        callers.append(threading.current_thread())
        entered.set()
        release.wait(WAIT * 6)  # a daemon that does not answer
        return snap()

    class Stuck(FakeSource):
        async def poll(self) -> Snapshot | None:
            return await self.handle.call(blocking_call, deadline=WAIT * 6)

    stuck = Stuck(settings, "stats", "stats", lambda n: None)
    stuck.handle = handle  # type: ignore[attr-defined]  # the monitor closes a source's handle
    stuck._timeout = WAIT * 6
    closing, finish = asyncio.Event(), asyncio.Event()
    close_ended: list[str] = []

    class SlowClose(FakeSource):
        async def aclose(self) -> None:
            closing.set()
            try:
                await finish.wait()  # a connection's goodbye that takes its time
                close_ended.append("finished")
            except asyncio.CancelledError:
                close_ended.append("cancelled")
                raise

    slow = SlowClose(settings, "redis", "quotas", lambda n: None)
    monitor = Monitor(settings, Recorder(), sources=[stuck, slow], autostart=False)
    await monitor.start()
    try:
        await asyncio.wait_for(asyncio.to_thread(entered.wait, WAIT), timeout=WAIT)
        assert entered.is_set(), "the docker call never started"
        await monitor.stop()
        # returned with the call still blocked, on a thread nothing will join
        assert callers[0].is_alive() and not release.is_set()
        assert callers[0].daemon, "the call's thread would be joined at exit"
        # and without waiting for (or cutting short) the slow close
        assert closing.is_set() and close_ended == []
        finish.set()
        await asyncio.wait_for(asyncio.gather(*monitor._closing), timeout=WAIT)
        assert close_ended == ["finished"]
    finally:
        release.set()


async def test_a_source_can_show_a_partial_snapshot_before_its_poll_returns(
    settings: Settings,
) -> None:
    rec = Recorder()
    release = asyncio.Event()
    src = FakeSource(settings, "stats", "stats", lambda n: None)

    async def slow_first(n: int) -> Any:
        if n == 1:
            assert src.early is not None  # set by the monitor
            await src.early(snap(100))  # what is known already
            await release.wait()  # the slow rest
        return snap(n)

    src.behaviour = slow_first
    async with Monitor(settings, rec, sources=[src], autostart=False) as monitor:
        await monitor.start()
        await rec.until(lambda: len(rec.of("stats")) == 1)
        assert rec.of("stats")[0].total_cpu_percent == 100.0  # before the poll returned
        assert monitor.latest["stats"].total_cpu_percent == 100.0
        release.set()
        await rec.until(lambda: len(rec.of("stats")) >= 2)
        assert rec.of("stats")[1].total_cpu_percent == 1.0


async def test_failure_keeps_last_snapshot_backs_off_and_recovers(settings: Settings) -> None:
    rec = Recorder()
    register_secret("pw-in-error-1234")

    def flaky(n: int) -> Any:
        if n == 1:
            return snap(1)
        if n <= 4:
            return ConnectionError("connection refused, password pw-in-error-1234")
        return snap(n)

    bad = FakeSource(settings, "postgres", "database", flaky)
    good = FakeSource(settings, "health", "health", lambda n: snap(n))
    async with Monitor(settings, rec, sources=[bad, good], autostart=False) as monitor:
        await rec.until(lambda: any(s.ok for s in rec.states("postgres")[1:]))
        states = rec.states("postgres")
        assert [s.ok for s in states] == [True, False, False, False, True]
        assert [s.failures for s in states] == [0, 1, 2, 3, 0]
        failed = states[1]
        assert failed.last_ok == states[0].last_ok
        assert failed.next_retry is not None and failed.next_retry >= failed.last_ok
        assert "connection refused" in (failed.last_error or "")
        assert "pw-in-error-1234" not in (failed.last_error or "")
        # the good source never noticed
        assert [s.ok for s in rec.states("health")] == [True]
        # the last good snapshot was kept while failing, then replaced
        first = rec.of("database")[0]
        assert first.total_cpu_percent == 1.0
        await rec.until(lambda: monitor.latest["database"] is not first)


async def test_hung_poll_times_out(settings: Settings) -> None:
    rec = Recorder()

    async def hang() -> None:
        await asyncio.sleep(3600)

    src = FakeSource(settings, "redis", "quotas", lambda n: hang())
    src._timeout = 0.05
    async with Monitor(settings, rec, sources=[src], autostart=False):
        await rec.until(lambda: len(rec.states("redis")) >= 2)
    states = rec.states("redis")
    assert not states[0].ok and states[0].last_error == "timed out"
    assert states[1].failures == 2


async def test_partial_snapshot_is_published_with_a_failed_state(settings: Settings) -> None:
    rec = Recorder()

    class Degraded(Exception):
        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__("nginx unreachable")
            self.snapshot = snapshot

    partial = snap(7)
    src = FakeSource(settings, "health", "health", lambda n: Degraded(partial))
    async with Monitor(settings, rec, sources=[src], autostart=False):
        await rec.until(lambda: bool(rec.states("health")))
    assert rec.of("health")[0] is partial
    assert rec.states("health")[0].ok is False


async def test_a_failing_sink_does_not_stop_the_sources(settings: Settings) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def sink(kind: str, payload: Any) -> None:
        seen.append(kind)
        if len(seen) >= 5:
            done.set()
        raise RuntimeError("UI bug")

    src = FakeSource(settings, "stats", "stats", lambda n: snap(n))
    async with Monitor(settings, sink, sources=[src], autostart=False):
        await asyncio.wait_for(done.wait(), WAIT)
    assert seen.count("stats") >= 3


async def test_autostart_inside_a_running_loop(settings: Settings) -> None:
    rec = Recorder()
    monitor = Monitor(
        settings, rec, sources=[FakeSource(settings, "stats", "stats", lambda n: snap(n))]
    )
    try:
        await rec.until(lambda: bool(rec.of("stats")))
    finally:
        await monitor.stop()


async def test_refresh_wakes_a_sleeping_source(settings: Settings) -> None:
    rec = Recorder()
    src = FakeSource(settings, "cost", "cost", lambda n: snap(n))
    src._interval = 3600
    async with Monitor(settings, rec, sources=[src], autostart=False) as monitor:
        await rec.until(lambda: len(rec.of("cost")) == 1)
        monitor.refresh("cost")
        await rec.until(lambda: len(rec.of("cost")) == 2)


async def test_stats_feed_the_alert_engine(settings: Settings) -> None:
    rec = Recorder()
    hot = StatsSnapshot(
        taken_at=datetime.now(UTC),
        host_cpus=2,
        total_cpu_percent=190.0,
        containers=[
            ContainerStats(
                name="x_db_prod",
                service="db",
                cpu_percent=190.0,
                mem_usage=1,
                mem_limit=100,
                mem_percent=1.0,
            )
        ],
    )
    src = FakeSource(settings, "stats", "stats", lambda n: hot)
    async with Monitor(settings, rec, sources=[src], autostart=False):
        await rec.until(lambda: bool(rec.of("alerts")))
    alerts = rec.of("alerts")[-1].alerts
    assert {(a.rule, a.subject, a.firing) for a in alerts} == {
        ("HighCPUUsage", "db", True),
        ("HighCPUUsage", "stack", True),
    }
