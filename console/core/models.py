"""Snapshots that cross from ``console.core`` to the UI and the CLI.

Every panel renders exactly one of these models; nothing in the UI talks to
Docker, SQL or HTTP. Models are immutable pydantic objects so a snapshot can
be handed to another thread or task without copying, recorded to JSON for the
snapshot tests, and compared to decide whether a redraw is needed.

Rules for changing this module: add fields with defaults, never rename or
remove one (the UI, the CLI's ``--json`` output and recorded test fixtures
depend on the names).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Colour = Literal["blue", "green"]


class Snapshot(BaseModel):
    """Base of every snapshot: frozen, with the moment it was taken."""

    model_config = ConfigDict(frozen=True)

    taken_at: datetime
    """When the source produced this snapshot (timezone-aware, UTC)."""


class SourceState(BaseModel):
    """Liveness of one source, so the UI can mark stale panels with an age."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Source name: engine, stats, health, postgres, redis, cost, events."""
    ok: bool
    """True when the last attempt succeeded."""
    last_ok: datetime | None = None
    """When the source last produced good data (None: never)."""
    last_error: str | None = None
    """Short, operator-readable reason of the last failure (no secrets)."""
    failures: int = 0
    """Consecutive failures; drives the backoff."""
    next_retry: datetime | None = None
    """When the next attempt is due after a failure."""


# --- containers -------------------------------------------------------------


class ContainerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    service: str
    """Compose service name (``com.docker.compose.service`` label)."""
    colour: Colour | None = None
    image: str
    tag: str
    state: str
    """running, exited, restarting, paused, created, dead."""
    health: str | None = None
    """healthy, unhealthy, starting, or None when the image has no check."""
    started_at: datetime | None = None
    restart_count: int = 0
    ports: list[str] = Field(default_factory=list)
    """Published ports as ``127.0.0.1:80->80/tcp``."""
    version: str | None = None
    """App version label/env of backend containers."""


class ContainersSnapshot(Snapshot):
    project: str
    containers: list[ContainerInfo] = Field(default_factory=list)
    serving_colour: Colour | None = None
    """The colour nginx routes traffic to right now (read from nginx itself)."""
    serving_frontend: Colour | None = None
    """The web frontend's colour nginx sends ``/`` to (its active.conf)."""
    engine_version: str | None = None


# --- swarm (services -> tasks -> nodes) ---------------------------------------

StackMode = Literal["compose", "swarm"]
"""How the stack runs: a compose project on one engine, or a swarm stack
(services labelled ``com.docker.stack.namespace=<stack>``) across nodes."""

LIVE_TASK_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "ready", "preparing", "starting", "running"}
)
"""Task states on the way to running, or running (the others are final:
complete, shutdown, failed, rejected, orphaned, remove)."""


class SwarmTask(BaseModel):
    """One task of a swarm service: a slot (replicated) or a node (global)."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Task id (short, 12 characters)."""
    service: str
    """The service's short name (``backend``), without the stack prefix."""
    slot: int | None = None
    """Replica slot (1, 2, ...); None for a global service's task."""
    node_id: str | None = None
    node: str | None = None
    """The node's hostname (None: not scheduled yet, or the node is gone)."""
    node_state: str | None = None
    """Its node's state when the snapshot was taken (ready, down, ...; None:
    no node, or not known)."""
    state: str
    """new, pending, assigned, accepted, preparing, starting, running,
    complete, shutdown, failed, rejected, orphaned, remove."""
    desired_state: str
    """What the orchestrator wants of it: running, shutdown, ..."""
    since: datetime | None = None
    """When it entered its current state (the task's status timestamp)."""
    message: str = ""
    """The orchestrator's note (``started``, ``preparing``)."""
    error: str | None = None
    """Why it failed or was rejected (``task: non-zero exit (1)``,
    ``no suitable node (scheduling constraints not satisfied ...)``)."""
    image: str = ""
    tag: str = ""
    exit_code: int | None = None
    container_id: str | None = None
    """Short container id on its node."""

    @property
    def live(self) -> bool:
        """Running or on its way there, or meant to be (desired running)."""
        return self.state in LIVE_TASK_STATES or self.desired_state == "running"

    @property
    def lost(self) -> bool:
        """Last reported running (or on its way) by a node that is not ready
        now: the engine keeps its last state (``docker service ls`` then
        counts it, 3/2), but nobody knows whether it runs."""
        return self.state in LIVE_TASK_STATES and self.node_state not in (None, "ready")

    @property
    def running(self) -> bool:
        """Running, meant to run, and on a node that is ready."""
        return self.state == "running" and self.desired_state == "running" and not self.lost

    @property
    def name(self) -> str:
        """``backend.2`` (replicated) or ``backend.<node>`` (global), as ``docker service ps``."""
        suffix = str(self.slot) if self.slot is not None else (self.node or self.node_id or "?")
        return f"{self.service}.{suffix}"


