"""What the console's time charts show: the PromQL of every chart, the choice
of a range query's step, and the operations drawn on the charts (markers).

Pure, apart from reading the tail of the audit log. The charts are data, not
code: :data:`MAIN_CHARTS` are the dashboard panels' history (back-filled at
start), :data:`DASHBOARDS` the runbook's four dashboards ("Grafana
Dashboards" in the monitoring section), each a screenful of charts over the
same range. Every expression is checked against a real Prometheus by
``tests/integration/console/test_history.py``; the metric names are those the
bundled stack exports (the API's and the worker's ``telemetry.py``, the
stack exporter's per-container series, node-, postgres- and redis-exporter).

Rate windows are fixed (``[1m]`` on four 15 s scrapes; ``[5m]`` where the
runbook's rules use it), so a chart reads the same as the rule it explains.

Markers come from ``$STATE/audit.log`` (one ``start`` and one ``end`` line per
operation, see :mod:`console.core.ops.audit`): one marker per operation at its
start, labelled with what it did, who did it and how it ended. The log grows
forever, so :func:`read_markers` reads it backwards from the end in blocks and
stops at the first block older than the range.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from console.core.models import HistorySeries, Marker

__all__ = [
    "DASHBOARDS",
    "MAIN_CHARTS",
    "MARKER_OPS",
    "RANGES",
    "ChartSpec",
    "choose_step",
    "marker_label",
    "read_markers",
    "to_series",
]

SCRAPE_INTERVAL = 15.0
"""The stack's Prometheus scrape interval (compose/monitoring/prometheus.yml):
a step below it only repeats samples."""

RANGES = (900, 3600, 21600, 86400)
"""The ranges the console offers: 15 m, 1 h, 6 h, 24 h."""

TARGET_POINTS = 150
"""Points per series the step aims at (a chart is at most ~150 cells wide)."""


@dataclass(frozen=True)
class ChartSpec:
    """One chart: a PromQL expression whose series are the chart's lines."""

    chart: str
    """Id, unique within a view (``cpu``); also ``HistorySeries.chart``."""
    title: str
    unit: str
    expr: str
    """PromQL, with fixed rate windows (no templating)."""
    legend: str = ""
    """The label whose value names a line (``HistorySeries.subject``):
    ``service``, ``colour``, ``provider``, ``route`` ... Empty, or a series
    without that label: the line is named :attr:`default_subject`."""
    scale: float = 1.0
    """Values are multiplied by this (100: a ratio shown as percent)."""
    default_subject: str = "total"
    idle_data: bool = True
    """An idle stack has data for it (the integration test insists)."""

    def subject(self, labels: Mapping[str, str]) -> str:
        return (labels.get(self.legend) if self.legend else None) or self.default_subject


_BACKEND = 'job="backend"'
_FS = 'fstype!~"tmpfs|overlay|squashfs|nsfs|proc|sysfs"'
_DB = 'datname!~"template.*"'


def _err_ratio(by: str) -> str:
    """5xx share; 0 (not no data) while requests are served without errors."""
    all_ = f"sum by ({by}) (rate(http_request_duration_seconds_count{{{_BACKEND}}}[1m]))"
    bad = (
        f'sum by ({by}) (rate(http_request_duration_seconds_count{{{_BACKEND},status=~"5.."}}[1m]))'
    )
    return f"({bad} or {all_} * 0) / {all_}"


