"""Recorded-like snapshots of the console's memory for the UI tests: a
deterministic Prometheus history over the fixed clock, operation markers,
alerts from Prometheus with a silence, and a "since the deploy" comparison."""

from __future__ import annotations

import math
from datetime import timedelta

from console.core.history import DASHBOARDS, MAIN_CHARTS, ChartSpec
from console.core.models import (
    Alert,
    AlertsSnapshot,
    Comparison,
    HistorySeries,
    HistorySnapshot,
    Marker,
    Silence,
    SinceDeploySnapshot,
    StatementChange,
)

from .fakes import NOW

__all__ = ["alerts_snapshot", "history_snapshot", "markers", "since_snapshot"]

SUBJECTS = {
    "service": ["backend_green", "db", "redis", "nginx", "worker", "backend_blue"],
    "colour": ["green", "blue"],
    "provider": ["alpha_vantage", "finnhub", "polygon", "newsapi"],
}


def markers() -> list[Marker]:
    deploy_at = NOW - timedelta(minutes=22)
    return [
        Marker(
            at=NOW - timedelta(minutes=50),
            op="vacuum",
            label="vacuum stock_prices by alice: ok",
            result="ok",
            op_id="a1",
            operator="alice",
        ),
        Marker(
            at=deploy_at,
            op="deploy",
            label="deploy v1.2.4 (blue-green) by alice: ok",
            result="ok",
            op_id="d1",
            operator="alice",
        ),
    ]


def _points(seed: int, scale: float, range_seconds: int, step: float) -> list[tuple[float, float]]:
    end = NOW.timestamp()
    count = int(range_seconds / step) + 1
    out = []
    for i in range(count):
        t = end - range_seconds + i * step
        wave = 0.5 + 0.35 * math.sin(i / 7.0 + seed) + 0.15 * math.sin(i / 2.3 + 2 * seed)
        # the deploy 22 minutes ago doubles the load of the first subject
        if seed == 0 and t >= end - 22 * 60:
            wave *= 1.8
        out.append((t, round(scale * wave, 4)))
    return out


def _subjects(spec: ChartSpec) -> list[str]:
    names = SUBJECTS.get(spec.legend, ["api"])
    return names[:3]


def history_snapshot(
    *, range_seconds: int = 3600, view: str | None = None, available: bool = True
) -> HistorySnapshot:
    """MAIN_CHARTS (plus the charts of ``view``) with a few subjects each."""
    step = max(15.0, range_seconds / 150)
    specs = [*MAIN_CHARTS, *(DASHBOARDS[view] if view else ())]
    series = []
    seen = set()
    for spec in specs:
        if spec.chart in seen:
            continue
        seen.add(spec.chart)
        scale = 100.0 if spec.unit.startswith("%") else 1.0
        for index, subject in enumerate(_subjects(spec)):
            series.append(
                HistorySeries(
                    key=f"{spec.chart}:{subject}",
                    chart=spec.chart,
                    subject=subject,
                    unit=spec.unit,
                    points=_points(index, scale * (0.6 if index else 0.4), range_seconds, step),
                )
            )
    if not available:
        return HistorySnapshot(
            taken_at=NOW,
            range_seconds=range_seconds,
            available=False,
            reason="Prometheus at 127.0.0.1:10080: not reachable (connection refused)",
            markers=markers(),
        )
    return HistorySnapshot(
        taken_at=NOW,
        range_seconds=range_seconds,
        start=NOW - timedelta(seconds=range_seconds),
        end=NOW,
        step_seconds=step,
        series=series,
        markers=markers(),
    )