class SwarmService(BaseModel):
    """One service of the swarm stack and its tasks."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    """The engine's name (``investment_backend``)."""
    service: str
    """The short name within the stack (``backend``)."""
    mode: str = "replicated"
    """replicated, global, replicated-job, global-job."""
    desired: int = 0
    """Tasks wanted: the replica count, or (global) one per eligible node."""
    running: int = 0
    """Tasks running now (:attr:`SwarmTask.running`: meant to run, on a
    node that is ready; not the engine's count, which includes tasks on a
    node that went down and tasks an update is stopping)."""
    image: str = ""
    tag: str = ""
    update_state: str | None = None
    """updating, paused, completed, rollback_started, rollback_paused,
    rollback_completed; None: never updated."""
    update_message: str | None = None
    ports: list[str] = Field(default_factory=list)
    """Published ports as ``8080->80/tcp (host)``."""
    tasks: list[SwarmTask] = Field(default_factory=list)
    """Every task the engine still keeps (its history included), by slot
    (or node), newest first within one."""

    @property
    def shown_tasks(self) -> list[SwarmTask]:
        """What a panel lists: every live task, and for a slot (or node) with
        none, its newest task (a failure there says why the slot is empty)."""
        shown: list[SwarmTask] = []
        covered: set[object] = set()
        for task in self.tasks:
            if task.live:
                shown.append(task)
                covered.add(task.slot if task.slot is not None else task.node_id)
        newest: dict[object, SwarmTask] = {}
        for task in self.tasks:
            key = task.slot if task.slot is not None else task.node_id
            if key not in covered and key not in newest:
                newest[key] = task
        shown.extend(newest.values())
        return sorted(
            shown,
            key=lambda t: (t.slot if t.slot is not None else 0, t.node or "", not t.live),
        )

    @property
    def last_error(self) -> SwarmTask | None:
        """The newest task with an error: one that failed or was rejected, or
        one waiting with a reason (``no suitable node``); None: none kept."""
        failed = [
            t for t in self.tasks if t.error and (t.live or t.state in ("failed", "rejected"))
        ]
        return max(failed, key=lambda t: t.since.timestamp() if t.since else 0.0, default=None)


class SwarmNode(BaseModel):
    """One node of the swarm."""

    model_config = ConfigDict(frozen=True)

    id: str
    hostname: str
    role: str
    """manager or worker."""
    availability: str
    """active, pause or drain (what the operator set)."""
    state: str
    """ready, down, disconnected, unknown (what the managers see)."""
    addr: str | None = None
    message: str = ""
    leader: bool = False
    reachability: str | None = None
    """A manager's reachability: reachable, unreachable, unknown."""
    engine_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    """The node's labels (``Spec.Labels``: what placement constraints match)."""


class SwarmSnapshot(Snapshot):
    """The stack as a swarm sees it, or why it is a compose project."""

    stack: str
    mode: StackMode = "compose"
    """What the console found (or was told: ``Settings.mode``)."""
    reason: str | None = None
    """Why it is that mode (``the engine is not part of a swarm``, ``no
    service labelled com.docker.stack.namespace=x``, ``set by STACKDECK_MODE``)."""
    node_id: str | None = None
    """The node whose engine the console talks to."""
    engine_version: str | None = None
    services: list[SwarmService] = Field(default_factory=list)
    nodes: list[SwarmNode] = Field(default_factory=list)


ColourRole = Literal["serving", "down", "standby", "standby-running", "absent", "unknown"]
"""What a deployment colour is for, against what it does (``console.core.colours``):

- ``serving``: nginx routes to it and its container runs;
- ``down``: nginx routes to it and its container does not run (an outage: red);
- ``standby``: not serving, container stopped on purpose (kept for rollback or
  roll-forward): dimmed, not probed, never a failure;
- ``standby-running``: not serving, container running (the instant rollback
  target of the default blue-green state): healthy is normal, a failing
  check a warning, never an outage;
- ``absent``: not serving and no container at all;
- ``unknown``: which colour serves is not known (nginx unreadable): shown as
  the container and the checks say, without interpretation."""


