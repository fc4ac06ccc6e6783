"""Live docker stats: one streaming connection per running container.

``docker stats --no-stream`` (and the SDK's ``stats(stream=False)``) makes the
daemon wait for two samples per container: 1-2 s per container, measured here.
Like lazydocker, we keep one ``/containers/{id}/stats?stream=1`` connection
open per running container instead, each read by a thread of its own; the
daemon pushes a sample about every second, and ``poll()`` only assembles the
latest numbers into a :class:`~console.core.models.StatsSnapshot`. Streams are
started and stopped as containers come and go (engine events wake the source,
and the running set is re-listed every few seconds anyway).

The maths are pure functions below, unit-tested with recorded cgroup v1 and
v2 samples.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.models import ContainerStats, StatsSnapshot
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.docker.handle import DockerHandle, describe_docker_error
from console.core.sources.docker.inspect import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    cpu_limit_of,
    parse_docker_time,
)
from console.core.sources.docker.stream import (
    ResponseStream,
    Stream,
    StreamThread,
    request_stream,
)

__all__ = [
    "Sample",
    "StatsSource",
    "blkio_totals",
    "cpu_percent",
    "memory_limit",
    "memory_usage",
    "net_totals",
    "per_second",
    "sample_from_raw",
]

# --- pure maths ----------------------------------------------------------------


def _online_cpus(cpu_stats: Mapping[str, Any]) -> int:
    online = cpu_stats.get("online_cpus")
    if online:
        return int(online)
    percpu = (cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or []
    return max(1, len(percpu))


def cpu_percent(cpu_stats: Mapping[str, Any], precpu_stats: Mapping[str, Any]) -> float | None:
    """CPU % as docker computes it: ``cpu_delta / system_delta * online_cpus * 100``.

    100 % is one core busy. None when it cannot be computed: no previous
    sample yet (the first sample of a stream has an empty ``precpu_stats``),
    or counters that did not move forward.
    """
    cur_total = (cpu_stats.get("cpu_usage") or {}).get("total_usage")
    pre_total = (precpu_stats.get("cpu_usage") or {}).get("total_usage")
    cur_sys = cpu_stats.get("system_cpu_usage")
    pre_sys = precpu_stats.get("system_cpu_usage")
    if cur_total is None or pre_total is None or not cur_sys or not pre_sys:
        return None
    system_delta = float(cur_sys) - float(pre_sys)
    cpu_delta = float(cur_total) - float(pre_total)
    if system_delta <= 0:
        return None
    if cpu_delta < 0:  # counter reset (container restarted)
        return None
    return cpu_delta / system_delta * _online_cpus(cpu_stats) * 100.0


def memory_usage(memory_stats: Mapping[str, Any]) -> int:
    """Memory in use without the page cache, as ``docker stats`` computes it
    (the docker CLI's ``calculateMemUsageUnixNoCache``), so the console and the
    runbook's ``docker stats`` agree on every host.

    cgroup v1: ``usage - total_inactive_file``; cgroup v2: ``usage -
    inactive_file``. A figure not below the usage (racy counters) leaves the
    usage as is.
    """
    usage = int(memory_stats.get("usage") or 0)
    stats = memory_stats.get("stats") or {}
    if "total_inactive_file" in stats:  # cgroup v1
        inactive = int(stats.get("total_inactive_file") or 0)
    else:  # cgroup v2
        inactive = int(stats.get("inactive_file") or 0)
    return usage - inactive if 0 <= inactive < usage else usage


def memory_limit(memory_stats: Mapping[str, Any], host_mem_total: int = 0) -> int:
    """The container's memory limit; the host's memory when it has none
    (docker reports a huge number for "unlimited" on cgroup v1)."""
    limit = int(memory_stats.get("limit") or 0)
    if host_mem_total and (limit <= 0 or limit > host_mem_total):
        return host_mem_total
    return limit


def net_totals(sample: Mapping[str, Any]) -> tuple[int, int]:
    """Received and sent bytes summed over the container's interfaces."""
    rx = tx = 0
    for iface in (sample.get("networks") or {}).values():
        rx += int(iface.get("rx_bytes") or 0)
        tx += int(iface.get("tx_bytes") or 0)
    return rx, tx


def blkio_totals(sample: Mapping[str, Any]) -> tuple[int, int]:
    """Bytes read and written by the block devices (v1: ``Read``/``Write``,
    v2: ``read``/``write``; ``Total`` and other ops are not added)."""
    read = write = 0
    entries = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for entry in entries:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value") or 0)
        elif op == "write":
            write += int(entry.get("value") or 0)
    return read, write


def per_second(previous: float, current: float, seconds: float) -> float:
    """Rate of a byte counter; 0 when time did not pass or the counter reset."""
    if seconds <= 0 or current < previous:
        return 0.0
    return (current - previous) / seconds


@dataclass(frozen=True)
class Sample:
    """The numbers of one raw stats message that matter to us."""

    read: datetime | None
    cpu_percent: float | None
    mem_usage: int
    mem_limit: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int
    online_cpus: int


def sample_from_raw(
    raw: Mapping[str, Any],
    previous_cpu_stats: Mapping[str, Any] | None = None,
    host_mem_total: int = 0,
) -> Sample:
    """Reduce one raw message; CPU from its own ``precpu_stats``, or from the
    previous message's ``cpu_stats`` when the daemon left precpu empty."""
    cpu_stats = raw.get("cpu_stats") or {}
    precpu = raw.get("precpu_stats") or {}
    cpu = cpu_percent(cpu_stats, precpu)
    if cpu is None and previous_cpu_stats:
        cpu = cpu_percent(cpu_stats, previous_cpu_stats)
    memory = raw.get("memory_stats") or {}
    rx, tx = net_totals(raw)
    br, bw = blkio_totals(raw)
    return Sample(
        read=parse_docker_time(raw.get("read")),
        cpu_percent=cpu,
        mem_usage=memory_usage(memory),
        mem_limit=memory_limit(memory, host_mem_total),
        net_rx=rx,
        net_tx=tx,
        blk_read=br,
        blk_write=bw,
        pids=int((raw.get("pids_stats") or {}).get("current") or 0),
        online_cpus=_online_cpus(cpu_stats),
    )


def derive_stats(
    name: str,
    service: str,
    current: Sample,
    previous: Sample | None,
    *,
    cpu_history: Sequence[float] = (),
    mem_history: Sequence[float] = (),
    cpu_limit: float | None = None,
    container_id: str = "",
) -> ContainerStats:
    """A :class:`ContainerStats` from the latest sample and the one before it."""
    rx_rate = tx_rate = br_rate = bw_rate = 0.0
    if previous is not None and current.read and previous.read:
        dt = (current.read - previous.read).total_seconds()
        rx_rate = per_second(previous.net_rx, current.net_rx, dt)
        tx_rate = per_second(previous.net_tx, current.net_tx, dt)
        br_rate = per_second(previous.blk_read, current.blk_read, dt)
        bw_rate = per_second(previous.blk_write, current.blk_write, dt)
    limit = current.mem_limit
    return ContainerStats(
        id=container_id,
        name=name,
        service=service,
        cpu_percent=round(current.cpu_percent or 0.0, 2),
        mem_usage=current.mem_usage,
        mem_limit=limit,
        mem_percent=round(current.mem_usage / limit * 100.0, 2) if limit > 0 else 0.0,
        net_rx_rate=rx_rate,
        net_tx_rate=tx_rate,
        blk_read_rate=br_rate,
        blk_write_rate=bw_rate,
        pids=current.pids,
        cpu_history=list(cpu_history),
        mem_history=list(mem_history),
        cpu_limit=cpu_limit,
    )


# --- one stream ----------------------------------------------------------------------


def open_stats(api: Any, container_id: str) -> Stream[Mapping[str, Any]]:
    """``/containers/{id}/stats?stream=1``, decoded: a sample about every second.

    Not ``APIClient.stats``: it returns a bare generator over a response it
    keeps to itself, so another thread could not close it (see
    :func:`~.stream.request_stream`).
    """
    from docker.utils.json_stream import json_stream

    response = request_stream(api, "/containers/{0}/stats", container_id, params={"stream": True})
    return ResponseStream(json_stream(response.iter_content(chunk_size=None)), response)


@dataclass
class _Stream:
    """The stats stream of one container and what it collected."""

    id: str
    name: str
    service: str
    cpu_limit: float | None
    history: int
    reader: StreamThread[Mapping[str, Any]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: ContainerStats | None = None
    last_sample: Sample | None = None
    last_cpu_stats: Mapping[str, Any] | None = None
    sample_times: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    """Monotonic times of complete samples (CPU known), for refresh timing."""
    cpu_hist: deque[float] = field(init=False)
    mem_hist: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self.cpu_hist = deque(maxlen=self.history)
        self.mem_hist = deque(maxlen=self.history)

    def on_raw(self, raw: Mapping[str, Any], host_mem_total: int) -> None:
        sample = sample_from_raw(raw, self.last_cpu_stats, host_mem_total)
        now = time.monotonic()
        with self.lock:
            previous = self.last_sample
            self.last_cpu_stats = raw.get("cpu_stats") or None
            self.last_sample = sample
            if sample.cpu_percent is None:
                # First message of a stream: memory is known, CPU is not yet.
                if self.latest is None:
                    self.latest = derive_stats(
                        self.name,
                        self.service,
                        sample,
                        None,
                        cpu_limit=self.cpu_limit,
                        container_id=self.id[:12],
                    )
                return
            self.cpu_hist.append(round(sample.cpu_percent, 2))
            mem_pct = sample.mem_usage / sample.mem_limit * 100.0 if sample.mem_limit else 0.0
            self.mem_hist.append(round(mem_pct, 2))
            self.latest = derive_stats(
                self.name,
                self.service,
                sample,
                previous,
                cpu_history=self.cpu_hist,
                mem_history=self.mem_hist,
                cpu_limit=self.cpu_limit,
                container_id=self.id[:12],
            )
            self.sample_times.append(now)

    def first_complete_after(self, t: float) -> float | None:
        with self.lock:
            for ts in self.sample_times:
                if ts >= t:
                    return ts
        return None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    @property
    def alive(self) -> bool:
        return self.reader is not None and self.reader.alive


class StatsSource(Source):
    """Streams stats of every running container of the project."""

    name = "stats"
    kind = "stats"

    relist_seconds = 5.0
    """Re-list the running containers at least this often (events wake us sooner)."""

    def __init__(self, settings: Settings, handle: DockerHandle, *, clock: Clock = utcnow) -> None:
        super().__init__(settings, clock=clock)
        self.handle = handle
        self._streams: dict[str, _Stream] = {}
        self._last_list = 0.0
        self._relist = True
        self._host_cpus = 0
        self._host_mem = 0
        self._cycle_start: float | None = None
        self._last_refresh: float | None = None
        self.first_full_refresh_s: float | None = None
        """Seconds from the first poll until every container had a complete
        sample (cold start), for the benchmark."""
        self._started_at: float | None = None
        self._closed = False

    @property
    def interval(self) -> float:
        return self.settings.refresh.stats

    def request_relist(self) -> None:
        """Re-list containers at the next poll (called when engine events arrive)."""
        self._relist = True

    # blocking part, on the docker pool
    def _reconcile(self) -> None:
        api = self.handle.api
        if not self._host_mem:
            info = self.handle.info()
            self._host_cpus = int(info.get("NCPU") or 0)
            self._host_mem = int(info.get("MemTotal") or 0)
        running = api.containers(
            filters={"label": f"{PROJECT_LABEL}={self.settings.project}", "status": "running"}
        )
        wanted = {c["Id"]: c for c in running}
        for cid in list(self._streams):
            stream = self._streams[cid]
            if cid not in wanted or not stream.alive:
                stream.close()
                del self._streams[cid]
        for cid, item in wanted.items():
            if cid in self._streams or self._closed:
                continue
            labels = item.get("Labels") or {}
            name = (item.get("Names") or [cid[:12]])[0].lstrip("/")
            try:
                inspect = api.inspect_container(cid)
                limit = cpu_limit_of(inspect)
            except Exception:
                limit = None
            stream = _Stream(
                id=cid,
                name=name,
                service=labels.get(SERVICE_LABEL) or name,
                cpu_limit=limit,
                history=self.settings.stats_history,
            )
            stream.reader = StreamThread(
                functools.partial(open_stats, api, cid),
                functools.partial(self._on_sample, stream),
                name=f"stackdeck-stats-{name}",
            )
            self._streams[cid] = stream
            stream.reader.start()
        self._last_list = time.monotonic()

    def _on_sample(self, stream: _Stream, raw: Mapping[str, Any]) -> None:
        stream.on_raw(raw, self._host_mem)

    def _refresh_timing(self, now: float) -> None:
        """Close the current refresh cycle once every stream has delivered a
        complete sample since it began."""
        streams = list(self._streams.values())
        if not streams or self._cycle_start is None:
            return
        times = [s.first_complete_after(self._cycle_start) for s in streams]
        if any(t is None for t in times):
            return
        done = max(t for t in times if t is not None)
        self._last_refresh = done - self._cycle_start
        if self.first_full_refresh_s is None and self._started_at is not None:
            self.first_full_refresh_s = done - self._started_at
        self._cycle_start = done

    async def poll(self) -> StatsSnapshot:
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = now
            self._cycle_start = now
        # A stream that ended (container gone, daemon restarted or away) makes
        # us re-list at once: a dead daemon must show as a failing source, not
        # as frozen numbers.
        dead = any(not s.alive for s in self._streams.values())
        if (
            self._relist
            or dead
            or now - self._last_list >= self.relist_seconds
            or not self._streams
        ):
            self._relist = False
            try:
                await self.handle.call(
                    self._reconcile, deadline=self.poll_timeout, what="list running containers"
                )
            except Exception as exc:
                raise SourceError("stats", describe_docker_error(exc)) from None
        self._refresh_timing(time.monotonic())
        containers = []
        for stream in self._streams.values():
            with stream.lock:
                latest = stream.latest
            if latest is not None:
                containers.append(latest)
        containers.sort(key=lambda c: (c.service, c.name))
        return StatsSnapshot(
            taken_at=self.clock(),
            containers=containers,
            total_cpu_percent=round(sum(c.cpu_percent for c in containers), 2),
            total_mem_usage=sum(c.mem_usage for c in containers),
            host_mem_total=self._host_mem,
            host_cpus=self._host_cpus,
            refresh_seconds=round(self._last_refresh, 3)
            if self._last_refresh is not None
            else None,
        )

    @property
    def stream_count(self) -> int:
        """Streams currently open (one per running container)."""
        return sum(1 for s in self._streams.values() if s.alive)

    async def aclose(self) -> None:
        """Close every stream (their sockets are shut down, so their threads
        return at once); never waits for the threads, which are daemons."""
        self._closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream.close()
