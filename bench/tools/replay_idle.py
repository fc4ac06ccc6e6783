"""The console's UI cost alone: the real app in a real terminal, fed by a
monitor that replays the recorded ``normal`` snapshots at the default refresh
intervals (stats every second with moving figures, containers every 3 s,
health, database, quotas and events every 5 s, cost every 30 s), with no
Docker, SQL or HTTP behind it.

It isolates what the idle benchmark (``bench/b_idle.py``, real stack)
cannot: how much of the console's CPU is drawing. Used to measure each UI
optimisation before and after, quickly and with no stack:

    tmux new-session -d -x 160 -y 48 'python3 -m bench.tools.replay_idle --duration 40'

``--containers N`` repeats the stats rows up to N containers. After
``--duration`` seconds the app exits and prints one JSON line to ``--out``
(CPU % of one core over the last ``--measure`` seconds, from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

INTERVALS = {
    "containers": 3.0,
    "health": 5.0,
    "database": 5.0,
    "quotas": 5.0,
    "cost": 30.0,
    "alerts": 1.0,
    "events": 5.0,
}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ReplayMonitor:
    """Publishes the fixture's snapshots again and again, stamped with now."""

    def __init__(
        self,
        sink: Callable[[str, Any], None],
        containers: int,
        stats_interval: float = 1.0,
        *,
        republish: bool = True,
    ) -> None:
        from tests.ui.fakes import load_feed  # the UI tests' recorded snapshots

        self.sink = sink
        self.items: list[tuple[str, Any]] = list(load_feed("normal"))
        self.latest = {kind: payload for kind, payload in self.items if kind != "source"}
        stats = self.latest["stats"]
        rows = list(stats.containers)
        while len(rows) < containers:
            base = rows[len(rows) % len(stats.containers)]
            rows.append(base.model_copy(update={"name": f"{base.name}_{len(rows)}"}))
        self.stats = stats.model_copy(update={"containers": rows[: max(containers, 1)]})
        self.stats_interval = stats_interval
        self.republish = republish
        self.tasks: list[asyncio.Task[None]] = []
        self.rng = random.Random(7)

    async def start(self) -> None:
        for kind, payload in self.items:
            if kind != "source":
                payload = payload.model_copy(update={"taken_at": self._now()})
            self.sink(kind, payload)
        self.tasks.append(asyncio.create_task(self._stats()))
        for kind, interval in INTERVALS.items():
            if self.republish:
                self.tasks.append(asyncio.create_task(self._again(kind, interval)))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()

    def _now(self) -> datetime:
        return datetime.now().astimezone()

    async def _again(self, kind: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.sink(kind, self.latest[kind].model_copy(update={"taken_at": self._now()}))

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            rows = []
            for row in self.stats.containers:
                cpu = max(0.0, row.cpu_percent + self.rng.uniform(-2, 2))
                rows.append(
                    row.model_copy(
                        update={
                            "cpu_percent": round(cpu, 1),
                            "net_rx_rate": row.net_rx_rate * self.rng.uniform(0.8, 1.2),
                            "cpu_history": [*row.cpu_history[1:], cpu],
                        }
                    )
                )
            self.stats = self.stats.model_copy(update={"containers": rows})
            self.sink("stats", self.stats.model_copy(update={"taken_at": self._now()}))


def _count_refreshes(counts: dict[str, int], since: float) -> None:
    """Count ``refresh()`` calls (with and without layout) by widget class and
    calling function,
    and the screen's layout passes, from ``since`` (monotonic) on."""
    import sys

    from textual.screen import Screen
    from textual.widget import Widget

    refresh = Widget.refresh
    layout_pass = Screen._refresh_layout

    def counting_refresh(self: Any, *regions: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= since:
            frame = sys._getframe(1)
            while frame.f_back and "textual" in frame.f_code.co_filename:
                frame = frame.f_back
            kind = "layout" if kwargs.get("layout") else "repaint"
            key = f"{kind} {type(self).__name__} <- {frame.f_code.co_name}"
            counts[key] = counts.get(key, 0) + 1
        return refresh(self, *regions, **kwargs)

    def counting_layout(self: Any, *a: Any, **kw: Any) -> Any:
        if time.monotonic() >= since:
            counts["screen layout passes"] = counts.get("screen layout passes", 0) + 1
        return layout_pass(self, *a, **kw)

    Widget.refresh = counting_refresh  # type: ignore[method-assign]
    Screen._refresh_layout = counting_layout  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--measure", type=float, default=30.0)
    parser.add_argument("--containers", type=int, default=6)
    parser.add_argument("--stats-interval", type=float, default=1.0)
    parser.add_argument(
        "--no-republish",
        action="store_true",
        help="publish every kind but stats once only (the clock's own cost)",
    )
    parser.add_argument("--out", default="/tmp/replay_idle.json")
    parser.add_argument(
        "--count",
        action="store_true",
        help="also count layout refreshes by widget class and caller, and layout passes",
    )
    args = parser.parse_args()
    counts: dict[str, int] = {}
    if args.count:
        _count_refreshes(counts, time.monotonic() + args.duration - args.measure)

    from console.core.config import Settings
    from console.ui.app import create_app

    settings = Settings(
        project="investment",
        base_url="http://127.0.0.1:80",
        run_dir="/run/investment",
        state_dir="/tmp/replay-idle-state",
    )
    app = create_app(
        settings,
        monitor_factory=lambda _s, sink: ReplayMonitor(
            sink, args.containers, args.stats_interval, republish=not args.no_republish
        ),
        hostname="bench",
    )
    marks: dict[str, float] = {}

    def measure() -> None:
        time.sleep(args.duration - args.measure)
        marks["cpu0"], marks["t0"] = _cpu_seconds(), time.monotonic()
        time.sleep(args.measure)
        marks["cpu1"], marks["t1"] = _cpu_seconds(), time.monotonic()
        app.call_from_thread(app.exit)

    threading.Thread(target=measure, daemon=True).start()
    app.run()
    cpu = 100 * (marks["cpu1"] - marks["cpu0"]) / (marks["t1"] - marks["t0"])
    result: dict[str, Any] = {
        "containers": args.containers,
        "cpu_percent": round(cpu, 2),
        "seconds": args.measure,
    }
    if counts:
        result["per_second"] = {
            k: round(v / args.measure, 2)
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
            if v / args.measure >= 0.05
        }
    Path(args.out).write_text(json.dumps(result) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
