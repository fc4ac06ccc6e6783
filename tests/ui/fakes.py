"""Fakes for the UI tests: a monitor that replays recorded fixtures, a fixed
clock, an ops runner and a log follower driven by the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from console.core.config import Settings
from console.core.models import (
    AlertsSnapshot,
    ContainersSnapshot,
    CostSnapshot,
    DatabaseSnapshot,
    EventsSnapshot,
    HealthSnapshot,
    HistorySnapshot,
    LogLine,
    OpEvent,
    OtherOpsSnapshot,
    QuotaSnapshot,
    SourceState,
    StatsSnapshot,
    SwarmSnapshot,
    SwarmStatsSnapshot,
)
from console.core.ops.table import OpParams
from console.ui.app import StackdeckApp, create_app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOW = datetime(2025, 3, 14, 14, 2, 11, tzinfo=UTC)
"""The fixed clock of every UI test (matches fixtures/make_fixtures.py)."""

MODELS: dict[str, type[BaseModel]] = {
    "containers": ContainersSnapshot,
    "health": HealthSnapshot,
    "stats": StatsSnapshot,
    "database": DatabaseSnapshot,
    "quotas": QuotaSnapshot,
    "cost": CostSnapshot,
    "alerts": AlertsSnapshot,
    "events": EventsSnapshot,
    "history": HistorySnapshot,
    "others": OtherOpsSnapshot,
    "swarm": SwarmSnapshot,
    "swarm_stats": SwarmStatsSnapshot,
    "source": SourceState,
}


def load_feed(scenario: str) -> list[tuple[str, BaseModel]]:
    """The recorded (kind, model) items of ``fixtures/<scenario>.json``."""
    data = json.loads((FIXTURES / f"{scenario}.json").read_text(encoding="utf-8"))
    return [
        (item["kind"], MODELS[item["kind"]].model_validate(item["payload"]))
        for item in data["feed"]
    ]


class FixedClock:
    """``clock()`` returns ``now``; tests may ``advance`` it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeMonitor:
    """Replays a feed through the sink on ``start()``; records ``stop()``.

    ``push`` sends more items later (a source failing, a new tick).
    """

    instances: list[FakeMonitor] = []

    def __init__(
        self,
        settings: Settings,
        sink: Callable[[str, Any], None],
        feed: Iterable[tuple[str, BaseModel]],
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.feed = list(feed)
        self.started = False
        self.stopped = False
        self.history_wishes: list[dict[str, Any]] = []
        FakeMonitor.instances.append(self)

    async def start(self) -> None:
        self.started = True
        for kind, payload in self.feed:
            self.sink(kind, payload)

    async def stop(self) -> None:
        self.stopped = True

    def push(self, kind: str, payload: BaseModel) -> None:
        self.sink(kind, payload)

    def set_history(self, **wish: Any) -> None:
        """What the UI asked of the history source (range, dashboard view)."""
        self.history_wishes.append(wish)


def monitor_factory(
    scenario: str | None,
) -> Callable[[Settings, Callable[[str, Any], None]], FakeMonitor]:
    feed = load_feed(scenario) if scenario else []

    def factory(settings: Settings, sink: Callable[[str, Any], None]) -> FakeMonitor:
        return FakeMonitor(settings, sink, feed)

    return factory


class FakeOps:
    """An ops runner the test steps through: each op yields a start event, then
    waits for ``release`` before yielding its remaining steps."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any, OpParams]] = []
        self.release = asyncio.Event()
        self.fail = fail

    def __call__(self, name: str, ctx: Any, params: OpParams) -> AsyncIterator[OpEvent]:
        self.calls.append((name, ctx, params))
        return self._run(name, params)

    async def _run(self, name: str, params: OpParams) -> AsyncIterator[OpEvent]:
        def ev(step: str, status: str, message: str) -> OpEvent:
            return OpEvent(at=NOW, op=name, step=step, status=status, message=message)  # type: ignore[arg-type]

        target = getattr(params, "version", "")
        yield ev("preflight", "start", f"checking before {name} {target}".strip())
        yield ev("preflight", "ok", "engine, disk, database: ok")
        await self.release.wait()
        yield ev("start-idle", "ok", "blue started with v1.2.4")
        yield ev("wait-healthy", "ok", "blue healthy, reports v1.2.4")
        if self.fail:
            yield ev("result", "fail", "smoke test failed: /api/health 503; traffic stays on green")
            return
        yield ev("switch", "ok", "nginx now serves blue")
        yield ev("result", "done", f"{name} {target} complete".replace("  ", " "))


def load_op_events(name: str) -> list[OpEvent]:
    """The recorded events of ``fixtures/<name>.json`` (an operation's
    stream as the real engine yielded it), re-timed to the fixed clock."""
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    events = [OpEvent.model_validate(item) for item in data["events"]]
    if not events:
        return events
    last = events[-1].at
    return [e.model_copy(update={"at": NOW - (last - e.at)}) for e in events]


class FakeVacuum:
    """An ops runner for a VACUUM in progress: replays the recorded events of
    a real one (``fixtures/vacuum_progress.json``: begin, the VACUUM's start
    with its session, progress samples), then runs until it is cancelled."""

    def __init__(self, events: list[OpEvent] | None = None) -> None:
        self.events = events if events is not None else load_op_events("vacuum_progress")
        self.calls: list[tuple[str, Any, OpParams]] = []
        self.replayed = asyncio.Event()
        self.cancelled = False

    def __call__(self, name: str, ctx: Any, params: OpParams) -> AsyncIterator[OpEvent]:
        self.calls.append((name, ctx, params))
        return self._run()

    async def _run(self) -> AsyncIterator[OpEvent]:
        for event in self.events:
            yield event
        self.replayed.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class FakeCanceller:
    """The cancel key's canceller: records what it was asked, then stops the
    operation as the real one does (``stop()``), without an audit file."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, ctx: Any, *, stop: Callable[[], Any], **kwargs: Any) -> str | None:
        self.calls.append(kwargs)
        await stop()
        return None


class FakeLogs:
    """A log follower: the tail lines at once, then whatever the test ``feed``s."""

    def __init__(self, tail: list[str]) -> None:
        self.tail = tail
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.opened: list[tuple[str, int]] = []

    def feed(self, text: str) -> None:
        self.queue.put_nowait(text)

    def close(self) -> None:
        self.queue.put_nowait(None)

    def __call__(self, settings: Settings, container: str, tail: int) -> AsyncIterator[LogLine]:
        self.opened.append((container, tail))
        return self._lines(container)

    async def _lines(self, container: str) -> AsyncIterator[LogLine]:
        for i, text in enumerate(self.tail):
            yield LogLine(
                at=NOW - timedelta(seconds=len(self.tail) - i),
                container=container,
                text=text,
                stream="stderr" if "ERROR" in text else "stdout",
            )
        while True:
            more = await self.queue.get()
            if more is None:
                return
            yield LogLine(at=NOW, container=container, text=more)


def test_settings(**overrides: Any) -> Settings:
    """Settings of the default stack, isolated from the developer's environment."""
    values: dict[str, Any] = {
        "project": "investment",
        "base_url": "http://127.0.0.1:80",
        "run_dir": "/run/investment",
        "state_dir": "/var/lib/stackdeck/investment",
        "read_only": False,
    }
    values.update(overrides)
    return Settings(**values)


VERSIONS = ["v1.2.1", "v1.2.2", "v1.2.3", "v1.3.0-rc.1"]
"""The versions the fake engine has images of."""


async def fake_versions(ctx: Any) -> list[str]:
    return list(VERSIONS)


def make_app(
    scenario: str | None = "normal",
    *,
    read_only: bool = False,
    ops: FakeOps | FakeVacuum | None = None,
    logs: FakeLogs | None = None,
    clock: FixedClock | None = None,
    since: Callable[[Settings], Any] | None = None,
    canceller: FakeCanceller | None = None,
    leave: Callable[[int], None] | None = None,
) -> StackdeckApp:
    return create_app(
        test_settings(read_only=read_only),
        monitor_factory=monitor_factory(scenario),
        clock=clock or FixedClock(),
        ops_runner=ops or FakeOps(),
        log_follower=logs or FakeLogs([]),
        version_lister=fake_versions,
        since_loader=since or FakeSince(),
        hostname="prod-host",
        preload=False,  # exact frames: the chart never waits for a background import
        op_canceller=canceller or FakeCanceller(),
        leave=leave,
    )


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test despite its name


class FakeSince:
    """The "since the deploy" loader: ``snapshot`` (default :func:`since_snapshot`)
    or ``error``; counts its calls."""

    def __init__(self, snapshot: Any = None, error: Exception | None = None) -> None:
        self.snapshot = snapshot
        self.error = error
        self.calls = 0

    async def __call__(self, settings: Settings) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        from .memory import since_snapshot

        return self.snapshot or since_snapshot()
