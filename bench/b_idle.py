"""The console's cost when idle: CPU % of one core and RSS of the running
console (default refresh intervals, real terminal: tmux 160×48), with the
stack up and 7 (the stack alone), 20 and 50 containers in the project; the
same for ``docker stats`` of the same containers in the same terminal.

CPU is read from /proc (utime + stime of the process and its children) over
consecutive windows after a warm-up; the figure is the median window, the
max window is in the note. Also recorded: dockerd's CPU over the same
windows (streams cost the daemon too) and the tmux server's (the terminal's
cost of drawing what the program sends)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from bench.common import (
    CpuMeter,
    Stack,
    Tmux,
    children_of,
    console_command,
    console_env,
    dockerd_pids,
    load_average,
    log,
    median,
    rnd,
    row,
    rss_bytes,
    safe_ratio,
    terminate,
)
from bench.screen import stack_services, watch

CPU_TARGET = 2.0
"""At 50 containers (issue 15); 1 % at the stack's own 7."""
RSS_TARGET = 100_000_000  # 100 MB = 95.4 MiB (issue 15)
STATS_INTERVAL_S = 1
"""The console's default stats interval (``[refresh] stats``): glances runs at it."""
DATABASE_INTERVAL_S = 5
"""The console's default database interval (``[refresh] database``): pg_activity runs at it."""


def _shows(*words: str) -> Callable[[str, list[str]], list[str]]:
    """A data check: the screen shows every one of ``words`` (case-insensitive)."""
    return lambda screen, _services: [w for w in words if w.lower() not in screen.lower()]


def peers(
    stack: Stack, names: list[str]
) -> dict[str, tuple[list[str], Callable[[str, list[str]], list[str]]]]:
    """name -> (command, data check) of each peer measured beside the console."""
    return {
        "docker stats": (["docker", "stats", *names], _shows("CONTAINER")),
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


def _measure(
    tmux: Tmux,
    command: list[str],
    env: dict[str, str],
    ready: Callable[[float], Any],
    *,
    warm_s: float,
    windows: int,
    window_s: float,
) -> dict[str, Any]:
    t0 = time.monotonic()
    pid = tmux.start(command, env)
    times = ready(t0)
    time.sleep(warm_s)
    tree = lambda: [pid, *children_of(pid)]  # noqa: E731
    proc = CpuMeter(tree)
    daemon = CpuMeter(dockerd_pids)
    server_pid = tmux.server_pid()
    term = CpuMeter(lambda: [server_pid] if server_pid else [])
    cpu, dcpu, tcpu, rss = [], [], [], []
    for _ in range(windows):
        time.sleep(window_s)
        cpu.append(proc.window().cpu_percent)
        dcpu.append(daemon.window().cpu_percent)
        tcpu.append(term.window().cpu_percent)
        rss.append(sum(rss_bytes(p) or 0 for p in tree()))
    dead = tmux.pane_dead()
    screen = tmux.capture() if dead else ""
    terminate(pid)
    tmux.kill()
    return {
        "ready_s": rnd(times.data_s),
        "cpu_windows": [rnd(c, 2) for c in cpu],
        "cpu_median": rnd(median(cpu), 2),
        "cpu_max": rnd(max(cpu), 2),
        "rss_max_mib": rnd(max(rss) / 2**20, 1),
        "rss_last_mib": rnd(rss[-1] / 2**20, 1),
        "dockerd_cpu_median": rnd(median(dcpu), 2),
        "tmux_cpu_median": rnd(median(tcpu), 2),
        "died": dead,
        "screen_if_died": screen[-3000:],
    }


def bench(
    stack: Stack, scale: Callable[[int], int], levels: list[int], *, quick: bool = False
) -> dict[str, Any]:
    load_before = load_average()
    warm_s, windows, window_s = (3.0, 4, 3.0) if quick else (8.0, 6, 5.0)
    tmux = Tmux("idle")
    rows = []
    raw: dict[str, Any] = {"warm_s": warm_s, "windows": windows, "window_s": window_s}
    services = stack_services(stack)
    try:
        for level in levels:
            n = scale(level)
            names = stack.project_containers()
            time.sleep(2)
            log(f"idle: {n} containers: console")
            console = _measure(
                tmux,
                console_command(),
                console_env(stack),
                lambda t0: watch(tmux, t0, services, timeout=30),
                warm_s=warm_s,
                windows=windows,
                window_s=window_s,
            )
            measured: dict[str, dict[str, Any]] = {}
            for name, (command, shows) in peers(stack, names).items():
                if name == "pg_activity" and level != levels[0]:
                    continue  # the database's peer: the containers' count is not its load
                if shutil.which(command[0]) is None:
                    log(f"idle: {name} is not installed: not measured")
                    measured[name] = {"missing": True}
                    continue
                log(f"idle: {n} containers: {name}")
                measured[name] = _measure(
                    tmux,
                    command,
                    console_env(stack),
                    lambda t0, shows=shows: watch(  # type: ignore[misc]
                        tmux, t0, [], timeout=20, data_check=shows, paint_check=lambda s: True
                    ),
                    warm_s=warm_s,
                    windows=windows,
                    window_s=window_s,
                )
            peer = measured["docker stats"]
            raw[str(n)] = {
                "containers": n,
                "console": console,
                "docker_stats": peer,
                "peers": measured,
            }
            for name in ("docker stats", "glances", "pg_activity"):
                other = measured.get(name)
                if other is None:
                    continue
                if other.get("missing"):
                    rows.append(
                        row(
                            f"idle CPU beside {name}, {n} containers",
                            console["cpu_median"],
                            "% of one core",
                            peer_name=name,
                            note=f"{name} is not installed here",
                        )
                    )
                    continue
                rows.append(
                    row(
                        f"idle CPU beside {name}, {n} containers",
                        console["cpu_median"],
                        "% of one core",
                        peer=other["cpu_median"],
                        peer_name=f"{name} (same terminal, same interval)",
                        ratio=rnd(safe_ratio(console["cpu_median"], other["cpu_median"]), 2),
                        ratio_label="× (stackdeck ÷ peer)",
                        target=f"lower than {name}" if name == "glances" else None,
                        met=(
                            console["cpu_median"] is not None
                            and other["cpu_median"] is not None
                            and console["cpu_median"] < other["cpu_median"]
                        )
                        if name == "glances"
                        else None,
                        note=(
                            f"stackdeck ÷ {name} = {rnd(safe_ratio(console['cpu_median'], other['cpu_median']), 2)}; "
                            f"RSS {console['rss_max_mib']} MiB vs {other['rss_max_mib']} MiB; "
                            f"{name} max window {other['cpu_max']} %"
                            + ("; PEER DIED" if other["died"] else "")
                        ),
                    )
                )
            rows.append(
                row(
                    f"idle RSS, {n} containers",
                    console["rss_max_mib"],
                    "MiB",
                    peer=peer["rss_max_mib"],
                    peer_name="docker stats (streaming)",
                    ratio=rnd(safe_ratio(console["rss_max_mib"], peer["rss_max_mib"]), 2),
                    ratio_label="× (stackdeck ÷ peer)",
                    target="< 100 MB (95.4 MiB)",
                    met=console["rss_max_mib"] is not None
                    and console["rss_max_mib"] * 2**20 < RSS_TARGET,
                    note="max over the windows",
                )
            )
    finally:
        tmux.kill()
    return {
        "title": "Console cost when idle",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
