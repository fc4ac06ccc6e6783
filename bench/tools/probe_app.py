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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.010)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    # monotonic time of the process start, estimated from the kernel's figures
    t_start = time.monotonic() - process_age()
    t_main = time.monotonic()

    from console.core.config import Settings
    from console.core.monitor import Monitor
    from console.ui.app import create_app

    t_imported = time.monotonic()
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

        return Monitor(settings, probe_sink)

    app = create_app(Settings(), monitor_factory=factory)
    lags: list[tuple[float, float]] = []
    mounted: dict[str, float] = {}

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(args.interval)
            lag = loop.time() - t - args.interval
            lags.append((time.monotonic() - t_start, lag))
            if "app_running" not in mounted and app.is_running:
                mounted["app_running"] = time.monotonic() - t_start

    async def stop_later() -> None:
        await asyncio.sleep(args.duration)
        app.exit()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(probe()), loop.create_task(stop_later())]
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
        "first_snapshot_s": {
            k: round(v, 4) for k, v in sorted(first.items(), key=lambda kv: kv[1])
        },
        "counts": counts,
        "states": states,
        "duration_s": round(t_end - t_run, 3),
        "probe_interval_s": args.interval,
        "lags": [(round(t, 4), round(lag, 5)) for t, lag in lags],
    }
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
