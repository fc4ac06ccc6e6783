"""The stack exporter: what Prometheus cannot scrape elsewhere.

- Per-container CPU and memory of this stack's containers, under cAdvisor's
  metric names (``container_cpu_usage_seconds_total``,
  ``container_memory_working_set_bytes``, ``container_spec_memory_limit_bytes``)
  so the usual queries work. cAdvisor is not packaged in Debian; the engine
  already reads the cgroups (v1 or v2, any driver) for ``docker stats``, so
  this asks it: one ``stats?stream=false&one-shot=true`` per container per
  scrape (0.2-1 s each here, measured; asked in parallel), and exports the engine's cumulative CPU
  counter as is: rates are Prometheus's job, no CPU-percent maths here. Memory
  is ``docker stats``'s figure (usage minus inactive file pages, as the
  docker CLI computes it).
- ``stackdeck_serving_colour{colour}``: 1 for the colour nginx sends traffic
  to (nginx's upstream file, the deploy engine's switch), 0 for the other, so
  an alert tells "the serving colour is down" from "the idle colour is
  stopped" (kept for rollback: not an incident).
- ``stackdeck_last_backup_timestamp_seconds``: the newest completed backup
  (``<id>.json`` beside its ``.dump``), 0 when there is none.

On Docker Swarm (``NODE_NAME`` set, from the service's ``{{.Node.Hostname}}``
template) it runs as a global service, one per node, reading that node's
engine: the containers of the swarm stack (``com.docker.stack.namespace``),
the service's short name as ``service``, every series labelled with ``node``
and the container's ``task``, plus ``stackdeck_container_info`` (the task's
addresses and health check status) so a task's scrape target can be told by
its address. The serving colour and the backups do not exist there; their
series are left out (so no rule about them fires on Swarm).

Read-only: it only sends GET requests to the engine.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("stack_exporter")

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
STACK_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
SWARM_TASK_LABEL = "com.docker.swarm.task.id"
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_COLOUR = re.compile(r"backend_(blue|green)(?:_surge)?\b")
"""The colour of nginx's active.conf (a rolling deploy's ``backend_blue_surge``
serves for blue)."""


def memory_working_set(memory_stats: Mapping[str, Any]) -> int:
    """``docker stats``'s memory: usage minus inactive file pages
    (cgroup v1 ``total_inactive_file``, v2 ``inactive_file``)."""
    usage = int(memory_stats.get("usage") or 0)
    stats = memory_stats.get("stats") or {}
    key = "total_inactive_file" if "total_inactive_file" in stats else "inactive_file"
    inactive = int(stats.get(key) or 0)
    return usage - inactive if 0 <= inactive < usage else usage


def serving_colour(upstream_file: Path) -> str | None:
    """``set $active_backend backend_green;`` (or ``backend_green_surge;``) -> ``green``."""
    try:
        m = _COLOUR.search(upstream_file.read_text(encoding="utf-8"))
    except OSError:
        return None
    return m.group(1) if m else None


def last_backup_time(folder: Path) -> float:
    """mtime of the newest ``<id>.json`` that has its ``<id>.dump``; 0 if none."""
    newest = 0.0
    try:
        for meta in folder.glob("*.json"):
            if meta.with_suffix(".dump").exists():
                newest = max(newest, meta.stat().st_mtime)
    except OSError:
        return 0.0
    return newest


def health_status(status: str) -> str:
    """``Up 3 minutes (healthy)`` -> ``healthy``; ``starting``, ``unhealthy``,
    or ``none`` (no health check)."""
    m = _HEALTH.search(status or "")
    if not m:
        return "none"
    return "starting" if m.group(1) == "health: starting" else m.group(1)


def container_addresses(container: Mapping[str, Any]) -> str:
    """The container's IPv4 addresses on its networks, sorted, comma-separated."""
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    found = {str(n.get("IPAddress")) for n in networks.values() if n and n.get("IPAddress")}
    return ",".join(sorted(found))


def swarm_identity(labels: Mapping[str, str], stack: str) -> tuple[str, str]:
    """(service, task id) of a swarm task's container: ``investment_backend``
    -> ``backend`` within stack ``investment``."""
    service = labels.get(SWARM_SERVICE_LABEL, "")
    service = service.removeprefix(f"{stack}_")
    return service, labels.get(SWARM_TASK_LABEL, "")


