"""``python3 -m bench``: every benchmark of issue 6 in one run, side by side
with its peer, written to ``bench/results/<date>.md`` and ``<date>.json``.

    python3 -m bench                       # the dedicated stack sdbench on 127.0.0.1:18087
    python3 -m bench --stack benchdev --http-port 18086 --no-setup
    python3 -m bench --only stats,idle --quick

See bench/README.md for what each benchmark measures and how.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.machine import machine_info

from bench.common import (
    REPO,
    Stack,
    cleanup_idle,
    dump_json,
    idle_containers,
    load_average,
    log,
    run,
)

ALL = ["footprint", "startup", "stats", "fresh", "idle", "stall", "api", "profile", "deploy"]
"""Order matters: the footprint of a calm stack first; deploys (which change
the stack) last."""


def _wait_calm(limit_s: float) -> list[float]:
    """The load average when the measurements begin, after waiting up to
    ``limit_s`` for its 1-minute figure to fall to half the cores."""
    half = (os.cpu_count() or 1) / 2
    deadline = time.monotonic() + limit_s
    load = load_average()
    if limit_s > 0 and load and load[0] > half:
        log(f"waiting up to {limit_s:g} s for the 1-minute load ({load[0]}) to fall to {half:g}")
        while load and load[0] > half and time.monotonic() < deadline:
            time.sleep(5)
            load = load_average()
        log(f"load {load} after the wait")
    return load


def _other_containers(stack: Stack) -> list[str]:
    """Running containers that are not the measured stack's (nor the bench's
    idle ones, which carry the stack's project label)."""
    r = run(
        ["docker", "ps", "--format", '{{.Names}}\t{{.Label "com.docker.compose.project"}}'],
        timeout=30,
        check=False,
    )
    names = []
    for line in (r.stdout if r.returncode == 0 else "").splitlines():
        name, _, project = line.partition("\t")
        if name and project != stack.name:
            names.append(name)
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python3 -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--stack",
        default=os.environ.get("BENCH_STACK", "sdbench"),
        help="stack (compose project) to measure (env BENCH_STACK; default sdbench)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ.get("BENCH_HTTP_PORT", "18087")),
        help="its nginx port on 127.0.0.1 (env BENCH_HTTP_PORT; default 18087)",
    )
    p.add_argument(
        "--no-setup",
        action="store_true",
        help="do not run scripts/setup.sh: measure the stack as it is",
    )
    p.add_argument(
        "--down", action="store_true", help="tear the stack down (compose down -v) at the end"
    )
    p.add_argument("--only", help=f"comma-separated subset of: {','.join(ALL)}")
    p.add_argument("--skip", help="comma-separated benchmarks to skip")
    p.add_argument(
        "--levels",
        default="5,20,50",
        help="container counts for the idle and stats benchmarks (default 5,20,50; a level below the stack's own count is measured at the stack's count)",
    )
    p.add_argument("--runs", type=int, default=10, help="start-up repetitions (default 10)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, shorter windows (for trying the harness, not for the record)",
    )
    p.add_argument(
        "--stall-rounds",
        type=int,
        default=1,
        help="each stall scenario this many times (default 1: seven scenario runs)",
    )
    p.add_argument(
        "--no-what-if",
        action="store_true",
        help="profile without its what-if experiments (py-spy and importtime only; ~6 min less)",
    )
    p.add_argument(
        "--wait-calm",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before measuring, wait up to SECONDS for the 1-minute load to fall to half the cores (a run of record starts calm)",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    p.add_argument(
        "--name",
        help="results file name without extension (default: the date, then date-HHMM if taken)",
    )
    return p.parse_args(argv)


def _results_name(out: Path, name: str | None, date: str) -> str:
    if name:
        return name
    if not (out / f"{date}.md").exists():
        return date
    return f"{date}-{datetime.now().strftime('%H%M')}"


