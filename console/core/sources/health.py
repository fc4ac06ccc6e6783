"""Health endpoints through nginx and against each colour, and the API's p95.

Every interval: ``/api/health``, ``/api/health/database``, ``/api/health/cache``
and ``/api/health/external-apis``, once through nginx (the serving colour) and
once per colour through ``/direct/blue/...`` and ``/direct/green/...`` (a
colour nginx could not reach last time is asked ``/api/health`` only, until it
answers again: a stopped colour costs one request, not five), on one
reused ``httpx.AsyncClient`` (concurrently, but never two requests for the
same path to the same backend at once). Each result carries status,
latency, version and colour.

A colour on standby, stopped (not the serving colour, its container not
running, as the monitor tells :meth:`HealthSource.note_containers` from every
container list), is not asked at all and has no results: nginx would only
give up on it after its resolver or connect timeout (2 s each in
compose/nginx/conf/site.conf; the report in issue 16 saw 2007 ms) on every
poll, to say what the engine already says. The container list comes every few seconds
and after every engine event, so a colour a deploy starts is asked again on
the next poll (the monitor polls at once when the set changes). Without a
container list (the engine does not answer) every colour is asked as above.

The web frontend (its own colours ``frontend_blue``/``frontend_green``) is
asked the same way, one path: its ``/version.json`` through nginx (the page's
serving colour, told by nginx's ``X-Upstream`` header) and per colour through
``/direct/frontend_<colour>/version.json``. Its results carry the path
:data:`FRONTEND_PATH` and the target ``nginx``/``blue``/``green`` like the
backend's, so they are one more row of the panel. A frontend colour on standby
and stopped (:func:`~console.core.colours.frontend_roles`) is not asked either.

Not every check is asked every interval (``refresh.health``, 5 s): nginx's
five paths and each colour's ``/api/health`` are; each colour's three deep
paths and its frontend asked directly, and the scrapes below, at most
``refresh.health_slow`` apart (15 s: the panel's staleness at the default
interval), and at once when a check of the faster set changed (a status,
version, colour or error through nginx or of a colour's ``/api/health``) or a
colour came back: nginx already asks the serving colour's deep paths every
interval, so what waits longer is a failure that only the standby colour's
deep paths or frontend would show (:func:`slow_checks_due`). Between two such
polls their last results (and the p95) are shown again. Until the first p95
(two scrapes) the scrapes are every poll, so it appears one interval after
start as before. A poll so costs 7
requests on a stack with both colours up, and 17 every third poll (it was 17
every poll: the largest part of the console's idle CPU after the
compositor's, docs/PERFORMANCE.md "Third pass").

The same poll scrapes each colour's Prometheus endpoint and turns the bucket
deltas of ``http_request_duration_seconds`` between two scrapes into the p95
the HighAPIResponseTime alert needs (``histogram_quantile(0.95,
rate(..._bucket[interval]))`` without a Prometheus server). Colours are scraped
separately, so a colour switch or a restart (counter reset) does not corrupt
the deltas.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from console.core.colours import COLOURS, frontend_not_running, not_running, unreachable
from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.models import ContainersSnapshot, EndpointResult, HealthSnapshot
from console.core.sources.base import Clock, Source, utcnow
from console.core.tls import CertificateError, days_left, read_certificate

__all__ = [
    "FRONTEND_PATH",
    "HEALTH_PATHS",
    "TARGETS",
    "HealthSource",
    "HealthUnreachable",
    "bucket_deltas",
    "histogram_quantile",
    "parse_histogram",
    "slow_checks_due",
]

HEALTH_PATHS = (
    "/api/health",
    "/api/health/database",
    "/api/health/cache",
    "/api/health/external-apis",
)
FRONTEND_PATH = "/version.json"
"""The web frontend's version file (``{"version": ...}``, written into its
image): the page's row of the health panel."""
TARGETS = ("nginx", "blue", "green")
HISTOGRAM = "http_request_duration_seconds"

# --- prometheus maths (pure) -------------------------------------------------------


