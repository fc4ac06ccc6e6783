"""The console's cost when idle: CPU % of one core and RSS of the running
console (default refresh intervals, real terminal: tmux 160×48), with the
stack up and 7 (the stack alone), 20 and 50 containers in the project; the
same, **in the same windows**, for its peers, each in a tmux of its own at
the same size: glances' containers view at the console's stats interval
(``glances -t 1``), ``docker stats`` of the same containers (the stats
panel's share) and ``pg_activity`` at the database interval (the database
panel's share). Ratios stackdeck ÷ peer for CPU and RSS.

CPU is read from /proc (utime + stime of the process and its children) over
consecutive windows after a warm-up; the figure is the median window, the
max window is in the note. Also recorded: dockerd's CPU over the same
windows (streams cost the daemon too)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    REPO,
    Stack,
    Watched,
    console_command,
    console_env,
    load_average,
    log,
    rnd,
    row,
    safe_ratio,
    sample_together,
)
from bench.screen import stack_services, watch

CPU_TARGET = 2.0
"""At 50 containers (issue 15); 1 % at the stack's own 7."""
RSS_TARGET = 100_000_000  # 100 MB = 95.4 MiB (issue 15)
STATS_INTERVAL_S = 1
"""The console's default stats interval (``[refresh] stats``): glances runs at it
(checked against the console's defaults by tests/unit/bench)."""
PACKAGES = {
    "docker stats": "docker.io",
    "glances": "glances python3-docker",
    "pg_activity": "pg-activity",
}
"""Debian packages of the peers, for the message when one is missing."""
DATABASE_INTERVAL_S = 5
"""The console's default database interval (``[refresh] database``): pg_activity runs at it."""


def _shows(*words: str) -> Callable[[str, list[str]], list[str]]:
    """A data check: the screen shows every one of ``words`` (case-insensitive)."""
    return lambda screen, _services: [w for w in words if w.lower() not in screen.lower()]


_FIGURE = re.compile(r"\b\d+\.\d+%")


def _shows_figure(screen: str, _services: list[str]) -> list[str]:
    """docker stats' data check: a CPU figure (``12.34%``) on screen."""
    return [] if _FIGURE.search(screen) else ["a CPU figure"]


def peers(
    stack: Stack, names: list[str]
) -> dict[str, tuple[list[str], Callable[[str, list[str]], list[str]]]]:
    """name -> (command, data check) of each peer measured beside the console."""
    return {
        # its header scrolls off the 48 rows with 50 containers: a CPU figure
        "docker stats": (["docker", "stats", *names], _shows_figure),
        "glances": (["glances", "-t", str(STATS_INTERVAL_S)], _shows("CONTAINERS")),
        "pg_activity": (
            [
                "pg_activity",
                "--refresh",
                str(DATABASE_INTERVAL_S),
                "-h",
                f"{stack.run_dir}/postgresql",
                "-U",
                "postgres",
                "-d",
                "investment_db",
            ],
            _shows("PID"),
        ),
    }


def cpu_target(n: int, base: int) -> float | None:
    """Issue 15's idle CPU target at ``n`` containers: 1 % with the stack's
    own ``base`` containers, 2 % with 50 (and, between, at most 2 %)."""
    if n <= base:
        return 1.0
    return 2.0


