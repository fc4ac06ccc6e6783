"""The runbook's alert rules, evaluated in the console with Prometheus ``for`` semantics.

A rule watches one value per subject (a container, the stack, the API, the
budget). When the value goes above the threshold the alert becomes
*pending*; when it has stayed above for the rule's ``for`` duration it is
*firing*; as soon as it is back at or below the threshold (or the subject
disappears) the alert is gone, and a new breach starts the clock again.

Pure: no I/O, the clock is injected, the engine is fed snapshots by the
monitor (``feed_stats``, ``feed_health``, ``feed_cost``) and tests feed it
values directly (``observe``). An alert whose input stopped coming (its
source is down) is dropped after ``stale_after`` seconds rather than left
firing on frozen data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from console.core.config import Settings
from console.core.models import Alert, AlertsSnapshot, CostSnapshot, HealthSnapshot, StatsSnapshot
from console.core.sources.base import Clock, utcnow

__all__ = [
    "COST",
    "CPU",
    "LATENCY",
    "MEMORY",
    "AlertEngine",
    "Rule",
    "default_rules",
]

CPU = "HighCPUUsage"
MEMORY = "HighMemoryUsage"
LATENCY = "HighAPIResponseTime"
COST = "CostBudgetExceeded"


@dataclass(frozen=True)
class Rule:
    """One alert rule."""

    name: str
    threshold: float
    for_seconds: float
    message: Callable[[str, float, float], str]
    """(subject, value, threshold) -> the line the alerts bar shows."""


def _cpu_msg(subject: str, value: float, threshold: float) -> str:
    return f"{subject} CPU {value:.0f}% > {threshold:g}%"


def _mem_msg(subject: str, value: float, threshold: float) -> str:
    return f"{subject} memory {value:.0f}% > {threshold:g}%"


def _latency_msg(subject: str, value: float, threshold: float) -> str:
    return f"API p95 {value:.2f} s > {threshold:g} s"


def _cost_msg(subject: str, value: float, threshold: float) -> str:
    return f"daily cost projection ${value:.2f} > ${threshold:.2f}"


def default_rules(settings: Settings) -> list[Rule]:
    """The four runbook rules with the thresholds and durations of ``settings``."""
    cfg = settings.alerts
    rules = []
    for name, section, msg in (
        (CPU, cfg.cpu, _cpu_msg),
        (MEMORY, cfg.memory, _mem_msg),
        (LATENCY, cfg.p95, _latency_msg),
        (COST, cfg.cost, _cost_msg),
    ):
        if section.enabled:
            rules.append(Rule(name, section.threshold, section.for_seconds, msg))
    return rules


@dataclass
class _Active:
    pending_since: datetime
    last_seen: datetime
    value: float
    firing: bool


class AlertEngine:
    """Pending/firing state of every (rule, subject)."""

    def __init__(
        self, rules: Sequence[Rule], *, clock: Clock = utcnow, stale_after: float = 300.0
    ) -> None:
        self.rules = {rule.name: rule for rule in rules}
        self.clock = clock
        self.stale_after = stale_after
        self._active: dict[tuple[str, str], _Active] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = utcnow) -> AlertEngine:
        return cls(default_rules(settings), clock=clock, stale_after=settings.alerts.stale_after)

    # --- the core --------------------------------------------------------------------

    def observe(
        self, rule_name: str, values: Mapping[str, float | None], *, at: datetime | None = None
    ) -> None:
        """Evaluate ``rule_name`` on the latest value of each subject.

        ``values`` is the complete current picture for that rule: a subject
        that is missing, None, or at/below the threshold resets.
        """
        rule = self.rules.get(rule_name)
        if rule is None:
            return
        now = at or self.clock()
        breaching = {
            subject: float(value)
            for subject, value in values.items()
            if value is not None and float(value) > rule.threshold
        }
        for key in [k for k in self._active if k[0] == rule_name and k[1] not in breaching]:
            del self._active[key]
        for subject, value in breaching.items():
            key = (rule_name, subject)
            state = self._active.get(key)
            if state is None:
                state = _Active(pending_since=now, last_seen=now, value=value, firing=False)
                self._active[key] = state
            state.value = value
            state.last_seen = now
            state.firing = (now - state.pending_since).total_seconds() >= rule.for_seconds

    def snapshot(self) -> AlertsSnapshot:
        """Pending and firing alerts, firing first, then the oldest first."""
        now = self.clock()
        for key in [
            k
            for k, s in self._active.items()
            if (now - s.last_seen).total_seconds() > self.stale_after
        ]:
            del self._active[key]
        alerts = [
            Alert(
                rule=rule_name,
                subject=subject,
                value=round(state.value, 4),
                threshold=self.rules[rule_name].threshold,
                pending_since=state.pending_since,
                firing=state.firing,
                message=self.rules[rule_name].message(
                    subject, state.value, self.rules[rule_name].threshold
                ),
            )
            for (rule_name, subject), state in self._active.items()
        ]
        alerts.sort(key=lambda a: (not a.firing, a.pending_since, a.rule, a.subject))
        return AlertsSnapshot(taken_at=now, alerts=alerts)

    @property
    def firing(self) -> list[tuple[str, str]]:
        """(rule, subject) of the firing alerts."""
        return [key for key, state in self._active.items() if state.firing]

    # --- feeding from snapshots ----------------------------------------------------------

    def feed_stats(self, snap: StatsSnapshot) -> None:
        """CPU against each container's CPU limit (host CPUs when unlimited),
        memory against its limit; plus the stack's totals against the host."""
        host_cpus = max(1, snap.host_cpus or 1)
        services = [c.service for c in snap.containers]
        cpu: dict[str, float | None] = {}
        mem: dict[str, float | None] = {}
        for c in snap.containers:
            subject = c.service if services.count(c.service) == 1 else c.name
            cpus = c.cpu_limit if c.cpu_limit and c.cpu_limit > 0 else host_cpus
            cpu[subject] = c.cpu_percent / cpus
            mem[subject] = c.mem_percent
        if snap.containers:
            cpu["stack"] = snap.total_cpu_percent / host_cpus
            if snap.host_mem_total:
                mem["stack"] = snap.total_mem_usage / snap.host_mem_total * 100.0
        self.observe(CPU, cpu, at=snap.taken_at)
        self.observe(MEMORY, mem, at=snap.taken_at)

    def feed_health(self, snap: HealthSnapshot) -> None:
        """p95 of the API's request durations (None: no traffic, no alert)."""
        self.observe(LATENCY, {"api": snap.p95_seconds}, at=snap.taken_at)

    def feed_cost(self, snap: CostSnapshot) -> None:
        """The daily cost projection against the daily target."""
        self.observe(COST, {"budget": snap.daily_projection}, at=snap.taken_at)