def parse_histogram(text: str, name: str = HISTOGRAM) -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name`` from Prometheus text,
    summed over every other label (method, handler, status): ``{le: count}``
    with ``math.inf`` for ``+Inf``. Parsed by prometheus_client's own parser
    (quoted label values may hold ``}`` or ``,``); a scrape that stops
    parsing half-way keeps what came before the bad line."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = name + "_bucket"
    buckets: dict[float, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name != name:
                continue
            for sample in family.samples:
                le = sample.labels.get("le")
                if sample.name != wanted or le is None:
                    continue
                try:
                    bound = float(le)
                except ValueError:
                    continue
                buckets[bound] = buckets.get(bound, 0.0) + float(sample.value)
    except ValueError:
        pass
    return buckets


def bucket_deltas(
    previous: Mapping[float, float], current: Mapping[float, float]
) -> dict[float, float]:
    """Increase of each cumulative bucket between two scrapes.

    A counter that went down was reset (process restart): as Prometheus
    does, the current value is the increase. Buckets missing from the
    previous scrape count from zero.
    """
    reset = any(current.get(le, 0.0) < prev for le, prev in previous.items())
    if reset:
        return dict(current)
    return {le: max(0.0, count - previous.get(le, 0.0)) for le, count in current.items()}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative ``{le: count}``.

    Linear interpolation inside the bucket that holds the rank; a rank in the
    ``+Inf`` bucket gives the highest finite bound. None without observations.
    """
    if not buckets or not 0.0 <= q <= 1.0:
        return None
    items = sorted(buckets.items())
    if items[-1][0] != math.inf:
        return None  # malformed: no +Inf bucket
    total = items[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in items:
        if count >= rank:
            if upper_bound == math.inf:
                return lower_bound if len(items) > 1 else None
            in_bucket = count - lower_count
            if in_bucket <= 0:
                return upper_bound
            if upper_bound <= 0:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / in_bucket
        lower_bound, lower_count = upper_bound, count
    return None


def sum_buckets(parts: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """Add bucket maps (deltas of several colours)."""
    out: dict[float, float] = {}
    for part in parts:
        for le, count in part.items():
            out[le] = out.get(le, 0.0) + count
    return out


# --- which checks a poll asks (pure) ------------------------------------------------


def slow_checks_due(
    elapsed: float | None, *, slow_every: float, interval: float, changed: bool
) -> bool:
    """Whether a poll asks the slower checks too (deep paths per colour,
    frontends per colour, /metrics): on the first poll (``elapsed`` None),
    when the faster checks saw a change, or when ``slow_every`` seconds have
    nearly passed since they were last asked. "Nearly": half an interval
    early, so polls that come a little early (or late) still ask them every
    ``slow_every / interval`` polls and never one poll later than that."""
    if elapsed is None or changed:
        return True
    return elapsed >= slow_every - interval / 2


def _signature(results: Iterable[EndpointResult]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """What a change of a check means: status, version, colour, error."""
    return {(r.path, r.target): (r.status, r.version, r.colour, r.error) for r in results}


# --- the source ------------------------------------------------------------------------


class HealthUnreachable(SourceError):
    """nginx itself did not answer; carries the snapshot of failed results so
    the panel can show them while the source is marked not-ok."""

    def __init__(self, snapshot: HealthSnapshot, message: str) -> None:
        self.snapshot = snapshot
        super().__init__("health", message)


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    text = str(exc) or type(exc).__name__
    return redact(text)[:120]


class HealthSource(Source):
    """Health of every endpoint per target, plus p95 from the backends' metrics."""

    name = "health"
    kind = "health"

    def __init__(
        self, settings: Settings, *, clock: Clock = utcnow, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock=clock)
        self._client = client
        self._own_client = client is None
        self._scrapes: dict[str, tuple[float, dict[float, float]]] = {}
        self._first = True
        self._down: set[str] = set()
        """Colours nginx could not reach at the last poll (stopped, or never
        started): only their ``/api/health`` is asked again, not all four
        paths and the metrics, each of which waits for nginx to give up."""
        self._skipped: set[str] = set()
        """Colours on standby with their container stopped (from the last
        container list): not asked at all."""
        self._fe_skipped: set[str] = set()
        """Frontend colours on standby with their container stopped."""
        self._slow_at: datetime | None = None
        """When the slower checks were last asked (None: never, or they must
        be asked at the next poll)."""
        self._slow_results: dict[tuple[str, str], EndpointResult] = {}
        """The slower checks' last results, shown again between their polls."""
        self._fast_seen: dict[tuple[str, str], tuple[Any, ...]] = {}
        """The faster checks' last signatures: a change asks the rest at once."""
        self._p95_rate: tuple[float | None, float | None] = (None, None)
        """The last p95 and request rate, shown again between two scrapes."""
        self._p95_seen = False
        """Whether two scrapes gave bucket deltas yet (until then every poll scrapes)."""
        self._cert: tuple[tuple[int, int], datetime] | None = None
        """(mtime_ns, size) of nginx's certificate file and its notAfter: the
        file is parsed again only when it changes (scripts/tls.sh)."""

    @property
    def interval(self) -> float:
        return self.settings.refresh.health

    def note_containers(self, snapshot: ContainersSnapshot) -> bool:
        """Take the colours not to ask from a container list (the standby
        colour whose container is stopped); True when that set changed, so
        the caller can poll at once (a colour a deploy just started)."""
        skipped: set[str] = set(not_running(snapshot))
        fe_skipped: set[str] = set(frontend_not_running(snapshot))
        if skipped == self._skipped and fe_skipped == self._fe_skipped:
            return False
        for colour in skipped - self._skipped:
            self._down.discard(colour)
            self._scrapes.pop(colour, None)
        self._skipped = skipped
        self._slow_at = None  # a colour started or stopped: look at all of it now
        self._fe_skipped = fe_skipped
        return True

    @property
    def skipped(self) -> frozenset[str]:
        """The colours the next poll will not ask (stopped standby)."""
        return frozenset(self._skipped)

    @property
    def frontend_skipped(self) -> frozenset[str]:
        """The frontend colours the next poll will not ask (stopped standby)."""
        return frozenset(self._fe_skipped)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.settings.base_url,
                timeout=httpx.Timeout(self.settings.request_timeout),
                # every connection a poll opens is kept for the next one: a
                # slow poll asks 12 checks at once, and with 8 kept, 4 were
                # closed and opened again each time (issue 15, fourth pass)
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                headers={"User-Agent": "stackdeck"},
                follow_redirects=False,
            )
        return self._client

    @staticmethod
    def url_for(target: str, path: str) -> str:
        """``/api/health`` through nginx, ``/direct/blue/api/health`` for a
        colour; the frontend's ``/version.json`` per colour through
        ``/direct/frontend_blue/version.json``."""
        if target == "nginx":
            return path
        if path == FRONTEND_PATH:
            return f"/direct/frontend_{target}{path}"
        return f"/direct/{target}{path}"

    async def _probe(self, target: str, path: str) -> EndpointResult:
        started = time.perf_counter()
        try:
            response = await self.client().get(self.url_for(target, path))
        except httpx.HTTPError as exc:
            return EndpointResult(path=path, target=target, error=_short_error(exc))  # type: ignore[arg-type]
        latency = (time.perf_counter() - started) * 1000.0
        version = colour = None
        error = None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            version = body.get("version") or None
            colour = body.get("colour") or body.get("color") or None
            if response.status_code >= 400:
                detail = body.get("detail") or body.get("error") or body.get("status")
                error = redact(str(detail))[:120] if detail else None
        if colour is None and path == FRONTEND_PATH:
            # nginx names the frontend colour it proxied to (frontend_<colour>)
            header = response.headers.get("X-Upstream", "")
            colour = header.removeprefix("frontend_") if header.startswith("frontend_") else None
        elif colour is None:
            header = response.headers.get("X-Upstream-Colour", "")
            colour = header.removeprefix("backend_") or None
        if colour not in ("blue", "green"):
            colour = None
        if response.status_code >= 400 and error is None:
            error = response.reason_phrase or f"HTTP {response.status_code}"
        return EndpointResult(
            path=path,
            target=target,  # type: ignore[arg-type]
            status=response.status_code,
            latency_ms=round(latency, 1),
            version=str(version) if version is not None else None,
            colour=colour,
            error=error,
        )

    async def _scrape(self, colour: str) -> dict[float, float] | None:
        """Bucket deltas of one colour since its previous scrape (None: no delta yet)."""
        try:
            response = await self.client().get(self.url_for(colour, self.settings.metrics_path))
        except httpx.HTTPError:
            self._scrapes.pop(colour, None)
            return None
        if response.status_code != 200:
            self._scrapes.pop(colour, None)
            return None
        now = time.monotonic()
        current = parse_histogram(response.text)
        previous = self._scrapes.get(colour)
        self._scrapes[colour] = (now, current)
        if previous is None or not current:
            return None
        return bucket_deltas(previous[1], current)

    def _tls_days_left(self) -> int | None:
        """Days before nginx's certificate expires; None when unreadable."""
        path = self.settings.tls_cert_file
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size)
            if self._cert is None or self._cert[0] != key:
                self._cert = (key, read_certificate(path).not_after)
        except (OSError, CertificateError):
            self._cert = None
            return None
        return days_left(self._cert[1], self.clock())

    async def poll(self) -> HealthSnapshot:
        last_scrape = min((t for t, _ in self._scrapes.values()), default=None)
        # Two waves: through nginx (the serving colour), then both colours
        # directly. Each backend so sees one request per path at a time: a
        # deep health check that writes a probe key per colour must not race
        # with itself because the console asked twice at once.
        through = await asyncio.gather(
            *(self._probe("nginx", path) for path in (*HEALTH_PATHS, FRONTEND_PATH))
        )
        if self._first and self.early is not None:
            # Nothing on screen yet: show the answers through nginx now; the
            # direct ones may wait for nginx to give up on a stopped colour.
            self._first = False
            await self.early(HealthSnapshot(taken_at=self.clock(), results=list(through)))
        asked = [c for c in COLOURS if c not in self._skipped]
        up = [c for c in asked if c not in self._down]
        fe_asked = [c for c in COLOURS if c not in self._fe_skipped]
        slow_keys = [(path, c) for c in up for path in HEALTH_PATHS[1:]]
        slow_keys += [(FRONTEND_PATH, c) for c in fe_asked]
        now = self.clock()
        slow = slow_checks_due(
            (now - self._slow_at).total_seconds() if self._slow_at is not None else None,
            slow_every=self.settings.refresh.health_slow,
            interval=self.interval,
            changed=any(self._fast_seen.get(key) != sig for key, sig in _signature(through).items())
            or any(key not in self._slow_results for key in slow_keys),
        )
        direct_probes = [self._probe(c, HEALTH_PATHS[0]) for c in asked]
        if slow:
            direct_probes += [self._probe(c, path) for path, c in slow_keys]
        # the scrapes go with the slower checks once a p95 exists; until then
        # every poll (the first p95 needs two scrapes: one interval, not 15 s)
        scrape = slow or not self._p95_seen
        scrapes = [self._scrape(colour) for colour in up] if scrape else []
        direct, scraped = await asyncio.gather(
            asyncio.gather(*direct_probes), asyncio.gather(*scrapes)
        )
        if slow:
            self._slow_at = now
            self._slow_results = {(r.path, r.target): r for r in direct[len(asked) :]}
        fast = [*through, *direct[: len(asked)]]
        if any(self._fast_seen.get(key) != sig for key, sig in _signature(fast).items()):
            self._slow_at = None if not slow else self._slow_at
        self._fast_seen = _signature(fast)
        by_key: dict[tuple[str, str], EndpointResult] = {(r.path, r.target): r for r in fast}
        by_key.update((key, self._slow_results[key]) for key in slow_keys)
        for colour in asked:
            first = by_key[(HEALTH_PATHS[0], colour)]
            if colour not in up:
                for path in HEALTH_PATHS[1:]:
                    by_key[(path, colour)] = first.model_copy(
                        update={"path": path, "latency_ms": None}
                    )
            if unreachable(first):
                self._down.add(colour)
            else:
                self._down.discard(colour)
        results: list[EndpointResult] = [
            by_key[(path, t)]
            for path in (*HEALTH_PATHS, FRONTEND_PATH)
            for t in TARGETS
            if (path, t) in by_key
        ]
        deltas = [d for d in scraped if d]
        p95, rate = self._p95_rate if not scrape else (None, None)
        if deltas:
            self._p95_seen = True
            combined = sum_buckets(deltas)
            p95 = histogram_quantile(0.95, combined)
            if last_scrape is not None and math.inf in combined:
                elapsed = max(1e-6, time.monotonic() - last_scrape)
                rate = round(combined[math.inf] / elapsed, 3)
        self._p95_rate = (p95, rate)
        snapshot = HealthSnapshot(
            taken_at=self.clock(),
            results=results,
            p95_seconds=round(p95, 4) if p95 is not None else None,
            request_rate=rate,
            tls_days_left=self._tls_days_left(),
        )
        nginx = [r for r in results if r.target == "nginx"]
        if nginx and all(r.status is None for r in nginx):
            reason = nginx[0].error or "no answer"
            raise HealthUnreachable(snapshot, f"nginx at {self.settings.base_url}: {reason}")
        return snapshot

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            client, self._client = self._client, None
            await client.aclose()
