"""The stack's memory and pager, read: history from Prometheus, alerts from
Prometheus and Alertmanager.

:class:`HistorySource` (kind ``history``) runs one ``query_range`` per chart
(:data:`~console.core.history.MAIN_CHARTS` plus the charts of the selected
dashboard) over ``range_seconds``, concurrently, and adds the operations of
the audit log as markers. Without Prometheus it still publishes the markers,
in a snapshot with ``available=False`` and a one-line ``reason``; when
Prometheus is configured but does not answer it also raises
:class:`PrometheusUnavailable` (carrying that snapshot), so the source is
marked failing, retried with backoff, and the UI can say "history missing:
<why>". No monitoring configured at all (no URL, no credential) is not a
failure: the snapshot says so and the source stays quiet.

:class:`PromAlertsSource` (kind ``alerts``) reads Prometheus' alerting rules
with their pending and firing alerts, joins Alertmanager's silences and
``silencedBy``, and produces an :class:`AlertsSnapshot` with
``source="prometheus"``. The monitor publishes it in place of the console's
own evaluation while Prometheus answers (see :mod:`console.core.monitor`).
The operation notices the ops post to Alertmanager (``StackOperation``) are
not alerts and are left out.

The parsing is pure (:func:`alerts_from_rules`, :func:`parse_threshold`,
:func:`silences_from_alertmanager`) and unit-tested on the stack's real
rules file.
"""

from __future__ import annotations

import ast
import asyncio
import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.history import (
    DASHBOARDS,
    RANGES,
    ChartSpec,
    choose_step,
    read_markers,
    to_series,
    view_charts,
)
from console.core.models import Alert, AlertsSnapshot, HistorySeries, HistorySnapshot, Silence
from console.core.prom import (
    AlertmanagerClient,
    PromClient,
    PromError,
    current_silences,
    monitoring_configured,
    parse_time,
)
from console.core.sources.base import Clock, Source, utcnow

__all__ = [
    "NOTICE_ALERT",
    "HistorySource",
    "PromAlertsSource",
    "PrometheusUnavailable",
    "alerts_from_rules",
    "parse_threshold",
    "silences_from_alertmanager",
]

NOTICE_ALERT = "StackOperation"
"""The alertname of the operation notices (posted by the ops, not a rule)."""


class PrometheusUnavailable(SourceError):
    """Prometheus did not answer; ``snapshot`` is what can be shown anyway
    (the monitor publishes it before it marks the source failing)."""

    def __init__(self, source: str, reason: str, snapshot: Any = None) -> None:
        self.reason = reason
        self.snapshot = snapshot
        super().__init__(source, reason)

    def __str__(self) -> str:
        return self.reason


def where(settings: Settings) -> str:
    """``Prometheus at 127.0.0.1:28101`` (host and port only, never a credential)."""
    url = settings.prometheus_url or ""
    try:
        parsed = httpx.URL(url)
        host = f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host
    except Exception:
        host = ""
    return f"Prometheus at {host}" if host else "Prometheus"


def explain(settings: Settings, exc: BaseException) -> str:
    """One line: ``Prometheus at 127.0.0.1:28101: not reachable (connection refused)``."""
    if isinstance(exc, TimeoutError):
        text = "timed out"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.removeprefix("Prometheus:").strip()
    return f"{where(settings)}: {text}"[:240]


# --- thresholds and alerts (pure) ---------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SET_OPS = re.compile(r"\b(?:and|or|unless)\b")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(
    rf"(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?(?P<rhs>{_NUMBER}(?:\s*[-+*/]\s*{_NUMBER})*)"
)
_ARITH: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _arith(text: str) -> float:
    """A constant like ``26 * 3600`` (numbers and + - * / only)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return float(_ARITH[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITH:
            return float(_ARITH[type(node.op)](ev(node.operand)))
        raise ValueError(text)

    return ev(ast.parse(text, mode="eval"))


def _first_clause(expr: str) -> str:
    """The expression up to its first top-level ``and``/``or``/``unless``:
    ``up == 0 and on (colour) serving == 1`` compares ``up``, the rest selects."""
    depth = 0
    for i, ch in enumerate(expr):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and _SET_OPS.match(expr, i) and (i == 0 or not expr[i - 1].isalnum()):
            return expr[:i]
    return expr


def parse_threshold(expr: str) -> float:
    """The number a rule compares against: the constant after the last
    comparison operator of its first clause (strings, so label matchers'
    values, ignored; ``> 26 * 3600`` is 93600). NaN when the rule has none."""
    text = _STRINGS.sub('""', expr or "")  # a matcher's value is a string
    matches = list(_COMPARISON.finditer(_first_clause(text)))
    if not matches:
        return math.nan
    try:
        return _arith(matches[-1].group("rhs"))
    except (ValueError, SyntaxError, ZeroDivisionError):
        return math.nan


SUBJECT_LABELS = ("route", "name", "mountpoint", "provider", "colour", "service", "instance", "job")
"""Labels that name what an alert is about, the most specific first."""


def alert_subject(labels: Mapping[str, str]) -> str:
    """``GET /api/stocks/prices``, ``sdh1_db_prod``, ``green``, ``host`` ... or ``stack``."""
    for key in SUBJECT_LABELS:
        value = labels.get(key)
        if value:
            if key == "route" and labels.get("method"):
                return f"{labels['method']} {value}"
            return value
    return "stack"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _matches(matchers: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    """Alertmanager's matching: every matcher holds; regexes are anchored."""
    for m in matchers:
        value = labels.get(str(m.get("name")), "")
        pattern = str(m.get("value", ""))
        if m.get("isRegex"):
            try:
                hit = re.fullmatch(pattern, value) is not None
            except re.error:
                return False
        else:
            hit = value == pattern
        if hit != bool(m.get("isEqual", True)):
            return False
    return True


