"""The monitor's alerts: Prometheus' while it answers, the console's own
(``source="local"``, with a note) when it does not, and back; the history
source's settings and its answer without Prometheus. Fake sources and a fake
Prometheus client; the real ones are in tests/integration/console."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from console.core.config import Settings
from console.core.models import (
    Alert,
    AlertsSnapshot,
    ContainerStats,
    HistorySnapshot,
    StatsSnapshot,
)
from console.core.monitor import PROM_ALERTS, Monitor
from console.core.ops.audit import audit
from console.core.prom import PromError
from console.core.sources.prometheus import HistorySource, PrometheusUnavailable
from tests.unit.core.test_monitor import FakeSource, Recorder

REASON = "Prometheus at 127.0.0.1:28101: not reachable (connection refused)"


def busy_stats(_n: int) -> StatsSnapshot:
    """The stack at 95 % CPU: the local HighCPUUsage rule (for 0 s) fires."""
    c = ContainerStats(
        name="sd_backend_blue_prod",
        service="backend_blue",
        cpu_percent=95.0,
        mem_usage=1,
        mem_limit=100,
        mem_percent=1.0,
    )
    return StatsSnapshot(
        taken_at=datetime.now(UTC), containers=[c], total_cpu_percent=95.0, host_cpus=1
    )


def prom_snapshot() -> AlertsSnapshot:
    alert = Alert(
        rule="BackupTooOld",
        subject="db",
        value=1e9,
        threshold=93600,
        pending_since=datetime(2026, 12, 2, 16, 0, tzinfo=UTC),
        firing=True,
        message="The newest backup is old",
        source="prometheus",
    )
    return AlertsSnapshot(taken_at=datetime.now(UTC), alerts=[alert], source="prometheus")


@pytest.fixture
def settings(clean_env: Path) -> Settings:
    return Settings(
        repo_root=clean_env,
        state_dir=clean_env / "state",
        backoff_cap=0.05,
        alerts={"cpu": {"for_seconds": 0}},
    )


async def test_alerts_follow_prometheus_and_fall_back_to_the_console(settings: Settings) -> None:
    rec = Recorder()
    up = {"value": True}

    def prom(_n: int) -> Any:
        return prom_snapshot() if up["value"] else PrometheusUnavailable(PROM_ALERTS, REASON)

    stats = FakeSource(settings, "stats", "stats", busy_stats)
    alerts = FakeSource(settings, PROM_ALERTS, "alerts", prom)
    async with Monitor(settings, rec, sources=[stats, alerts], autostart=False) as monitor:
        await monitor.start()
        await rec.until(lambda: alerts.calls >= 5 and len(rec.of("stats")) >= 5)
        shown = rec.of("alerts")
        # Prometheus' alerts only: the console's own (its CPU rule fires all
        # along) are not shown while Prometheus answers, not even at start,
        # and the same answer is published once.
        assert [a.source for a in shown] == ["prometheus"]
        assert [a.rule for a in shown[0].alerts] == ["BackupTooOld"]
        assert monitor.latest["alerts"] is shown[0]
        went_down = datetime.now(UTC)

        up["value"] = False
        await rec.until(lambda: rec.of("alerts")[-1].source == "local")
        local = rec.of("alerts")[-1]
        assert local.note == f"{REASON}: evaluated by this console"
        assert [(a.rule, a.subject, a.firing) for a in local.alerts][:1] == [
            ("HighCPUUsage", "backend_blue", True)
        ]
        # fed while Prometheus answered: pending since before the switch
        assert min(a.pending_since for a in local.alerts) < went_down
        assert all(a.source == "local" for a in local.alerts)
        assert monitor.states[PROM_ALERTS].ok is False

        up["value"] = True
        await rec.until(lambda: rec.of("alerts")[-1].source == "prometheus")
        assert rec.of("alerts")[-1].note is None
        assert monitor.latest["alerts"].source == "prometheus"
        assert monitor.states[PROM_ALERTS].ok is True


async def test_without_a_prometheus_source_the_console_evaluates_as_before(
    settings: Settings,
) -> None:
    rec = Recorder()
    stats = FakeSource(settings, "stats", "stats", busy_stats)
    async with Monitor(settings, rec, sources=[stats], autostart=False) as monitor:
        await monitor.start()
        await rec.until(lambda: bool(rec.of("alerts")))
        first = rec.of("alerts")[0]
        assert first.source == "local" and first.note is None
        assert first.alerts[0].rule == "HighCPUUsage"


async def test_no_monitoring_configured_is_said_and_not_retried(settings: Settings) -> None:
    """The real alerts source without a credential: not authoritative, no failure."""
    from console.core.sources.prometheus import PromAlertsSource

    rec = Recorder()
    stats = FakeSource(settings, "stats", "stats", busy_stats)
    async with Monitor(
        settings, rec, sources=[stats, PromAlertsSource(settings)], autostart=False
    ) as monitor:
        await monitor.start()
        await rec.until(lambda: any(a.alerts for a in rec.of("alerts")))
        last = rec.of("alerts")[-1]
        assert last.source == "local"
        assert last.note == (
            "no monitoring credential (MONITORING_PASSWORD in .env): evaluated by this console"
        )
        assert monitor.states[PROM_ALERTS].ok is True


class FakeProm:
    """A PromClient whose every range query fails (or answers one point)."""

    def __init__(self, error: str | None) -> None:
        self.error = error
        self.queries: list[tuple[str, float]] = []

    async def query_range(self, expr: str, start: float, end: float, step: float) -> Any:
        self.queries.append((expr, step))
        if self.error:
            raise PromError(self.error)
        return [({"service": "db", "colour": "blue", "provider": "finnhub"}, [(end, 1.0)])]

    async def aclose(self) -> None:
        pass


def with_credential(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "prometheus_url": "http://127.0.0.1:28101",
            "monitoring_password": SecretStr("x"),
        }
    )


async def test_history_without_prometheus_still_has_the_markers(settings: Settings) -> None:
    now = datetime.now(UTC)
    audit(
        settings.state_dir / "audit.log",
        event="start",
        op="deploy",
        op_id="d1",
        operator={"user": "root"},
        params={"version": "v2.0.0"},
        now=now - timedelta(minutes=5),
    )
    src = HistorySource(
        with_credential(settings), client=FakeProm("Prometheus: not reachable (connection refused)")
    )  # type: ignore[arg-type]
    with pytest.raises(PrometheusUnavailable) as info:
        await src.poll()
    snap = info.value.snapshot
    assert isinstance(snap, HistorySnapshot)
    assert snap.available is False
    assert snap.reason == REASON
    assert str(info.value) == REASON
    assert [m.label for m in snap.markers] == ["deploy v2.0.0 (blue-green) by root: running"]

    # not configured: said, with the markers, and not a failure
    quiet = await HistorySource(settings).poll()
    assert quiet.available is False
    assert quiet.reason == "no history: no monitoring credential (MONITORING_PASSWORD in .env)"
    assert len(quiet.markers) == 1


async def test_history_queries_main_and_view_charts_over_the_range(settings: Settings) -> None:
    prom = FakeProm(None)
    src = HistorySource(with_credential(settings), client=prom, range_seconds=21600)  # type: ignore[arg-type]
    src.view = "Database Performance"
    snap = await src.poll()
    charts = {s.chart for s in snap.series}
    assert {"cpu", "quota", "db_tps", "redis_mem"} <= charts
    assert len(prom.queries) == len(src.charts()) == 7 + 6
    assert {step for _e, step in prom.queries} == {150.0}
    assert snap.available and snap.range_seconds == 21600 and snap.step_seconds == 150
    assert snap.start is not None and snap.end is not None
    assert (snap.end - snap.start).total_seconds() == 21600
    assert snap.end.timestamp() % 150 == 0  # aligned: polls ask the same instants
    with pytest.raises(ValueError, match="history range must be one of 900, 3600"):
        src.range_seconds = 1234
    with pytest.raises(ValueError, match="unknown dashboard 'Nope'"):
        src.view = "Nope"


async def test_set_history_wakes_the_source_now(settings: Settings) -> None:
    rec = Recorder()
    src = HistorySource(settings)  # no credential: answers at once, no network
    async with Monitor(settings, rec, sources=[src], autostart=False) as monitor:
        await monitor.start()
        await rec.until(lambda: bool(rec.of("history")))
        assert rec.of("history")[0].range_seconds == 3600
        with pytest.raises(ValueError, match="history range"):
            monitor.set_history(range_seconds=60)
        with pytest.raises(ValueError, match="unknown dashboard"):
            monitor.set_history(range_seconds=900, view="Grafana")
        assert src.range_seconds == 3600 and src.view is None  # nothing changed
        monitor.set_history(range_seconds=900, view="Business Metrics")
        # the interval is 15 s: an answer well within it is the wake-up
        await asyncio.wait_for(
            rec.until(lambda: rec.of("history")[-1].range_seconds == 900), timeout=5.0
        )
        assert src.view == "Business Metrics"
        monitor.set_history(view="")
        assert src.view is None and src.range_seconds == 900
