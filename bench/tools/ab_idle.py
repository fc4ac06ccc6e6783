"""A/B idle CPU of the real console against a running stack, read-only.

Each variant is a source tree (a checkout, or ``git archive`` of a commit)
whose ``console`` package is put first on ``PYTHONPATH``; the runs alternate
A, B, A, B... so both see the same load on a shared machine. Each run starts
the console the way ``stackdeck`` does, in a private tmux server at 160×48,
waits ``--warm`` seconds, then reads utime+stime of the process tree from
/proc over ``--measure`` seconds; RSS at the end; the 1-minute load average
at the start and end of the window. Nothing is written to the stack: the
console only reads (no key is sent but the final ``q``).

    python -m bench.tools.ab_idle --stack sdq --http-port 18320 \\
        A=/tmp/base B=. --rounds 3 --out bench/results/x.json

``--count`` (in-process, per variant) also counts ``Widget.refresh`` calls
by widget and caller, the screen's layout passes, and compositor updates
(frames), per second, through ``bench.tools.replay_idle._count_refreshes``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Tmux, children_of, load_average, rss_bytes, terminate

RUNNER = """
import json, sys, time, atexit
counts = {}
if %(count)r:
    from bench.tools.replay_idle import _count_refreshes
    since = time.monotonic() + %(warm)r
    _count_refreshes(counts, since)
    from textual.screen import Screen
    _upd = Screen._compositor_refresh
    def _counting(self, *a, **k):
        if time.monotonic() >= since:
            counts['frames (compositor refresh)'] = counts.get('frames (compositor refresh)', 0) + 1
        return _upd(self, *a, **k)
    Screen._compositor_refresh = _counting
    from textual.widget import Widget
    _rl = Widget.render_lines
    def _counting_lines(self, crop):
        if time.monotonic() >= since:
            key = 'lines rendered ' + type(self).__name__
            counts[key] = counts.get(key, 0) + crop.height
        return _rl(self, crop)
    Widget.render_lines = _counting_lines
    import importlib
    def _timed(path):
        mod, cls, meth = path.rsplit('.', 2)
        try:
            klass = getattr(importlib.import_module(mod), cls)
        except Exception:
            return
        inner = getattr(klass, meth)
        import functools
        @functools.wraps(inner)
        def wrapper(*a, **k):
            t = time.thread_time()
            try:
                return inner(*a, **k)
            finally:
                if time.monotonic() >= since:
                    key = 'ms in ' + cls + '.' + meth
                    counts[key] = counts.get(key, 0) + 1000 * (time.thread_time() - t)
        setattr(klass, meth, wrapper)
    from textual._compositor import Compositor
    _rpu = Compositor.render_partial_update
    def _crop(self):
        if time.monotonic() >= since and self._dirty_regions:
            for r in self._dirty_regions:
                key = 'dirty region %%s' %% (tuple(r),)
                counts[key] = counts.get(key, 0) + 1
        return _rpu(self)
    Compositor.render_partial_update = _crop
    for path in %(timed)r:
        _timed(path)
    def _dump():
        with open(%(counts_out)r, 'w') as fh:
            json.dump(counts, fh)
    import threading
    def _later():
        time.sleep(%(warm)r + %(measure)r)
        _dump()
    threading.Thread(target=_later, daemon=True).start()