def _setup(stack: Stack) -> float:
    log(f"bringing stack {stack.name} up on 127.0.0.1:{stack.http_port} (scripts/setup.sh)")
    t = time.monotonic()
    logfile = Path(f"/tmp/sdbench-setup-{stack.name}.log")
    with logfile.open("w") as fh:
        p = subprocess.run(
            ["bash", str(REPO / "scripts" / "setup.sh")],
            env=stack.proc_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    if p.returncode != 0:
        sys.exit(f"scripts/setup.sh failed for stack {stack.name}; see {logfile}")
    return time.monotonic() - t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack.named(
        args.stack,
        args.http_port,
        run_dir=os.environ.get("BENCH_RUN_DIR"),
        state_dir=os.environ.get("BENCH_STATE_DIR"),
    )
    selected = [b for b in (args.only.split(",") if args.only else ALL)]
    unknown = [b for b in selected if b not in ALL]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
    if args.skip:
        selected = [b for b in selected if b not in args.skip.split(",")]
    levels = sorted({int(x) for x in args.levels.split(",") if x.strip()})

    # one run per stack at a time
    lock_path = Path(f"/tmp/sdbench-{stack.name}.lock")
    lock = lock_path.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another benchmark run holds {lock_path}")

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)

    started = datetime.now().astimezone()
    t_start = time.monotonic()
    load_start = load_average()
    was_up = stack.healthy()
    setup_s = None
    if not args.no_setup:
        setup_s = _setup(stack)
    if not stack.healthy():
        sys.exit(f"stack {stack.name} does not answer on {stack.base_url}/api/health")

    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    date = started.strftime("%Y-%m-%d")
    name = _results_name(out_dir, args.name, date)
    stamp = name
    base_count = len([n for n in stack.project_containers() if "_benchidle_" not in n])
    levels = sorted({max(level, base_count) for level in levels})

    command = "python3 -m bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    results: dict[str, Any] = {
        "date": date,
        "started": started.isoformat(timespec="seconds"),
        "command": os.environ.get("BENCH_COMMAND") or command.strip(),
        "stack": stack.name,
        "http_port": stack.http_port,
        "stack_was_up": was_up,
        "setup_seconds": round(setup_s, 1) if setup_s is not None else None,
        "quick": args.quick,
        "levels": levels,
        "base_containers": base_count,
        "machine": machine_info(),
        "load_start": load_start,
        "sections": {},
        "json_name": f"{name}.json",
    }
    # a calm moment: let setup's aftermath settle
    time.sleep(0 if args.quick else 5)
    results["load_measuring"] = _wait_calm(args.wait_calm)
    results["other_containers"] = _other_containers(stack)
    try:
        with idle_containers(stack) as scale:
            for bench_name in selected:
                log(f"=== {bench_name} (load {load_average()})")
                t = time.monotonic()
                try:
                    section = _run_one(bench_name, stack, scale, levels, args, out_dir, stamp)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    traceback.print_exc()
                    section = {
                        "title": bench_name,
                        "rows": [],
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                section["elapsed_s"] = round(time.monotonic() - t, 1)
                results["sections"][bench_name] = section
                scale(0)  # back to the stack alone between benchmarks
                _write(results, out_dir, name, t_start)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        results["interrupted"] = True
    finally:
        cleanup_idle(stack)
        run(["docker", "unpause", stack.container("db")], check=False)
        _write(results, out_dir, name, t_start)
        if args.down:
            log(f"tearing stack {stack.name} down")
            stack.compose("down", "-v", check=False, timeout=600)
    log(f"results: {out_dir / (name + '.md')}")
    return 0


def _run_one(
    bench_name: str,
    stack: Stack,
    scale: Any,
    levels: list[int],
    args: argparse.Namespace,
    out_dir: Path,
    stamp: str,
) -> dict[str, Any]:
    quick = args.quick
    if bench_name == "footprint":
        from bench import b_footprint

        return b_footprint.bench(stack, quick=quick)
    if bench_name == "startup":
        from bench import b_startup

        return b_startup.bench(stack, runs=args.runs, quick=quick)
    if bench_name == "stats":
        from bench import b_stats

        return b_stats.bench(stack, scale, levels, quick=quick)
    if bench_name == "fresh":
        from bench import b_fresh

        return b_fresh.bench(stack, scale, levels, quick=quick)
    if bench_name == "idle":
        from bench import b_idle

        return b_idle.bench(stack, scale, levels, quick=quick)
    if bench_name == "stall":
        from bench import b_stall

        return b_stall.bench(stack, quick=quick, rounds=args.stall_rounds)
    if bench_name == "api":
        from bench import b_api

        return b_api.bench(stack, quick=quick)
    if bench_name == "profile":
        from bench import b_profile

        return b_profile.bench(stack, out_dir, stamp, quick=quick, what_ifs=not args.no_what_if)
    if bench_name == "deploy":
        from bench import b_deploy

        return b_deploy.bench(stack, quick=quick)
    raise ValueError(bench_name)


def _write(results: dict[str, Any], out_dir: Path, name: str, t_start: float) -> None:
    from bench.report import render

    results["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    results["elapsed_s"] = time.monotonic() - t_start
    results["load_end"] = load_average()
    dump_json(out_dir / f"{name}.json", results)
    (out_dir / f"{name}.md").write_text(render(results), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