def alerts_snapshot() -> AlertsSnapshot:
    silence = Silence(
        id="3f2a9c1e-5b7d-4e21-9a0c-2d9b1f0e6a77",
        matchers="alertname=ContainerHighCPU, service=worker",
        starts_at=NOW - timedelta(minutes=5),
        ends_at=NOW + timedelta(minutes=55),
        created_by="alice@prod-host",
        comment="backfill job runs hot until 15:00",
    )
    return AlertsSnapshot(
        taken_at=NOW,
        source="prometheus",
        alerts=[
            Alert(
                rule="HighAPIResponseTime",
                subject="GET /api/stocks/prices",
                value=2.61,
                threshold=2.0,
                pending_since=NOW - timedelta(minutes=6),
                firing=True,
                message="p95 of GET /api/stocks/prices on green above 2 s (2.61 s)",
                source="prometheus",
                labels={
                    "alertname": "HighAPIResponseTime",
                    "colour": "green",
                    "route": "/api/stocks/prices",
                    "method": "GET",
                    "service": "backend_green",
                    "severity": "warning",
                },
            ),
            Alert(
                rule="HighCPUUsage",
                subject="host",
                value=83.0,
                threshold=80.0,
                pending_since=NOW - timedelta(minutes=2),
                firing=False,
                message="Host CPU above 80% for 5 minutes (83%)",
                source="prometheus",
                labels={"alertname": "HighCPUUsage", "service": "host", "severity": "warning"},
            ),
            Alert(
                rule="ContainerHighCPU",
                subject="worker",
                value=0.93,
                threshold=0.8,
                pending_since=NOW - timedelta(minutes=12),
                firing=True,
                message="investment_worker_prod uses 93% of its CPU limit",
                source="prometheus",
                labels={
                    "alertname": "ContainerHighCPU",
                    "name": "investment_worker_prod",
                    "service": "worker",
                    "severity": "warning",
                },
                silenced_by=[silence.id],
            ),
        ],
        silences=[silence],
    )


def since_snapshot() -> SinceDeploySnapshot:
    deploy = markers()[1]
    return SinceDeploySnapshot(
        taken_at=NOW,
        deploy=deploy,
        before_start=deploy.at - timedelta(minutes=22),
        after_end=NOW,
        window_seconds=22 * 60,
        comparisons=[
            Comparison(
                group="endpoint",
                subject="GET /api/stocks/prices",
                metric="p95",
                unit="ms",
                before=210.0,
                after=940.0,
            ),
            Comparison(
                group="endpoint",
                subject="GET /api/stocks/prices",
                metric="error rate",
                unit="%",
                before=0.1,
                after=0.4,
            ),
            Comparison(
                group="endpoint",
                subject="GET /api/health",
                metric="p95",
                unit="ms",
                before=12.0,
                after=11.0,
            ),
            Comparison(
                group="endpoint",
                subject="POST /api/auth/login",
                metric="p95",
                unit="ms",
                before=80.0,
                after=90.0,
            ),
            Comparison(
                group="service",
                subject="backend_green",
                metric="cpu",
                unit="%",
                before=None,
                after=31.0,
            ),
            Comparison(
                group="service",
                subject="backend_blue",
                metric="cpu",
                unit="%",
                before=24.0,
                after=0.4,
            ),
            Comparison(
                group="service", subject="db", metric="cpu", unit="%", before=6.0, after=19.5
            ),
            Comparison(
                group="service",
                subject="db",
                metric="memory",
                unit="MiB",
                before=174.0,
                after=229.0,
            ),
        ],
        slower=[
            StatementChange(
                queryid="-4410829312312",
                query="SELECT symbol, price, ts FROM stock_prices WHERE symbol = ANY($1) ORDER BY ts DESC LIMIT $2",
                calls_before=1840,
                mean_ms_before=1.9,
                calls_after=912,
                mean_ms_after=38.4,
            )
        ],
        new_statements=[
            StatementChange(
                queryid="88123123",
                query="SELECT count(*) FROM stock_prices p JOIN symbols s ON s.id = p.symbol_id WHERE p.ts > $1",
                calls_after=133,
                mean_ms_after=12.7,
                new=True,
            )
        ],
        warnings=[],
    )
