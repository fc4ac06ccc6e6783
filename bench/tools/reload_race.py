"""How often an nginx reload closes a keep-alive connection under a request
already on its way (the race behind the suite's one retry policy,
``tests/load.py``), and nginx's own view of those requests.

    python3 -m bench.tools.reload_race --stack sdtest --http-port 18080 --reloads 100

A client that never retries sends ``GET /api/health`` on one keep-alive
connection every ``--pause`` seconds while ``nginx -s reload`` runs
``--reloads`` times (0.3-1.2 s apart). It prints one JSON line: requests,
answers, the disconnects without an answer, the seconds between each and
the reload before it, and how many of its requests nginx logged (as many as the client got answers: the disconnected requests never
reached nginx). Bounded: at most 500 reloads, 10 minutes. Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from console.core.stack import StackNames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", default="sdtest")
    ap.add_argument("--http-port", type=int, default=18080)
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--pause", type=float, default=0.05)
    a = ap.parse_args(argv)
    if not 1 <= a.reloads <= 500:
        print("reload_race: --reloads must be 1..500", file=sys.stderr)
        return 2
    nginx = StackNames(a.stack).container("nginx")
    since = str(int(time.time()))
    path = f"/api/health?race={since}"  # marks this run's lines in nginx's log
    stop = threading.Event()
    answers = [0]
    errors: list[tuple[float, str]] = []
    reloads: list[float] = []
    t_end = time.monotonic() + 600

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{a.http_port}", timeout=10) as c:
            while not stop.is_set() and time.monotonic() < t_end:
                t = time.time()
                try:
                    c.get(path)
                    answers[0] += 1
                except httpx.HTTPError as exc:
                    errors.append((t, f"{type(exc).__name__}: {exc}"))
                stop.wait(a.pause)

    th = threading.Thread(target=client, daemon=True)
    th.start()
    try:
        for _ in range(a.reloads):
            if time.monotonic() > t_end:
                break
            time.sleep(random.uniform(0.3, 1.2))
            reloads.append(time.time())
            r = subprocess.run(
                ["docker", "exec", nginx, "nginx", "-s", "reload"], capture_output=True, text=True
            )
            if r.returncode != 0:
                print(f"reload_race: nginx -s reload failed: {r.stderr.strip()}", file=sys.stderr)
                return 1
        time.sleep(1)
    finally:
        stop.set()
        th.join(timeout=15)
    logs = subprocess.run(
        ["docker", "logs", "--since", since, nginx], capture_output=True, text=True
    ).stdout
    out: dict[str, Any] = {
        "reloads": len(reloads),
        "pause_s": a.pause,
        "requests": answers[0] + len(errors),
        "answered": answers[0],
        "disconnected": len(errors),
        "per_100_reloads": round(100 * len(errors) / max(1, len(reloads)), 1),
        "after_reload_s": [
            round(t - max((r for r in reloads if r <= t), default=t), 3) for t, _ in errors
        ],
        "errors": sorted({e for _, e in errors}),
        "nginx_logged": logs.count(f'"GET {path} '),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
