"""Price lookups: Redis cache → providers within quota (with fallback) → stored prices.

Shared by the API (``GET /api/stocks/prices``) and the ingestion worker.

For every symbol:

1. ``cache:price:<SYMBOL>`` holds a fresh quote → served from the cache. It may
   also hold ``{"unknown": true}``: no provider knew the symbol recently, and
   asking again would only burn quota.
2. Otherwise the quote providers are tried in ``PRICE_PROVIDERS`` order. Each
   call first asks the quota ledger; a denied call is not made and the next
   provider is tried. A provider that does not know the symbol, fails or
   rate-limits us also hands over to the next one.
3. A quote is cached for ``PRICE_CACHE_TTL_S`` and published on
   ``prices:updates`` (the price stream's feed). The caller stores it in the
   ``prices`` hypertable (the API only when the whole request was valid).
4. No quote, and providers said "unknown" with none failing → the symbol is
   unknown (negative cache entry). Once ``UNKNOWN_SYMBOL_CONSENSUS`` (2)
   providers agree, the others are not asked. No quote for another reason
   (quotas exhausted, emergency switch, providers down) → the last stored
   price, marked stale, or nothing (the API answers 503 with Retry-After).

Concurrent misses of the same symbol in one process share one provider call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from platform_services import telemetry
from platform_services.db.store import Store
from platform_services.providers import keys
from platform_services.providers.clients import (
    ProviderClient,
    ProviderError,
    Quote,
    QuoteClient,
    SymbolNotFound,
)
from platform_services.providers.ledger import Admission, QuotaLedger
from platform_services.settings import Settings

log = logging.getLogger(__name__)

CACHE_ENTRY_MEMO_MAX = 1024
"""Raw cache values whose decoded entries a process keeps (a few per symbol
asked recently; cleared whole when full)."""


@dataclass(frozen=True)
class PriceEntry:
    quote: Quote
    source: str
    """``cache``, ``provider`` or ``database``."""
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        data = self.quote.to_json()
        data.update({"source": self.source, "stale": self.stale, "currency": "USD"})
        return data

    @functools.cached_property
    def json_bytes(self) -> bytes:
        """``to_json()`` rendered as the API renders JSON (:func:`compact_json`),
        once per entry: a cached quote's entry is kept per raw cache value
        (``MarketService``), so the hot cached path serialises it once, not on
        every request. (``cached_property`` writes the instance ``__dict__``,
        which a frozen dataclass allows.)"""
        return compact_json(self.to_json())


def compact_json(content: Any) -> bytes:
    """JSON exactly as Starlette's ``JSONResponse.render`` writes it, so bytes
    assembled from pieces are the bytes ``JSONResponse`` would have sent."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


@dataclass
class FetchOutcome:
    quote: Quote | None = None
    not_found_by: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    denied: list[Admission] = field(default_factory=list)

    @property
    def unknown(self) -> bool:
        return self.quote is None and bool(self.not_found_by) and not self.errors