CPU = ChartSpec(
    "cpu",
    "Container CPU (% of one core)",
    "%",
    "sum by (service) (rate(container_cpu_usage_seconds_total[1m])) * 100",
    legend="service",
)
MEMORY = ChartSpec(
    "mem",
    "Container memory (% of its limit)",
    "%",
    "sum by (service) (container_memory_working_set_bytes)"
    " / sum by (service) (container_spec_memory_limit_bytes > 0)",
    legend="service",
    scale=100.0,
)
P95 = ChartSpec(
    "p95",
    "API p95 per colour",
    "s",
    "histogram_quantile(0.95, sum by (colour, le)"
    f" (rate(http_request_duration_seconds_bucket{{{_BACKEND}}}[1m])))",
    legend="colour",
)
P50 = ChartSpec(
    "p50",
    "API p50 per colour",
    "s",
    "histogram_quantile(0.5, sum by (colour, le)"
    f" (rate(http_request_duration_seconds_bucket{{{_BACKEND}}}[1m])))",
    legend="colour",
)
ERRORS = ChartSpec(
    "errors",
    "API error rate per colour (5xx share)",
    "%",
    _err_ratio("colour"),
    legend="colour",
    scale=100.0,
)
REQUESTS = ChartSpec(
    "requests",
    "Request rate per colour",
    "req/s",
    f"sum by (colour) (rate(http_request_duration_seconds_count{{{_BACKEND}}}[1m]))",
    legend="colour",
)
COST = ChartSpec(
    "cost",
    "Cost per day (projection)",
    "$",
    # Both colours and the worker export it; the backends share one cost model.
    f"max(investment_daily_cost_projection{{{_BACKEND}}})",
    default_subject="today",
)
QUOTA = ChartSpec(
    "quota",
    "Provider quota use (% of its window)",
    "%",
    "max by (provider) (investment_provider_quota_used)"
    " / max by (provider) (investment_provider_quota_limit > 0)",
    legend="provider",
    scale=100.0,
)

MAIN_CHARTS: tuple[ChartSpec, ...] = (CPU, MEMORY, P95, ERRORS, REQUESTS, COST, QUOTA)
"""The dashboard panels' charts, back-filled from Prometheus at start."""

DASHBOARDS: dict[str, tuple[ChartSpec, ...]] = {
    "System Overview": (
        ChartSpec(
            "host_cpu",
            "Host CPU",
            "%",
            '100 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m])) * 100',
            default_subject="host",
        ),
        ChartSpec(
            "host_mem",
            "Host memory used",
            "%",
            "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
            scale=100.0,
            default_subject="host",
        ),
        ChartSpec(
            "disk",
            "Disk used per mount",
            "%",
            f"1 - node_filesystem_avail_bytes{{{_FS}}} / node_filesystem_size_bytes{{{_FS}}}",
            legend="mountpoint",
            scale=100.0,
        ),
        ChartSpec(
            "network",
            "Network (host)",
            "B/s",
            'label_replace(sum(rate(node_network_receive_bytes_total{device!="lo"}[1m])),'
            ' "direction", "in", "", "")'
            ' or label_replace(sum(rate(node_network_transmit_bytes_total{device!="lo"}[1m])),'
            ' "direction", "out", "", "")',
            legend="direction",
        ),
        CPU,
        MEMORY,
    ),
    "Application Performance": (
        REQUESTS,
        P95,
        P50,
        ERRORS,
        ChartSpec(
            "routes",
            "Top routes (req/s)",
            "req/s",
            "topk(5, sum by (method, route)"
            f" (rate(http_request_duration_seconds_count{{{_BACKEND}}}[5m])))",
            legend="route",
        ),
    ),
    "Business Metrics": (
        COST,
        QUOTA,
        ChartSpec(
            "provider_calls",
            "Provider calls (per minute)",
            "calls/min",
            "sum by (provider) (rate(investment_provider_calls_total[5m])) * 60",
            legend="provider",
            idle_data=False,  # the worker's schedule may not have called yet
        ),
        ChartSpec(
            "quota_denied",
            "Calls refused by the quota ledger (per minute)",
            "calls/min",
            "sum by (provider) (rate(investment_provider_quota_denied_total[5m])) * 60",
            legend="provider",
            idle_data=False,
        ),
        ChartSpec(
            "cache_hit",
            "Price cache hit rate",
            "%",
            "sum(rate(investment_cache_hits_total[5m]))"
            " / (sum(rate(investment_cache_hits_total[5m]))"
            " + sum(rate(investment_cache_misses_total[5m])))",
            scale=100.0,
            default_subject="cache",
            idle_data=False,
        ),
        ChartSpec(
            "month_end",
            "Month-end cost (projection)",
            "$",
            f"max(investment_month_end_cost_projection{{{_BACKEND}}})",
            default_subject="month",
        ),
    ),
    "Database Performance": (
        ChartSpec(
            "db_connections",
            "Connections",
            "",
            f"sum by (datname) (pg_stat_database_numbackends{{{_DB}}})",
            legend="datname",
        ),
        ChartSpec(
            "db_tps",
            "Transactions per second",
            "tx/s",
            f"sum by (datname) (rate(pg_stat_database_xact_commit{{{_DB}}}[1m])"
            f" + rate(pg_stat_database_xact_rollback{{{_DB}}}[1m]))",
            legend="datname",
        ),
        ChartSpec(
            "db_cache_hit",
            "Buffer cache hit ratio",
            "%",
            f"sum by (datname) (rate(pg_stat_database_blks_hit{{{_DB}}}[5m]))"
            f" / (sum by (datname) (rate(pg_stat_database_blks_hit{{{_DB}}}[5m]))"
            f" + sum by (datname) (rate(pg_stat_database_blks_read{{{_DB}}}[5m])))",
            legend="datname",
            scale=100.0,
        ),
        ChartSpec(
            "db_size",
            "Database size",
            "B",
            f"pg_database_size_bytes{{{_DB}}}",
            legend="datname",
        ),
        ChartSpec(
            "db_locks",
            "Locks held and deadlocks (5 m)",
            "",
            'sum by (mode) (pg_locks_count{datname="investment_db"})'
            " or label_replace(sum(increase(pg_stat_database_deadlocks"
            f'{{{_DB}}}[5m])), "mode", "deadlocks", "", "")',
            legend="mode",
        ),
        ChartSpec(
            "redis_mem",
            "Redis memory used",
            "B",
            "redis_memory_used_bytes",
            legend="service",
        ),
    ),
}
"""The runbook's four dashboards, each 4-6 charts over the same range."""


