"""What TLS costs at nginx: ``/api/health`` requests/s over plain HTTP and
over HTTPS in the same run (``ab``, 4 clients, bounded count, keep-alive and
a new connection per request), and the cost of one TLS handshake (Python
``ssl``, full handshakes, no resumption) against a bare TCP connect. Traffic
to 127.0.0.1 only. The host is exempt from nginx's rate limit, so nothing here
is throttled.

    python3 -m bench.b_tls --http-port 18330 [--https-port 18693] [-n 2000] [-c 4]

Writes ``bench/results/<date>-tls.md`` and prints it.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def ab(url: str, n: int, c: int, keepalive: bool) -> dict[str, float]:
    argv = ["ab", "-q", "-n", str(n), "-c", str(c), "-s", "10", *(["-k"] if keepalive else []), url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if r.returncode != 0:
        sys.exit(f"ab failed on {url}: {(r.stderr or r.stdout).strip()[-300:]}")

    def num(pattern: str) -> float:
        m = re.search(pattern, r.stdout, re.M)
        return float(m.group(1)) if m else float("nan")

    return {
        "rps": num(r"^Requests per second:\s+([\d.]+)"),
        "mean_ms": num(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
        # ab counts a body of another length as failed; /api/health carries
        # its uptime, so only connect, receive and exceptions are failures
        "failed": sum(
            float(x)
            for x in (
                re.search(
                    r"Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)", r.stdout
                )
                or re.search(r"()()()", "")
            ).groups()
            if x
        ),
        "non2xx": num(r"^Non-2xx responses:\s+(\d+)") if "Non-2xx" in r.stdout else 0.0,
    }


def connect_ms(port: int, count: int, tls: bool) -> list[float]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            if tls:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    pass
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "80")))
    p.add_argument("--https-port", type=int, default=None, help="default HTTP_PORT + 363")
    p.add_argument("-n", type=int, default=2000, help="requests per measurement")
    p.add_argument("-c", type=int, default=4, help="concurrent clients")
    p.add_argument("--handshakes", type=int, default=300)
    a = p.parse_args()
    https_port = a.https_port or a.http_port + 363
    path = "/api/health"
    rows = []
    for label, url in (("HTTP", f"http://127.0.0.1:{a.http_port}{path}"),
                       ("HTTPS", f"https://127.0.0.1:{https_port}{path}")):  # fmt: skip
        for keepalive in (True, False):
            ab(url, min(200, a.n), a.c, keepalive)  # warm-up
            res = ab(url, a.n, a.c, keepalive)
            rows.append((label, "keep-alive" if keepalive else "new connection", res))
    tcp = connect_ms(a.http_port, a.handshakes, tls=False)
    tls = connect_ms(https_port, a.handshakes, tls=True)
    med_tcp, med_tls = statistics.median(tcp), statistics.median(tls)
    p95 = lambda xs: statistics.quantiles(xs, n=20)[-1]  # noqa: E731
    when = datetime.now().strftime("%Y-%m-%d-%H%M")
    lines = [
        f"# TLS at nginx: {path}, {a.n} requests x {a.c} clients ({when})",
        "",
        f"`python3 -m bench.b_tls --http-port {a.http_port} -n {a.n} -c {a.c}`; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; nginx limited to 0.5 CPU "
        "(docker-compose.production.yml).",
        "",
        "| scheme | connections | requests/s | mean ms | failed | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, mode, res in rows:
        lines.append(f"| {label} | {mode} | {res['rps']:.0f} | {res['mean_ms']:.2f} | "
                     f"{res['failed']:.0f} | {res['non2xx']:.0f} |")  # fmt: skip
    lines += [
        "",
        f"Connect ({a.handshakes} sequential, one client): TCP median {med_tcp:.2f} ms "
        f"(p95 {p95(tcp):.2f}); TCP + full TLS handshake median {med_tls:.2f} ms "
        f"(p95 {p95(tls):.2f}): the handshake costs {med_tls - med_tcp:.2f} ms.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{when}-tls.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
