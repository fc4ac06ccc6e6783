"""The console reads the stack's memory: history and alerts from the real
Prometheus and Alertmanager of the stack the ``stack`` fixture points at.

- every chart's PromQL (the main panels and the four dashboards) is accepted
  by the real Prometheus, and the ones an idle stack feeds have data;
- load generated *before* a history source exists is in its first snapshot
  (the console opens on the last hour, not on an empty chart);
- an operation run through the ops engine is a marker;
- Prometheus stopped: the alerts are the console's own (``local``, with a
  note), the history is missing with a reason naming Prometheus, the markers
  still come; Prometheus started again: back to Prometheus' alerts.

Waits are bounded polls for a positive condition; no fixed sleep.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from console.core.history import DASHBOARDS, MAIN_CHARTS, ChartSpec
from console.core.models import AlertsSnapshot, HistorySnapshot
from console.core.monitor import Monitor
from console.core.ops import run_op
from console.core.prom import PromClient
from console.core.sources.prometheus import HistorySource, PromAlertsSource
from tests.load import HEALTH, LoadLoop

pytestmark = pytest.mark.stack

DEADLINE = 90.0


def settings_of(stack: Any) -> Any:
    return stack.settings(backoff_cap=2.0, request_timeout=5.0)


async def until(what: str, check: Callable[[], Any], *, within: float = DEADLINE) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(0.5)


class Latest:
    """A sink keeping the last payload of each kind."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.history: list[HistorySnapshot] = []

    def __call__(self, kind: str, payload: Any) -> None:
        self.items[kind] = payload
        if isinstance(payload, HistorySnapshot):
            self.history.append(payload)

    @property
    def alerts(self) -> AlertsSnapshot | None:
        return self.items.get("alerts")


def all_specs() -> list[ChartSpec]:
    seen: dict[str, ChartSpec] = {}
    for spec in (*MAIN_CHARTS, *(c for charts in DASHBOARDS.values() for c in charts)):
        seen.setdefault(spec.chart, spec)
    return list(seen.values())


async def test_every_chart_expression_is_answered_by_the_stacks_prometheus(stack: Any) -> None:
    settings = settings_of(stack)
    prom = PromClient(settings)
    try:
        end = time.time()
        empty = []
        for spec in all_specs():
            # raises PromError on a query Prometheus refuses
            matrix = await prom.query_range(spec.expr, end - 900, end, 15)
            instant = await prom.query(spec.expr)
            points = sum(len(p) for _labels, p in matrix)
            if spec.idle_data and (points == 0 or not instant):
                empty.append(spec.chart)
        assert not empty, f"charts without data on the stack: {empty}"
    finally:
        await prom.aclose()


async def test_the_first_history_holds_the_load_sent_before_it_existed(stack: Any) -> None:
    settings = settings_of(stack)
    prom = PromClient(settings)
    counted = 'sum(http_request_duration_seconds_count{job="backend",route="/api/health"})'
    try:
        before = (await prom.query(counted))[0][1]
        load_start = time.time()
        async with LoadLoop(stack.base_url, HEALTH, max_requests=800, max_seconds=60) as load:
            await until("800 requests sent", lambda: len(load.samples) >= 800 or not load.running)
        load_end = time.time()
        sent = len([s for s in load.samples if s.status == 200])
        assert sent >= 500
        # Barrier: Prometheus has scraped every request of the load.
        await until(
            "Prometheus scraped the load",
            lambda: _scraped(prom, counted, before + sent),
        )
    finally:
        await prom.aclose()

    created = datetime.now(UTC)
    sink = Latest()
    # 15 minutes: a point every scrape, so the load's own seconds have points
    source = HistorySource(settings, range_seconds=900)
    async with Monitor(settings, sink, sources=[source]):
        first = await until("a history snapshot", lambda: sink.history[:1])
    snap = first[0]
    assert snap.available, snap.reason
    assert snap.range_seconds == 900 and snap.step_seconds == 15
    cpu = [p for s in snap.chart("cpu") for p in s.points]
    assert cpu and min(t for t, _v in cpu) < created.timestamp()
    assert {s.subject for s in snap.chart("cpu")} >= {"nginx", "db", "redis"}
    # points while the load ran (before the source existed), at ~18 req/s
    # sent; the idle stack serves well under 1 req/s
    loaded = [v for s in snap.chart("requests") for t, v in s.points if load_start <= t <= load_end]
    assert loaded and max(loaded) > 3.0, (load_start, load_end, snap.chart("requests"))