def view_charts(view: str | None) -> tuple[ChartSpec, ...]:
    """MAIN_CHARTS plus the charts of dashboard ``view`` (a chart id once)."""
    charts = list(MAIN_CHARTS)
    seen = {c.chart for c in charts}
    for spec in DASHBOARDS.get(view or "", ()):
        if spec.chart not in seen:
            seen.add(spec.chart)
            charts.append(spec)
    return tuple(charts)


def choose_step(range_seconds: float, *, target: int = TARGET_POINTS) -> float:
    """Seconds between two points: about ``target`` points over the range,
    rounded up to a whole multiple of the scrape interval and never below it
    (15 m -> 15 s: 60 points; 1 h -> 30 s: 120; 6 h -> 150 s: 144; 24 h ->
    585 s: 148)."""
    raw = max(1.0, float(range_seconds)) / max(1, target)
    return max(SCRAPE_INTERVAL, math.ceil(raw / SCRAPE_INTERVAL) * SCRAPE_INTERVAL)


def to_series(
    spec: ChartSpec, matrix: list[tuple[dict[str, str], list[tuple[float, float]]]]
) -> list[HistorySeries]:
    """A range query's answer as the chart's lines: scaled, NaN/Inf dropped
    (a gap, not a point), lines with the same subject merged."""
    by_subject: dict[str, dict[float, float]] = {}
    for labels, points in matrix:
        subject = spec.subject(labels)
        if spec.legend == "route" and labels.get("method"):
            subject = f"{labels['method']} {subject}"
        merged = by_subject.setdefault(subject, {})
        for t, v in points:
            if math.isfinite(v):
                merged[t] = round(v * spec.scale, 6)
    return [
        HistorySeries(
            key=f"{spec.chart}:{subject}",
            chart=spec.chart,
            subject=subject,
            unit=spec.unit,
            points=sorted(points.items()),
        )
        for subject, points in sorted(by_subject.items())
        if points
    ]


# --- markers -----------------------------------------------------------------------------