@dataclass
class LookupResult:
    entries: dict[str, PriceEntry] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Symbol → why no price could be given."""
    retry_after_s: int | None = None

    @property
    def fresh_quotes(self) -> list[Quote]:
        return [e.quote for e in self.entries.values() if e.source == "provider"]


class MarketService:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        store: Store,
        ledger: QuotaLedger,
        clients: dict[str, ProviderClient],
        *,
        stats_delay_s: float = 0.0,
    ) -> None:
        """``stats_delay_s``: how long cache hit/miss counts may wait in this
        process before they are added to Redis's totals (0: at once, one
        round trip per lookup). The API batches them (:meth:`flush_cache_stats`
        runs then, before ``/api/metrics/cache`` answers and at shutdown):
        the per-request pipeline was a second Redis round trip on every
        cached request."""
        self.settings = settings
        self.stats_delay_s = stats_delay_s
        self._pending_stats = {"hits": 0, "misses": 0}
        self._stats_flush: asyncio.TimerHandle | None = None
        self._stats_tasks: set[asyncio.Task[None]] = set()
        self.redis = redis
        self.store = store
        self.ledger = ledger
        self.clients = clients
        self.order = settings.price_provider_order()
        self._inflight: dict[str, asyncio.Task[FetchOutcome]] = {}
        self._from_cache: dict[str, PriceEntry] = {}
        """Raw cache value → its entry: the same value (a quote is re-cached
        with a new ``cached_at`` whenever it is fetched again) is decoded,
        validated and serialised once. Bounded by :data:`CACHE_ENTRY_MEMO_MAX`."""

    # --- public ----------------------------------------------------------------------

    async def lookup(
        self,
        symbols: list[str],
        *,
        count_stats: bool = True,
        quota_share: float | None = None,
        use_cache: bool = True,
        stop_on_unknown: bool = True,
    ) -> LookupResult:
        """Prices of ``symbols``; see the module docstring for the order.

        ``stop_on_unknown``: once one symbol turns out unknown, symbols not yet
        asked for are skipped (the API rejects the whole request anyway, and
        every skipped symbol is quota kept). The worker turns it off.
        """
        result = LookupResult()
        misses: list[str] = list(symbols)
        if use_cache:
            misses = []
            try:
                raw = await self.redis.mget([keys.price_cache_key(s) for s in symbols])
            except RedisError as exc:
                # No cache and no ledger: no provider call either, but stored
                # prices can still be served (stale) below.
                log.warning("cache unavailable: %s", type(exc).__name__)
                raw = [None] * len(symbols)
                count_stats = False
            for symbol, value in zip(symbols, raw, strict=True):
                known = self._from_cache.get(value) if isinstance(value, str) else None
                if known is not None:
                    result.entries[symbol] = known
                    continue
                cached = _decode(value)
                if cached is None:
                    misses.append(symbol)
                elif cached.get("unknown"):
                    result.unknown.append(symbol)
                else:
                    try:
                        quote = Quote.from_json(cached)
                    except (KeyError, TypeError, ValueError):
                        misses.append(symbol)
                        continue
                    entry = PriceEntry(quote, "cache")
                    result.entries[symbol] = entry
                    if isinstance(value, str):
                        if len(self._from_cache) >= CACHE_ENTRY_MEMO_MAX:
                            self._from_cache.clear()
                        self._from_cache[value] = entry
            if count_stats:
                await self._count_cache(hits=len(symbols) - len(misses), misses=len(misses))
        if result.unknown and stop_on_unknown:
            # A known-unknown symbol makes the request invalid: no provider call.
            return result

        if misses:
            sem = asyncio.Semaphore(4)
            give_up = asyncio.Event()

            async def one(symbol: str) -> tuple[str, FetchOutcome | None]:
                async with sem:
                    if give_up.is_set():
                        return symbol, None
                    outcome = await self._fetch_shared(symbol, quota_share)
                    if outcome.unknown and stop_on_unknown:
                        give_up.set()
                    return symbol, outcome

            outcomes = await asyncio.gather(*(one(s) for s in misses))
            stale_needed: list[str] = []
            for symbol, maybe in outcomes:
                if maybe is None:
                    continue  # not asked: the request already names an unknown symbol
                outcome = maybe
                if outcome.quote is not None:
                    result.entries[symbol] = PriceEntry(outcome.quote, "provider")
                elif outcome.unknown:
                    result.unknown.append(symbol)
                else:
                    stale_needed.append(symbol)
                    retry = _retry_after(outcome)
                    result.retry_after_s = min(result.retry_after_s or retry, retry)
                    result.unavailable[symbol] = _reason(outcome)
            await self._cache_outcomes(result)
            if stale_needed:
                await self._fill_from_store(stale_needed, result)
        return result

    async def persist(self, quotes: list[Quote]) -> int:
        """Store fresh quotes in the prices hypertable (0 when the database is down)."""
        if not quotes:
            return 0
        try:
            return await self.store.insert_quotes(quotes, datetime.now(UTC))
        except Exception as exc:  # a lost row must not fail the request
            log.warning("prices not stored: %s", type(exc).__name__)
            return 0

    # --- internals -------------------------------------------------------------------------

    async def _fetch_shared(self, symbol: str, quota_share: float | None) -> FetchOutcome:
        task = self._inflight.get(symbol)
        if task is None:
            task = asyncio.create_task(self._fetch(symbol, quota_share))
            self._inflight[symbol] = task
            task.add_done_callback(functools.partial(self._forget, symbol))
        return await asyncio.shield(task)

    def _forget(self, symbol: str, _task: asyncio.Task[FetchOutcome]) -> None:
        self._inflight.pop(symbol, None)

    async def _fetch(self, symbol: str, quota_share: float | None) -> FetchOutcome:
        outcome = FetchOutcome()
        for name in self.order:
            client = self.clients.get(name)
            if not isinstance(client, QuoteClient):
                continue
            spec = self.ledger.providers[name]
            limit = None if quota_share is None else math.floor(spec.limit * quota_share)
            try:
                admission = await self.ledger.acquire(name, limit=limit)
            except RedisError as exc:
                # No ledger, no call: an uncounted call could break the quota.
                # (And no point asking the ledger about the other providers.)
                outcome.errors[name] = f"ledger unavailable ({type(exc).__name__})"
                break
            if not admission.admitted:
                telemetry.QUOTA_DENIED.labels(name, admission.reason).inc()
                outcome.denied.append(admission)
                continue
            started = time.perf_counter()
            result = "ok"
            try:
                outcome.quote = await client.quote(symbol)
            except SymbolNotFound:
                result = "not_found"
                outcome.not_found_by.append(name)
            except ProviderError as exc:
                result = exc.outcome
                outcome.errors[name] = exc.message
                log.warning(
                    "provider call failed",
                    extra={"fields": {"provider": name, "symbol": symbol, "outcome": result}},
                )
            latency = round((time.perf_counter() - started) * 1000, 1)
            telemetry.PROVIDER_CALLS.labels(name, result).inc()
            await self._log_call(name, "quote", symbol, result, latency)
            if outcome.quote is not None:
                break
            if len(outcome.not_found_by) >= self.settings.unknown_symbol_consensus:
                # Enough providers agree the symbol does not exist: asking the
                # rest would only spend scarce quota (Alpha Vantage: 25 a day).
                break
        return outcome

    async def _log_call(
        self, provider: str, operation: str, symbol: str | None, outcome: str, latency: float
    ) -> None:
        try:
            await self.store.log_call(
                provider, operation, symbol, outcome, latency, self.settings.call_price(provider)
            )
        except Exception as exc:  # the call log must never fail a lookup
            log.warning("provider call not logged: %s", type(exc).__name__)

    async def _cache_outcomes(self, result: LookupResult) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for symbol, entry in result.entries.items():
            if entry.source == "provider":
                payload = entry.quote.to_json()
                payload["cached_at"] = datetime.now(UTC).isoformat()
                encoded = json.dumps(payload)
                pipe.set(keys.price_cache_key(symbol), encoded, ex=self.settings.price_cache_ttl_s)
                # The price stream's feed: same round trip, no subscriber needed.
                pipe.publish(keys.PRICE_UPDATES_CHANNEL, encoded)
        for symbol in result.unknown:
            pipe.set(
                keys.price_cache_key(symbol),
                json.dumps({"unknown": True, "cached_at": datetime.now(UTC).isoformat()}),
                ex=self.settings.unknown_symbol_ttl_s,
            )
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("cache not updated: %s", type(exc).__name__)

    async def _fill_from_store(self, symbols: list[str], result: LookupResult) -> None:
        try:
            stored = await self.store.latest_quotes(symbols)
        except Exception as exc:
            log.warning("no stored prices: %s", type(exc).__name__)
            return
        for quote in stored:
            result.entries[quote.symbol] = PriceEntry(quote, "database", stale=True)
            result.unavailable.pop(quote.symbol, None)
        if not result.unavailable:
            result.retry_after_s = None

    async def _count_cache(self, *, hits: int, misses: int) -> None:
        telemetry.CACHE_HITS.inc(hits)
        telemetry.CACHE_MISSES.inc(misses)
        if self.stats_delay_s <= 0:
            await self._write_cache_stats(hits, misses)
            return
        self._pending_stats["hits"] += hits
        self._pending_stats["misses"] += misses
        if self._stats_flush is None:
            self._stats_flush = asyncio.get_running_loop().call_later(
                self.stats_delay_s, self._flush_soon
            )

    def _flush_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.flush_cache_stats())
        self._stats_tasks.add(task)
        task.add_done_callback(self._stats_tasks.discard)

    async def flush_cache_stats(self) -> None:
        """Add the counts waiting in this process to Redis's totals now."""
        if self._stats_flush is not None:
            self._stats_flush.cancel()
            self._stats_flush = None
        hits, misses = self._pending_stats["hits"], self._pending_stats["misses"]
        self._pending_stats["hits"] = self._pending_stats["misses"] = 0
        if hits or misses:
            await self._write_cache_stats(hits, misses)

    async def _write_cache_stats(self, hits: int, misses: int) -> None:
        day = keys.utc_day()
        pipe = self.redis.pipeline(transaction=False)
        for kind, n, total_key in (
            ("hits", hits, keys.STATS_CACHE_HITS),
            ("misses", misses, keys.STATS_CACHE_MISSES),
        ):
            if n:
                pipe.incrby(total_key, n)
                pipe.incrby(keys.stats_cache_key(kind, day), n)
                pipe.expire(keys.stats_cache_key(kind, day), keys.STATS_TTL_S)
        try:
            await pipe.execute()
        except RedisError:
            pass


def _decode(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _retry_after(outcome: FetchOutcome) -> int:
    if outcome.denied:
        return min(a.retry_after_s for a in outcome.denied)
    return 30


def _reason(outcome: FetchOutcome) -> str:
    reasons = [f"{a.provider}: quota {a.reason}" for a in outcome.denied]
    reasons += [f"{p}: {m}" for p, m in outcome.errors.items()]
    return "; ".join(reasons) or "no provider configured"
