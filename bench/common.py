"""What the benchmarks share: the stack under test, process sampling from
/proc, a private tmux server to run the console in a real terminal, idle
containers to grow the project, and small statistics helpers. The stack
helper, the load loop and the machine description are the suite's own
(tests/stack.py, tests/load.py, tests/machine.py).

Of the console, only what those import is imported here (its ``.env`` reader
and ``console.core.stack``: one statement of container names and folders);
the benchmarks drive the console as a process (or import it lazily where a
benchmark needs its sources), so the harness keeps working while it changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.stack import Stack as Stack

REPO = Path(__file__).resolve().parents[1]
BENCH_LABEL = "io.stackdeck.bench"
"""Label on every container a benchmark starts (value: the stack name), so
cleanup finds exactly those and nothing else."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- statistics --------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[k]


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- processes ---------------------------------------------------------------


def run(
    args: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=check, env=env
    )


# --- /proc sampling ----------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads), in clock ticks."""
    f = _stat_fields(pid)
    if f is None:
        return None
    return int(f[11]) + int(f[12])


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime of each thread of a process, by native thread id."""
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(tid)] = int(f[11]) + int(f[12])
    return out


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = _stat_fields(int(entry))
        if f is not None:
            parent[int(entry)] = int(f[1])
    out: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


def pids_named(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    out.append(int(entry))
            except OSError:
                pass
    return out


@dataclass
class CpuWindow:
    seconds: float
    cpu_percent: float
    """Percent of one core over the window (100 = one core busy)."""


class CpuMeter:
    """CPU time of a set of processes between two reads."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self._pids = pids
        self._t = time.monotonic()
        self._ticks = self._read()

    def _read(self) -> dict[int, int]:
        out = {}
        for pid in self._pids():
            t = cpu_ticks(pid)
            if t is not None:
                out[pid] = t
        return out

    def window(self) -> CpuWindow:
        now = time.monotonic()
        ticks = self._read()
        used = sum(t - self._ticks.get(pid, 0) for pid, t in ticks.items() if pid in self._ticks)
        # a process that appeared inside the window counts from zero
        used += sum(t for pid, t in ticks.items() if pid not in self._ticks)
        seconds = now - self._t
        self._t, self._ticks = now, ticks
        return CpuWindow(seconds, used / CLK_TCK / seconds * 100.0 if seconds > 0 else 0.0)


def dockerd_pids() -> list[int]:
    return pids_named("dockerd")


# --- a private tmux server ---------------------------------------------------


class Tmux:
    """One session on a private tmux server (``-L``), so the benchmarks never
    touch anyone's tmux, and the terminal they draw into is real (xterm-like,
    fixed size)."""

    def __init__(self, label: str, width: int = 160, height: int = 48) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (apt-get install tmux)")
        self.server = f"sdbench-{label}-{os.getpid()}"
        self.session = "bench"
        self.width, self.height = width, height
        self.pane_pid: int | None = None

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["tmux", "-L", self.server, *args], check=check, timeout=30)

    def start(self, command: Sequence[str], env: dict[str, str], cwd: Path = REPO) -> int:
        """Start ``command`` in a fresh pane (``exec``: the pane's pid is the command's)."""
        self.kill()
        exports = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k.isidentifier()
        )
        line = f"cd {shlex.quote(str(cwd))} && exec env {exports} {shlex.join(list(command))}"
        self._tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            "sh",
            "-c",
            line,
        )
        self._tmux("set-option", "-t", self.session, "remain-on-exit", "on", check=False)
        out = self._tmux("display-message", "-p", "-t", self.session, "#{pane_pid}").stdout.strip()
        self.pane_pid = int(out)
        return self.pane_pid

    def capture(self) -> str:
        r = self._tmux("capture-pane", "-p", "-t", self.session, check=False)
        return r.stdout

    def send_keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys, check=False)

    def pane_dead(self) -> bool:
        r = self._tmux("display-message", "-p", "-t", self.session, "#{pane_dead}", check=False)
        return r.stdout.strip() == "1"

    def server_pid(self) -> int | None:
        r = self._tmux("display-message", "-p", "#{pid}", check=False)
        return int(r.stdout.strip()) if r.stdout.strip().isdigit() else None

    def kill(self) -> None:
        run(["tmux", "-L", self.server, "kill-server"], check=False, timeout=30)
        self.pane_pid = None
        # the server leaves its socket behind: remove ours
        base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        with contextlib.suppress(OSError):
            (base / self.server).unlink()


