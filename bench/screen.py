"""Reading the console's screen from ``tmux capture-pane``: has it painted,
and does it show live data yet?

"First full screen with live data" means all of these are on screen at once:

* every running service of the stack by name (the containers panel, fed by
  the engine), or, when the panel has more rows than it shows (17 containers
  at 160×48 scroll), its title counting every one running (``17/17
  running``, at least one per service);
* an HTTP 200 from a health endpoint (the health panel, fed through nginx);
* a CPU figure in the stats panel (fed by the stats streams: it needs two
  daemon samples, about 1-2 s after the streams open);

and no panel still says it is waiting for data. Once Prometheus holds
history of the stack (issue 15), also:

* the stats chart back-filled from it: its caption names the range it shows
  from Prometheus (``· last 1h (Prometheus)``, :data:`BACKFILL`) instead of
  the live samples counted since start (``· last 3 samples``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import Stack, Tmux, run

WAITING = ("waiting for data", "waiting…", "loading")
_CPU = re.compile(r"\b\d{1,3}\.\d\s?%?")
_HTTP_OK = re.compile(r"\b200\b")
BACKFILL = "(Prometheus)"
"""What the stats chart's caption says once its history came from Prometheus."""
_ALL_RUNNING = re.compile(r"Containers · (\d+)/(\d+) running")


def stack_services(stack: Stack) -> list[str]:
    """Compose service names of the stack's running containers (not the bench's idle ones)."""
    out = run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={stack.name}",
            "--format",
            '{{.Label "com.docker.compose.service"}}',
        ]
    ).stdout.split()
    return sorted(s for s in set(out) if not s.startswith("bench-idle"))


def painted(screen: str) -> bool:
    return "stackdeck" in screen.lower()


def missing_live_data(screen: str, services: list[str], *, history: bool = False) -> list[str]:
    """What is still missing before the screen counts as full with live data
    (``history``: Prometheus holds history, so the chart must show it)."""
    missing = [s for s in services if s not in screen]
    counted = _ALL_RUNNING.search(screen)
    if counted and counted[1] == counted[2] and int(counted[1]) >= len(services):
        missing = []  # every container listed, some below the panel's fold
    if not _HTTP_OK.search(screen):
        missing.append("health 200")
    if not _CPU.search(screen):
        missing.append("cpu figure")
    low = screen.lower()
    missing.extend(w for w in WAITING if w in low)
    if history and BACKFILL not in screen:
        missing.append("chart back-fill")
    return missing


def with_history(screen: str, services: list[str]) -> list[str]:
    """:func:`missing_live_data` once Prometheus holds history."""
    return missing_live_data(screen, services, history=True)


@dataclass
class ScreenTimes:
    paint_s: float | None = None
    data_s: float | None = None
    missing: list[str] | None = None
    last_screen: str = ""
    died: bool = False
    first_seen: dict[str, float] | None = None
    """When each element of "live data" was first on screen (``containers``:
    every service listed; ``health 200``; ``cpu figure``; ``no panel
    waiting``; ``chart back-fill``, counted when not asked for), seconds
    from the start."""


def watch(
    tmux: Tmux,
    t0: float,
    services: list[str],
    *,
    timeout: float = 30.0,
    every: float = 0.02,
    data_check: Callable[[str, list[str]], list[str]] = missing_live_data,
    paint_check: Callable[[str], bool] = painted,
) -> ScreenTimes:
    """Poll the pane until it shows live data (or ``timeout``); times from ``t0``."""
    out = ScreenTimes()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        screen = tmux.capture()
        now = time.monotonic() - t0
        if out.paint_s is None and paint_check(screen):
            out.paint_s = now
        if out.paint_s is not None:
            missing = data_check(screen, services)
            out.missing = missing
            seen = out.first_seen if out.first_seen is not None else {}
            out.first_seen = seen
            groups = {
                "containers": any(m in services for m in missing),
                "health 200": "health 200" in missing,
                "cpu figure": "cpu figure" in missing,
                "no panel waiting": any(m in WAITING for m in missing),
                "chart back-fill": "chart back-fill" in missing,
            }
            for name, absent in groups.items():
                if not absent and name not in seen:
                    seen[name] = round(now, 3)
            if not missing:
                out.data_s = now
                out.last_screen = screen
                return out
        out.last_screen = screen
        if tmux.pane_dead():
            out.died = True
            return out
        time.sleep(every)
    return out
