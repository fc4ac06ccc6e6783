"""Where the console's time goes, with the stack up: py-spy samples of the
real console process (tmux 160×48) while it idles, and of its start-up, plus
``python -X importtime`` of the console's imports. Produces tables (no
targets): CPU share per thread, the hottest functions (self and inclusive),
the import cost by package. The collapsed stacks are saved next to the
results for anyone who wants a flame graph (``flamegraph.pl`` or speedscope)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    CLK_TCK,
    REPO,
    Stack,
    Tmux,
    children_of,
    console_command,
    console_env,
    load_average,
    log,
    rnd,
    row,
    run,
    terminate,
    thread_ticks,
)
from bench.screen import stack_services, watch

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """``func (path:line)`` -> ``func (console/ui/app.py:123)`` with the
    path shortened to the package."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/site-packages/", "/dist-packages/", str(REPO) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path}{':' + m.group('line') if m.group('line') else ''})"


def _package(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    path = m.group("file") if m else frame
    if str(REPO) + "/console/" in path:
        sub = path.split(str(REPO) + "/console/", 1)[1]
        return "console/" + "/".join(sub.split("/")[:2])
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/")[0]
    if "<frozen" in path or "/lib/python3" in path:
        return "stdlib"
    return "other"


_THREAD = re.compile(r"^thread \((?P<tid>\d+)\): ?(?P<name>.*)$")


def _group(name: str) -> str:
    name = re.sub(r"stackdeck-stats-.*", "stackdeck-stats-*", name)
    return re.sub(r"_\d+$", "_*", name)


def thread_cpu(
    before: dict[int, int], after: dict[int, int], names: dict[int, str], seconds: float
) -> list[tuple[str, int, float]]:
    """CPU % of one core per thread group over a window, from /proc (exact),
    named with the thread names py-spy saw (``tid -> name``)."""
    groups: Counter[str] = Counter()
    members: Counter[str] = Counter()
    for tid, ticks in after.items():
        used = ticks - before.get(tid, 0)
        name = _group(names.get(tid, "?"))
        groups[name] += used
        members[name] += 1
    return [
        (n, members[n], rnd(t / CLK_TCK / seconds * 100, 2) or 0.0) for n, t in groups.most_common()
    ]


def thread_names(collapsed: str) -> dict[int, str]:
    out = {}
    for line in collapsed.splitlines():
        m = _THREAD.match(line.split(";", 1)[0])
        if m:
            out[int(m.group("tid"))] = m.group("name").strip()
    return out


def analyse(collapsed: str, rate: int, seconds: float, top: int = 25) -> dict[str, Any]:
    """Aggregate py-spy ``--format raw`` output (``frame;frame;... count``,
    root first; with ``--threads`` the root is the thread). Recorded with
    ``--gil``: each sample is the thread holding the GIL, so the counts are
    Python CPU time."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    by_thread_self: dict[str, Counter[str]] = defaultdict(Counter)
    for line in collapsed.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        thread = (
            frames[0] if frames[0].startswith("thread") or frames[0].startswith("process") else "?"
        )
        body = [f for f in frames if not (f.startswith("thread ") or f.startswith("process "))]
        if not body:
            continue
        total += count
        m = _THREAD.match(thread)
        tname = _group(m.group("name")) if m else thread
        threads[tname] += count
        leaf = _short(body[-1])
        self_c[leaf] += count
        by_thread_self[tname][leaf] += count
        packages[_package(body[-1])] += count
        for f in {_short(f) for f in body}:
            incl[f] += count
    possible = rate * seconds
    pct = lambda c: rnd(c / possible * 100, 2)  # noqa: E731  percent of one core
    return {
        "samples": total,
        "gil_percent": pct(total),
        "threads": [(t, c, pct(c)) for t, c in threads.most_common()],
        "self": [(f, c, pct(c)) for f, c in self_c.most_common(top)],
        "inclusive_console": [(f, c, pct(c)) for f, c in incl.most_common() if "console/" in f][
            :top
        ],
        "inclusive_all": [(f, c, pct(c)) for f, c in incl.most_common(top)],
        "self_by_package": [(p, c, pct(c)) for p, c in packages.most_common(15)],
        "self_by_thread": {
            t: [(f, c, pct(c)) for f, c in cnt.most_common(8)] for t, cnt in by_thread_self.items()
        },
    }


_TUI_MODULES = [
    "console.cli",
    "console.ui.app",
    "console.core.monitor",
    "console.core.sources.cost",
    "console.core.sources.docker.containers",
    "console.core.sources.docker.events",
    "console.core.sources.docker.stats",
    "console.core.sources.health",
    "console.core.sources.postgres",
    "console.core.sources.redis_quota",
    "docker",
]


def trim_collapsed(path: Path, keep: int = 150) -> None:
    """Rewrite py-spy's collapsed stacks without line numbers, merged, the
    ``keep`` heaviest only (a few tens of kB instead of megabytes)."""
    merged: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
            frames = [re.sub(r"^(thread) \(\d+\)", r"\1", f) for f in frames]
            short = [_short(f) if " (" in f else f for f in frames]
            # the common prefix down to the event loop says nothing: cut it
            loop = [i for i, f in enumerate(short) if f.startswith("Handle._run (asyncio/")]
            if loop:
                short = [short[0], "…event loop", *short[loop[0] + 1 :]]
            merged[";".join(short)] += int(count)
    lines = [f"{stack} {count}" for stack, count in merged.most_common(keep)]
    path.write_text("\n".join(lines) + "\n")


def import_times() -> dict[str, Any]:
    """``python -X importtime`` of what starting the TUI imports: the entry
    point, the app, the monitor and every source with its client library."""
    target = ", ".join(_TUI_MODULES)
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {target}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    per_pkg: Counter[str] = Counter()
    biggest: list[tuple[int, str]] = []
    total = 0
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        self_us, cum_us, indent, name = (
            int(m.group(1)),
            int(m.group(2)),
            len(m.group(3)),
            m.group(4),
        )
        per_pkg[name.split(".")[0]] += self_us
        total += self_us
        if indent <= 3:
            biggest.append((cum_us, name))
    biggest.sort(reverse=True)
    return {
        "target": target,
        "total_ms": rnd(total / 1000, 1),
        "by_package_ms": [(p, rnd(us / 1000, 1)) for p, us in per_pkg.most_common(15)],
        "top_level_cumulative_ms": [(n, rnd(us / 1000, 1)) for us, n in biggest[:15]],
    }


WHAT_IFS: list[tuple[str, list[str], dict[str, str]]] = [
    ("as is", [], {}),
    ("no sources (app shell only)", ["no-monitor"], {}),
    ("no 1 Hz clock tick", ["no-clock"], {}),
    ("stats published every 5 s instead of 1 s", [], {"STACKDECK_REFRESH__STATS": "5"}),
    ("Static.update without layout", ["static-no-layout"], {}),
    ("no plotext chart", ["no-chart"], {}),
    ("bound reactives without repaint", ["no-repaint-reactives"], {}),
    (
        "no clock tick + Static without layout + no repaint + stats every 5 s",
        ["no-clock", "static-no-layout", "no-repaint-reactives"],
        {"STACKDECK_REFRESH__STATS": "5"},
    ),
]


def what_if(stack: Stack, *, warm: float, seconds: float) -> list[dict[str, Any]]:
    """The console idle, as is and with each experimental change applied in
    its own process by :mod:`bench.tools.probe_app`: CPU from /proc over the
    same window, refresh and layout counts from the probe."""
    import json
    import tempfile

    from bench.common import CpuMeter

    results = []
    tmux = Tmux("whatif")
    try:
        for label, flags, env in WHAT_IFS:
            out = Path(tempfile.mkstemp(prefix="sdbench-whatif-", suffix=".json")[1])
            cmd = [
                sys.executable,
                "-m",
                "bench.tools.probe_app",
                "--count",
                "--measure-after",
                str(warm),
                "--duration",
                str(warm + seconds + 1),
                "--out",
                str(out),
            ]
            for flag in flags:
                cmd += ["--what-if", flag]
            log(f"profile: what-if '{label}' ({warm:.0f} s warm-up, {seconds:.0f} s measured)")
            t0 = time.monotonic()
            pid = tmux.start(cmd, console_env(stack, **env))
            time.sleep(max(0.0, warm - (time.monotonic() - t0)))
            meter = CpuMeter(functools.partial(list, [pid]))
            time.sleep(seconds)
            cpu = meter.window().cpu_percent
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not tmux.pane_dead():
                time.sleep(0.3)
            tmux.kill()
            data = json.loads(out.read_text() or "{}") if out.exists() else {}
            out.unlink(missing_ok=True)
            counters = data.get("counters") or {}
            per_s = lambda n: rnd(n / seconds, 2)  # noqa: E731
            refresh = counters.get("refresh", {})
            relayout = counters.get("refresh_layout", {})
            results.append(
                {
                    "label": label,
                    "what_if": flags,
                    "env": env,
                    "cpu_percent": rnd(cpu, 2),
                    "layout_passes_per_s": per_s(counters.get("screen_layout_passes", 0)),
                    "refresh_per_s": per_s(sum(refresh.values())),
                    "refresh_layout_per_s": per_s(sum(relayout.values())),
                    "refresh_layout_by_class_per_s": sorted(
                        ((k, per_s(v)) for k, v in relayout.items()), key=lambda kv: -(kv[1] or 0)
                    )[:10],
                    "refresh_by_class_per_s": sorted(
                        ((k, per_s(v)) for k, v in refresh.items()), key=lambda kv: -(kv[1] or 0)
                    )[:10],
                    "snapshots": data.get("counts"),
                }
            )
    finally:
        tmux.kill()
    return results


def bench(
    stack: Stack, out_dir: Path, stamp: str, *, quick: bool = False, what_ifs: bool = True
) -> dict[str, Any]:
    load_before = load_average()
    if shutil.which("py-spy") is None:
        return {
            "title": "Profile",
            "rows": [row("py-spy", None, note="py-spy not installed: pip install py-spy")],
            "raw": {},
            "load_before": load_before,
            "load_after": load_average(),
        }
    services = stack_services(stack)
    rate = 100
    seconds = 20 if quick else 45
    raw: dict[str, Any] = {"rate_hz": rate}
    tmux = Tmux("profile")
    rows = []
    try:
        # 1. idle, attached
        log(f"profile: console idle, py-spy {seconds} s at {rate} Hz")
        t0 = time.monotonic()
        pid = tmux.start(console_command(), console_env(stack))
        watch(tmux, t0, services, timeout=30)
        time.sleep(5)
        idle_file = out_dir / f"{stamp}-profile-idle.collapsed.txt"
        before = thread_ticks(pid)
        t_rec = time.monotonic()
        r = run(
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--duration",
                str(seconds),
                "--gil",
                "--nonblocking",
                "--threads",
                "--format",
                "raw",
                "-o",
                str(idle_file),
            ],
            timeout=seconds + 60,
            check=False,
        )
        window = time.monotonic() - t_rec
        after = thread_ticks(pid)
        terminate(pid)
        tmux.kill()
        if idle_file.exists():
            text = idle_file.read_text()
            idle = analyse(text, rate, seconds)
            idle["proc_threads"] = thread_cpu(before, after, thread_names(text), window)
            idle["proc_total_percent"] = rnd(sum(p for _n, _m, p in idle["proc_threads"]), 2)
            trim_collapsed(idle_file)
            raw["idle"] = idle
            rows.append(
                row(
                    "console idle: CPU by thread (/proc)",
                    idle["proc_total_percent"],
                    "% of one core",
                    note="; ".join(f"{n} ×{m}: {p} %" for n, m, p in idle["proc_threads"][:6]),
                )
            )
            rows.append(
                row(
                    "console idle: Python time (py-spy --gil)",
                    idle["gil_percent"],
                    "% of one core",
                    note="hottest inclusive console frames: "
                    + "; ".join(f"{f} {p} %" for f, _c, p in idle["inclusive_console"][:4]),
                )
            )
        else:
            raw["idle_error"] = (r.stderr or r.stdout)[-2000:]

        # 2. start-up, launched under py-spy
        log("profile: console start-up under py-spy")
        start_file = out_dir / f"{stamp}-profile-startup.collapsed.txt"
        srate = 250
        t0 = time.monotonic()
        spy = tmux.start(
            [
                "py-spy",
                "record",
                "--rate",
                str(srate),
                "--gil",
                "--threads",
                "--format",
                "raw",
                "-o",
                str(start_file),
                "--",
                *console_command(),
            ],
            console_env(stack),
        )
        times = watch(tmux, t0, services, timeout=40)
        elapsed = time.monotonic() - t0
        kids = [p for p in children_of(spy) if p != spy]
        for kid in kids:
            terminate(kid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not tmux.pane_dead():  # py-spy writes, then exits
            time.sleep(0.2)
        spy_screen = tmux.capture()
        tmux.kill()
        if not start_file.exists():
            raw["startup_error"] = spy_screen[-2000:]
        if start_file.exists():
            st = analyse(start_file.read_text(), srate, elapsed)
            trim_collapsed(start_file)
            raw["startup"] = {**st, "seconds_to_live_data": rnd(times.data_s)}
            rows.append(
                row(
                    "console start-up: Python time until live data (py-spy --gil)",
                    rnd(st["samples"] / srate, 2),
                    "CPU-seconds",
                    note=f"over {rnd(elapsed, 2)} s wall (live data at {rnd(times.data_s)} s); hottest inclusive: "
                    + "; ".join(
                        f"{f} {rnd(c / srate, 2)} s" for f, c, _p in st["inclusive_console"][:3]
                    ),
                )
            )
        # 3. what-if experiments (Textual patched in the probe's process only)
        # (``--no-what-if``: skipped, e.g. in issue 15's run of record, ~6 min)
        experiments = what_if(stack, warm=10.0, seconds=15.0 if quick else 30.0) if what_ifs else []
        raw["what_if"] = experiments
        base = experiments[0]["cpu_percent"] if experiments else None
        for e in experiments:
            rows.append(
                row(
                    f"console idle, what-if: {e['label']}",
                    e["cpu_percent"],
                    "% of one core",
                    ratio=(base / e["cpu_percent"]) if base and e["cpu_percent"] else None,
                    ratio_label="× less CPU than as is",
                    note=(
                        f"{e['layout_passes_per_s']} full layout passes/s, {e['refresh_layout_per_s']} refresh(layout)/s, "
                        f"{e['refresh_per_s']} refresh/s; layout requests by: "
                        + ", ".join(f"{k} {v}" for k, v in e["refresh_layout_by_class_per_s"][:4])
                    ),
                )
            )

        # 4. imports
        imp = import_times()
        raw["imports"] = imp
        rows.append(
            row(
                "imports of the TUI (entry point, app, monitor, sources)",
                imp["total_ms"],
                "ms",
                note="; ".join(f"{p} {ms} ms" for p, ms in imp["by_package_ms"][:6]),
            )
        )
    finally:
        tmux.kill()
    return {
        "title": "Profile",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