def terminate(pid: int | None, timeout: float = 5.0) -> None:
    """SIGTERM then SIGKILL one process we started."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or (_stat_fields(pid) or ["", "Z"])[0] == "Z":
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


# --- programs side by side (issue 15: the console beside its peers) ------------


def split_ticks(pid: int) -> dict[str, int]:
    """CPU ticks of a process's main thread (the UI's event loop, for the
    console) and of its other threads together."""
    out: dict[str, int] = {}
    for tid, ticks in thread_ticks(pid).items():
        name = "main (UI loop)" if tid == pid else "other threads"
        out[name] = out.get(name, 0) + ticks
    return out


class Watched:
    """One program in its own private tmux server (160×48), its process tree
    sampled from /proc: several of them run at once and are read over the
    same windows (:func:`sample_together`), so each figure of a peer
    comparison sees the same load. Used by ``b_idle`` and
    ``tools/ab_idle.py --together``."""

    def __init__(
        self, name: str, command: Sequence[str], env: dict[str, str], cwd: Path = REPO
    ) -> None:
        self.name = name
        slug = "".join(c if c.isalnum() else "_" for c in name)
        self.tmux = Tmux(f"tg-{slug}")
        self.t_start = time.monotonic()
        self.pid = self.tmux.start(list(command), env, cwd=cwd)
        self.cpu: list[float] = []
        self.rss: list[int] = []
        self.load: list[float] = []

    def tree(self) -> list[int]:
        return [self.pid, *children_of(self.pid)]

    def begin(self) -> None:
        self._meter = CpuMeter(self.tree)
        self._t0, self._th0 = time.monotonic(), split_ticks(self.pid)
        self.load.append(load_average()[0])

    def window(self) -> float:
        """CPU % of one core since the last window (or :meth:`begin`)."""
        cpu = self._meter.window().cpu_percent
        self.cpu.append(cpu)
        self.rss.append(sum(rss_bytes(p) or 0 for p in self.tree()))
        return cpu

    def threads(self) -> dict[str, float]:
        """CPU % of one core by thread group since :meth:`begin`."""
        seconds = time.monotonic() - self._t0
        now = split_ticks(self.pid)
        return {
            k: round(100 * (v - self._th0.get(k, 0)) / CLK_TCK / seconds, 2)
            for k, v in sorted(now.items())
            if seconds > 0
        }

    def summary(self) -> dict[str, Any]:
        self.load.append(load_average()[0])
        dead = self.tmux.pane_dead()
        screen = self.tmux.capture()
        return {
            "cpu_windows": [rnd(c, 2) for c in self.cpu],
            "cpu_median": rnd(median(self.cpu), 2),
            "cpu_max": rnd(max(self.cpu), 2) if self.cpu else None,
            "rss_max_mib": rnd(max(self.rss) / 2**20, 1) if self.rss else None,
            "rss_last_mib": rnd(self.rss[-1] / 2**20, 1) if self.rss else None,
            "threads": self.threads(),
            "load": self.load,
            "died": dead,
            "screen_if_died": screen[-3000:] if dead else "",
        }

    def stop(self) -> None:
        terminate(self.pid)
        self.tmux.kill()


def sample_together(
    programs: Sequence[Watched], *, windows: int, window_s: float
) -> dict[str, list[float]]:
    """Read every program over the same ``windows`` windows of ``window_s``;
    also dockerd's and the load average over them (returned)."""
    for prog in programs:
        prog.begin()
    daemon = CpuMeter(dockerd_pids)
    dcpu, load = [], []
    for _ in range(windows):
        time.sleep(window_s)
        for prog in programs:
            prog.window()
        dcpu.append(daemon.window().cpu_percent)
        load.append(load_average()[0])
    return {"dockerd_cpu": [rnd(x, 2) or 0.0 for x in dcpu], "load1": load}


# --- the console as a process -------------------------------------------------


def console_command() -> list[str]:
    """How to start the console the way ``stackdeck`` (no arguments) does:
    the console script's entry point, run from this checkout so a clean
    clone works without ``pip install``; before the CLI exists, the UI module."""
    if (REPO / "console" / "cli.py").exists():
        return [sys.executable, "-c", "import sys; from console.cli import main; sys.exit(main())"]
    return [sys.executable, "-m", "console.ui"]


