"""The suite's one load loop: GETs through the stack's nginx on 127.0.0.1,
bounded in count and in time, for every "0 failed requests" in the suite.

The policy, the same for every test:

* Connections are kept alive, as a real client's are (a new connection per
  request would measure connect storms instead).
* A GET that got **no answer at all on a reused connection** (the server
  closed it idle: httpx's ``RemoteProtocolError: Server disconnected without
  sending a response``) is sent once more on a new connection. RFC 9112
  section 9.3.1 allows it for idempotent requests; curl and Go's net/http do
  it. That is the keep-alive race at an nginx reload: a retiring worker closes
  its idle keep-alive connections, and a request already on its way crosses
  the close. nginx never saw the request (no access-log line, not even 499),
  so nothing was lost. Measured on this stack: 2 per 100 reloads per
  connection at one request per 50 ms, 5 at one per 10 ms.
* Everything else is a failure: a status other than 2xx, a refused or reset
  connection, a timeout, a disconnect on a new connection, a second
  disconnect.

Retries are counted, reported beside the failures in every figure, and
bounded by the tests: at most one per connection per nginx reload
(:meth:`LoadResult.assert_clean`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["HEALTH", "MIXED", "LoadLoop", "LoadResult", "Sample", "StreamFollower"]

HEALTH = ("/api/health",)
"""Answers carry the version and colour: what deploy tests watch."""
MIXED = ("/api/health", "/api/stocks/prices?symbols=AAPL,MSFT")
"""Health and a database-and-cache read, in turn: what fault tests watch."""


@dataclass(frozen=True)
class Sample:
    t: float
    """time.monotonic() when the request was first sent."""
    path: str
    status: int | None
    error: str | None = None
    """Exception class and message of a transport failure."""
    version: str | None = None
    """The ``version`` of a JSON answer (``/api/health`` has one)."""
    colour: str | None = None
    """The colour nginx routed to (its ``X-Upstream-Colour`` header)."""
    retried: bool = False
    """Sent twice: the first attempt met a keep-alive connection closed unanswered."""
    ms: float | None = None
    """Milliseconds from sending to the whole answer (a retry included)."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class LoadResult:
    samples: list[Sample]
    workers: int = 1
    seconds: float = 0.0
    wall_offset: float = 0.0
    """``time.time() - time.monotonic()`` at the start: turns an event's
    wall-clock time into the samples' clock."""
    t0: float = 0.0
    """time.monotonic() when the loop started."""

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def retries(self) -> int:
        return sum(1 for s in self.samples if s.retried)

    def failed(self, t0: float | None = None, t1: float | None = None) -> list[Sample]:
        """Requests without a 2xx answer (5xx, refused, reset, timed out)."""
        return [
            s
            for s in self.samples
            if not s.ok and (t0 is None or s.t >= t0) and (t1 is None or s.t <= t1)
        ]

    @property
    def timeouts(self) -> list[Sample]:
        """Requests that got no answer at all within the client timeout: a hang."""
        return [s for s in self.samples if s.error and "Timeout" in s.error]

    def outcomes(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for s in self.samples:
            c[str(s.status) if s.status is not None else (s.error or "error").split(":")[0]] += 1
        return dict(sorted(c.items()))

    def last_failure(self) -> float | None:
        failed = self.failed()
        return failed[-1].t if failed else None

    def after(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.t >= t]

    def versions(self, since: float = 0.0) -> dict[str, int]:
        return dict(Counter(s.version for s in self.samples if s.t >= since and s.ok and s.version))

    def colours(self, since: float = 0.0) -> dict[str, int]:
        return dict(Counter(str(s.colour) for s in self.samples if s.t >= since and s.ok))

    def colour_changes(self, limit: int = 50) -> list[tuple[float, str]]:
        """(seconds since the start, colour) each time an answer came from
        another colour than the answer before it."""
        out: list[tuple[float, str]] = []
        for s in self.samples:
            if s.ok and s.colour and (not out or out[-1][1] != s.colour) and len(out) < limit:
                out.append((s.t - self.t0, s.colour))
        return out

    def latency_ms(self, p: float) -> float | None:
        """The ``p``-th percentile of the answers' latency (nearest rank)."""
        ms = sorted(s.ms for s in self.samples if s.ms is not None)
        if not ms:
            return None
        return ms[min(len(ms) - 1, max(0, round(p / 100 * len(ms)) - 1))]

    def monotonic(self, at: str) -> float:
        """An event's ISO time on the samples' clock."""
        return datetime.fromisoformat(at).timestamp() - self.wall_offset

    def answers_since(self, at: str) -> dict[str, int]:
        """Versions of the answers to requests sent after ``at`` (an event's
        ISO time): what nginx served once that event had happened."""
        return self.versions(since=self.monotonic(at))

    def summary(self) -> dict[str, Any]:
        failed = self.failed()
        return {
            "requests": self.total,
            "failed": len(failed),
            "retried": self.retries,
            "failures": sorted({f"{s.status} {s.error}" for s in failed})[:5],
            "versions": self.versions(),
            "seconds": round(self.seconds, 1),
        }

    def assert_clean(self, *, reloads: int) -> None:
        """No request failed, and at most one retry per connection per nginx
        reload the test caused (a deploy switches once; a switch back, a
        rollback or a recovery once more)."""
        assert self.total > 0, "the load loop sent nothing"
        assert not self.failed(), self.summary()
        bound = reloads * self.workers
        assert self.retries <= bound, (
            f"{self.retries} keep-alive retries for {reloads} reload(s) on {self.workers} "
            f"connection(s) (at most {bound}): {self.summary()}"
        )


class LoadLoop:
    """``with LoadLoop(url) as load: ...`` sends GETs in ``workers`` threads
    (one keep-alive connection each) until the block ends, ``max_requests``
    requests were sent or ``max_seconds`` passed, whichever comes first.
    ``async with`` works the same from a test's event loop."""

    def __init__(
        self,
        base_url: str,
        paths: Iterable[str] = MIXED,
        *,
        workers: int = 1,
        max_requests: int = 4000,
        max_seconds: float = 150.0,
        pause: float = 0.05,
        timeout: float = 10.0,
    ) -> None:
        host = urlsplit(base_url).hostname
        if host != "127.0.0.1":
            raise ValueError(f"load goes to 127.0.0.1 only, not {host!r}")
        self.base_url = base_url.rstrip("/")
        self.paths = list(paths)
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.timeout = timeout
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._stopped: float | None = None
        self._wall_offset = 0.0

    # --- running ------------------------------------------------------------

    def start(self, *, wait_first: bool = True) -> LoadLoop:
        self._started = time.monotonic()
        self._wall_offset = time.time() - self._started
        for i in range(self.workers):
            th = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            th.start()
            self._threads.append(th)
        if wait_first:  # traffic flows before the operation starts (bounded)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.running:
                with self._lock:
                    if self._samples:
                        break
                time.sleep(0.02)
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=2 * self.timeout + 5)
        if self._stopped is None:
            self._stopped = time.monotonic()
        return self.result()

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LoadLoop:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def running(self) -> bool:
        return any(th.is_alive() for th in self._threads)

    def result(self) -> LoadResult:
        end = self._stopped if self._stopped is not None else time.monotonic()
        with self._lock:
            samples = sorted(self._samples, key=lambda s: s.t)
        return LoadResult(
            samples, self.workers, end - self._started, self._wall_offset, self._started
        )

    @property
    def samples(self) -> list[Sample]:
        return self.result().samples

    def wait_for_version(
        self, version: str, since: float, *, answers: int = 3, seconds: float = 30
    ) -> bool:
        """Poll until ``answers`` responses after ``since`` (monotonic) came
        from ``version``, for at most ``seconds``; whether they did."""
        deadline = time.monotonic() + seconds
        while self.result().versions(since=since).get(version, 0) < answers:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    # --- one worker ---------------------------------------------------------

    def _run(self, worker: int) -> None:
        t_end = self._started + self.max_seconds
        n = worker
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            while not self._stop.is_set() and time.monotonic() < t_end:
                with self._lock:
                    if len(self._samples) >= self.max_requests:
                        return
                path = self.paths[n % len(self.paths)]
                sample = self._get(client, path)
                with self._lock:
                    self._samples.append(sample)
                n += 1
                self._stop.wait(self.pause)

    def _get(self, client: httpx.Client, path: str) -> Sample:
        t = time.monotonic()
        retried = False
        while True:
            connected: list[str] = []

            def trace(event: str, info: dict[str, Any], connected: list[str] = connected) -> None:
                if event.startswith("connection.connect_tcp"):
                    connected.append(event)

            try:
                r = client.get(path, extensions={"trace": trace})
            except httpx.RemoteProtocolError as exc:
                if not connected and not retried:  # a reused connection, closed unanswered
                    retried = True
                    continue
                return Sample(t, path, None, f"{type(exc).__name__}: {exc}", retried=retried)
            except httpx.HTTPError as exc:
                return Sample(t, path, None, f"{type(exc).__name__}: {exc}", retried=retried)
            ms = (time.monotonic() - t) * 1000
            version = None
            if r.headers.get("content-type", "").startswith("application/json"):
                try:
                    body = r.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    version = body.get("version")
            colour = (r.headers.get("x-upstream-colour") or "").removeprefix("backend_") or None
            return Sample(t, path, r.status_code, None, version, colour, retried, ms)


