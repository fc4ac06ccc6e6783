"""Console start-up: process start to first paint, and to the first full
screen with live data (see :mod:`bench.screen` for what counts), median of
10, in a real terminal (tmux, 160×48) polled every 20 ms with
``capture-pane``. Peer: ``docker stats`` of the same containers in the same
terminal, until every container shows a CPU figure.

Issue 15: once Prometheus holds history of the stack (asked first with the
console's own history source, as the console would), the full live screen
also needs the stats chart back-filled from it (:data:`bench.screen.BACKFILL`
in its caption); the results say whether history existed."""

from __future__ import annotations

import re
import time
from typing import Any

from bench.common import (
    Stack,
    Tmux,
    console_command,
    console_env,
    console_settings,
    load_average,
    log,
    median,
    rnd,
    row,
    safe_ratio,
    terminate,
)
from bench.screen import missing_live_data, stack_services, watch, with_history

_FIG = re.compile(r"\d+\.\d+%")


def _docker_stats_check(names: list[str]) -> Any:
    def check(screen: str, _services: list[str]) -> list[str]:
        lines = screen.splitlines()
        missing = []
        for name in names:
            if not any(name in line and _FIG.search(line) for line in lines):
                missing.append(name)
        return missing

    return check


def _docker_stats_painted(screen: str) -> bool:
    return "CONTAINER" in screen


def history_exists(stack: Stack) -> tuple[bool, str]:
    """Does Prometheus hold history of the stack's containers? One poll of
    the console's own history source (its default range), with the console's
    settings for the stack; (answer, why)."""
    import asyncio

    from console.core.sources.prometheus import HistorySource

    source = HistorySource(console_settings(stack))

    async def poll() -> Any:
        try:
            return await source.poll()
        finally:
            await source.aclose()

    try:
        snap = asyncio.run(poll())
    except Exception as exc:  # PrometheusUnavailable and kin: no history to show
        return False, f"Prometheus did not answer: {exc}"
    cpu = [s for s in snap.series if s.chart == "cpu" and s.points]
    if not snap.available or not cpu:
        return False, snap.reason or "no CPU series yet"
    return True, f"{len(cpu)} CPU series, up to {max(len(s.points) for s in cpu)} points"


def bench(stack: Stack, *, runs: int = 10, quick: bool = False) -> dict[str, Any]:
    load_before = load_average()
    # a stack just set up (a clean clone) has no history yet: Prometheus
    # scrapes every 15-30 s, so wait for it, bounded, rather than measure
    # a screen without the back-fill
    deadline = time.monotonic() + (60 if quick else 180)
    history, history_why = history_exists(stack)
    while not history and time.monotonic() < deadline:
        log(f"startup: no history in Prometheus yet ({history_why}); waiting for it")
        time.sleep(10)
        history, history_why = history_exists(stack)
    log(f"startup: history in Prometheus: {history} ({history_why})")
    live_check = with_history if history else missing_live_data
    services = stack_services(stack)
    names = [n for n in stack.project_containers() if "_benchidle_" not in n]
    tmux = Tmux("startup")
    paint: list[float] = []
    data: list[float] = []
    failures: list[dict[str, Any]] = []
    elements: list[dict[str, float]] = []
    runs = 3 if quick else runs
    try:
        for i in range(runs):
            t0 = time.monotonic()
            pid = tmux.start(console_command(), console_env(stack))
            times = watch(tmux, t0, services, timeout=30, data_check=live_check)
            terminate(pid)
            tmux.kill()
            log(
                f"startup run {i + 1}/{runs}: paint {rnd(times.paint_s)} s, data {rnd(times.data_s)} s"
            )
            if times.paint_s is not None:
                paint.append(times.paint_s)
            elements.append(times.first_seen or {})
            if times.data_s is not None:
                data.append(times.data_s)
            else:
                failures.append(
                    {
                        "run": i + 1,
                        "missing": times.missing,
                        "died": times.died,
                        "screen": times.last_screen[-3000:],
                    }
                )
            time.sleep(1.0)
        # peer: docker stats in the same terminal
        peer: list[float] = []
        for _ in range(3 if quick else 5):
            t0 = time.monotonic()
            pid = tmux.start(["docker", "stats", *names], console_env(stack))
            times = watch(
                tmux,
                t0,
                [],
                timeout=30,
                data_check=_docker_stats_check(names),
                paint_check=_docker_stats_painted,
            )
            terminate(pid)
            tmux.kill()
            if times.data_s is not None:
                peer.append(times.data_s)
            time.sleep(0.5)
    finally:
        tmux.kill()
    med_paint, med_data, med_peer = median(paint), median(data), median(peer)
    rows = [
        row(
            f"console start → first paint (median of {len(paint)})",
            rnd(med_paint),
            "s",
            target="< 0.5 s",  # issue 15 (issue 6: < 1 s)
            met=med_paint is not None and med_paint < 0.5,
            note=f"min {rnd(min(paint, default=None) if paint else None)}, max {rnd(max(paint) if paint else None)}",
        ),
        row(
            f"console start → full screen with live data (median of {len(data)})",
            rnd(med_data),
            "s",
            peer=rnd(med_peer),
            peer_name=f"docker stats: every container with a figure (median of {len(peer)})",
            ratio=safe_ratio(med_peer, med_data),
            ratio_label="× (peer / console)",
            target="< 1.5 s",  # issue 15
            met=med_data is not None and med_data < 1.5,
            note=(
                f"min {rnd(min(data) if data else None)}, max {rnd(max(data) if data else None)}; "
                f"{len(failures)} run(s) without live data in 30 s; live data = all {len(services)} services, "
                "a health 200, a CPU figure, no panel waiting"
                + (
                    ", the chart back-filled from Prometheus"
                    if history
                    else f"; NO HISTORY in Prometheus yet ({history_why}): back-fill not included"
                )
            ),
        ),
    ]
    parts = ("containers", "cpu figure", "health 200", "no panel waiting", "chart back-fill")
    element_medians = {n: rnd(median([e[n] for e in elements if n in e])) for n in parts}
    rows.append(
        row(
            "start → each part of the screen (median)",
            None,
            "s",
            note="; ".join(f"{n}: {v} s" for n, v in element_medians.items()),
        )
    )
    raw = {
        "history": history,
        "history_why": history_why,
        "element_medians_s": element_medians,
        "elements_s": elements,
        "runs_paint_s": [rnd(x) for x in paint],
        "runs_data_s": [rnd(x) for x in data],
        "peer_docker_stats_s": [rnd(x) for x in peer],
        "services": services,
        "failures": failures,
        "command": " ".join(console_command()),
        "terminal": "tmux 160x48, capture-pane every 20 ms",
    }
    return {
        "title": "Console start-up",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
