"""Stocks, auth, admin and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from platform_services import telemetry
from platform_services.api import auth
from platform_services.api.context import Platform
from platform_services.api.schemas import (
    ApiUsageBody,
    CacheClearBody,
    CacheMetricsBody,
    CostBody,
    HandOffBody,
    PricesBody,
    TokenBody,
    UnavailableBody,
    UnknownSymbolsBody,
    responses,
)
from platform_services.db.store import StoreUnavailable
from platform_services.market import PriceEntry, compact_json
from platform_services.providers import keys
from platform_services.symbols import SymbolError, parse_symbols

log = logging.getLogger(__name__)
router = APIRouter()

UNLINK_BATCH = 500
KEY_COUNT_CAP = 1_000_000


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"detail": message, "error": code, **extra}, status_code=status, headers=headers
    )


# --- stocks ---------------------------------------------------------------------------------


SYMBOLS_DOC = (
    "Comma-separated ticker symbols, 1 to 10, each matching ^[A-Z][A-Z0-9.\\-]{0,9}$ "
    "(no spaces, no lower case, no empty items). Duplicates are ignored."
)


@router.get(
    "/api/stocks/prices",
    response_model=PricesBody,
    responses=responses(404, 422, 503, e404=UnknownSymbolsBody, e503=UnavailableBody),
)
async def stock_prices(
    request: Request,
    symbols: Annotated[
        str, Query(min_length=1, max_length=200, description=SYMBOLS_DOC, examples=["AAPL,MSFT"])
    ],
) -> Response:
    """Quotes for 1-10 symbols: cache, else providers within quota, else stored.

    404 when a symbol is unknown to the providers (nothing is stored), 422 when
    the list is malformed, 503 with Retry-After when no price can be had now
    (quotas exhausted, emergency rate limit, providers down, nothing stored).
    """
    values = request.query_params.getlist("symbols")
    if len(values) > 1:
        return error(422, "invalid_symbols", "give symbols once, comma-separated")
    try:
        wanted = parse_symbols(values[0] if values else symbols)
    except SymbolError as exc:
        return error(422, "invalid_symbols", str(exc))
    platform = _platform(request)
    result = await platform.market.lookup(wanted)
    if result.unknown:
        return error(
            404,
            "unknown_symbols",
            "no provider knows: " + ",".join(sorted(result.unknown)),
            symbols=sorted(result.unknown),
        )
    stored = await platform.market.persist(result.fresh_quotes)
    if result.unavailable:
        retry = str(result.retry_after_s or 30)
        return error(
            503,
            "prices_unavailable",
            "no price available now (quotas exhausted, emergency limit or providers down)",
            {"Retry-After": retry},
            symbols=sorted(result.unavailable),
            reasons=result.unavailable,
        )
    entries = [result.entries[s] for s in wanted]
    return Response(
        prices_body(entries, stored, datetime.now(UTC).isoformat()), media_type="application/json"
    )


def prices_body(entries: list[PriceEntry], stored: int, timestamp: str) -> bytes:
    """The body ``JSONResponse`` would render for ``{"prices": [...], "count",
    "sources", "stored", "timestamp"}``, byte for byte, assembled from each
    entry's own rendering (kept per cached value, so a cached price is not
    serialised again on every request)."""
    sources: dict[str, int] = {}
    for entry in entries:
        sources[entry.source] = sources.get(entry.source, 0) + 1
    rest = compact_json(
        {"count": len(entries), "sources": sources, "stored": stored, "timestamp": timestamp}
    )
    return b'{"prices":[' + b",".join(e.json_bytes for e in entries) + b"]," + rest[1:]


# --- auth ----------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


@router.post(
    "/api/auth/login", response_model=TokenBody, responses=responses(400, 401, 413, 422, 429, 503)
)
async def login(body: LoginRequest, request: Request) -> JSONResponse:
    platform = _platform(request)
    settings = platform.settings
    if auth.jwt_secret(settings) is None:
        return error(503, "auth_unavailable", "login is not configured")
    key = keys.login_attempts_key(body.username, auth.client_ip(request))
    try:
        pipe = platform.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, settings.login_window_s)
        attempts, _ = await pipe.execute()
    except RedisError:
        # Without the counter there is no rate limit: refuse rather than allow brute force.
        return error(503, "auth_unavailable", "login temporarily unavailable", {"Retry-After": "5"})
    if int(attempts) > settings.login_max_failures:
        telemetry.LOGIN_ATTEMPTS.labels("rate_limited").inc()
        ttl = await platform.redis.ttl(key)
        retry = str(max(1, int(ttl))) if ttl and ttl > 0 else str(settings.login_window_s)
        return error(
            429, "too_many_attempts", "too many login attempts; retry later", {"Retry-After": retry}
        )
    if not platform.users_ready:
        # Right after a fresh set-up the background bootstrap may still be running.
        with contextlib.suppress(Exception):
            platform.users_ready = await platform.bootstrap_users()
    try:
        user = await platform.store.get_user(body.username)
    except StoreUnavailable:
        return error(503, "auth_unavailable", "login temporarily unavailable", {"Retry-After": "5"})
    except Exception as exc:  # e.g. the table is not migrated yet
        log.warning("login lookup failed: %s", type(exc).__name__)
        return error(503, "auth_unavailable", "login temporarily unavailable", {"Retry-After": "5"})
    usable = user is not None and not user.disabled
    ok = await asyncio.to_thread(
        auth.verify_password, user.password_hash if usable and user else None, body.password
    )
    if not ok or user is None:
        telemetry.LOGIN_ATTEMPTS.labels("failure").inc()
        return error(
            401,
            "invalid_credentials",
            "invalid username or password",
            {"WWW-Authenticate": "Bearer"},
        )
    telemetry.LOGIN_ATTEMPTS.labels("success").inc()
    try:
        await platform.redis.delete(key)
        await platform.store.touch_login(user.id)
    except Exception:  # bookkeeping only
        pass
    token, expires = auth.issue_token(settings, user.username, user.role)
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": settings.jwt_expire_minutes * 60,
            "expires_at": expires.isoformat(),
            "username": user.username,
            "role": user.role,
        }
    )


# --- admin ---------------------------------------------------------------------------------


def _admin(platform: Platform, authorization: str | None) -> auth.Principal | JSONResponse:
    """The admin caller, or the 401/403 answer to send instead."""
    try:
        return auth.authenticate_admin(platform.settings, authorization)
    except auth.AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        code = "unauthorized" if exc.status == 401 else "forbidden"
        return error(exc.status, code, exc.message, headers)


@router.post(
    "/api/cache/clear", response_model=CacheClearBody, responses=responses(400, 401, 403, 413, 503)
)
async def cache_clear(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Delete every ``cache:*`` key (SCAN + UNLINK); quota counters are never touched."""
    platform = _platform(request)
    principal = _admin(platform, authorization)
    if isinstance(principal, JSONResponse):
        return principal
    cleared = 0
    try:
        batch: list[str] = []
        async for key in platform.redis.scan_iter(match=keys.CACHE_SCAN_PATTERN, count=1000):
            if not key.startswith(keys.CACHE_PREFIX):  # belt and braces
                continue
            batch.append(key)
            if len(batch) >= UNLINK_BATCH:
                cleared += await platform.redis.unlink(*batch)
                batch = []
        if batch:
            cleared += await platform.redis.unlink(*batch)
    except RedisError:
        return error(503, "cache_unavailable", "the cache is unavailable", cleared=cleared)
    log.info(
        "cache cleared",
        extra={"fields": {"by": principal.name, "via": principal.via, "cleared": cleared}},
    )
    return JSONResponse({"cleared": cleared, "pattern": keys.CACHE_SCAN_PATTERN})