class StreamFollower:
    """A price-stream client that behaves like an open page: ``with
    StreamFollower(url) as s: ...`` connects to ``/api/ws/prices`` through
    nginx on 127.0.0.1 and reconnects each time the server closes the
    stream, until the block ends. It records every snapshot's colour and
    version (which container served it), every close code, and every
    failed connection. Bounded: ``max_connects`` and ``max_seconds``."""

    def __init__(
        self,
        base_url: str,
        symbols: str = "AAPL",
        *,
        max_connects: int = 50,
        max_seconds: float = 900.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.hostname != "127.0.0.1":
            raise ValueError(f"streams go to 127.0.0.1 only, not {parts.hostname!r}")
        self.url = f"ws://127.0.0.1:{parts.port}/api/ws/prices?symbols={symbols}"
        self.max_connects = max_connects
        self.max_seconds = max_seconds
        self.snapshots: list[tuple[float, str, str]] = []
        """(monotonic time, colour, version) of each snapshot received."""
        self.closes: list[int | None] = []
        """The close code of each stream the server ended (None: no close frame)."""
        self.errors: list[str] = []
        """Connections that could not be opened."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-follower", daemon=True)

    def __enter__(self) -> StreamFollower:
        self._thread.start()
        deadline = time.monotonic() + 30  # connected before the operation starts (bounded)
        while not self.snapshots and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        import json

        from websockets.exceptions import ConnectionClosed, WebSocketException
        from websockets.sync.client import connect

        deadline = time.monotonic() + self.max_seconds
        connects = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            if connects >= self.max_connects:
                self.errors.append(f"gave up after {connects} connections")
                return
            connects += 1
            try:
                with connect(self.url, open_timeout=10) as ws:
                    while not self._stop.is_set():
                        try:
                            message = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        if message.get("type") == "snapshot":
                            self.snapshots.append(
                                (time.monotonic(), message["colour"], message["version"])
                            )
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd is not None else None)
            except (OSError, WebSocketException, TimeoutError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.2)
