"""API throughput and latency through nginx: ``ab`` (the seed's tool) and
``wrk`` (keep-alive, when installed), on 127.0.0.1 only, bounded in count and
time. Target: p95 well under the seed's 2 s alert threshold."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import Stack, load_average, log, rnd, row, run

HEALTH = "/api/health"
PRICES = "/api/stocks/prices?symbols=AAPL,MSFT,GOOGL"
LUA = Path(__file__).resolve().parent / "tools" / "p95.lua"
P95_TARGET_MS = 2000.0


def parse_ab(text: str) -> dict[str, Any]:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else None

    pct = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.M)}
    # ab counts a body whose length differs from the first one as a "Length"
    # failure; /api/health carries its uptime, so lengths vary: not an error.
    kinds = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    connect, receive, length, exceptions = (
        (int(x) for x in kinds.groups()) if kinds else (0, 0, 0, 0)
    )
    return {
        "complete": int(num(r"^Complete requests:\s+(\d+)") or 0),
        "failed": connect + receive + exceptions,
        "length_differs": length,
        "non_2xx": int(num(r"^Non-2xx responses:\s+(\d+)") or 0),
        "rps": num(r"^Requests per second:\s+([\d.]+)"),
        "mean_ms": num(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        "p50_ms": pct.get(50),
        "p95_ms": pct.get(95),
        "p99_ms": pct.get(99),
        "max_ms": pct.get(100),
    }


def run_ab(url: str, n: int, c: int, time_limit: int = 60) -> dict[str, Any]:
    # -t before -n: -t alone implies -n 50000; the -n after it caps the count.
    args = ["ab", "-q", "-r", "-s", "10", "-t", str(time_limit), "-n", str(n), "-c", str(c), url]
    r = run(args, timeout=time_limit + 30, check=False)
    out = parse_ab(r.stdout)
    out["cmd"] = " ".join(args)
    out["exit"] = r.returncode
    return out


def parse_wrk(text: str) -> dict[str, Any]:
    m = re.search(r"^BENCH (.*)$", text, re.M)
    if not m:
        return {}
    kv = dict(part.split("=") for part in m.group(1).split())
    v = {k: int(x) for k, x in kv.items()}
    secs = v["duration_us"] / 1e6
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "complete": v["requests"],
        "rps": v["requests"] / secs if secs else None,
        "p50_ms": v["p50_us"] / 1000,
        "p95_ms": v["p95_us"] / 1000,
        "p99_ms": v["p99_us"] / 1000,
        "max_ms": v["max_us"] / 1000,
        "failed": v["connect"] + v["read"] + v["write"] + v["timeout"] + v["status"],
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def run_wrk(url: str, c: int, seconds: int) -> dict[str, Any]:
    args = ["wrk", "-t2", f"-c{c}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url]
    r = run(args, timeout=seconds + 30, check=False)
    out = parse_wrk(r.stdout)
    out["cmd"] = " ".join(args)
    return out


def _prices_ok(stack: Stack) -> tuple[bool, str]:
    import httpx

    try:
        r = httpx.get(stack.base_url + PRICES, timeout=15)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return r.status_code == 200, f"HTTP {r.status_code}"


def c50_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """Issue 15's figures from one run, side by side: req/s and p95 of the
    cached prices path and of ``/api/health`` at concurrency 50, keep-alive
    (wrk) when it ran, else ab's. The rows' own keys are left as they are."""
    out: dict[str, Any] = {}
    for name, label in (
        ("prices", "/api/stocks/prices (cached) c50"),
        ("health", "/api/health c50"),
    ):
        for tool, key in (("wrk", f"wrk {label} (keep-alive)"), ("ab", f"ab {label}")):
            res = raw.get(key)
            if isinstance(res, dict) and res.get("rps"):
                out[name] = {
                    "tool": tool,
                    "rps": rnd(res["rps"], 1),
                    "p95_ms": rnd(res.get("p95_ms"), 1),
                    "errors": res.get("failed", 0) + res.get("non_2xx", 0),
                }
                break
    return out


def bench(stack: Stack, *, quick: bool = False) -> dict[str, Any]:
    base = stack.base_url
    load_before = load_average()
    ok, why = _prices_ok(stack)  # warms the cache (the figure asked for is "cached")
    if ok:
        _prices_ok(stack)
    scale = 4 if quick else 1
    plan = [
        ("ab -n 100 -c 10 (seed)", HEALTH, 100, 10),
        ("ab /api/health c10", HEALTH, 2000 // scale, 10),
        ("ab /api/health c50", HEALTH, 5000 // scale, 50),
        ("ab /api/stocks/prices (cached) c10", PRICES, 2000 // scale, 10),
        ("ab /api/stocks/prices (cached) c50", PRICES, 5000 // scale, 50),
    ]
    raw: dict[str, Any] = {"prices_check": why}
    rows = []
    for label, path, n, c in plan:
        if path == PRICES and not ok:
            rows.append(row(label, None, "req/s", note=f"/api/stocks/prices answered {why}"))
            continue
        log(f"api: {label}")
        res = run_ab(base + path, n, c)
        raw[label] = res
        p95 = res.get("p95_ms")
        errors = res["failed"] + res["non_2xx"]
        rows.append(
            row(
                label,
                rnd(res.get("rps"), 0),
                "req/s",
                target="p95 < 2000 ms",
                met=(p95 is not None and p95 < P95_TARGET_MS and errors == 0),
                note=f"p95 {p95:.0f} ms, p99 {res.get('p99_ms') or 0:.0f} ms, {res['complete']} requests, {errors} failed/non-2xx"
                if p95 is not None
                else "ab produced no figures",
            )
        )
        time.sleep(1)
    if shutil.which("wrk"):
        secs = 5 if quick else 10
        for label, path, c in (
            ("wrk /api/health c10 (keep-alive)", HEALTH, 10),
            ("wrk /api/health c50 (keep-alive)", HEALTH, 50),
            ("wrk /api/stocks/prices (cached) c10 (keep-alive)", PRICES, 10),
            ("wrk /api/stocks/prices (cached) c50 (keep-alive)", PRICES, 50),
        ):
            if path == PRICES and not ok:
                continue
            log(f"api: {label}")
            res = run_wrk(base + path, c, secs)
            raw[label] = res
            if not res.get("rps"):
                rows.append(row(label, None, "req/s", note="wrk produced no figures"))
                continue
            errors = res["failed"] + res["non_2xx"]
            rows.append(
                row(
                    label,
                    rnd(res["rps"], 0),
                    "req/s",
                    target="p95 < 2000 ms",
                    met=res["p95_ms"] < P95_TARGET_MS and errors == 0,
                    note=f"p95 {res['p95_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms, {res['complete']} requests, {errors} failed/non-2xx",
                )
            )
            time.sleep(1)
    else:
        raw["wrk"] = "not installed (apt-get install wrk)"
    raw["c50"] = c50_summary(raw)
    return {
        "title": "API through nginx",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