def _empty_dir(name: str) -> Path:
    path = Path("/tmp") / f"sdbench-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def console_env(stack: Stack, **extra: str) -> dict[str, str]:
    """Environment of a console started by a benchmark: the stack's
    variables, a real terminal type, no colour surprises, this checkout first
    on the path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "DOCKER_HOST")
    }
    env.update(
        TERM="xterm-256color",
        COLORTERM="truecolor",
        PYTHONPATH=str(REPO),
        STACK_NAME=stack.name,
        HTTP_PORT=str(stack.http_port),
        RUN_DIR=str(stack.run_dir),
        STACKDECK_STATE_DIR=str(stack.state_dir),
        # no user config.toml: the benchmark measures the defaults
        XDG_CONFIG_HOME=str(_empty_dir("noconfig")),
        TEXTUAL_ANIMATIONS="none",
    )
    env.update(extra)
    return env


# --- idle containers ----------------------------------------------------------


IDLE_IMAGE = os.environ.get("BASE_IMAGE") or "debian:trixie-slim"
"""What scripts/images.sh built the stack from (BASE_IMAGE, as there)."""


def run_probe(
    stack: Stack, name: str, args: list[str], duration: float, grace: float, **extra_env: str
) -> tuple[dict[str, Any], str]:
    """``bench.tools.probe_app`` with ``args`` for ``duration`` s in a tmux of
    its own (``name``), waited for ``grace`` s more, then stopped: what it
    wrote (``{}`` when nothing or not JSON) and the screen it left."""
    out = Path(tempfile.mkstemp(prefix=f"sdbench-{name}-", suffix=".json")[1])
    tmux = Tmux(name)
    try:
        pid = tmux.start(
            [
                sys.executable,
                "-m",
                "bench.tools.probe_app",
                "--duration",
                str(duration),
                *args,
                "--out",
                str(out),
            ],
            console_env(stack, **extra_env),
        )
        deadline = time.monotonic() + duration + grace
        while time.monotonic() < deadline and not tmux.pane_dead():
            time.sleep(0.5)
        screen = tmux.capture()
        if not tmux.pane_dead():
            terminate(pid)
        try:
            data = json.loads(out.read_text() or "{}")
        except json.JSONDecodeError:
            data = {}
        return data, screen
    finally:
        tmux.kill()
        out.unlink(missing_ok=True)


def cleanup_idle(stack: Stack) -> int:
    """Remove every container a benchmark started for this stack (retried:
    the engine may be briefly away, e.g. restarted by someone else's test)."""
    for attempt in range(10):
        r = run(
            ["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={stack.name}"], check=False
        )
        if r.returncode == 0:
            ids = r.stdout.split()
            if ids:
                run(["docker", "rm", "-f", *ids], check=False, timeout=300)
            return len(ids)
        time.sleep(min(2.0 * (attempt + 1), 10.0))
    log(
        f"could not list bench containers: {r.stderr.strip()}; remove them with: docker rm -f $(docker ps -aq --filter label={BENCH_LABEL}={stack.name})"
    )
    return 0


def _start_idle(stack: Stack, i: int) -> None:
    run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            f"{stack.name}_benchidle_{i:02d}",
            "--label",
            f"com.docker.compose.project={stack.name}",
            "--label",
            f"com.docker.compose.service=bench-idle-{i:02d}",
            "--label",
            f"{BENCH_LABEL}={stack.name}",
            "--network",
            "none",
            "--log-driver",
            "none",
            "--memory",
            "16m",
            IDLE_IMAGE,
            "sleep",
            "infinity",
        ],
        timeout=120,
    )


def scale_idle(stack: Stack, total: int) -> int:
    """Add or remove idle containers so the project has ``total`` running
    containers (or as close as the stack allows); returns the count reached."""
    base = [n for n in stack.project_containers() if "_benchidle_" not in n]
    idle = sorted(n for n in stack.project_containers() if "_benchidle_" in n)
    want = max(0, total - len(base))
    if len(idle) > want:
        extra = idle[want:]
        run(["docker", "rm", "-f", *extra], check=False, timeout=300)
    elif len(idle) < want:
        have = {int(n.rsplit("_", 1)[1]) for n in idle}
        todo = [i for i in range(1, 1000) if i not in have][: want - len(idle)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: _start_idle(stack, i), todo))
    return len(stack.project_containers())


@contextlib.contextmanager
def idle_containers(stack: Stack) -> Iterator[Callable[[int], int]]:
    """``with idle_containers(stack) as scale: scale(20)``; always cleaned up."""
    cleanup_idle(stack)
    try:
        yield lambda total: scale_idle(stack, total)
    finally:
        n = cleanup_idle(stack)
        if n:
            log(f"removed {n} idle bench containers")


def dump_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


# --- result rows ----------------------------------------------------------------


def row(
    metric: str,
    value: float | int | str | None,
    unit: str = "",
    *,
    peer: float | int | str | None = None,
    peer_name: str | None = None,
    ratio: float | None = None,
    ratio_label: str | None = None,
    target: str | None = None,
    met: bool | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One line of a results table. ``ratio`` is always phrased so that more
    than 1 means stackdeck does better than the peer (``ratio_label`` says how)."""
    return {
        "metric": metric,
        "value": value,
        "unit": unit,
        "peer": peer,
        "peer_name": peer_name,
        "ratio": rnd(ratio, 2),
        "ratio_label": ratio_label,
        "target": target,
        "met": met,
        "note": note,
    }


def safe_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def console_settings(stack: Stack, **overrides: Any) -> Any:
    """``console.core.config.Settings`` for the stack under test
    (:meth:`Stack.settings`, imported lazily), with the stack's variables in
    this process's environment and no user config.toml."""
    os.environ.update(
        STACK_NAME=stack.name,
        HTTP_PORT=str(stack.http_port),
        RUN_DIR=str(stack.run_dir),
        STACKDECK_STATE_DIR=str(stack.state_dir),
        XDG_CONFIG_HOME=str(_empty_dir("noconfig")),
    )
    os.environ.pop("STACKDECK_CONFIG", None)
    return stack.settings(**overrides)
