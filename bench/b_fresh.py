"""Stats freshness on screen (issue 15): the age of the oldest stats sample
the console shows, at 7 (the stack alone), 20 and 50 containers, and the CPU
the stats path costs per container per second.

The real app (same ``create_app``, ``Monitor``, settings) runs in tmux at
160×48 through :mod:`bench.tools.probe_app` ``--freshness``: every 100 ms,
after a warm-up, it takes the snapshot the stats panel last rendered and
ages each container's sample from when its stream thread received it from
the daemon (the daemon's own ``read`` stamp is kept beside); the figure is
the largest age over the window (target: it *stays* under 1.5 s), with the
p99 and median. The stats path's CPU is that of its threads (one stream
thread per container; the event stream's, a fixed cost, is given apart) from
``/proc/self/task/<tid>/schedstat`` over the same window, divided by the
number of containers and by the window: milliseconds of CPU per container
per second. It is flat in N when the figure at the largest level is within
1.5× of the smallest level's (:func:`flat`). Not counted: the monitor's
``poll()`` on the event loop, which assembles the snapshot (its cost is in
the idle section's main-thread figure).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    Stack,
    load_average,
    log,
    median,
    percentile,
    rnd,
    row,
    run_probe,
)

AGE_TARGET_S = 1.5
FLAT_WITHIN = 1.5
"""Per-container CPU at the largest level at most this many times the smallest's."""


def per_container_ms(stream_cpu_s: float, containers: int, seconds: float) -> float | None:
    """Milliseconds of CPU of the stream threads per container per second."""
    if containers <= 0 or seconds <= 0:
        return None
    return 1000.0 * stream_cpu_s / containers / seconds


def flat(per_level: dict[int, float | None]) -> tuple[bool | None, float | None]:
    """(flat?, ratio largest level ÷ smallest level) of the per-container CPU."""
    known = {n: v for n, v in per_level.items() if v is not None}
    if len(known) < 2:
        return None, None
    lo, hi = known[min(known)], known[max(known)]
    if lo <= 0:
        return None, None
    ratio = hi / lo
    return ratio <= FLAT_WITHIN, ratio


def _probe(stack: Stack, duration: float, warm: float) -> dict[str, Any]:
    data, screen = run_probe(
        stack, "fresh", ["--measure-after", str(warm), "--freshness"], duration, 40
    )
    fresh = data.get("freshness")
    if not fresh or not fresh.get("ages"):
        return {"error": "the probe saw no stats on screen", "screen": screen[-2000:]}
    return dict(fresh)


def bench(
    stack: Stack, scale: Callable[[int], int], levels: list[int], *, quick: bool = False
) -> dict[str, Any]:
    load_before = load_average()
    warm, measure = (8.0, 10.0) if quick else (10.0, 20.0)
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {"warm_s": warm, "measure_s": measure}
    per_level: dict[int, float | None] = {}
    for level in levels:
        n = scale(level)
        time.sleep(2)
        log(f"fresh: {n} containers ({warm:g} s warm-up, {measure:g} s measured)")
        load0 = load_average()
        fresh = _probe(stack, warm + measure, warm)
        fresh["load"] = [load0, load_average()]
        raw[str(n)] = fresh
        if "error" in fresh:
            rows.append(
                row(
                    f"oldest stats sample on screen, {n} containers",
                    None,
                    "s",
                    target=f"< {AGE_TARGET_S:g} s",
                    met=False,
                    note=fresh["error"],
                )
            )
            per_level[n] = None
            continue
        ages = [a[1] for a in fresh["ages"]]
        daemon = [a[2] for a in fresh["ages"] if a[2] is not None]
        shown = max(a[3] for a in fresh["ages"])
        worst = max(ages)
        rows.append(
            row(
                f"oldest stats sample on screen, {n} containers",
                rnd(worst, 2),
                "s",
                target=f"< {AGE_TARGET_S:g} s",
                met=worst < AGE_TARGET_S,
                note=f"max over {len(ages)} reads every 100 ms in {fresh['window_s']:g} s; "
                f"p99 {rnd(percentile(ages, 99), 2)} s, median {rnd(median(ages), 2)} s; "
                f"by the daemon's stamp max {rnd(max(daemon, default=0), 2)} s; "
                f"{shown} containers shown; load {fresh['load'][0][0]}-{fresh['load'][1][0]}",
            )
        )
        ms = per_container_ms(
            fresh["thread_cpu_s"].get("stackdeck-stats-", 0.0), n, fresh["window_s"]
        )
        per_level[n] = ms
        rows.append(
            row(
                f"stats path CPU per container, {n} containers",
                rnd(ms, 3),
                "ms CPU / container / s",
                note=f"stream threads {fresh['threads'].get('stackdeck-stats- threads')}: "
                f"{fresh['thread_cpu_s'].get('stackdeck-stats-')} s of CPU in {fresh['window_s']:g} s; "
                f"event stream {fresh['thread_cpu_s'].get('stackdeck-events')} s (not divided by N)",
            )
        )
    is_flat, ratio = flat(per_level)
    rows.append(
        row(
            "stats path CPU per container: flat in N",
            rnd(ratio, 2),
            f"× (largest ÷ smallest level, {max(per_level, default=0)} ÷ {min(per_level, default=0)})",
            target=f"flat (≤ {FLAT_WITHIN:g}×)",
            met=is_flat,
            note=", ".join(f"{n}: {rnd(v, 3)} ms" for n, v in sorted(per_level.items())),
        )
    )
    raw["per_container_ms"] = {str(k): v for k, v in per_level.items()}
    return {
        "title": "Stats freshness on screen",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