def silences_from_alertmanager(items: Iterable[Mapping[str, Any]]) -> list[Silence]:
    """The active and pending silences, the soonest to end first."""
    return current_silences(items)


def alerts_from_rules(
    rules: Iterable[Mapping[str, Any]],
    am_alerts: Iterable[Mapping[str, Any]] = (),
    am_silences: Iterable[Mapping[str, Any]] = (),
) -> list[Alert]:
    """Pending and firing alerts of Prometheus' rules (``/api/v1/rules``), each
    with the threshold and ``for`` of its rule, and the silences that mute
    it: Alertmanager's ``silencedBy`` for the alerts it holds, and the active
    silences' matchers for the pending ones it has not seen yet. Firing
    first, then the oldest."""
    held = [
        ({str(k): str(v) for k, v in (a.get("labels") or {}).items()}, a)
        for a in am_alerts
        if isinstance(a, Mapping)
    ]
    active_silences = [
        s
        for s in am_silences
        if isinstance(s, Mapping) and (s.get("status") or {}).get("state") == "active"
    ]
    out: list[Alert] = []
    for rule in rules:
        name = str(rule.get("name") or "")
        if not name or name == NOTICE_ALERT or rule.get("type", "alerting") != "alerting":
            continue
        threshold = parse_threshold(str(rule.get("query") or ""))
        duration = rule.get("duration")
        for_seconds = _float(duration) if duration is not None else None
        for item in rule.get("alerts") or []:
            state = item.get("state")
            if state not in ("pending", "firing"):
                continue
            labels = {str(k): str(v) for k, v in (item.get("labels") or {}).items()}
            labels.setdefault("alertname", name)
            since = parse_time(item.get("activeAt"))
            if since is None:
                continue
            silenced: list[str] = []
            for am_labels, am in held:
                if all(am_labels.get(k) == v for k, v in labels.items()):
                    silenced.extend(
                        str(i) for i in (am.get("status") or {}).get("silencedBy") or []
                    )
            for s in active_silences:
                sid = str(s.get("id") or "")
                if sid and sid not in silenced and _matches(s.get("matchers") or [], labels):
                    silenced.append(sid)
            annotations = item.get("annotations") or rule.get("annotations") or {}
            value = _float(item.get("value"))
            out.append(
                Alert(
                    rule=name,
                    subject=alert_subject(labels),
                    value=round(value, 4) if math.isfinite(value) else value,
                    threshold=threshold,
                    pending_since=since,
                    firing=state == "firing",
                    message=str(
                        annotations.get("summary") or annotations.get("description") or name
                    ),
                    source="prometheus",
                    labels=labels,
                    silenced_by=sorted(set(silenced)),
                    for_seconds=for_seconds,
                )
            )
    out.sort(key=lambda a: (not a.firing, a.pending_since, a.rule, a.subject))
    return out


# --- the sources ---------------------------------------------------------------------------


