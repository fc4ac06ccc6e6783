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

``--together`` starts every variant at once instead, each in its own tmux
server at the same size, and samples them over the same window: the
console beside its peers (issue 15: glances' containers view, ``docker
stats`` of the stack's containers, ``pg_activity`` of its database), with
the ratios stackdeck ÷ peer (CPU and RSS) in the summary and, with
``--md``, a Markdown table. A peer's command may name ``{containers}`` (the
stack's running containers) and ``{run_dir}`` (its sockets' folder)::

    python -m bench.tools.ab_idle --stack sdperf --http-port 18720 --env-file .env --together \
        stackdeck=. "glances=cmd:glances -t 1" "docker stats=cmd:docker stats {containers}" \
        "pg_activity=cmd:pg_activity --refresh 5 -h {run_dir}/postgresql -U postgres -d investment_db" \
        --rounds 3 --out bench/results/x.json --md bench/results/x.md

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

from bench.common import REPO, Watched

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
    def _counting_dirty(klass):
        _rpu = klass.render_partial_update
        def _crop(self):
            if time.monotonic() >= since and self._dirty_regions:
                for r in self._dirty_regions:
                    key = 'dirty region %%s' %% (tuple(r),)
                    counts[key] = counts.get(key, 0) + 1
            return _rpu(self)
        klass.render_partial_update = _crop
    _counting_dirty(Compositor)
    try:  # the console's own (a subclass that renders dirty regions apart)
        from console.ui.compositor import RegionCompositor
        _counting_dirty(RegionCompositor)
    except ImportError:
        pass
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


def _env(args: argparse.Namespace, src: Any) -> dict[str, str]:
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
        if "POSTGRES_PASSWORD" in env:  # pg_activity (libpq) reads PGPASSWORD
            env.setdefault("PGPASSWORD", env["POSTGRES_PASSWORD"])
    return env