async def _scraped(prom: PromClient, expr: str, at_least: float) -> bool:
    answer = await prom.query(expr)
    return bool(answer) and answer[0][1] >= at_least


async def test_an_operation_is_a_marker(stack: Any) -> None:
    ctx = stack.op_context()
    events = [e async for e in run_op("cache-flush", ctx, dry_run=True)]
    assert events[-1].status == "done", events[-1]
    op_id = events[0].data["op_id"]
    snap = await HistorySource(settings_of(stack)).poll()
    mine = [m for m in snap.markers if m.op_id == op_id]
    assert len(mine) == 1, snap.markers
    assert mine[0].op == "cache-flush"
    assert mine[0].result == "ok"
    assert mine[0].label == f"cache-flush cache: (dry run) by {ctx.operator.user}: ok"
    assert snap.start is not None and mine[0].at >= snap.start


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


async def _prometheus_ready(settings: Any) -> bool:
    try:
        async with httpx.AsyncClient(timeout=3, trust_env=False) as http:
            r = await http.get(f"{settings.prometheus_url}/-/ready")
            return r.status_code in (200, 401)
    except httpx.HTTPError:
        return False


@pytest.mark.destructive
async def test_without_prometheus_alerts_are_local_and_history_says_why(stack: Any) -> None:
    settings = settings_of(stack)
    ctx = stack.op_context()
    events = [e async for e in run_op("cache-flush", ctx, dry_run=True)]
    op_id = events[0].data["op_id"]
    container = stack.container("prometheus")
    sink = Latest()
    history = HistorySource(settings)
    monitor = Monitor(settings, sink, sources=[history, PromAlertsSource(settings)])
    await monitor.start()
    try:
        await until(
            "Prometheus' alerts and history",
            lambda: (
                sink.alerts is not None
                and sink.alerts.source == "prometheus"
                and sink.history
                and sink.history[-1].available
            ),
        )
        stopped = _docker("stop", "-t", "5", container)
        assert stopped.returncode == 0, stopped.stderr
        monitor.refresh()
        await until(
            "the console's own alerts",
            lambda: sink.alerts is not None and sink.alerts.source == "local",
        )
        assert sink.alerts is not None and sink.alerts.note is not None
        assert sink.alerts.note.startswith("Prometheus at 127.0.0.1:")
        assert sink.alerts.note.endswith(": evaluated by this console")
        missing = await until(
            "history marked missing",
            lambda: [h for h in sink.history if not h.available],
        )
        assert missing[-1].reason is not None and "Prometheus" in missing[-1].reason
        assert any(m.op_id == op_id for m in missing[-1].markers)
        assert monitor.states["history"].ok is False
        assert monitor.states["prom-alerts"].ok is False

        started = _docker("start", container)
        assert started.returncode == 0, started.stderr
        await until("Prometheus ready", lambda: _prometheus_ready(settings), within=120)
        monitor.refresh()
        await until(
            "Prometheus' alerts again",
            lambda: sink.alerts is not None and sink.alerts.source == "prometheus",
        )
        await until("history again", lambda: sink.history[-1].available)
        assert sink.alerts.note is None
    finally:
        await monitor.stop()
        if "true" not in _docker("inspect", "-f", "{{.State.Running}}", container).stdout:
            _docker("start", container)
        await until("Prometheus ready", lambda: _prometheus_ready(settings), within=120)