class HistorySource(Source):
    """Range queries of the charts over ``range_seconds``, plus the markers."""

    name = "history"
    kind = "history"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        client: PromClient | None = None,
        range_seconds: int = 3600,
        view: str | None = None,
    ) -> None:
        super().__init__(settings, clock=clock)
        self._client = client
        self._own_client = client is None
        self._range = 3600
        self._view: str | None = None
        self.range_seconds = range_seconds
        self.view = view
        self.last_poll_seconds: float | None = None
        """Wall time of the last poll (the queries, not the markers)."""

    @property
    def range_seconds(self) -> int:
        """15 m, 1 h, 6 h or 24 h (:data:`~console.core.history.RANGES`)."""
        return self._range

    @range_seconds.setter
    def range_seconds(self, value: int) -> None:
        if value not in RANGES:
            shown = ", ".join(str(r) for r in RANGES)
            raise ValueError(f"history range must be one of {shown} seconds, not {value!r}")
        self._range = int(value)

    @property
    def view(self) -> str | None:
        """The dashboard whose charts are queried with the main ones (None: none)."""
        return self._view

    @view.setter
    def view(self, value: str | None) -> None:
        if value is not None and value not in DASHBOARDS:
            raise ValueError(f"unknown dashboard {value!r}; known: {', '.join(DASHBOARDS)}")
        self._view = value

    @property
    def interval(self) -> float:
        return 15.0

    @property
    def poll_timeout(self) -> float:
        return self.settings.request_timeout + 5.0

    def charts(self) -> tuple[ChartSpec, ...]:
        return view_charts(self._view)

    def client(self) -> PromClient:
        if self._client is None:
            self._client = PromClient(self.settings)
        return self._client

    async def _query(
        self, spec: ChartSpec, start: float, end: float, step: float
    ) -> list[HistorySeries]:
        matrix = await asyncio.wait_for(
            self.client().query_range(spec.expr, start, end, step),
            timeout=self.settings.request_timeout,
        )
        return to_series(spec, matrix)

    async def poll(self) -> HistorySnapshot:
        now = self.clock()
        range_s, step = self._range, choose_step(self._range)
        # Aligned to the step: two polls ask the same instants, so a point
        # does not wander between polls and the snapshot changes only when
        # a new step has passed.
        end_ts = math.floor(now.timestamp() / step) * step
        start_ts = end_ts - range_s
        start_at = datetime.fromtimestamp(start_ts, now.tzinfo)
        markers = await asyncio.to_thread(read_markers, self.settings.state_dir, start_at, now)
        base: dict[str, Any] = {
            "taken_at": now,
            "range_seconds": range_s,
            "start": start_at,
            "end": datetime.fromtimestamp(end_ts, now.tzinfo),
            "step_seconds": step,
            "markers": markers,
        }
        missing = monitoring_configured(self.settings)
        if missing is not None:
            return HistorySnapshot(**base, available=False, reason=f"no history: {missing}")
        charts = self.charts()
        t0 = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(self._query(spec, start_ts, end_ts, step) for spec in charts),
            return_exceptions=True,
        )
        self.last_poll_seconds = asyncio.get_running_loop().time() - t0
        series: list[HistorySeries] = []
        failed: list[tuple[ChartSpec, BaseException]] = []
        for spec, result in zip(charts, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                failed.append((spec, result))
            else:
                series.extend(result)
        if failed and len(failed) == len(charts):
            why = explain(self.settings, failed[0][1])
            snapshot = HistorySnapshot(**base, available=False, reason=why)
            raise PrometheusUnavailable(self.name, why, snapshot)
        reason: str | None = None
        if failed:
            spec, exc = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            reason = f"chart {spec.chart} failed{more}: {explain(self.settings, exc)}"
        return HistorySnapshot(**base, series=series, available=True, reason=reason)

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            client, self._client = self._client, None
            await client.aclose()


class PromAlertsSource(Source):
    """Prometheus' pending and firing alerts with Alertmanager's silences.

    Raises :class:`PrometheusUnavailable` when Prometheus does not answer (the
    monitor then shows its own evaluation, marked ``local``). Without any
    monitoring configured it returns ``AlertsSnapshot(source="local",
    note=why)``: not authoritative, and nothing to retry."""

    name = "prom-alerts"
    kind = "alerts"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        prom: PromClient | None = None,
        alertmanager: AlertmanagerClient | None = None,
    ) -> None:
        super().__init__(settings, clock=clock)
        self._own = prom is None
        self._prom = prom
        self._am = alertmanager

    @property
    def interval(self) -> float:
        return 10.0

    @property
    def poll_timeout(self) -> float:
        return self.settings.request_timeout + 3.0

    async def poll(self) -> AlertsSnapshot:
        missing = monitoring_configured(self.settings)
        if missing is not None:
            return AlertsSnapshot(
                taken_at=self.clock(),
                source="local",
                note=f"{missing}: evaluated by this console",
            )
        if self._prom is None:
            self._prom = PromClient(self.settings)
        if self._am is None:
            self._am = AlertmanagerClient(self.settings)
        answers: list[Any] = await asyncio.gather(
            self._prom.rules(), self._am.alerts(), self._am.silences(), return_exceptions=True
        )
        rules_r, alerts_r, silences_r = answers
        if isinstance(rules_r, BaseException):
            if not isinstance(rules_r, PromError | TimeoutError):
                raise rules_r
            raise PrometheusUnavailable(self.name, explain(self.settings, rules_r))
        note = None
        am_alerts: list[dict[str, Any]] = []
        am_silences: list[dict[str, Any]] = []
        for r in (alerts_r, silences_r):
            if isinstance(r, BaseException):
                if not isinstance(r, PromError | TimeoutError):
                    raise r
                note = f"silences unknown: {str(r) or 'Alertmanager timed out'}"
        if not isinstance(alerts_r, BaseException):
            am_alerts = alerts_r
        if not isinstance(silences_r, BaseException):
            am_silences = silences_r
        return AlertsSnapshot(
            taken_at=self.clock(),
            alerts=alerts_from_rules(rules_r, am_alerts, am_silences),
            source="prometheus",
            note=note,
            silences=silences_from_alertmanager(am_silences),
        )

    async def aclose(self) -> None:
        if self._own:
            for client in (self._prom, self._am):
                if client is not None:
                    await client.aclose()
            self._prom = self._am = None