class StackCollector(Collector):
    def __init__(
        self,
        docker: httpx.Client,
        project: str,
        upstream_file: Path,
        backups: Path,
        node: str | None = None,
    ) -> None:
        self.docker = docker
        self.project = project
        self.upstream_file = upstream_file
        self.backups = backups
        self.node = node
        """The swarm node this exporter runs on (None: a compose project)."""
        self._limit_cache: dict[str, tuple[int, int]] = {}

    @property
    def labels(self) -> list[str]:
        return ["name", "service", "node", "task"] if self.node else ["name", "service"]

    def _containers(self) -> list[dict[str, Any]]:
        label = f"{STACK_LABEL}={self.project}" if self.node else f"{PROJECT_LABEL}={self.project}"
        r = self.docker.get(
            "/containers/json",
            params={"filters": f'{{"label":["{label}"]}}'},
        )
        r.raise_for_status()
        out: list[dict[str, Any]] = r.json()
        return out

    def _limits(self, cid: str) -> tuple[int, int]:
        """(memory limit bytes, NanoCpus) of a container; fixed for its id."""
        if cid not in self._limit_cache:
            r = self.docker.get(f"/containers/{cid}/json")
            r.raise_for_status()
            host = r.json().get("HostConfig") or {}
            self._limit_cache[cid] = (int(host.get("Memory") or 0), int(host.get("NanoCpus") or 0))
        return self._limit_cache[cid]

    def _reading(self, c: dict[str, Any]) -> tuple[list[str], float, int, int, float] | None:
        cid = c["Id"]
        try:
            s = self.docker.get(
                f"/containers/{cid}/stats", params={"stream": "false", "one-shot": "true"}
            )
            if s.status_code != 200:
                return None
            mem_bytes, nano = self._limits(cid)
        except httpx.HTTPStatusError:
            return None
        stats = s.json()
        cpu_stats = stats.get("cpu_stats") or {}
        total = (cpu_stats.get("cpu_usage") or {}).get("total_usage")
        if total is None:
            return None
        cores = nano / 1e9 if nano else float(cpu_stats.get("online_cpus") or os.cpu_count() or 1)
        return (
            self._key(c),
            int(total) / 1e9,
            memory_working_set(stats.get("memory_stats") or {}),
            mem_bytes,
            cores,
        )

    def _key(self, c: Mapping[str, Any]) -> list[str]:
        """The label values of a container: name, service (and node, task)."""
        name = (c.get("Names") or ["/?"])[0].lstrip("/")
        labels = c.get("Labels") or {}
        if not self.node:
            return [name, labels.get(SERVICE_LABEL, "")]
        service, task = swarm_identity(labels, self.project)
        return [name, service, self.node, task]

    def collect(self) -> Iterator[Any]:
        labels = self.labels
        node_labels = ["node"] if self.node else []
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds_total",
            "CPU time used by the container (engine cgroup counter).",
            labels=labels,
        )
        mem = GaugeMetricFamily(
            "container_memory_working_set_bytes",
            "Memory in use without inactive file pages (docker stats).",
            labels=labels,
        )
        mem_limit = GaugeMetricFamily(
            "container_spec_memory_limit_bytes",
            "Memory limit of the container (0: none).",
            labels=labels,
        )
        cpu_limit = GaugeMetricFamily(
            "stackdeck_container_cpu_limit_cores",
            "CPU limit of the container in cores (host cores when none).",
            labels=labels,
        )
        up = GaugeMetricFamily(
            "stackdeck_engine_up",
            "1 when the Docker engine answered this scrape.",
            labels=node_labels,
        )
        info = GaugeMetricFamily(
            "stackdeck_container_info",
            "1 per running container of the swarm stack: its addresses and health.",
            labels=[*labels, "addresses", "health"],
        )
        node_key = [self.node] if self.node else []
        try:
            containers = self._containers()
            ids = {c["Id"] for c in containers}
            self._limit_cache = {k: v for k, v in self._limit_cache.items() if k in ids}
            # The engine takes ~1 s per one-shot stats here (measured): ask
            # for every container at once, not one after the other.
            with ThreadPoolExecutor(max_workers=max(1, min(16, len(containers)))) as pool:
                readings = list(pool.map(self._reading, containers))
            for reading in readings:
                if reading is None:
                    continue  # stopped between the listing and now
                key, total, working_set, limit_bytes, cores = reading
                cpu.add_metric(key, total)
                mem.add_metric(key, working_set)
                mem_limit.add_metric(key, limit_bytes)
                cpu_limit.add_metric(key, cores)
            if self.node:
                for c in containers:
                    info.add_metric(
                        [*self._key(c), container_addresses(c), health_status(c.get("Status", ""))],
                        1,
                    )
            up.add_metric(node_key, 1)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("engine: %s", exc)
            up.add_metric(node_key, 0)
        yield from (cpu, mem, mem_limit, cpu_limit, up)
        if self.node:
            yield info
            return  # no colours and no backups on Swarm

        colour = serving_colour(self.upstream_file)
        serving = GaugeMetricFamily(
            "stackdeck_serving_colour",
            "1 for the colour nginx serves, 0 for the other.",
            labels=["colour"],
        )
        if colour:
            for col in ("blue", "green"):
                serving.add_metric([col], 1 if col == colour else 0)
        yield serving
        yield GaugeMetricFamily(
            "stackdeck_last_backup_timestamp_seconds",
            "Unix time of the newest completed backup (0: none).",
            value=last_backup_time(self.backups),
        )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    project = os.environ.get("STACK_NAME", "")
    if not project:
        print("stack exporter: STACK_NAME is not set", file=sys.stderr)
        return 2
    socket = os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
    docker = httpx.Client(
        transport=httpx.HTTPTransport(uds=socket), base_url="http://docker", timeout=10
    )
    REGISTRY.register(
        StackCollector(
            docker,
            project,
            Path(os.environ.get("UPSTREAM_FILE", "/etc/nginx/upstream/active.conf")),
            Path(os.environ.get("BACKUPS_DIR", "/backups")),
            node=os.environ.get("NODE_NAME") or None,
        )
    )
    port = int(os.environ.get("EXPORTER_PORT", "9180"))
    start_http_server(port)
    log.info("serving metrics on :%d for project %s", port, project)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
