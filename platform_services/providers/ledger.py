"""The quota ledger: every outbound provider call asks it first, atomically.

One Lua script does the whole decision inside Redis, so any number of API
processes and workers share a provider's quota without races:

1. the ``emergency_rate_limit`` key exists  → denied (``emergency``);
2. the window's counter is at the limit     → denied (``exhausted``);
3. otherwise INCR the counter (EXPIRE it on first use) and the per-day call
   statistic                                → admitted.

A denied call is never made. An admitted call counts whatever its outcome
(the real providers count failed calls too). The keys are those of
:mod:`platform_services.providers.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from platform_services.providers import keys

ACQUIRE_LUA = """
-- KEYS[1] quota counter, KEYS[2] emergency key, KEYS[3] per-day call statistic
-- ARGV[1] limit, ARGV[2] counter ttl (s), ARGV[3] statistic ttl (s)
if redis.call('EXISTS', KEYS[2]) == 1 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  return {0, 'emergency', used}
end
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= limit then
  return {0, 'exhausted', used}
end
used = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
redis.call('INCR', KEYS[3])
if redis.call('TTL', KEYS[3]) < 0 then
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
end
return {1, 'ok', used}
"""


@dataclass(frozen=True)
class Admission:
    provider: str
    admitted: bool
    reason: str
    """``ok``, ``exhausted`` or ``emergency``."""
    used: int
    """Calls counted in the window after this decision."""
    limit: int
    resets_at: datetime

    @property
    def retry_after_s(self) -> int:
        return max(1, int((self.resets_at - datetime.now(UTC)).total_seconds() + 0.999))


@dataclass(frozen=True)
class Usage:
    provider: str
    label: str
    used: int
    limit: int
    window: str
    window_seconds: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "label": self.label,
            "used": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "window": self.window,
            "window_seconds": self.window_seconds,
            "resets_at": self.resets_at.isoformat(),
        }


class QuotaLedger:
    def __init__(self, redis: Redis, providers: dict[str, keys.ProviderSpec]) -> None:
        self._redis = redis
        self.providers = providers
        self._acquire = redis.register_script(ACQUIRE_LUA)

    async def acquire(
        self, provider: str, *, now: datetime | None = None, limit: int | None = None
    ) -> Admission:
        """Count one call to ``provider`` if its quota allows it.

        ``now`` picks the window (tests use a window of their own); ``limit``
        lowers the limit for this caller (the worker keeps headroom for the
        API); it can never raise it above the provider's quota.
        """
        spec = self.providers[provider]
        moment = now or datetime.now(UTC)
        effective = spec.limit if limit is None else max(0, min(limit, spec.limit))
        result = await self._acquire(
            keys=[
                keys.quota_key_for(spec, moment),
                keys.EMERGENCY_KEY,
                keys.stats_calls_key(provider, keys.utc_day(moment)),
            ],
            args=[effective, keys.quota_ttl(spec, moment), keys.STATS_TTL_S],
        )
        admitted, reason, used = result
        if isinstance(reason, bytes):
            reason = reason.decode()
        return Admission(
            provider=provider,
            admitted=bool(int(admitted)),
            reason=str(reason),
            used=int(used),
            limit=effective,
            resets_at=keys.resets_at(spec.window_seconds, moment),
        )

    async def usage(self, provider: str, *, now: datetime | None = None) -> Usage:
        spec = self.providers[provider]
        moment = now or datetime.now(UTC)
        raw = await self._redis.get(keys.quota_key_for(spec, moment))
        return Usage(
            provider=provider,
            label=spec.label,
            used=int(raw or 0),
            limit=spec.limit,
            window=spec.window,
            window_seconds=spec.window_seconds,
            resets_at=keys.resets_at(spec.window_seconds, moment),
        )

    async def all_usage(self, *, now: datetime | None = None) -> list[Usage]:
        moment = now or datetime.now(UTC)
        names = [p for p in keys.PROVIDER_ORDER if p in self.providers]
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.get(keys.quota_key_for(self.providers[name], moment))
        values = await pipe.execute()
        out = []
        for name, raw in zip(names, values, strict=True):
            spec = self.providers[name]
            out.append(
                Usage(
                    provider=name,
                    label=spec.label,
                    used=int(raw or 0),
                    limit=spec.limit,
                    window=spec.window,
                    window_seconds=spec.window_seconds,
                    resets_at=keys.resets_at(spec.window_seconds, moment),
                )
            )
        return out

    async def emergency(self) -> tuple[bool, int | None]:
        """Whether the emergency switch is on, and its remaining TTL (None: no expiry)."""
        ttl = await self._redis.ttl(keys.EMERGENCY_KEY)
        if ttl == -2:
            return False, None
        return True, (None if ttl == -1 else int(ttl))

    async def calls_on(self, day_iso: str) -> dict[str, int]:
        """Admitted calls per provider on one UTC day (from the statistics keys)."""
        from datetime import date

        day = date.fromisoformat(day_iso)
        names = list(self.providers)
        values = await self._redis.mget([keys.stats_calls_key(n, day) for n in names])
        return {n: int(v or 0) for n, v in zip(names, values, strict=True)}