MARKER_OPS = frozenset(
    {
        "deploy",
        "rollback",
        "vacuum",
        "cache-flush",
        "cache-warm",
        "emergency-limit",
        "restore",
        "migrate",
        "restart",
        "scale",
    }
)
"""Operations that change the stack in a way a chart may show. Read-only ones
(status, verify, preflight) and backups are not drawn."""

BLOCK = 64 * 1024


def _parse_at(value: Any) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _lines_backwards(path: Path, block: int = BLOCK) -> Iterator[bytes]:
    """The file's lines, the last first, reading ``block`` bytes at a time
    from the end (a log of any size costs only the blocks asked for)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    try:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            size = min(block, pos)
            pos -= size
            fh.seek(pos)
            chunk = fh.read(size) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]  # maybe the tail of an earlier line: keep for the next block
            yield from reversed(lines[1:])
        if rest:
            yield rest
    finally:
        fh.close()


def _describe(op: str, params: Mapping[str, Any]) -> str:
    """What the operation did, in a few words (after the op's name)."""

    def p(key: str) -> Any:
        value = params.get(key)
        return None if value in (None, "", [], False) else value

    if op == "deploy":
        words = [str(p("version") or "?"), f"({p('strategy') or 'blue-green'})"]
    elif op == "rollback":
        words = [f"to {p('version')}" if p("version") else "to the previous colour"]
        if p("restore_db"):
            words.append("+ database")
    elif op == "vacuum":
        tables = p("tables")
        words = [", ".join(map(str, tables)) if isinstance(tables, list) else "all tables"]
    elif op == "cache-flush":
        words = ["everything (FLUSHDB)" if p("all") else str(p("prefix") or "cache")]
        if p("dry_run"):
            words.append("(dry run)")
    elif op == "emergency-limit":
        words = [str(p("state") or "?")]
    elif op == "restore":
        words = [str(p("path") or "?")]
    elif op == "scale":
        words = [str(p("spec") or f"{p('service')}={p('count')}")]
    elif op == "restart":
        words = [str(p("service") or "?")]
    else:
        words = []
    if p("reason"):
        words.append(f"({p('reason')})")
    return " ".join(words)


def marker_label(start: Mapping[str, Any], result: str | None) -> str:
    """``deploy v2.0.0 (blue-green) by root: ok`` (``running`` without an end)."""
    op = str(start.get("op") or "?")
    params = start.get("params") if isinstance(start.get("params"), Mapping) else {}
    what = _describe(op, params or {})
    user = start.get("user") or "?"
    head = f"{op} {what}".strip()
    return f"{head} by {user}: {result or 'running'}"


def read_markers(state_dir: Path, start: datetime, end: datetime) -> list[Marker]:
    """Operations of :data:`MARKER_OPS` that started within [start, end],
    oldest first, from the tail of ``$STATE/audit.log``.

    Reads backwards and stops once a line older than ``start`` is seen (the
    log is append-only, so its times only grow; a few seconds of slack cover
    two writers' clocks racing). Torn or foreign lines are skipped; a start
    without its end line (the operation runs, or its process died) is
    ``running``."""
    path = Path(state_dir) / "audit.log"
    ends: dict[str, str] = {}
    markers: list[Marker] = []
    slack = 60.0
    for raw in _lines_backwards(path):
        raw = raw.strip()
        if not raw:
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(record, dict):
            continue
        at = _parse_at(record.get("at"))
        if at is None:
            continue
        if (start - at).total_seconds() > slack:
            break
        op = record.get("op")
        if op not in MARKER_OPS:
            continue
        op_id = str(record.get("op_id") or "")
        event = record.get("event")
        if event == "end":
            ends[op_id] = str(record.get("result") or "ended")
        elif event == "start" and start <= at <= end:
            result = ends.get(op_id)
            markers.append(
                Marker(
                    at=at,
                    op=str(op),
                    label=marker_label(record, result),
                    result=result,
                    op_id=op_id,
                    operator=str(record.get("user") or ""),
                )
            )
    markers.sort(key=lambda m: m.at)
    return markers
