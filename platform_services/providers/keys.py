"""The Redis key schema of the Investment Analysis Platform, in one place.

This module is **pure standard library**: the operations console imports it
to read quotas, the emergency switch and the statistics straight from Redis,
without pulling in the platform's dependencies. Keep it that way.

Key families (every key the platform writes is listed here):

========================================  =========================================  ==============
key                                       what                                       expiry
========================================  =========================================  ==============
``cache:price:<SYMBOL>``                  cached quote (JSON), or a negative entry   PRICE_CACHE_TTL
                                          ``{"unknown": true}`` for unknown symbols
``quota:<provider>:<window>:<id>``        calls admitted in one fixed window         window + grace
``emergency_rate_limit``                  set by on-call: no outbound provider call  set by operator
``stats:cache:hits`` / ``:misses``        cache lookups since the data set began     none
``stats:cache:hits:<YYYY-MM-DD>``         the same per UTC day                       STATS_TTL
``stats:calls:<provider>:<YYYY-MM-DD>``   provider calls admitted per UTC day        STATS_TTL
``ratelimit:login:<user>:<ip>``           login attempts since the last success      LOGIN_WINDOW
``worker:heartbeat``                      JSON heartbeat of the latest worker        HEARTBEAT_TTL
``worker:heartbeats``                     hash: hostname -> that worker's heartbeat  HEARTBEAT_TTL
``worker:lock``                           one ingestion cycle at a time              cycle length
``worker:cycle:<slot>``                   who ran the cycle of one interval slot     2 x interval
``health:probe:<colour>``                 the cache health check's round trip        10 s
========================================  =========================================  ==============

One pub/sub channel, not a key (nothing is stored): ``prices:updates``
carries every quote fetched from a provider, as it is written to the cache
(the worker's and the API's), for the price stream (``/api/ws/prices``).

Only the ``cache:`` family is disposable: ``POST /api/cache/clear`` (and the
console's flush) delete ``cache:*`` by SCAN + UNLINK and nothing else. Quota
counters, statistics and the emergency switch never start with ``cache:``, so a
flush by prefix cannot reset a quota and let calls through that the provider
would refuse.

Quota windows are fixed windows aligned to the Unix epoch: the window id is
``floor(epoch_seconds / window_seconds)``. For ``day`` windows that is the UTC
day (Unix time has no leap seconds, so every UTC day is exactly 86400 s), for
``minute`` windows the wall-clock minute. A window's counter resets when the
next window starts (``resets_at``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# --- cache ------------------------------------------------------------------

CACHE_PREFIX = "cache:"
"""Everything under this prefix may be deleted at any time."""
PRICE_CACHE_PREFIX = CACHE_PREFIX + "price:"
CACHE_SCAN_PATTERN = CACHE_PREFIX + "*"
"""``SCAN MATCH`` pattern of a cache flush."""


def price_cache_key(symbol: str) -> str:
    """``cache:price:AAPL``: the cached quote of one symbol."""
    return PRICE_CACHE_PREFIX + symbol


PRICE_UPDATES_CHANNEL = "prices:updates"
"""Pub/sub channel: each fresh quote (the cache entry's JSON) as it is cached."""


# --- quota ledger -----------------------------------------------------------

QUOTA_PREFIX = "quota:"
EMERGENCY_KEY = "emergency_rate_limit"
"""While this key exists no outbound provider call is made (runbook:
``SET emergency_rate_limit 1 EX 3600``)."""

QUOTA_GRACE_S = 60
"""Extra lifetime of a quota counter after its window ends (for the console)."""

WINDOW_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class ProviderSpec:
    """One market-data provider and its free-tier quota."""

    name: str
    """Ledger name, used in keys and metrics: ``alpha_vantage``."""
    label: str
    """Display name: ``Alpha Vantage``."""
    limit: int
    """Calls allowed per window."""
    window: str
    """``minute`` or ``day`` (a key of WINDOW_SECONDS)."""
    kind: str = "prices"
    """``prices`` (quote provider) or ``news``."""

    @property
    def window_seconds(self) -> int:
        return WINDOW_SECONDS[self.window]


PROVIDER_ORDER = ("alpha_vantage", "finnhub", "polygon", "newsapi")
"""Display order (the runbook's order)."""

DEFAULT_NEWSAPI_DAILY_LIMIT = 100


def provider_table(
    newsapi_daily_limit: int | None = None, env: Mapping[str, str] | None = None
) -> dict[str, ProviderSpec]:
    """The providers and their quotas from the runbook.

    NewsAPI's daily limit is configurable: the argument wins, then
    ``NEWSAPI_DAILY_LIMIT`` from ``env`` (default: the process environment),
    then 100.
    """
    if newsapi_daily_limit is None:
        source = os.environ if env is None else env
        raw = source.get("NEWSAPI_DAILY_LIMIT", "").strip()
        newsapi_daily_limit = int(raw) if raw else DEFAULT_NEWSAPI_DAILY_LIMIT
    if newsapi_daily_limit < 0:
        raise ValueError("NEWSAPI_DAILY_LIMIT must be >= 0")
    specs = (
        ProviderSpec("alpha_vantage", "Alpha Vantage", 25, "day"),
        ProviderSpec("finnhub", "Finnhub", 60, "minute"),
        ProviderSpec("polygon", "Polygon", 5, "minute"),
        ProviderSpec("newsapi", "NewsAPI", newsapi_daily_limit, "day", kind="news"),
    )
    return {spec.name: spec for spec in specs}


def _epoch(now: datetime | float | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware (UTC) moment")
        return now.timestamp()
    return float(now)


def window_id(window_seconds: int, now: datetime | float | None = None) -> int:
    """Index of the fixed window containing ``now`` (windows aligned to the epoch)."""
    return math.floor(_epoch(now) / window_seconds)


def window_start(window_seconds: int, now: datetime | float | None = None) -> datetime:
    """First instant of the window containing ``now`` (UTC)."""
    return datetime.fromtimestamp(window_id(window_seconds, now) * window_seconds, UTC)


def resets_at(window_seconds: int, now: datetime | float | None = None) -> datetime:
    """When the window containing ``now`` ends and its counter starts over."""
    return window_start(window_seconds, now) + timedelta(seconds=window_seconds)


def seconds_until_reset(window_seconds: int, now: datetime | float | None = None) -> float:
    """Seconds from ``now`` to the end of its window, in ``(0, window_seconds]``."""
    return (window_id(window_seconds, now) + 1) * window_seconds - _epoch(now)


def quota_key(provider: str, window: str, wid: int) -> str:
    """``quota:polygon:minute:29012345``."""
    return f"{QUOTA_PREFIX}{provider}:{window}:{wid}"


def quota_key_for(spec: ProviderSpec, now: datetime | float | None = None) -> str:
    """The counter key of ``spec``'s window containing ``now``."""
    return quota_key(spec.name, spec.window, window_id(spec.window_seconds, now))


def quota_ttl(spec: ProviderSpec, now: datetime | float | None = None) -> int:
    """Lifetime to give a fresh counter: the rest of its window plus a grace."""
    return math.ceil(seconds_until_reset(spec.window_seconds, now)) + QUOTA_GRACE_S


# --- statistics -------------------------------------------------------------

STATS_PREFIX = "stats:"
STATS_CACHE_HITS = "stats:cache:hits"
STATS_CACHE_MISSES = "stats:cache:misses"
STATS_TTL_S = 40 * 86400
"""Per-day statistics keys live for 40 days (a month of history, plus slack)."""


def utc_day(now: datetime | float | None = None) -> date:
    return datetime.fromtimestamp(_epoch(now), UTC).date()


def stats_cache_key(kind: str, day: date) -> str:
    """``stats:cache:hits:2025-01-31`` (kind: ``hits`` or ``misses``)."""
    if kind not in ("hits", "misses"):
        raise ValueError(f"unknown cache statistic {kind!r}")
    return f"{STATS_PREFIX}cache:{kind}:{day.isoformat()}"


def stats_calls_key(provider: str, day: date) -> str:
    """``stats:calls:finnhub:2025-01-31``: provider calls admitted that UTC day."""
    return f"{STATS_PREFIX}calls:{provider}:{day.isoformat()}"


# --- login rate limit, worker -------------------------------------------------

LOGIN_RATE_PREFIX = "ratelimit:login:"


def login_attempts_key(username: str, client_ip: str) -> str:
    """Login attempts of one username from one client address since its last success."""
    return f"{LOGIN_RATE_PREFIX}{username.lower()}:{client_ip}"


WORKER_HEARTBEAT_KEY = "worker:heartbeat"
"""The latest heartbeat of any worker (kept for old readers and images)."""
WORKER_HEARTBEATS_KEY = "worker:heartbeats"
"""Hash: one field per worker container (its hostname), its heartbeat JSON.
Readers count a field as alive by its ``epoch``; workers prune old fields."""
WORKER_LOCK_KEY = "worker:lock"
WORKER_CYCLE_PREFIX = "worker:cycle:"


def worker_cycle_key(slot: int) -> str:
    """``worker:cycle:5870123``: set (NX) by the one worker that runs the
    cycle of that interval slot (``floor(epoch / WORKER_INTERVAL_S)``); its
    value is that worker's identity."""
    return f"{WORKER_CYCLE_PREFIX}{int(slot)}"


def alive_workers(
    beats: Mapping[bytes | str, bytes | str], now: float, max_age_s: float = 60.0
) -> dict[str, dict]:
    """The fields of ``worker:heartbeats`` whose heartbeat is at most
    ``max_age_s`` old, parsed (hostname -> heartbeat); unreadable ones left out."""
    out: dict[str, dict] = {}
    for host, raw in beats.items():
        try:
            beat = json.loads(raw)
            age = now - float(beat["epoch"])
        except (ValueError, TypeError, KeyError):
            continue
        if -5 < age <= max_age_s:
            out[host.decode() if isinstance(host, bytes) else str(host)] = beat
    return out


HEALTH_PROBE_PREFIX = "health:probe:"
