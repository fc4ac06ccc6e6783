"""Stats per node and per task, and health per task, of a swarm stack, from
the stack's Prometheus.

The Docker stats API sees only the engine the console talks to (the
manager's); on Swarm the monitoring runs on every node instead
(``compose/docker-compose.swarm.yml``): the node exporter (global) for each
node's CPU, memory and load, the stack exporter (global, reading its node's
engine) for each task's CPU and memory and its health check status, and
Prometheus' own ``up`` for each backend (and worker) task it scrapes by DNS.
:class:`SwarmStatsSource` (kind ``swarm_stats``) asks those with a few instant
queries through the console's :class:`~console.core.prom.PromClient` (the
same URL and credential as the history) and shapes them with the pure
:func:`shape` (unit-tested on recorded answers).

Stale data is shown as stale: a node or task whose newest sample is older
than ``stale_after`` (two scrape intervals and a bit) is kept for ten minutes
with its age, marked ``stale``; a task whose node is fresh but whose series
ended simply ended (scaled down, replaced) and is left out. When Prometheus
does not answer, the source raises
:class:`~console.core.sources.prometheus.PrometheusUnavailable`: the monitor
keeps the last good snapshot, the panels mark it stale with the reason
(``stale 42s · swarm-stats: Prometheus at 127.0.0.1:9090: not reachable``)
and retries with backoff; the first answer after that clears the marker.
No monitoring configured at all is a snapshot with ``available=False`` and
the reason, not a failure.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from console.core.config import Settings
from console.core.models import (
    NodeStats,
    SwarmStatsSnapshot,
    TaskHealth,
    TaskStats,
    task_short_name,
)
from console.core.prom import Labels, PromClient, PromError, monitoring_configured
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.prometheus import PrometheusUnavailable, explain, where

__all__ = ["QUERIES", "STALE_AFTER", "SwarmStatsSource", "shape"]

Vector = Sequence[tuple[Labels, float]]

STALE_AFTER = 40.0
"""Seconds without a new sample before a node or task is stale (the swarm
Prometheus scrapes every 15 s: two missed scrapes and a bit)."""

_NODE = 'job="node"'
_STACK = 'job="stack"'
QUERIES: dict[str, str] = {
    # instance -> nodename, for nodes seen in the last ten minutes
    "node_info": f"last_over_time(node_uname_info{{{_NODE}}}[10m])",
    "node_age": (
        f"time() - max by (instance) (max_over_time(timestamp(node_uname_info{{{_NODE}}})[10m:15s]))"
    ),
    "node_cpu": (
        f'100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{{{_NODE},mode="idle"}}[1m])))'
    ),
    "node_mem_total": f"node_memory_MemTotal_bytes{{{_NODE}}}",
    "node_mem_available": f"node_memory_MemAvailable_bytes{{{_NODE}}}",
    "node_load1": f"node_load1{{{_NODE}}}",
    "task_cpu": f"100 * rate(container_cpu_usage_seconds_total{{{_STACK}}}[1m])",
    "task_mem": f"container_memory_working_set_bytes{{{_STACK}}}",
    "task_mem_limit": f"container_spec_memory_limit_bytes{{{_STACK}}}",
    "task_age": (
        "time() - max by (name, service, node, task) "
        f"(max_over_time(timestamp(container_memory_working_set_bytes{{{_STACK}}})[10m:15s]))"
    ),
    "task_info": f"stackdeck_container_info{{{_STACK}}}",
    "targets": 'up{job=~"backend|worker"}',
}
"""The instant queries of one poll, by name (the keys :func:`shape` reads)."""

_TASK_KEY = ("name", "service", "node", "task")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _by(vector: Vector, *keys: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels.get(k, "") for k in keys): value for labels, value in vector}


def _int(value: float | None) -> int | None:
    v = _finite(value)
    return int(v) if v is not None else None


def _host(instance: str) -> str:
    """``10.0.1.7:8000`` -> ``10.0.1.7``."""
    return instance.rsplit(":", 1)[0] if ":" in instance else instance


def _rank(node: NodeStats) -> tuple[bool, float, bool]:
    """Which of two instances of one node to show: fresh, then the newest, then with figures."""
    age = node.age_seconds if node.age_seconds is not None else math.inf
    return (node.stale, age, node.mem_total is None)


def shape(
    answers: Mapping[str, Vector], *, stale_after: float = STALE_AFTER
) -> tuple[list[NodeStats], list[TaskStats], list[TaskHealth]]:
    """Nodes, tasks and task health from the answers to :data:`QUERIES`
    (each a parsed instant vector; a missing key counts as empty)."""

    def get(name: str) -> Vector:
        return answers.get(name) or []

    # --- nodes -------------------------------------------------------------
    node_of: dict[str, str] = {}
    for labels, _v in get("node_info"):
        instance, nodename = labels.get("instance", ""), labels.get("nodename", "")
        if instance and nodename:
            node_of[instance] = nodename
    ages = _by(get("node_age"), "instance")
    cpu = _by(get("node_cpu"), "instance")
    total = _by(get("node_mem_total"), "instance")
    avail = _by(get("node_mem_available"), "instance")
    load = _by(get("node_load1"), "instance")
    per_node: dict[str, NodeStats] = {}
    for instance, nodename in node_of.items():
        key: tuple[str, ...] = (instance,)
        age = _finite(ages.get(key))
        t, a = _int(total.get(key)), _int(avail.get(key))
        stats = NodeStats(
            node=nodename,
            cpu_percent=_finite(cpu.get(key)),
            mem_used=t - a if t is not None and a is not None else None,
            mem_total=t,
            load1=_finite(load.get(key)),
            age_seconds=age,
            stale=age is None or age > stale_after,
        )
        # a node exporter replaced (a new task, a new address) leaves the old
        # instance in node_info for ten minutes: keep the freshest, with figures
        old = per_node.get(nodename)
        if old is None or _rank(stats) < _rank(old):
            per_node[nodename] = stats
    nodes = sorted(per_node.values(), key=lambda n: n.node)
    stale_nodes = {n.node for n in nodes if n.stale}

    # --- tasks -------------------------------------------------------------
    t_cpu = _by(get("task_cpu"), *_TASK_KEY)
    t_mem = _by(get("task_mem"), *_TASK_KEY)
    t_limit = _by(get("task_mem_limit"), *_TASK_KEY)
    t_age = _by(get("task_age"), *_TASK_KEY)
    tasks: list[TaskStats] = []
    for tkey in sorted(set(t_age) | set(t_mem)):
        name, service, node, task = tkey
        age = _finite(t_age.get(tkey))
        stale = age is None or age > stale_after
        if stale and node not in stale_nodes:
            continue  # ended (scaled down, replaced): its node still reports
        tasks.append(
            TaskStats(
                name=name,
                service=service,
                node=node,
                task=task,
                cpu_percent=_finite(t_cpu.get(tkey)) if not stale else None,
                mem_usage=_int(t_mem.get(tkey)),
                mem_limit=_int(t_limit.get(tkey)) or None,
                age_seconds=age,
                stale=stale,
            )
        )
    tasks.sort(key=lambda t: (t.service, t.short_name, t.node))

    # --- health per task ---------------------------------------------------
    targets: dict[str, tuple[str, str, float]] = {}
    """host -> (job, instance, up)"""
    for labels, value in get("targets"):
        instance = labels.get("instance", "")
        if instance:
            targets[_host(instance)] = (labels.get("job", ""), instance, value)
    claimed: set[str] = set()
    health: list[TaskHealth] = []
    for labels, _v in get("task_info"):
        addresses = [a for a in labels.get("addresses", "").split(",") if a]
        hit = next((a for a in addresses if a in targets), None)
        status = labels.get("health", "unknown") or "unknown"
        if hit is None and status == "none":
            continue  # neither scraped nor health-checked: nothing to say
        name, service, node = (
            labels.get("name", ""),
            labels.get("service", ""),
            labels.get("node", ""),
        )
        age = _finite(t_age.get(tuple(labels.get(k, "") for k in _TASK_KEY)))
        row: dict[str, Any] = {
            "age_seconds": age,
            "service": service,
            "task": labels.get("task", ""),
            "name": task_short_name(name, service, node),
            "node": node,
            "health": status,
            "stale": node in stale_nodes,
        }
        if hit is not None:
            claimed.add(hit)
            _job, instance, up = targets[hit]
            row["address"] = instance
            row["scrape"] = "up" if up == 1 else "down"
        health.append(TaskHealth(**row))
    for host, (job, instance, up) in sorted(targets.items()):
        if host not in claimed:  # a target no stack exporter accounts for
            health.append(
                TaskHealth(service=job, address=instance, scrape="up" if up == 1 else "down")
            )
    health.sort(key=lambda h: (h.service, h.name, h.address))
    return nodes, tasks, health


class SwarmStatsSource(Source):
    """Per-node and per-task stats and per-task health from Prometheus."""

    name = "swarm-stats"
    kind = "swarm_stats"

    def __init__(
        self, settings: Settings, *, clock: Clock = utcnow, client: PromClient | None = None
    ) -> None:
        super().__init__(settings, clock=clock)
        self._client = client
        self._own_client = client is None
        self.active = settings.mode == "swarm"
        """Whether the stack is a swarm stack (``mode = "auto"``: the swarm
        source's verdict, :meth:`note_mode`); a compose stack's Prometheus
        is not asked."""

    def note_mode(self, mode: str) -> bool:
        """The swarm source's verdict; True when it changed."""
        active = mode == "swarm" or self.settings.mode == "swarm"
        changed, self.active = active != self.active, active
        return changed

    @property
    def interval(self) -> float:
        return 5.0

    @property
    def poll_timeout(self) -> float:
        return self.settings.request_timeout + 3.0

    def client(self) -> PromClient:
        if self._client is None:
            self._client = PromClient(self.settings)
        return self._client

    async def poll(self) -> SwarmStatsSnapshot | None:
        if not self.active:
            return None
        now = self.clock()
        place = where(self.settings)
        missing = monitoring_configured(self.settings)
        if missing is not None:
            return SwarmStatsSnapshot(taken_at=now, available=False, reason=missing, where=place)
        names = list(QUERIES)
        results = await asyncio.gather(
            *(
                asyncio.wait_for(self.client().query(QUERIES[n]), self.settings.request_timeout)
                for n in names
            ),
            return_exceptions=True,
        )
        answers: dict[str, Vector] = {}
        failed: list[BaseException] = []
        for n, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, PromError | TimeoutError):
                    raise result
                failed.append(result)
            else:
                answers[n] = result
        if failed:
            # no snapshot: the last good one stays, marked stale with this reason
            raise PrometheusUnavailable(self.name, explain(self.settings, failed[0]))
        nodes, tasks, health = shape(answers)
        return SwarmStatsSnapshot(
            taken_at=now, where=place, nodes=nodes, tasks=tasks, health=health
        )

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            client, self._client = self._client, None
            await client.aclose()