from console.cli import main
sys.exit(main())
"""


TIMED = [
    "textual.screen.Screen._compositor_refresh",
    "textual.screen.Screen._refresh_layout",
    "console.ui.widgets.chart.PlotextChart.render",
    "console.ui.panels.base.Panel.refresh_panel",
    "console.ui.panels.base.Panel.watch_now",
    "console.ui.widgets.table.ListTable.render_lines",
    "console.ui.widgets.table.ListTable._apply",
    "console.ui.screens.dashboard.DashboardScreen.watch_sources",
]
"""Functions whose time is summed with ``--count`` (ms per second)."""


def _ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def _thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks of the main thread (the UI's event loop) and of the rest."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "main (UI loop)" if task.name == str(pid) else "other threads"
        del comm
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def run_once(name: str, src: Any, args: argparse.Namespace, index: int) -> dict[str, Any]:
    counts_out = f"/tmp/ab-idle-counts-{os.getpid()}-{name}-{index}.json"
    code = RUNNER % {
        "count": args.count,
        "warm": args.warm,
        "measure": args.measure,
        "counts_out": counts_out,
        "timed": TIMED,
    }
    env = {
        k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "USER", "DOCKER_HOST")
    }
    env.update(
        TERM="xterm-256color",
        COLORTERM="truecolor",
        PYTHONPATH=f"{src}:{REPO}",
        STACK_NAME=args.stack,
        HTTP_PORT=str(args.http_port),
        XDG_CONFIG_HOME="/tmp/ab-idle-noconfig",
        TEXTUAL_ANIMATIONS="none",
    )
    if args.env_file:
        # the stack's own variables (passwords the console's sources need),
        # as the console reads them from <repo>/.env of the stack's checkout
        from console.core.config import read_env_file

        env.update(read_env_file(Path(args.env_file)))
    Path("/tmp/ab-idle-noconfig").mkdir(exist_ok=True)
    tmux = Tmux(f"ab-{name}")
    if str(src).startswith("cmd:"):  # a peer, e.g. cmd:glances -t 1
        pid = tmux.start(str(src)[4:].split(), env, cwd=REPO)
    else:
        pid = tmux.start([sys.executable, "-c", code], env, cwd=src)
    try:
        time.sleep(args.warm)
        tree = [pid, *children_of(pid)]
        hz = os.sysconf("SC_CLK_TCK")
        load0 = load_average()[0]
        c0, t0, th0 = _ticks(tree), time.monotonic(), _thread_ticks(pid)
        time.sleep(args.measure)
        c1, t1, th1 = _ticks(tree), time.monotonic(), _thread_ticks(pid)
        rss = sum(rss_bytes(p) or 0 for p in tree)
        load1 = load_average()[0]
        screen = tmux.capture()
        dead = tmux.pane_dead()
        deadline = time.monotonic() + 10
        while (
            args.count
            and not dead
            and not Path(counts_out).exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        terminate(pid)
        tmux.kill()
    result: dict[str, Any] = {
        "variant": name,
        "cpu_percent": round(100 * (c1 - c0) / hz / (t1 - t0), 2),
        "rss_mib": round(rss / 2**20, 1),
        "load": [load0, load1],
        "died": dead,
        "threads": {
            k: round(100 * (v - th0.get(k, 0)) / hz / (t1 - t0), 2)
            for k, v in sorted(th1.items(), key=lambda kv: -(kv[1] - th0.get(kv[0], 0)))
            if v - th0.get(k, 0) > 0
        },
    }
    if args.count and Path(counts_out).exists():
        counts = json.loads(Path(counts_out).read_text())
        result["per_second"] = {
            k: round(v / args.measure, 2)
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
            if v / args.measure >= 0.05
        }
        Path(counts_out).unlink()
    if dead or "waiting" in screen.lower():
        result["screen_tail"] = screen[-1500:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "variants",
        nargs="+",
        help="NAME=SOURCE_DIR (a console's source tree) or NAME=cmd:COMMAND (a peer), in turn",
    )
    parser.add_argument("--stack", default=os.environ.get("STACK_NAME", "sdq"))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "80")))
    parser.add_argument("--env-file", help="the stack's .env (its checkout's), for its passwords")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=float, default=15.0)
    parser.add_argument("--measure", type=float, default=30.0)
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    variants = [
        (name, value if value.startswith("cmd:") else Path(value).resolve())
        for name, value in (v.split("=", 1) for v in args.variants)
    ]
    runs = []
    for i in range(args.rounds):
        for name, src in variants:
            r = run_once(name, src, args, i)
            print(json.dumps(r), flush=True)
            runs.append(r)
    summary = {
        name: {
            "cpu_median": statistics.median(r["cpu_percent"] for r in runs if r["variant"] == name),
            "cpu_runs": [r["cpu_percent"] for r in runs if r["variant"] == name],
            "rss_mib_max": max(r["rss_mib"] for r in runs if r["variant"] == name),
        }
        for name, _ in variants
    }
    print(json.dumps(summary))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
