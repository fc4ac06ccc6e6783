"""HTTP checks through nginx: per colour (``/direct/<colour>/...``) and as
clients see it, plus the bake-window statistics (p95 latency, error rate)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from console.core.ops.context import OpContext

__all__ = ["BakeStats", "Probe", "client", "p95", "percentile", "probe"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def p95(values: Sequence[float]) -> float | None:
    return percentile(values, 95)


@dataclass(frozen=True)
class Probe:
    url: str
    status: int | None
    latency_ms: float
    body: Any = None
    error: str | None = None
    upstream: str | None = None
    """``X-Upstream-Colour`` header set by nginx."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def version(self) -> str | None:
        return self.body.get("version") if isinstance(self.body, dict) else None

    @property
    def colour(self) -> str | None:
        return self.body.get("colour") if isinstance(self.body, dict) else None

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status} in {self.latency_ms:.0f} ms"


def client(ctx: OpContext, timeout_s: float | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=ctx.base_url, timeout=timeout_s or ctx.http_timeout)


async def probe(
    http: httpx.AsyncClient,
    path: str,
    *,
    method: str = "GET",
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> Probe:
    """One request; never raises for HTTP or transport errors."""
    start = time.perf_counter()
    try:
        r = await http.request(method, path, json=json_body, headers=headers)
    except httpx.HTTPError as exc:
        return Probe(
            path,
            None,
            (time.perf_counter() - start) * 1000,
            error=type(exc).__name__ + (f": {exc}" if str(exc) else ""),
        )
    latency = (time.perf_counter() - start) * 1000
    body: Any
    try:
        body = r.json()
    except ValueError:
        body = r.text[:500]
    return Probe(
        path, r.status_code, latency, body=body, upstream=r.headers.get("x-upstream-colour")
    )


@dataclass
class BakeStats:
    """Requests seen through nginx during a bake window."""

    expected_version: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wrong_version: int = 0
    last_error: str | None = None
    versions: dict[str, int] = field(default_factory=dict)

    def add(self, p: Probe) -> None:
        self.latencies_ms.append(p.latency_ms)
        if not p.ok:
            self.errors += 1
            self.last_error = p.describe()
            return
        v = p.version or "?"
        self.versions[v] = self.versions.get(v, 0) + 1
        if v != self.expected_version:
            self.wrong_version += 1

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @property
    def p95_ms(self) -> float | None:
        return p95(self.latencies_ms)

    def verdict(
        self, max_p95_ms: float, max_error_rate: float, min_requests: int = 5
    ) -> str | None:
        """None when the window passed, else the operator-readable reason."""
        if self.count < min_requests:
            return (
                f"only {self.count} requests completed during the bake window (need {min_requests})"
            )
        if self.error_rate > max_error_rate:
            return (
                f"error rate {self.error_rate:.1%} ({self.errors}/{self.count}) above "
                f"{max_error_rate:.1%}; last: {self.last_error}"
            )
        if self.wrong_version:
            return (
                f"{self.wrong_version}/{self.count} responses did not come from {self.expected_version} "
                f"(seen: {self.versions})"
            )
        p = self.p95_ms
        if p is not None and p > max_p95_ms:
            return f"p95 latency {p:.0f} ms above the {max_p95_ms:g} ms threshold"
        return None

    def summary(self) -> dict[str, Any]:
        p = self.p95_ms
        return {
            "requests": self.count,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p95_ms": None if p is None else round(p, 1),
            "versions": dict(self.versions),
        }
