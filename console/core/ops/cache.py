"""Redis maintenance: cache flush, cache warming, the emergency rate limit.

The key schema is the platform's (``platform_services.providers.keys``, pure
standard library). A flush by prefix deletes only ``cache:*`` keys with SCAN
+ UNLINK (never KEYS, never blocking the server), after counting them.
The full ``FLUSHDB`` of the runbook's troubleshooting section is behind a typed
confirmation (the Redis container's name), and even then the quota counters
and the emergency switch survive: they are dumped first and restored right
after, because losing them would let the platform exceed the providers'
quotas.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.db import connect_redis
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.table import CacheFlushParams, CacheWarmParams, EmergencyLimitParams
from platform_services.providers import keys

__all__ = [
    "run_cache_flush",
    "run_cache_warm",
    "run_emergency_limit",
    "validate_cache_flush",
    "validate_cache_warm",
]

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
PRESERVE = (keys.QUOTA_PREFIX + "*", keys.EMERGENCY_KEY)
"""Key patterns a FLUSHDB keeps."""


async def validate_cache_flush(ctx: OpContext, params: CacheFlushParams) -> CacheFlushParams:
    """The prefix is checked by the model; a FLUSHDB needs the Redis container's name."""
    if params.all and params.confirm != ctx.container("redis"):
        raise BadInput(
            f"a full FLUSHDB deletes every key (quota counters are kept): type the Redis container's name "
            f"to confirm (--confirm {ctx.container('redis')})",
            field="confirm",
        )
    return params


async def _scan(r: Any, pattern: str, count: int = 1000) -> AsyncIterator[list[str]]:
    cursor = 0
    while True:
        cursor, batch = await r.scan(cursor=cursor, match=pattern, count=count)
        if batch:
            yield list(batch)
        if cursor == 0:
            return


async def _count(r: Any, pattern: str) -> int:
    n = 0
    async for batch in _scan(r, pattern):
        n += len(batch)
    return n


async def run_cache_flush(
    ctx: OpContext, params: CacheFlushParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("cache-flush", ctx.redact)
    prefix, dry_run, all = params.prefix, params.dry_run, params.all
    r = connect_redis(ctx)
    try:
        pattern = prefix + "*"
        quota_before = await _count(r, keys.QUOTA_PREFIX + "*")
        if all:
            total = await r.dbsize()
            yield ev.info(
                "count",
                f"FLUSHDB would delete {total} keys; {quota_before} quota counters are kept",
                keys=total,
            )
            if dry_run:
                yield ev.done(f"dry run: {total} keys in the database, nothing deleted", keys=total)
                return
            kept: list[tuple[str, bytes, int]] = []
            raw = connect_redis(ctx, decode=False)
            try:
                for pat in PRESERVE:
                    async for batch in _scan(r, pat):
                        for key in batch:
                            dump = await raw.dump(key)
                            if dump is not None:
                                ttl = await r.pttl(key)
                                kept.append((key, dump, max(int(ttl), 0)))
                await r.flushdb(asynchronous=True)
                for key, dump, ttl in kept:
                    await raw.restore(key, ttl, dump, replace=True)
            finally:
                await raw.aclose()
            yield ev.done(
                f"FLUSHDB done: {total - len(kept)} keys deleted, {len(kept)} quota/emergency keys kept",
                deleted=total - len(kept),
                kept=len(kept),
            )
            return
        total = await _count(r, pattern)
        yield ev.info("count", f"{total} keys match {pattern}", keys=total, pattern=pattern)
        if dry_run:
            yield ev.done(f"dry run: {total} keys would be deleted, nothing changed", keys=total)
            return
        deleted = 0
        async for batch in _scan(r, pattern):
            for i in range(0, len(batch), 500):
                deleted += int(await r.unlink(*batch[i : i + 500]))
        quota_after = await _count(r, keys.QUOTA_PREFIX + "*")
        if quota_after < quota_before:
            raise OpFailed(
                f"quota counters went from {quota_before} to {quota_after} during the flush",
                step="flush",
            )
        yield ev.done(
            f"deleted {deleted} keys matching {pattern}; {quota_after} quota counters untouched",
            deleted=deleted,
            quota_counters=quota_after,
        )
    finally:
        await r.aclose()


async def validate_cache_warm(ctx: OpContext, params: CacheWarmParams) -> CacheWarmParams:
    symbols = params.symbols
    if not symbols:
        symbols = (ctx.env.get("WATCHLIST") or "AAPL,MSFT,GOOGL,AMZN,NVDA").split(",")
    if isinstance(symbols, str):
        symbols = re.split(r"[\s,]+", symbols)
    out = []
    for s in symbols:
        s = str(s).strip().upper()
        if not s:
            continue
        if not _SYMBOL.fullmatch(s):
            shown = s.encode("unicode_escape").decode("ascii")[:20]
            raise BadInput(f"not a ticker symbol: '{shown}'", field="symbols")
        out.append(s)
    if not out or len(out) > 50:
        raise BadInput("give between 1 and 50 symbols", field="symbols")
    return params.model_copy(update={"symbols": out})


async def run_cache_warm(
    ctx: OpContext, params: CacheWarmParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    """The runbook's ``cache_warmer.sh``: ask the API for the watchlist so the
    next readers hit the cache (within the providers' quotas: the API never
    exceeds them)."""
    from console.core.ops.http import client, probe

    ev = Emitter("cache-warm", ctx.redact)
    symbols = list(params.symbols or [])
    r = connect_redis(ctx)
    try:
        before = await _count(r, keys.PRICE_CACHE_PREFIX + "*")
        warmed = 0
        async with client(ctx, timeout_s=30) as http:
            for i in range(0, len(symbols), 10):
                chunk = symbols[i : i + 10]
                p = await probe(http, f"/api/stocks/prices?symbols={','.join(chunk)}")
                if p.ok:
                    warmed += len(chunk)
                    yield ev.ok("warm", f"{','.join(chunk)}: {p.describe()}")
                else:
                    yield ev.warn("warm", f"{','.join(chunk)}: {p.describe()}")
        after = await _count(r, keys.PRICE_CACHE_PREFIX + "*")
    finally:
        await r.aclose()
    if warmed == 0:
        raise OpFailed("no symbol could be fetched (see the warnings)", step="warm")
    yield ev.done(
        f"cache warmed: {after} price keys cached (was {before})", before=before, after=after
    )


async def run_emergency_limit(
    ctx: OpContext, params: EmergencyLimitParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    """The runbook's ``SET emergency_rate_limit 1 EX 3600``: no outbound
    provider call while the key exists (state and TTL checked by the model)."""
    ev = Emitter("emergency-limit", ctx.redact)
    state, ttl = params.state, params.ttl
    r = connect_redis(ctx)
    try:
        if state == "on":
            await r.set(keys.EMERGENCY_KEY, "1", ex=ttl)
            left = await r.ttl(keys.EMERGENCY_KEY)
            yield ev.done(
                f"emergency rate limit ON for {left} s: no provider calls until it expires or is turned off",
                ttl=left,
            )
        else:
            removed = await r.delete(keys.EMERGENCY_KEY)
            yield ev.done(
                "emergency rate limit OFF" + ("" if removed else " (it was not set)"),
                removed=bool(removed),
            )
    finally:
        await r.aclose()
