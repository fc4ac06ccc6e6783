"""UI responsiveness: the largest event-loop stall of the real console app
(in tmux, 160×48, through :mod:`bench.tools.probe_app`) while its sources are
slow or dead. Target: under 50 ms.

Scenarios, each ``duration`` seconds on the stack under test:

* healthy: every source answers (the baseline);
* db answers in 5 s: the console's DSN points at a proxy socket in front of
  the stack's PostgreSQL socket that holds every byte of every answer for 5 s
  (:mod:`bench.tools.slowsock`); the stack itself is untouched;
* db paused: ``docker pause`` of the db container (connections hang; the
  backends' database health checks hang behind it too), unpaused after;
* docker hangs: ``DOCKER_HOST`` points at a socket that accepts and never
  answers (``docker pause`` cannot make a daemon hang);
* everything slow: db and Redis behind 5 s proxies and the hanging daemon;
* Prometheus slow: the console's Prometheus URL (``STACKDECK_PROMETHEUS_URL``)
  points at a loopback TCP proxy in front of the stack's Prometheus that
  holds every answer 8 s, past the console's 5 s request timeout, so the
  history (the charts' back-fill) and Prometheus' alerts time out;
* Prometheus down: the URL points at a loopback port nobody listens on
  (connection refused, as when the container is stopped); nothing to clean.

Each scenario must bite: the sources it makes sick must be reported not ok
by the console during the run, else the row says the scenario did not bite
and counts as not met. The section's verdict is "N of N scenario runs under
50 ms", with each run's largest stall.

The figure is the largest lag after start-up (from 2 s after the app runs);
start-up stalls (first layout) are reported apart in the raw data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Stack,
    load_average,
    log,
    percentile,
    rnd,
    row,
    run,
    run_probe,
    terminate,
)

STALL_TARGET_MS = 50.0


@contextlib.contextmanager
def sick_socket(
    mode: str, listen: Path | str, target: Path | str | None = None, delay: float = 5.0
) -> Iterator[None]:
    args = [
        sys.executable,
        "-m",
        "bench.tools.slowsock",
        mode,
        "--listen",
        str(listen),
        "--max-seconds",
        "900",
    ]
    if target is not None:
        args += ["--target", str(target), "--delay", str(delay)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"slowsock {mode} did not start")
        yield
    finally:
        terminate(proc.pid)
        proc.wait(5)


@contextlib.contextmanager
def paused(container: str) -> Iterator[None]:
    run(["docker", "pause", container])
    try:
        yield
    finally:
        run(["docker", "unpause", container], check=False)


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_port(stack: Stack) -> int:
    """The stack's Prometheus port on 127.0.0.1, as the console finds it
    (``PROMETHEUS_PORT`` of the environment or the checkout's .env, else
    ``HTTP_PORT`` + its offset)."""
    from console.core.config import read_env_file
    from console.core.stack import monitoring_ports

    env = {**read_env_file(REPO / ".env"), **os.environ}
    return monitoring_ports(env, stack.http_port)["PROMETHEUS_PORT"]


def bit(summary: dict[str, Any]) -> bool:
    """The scenario bit: every source it makes sick was reported not ok
    (always true for the healthy run)."""
    return summary.get("sick_source_seen") in (None, True)


def verdict(summaries: list[dict[str, Any]]) -> tuple[int, int]:
    """(runs under the target that bit, runs): "N of N scenario runs under 50 ms"."""
    good = sum(
        1
        for x in summaries
        if "error" not in x and bit(x) and (x.get("max_ms") or 0) < STALL_TARGET_MS
    )
    return good, len(summaries)


def _probe(stack: Stack, duration: float, extra_env: dict[str, str]) -> dict[str, Any]:
    data, screen = run_probe(stack, "stall", [], duration, 30, **extra_env)
    return data or {"error": "probe wrote nothing", "screen": screen[-3000:]}


def _summarise(data: dict[str, Any], sick: list[str]) -> dict[str, Any]:
    lags = data.get("lags") or []
    if not lags:
        return {"error": data.get("error", "no lag samples"), "screen": data.get("screen", "")}
    running = data.get("app_running_s") or 0.0
    settle = running + 2.0
    exit_at = data.get("exit_requested_s") or float("inf")
    cpu_of = {round(x[0], 4): (x[2] if len(x) > 2 else None) for x in lags}
    lags = [(x[0], x[1]) for x in lags]
    steady = [lag for t, lag in lags if settle <= t < exit_at]
    startup = [lag for t, lag in lags if t < settle]
    # the exit request runs on the same loop, so no stall spans it: samples
    # stamped after it measure the quit (monitor.stop(), threads, sockets)
    shutdown = [lag for t, lag in lags if t >= exit_at]
    worst = sorted(((lag, t) for t, lag in lags if settle <= t < exit_at), reverse=True)[:5]
    states = data.get("states") or []
    went_stale = sorted({s["name"] for s in states if not s["ok"]})
    return {
        "max_ms": rnd(max(steady, default=0) * 1000, 1),
        "p99_ms": rnd((percentile(steady, 99) or 0) * 1000, 1),
        "median_ms": rnd((percentile(steady, 50) or 0) * 1000, 2),
        "stalls_over_50ms": sum(1 for x in steady if x * 1000 > STALL_TARGET_MS),
        "samples": len(steady),
        "worst": [(rnd(t, 2), rnd(lag * 1000, 1)) for lag, t in worst],
        "worst_loop_cpu_ms": [
            (rnd(t, 2), rnd(lag * 1000, 1), rnd((cpu_of.get(round(t, 4)) or 0) * 1000, 1))
            for lag, t in worst
        ],
        "startup_max_ms": rnd(max(startup, default=0) * 1000, 1),
        "shutdown_max_ms": rnd(max(shutdown, default=0) * 1000, 1),
        "app_running_s": rnd(running),
        "first_snapshot_s": data.get("first_snapshot_s"),
        "counts": data.get("counts"),
        "sources_not_ok": went_stale,
        "expected_not_ok": sick,
        "sick_source_seen": all(any(s.startswith(x) or x in s for s in went_stale) for x in sick)
        if sick
        else None,
        "states": states[:40],
    }


def bench(stack: Stack, *, quick: bool = False, rounds: int = 1) -> dict[str, Any]:
    """Every scenario ``rounds`` times (``--stall-rounds``): the verdict
    counts scenario runs."""
    load_before = load_average()
    duration = 15.0 if quick else 30.0
    tmp = Path(tempfile.mkdtemp(prefix="sdbench-sick-"))
    pg_dir, redis_dir, docker_dir = tmp / "pg", tmp / "redis", tmp / "docker"
    for d in (pg_dir, redis_dir, docker_dir):
        d.mkdir()
        os.chmod(d, 0o755)
    pg_target = stack.run_dir / "postgresql" / ".s.PGSQL.5432"
    redis_target = stack.run_dir / "redis" / "redis.sock"
    slow_pg = {"STACKDECK_PG_DSN": f"postgresql://postgres@/investment_db?host={pg_dir}"}
    slow_redis = {"STACKDECK_REDIS_URL": f"unix://{redis_dir}/redis.sock"}
    hung_docker = {
        "STACKDECK_DOCKER_HOST": f"unix://{docker_dir}/docker.sock",
        "DOCKER_HOST": f"unix://{docker_dir}/docker.sock",
    }

    scenarios: list[tuple[str, Any, dict[str, str], list[str]]] = [
        ("healthy", contextlib.nullcontext, {}, []),
        (
            "db answers in 5 s",
            lambda: sick_socket("delay", pg_dir / ".s.PGSQL.5432", pg_target),
            slow_pg,
            ["postgres"],
        ),
        ("db paused (docker pause)", lambda: paused(stack.container("db")), {}, ["postgres"]),
        (
            "docker daemon hangs",
            lambda: sick_socket("blackhole", docker_dir / "docker.sock"),
            hung_docker,
            ["engine"],
        ),
    ]

    @contextlib.contextmanager
    def everything() -> Iterator[None]:
        with (
            sick_socket("delay", pg_dir / ".s.PGSQL.5432", pg_target),
            sick_socket("delay", redis_dir / "redis.sock", redis_target),
            sick_socket("blackhole", docker_dir / "docker.sock"),
        ):
            yield

    scenarios.append(
        (
            "everything slow (db, redis 5 s; docker hangs)",
            everything,
            {**slow_pg, **slow_redis, **hung_docker},
            ["postgres", "engine"],
        )
    )

    prom_port = prometheus_port(stack)
    prom_proxy = free_port()
    slow_prom = {"STACKDECK_PROMETHEUS_URL": f"http://127.0.0.1:{prom_proxy}"}
    prom_sources = ["history", "prom-alerts"]
    scenarios.append(
        (
            "Prometheus slow (answers in 8 s)",
            lambda: sick_socket(
                "delay",
                f"tcp:127.0.0.1:{prom_proxy}",
                f"tcp:127.0.0.1:{prom_port}",
                delay=8.0,
            ),
            slow_prom,
            prom_sources,
        )
    )
    scenarios.append(
        (
            "Prometheus down (closed port)",
            contextlib.nullcontext,
            {"STACKDECK_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"},
            prom_sources,
        )
    )

    only = os.environ.get("BENCH_STALL_ONLY")
    if only:  # e.g. BENCH_STALL_ONLY=Prometheus: to try a scenario, not for the record
        scenarios = [
            x for x in scenarios if any(w.lower() in x[0].lower() for w in only.split(","))
        ]
        if not scenarios:
            raise RuntimeError(f"BENCH_STALL_ONLY={only} matches no scenario")
    rows = []
    raw: dict[str, Any] = {"duration_s": duration, "prometheus_port": prom_port}
    summaries: list[dict[str, Any]] = []
    try:
        runs = [
            (f"{name} (run {k + 1})" if rounds > 1 else name, ctx, env, sick)
            for k in range(rounds)
            for name, ctx, env, sick in scenarios
        ]
        for name, ctx, env, sick in runs:
            log(f"stall: {name} ({duration:.0f} s)")
            with ctx():
                data = _probe(stack, duration, env)
            summary = _summarise(data, sick)
            raw[name] = summary
            summaries.append(summary)
            if "error" in summary:
                rows.append(
                    row(
                        f"largest loop stall: {name}",
                        None,
                        "ms",
                        target="< 50 ms",
                        met=False,
                        note=summary["error"],
                    )
                )
                continue
            effective = summary["sick_source_seen"]
            rows.append(
                row(
                    f"largest loop stall: {name}",
                    summary["max_ms"],
                    "ms",
                    target="< 50 ms",
                    met=summary["max_ms"] < STALL_TARGET_MS and bit(summary),
                    note=(
                        f"loop thread busy {summary['worst_loop_cpu_ms'][0][2] if summary['worst_loop_cpu_ms'] else '?'} ms of the worst; "
                        f"p99 {summary['p99_ms']} ms, {summary['stalls_over_50ms']} stalls > 50 ms in {duration:.0f} s; "
                        f"start-up max {summary['startup_max_ms']} ms, quit max {summary['shutdown_max_ms']} ms; sources not ok: {', '.join(summary['sources_not_ok']) or 'none'}"
                        + (
                            ""
                            if effective in (None, True)
                            else f" (SCENARIO DID NOT BITE: {', '.join(sick)} never reported not ok)"
                        )
                    ),
                )
            )
            time.sleep(2)
    finally:
        with contextlib.suppress(Exception):
            run(["docker", "unpause", stack.container("db")], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    good, total = verdict(summaries)
    rows.append(
        row(
            "scenario runs under 50 ms",
            f"{good} of {total}",
            target=f"{total} of {total}",
            met=good == total and total > 0,
            note="largest stall per run: "
            + "; ".join(
                f"{name} {raw[name].get('max_ms', '?')} ms"
                + ("" if bit(raw[name]) else " (did not bite)")
                for name, *_ in runs
                if name in raw
            ),
        )
    )
    raw["verdict"] = {"under_target": good, "runs": total}
    return {
        "title": "UI responsiveness (event-loop stalls)",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
