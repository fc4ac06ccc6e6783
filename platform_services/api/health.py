"""Health endpoints (runbook: Post-Deployment Verification).

``GET /api/health`` is what nginx, compose and the deploy tooling look at:

* ``unhealthy`` (HTTP 503): PostgreSQL or Redis does not answer;
* ``degraded`` (HTTP 200): the stores answer, but a market-data provider is
  unreachable or the emergency rate limit is on;
* ``healthy`` (HTTP 200) otherwise.

Provider reachability is a plain GET of each provider's base URL (no quota is
spent). ``/api/health`` uses the results of a background probe refreshed every
``HEALTH_REACHABILITY_TTL_S / 2`` seconds, so it never waits on a provider and a
load test of ``/api/health`` is not a load test of the providers;
``/api/health/external-apis`` probes again when the results are over 5 s old.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from platform_services.api.context import Platform
from platform_services.api.schemas import (
    CacheHealth,
    DatabaseHealth,
    ExternalApisHealth,
    HealthBody,
    responses,
)
from platform_services.providers import keys

router = APIRouter()


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _error(exc: BaseException) -> str:
    text = str(exc).split("\n", 1)[0][:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def check_database(platform: Platform) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        info = await asyncio.wait_for(
            platform.store.check(), timeout=platform.settings.db_timeout_s + 1
        )
    except Exception as exc:  # any failure is "unhealthy" with its reason
        return {"status": "unhealthy", "error": _error(exc)}
    return {
        "status": "healthy",
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **info,
    }


async def check_cache(platform: Platform, *, deep: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    redis = platform.redis
    try:
        async with asyncio.timeout(3):
            await redis.ping()
            result: dict[str, Any] = {}
            if deep:
                # One key per request: concurrent probes must not read each other's value.
                token = secrets.token_hex(8)
                probe = f"{keys.HEALTH_PROBE_PREFIX}{platform.settings.app_colour or 'api'}:{token}"
                await redis.set(probe, token, ex=10)
                if await redis.get(probe) != token:
                    return {"status": "unhealthy", "error": "read back a different value"}
                await redis.delete(probe)
                memory = await redis.info("memory")
                server = await redis.info("server")
                result = {
                    "redis_version": server.get("redis_version"),
                    "used_memory": memory.get("used_memory"),
                    "maxmemory": memory.get("maxmemory"),
                    "maxmemory_policy": memory.get("maxmemory_policy"),
                    "keys": await redis.dbsize(),
                }
    except Exception as exc:
        return {"status": "unhealthy", "error": _error(exc)}
    return {
        "status": "healthy",
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **result,
    }


async def check_providers(platform: Platform, max_age_s: float | None) -> dict[str, Any]:
    """Reachability; ``max_age_s`` None: the background probe's latest results."""
    if max_age_s is None:
        probes = await platform.latest_probes()
    else:
        probes = await platform.probe_providers(max_age_s)
    reachable = sum(1 for p in probes.values() if p.reachable)
    emergency: bool | None
    try:
        emergency, ttl = await platform.ledger.emergency()
    except Exception:  # reported by the cache check
        emergency, ttl = None, None
    if reachable == 0:
        status = "unhealthy"
    elif reachable < len(probes) or emergency:
        status = "degraded"
    else:
        status = "healthy"
    return {
        "status": status,
        "reachable": reachable,
        "total": len(probes),
        "emergency_rate_limit": emergency,
        "emergency_ttl_s": ttl,
        "probes": probes,
    }


async def check_workers(platform: Platform) -> dict[str, Any]:
    """How many ingestion workers have a fresh heartbeat, each by hostname
    (``worker:heartbeats``); never changes the API's status."""
    try:
        async with asyncio.timeout(3):
            beats = await platform.redis.hgetall(keys.WORKER_HEARTBEATS_KEY)
    except Exception as exc:
        return {"alive": None, "workers": {}, "error": _error(exc)}
    now = time.time()
    alive = keys.alive_workers(beats, now, platform.settings.worker_heartbeat_max_age_s)
    return {
        "alive": len(alive),
        "workers": {
            host: {
                "version": beat.get("version"),
                "age_s": round(max(0.0, now - float(beat["epoch"])), 1),
                "cycles": beat.get("cycles"),
            }
            for host, beat in sorted(alive.items())
        },
    }


@router.get("/api/health", response_model=HealthBody, responses=responses(503, e503=HealthBody))
async def health(request: Request) -> JSONResponse:
    platform = _platform(request)
    database, cache, providers, workers = await asyncio.gather(
        check_database(platform),
        check_cache(platform),
        check_providers(platform, None),
        check_workers(platform),
    )
    if database["status"] != "healthy" or cache["status"] != "healthy":
        status, code = "unhealthy", 503
    elif providers["status"] != "healthy":
        status, code = "degraded", 200
    else:
        status, code = "healthy", 200
    body = {
        "status": status,
        "version": platform.settings.app_version,
        "colour": platform.settings.app_colour or None,
        "uptime_s": platform.uptime_s,
        "started_at": platform.started_at.isoformat(),
        "timestamp": datetime.now(UTC).isoformat(),
        "checks": {
            "database": {
                k: database.get(k) for k in ("status", "latency_ms", "error") if k in database
            },
            "cache": {k: cache.get(k) for k in ("status", "latency_ms", "error") if k in cache},
            "external_apis": {
                "status": providers["status"],
                "reachable": providers["reachable"],
                "total": providers["total"],
                "emergency_rate_limit": providers["emergency_rate_limit"],
            },
            "workers": workers,
        },
    }
    return JSONResponse(body, status_code=code)


@router.get(
    "/api/health/database",
    response_model=DatabaseHealth,
    responses=responses(503, e503=DatabaseHealth),
)
async def health_database(request: Request) -> JSONResponse:
    result = await check_database(_platform(request))
    return JSONResponse(result, status_code=200 if result["status"] == "healthy" else 503)


@router.get(
    "/api/health/cache", response_model=CacheHealth, responses=responses(503, e503=CacheHealth)
)
async def health_cache(request: Request) -> JSONResponse:
    result = await check_cache(_platform(request), deep=True)
    return JSONResponse(result, status_code=200 if result["status"] == "healthy" else 503)


@router.get(
    "/api/health/external-apis",
    response_model=ExternalApisHealth,
    responses=responses(503, e503=ExternalApisHealth),
)
async def health_external_apis(request: Request) -> JSONResponse:
    """Each provider: reachable (probe, no quota spent) and quota left in its window."""
    platform = _platform(request)
    checked = await check_providers(platform, max_age_s=5.0)
    usage: dict[str, Any] = {}
    try:
        usage = {u.provider: u for u in await platform.ledger.all_usage()}
    except Exception:  # quota unknown while Redis is down
        usage = {}
    providers: dict[str, Any] = {}
    for name, probe in checked["probes"].items():
        spec = platform.providers[name]
        u = usage.get(name)
        providers[name] = {
            "label": spec.label,
            "reachable": probe.reachable,
            "latency_ms": probe.latency_ms,
            "error": probe.error,
            "quota_limit": spec.limit,
            "quota_window": spec.window,
            "quota_used": u.used if u else None,
            "quota_left": u.remaining if u else None,
            "resets_at": u.resets_at.isoformat() if u else None,
        }
    status = checked["status"]
    if not usage and status == "healthy":
        status = "degraded"
    body = {
        "status": status,
        "emergency_rate_limit": checked["emergency_rate_limit"],
        "emergency_ttl_s": checked["emergency_ttl_s"],
        "providers": providers,
    }
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)