def ratio_rows(
    n: int, console: dict[str, Any], measured: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per peer: the console's CPU beside it, in the same windows,
    with stackdeck ÷ peer for CPU and RSS (below 1: stackdeck costs less)."""
    rows = []
    for name, other in measured.items():
        metric = f"idle CPU beside {name}, {n} containers"
        if other.get("missing") or other.get("no_data"):
            why = other.get("missing") or other.get("no_data")
            rows.append(
                row(
                    metric,
                    console["cpu_median"],
                    "% of one core",
                    peer_name=name,
                    target="lower than glances" if name == "glances" else None,
                    met=False if name == "glances" else None,
                    note=f"PEER NOT MEASURED: {why}",
                )
            )
            continue
        cpu_ratio = safe_ratio(console["cpu_median"], other["cpu_median"])
        rss_ratio = safe_ratio(console["rss_max_mib"], other["rss_max_mib"])
        lower = (
            console["cpu_median"] is not None
            and other["cpu_median"] is not None
            and console["cpu_median"] < other["cpu_median"]
        )
        rows.append(
            row(
                metric,
                console["cpu_median"],
                "% of one core",
                peer=other["cpu_median"],
                peer_name=f"{name}, same windows",
                ratio=rnd(cpu_ratio, 2),
                ratio_label="× (stackdeck ÷ peer)",
                target="lower than glances" if name == "glances" else None,
                met=lower if name == "glances" else None,
                note=(
                    f"stackdeck ÷ {name}: CPU {rnd(cpu_ratio, 2)}, RSS {rnd(rss_ratio, 2)} "
                    f"({console['rss_max_mib']} vs {other['rss_max_mib']} MiB); "
                    f"windows {other['cpu_windows']}" + ("; PEER DIED" if other.get("died") else "")
                ),
            )
        )
    return rows


def _pg_password() -> dict[str, str]:
    """pg_activity (libpq) reads PGPASSWORD: the stack's own, from the checkout's .env."""
    from console.core.config import read_env_file

    password = read_env_file(REPO / ".env").get("POSTGRES_PASSWORD")
    return {"PGPASSWORD": password} if password else {}


def bench(
    stack: Stack, scale: Callable[[int], int], levels: list[int], *, quick: bool = False
) -> dict[str, Any]:
    """Per level: the console and every peer started at once, each in its own
    tmux at 160×48, and sampled over the same windows."""
    load_before = load_average()
    warm_s, windows, window_s = (3.0, 4, 3.0) if quick else (8.0, 6, 5.0)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    raw: dict[str, Any] = {
        "warm_s": warm_s,
        "windows": windows,
        "window_s": window_s,
        "stats_interval_s": STATS_INTERVAL_S,
        "together": True,
    }
    services = stack_services(stack)
    base = len([c for c in stack.project_containers() if "_benchidle_" not in c])
    for level in levels:
        n = scale(level)
        names = stack.project_containers()
        time.sleep(2)
        env = console_env(stack)
        programs: list[Watched] = []
        measured: dict[str, dict[str, Any]] = {}
        checks: dict[str, Callable[[str, list[str]], list[str]]] = {}
        try:
            log(f"idle: {n} containers: the console, {', '.join(peers(stack, names))} together")
            programs.append(Watched("stackdeck", console_command(), env))
            for name, (command, shows) in peers(stack, names).items():
                if shutil.which(command[0]) is None:
                    why = f"{command[0]} is not installed (bash bench/run.sh installs it as root: {PACKAGES[name]})"
                    log(f"idle: PEER MISSING: {why}")
                    warnings.append(why)
                    measured[name] = {"missing": why}
                    continue
                programs.append(Watched(name, command, {**env, **_pg_password()}))
                checks[name] = shows
            t0 = programs[0].t_start
            console_ready = watch(programs[0].tmux, t0, services, timeout=40)
            for prog in programs[1:]:
                seen = watch(
                    prog.tmux,
                    prog.t_start,
                    [],
                    timeout=25,
                    data_check=checks[prog.name],
                    paint_check=lambda _s: True,
                )
                if seen.data_s is None:
                    why = (
                        f"{prog.name} never showed its data view in 25 s "
                        f"(missing {seen.missing}); last screen: {seen.last_screen[-400:]!r}"
                    )
                    log(f"idle: PEER NOT READY: {why}")
                    warnings.append(why)
                    measured[prog.name] = {"no_data": why}
            if console_ready.data_s is None:
                warnings.append(
                    f"the console never showed live data at {n} containers (missing {console_ready.missing})"
                )
            time.sleep(warm_s)
            live = [p for p in programs if p.name not in measured]
            shared = sample_together(live, windows=windows, window_s=window_s)
            for prog in live:
                measured[prog.name] = prog.summary()
        finally:
            for prog in programs:
                prog.stop()
        console = measured.pop("stackdeck")
        console["ready_s"] = rnd(console_ready.data_s)
        raw[str(n)] = {"containers": n, "console": console, "peers": measured, **shared}
        target = cpu_target(n, base)
        rows.append(
            row(
                f"idle CPU, {n} containers",
                console["cpu_median"],
                "% of one core",
                target=f"< {target:g} %" if target else None,
                met=console["cpu_median"] is not None and console["cpu_median"] < target
                if target
                else None,
                note=f"median of {windows} windows of {window_s:g} s, max {console['cpu_max']} %; "
                f"threads {console['threads']}; load {console['load']}",
            )
        )
        rows.extend(ratio_rows(n, console, measured))
        rows.append(
            row(
                f"idle RSS, {n} containers",
                console["rss_max_mib"],
                "MiB",
                target="< 100 MB (95.4 MiB)",
                met=console["rss_max_mib"] is not None
                and console["rss_max_mib"] * 2**20 < RSS_TARGET,
                note="max over the windows",
            )
        )
    return {
        "title": "Console cost when idle",
        "rows": rows,
        "raw": raw,
        "warnings": warnings,
        "load_before": load_before,
        "load_after": load_average(),
    }
