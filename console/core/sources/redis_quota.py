"""Provider quotas straight from the ledger in Redis (works while the API is down).

The key schema and the window arithmetic belong to
:mod:`platform_services.providers.keys` (pure standard library), imported
here rather than copied, so the console reads exactly the keys the platform
writes. Per provider: calls used in the current window, the limit, when the
window resets, the burn rate (from successive samples, else from the usage
since the window began) and when the quota runs out at that rate. Plus the
emergency switch and its remaining TTL.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.models import ProviderQuota, QuotaSnapshot
from console.core.sources.base import Clock, Source, utcnow
from platform_services.providers import keys

__all__ = ["QuotaSource", "burn_rate_per_hour", "projected_exhaustion"]


def burn_rate_per_hour(
    samples: Sequence[tuple[float, int]],
    now: float,
    used: int,
    window_start: float,
    *,
    window_seconds: float,
    lookback: float = 600.0,
) -> float | None:
    """Calls per hour being spent now.

    ``samples`` are ``(epoch, used)`` observations taken earlier in the same
    window, oldest first. With one that is at least ``min(30 s, window/4)``
    old and within ``lookback``, the rate is the increase since the oldest
    such sample: the current burn. Otherwise the usage since the window
    began stands in (``used / elapsed``). None when no time has passed yet.
    """
    min_span = min(30.0, window_seconds / 4.0)
    for t, then_used in samples:
        age = now - t
        if age > lookback or t < window_start:
            continue
        if age >= min_span and then_used <= used:
            return (used - then_used) / age * 3600.0
        break  # samples are oldest first: the rest are younger still
    elapsed = now - window_start
    if elapsed <= 0:
        return None
    if used <= 0:
        return 0.0
    return used / elapsed * 3600.0


def projected_exhaustion(
    used: int, limit: int, burn_per_hour: float | None, now: datetime, resets_at: datetime
) -> datetime | None:
    """When the quota runs out in this window at the given burn rate.

    ``now`` when it already has; None when it will not before the window
    resets (or nothing is being spent).
    """
    if limit <= 0 or used >= limit:
        return now
    if not burn_per_hour or burn_per_hour <= 0:
        return None
    at = now + timedelta(hours=(limit - used) / burn_per_hour)
    return at if at < resets_at else None


class QuotaSource(Source):
    name = "redis"
    kind = "quotas"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        providers: Mapping[str, keys.ProviderSpec] | None = None,
    ) -> None:
        super().__init__(settings, clock=clock)
        self.providers = (
            dict(providers)
            if providers is not None
            else keys.provider_table(settings.newsapi_daily_limit)
        )
        self._client: Any = None
        self._samples: dict[str, deque[tuple[float, int, int]]] = {
            name: deque(maxlen=256) for name in self.providers
        }

    @property
    def interval(self) -> float:
        return self.settings.refresh.quotas

    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            password = (
                self.settings.redis_password.get_secret_value()
                if self.settings.redis_password
                else None
            )
            self._client = aioredis.Redis.from_url(
                self.settings.redis_url.get_secret_value(),
                password=password or None,
                socket_timeout=self.settings.request_timeout,
                socket_connect_timeout=self.settings.request_timeout,
                decode_responses=True,
                health_check_interval=30,
                client_name="stackdeck-console",
            )
        return self._client

    def ordered(self) -> list[keys.ProviderSpec]:
        order = {name: i for i, name in enumerate(keys.PROVIDER_ORDER)}
        return sorted(self.providers.values(), key=lambda s: (order.get(s.name, 99), s.name))

    async def poll(self) -> QuotaSnapshot:
        now = self.clock()
        epoch = now.timestamp()
        specs = self.ordered()
        quota_keys = [keys.quota_key_for(spec, epoch) for spec in specs]
        client = self.client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.mget(quota_keys)
                pipe.ttl(keys.EMERGENCY_KEY)
                pipe.exists(keys.EMERGENCY_KEY)
                values, ttl, exists = await asyncio.wait_for(
                    pipe.execute(), timeout=self.settings.request_timeout + 0.5
                )
        except Exception as exc:
            try:
                await client.connection_pool.disconnect()
            except Exception:
                pass
            what = "timed out" if isinstance(exc, TimeoutError) else redact(exc)
            raise SourceError("redis", str(what)) from None
        providers = []
        for spec, raw in zip(specs, values, strict=True):
            used = _int(raw)
            wid = keys.window_id(spec.window_seconds, epoch)
            start = keys.window_start(spec.window_seconds, epoch)
            resets = keys.resets_at(spec.window_seconds, epoch)
            history = self._samples.setdefault(spec.name, deque(maxlen=256))
            samples = [(t, u) for (t, w, u) in history if w == wid]
            burn = burn_rate_per_hour(
                samples, epoch, used, start.timestamp(), window_seconds=spec.window_seconds
            )
            history.append((epoch, wid, used))
            providers.append(
                ProviderQuota(
                    provider=spec.name,
                    label=spec.label,
                    used=used,
                    limit=spec.limit,
                    window_seconds=spec.window_seconds,
                    window=spec.window,
                    resets_at=resets,
                    burn_per_hour=round(burn, 3) if burn is not None else None,
                    exhausts_at=projected_exhaustion(used, spec.limit, burn, now, resets),
                )
            )
        emergency = bool(exists)
        return QuotaSnapshot(
            taken_at=now,
            providers=providers,
            emergency_limit=emergency,
            emergency_ttl_s=int(ttl) if emergency and ttl is not None and int(ttl) >= 0 else None,
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.aclose(), timeout=2.0)
            except Exception:
                pass


def _int(raw: Any) -> int:
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return 0