@router.post("/api/streams/hand-off", response_model=HandOffBody, responses=responses(401, 403))
async def streams_hand_off(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Close this process's price streams with 1012 so their clients reconnect
    through nginx to what serves now: a deploy asks it of the container it
    drains (``/direct/<colour>/api/streams/hand-off``), whose streams would
    otherwise keep it busy until it is stopped."""
    platform = _platform(request)
    principal = _admin(platform, authorization)
    if isinstance(principal, JSONResponse):
        return principal
    told = platform.hub.hand_off()
    log.info(
        "price streams handed off",
        extra={"fields": {"by": principal.name, "via": principal.via, "streams": told}},
    )
    return JSONResponse({"handed_off": told})


# --- metrics ---------------------------------------------------------------------------------


@router.get("/api/metrics/cost", response_model=CostBody)
async def metrics_cost(request: Request) -> JSONResponse:
    platform = _platform(request)
    report, missing = await platform.cost_report()
    body = report.to_json()
    body["degraded_inputs"] = missing
    body["model"] = {
        "compute_usd_per_day": platform.settings.cost_compute_usd_per_day,
        "storage_usd_per_gb_month": platform.settings.cost_storage_usd_per_gb_month,
        "storage_base_gb": platform.settings.cost_storage_base_gb,
        "call_price_usd": {p: platform.settings.call_price(p) for p in platform.providers},
    }
    return JSONResponse(body)


@router.get("/api/metrics/api-usage", response_model=ApiUsageBody, responses=responses(503))
async def metrics_api_usage(request: Request) -> JSONResponse:
    platform = _platform(request)
    try:
        usage = await platform.ledger.all_usage()
        emergency, ttl = await platform.ledger.emergency()
        today = await platform.ledger.calls_on(keys.utc_day().isoformat())
    except RedisError:
        return error(503, "cache_unavailable", "quota ledger unavailable", {"Retry-After": "5"})
    providers = {}
    for u in usage:
        item = u.to_json()
        item["calls_today"] = today.get(u.provider, 0)
        providers[u.provider] = item
    return JSONResponse(
        {
            "timestamp": datetime.now(UTC).isoformat(),
            "emergency_rate_limit": {"active": emergency, "ttl_s": ttl},
            "providers": providers,
        }
    )


@router.get("/api/metrics/cache", response_model=CacheMetricsBody, responses=responses(503))
async def metrics_cache(request: Request) -> JSONResponse:
    platform = _platform(request)
    redis = platform.redis
    day = keys.utc_day()
    # This process's counts not yet in Redis (MarketService batches them).
    await platform.market.flush_cache_stats()
    try:
        hits, misses, hits_today, misses_today = await redis.mget(
            [
                keys.STATS_CACHE_HITS,
                keys.STATS_CACHE_MISSES,
                keys.stats_cache_key("hits", day),
                keys.stats_cache_key("misses", day),
            ]
        )
        count = 0
        async for _ in redis.scan_iter(match=keys.CACHE_SCAN_PATTERN, count=1000):
            count += 1
            if count >= KEY_COUNT_CAP:
                break
    except RedisError:
        return error(503, "cache_unavailable", "the cache is unavailable", {"Retry-After": "5"})
    h, m = int(hits or 0), int(misses or 0)
    ht, mt = int(hits_today or 0), int(misses_today or 0)
    return JSONResponse(
        {
            "hit_rate": round(h / (h + m), 4) if h + m else 0.0,
            "hits": h,
            "misses": m,
            "lookups": h + m,
            "today": {
                "hit_rate": round(ht / (ht + mt), 4) if ht + mt else 0.0,
                "hits": ht,
                "misses": mt,
            },
            "keys": count,
            "ttl_s": platform.settings.price_cache_ttl_s,
        }
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    await _platform(request).refresh_gauges()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
