"""Stats freshness: how long until fresh stats of every container of the
project are on hand, with the console's own stats source
(``console.core.sources.docker.stats.StatsSource``: one streaming connection per
container) against ``docker stats --no-stream`` and against the naive SDK
poll (``container.stats(stream=False)`` one container after the other), at
each container count.

Figures for the console:

* cold: from creating the source (docker client included) until a snapshot
  holds every container with a CPU figure (a stream's first message has no
  CPU yet, so this needs two daemon samples);
* full refresh: the source's own ``refresh_seconds``: from the end of one
  refresh until every container delivered a new complete sample (median over
  the steady window); this is the time the console needs to have fresh
  numbers for all containers, comparable to one ``docker stats --no-stream``;
* poll: how long assembling a snapshot takes on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import Stack, console_settings, log, median, rnd, row, run, safe_ratio


async def _console(stack: Stack, expected: int, steady_seconds: float) -> dict[str, Any]:
    from console.core.sources.docker.handle import DockerHandle
    from console.core.sources.docker.stats import StatsSource

    settings = console_settings(stack)
    handle = DockerHandle(settings)
    source = StatsSource(settings, handle)
    t0 = time.monotonic()
    cold = None
    polls: list[float] = []
    refreshes: list[float] = []
    seen = 0
    try:
        deadline = t0 + 60
        while time.monotonic() < deadline:
            p0 = time.perf_counter()
            snap = await source.poll()
            polls.append(time.perf_counter() - p0)
            seen = len(snap.containers)
            if seen >= expected and all(c.cpu_history for c in snap.containers):
                cold = time.monotonic() - t0
                break
            await asyncio.sleep(0.02)
        steady_polls: list[float] = []
        end = time.monotonic() + steady_seconds
        while time.monotonic() < end:
            await asyncio.sleep(settings.refresh.stats)
            p0 = time.perf_counter()
            snap = await source.poll()
            steady_polls.append(time.perf_counter() - p0)
            seen = len(snap.containers)
            if snap.refresh_seconds is not None:
                refreshes.append(snap.refresh_seconds)
        return {
            "cold_s": rnd(cold),
            "source_first_full_refresh_s": rnd(source.first_full_refresh_s),
            "refresh_median_s": rnd(median(refreshes)),
            "refresh_max_s": rnd(max(refreshes, default=None) if refreshes else None),
            "refresh_samples": len(refreshes),
            "poll_median_ms": rnd((median(steady_polls) or 0) * 1000, 2),
            "poll_max_ms": rnd(max(steady_polls, default=0) * 1000, 2),
            "first_poll_ms": rnd(polls[0] * 1000, 1) if polls else None,
            "containers_seen": seen,
            "streams": source.stream_count,
            "refresh_interval_setting_s": settings.refresh.stats,
        }
    finally:
        await source.aclose()
        handle.close()


def _docker_no_stream(ids: list[str], runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        t = time.monotonic()
        run(
            ["docker", "stats", "--no-stream", "--format", "{{.ID}} {{.CPUPerc}}", *ids],
            timeout=300,
        )
        times.append(time.monotonic() - t)
    return {"median_s": rnd(median(times)), "runs_s": [rnd(t) for t in times]}


def _sdk_sequential(ids: list[str]) -> dict[str, Any]:
    import docker

    client = docker.from_env(timeout=60)
    try:
        t = time.monotonic()
        for cid in ids:
            client.api.stats(cid, stream=False)
        total = time.monotonic() - t
    finally:
        client.close()
    return {"total_s": rnd(total), "per_container_s": rnd(total / len(ids)) if ids else None}


def bench(stack: Stack, scale: Any, levels: list[int], *, quick: bool = False) -> dict[str, Any]:
    from bench.common import load_average

    load_before = load_average()
    rows = []
    raw: dict[str, Any] = {}
    steady = 6.0 if quick else 12.0
    for level in levels:
        n = scale(level)
        ids = stack.project_ids()
        time.sleep(2)  # let the new containers settle
        log(f"stats: {n} containers: console source")
        console = asyncio.run(_console(stack, n, steady))
        log(f"stats: {n} containers: docker stats --no-stream")
        peer = _docker_no_stream(ids, 2 if quick else 3)
        seq = None
        if not (quick and n > 20):
            log(f"stats: {n} containers: docker-py stats(stream=False), one after the other")
            seq = _sdk_sequential(ids)
        raw[str(n)] = {
            "containers": n,
            "console": console,
            "docker_stats_no_stream": peer,
            "sdk_sequential": seq,
        }
        refresh = console["refresh_median_s"]
        ratio = safe_ratio(peer["median_s"], refresh)
        ratio_seq = safe_ratio(seq["total_s"] if seq else None, refresh)
        rows.append(
            row(
                f"full stats refresh, {n} containers",
                refresh,
                "s",
                peer=peer["median_s"],
                peer_name="docker stats --no-stream",
                ratio=ratio,
                ratio_label="× faster",
                target="≥ 10× faster at 20, flat" if level == 20 else "flat as containers grow",
                met=(ratio is not None and ratio >= 10) if level == 20 else None,
                note=(
                    f"cold start to all {console['containers_seen']} containers with CPU: {console['cold_s']} s; "
                    f"snapshot on demand (poll) {console['poll_median_ms']} ms, max {console['poll_max_ms']} ms when it re-lists on the docker pool; "
                    + (
                        f"sequential stats(stream=False): {seq['total_s']} s ({rnd(ratio_seq, 1)}× the console)"
                        if seq
                        else "sequential SDK poll skipped (quick)"
                    )
                ),
            )
        )
    return {
        "title": "Stats freshness",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
