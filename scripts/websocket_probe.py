"""The client of scripts/websocket_test.sh: the price stream through nginx,
stage by stage. Run by the project's .venv (it needs ``websockets`` and
``httpx``, dependencies of stackdeck).

Stages, each printed as ``ok [stage] ...`` or ``FAIL [stage]: why`` (exit 1):

handshake  ``GET /api/ws/prices?symbols=SYM`` upgrades to a WebSocket (101)
snapshot   the first message is a snapshot of the symbol asked for
trigger    a new price is made to land: the symbol's cache entry is deleted
           (``cache:`` keys are disposable) and ``/api/stocks/prices`` asked,
           so the API fetches a quote from a provider (one call, within quota),
           caches and publishes it. ``--no-trigger``: wait for the worker's
           next cycle instead (WORKER_INTERVAL_S, 300 s by default)
update     a ``price`` message for the symbol arrives within ``--timeout``
close      the client's close (1000) is answered

Exit: 0 all stages passed, 1 a stage failed (named), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, NoReturn

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

PREFIX = "[websocket_test]"


class StageFailed(Exception):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


def ok(stage: str, message: str) -> None:
    print(f"{PREFIX} ok [{stage}] {message}", flush=True)


def fail(stage: str, message: str) -> NoReturn:
    raise StageFailed(stage, message)


def receive(ws: ClientConnection, stage: str, timeout: float) -> dict[str, Any]:
    """The next message as JSON, or the stage fails (timeout, close, not JSON)."""
    try:
        raw = ws.recv(timeout=timeout)
    except TimeoutError:
        fail(stage, f"no message within {timeout:g} s")
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else "none (connection dropped)"
        reason = exc.rcvd.reason if exc.rcvd else ""
        fail(stage, f"the server closed the stream (code {code}{': ' + reason if reason else ''})")
    try:
        message = json.loads(raw)
    except ValueError:
        fail(stage, f"a message that is not JSON: {str(raw)[:200]!r}")
    if not isinstance(message, dict):
        fail(stage, f"a message that is not a JSON object: {str(raw)[:200]!r}")
    return message


def open_stream(url: str, timeout: float) -> ClientConnection:
    stage = "handshake"
    try:
        return connect(url, open_timeout=timeout, close_timeout=5, max_size=2**20)
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace")[:300] if exc.response.body else ""
        hint = {
            404: " (no /api/ws/prices here: an nginx site or a backend without the price stream)",
            502: " (nginx reached no backend: is the serving colour up?)",
            503: " (the server refused the stream: see the body)",
            426: " (nginx did not pass the Upgrade header on)",
        }.get(status, "")
        fail(stage, f"{url} answered HTTP {status} instead of 101{hint}: {body}")
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        what = str(exc) or type(exc).__name__
        fail(stage, f"could not open {url}: {what} (is the stack up? scripts/setup.sh)")


def trigger(api: str, symbol: str, cache_container: str) -> str:
    """Delete the symbol's cache entry and ask the API for it: a provider call
    whose quote is published. Returns what the lookup said (for the report)."""
    stage = "trigger"
    key = f"cache:price:{symbol}"
    try:
        proc = subprocess.run(
            ["docker", "exec", cache_container, "redis-cli", "DEL", key],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail(stage, f"docker exec {cache_container} redis-cli DEL {key}: {exc}")
    if proc.returncode != 0:
        fail(
            stage,
            f"docker exec {cache_container} redis-cli DEL {key} failed: "
            f"{(proc.stderr or proc.stdout).strip()[:300]} (is the cache container up?)",
        )
    try:
        r = httpx.get(f"{api}/api/stocks/prices", params={"symbols": symbol}, timeout=15)
    except httpx.HTTPError as exc:
        fail(stage, f"GET {api}/api/stocks/prices?symbols={symbol}: {exc}")
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code == 200:
        sources = body.get("sources", {}) if isinstance(body, dict) else {}
        return f"lookup {r.status_code}, sources {sources}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"lookup {r.status_code}: {detail or r.text[:200]}"


def run(args: argparse.Namespace) -> None:
    url = f"{args.url}?symbols={args.symbol}"
    ws = open_stream(url, args.open_timeout)
    with ws:
        ok("handshake", f"{url} upgraded (101)")

        snap = receive(ws, "snapshot", args.open_timeout)
        if snap.get("type") != "snapshot":
            fail("snapshot", f"the first message is {snap.get('type')!r}, not a snapshot")
        if snap.get("symbols") != [args.symbol]:
            fail("snapshot", f"snapshot for {snap.get('symbols')!r}, asked for {[args.symbol]!r}")
        quotes = {q.get("symbol"): q for q in snap.get("quotes", []) if isinstance(q, dict)}
        had = quotes.get(args.symbol)
        seen = (
            f"{args.symbol} {had.get('price')} as of {had.get('as_of')} ({had.get('source')})"
            if had
            else f"no price of {args.symbol} yet (missing)"
        )
        ok(
            "snapshot",
            f"{seen}; colour {snap.get('colour') or '?'}, version {snap.get('version') or '?'}",
        )

        lookup = "no trigger (waiting for the worker)"
        started = time.monotonic()
        if args.trigger:
            lookup = trigger(args.api, args.symbol, args.cache_container)
            ok("trigger", f"cache entry of {args.symbol} deleted, {lookup}")

        deadline = started + args.timeout
        heartbeats = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(
                    "update",
                    f"no price update for {args.symbol} within {args.timeout:g} s "
                    f"({heartbeats} heartbeat(s) seen; {lookup})",
                )
            message = receive_update(ws, left, args.timeout, lookup)
            if message.get("type") == "heartbeat":
                heartbeats += 1
                continue
            quote = message.get("quote")
            if message.get("type") == "price" and isinstance(quote, dict):
                if quote.get("symbol") == args.symbol:
                    took = time.monotonic() - started
                    ok(
                        "update",
                        f"{args.symbol} {quote.get('price')} as of {quote.get('as_of')} "
                        f"from {quote.get('provider')}, {took:.2f} s after the trigger",
                    )
                    break
        try:
            ws.close(code=1000, reason="websocket_test done")
        except (OSError, ConnectionClosed) as exc:
            fail("close", f"closing the stream failed: {exc}")
        ok("close", "closed (1000)")


def receive_update(ws: ClientConnection, left: float, bound: float, lookup: str) -> dict[str, Any]:
    try:
        return receive(ws, "update", left)
    except StageFailed as exc:
        if exc.message.startswith("no message within"):
            raise StageFailed("update", f"no price update within {bound:g} s ({lookup})") from None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="websocket_test.sh", description="The price stream through nginx, stage by stage."
    )
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/api/ws/prices")
    parser.add_argument("--api", required=True, help="http://127.0.0.1:PORT (for the trigger)")
    parser.add_argument("--cache-container", required=True, help="the stack's Redis container")
    parser.add_argument("--symbol", default="AAPL", help="symbol to follow (default AAPL)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds for the update (default 30)"
    )
    parser.add_argument("--open-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-trigger",
        dest="trigger",
        action="store_false",
        help="do not make a price land; wait for the worker (raise --timeout)",
    )
    args = parser.parse_args(argv)
    try:
        run(args)
    except StageFailed as exc:
        print(f"{PREFIX} FAIL [{exc.stage}]: {exc.message}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{PREFIX} interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback: name what broke
        print(f"{PREFIX} FAIL [unexpected]: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{PREFIX} all stages passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