def _peer_command(command: str, args: argparse.Namespace) -> list[str]:
    """A peer's command line with ``{containers}`` and ``{run_dir}`` filled in."""
    import subprocess

    words: list[str] = []
    for word in command.split():
        if word == "{containers}":
            words += subprocess.run(
                [
                    "docker",
                    "ps",
                    "--format",
                    "{{.Names}}",
                    "--filter",
                    f"label=com.docker.compose.project={args.stack}",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        else:
            from console.core.stack import StackNames

            run_dir = args.run_dir or str(StackNames(args.stack).run_dir)
            words.append(word.replace("{run_dir}", run_dir))
    return words


class _Run:
    """One variant started in its own tmux server, sampled through
    :class:`bench.common.Watched` (the same as ``b_idle``'s peer comparison)."""

    def __init__(self, name: str, src: Any, args: argparse.Namespace, index: int) -> None:
        self.name, self.args = name, args
        self.counts_out = f"/tmp/ab-idle-counts-{os.getpid()}-{name.replace(' ', '_')}-{index}.json"
        code = RUNNER % {
            "count": args.count,
            "warm": args.warm,
            "measure": args.measure,
            "counts_out": self.counts_out,
            "timed": TIMED,
        }
        Path("/tmp/ab-idle-noconfig").mkdir(exist_ok=True)
        if str(src).startswith("cmd:"):  # a peer, e.g. cmd:glances -t 1
            command = _peer_command(str(src)[4:], args)
            self.watched = Watched(name, command, _env(args, src), cwd=REPO)
        else:
            command = [sys.executable, "-c", code]
            self.watched = Watched(name, command, _env(args, src), cwd=src)
        self.pid = self.watched.pid
        self.tmux = self.watched.tmux

    def begin(self) -> None:
        self.watched.begin()

    def end(self) -> dict[str, Any]:
        args = self.args
        cpu = self.watched.window()
        sampled = self.watched.summary()
        screen = self.tmux.capture()
        dead = sampled["died"]
        try:
            deadline = time.monotonic() + 10
            while (
                args.count
                and not dead
                and not Path(self.counts_out).exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            self.watched.stop()
        result: dict[str, Any] = {
            "variant": self.name,
            "cpu_percent": round(cpu, 2),
            "rss_mib": sampled["rss_last_mib"],
            "load": sampled["load"],
            "died": dead,
            "threads": {k: v for k, v in sampled["threads"].items() if v > 0},
        }
        if args.count and Path(self.counts_out).exists():
            counts = json.loads(Path(self.counts_out).read_text())
            result["per_second"] = {
                k: round(v / args.measure, 2)
                for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
                if v / args.measure >= 0.05
            }
            Path(self.counts_out).unlink()
        if dead or "waiting" in screen.lower():
            result["screen_tail"] = screen[-1500:]
        return result


def run_once(name: str, src: Any, args: argparse.Namespace, index: int) -> dict[str, Any]:
    run = _Run(name, src, args, index)
    try:
        time.sleep(args.warm)
        run.begin()
        time.sleep(args.measure)
    except BaseException:
        run.watched.stop()
        raise
    return run.end()


def run_together(
    variants: list[tuple[str, Any]], args: argparse.Namespace, index: int
) -> list[dict[str, Any]]:
    """Every variant at once, sampled over the same window."""
    started: list[_Run] = []
    try:
        for name, src in variants:
            started.append(_Run(name, src, args, index))
        time.sleep(args.warm)
        for run in started:
            run.begin()
        time.sleep(args.measure)
    except BaseException:
        for run in started:
            run.watched.stop()
        raise
    return [run.end() for run in started]


def ratios(summary: dict[str, dict[str, Any]], first: str) -> dict[str, dict[str, float | None]]:
    """stackdeck (the first variant) ÷ each other variant, CPU and RSS."""

    def div(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None

    head = summary[first]
    return {
        name: {
            "cpu": div(head["cpu_median"], s["cpu_median"]),
            "rss": div(head["rss_mib_max"], s["rss_mib_max"]),
        }
        for name, s in summary.items()
        if name != first
    }


def markdown(runs: list[dict[str, Any]], summary: dict[str, Any], args: argparse.Namespace) -> str:
    first = next(iter(summary))
    loads = [x for r in runs for x in r["load"]]
    lines = [
        f"# Idle cost beside the peers ({time.strftime('%Y-%m-%d %H:%M', time.localtime())})",
        "",
        f"Stack `{args.stack}`, tmux {160}×{48}, {'all variants at once' if args.together else 'alternating'}, "
        f"{args.rounds} rounds of {args.warm:g} s warm-up + {args.measure:g} s measured; "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} during the windows "
        "(a shared 2-core machine: not calm).",
        "",
        f"| program | CPU % of a core (median; runs) | RSS MiB (max) | {first} ÷ program, CPU | {first} ÷ program, RSS |",
        "|---|---|---|---|---|",
    ]
    rat = ratios(summary, first)
    for name, s in summary.items():
        r = rat.get(name, {})
        runs_s = " / ".join(f"{c:.2f}" for c in s["cpu_runs"])
        lines.append(
            f"| {name} | **{s['cpu_median']:.2f}** ({runs_s}) | {s['rss_mib_max']:.1f} | "
            f"{r.get('cpu') if r else '–'} | {r.get('rss') if r else '–'} |"
        )
    lines += ["", "What ran (`NAME=tree` is a console's source tree, `NAME=cmd:...` a peer):", ""]
    lines += [f"- `{v}`" for v in args.variants]
    lines.append("")
    return "\n".join(lines)


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
    parser.add_argument(
        "--together", action="store_true", help="run every variant at once (a peer comparison)"
    )
    parser.add_argument(
        "--run-dir",
        help="the stack's sockets' folder (default: the stack's, console/core/stack.facts)",
    )
    parser.add_argument("--out")
    parser.add_argument("--md", help="also write the summary as a Markdown table")
    args = parser.parse_args()
    variants = [
        (name, value if value.startswith("cmd:") else Path(value).resolve())
        for name, value in (v.split("=", 1) for v in args.variants)
    ]
    runs = []
    for i in range(args.rounds):
        batch = (
            run_together(variants, args, i)
            if args.together
            else [run_once(name, src, args, i) for name, src in variants]
        )
        for r in batch:
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
    first = variants[0][0]
    print(json.dumps(summary))
    print(json.dumps({f"{first} ÷ {k}": v for k, v in ratios(summary, first).items()}))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "runs": runs,
                    "summary": summary,
                    "ratios": ratios(summary, first),
                },
                indent=1,
            )
            + "\n"
        )
    if args.md:
        Path(args.md).write_text(markdown(runs, summary, args))


if __name__ == "__main__":
    main()
