"""Where the console's time goes, with the stack up: py-spy samples of the
real console process (tmux 160×48) while it idles, and of its start-up, plus
``python -X importtime`` of the console's imports. Produces tables (no
targets): CPU share per thread, the hottest functions (self and inclusive),
the import cost by package. The collapsed stacks are saved next to the
results for anyone who wants a flame graph (``flamegraph.pl`` or speedscope)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
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


def analyse(collapsed: str, rate: int, seconds: float, top: int = 25) -> dict[str, Any]:
    """Aggregate py-spy ``--format raw`` output (``frame;frame;... count``,
    root first; with ``--threads`` the root is the thread)."""
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
        tname = re.sub(r"\s*\(0x[0-9a-f]+\)", "", thread)
        tname = re.sub(r"stackdeck-stats-.*", "stackdeck-stats-*", tname)
        tname = re.sub(r"stackdeck-docker_\d+", "stackdeck-docker_*", tname)
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
        "cpu_percent_of_one_core": pct(total),
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


def import_times() -> dict[str, Any]:
    """``python -X importtime`` of the console's entry point: total and by top package."""
    target = "console.cli" if (REPO / "console" / "cli.py").exists() else "console.ui.app"
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


def bench(stack: Stack, out_dir: Path, stamp: str, *, quick: bool = False) -> dict[str, Any]:
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
                "--threads",
                "--format",
                "raw",
                "-o",
                str(idle_file),
            ],
            timeout=seconds + 60,
            check=False,
        )
        terminate(pid)
        tmux.kill()
        if idle_file.exists():
            idle = analyse(idle_file.read_text(), rate, seconds)
            raw["idle"] = idle
            rows.append(
                row(
                    "console idle: CPU seen by py-spy",
                    idle["cpu_percent_of_one_core"],
                    "% of one core",
                    note="non-idle samples of every thread / (rate × duration); hottest: "
                    + "; ".join(f"{f} {p} %" for f, _c, p in idle["self"][:3]),
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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not start_file.exists():
            time.sleep(0.2)
        time.sleep(1)
        tmux.kill()
        if start_file.exists():
            st = analyse(start_file.read_text(), srate, elapsed)
            raw["startup"] = {**st, "seconds_to_live_data": rnd(times.data_s)}
            rows.append(
                row(
                    "console start-up: CPU until live data",
                    rnd(st["samples"] / srate, 2),
                    "CPU-seconds",
                    note=f"over {rnd(elapsed, 2)} s wall (live data at {rnd(times.data_s)} s); hottest inclusive: "
                    + "; ".join(
                        f"{f} {rnd(c / srate, 2)} s" for f, c, _p in st["inclusive_console"][:3]
                    ),
                )
            )
        # 3. imports
        imp = import_times()
        raw["imports"] = imp
        rows.append(
            row(
                f"import {imp['target']}",
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
