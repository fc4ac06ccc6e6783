"""How long ``q`` takes to leave: key press to process exit of the real TUI.

Each quit: the console (``python -m console`` from a checkout) starts in a
private tmux server at 160x48, shows its dashboard, runs ``--settle`` seconds
(its sources are then in their calls), gets ``q`` from ``tmux send-keys``;
the figure is the time from just before the key is sent to the moment the
pane's shell, right after the console's process ended, writes the time
(``date +%s.%N``). Checkouts given together are measured in turn, one quit
each, so they share the machine's load.

``--mode stack``: against a running stack, with the suite's load loop
(``tests/load.py``: 6 keep-alive clients, no pause, 127.0.0.1 only, bounded)
on its nginx during the whole run. ``--mode hung``: no stack; the Docker
engine, PostgreSQL and Redis are ``slowsock blackhole`` sockets that accept
and never answer (every source's call is stuck).

    python3 -m bench.tools.quit_timer --checkouts /tmp/base,. --runs 10 \\
        --mode stack --stack sdh5 --http-port 18150
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tmux(server: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", server, *args], capture_output=True, text=True, timeout=30
    ).stdout


def one_quit(checkout: Path, env: dict[str, str], args: argparse.Namespace, tag: str) -> float:
    stamp = Path(tempfile.mkdtemp(prefix="quit-")) / "exit"
    server = f"quit-{os.getpid()}-{tag}"
    cmd = (
        f"cd {checkout} && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={checkout} {sys.executable} "
        f"-m console --stack {args.stack} --http-port {args.http_port}; date +%s.%N > {stamp}"
    )
    subprocess.run(
        [
            *("tmux", "-L", server, "-f", "/dev/null", "new-session", "-d", "-s", "t"),
            *("-x", "160", "-y", "48", "sh", "-c", cmd),
        ],
        env=env,
        check=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "Containers" not in _tmux(server, "capture-pane", "-p", "-t", "t"):
            if time.monotonic() > deadline:
                raise RuntimeError("the console did not paint within 60 s")
            time.sleep(0.1)
        time.sleep(args.settle)
        sent = time.time()
        _tmux(server, "send-keys", "-t", "t", "q")
        deadline = time.monotonic() + 120
        while not (stamp.exists() and stamp.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError("the console did not exit within 120 s of q")
            time.sleep(0.005)
        return float(stamp.read_text()) - sent
    finally:
        _tmux(server, "kill-server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", default=str(REPO), help="comma-separated checkouts")
    parser.add_argument("--runs", type=int, default=7, help="quits per checkout")
    parser.add_argument("--mode", choices=["stack", "hung"], default="stack")
    parser.add_argument("--stack", default="sdbench")
    parser.add_argument("--http-port", type=int, default=18087)
    parser.add_argument("--settle", type=float, default=6.0)
    args = parser.parse_args()
    checkouts = [Path(c).resolve() for c in args.checkouts.split(",")]
    env = dict(os.environ, TEXTUAL_ANIMATIONS="none", COLORTERM="truecolor")
    helpers: list[subprocess.Popen[bytes]] = []
    load = None
    tmp = Path(tempfile.mkdtemp(prefix="quit-sick-"))
    if args.mode == "hung":
        for name, sock in (("d", "docker.sock"), ("pg", ".s.PGSQL.5432"), ("r", "redis.sock")):
            (tmp / name).mkdir()
            helpers.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "bench.tools.slowsock", "blackhole"),
                        *("--listen", str(tmp / name / sock), "--max-seconds", "1800"),
                    ],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                )
            )
        for helper in helpers:
            assert helper.stdout is not None
            helper.stdout.readline()  # "ready"
        env |= {
            "DOCKER_HOST": f"unix://{tmp}/d/docker.sock",
            "STACKDECK_DOCKER_HOST": f"unix://{tmp}/d/docker.sock",
            "STACKDECK_PG_DSN": f"postgresql://postgres@/investment_db?host={tmp}/pg",
            "STACKDECK_REDIS_URL": f"unix://{tmp}/r/redis.sock",
        }
    else:
        sys.path.insert(0, str(REPO))
        from tests.load import MIXED, LoadLoop

        load = LoadLoop(
            f"http://127.0.0.1:{args.http_port}",
            MIXED,
            workers=6,
            pause=0.0,
            max_requests=10**6,
            max_seconds=args.runs * len(checkouts) * 40 + 60,
        )
        threading.Thread(target=load.start, daemon=True).start()
    figures: dict[str, list[float]] = {str(c): [] for c in checkouts}
    try:
        for i in range(args.runs):
            for n, checkout in enumerate(checkouts):
                seconds = one_quit(checkout, env, args, f"{i}-{n}")
                figures[str(checkout)].append(round(seconds, 3))
                print(f"{checkout}: {seconds:.3f} s", flush=True)
    finally:
        if load is not None:
            load.stop()
        for helper in helpers:
            helper.terminate()
    print(
        json.dumps(
            {
                c: {"median_s": statistics.median(v), "max_s": max(v), "all": v}
                for c, v in figures.items()
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
