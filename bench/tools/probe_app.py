"""The real console app, in a real terminal, with two probes added from outside:

* an event-loop lag probe: an asyncio task on the app's own loop that asks
  to be woken every 10 ms and records how late it was woken (a stall of the
  loop delays every key press and every redraw by as much);
* a wrapper around the monitor's sink (through ``create_app``'s public
  ``monitor_factory``) that notes when each kind of snapshot first arrives,
  how many arrive, and every source state change.

The console itself is unchanged: same ``create_app``, same ``Monitor``, same
sources, same settings (environment ``STACKDECK_*`` as usual, so a benchmark
can point one source at a sick socket). After ``--duration`` seconds the app
exits and the figures go to ``--out`` as JSON.

For the profile (``--count``), the probe also counts, in this process only,
Textual's ``Widget.refresh`` calls by widget class (with and without a
layout) and the screen's full layout passes. ``--what-if NAME`` applies an
experimental change to Textual's behaviour in this process only, to measure
what a proposed optimisation would save before anyone changes the console:

* ``static-no-layout``: ``Static.update`` without a layout pass (for texts
  whose size does not change: clock, totals, captions).
* ``no-chart``: the stats chart widget renders nothing (the cost of plotext).
* ``no-monitor``: no sources at all (the cost of the app shell: clock,
  timers, the first layout).
* ``no-clock``: the app's 1 Hz clock tick does nothing (ages and the header
  clock freeze; the cost of redrawing every panel each second).
* ``no-repaint-reactives``: the panels', header's and alerts line's bound
  reactives (``now``, ``snapshot``, ``sources``, ...) stop repainting the
  whole container on every change (``reactive(..., repaint=False)``); their
  watchers still update the child widgets that show the data.

``--freshness`` (issue 15) adds, from ``--measure-after`` on: every 100 ms,
the age of the oldest stats sample **on screen**, i.e. in the snapshot the
stats panel last rendered (``StatsPanel.render_snapshot``): each container's
sample is aged from when its stream thread received it from the daemon
(and, beside, from the daemon's own ``read`` stamp); and the CPU the stats
path's threads used (the per-container stream threads ``stackdeck-stats-*``
and the event stream ``stackdeck-events``, from ``/proc/self/task``) over
the same window, to give it per container per second.

    python3 -m bench.tools.probe_app --duration 30 --out /tmp/probe.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any


def process_age() -> float:
    """Seconds since this process was started (kernel start time)."""
    start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def _instrument(args: argparse.Namespace, t_start: float) -> dict[str, Any]:
    """Count Widget.refresh calls (by class, layout or not) and full layout
    passes of the screen, after ``--measure-after`` seconds."""
    from textual.screen import Screen
    from textual.widget import Widget

    counters: dict[str, Any] = {
        "refresh": {},
        "refresh_layout": {},
        "screen_layout_passes": 0,
        "since_s": args.measure_after,
    }
    refresh = Widget.refresh
    layout_pass = Screen._refresh_layout

    def counting_refresh(self: Any, *regions: Any, **kwargs: Any) -> Any:
        if time.monotonic() - t_start >= args.measure_after:
            key = "refresh_layout" if kwargs.get("layout") else "refresh"
            name = type(self).__name__
            counters[key][name] = counters[key].get(name, 0) + 1
        return refresh(self, *regions, **kwargs)

    def counting_layout(self: Any, *a: Any, **kw: Any) -> Any:
        if time.monotonic() - t_start >= args.measure_after:
            counters["screen_layout_passes"] += 1
        return layout_pass(self, *a, **kw)

    Widget.refresh = counting_refresh  # type: ignore[method-assign]
    Screen._refresh_layout = counting_layout  # type: ignore[method-assign]
    return counters


def _thread_cpu_s(prefixes: tuple[str, ...]) -> dict[str, float]:
    """CPU seconds so far of this process's live threads whose name starts
    with one of ``prefixes``, summed by prefix: ``/proc/self/task/<tid>/schedstat``
    (nanoseconds on a CPU; the ticks of ``stat`` miss threads that wake for a
    few microseconds each second, as the stream threads do)."""
    import threading

    out = dict.fromkeys(prefixes, 0.0)
    counts = dict.fromkeys(prefixes, 0)
    for thread in threading.enumerate():
        prefix = next((p for p in prefixes if thread.name.startswith(p)), None)
        if prefix is None or thread.native_id is None:
            continue
        try:
            raw = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
        except OSError:
            continue
        out[prefix] += int(raw.split()[0]) / 1e9
        counts[prefix] += 1
    return {**out, **{f"{p} threads": float(n) for p, n in counts.items()}}


STATS_THREADS = ("stackdeck-stats-", "stackdeck-events")


class _Freshness:
    """The age of the oldest stats sample the stats panel shows."""

    def __init__(self, t_start: float, after: float) -> None:
        from console.core.sources.docker import stats
        from console.core.sources.docker.inspect import parse_docker_time
        from console.ui.panels.stats import StatsPanel

        self.t_start, self.after = t_start, after
        self.received: dict[int, tuple[Any, float, float | None]] = {}
        """id(ContainerStats) -> (the object, monotonic receipt, daemon's read stamp as epoch)."""
        self.shown: Any = None
        self.ages: list[tuple[float, float, float | None, int]] = []
        self.cpu0: dict[str, float] | None = None
        self.t0 = 0.0
        on_raw = stats._Stream.on_raw
        me = self

        def recording_on_raw(stream: Any, raw: Any, host_mem_total: int) -> None:
            on_raw(stream, raw, host_mem_total)
            latest = stream.latest
            if latest is not None and id(latest) not in me.received:
                read = parse_docker_time(raw.get("read"))
                me.received[id(latest)] = (
                    latest,
                    time.monotonic(),
                    read.timestamp() if read else None,
                )

        stats._Stream.on_raw = recording_on_raw  # type: ignore[method-assign,assignment]
        render = StatsPanel.render_snapshot

        def recording_render(panel: Any, snapshot: Any) -> None:
            render(panel, snapshot)
            if hasattr(snapshot, "containers") and hasattr(snapshot, "host_cpus"):
                me.shown = snapshot

        StatsPanel.render_snapshot = recording_render  # type: ignore[method-assign,assignment]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if hasattr(self, "cpu1"):
                return  # the window ended: the app is quitting
            if now - self.t_start < self.after:
                continue
            if self.cpu0 is None:
                self.cpu0, self.t0 = _thread_cpu_s(STATS_THREADS), now
            snap = self.shown
            if snap is None or not snap.containers:
                continue
            got = [self.received.get(id(c)) for c in snap.containers]
            if any(g is None or g[0] is not c for g, c in zip(got, snap.containers, strict=True)):
                continue  # a sample from before the patch: not measurable
            oldest = min(g[1] for g in got if g is not None)
            reads = [g[2] for g in got if g is not None and g[2] is not None]
            daemon_age = time.time() - min(reads) if reads else None
            self.ages.append(
                (round(now - self.t_start, 2), round(now - oldest, 3), daemon_age, len(got))
            )
            if len(self.received) > 5000:  # keep what is on screen and the newest
                keep = {id(c) for c in snap.containers}
                cutoff = now - 10
                self.received = {
                    k: v for k, v in self.received.items() if k in keep or v[1] > cutoff
                }

    def end(self) -> None:
        """The end of the window: before the app quits and stops the streams."""
        self.cpu1, self.t1 = _thread_cpu_s(STATS_THREADS), time.monotonic()

    def result(self) -> dict[str, Any]:
        if not hasattr(self, "cpu1"):
            self.end()
        cpu1, t1 = self.cpu1, self.t1
        cpu0 = self.cpu0 or cpu1
        seconds = t1 - self.t0 if self.cpu0 else 0.0
        return {
            "ages": [(t, a, round(d, 3) if d is not None else None, n) for t, a, d, n in self.ages],
            "window_s": round(seconds, 2),
            "thread_cpu_s": {
                k: round(cpu1[k] - cpu0.get(k, 0.0), 3) for k in cpu1 if not k.endswith("threads")
            },
            "threads": {k: cpu1[k] for k in cpu1 if k.endswith("threads")},
        }


class _NoMonitor:
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _what_if(names: list[str]) -> None:
    if "no-repaint-reactives" in names:
        from console.ui.panels import PANEL_CLASSES
        from console.ui.panels.base import Panel
        from console.ui.widgets.alerts import AlertsLine
        from console.ui.widgets.header import HeaderBar
        from textual.reactive import Reactive

        for cls in (Panel, *PANEL_CLASSES, HeaderBar, AlertsLine):
            for value in vars(cls).values():
                if isinstance(value, Reactive):
                    value._repaint = False
    if "no-clock" in names:
        from console.ui.app import StackdeckApp

        StackdeckApp._tick = lambda self: None  # type: ignore[method-assign]
    if "static-no-layout" in names:
        from textual.widgets import Static

        update = Static.update

        def update_no_layout(self: Any, content: Any = "", *, layout: bool = False) -> None:
            update(self, content, layout=False)

        Static.update = update_no_layout  # type: ignore[method-assign]
    if "no-chart" in names:
        from console.ui.widgets import chart
        from rich.text import Text

        chart.PlotextChart.render = lambda self: Text("")  # type: ignore[method-assign,assignment,return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.010)
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", action="store_true", help="count refreshes and layout passes")
    parser.add_argument(
        "--what-if",
        action="append",
        default=[],
        choices=["static-no-layout", "no-chart", "no-monitor", "no-clock", "no-repaint-reactives"],
    )
    parser.add_argument(
        "--measure-after", type=float, default=0.0, help="count only after this many seconds"
    )
    parser.add_argument(
        "--freshness",
        action="store_true",
        help="age of the oldest stats sample on screen every 100 ms, and the stats threads' CPU",
    )
    args = parser.parse_args()

    # monotonic time of the process start, estimated from the kernel's figures
    t_start = time.monotonic() - process_age()
    t_main = time.monotonic()

    from console.core.config import Settings
    from console.core.monitor import Monitor
    from console.ui.app import create_app

    t_imported = time.monotonic()
    counters = _instrument(args, t_start) if args.count else None
    _what_if(args.what_if)
    fresh = _Freshness(t_start, args.measure_after) if args.freshness else None
    first: dict[str, float] = {}
    counts: dict[str, int] = {}
    states: list[dict[str, Any]] = []

    def factory(settings: Any, sink: Any) -> Any:
        def probe_sink(kind: str, payload: Any) -> Any:
            now = time.monotonic()
            first.setdefault(kind, now - t_start)
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "source":
                states.append(
                    {
                        "t": round(now - t_start, 3),
                        "name": payload.name,
                        "ok": payload.ok,
                        "error": payload.last_error,
                    }
                )
            return sink(kind, payload)

        if "no-monitor" in args.what_if:
            return _NoMonitor()
        return Monitor(settings, probe_sink)

    app = create_app(Settings(), monitor_factory=factory)
    lags: list[tuple[float, float]] = []
    cpu: dict[int, float] = {}
    mounted: dict[str, float] = {}

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            c = time.thread_time()
            await asyncio.sleep(args.interval)
            lag = loop.time() - t - args.interval
            lags.append((time.monotonic() - t_start, lag))
            # CPU the loop's thread burned meanwhile: a stall with as much CPU
            # as lag is work on the loop; less means it waited (GIL held by
            # another thread, or no core free on a loaded machine)
            cpu[len(lags) - 1] = time.thread_time() - c
            if "app_running" not in mounted and app.is_running:
                mounted["app_running"] = time.monotonic() - t_start

    async def stop_later() -> None:
        await asyncio.sleep(args.duration)
        mounted["exit_requested"] = time.monotonic() - t_start
        if fresh is not None:
            fresh.end()
        app.exit()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(probe()), loop.create_task(stop_later())]
        if fresh is not None:
            tasks.append(loop.create_task(fresh.run()))
        try:
            await app.run_async()
        finally:
            for task in tasks:
                task.cancel()

    t_run = time.monotonic()
    asyncio.run(run())
    t_end = time.monotonic()
    out = {
        "process_to_main_s": round(t_main - t_start, 4),
        "imports_s": round(t_imported - t_main, 4),
        "app_created_s": round(t_run - t_start, 4),
        "app_running_s": mounted.get("app_running"),
        "exit_requested_s": mounted.get("exit_requested"),
        "first_snapshot_s": {
            k: round(v, 4) for k, v in sorted(first.items(), key=lambda kv: kv[1])
        },
        "counts": counts,
        "states": states,
        "duration_s": round(t_end - t_run, 3),
        "probe_interval_s": args.interval,
        "lags": [
            (round(t, 4), round(lag, 5), round(cpu.get(i, 0.0), 5))
            for i, (t, lag) in enumerate(lags)
        ],
        "counters": counters,
        "what_if": args.what_if,
        "freshness": fresh.result() if fresh is not None else None,
    }
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
