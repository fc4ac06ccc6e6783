"""Cost projection: ``/api/metrics/cost`` and ``/api/metrics/cache`` through nginx.

The API owns the cost model (``platform_services/api/cost.py``); this source
reads its report into a :class:`~console.core.models.CostSnapshot`. Where a
figure is missing from the report (an older API version), it is derived here
with the same arithmetic: month-end = month to date + remaining days of the
month * daily projection.

The report's 30-day history is modelled; the snapshot's ``recorded_days`` are
the days the platform recorded as they happened (``cost_days`` in its
database, :mod:`console.core.cost_days`), and only those are drawn.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import httpx

from console.core.config import Settings
from console.core.cost_days import day_series, parse_recorded
from console.core.errors import SourceError, redact
from console.core.models import CostSnapshot
from console.core.sources.base import Clock, Source, utcnow

__all__ = [
    "CostSource",
    "cost_snapshot_from",
    "daily_projection_from_month",
    "month_end_projection",
    "remaining_days_in_month",
]

COST_PATH = "/api/metrics/cost"
CACHE_PATH = "/api/metrics/cache"


def remaining_days_in_month(now: datetime) -> float:
    """Days left in ``now``'s month (UTC), counting the rest of today as a fraction."""
    now = now.astimezone(UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    elapsed_today = (
        now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    ).total_seconds() / 86400
    return days - (now.day - 1) - elapsed_today


def month_end_projection(month_to_date: float, daily_projection: float, now: datetime) -> float:
    """Month to date plus the remaining days at the daily projection."""
    return month_to_date + remaining_days_in_month(now) * daily_projection


def daily_projection_from_month(month_to_date: float, now: datetime) -> float:
    """Average daily spend so far this month (at least one hour elapsed)."""
    now = now.astimezone(UTC)
    elapsed_days = (now.day - 1) + (
        now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    ).total_seconds() / 86400
    return month_to_date / max(elapsed_days, 1 / 24)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _history(raw: Any) -> list[tuple[date, float]]:
    out: list[tuple[date, float]] = []
    if isinstance(raw, Mapping):
        raw = list(raw.items())
    for item in raw or []:
        try:
            if isinstance(item, Mapping):
                day, cost = item.get("date") or item.get("day"), item.get("cost") or item.get("usd")
            else:
                day, cost = item[0], item[1]
            out.append((date.fromisoformat(str(day)[:10]), float(cost)))  # type: ignore[arg-type]
        except (TypeError, ValueError, IndexError, KeyError):
            continue
    out.sort()
    return out


def cache_hit_rate(body: Mapping[str, Any]) -> float | None:
    """Hit rate (0..1) from the cache metrics: ``hit_rate`` (a fraction or a
    percent), else hits / (hits + misses)."""
    rate = _float(body.get("hit_rate"))
    if rate is not None:
        return rate / 100.0 if rate > 1.0 else rate
    hits, misses = _float(body.get("hits")), _float(body.get("misses"))
    if hits is not None and misses is not None and hits + misses > 0:
        return hits / (hits + misses)
    return None


def cost_snapshot_from(
    cost: Mapping[str, Any],
    cache: Mapping[str, Any] | None,
    *,
    now: datetime,
    monthly_budget: float,
    daily_target: float,
) -> CostSnapshot:
    """Build the snapshot from the two JSON bodies; derive what is missing."""
    mtd = _float(cost.get("month_to_date"))
    daily = _float(cost.get("daily_projection"))
    if mtd is None and daily is None:
        raise ValueError("the cost report has neither month_to_date nor daily_projection")
    if mtd is None:
        mtd = 0.0
    if daily is None:
        daily = daily_projection_from_month(mtd, now)
    month_end = _float(cost.get("month_end_projection"))
    if month_end is None:
        month_end = month_end_projection(mtd, daily, now)
    components = {
        str(k): float(v) for k, v in (cost.get("components") or {}).items() if _float(v) is not None
    }
    return CostSnapshot(
        taken_at=now,
        month_to_date=round(mtd, 4),
        daily_projection=round(daily, 4),
        daily_target=_float(cost.get("daily_target")) or daily_target,
        month_end_projection=round(month_end, 4),
        monthly_budget=_float(cost.get("monthly_budget")) or monthly_budget,
        components=components,
        cache_hit_rate=cache_hit_rate(cache) if cache else None,
        daily_history=_history(cost.get("daily_history")),
        recorded_days=day_series(
            parse_recorded(cost.get("recorded_days")), now.astimezone(UTC).date()
        ),
    )


class CostSource(Source):
    name = "cost"
    kind = "cost"

    def __init__(
        self, settings: Settings, *, clock: Clock = utcnow, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(settings, clock=clock)
        self._client = client
        self._own_client = client is None

    @property
    def interval(self) -> float:
        return self.settings.refresh.cost

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"User-Agent": "stackdeck"}
            if (
                self.settings.admin_token is not None
                and self.settings.admin_token.get_secret_value()
            ):
                headers["Authorization"] = f"Bearer {self.settings.admin_token.get_secret_value()}"
            self._client = httpx.AsyncClient(
                base_url=self.settings.base_url,
                timeout=httpx.Timeout(self.settings.request_timeout),
                headers=headers,
            )
        return self._client

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = await self.client().get(path)
        except httpx.HTTPError as exc:
            kind = (
                "timeout"
                if isinstance(exc, httpx.TimeoutException)
                else redact(exc) or type(exc).__name__
            )
            raise SourceError("cost", f"GET {path}: {kind}") from None
        if response.status_code != 200:
            raise SourceError("cost", f"GET {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SourceError("cost", f"GET {path}: not JSON") from None
        if not isinstance(body, dict):
            raise SourceError("cost", f"GET {path}: unexpected body")
        return body

    async def poll(self) -> CostSnapshot:
        cost = await self._get_json(COST_PATH)
        try:
            cache: dict[str, Any] | None = await self._get_json(CACHE_PATH)
        except SourceError:
            cache = None  # the hit rate is a nice-to-have
        try:
            snapshot = cost_snapshot_from(
                cost,
                cache,
                now=self.clock(),
                monthly_budget=self.settings.monthly_budget,
                daily_target=self.settings.daily_target,
            )
        except ValueError as exc:
            raise SourceError("cost", str(exc)) from None
        return snapshot

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            client, self._client = self._client, None
            await client.aclose()