class ColourStatus(BaseModel):
    """One deployment colour's role (see :data:`ColourRole`)."""

    model_config = ConfigDict(frozen=True)

    colour: Colour
    role: ColourRole
    state: str | None = None
    """Its container's state (running, exited, ...), None without a container
    or without a container list."""
    version: str | None = None
    """The version its container carries (else what its ``/api/health`` said)."""

    @property
    def is_standby(self) -> bool:
        """Not serving, on purpose: stopped or running as a rollback target."""
        return self.role in ("standby", "standby-running")


# --- health endpoints -------------------------------------------------------


class EndpointResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    """``/api/health``, ``/api/health/database``, ..."""
    target: Literal["nginx", "blue", "green"]
    status: int | None = None
    """HTTP status, None when no response (refused, timeout)."""
    latency_ms: float | None = None
    version: str | None = None
    colour: Colour | None = None
    error: str | None = None


class HealthSnapshot(Snapshot):
    results: list[EndpointResult] = Field(default_factory=list)
    p95_seconds: float | None = None
    """p95 of ``http_request_duration_seconds`` over both colours since the
    previous scrape (histogram bucket deltas); None until two scrapes, or
    when no request was served in between."""
    request_rate: float | None = None
    """Requests per second served by the backends since the previous scrape."""
    tls_days_left: int | None = None
    """Whole days before nginx's certificate expires (negative: expired);
    None when it cannot be read."""


# --- docker stats -----------------------------------------------------------


class ContainerStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    service: str
    cpu_percent: float
    """Percent of one core (docker's convention: 200 % = two cores busy)."""
    mem_usage: int
    """Bytes, page cache excluded."""
    mem_limit: int
    mem_percent: float
    net_rx_rate: float = 0.0
    """Bytes per second."""
    net_tx_rate: float = 0.0
    blk_read_rate: float = 0.0
    blk_write_rate: float = 0.0
    pids: int = 0
    cpu_history: list[float] = Field(default_factory=list)
    """Oldest first, one point per sample; bounded length."""
    mem_history: list[float] = Field(default_factory=list)
    """Memory percent, oldest first."""
    cpu_limit: float | None = None
    """CPUs the container may use (its ``--cpus`` limit), None when unlimited."""
    id: str = ""
    """Container id (short)."""


class StatsSnapshot(Snapshot):
    containers: list[ContainerStats] = Field(default_factory=list)
    total_cpu_percent: float = 0.0
    total_mem_usage: int = 0
    host_mem_total: int = 0
    host_cpus: int = 0
    refresh_seconds: float | None = None
    """How long the last full refresh of every container took: from the end of
    the previous refresh until every container had delivered a new sample."""


# --- swarm stats and task health (from the monitoring) ----------------------


def task_short_name(container: str, service: str, node: str) -> str:
    """``investment_backend.1.<id>`` -> ``backend.1``; a global service's
    ``investment_node_exporter.<node id>.<id>`` -> ``node_exporter.<node>``."""
    parts = container.split(".")
    if len(parts) >= 3 and parts[1].isdigit():
        return f"{service}.{parts[1]}"
    return f"{service}.{node}" if node else service


class NodeStats(BaseModel):
    """One swarm node as its node exporter reports it (Prometheus)."""

    model_config = ConfigDict(frozen=True)

    node: str
    """The node's hostname (``node_uname_info{nodename}``)."""
    cpu_percent: float | None = None
    """Busy share of the node's CPUs over the last minute (None: not known)."""
    mem_used: int | None = None
    """MemTotal - MemAvailable, bytes."""
    mem_total: int | None = None
    load1: float | None = None
    age_seconds: float | None = None
    """Seconds since Prometheus last scraped its exporter (None: not known)."""
    stale: bool = False
    """No fresh sample: the node (or its exporter) stopped answering."""

    @property
    def mem_percent(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total


class TaskStats(BaseModel):
    """CPU and memory of one task's container, from the stack exporter of its node."""

    model_config = ConfigDict(frozen=True)

    name: str
    """The container's name (``investment_backend.1.<task id>``)."""
    service: str
    """The service's short name (``backend``)."""
    node: str
    task: str = ""
    """The task id (full)."""
    cpu_percent: float | None = None
    """Per cent of one core over the last minute."""
    mem_usage: int | None = None
    mem_limit: int | None = None
    age_seconds: float | None = None
    stale: bool = False

    @property
    def short_name(self) -> str:
        """``backend.1`` (replicated: its slot) or ``node_exporter.<node>``
        (global), as ``docker service ps`` names tasks; the container name is
        ``<stack>_<service>.<slot or node id>.<task id>``."""
        return task_short_name(self.name, self.service, self.node)

    @property
    def mem_percent(self) -> float | None:
        if self.mem_usage is None or not self.mem_limit:
            return None
        return 100.0 * self.mem_usage / self.mem_limit


class TaskHealth(BaseModel):
    """One task's health: Prometheus' scrape of it (``up``) and the engine's
    health check status, as its node's stack exporter read it."""

    model_config = ConfigDict(frozen=True)

    service: str
    task: str = ""
    name: str = ""
    """The task's short name (``backend.2``; empty: a scrape target no task claims)."""
    node: str = ""
    address: str = ""
    """The address Prometheus scrapes (``10.0.1.7:8000``), when it does."""
    scrape: Literal["up", "down"] | None = None
    """Prometheus' ``up`` of the task's target (None: not a scrape target)."""
    health: str = "unknown"
    """healthy, unhealthy, starting, none (no health check), unknown."""
    age_seconds: float | None = None
    stale: bool = False


class SwarmStatsSnapshot(Snapshot):
    """Per-node and per-task stats and per-task health of a swarm stack, from
    Prometheus (the Docker stats API sees one engine only)."""

    available: bool = True
    """False: Prometheus did not answer (``reason`` says why)."""
    reason: str | None = None
    where: str = "Prometheus"
    """``Prometheus at 127.0.0.1:9090`` (no credential)."""
    nodes: list[NodeStats] = Field(default_factory=list)
    tasks: list[TaskStats] = Field(default_factory=list)
    health: list[TaskHealth] = Field(default_factory=list)


# --- database ---------------------------------------------------------------


class SlowQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    query: str
    calls: int
    mean_ms: float
    total_ms: float
    rows: int


class ActiveSession(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    user: str | None = None
    application: str | None = None
    state: str | None = None
    duration_s: float | None = None
    wait_event: str | None = None
    query: str = ""


class TableHealth(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str
    live_tuples: int
    dead_tuples: int
    last_vacuum: datetime | None = None
    last_autovacuum: datetime | None = None


class DatabaseSnapshot(Snapshot):
    slow_queries: list[SlowQuery] = Field(default_factory=list)
    sessions: list[ActiveSession] = Field(default_factory=list)
    """Non-idle sessions, longest running first."""
    connections: int = 0
    max_connections: int = 0
    db_size_bytes: int = 0
    tables: list[TableHealth] = Field(default_factory=list)
    """Tables with the most dead tuples first."""
    schema_version: str | None = None
    warnings: list[str] = Field(default_factory=list)
    """Parts that could not be read (e.g. pg_stat_statements not installed)."""


# --- quotas -----------------------------------------------------------------


class ProviderQuota(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    """Ledger name: alpha_vantage, finnhub, polygon, newsapi."""
    label: str
    """Display name: Alpha Vantage, ..."""
    used: int
    limit: int
    window_seconds: int
    resets_at: datetime
    burn_per_hour: float | None = None
    exhausts_at: datetime | None = None
    """Projected exhaustion within this window at the current burn, or None."""
    window: str = ""
    """``minute`` or ``day``."""


class QuotaSnapshot(Snapshot):
    providers: list[ProviderQuota] = Field(default_factory=list)
    emergency_limit: bool = False
    emergency_ttl_s: int | None = None


# --- cost -------------------------------------------------------------------


class CostDay(BaseModel):
    """One UTC day of the recorded cost history (what the chart draws)."""

    model_config = ConfigDict(frozen=True)

    day: date
    cost: float | None
    """USD of the day (today: so far); None: no record of that day (a gap)."""
    partial: bool = False
    """Recorded for part of the day only: the first day of the record."""


class CostSnapshot(Snapshot):
    month_to_date: float
    daily_projection: float
    daily_target: float = 1.67
    month_end_projection: float
    monthly_budget: float = 50.0
    components: dict[str, float] = Field(default_factory=dict)
    """USD per day by component (compute, storage, provider calls, ...)."""
    cache_hit_rate: float | None = None
    daily_history: list[tuple[date, float]] = Field(default_factory=list)
    """The platform's modelled cost of the last 30 days (its fixed part counts
    days before the stack existed): not drawn, see ``recorded_days``."""
    recorded_days: list[CostDay] = Field(default_factory=list)
    """The days whose cost was recorded as they happened, from the first one
    to today (at most 30), a day without a record as a gap."""


# --- alerts, events, logs ---------------------------------------------------


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    """HighCPUUsage, HighMemoryUsage, HighAPIResponseTime, CostBudgetExceeded."""
    subject: str
    """What it is about: a container name, ``host``, ``api``, ``budget``."""
    value: float
    threshold: float
    pending_since: datetime
    firing: bool
    """True once the condition held for the rule's ``for`` duration."""
    message: str
    source: Literal["local", "prometheus"] = "local"
    """Who evaluated it: the stack's Prometheus, or the console itself (the
    fallback when no Prometheus answers)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """The alert's labels (Prometheus), e.g. alertname, service, colour, severity."""
    silenced_by: list[str] = Field(default_factory=list)
    """Ids of the Alertmanager silences that mute it now."""
    for_seconds: float | None = None
    """The rule's ``for``: how long the condition must hold before it fires
    (Prometheus' rules; None when not known)."""


class Silence(BaseModel):
    """One Alertmanager silence."""

    model_config = ConfigDict(frozen=True)

    id: str
    matchers: str
    """``alertname=HighCPUUsage, service=host``."""
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str = "active"
    """active, pending or expired."""


class AlertsSnapshot(Snapshot):
    alerts: list[Alert] = Field(default_factory=list)
    """Pending and firing; firing first."""
    source: Literal["local", "prometheus"] = "local"
    """Where the alerts come from; ``local`` is the console's fallback."""
    note: str | None = None
    """Why the alerts are evaluated locally (Prometheus' failure), or None."""
    silences: list[Silence] = Field(default_factory=list)
    """Active and pending silences (Alertmanager), the soonest to end first."""


# --- history (Prometheus) ----------------------------------------------------


class HistorySeries(BaseModel):
    """One time series of a chart, read from Prometheus."""

    model_config = ConfigDict(frozen=True)

    key: str
    """``<chart>:<subject>``, e.g. ``cpu:backend_blue``, ``p95:green``."""
    chart: str
    """Which chart it belongs to (``cpu``, ``mem``, ``p95``, ``errors``, ...)."""
    subject: str
    """Service, colour, provider, route ... (the legend)."""
    unit: str = ""
    points: list[tuple[float, float]] = Field(default_factory=list)
    """(unix time, value), oldest first; gaps are missing points."""


class Marker(BaseModel):
    """An operation drawn on the time charts (from the audit log)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    op: str
    """deploy, rollback, vacuum, cache-flush, emergency-limit, ..."""
    label: str
    """``deploy v2.0.0 by root: ok``."""
    result: str | None = None
    op_id: str = ""
    operator: str = ""


class HistorySnapshot(Snapshot):
    """The charts' memory: Prometheus range queries over ``range_seconds``."""

    range_seconds: int = 3600
    start: datetime | None = None
    end: datetime | None = None
    step_seconds: float = 30.0
    series: list[HistorySeries] = Field(default_factory=list)
    markers: list[Marker] = Field(default_factory=list)
    """Operations within the range, oldest first (read even without Prometheus)."""
    available: bool = True
    """False: no history (``reason`` says why); the charts show live samples only."""
    reason: str | None = None

    def chart(self, name: str) -> list[HistorySeries]:
        return [s for s in self.series if s.chart == name]

    def subject(self, chart: str, subject: str) -> HistorySeries | None:
        return next((s for s in self.series if s.chart == chart and s.subject == subject), None)


# --- since the deploy --------------------------------------------------------


class Comparison(BaseModel):
    """One number before and after the deploy."""

    model_config = ConfigDict(frozen=True)

    group: str
    """``endpoint``, ``service``."""
    subject: str
    """``GET /api/stocks/prices``, ``backend_green``, ..."""
    metric: str
    """``p95``, ``error rate``, ``cpu``, ``memory``."""
    unit: str = ""
    before: float | None = None
    after: float | None = None

    @property
    def change(self) -> float | None:
        """after / before (None when one is missing or before is 0)."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before


class StatementChange(BaseModel):
    """A pg_stat_statements entry compared across the deploy."""

    model_config = ConfigDict(frozen=True)

    queryid: str
    query: str
    calls_before: int = 0
    mean_ms_before: float | None = None
    calls_after: int = 0
    mean_ms_after: float | None = None
    new: bool = False
    """Not in the snapshot taken at the deploy: first run after it."""

    @property
    def ratio(self) -> float | None:
        if not self.mean_ms_before or self.mean_ms_after is None:
            return None
        return self.mean_ms_after / self.mean_ms_before


class SinceDeploySnapshot(Snapshot):
    """The window before the last deploy against the window after it."""

    deploy: Marker | None = None
    """The deploy compared against (None: no deploy on record)."""
    before_start: datetime | None = None
    after_end: datetime | None = None
    window_seconds: float = 0.0
    comparisons: list[Comparison] = Field(default_factory=list)
    slower: list[StatementChange] = Field(default_factory=list)
    """Statements slower after the deploy, the biggest ratio first."""
    new_statements: list[StatementChange] = Field(default_factory=list)
    """Statements first seen after the deploy, the most time first."""
    statements_snapshot_at: datetime | None = None
    """When the pg_stat_statements snapshot compared against was taken (at
    the deploy's start); the statements' "after" runs from it to ``taken_at``."""
    warnings: list[str] = Field(default_factory=list)
    """What could not be compared, and why (no Prometheus, no pgss snapshot)."""


class EngineEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    container: str
    service: str | None = None
    action: str
    """start, die, stop, kill, restart, health_status: healthy, oom, ...; for
    an operation read from the audit log, its name (deploy, rollback, ...)."""
    detail: str | None = None
    origin: Literal["engine", "inspect", "audit", "swarm"] = "engine"
    """Where it was read: the engine's event stream; a container's
    ``docker inspect`` (its creation, last start, last exit); stackdeck's
    audit log (an operation, by anyone); two swarm snapshots compared (a node
    down or drained, a task rescheduled or failed, an update's state, a scale)."""
    before_start: bool = False
    """It happened before the console started: recalled at start, not seen live."""


class EventsSnapshot(Snapshot):
    events: list[EngineEvent] = Field(default_factory=list)
    """Newest last, bounded."""
    started_at: datetime | None = None
    """When the console (its events source) started; earlier events were recalled."""
    since: datetime | None = None
    """The look-back: the timeline covers events from here on."""


class LogLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime | None
    container: str
    stream: Literal["stdout", "stderr"] = "stdout"
    text: str


# --- operations -------------------------------------------------------------


class VacuumProgress(BaseModel):
    """Where a running VACUUM stands: one row of ``pg_stat_progress_vacuum``,
    or, before it has one, the lock its session waits for. Carried in the
    ``data["progress"]`` of the vacuum's ``progress`` events; the Operations
    panel shows the latest one live, the CLI prints :meth:`describe`."""

    model_config = ConfigDict(frozen=True)

    relation: str | None = None
    """The table being vacuumed (``prices``, ``public.prices``)."""
    phase: str
    """PostgreSQL's phase words (``scanning heap``, ``vacuuming indexes``,
    ...) or ``waiting for a lock`` while the session is blocked."""
    heap_blks_total: int = 0
    heap_blks_scanned: int = 0
    heap_blks_vacuumed: int = 0
    index_vacuum_count: int = 0
    """Completed passes over the indexes."""
    waiting_on: str | None = None
    """The lock wait event (``relation``) when ``phase`` is waiting."""
    blockers: tuple[int, ...] = ()
    """Backend pids holding the lock the VACUUM waits for."""

    WAITING: ClassVar[str] = "waiting for a lock"

    @property
    def waiting(self) -> bool:
        return self.phase == self.WAITING

    def describe(self) -> str:
        """``scanning heap 1,234/5,678 blocks (22 %)`` (blocks of the phase that
        counts them), ``vacuuming indexes · 1 index pass``, ``waiting for a
        lock (relation) held by pid 4242``."""
        if self.waiting:
            what = f" ({self.waiting_on})" if self.waiting_on else ""
            held = ""
            if self.blockers:
                held = f" held by pid{'s' if len(self.blockers) > 1 else ''} " + ", ".join(
                    str(p) for p in self.blockers
                )
            return f"{self.WAITING}{what}{held}"
        done = None
        if self.phase == "scanning heap":
            done = self.heap_blks_scanned
        elif self.phase == "vacuuming heap":
            done = self.heap_blks_vacuumed
        text = self.phase
        if done is not None and self.heap_blks_total > 0:
            pct = min(100, done * 100 // self.heap_blks_total)
            text += f" {done:,}/{self.heap_blks_total:,} blocks ({pct} %)"
        if self.index_vacuum_count:
            passes = self.index_vacuum_count
            text += f" · {passes} index pass{'es' if passes > 1 else ''}"
        return text


class OpEvent(BaseModel):
    """One step event of an operation, rendered by the ops log and the CLI."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    op: str
    """deploy, rollback, backup, restore, migrate, vacuum, cache-flush, ..."""
    step: str
    """Machine-friendly step name: preflight, start-idle, wait-healthy, ..."""
    status: Literal["start", "ok", "fail", "info", "warn", "done"]
    """``done`` is the last event of a successful op; ``fail`` with step
    ``result`` the last of a failed one."""
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class OpsLog(BaseModel):
    """The events of the operations started from one console, oldest first
    (the Operations panel's model). Immutable: :meth:`add` returns a new log."""

    model_config = ConfigDict(frozen=True)

    MAX_EVENTS: ClassVar[int] = 2000

    events: tuple[OpEvent, ...] = ()

    def add(self, event: OpEvent) -> OpsLog:
        """This log with ``event`` appended (the oldest dropped beyond MAX_EVENTS)."""
        kept = self.events[-(self.MAX_EVENTS - 1) :] if self.events else ()
        return OpsLog.model_construct(events=(*kept, event))


class OpHolder(BaseModel):
    """Who runs an operation, as the deploy lock, the audit log and the
    journal record it."""

    model_config = ConfigDict(frozen=True)

    user: str | None = None
    host: str | None = None
    pid: int | None = None
    ssh_client: str | None = None
    """The SSH client's address (None on a local terminal)."""
    via: str | None = None
    """``tui`` (a console) or ``cli`` (``stackdeck <command>``, a script);
    None in records written before it was recorded."""

    @property
    def who(self) -> str:
        """``alice@host2 (cli)``."""
        text = f"{self.user or '?'}@{self.host or '?'}"
        return f"{text} ({self.via})" if self.via else text


class LockInfo(BaseModel):
    """The deploy lock as held by another process (never this console's own)."""

    model_config = ConfigDict(frozen=True)

    op: str
    op_id: str | None = None
    holder: OpHolder
    started: datetime | None = None
    stale: bool = False
    """Nobody holds the lock but its record is left: the holder died mid-operation."""
    alive: bool | None = None
    """Whether the holder's pid still runs (None: another host, cannot be checked)."""


class ScheduleLine(BaseModel):
    """One entry of the configured schedule, as the Operations panel shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    scale: str
    """What it does (``backend=1``)."""
    when: str
    """The cron expression in words (``At 22:00 every day``)."""
    next_run: datetime | None = None
    """Local time of its next run (None: disabled)."""
    installed: bool = False
    """Whether the host's cron has it (``stackdeck schedule install``)."""
    last_at: datetime | None = None
    last_result: str | None = None
    """``ok``, ``refused`` or ``failed`` (None: never ran)."""
    last_message: str = ""


class OtherOpsSnapshot(Snapshot):
    """What other operators do on this stack (other consoles, the CLI,
    scripts), from the stack's lock, audit log and journal: this console's
    own operations are not in it (the Operations panel has them already)."""

    lock: LockInfo | None = None
    """The deploy lock when another process holds it (or left it stale)."""
    events: list[OpEvent] = Field(default_factory=list)
    """Their operations' events, oldest first, the last ``MAX_EVENTS``;
    each event's ``data`` has ``seq`` (1, 2, ...), ``op_id``, ``by``
    (:attr:`OpHolder.who`) and ``pid``."""
    seq: int = 0
    """How many events were produced so far: the consumer appends those
    whose ``seq`` is above the last one it took."""
    schedule: list[ScheduleLine] = Field(default_factory=list)
    """The configured schedule: next and last run of each entry."""

    MAX_EVENTS: ClassVar[int] = 200
