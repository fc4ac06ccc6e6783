"""The cost model behind ``GET /api/metrics/cost`` and ``investment_daily_cost_projection``.

The platform is meant to run for $50 a month (runbook), which is $1.67 a day: the
``CostBudgetExceeded`` alert fires when the daily projection passes that.
What costs money, per UTC day:

* **compute**: the server, a fixed ``COST_COMPUTE_USD_PER_DAY`` (default
  $1.30/day, $39 a month for a 2-core / 4 GB machine);
* **storage**: ``(COST_STORAGE_BASE_GB + database size in GB) x
  COST_STORAGE_USD_PER_GB_MONTH / 30`` (default 20 GB provisioned at
  $0.10/GB-month, plus what the data grows to);
* **provider calls**: every admitted outbound call is logged in ``api_calls``
  with its price at the time of the call: ``COST_PER_CALL_<PROVIDER>`` (0 for
  the free tiers by default) plus ``COST_CALL_OVERHEAD_USD`` (default
  $0.0001, egress and metering).

Projections:

* ``daily_projection`` = today's cost so far extrapolated to 24 h. The fixed
  part accrues linearly so it extrapolates to itself; the calls made so far
  today are divided by the elapsed fraction of the day, which is clamped to
  at least one hour so the first minutes after midnight do not explode.
* ``month_to_date`` = the fixed cost of every elapsed day of the month (the
  server is billed whether or not it was busy) plus the logged calls, plus
  today's share so far.
* ``month_end_projection`` = ``month_to_date`` + remaining days of the month
  (fractional) x ``daily_projection``.

Everything here is pure arithmetic on the inputs, so it is unit-tested; the
API gathers the inputs (``api_calls`` and ``pg_database_size``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

MIN_DAY_FRACTION = 1 / 24
GB = 1024**3


@dataclass(frozen=True)
class CostParams:
    monthly_budget: float = 50.0
    compute_usd_per_day: float = 1.30
    storage_usd_per_gb_month: float = 0.10
    storage_base_gb: float = 20.0

    @property
    def daily_target(self) -> float:
        return round(self.monthly_budget / 30, 2)


@dataclass(frozen=True)
class CostReport:
    at: datetime
    daily_projection: float
    month_to_date: float
    month_end_projection: float
    monthly_budget: float
    daily_target: float
    components: dict[str, float]
    """Projected USD for today by component."""
    calls_today: dict[str, int]
    daily_history: list[tuple[date, float]] = field(default_factory=list)
    """Cost of each day of the last 30 (today: so far), oldest first, modelled
    from the fixed cost and the logged calls (cut at the first recorded day
    by :func:`with_recorded`)."""
    recorded_days: list[tuple[date, float, datetime, datetime]] = field(default_factory=list)
    """The days the platform recorded as they happened (``cost_days``):
    (day, cost, first and last recorded at), oldest first. What a cost
    history draws: a day without a record is a day the platform did not run."""

    @property
    def over_budget(self) -> bool:
        return self.daily_projection > self.daily_target

    def to_json(self) -> dict[str, object]:
        return {
            "timestamp": self.at.isoformat(),
            "currency": "USD",
            "daily_projection": self.daily_projection,
            "daily_target": self.daily_target,
            "month_to_date": self.month_to_date,
            "month_end_projection": self.month_end_projection,
            "monthly_budget": self.monthly_budget,
            "budget_status": "over" if self.over_budget else "ok",
            "components": self.components,
            "calls_today": self.calls_today,
            "daily_history": [[d.isoformat(), cost] for d, cost in self.daily_history],
            "recorded_days": {
                d.isoformat(): {"cost": cost, "first": first.isoformat(), "last": last.isoformat()}
                for d, cost, first, last in self.recorded_days
            },
        }


def storage_per_day(params: CostParams, db_size_bytes: int) -> float:
    gb = params.storage_base_gb + max(0, db_size_bytes) / GB
    return gb * params.storage_usd_per_gb_month / 30


def day_fraction(now: datetime) -> float:
    """Elapsed fraction of the UTC day at ``now``, in [0, 1)."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return (now - start).total_seconds() / 86400


def compute_cost(
    now: datetime,
    params: CostParams,
    db_size_bytes: int,
    calls_by_day: dict[date, dict[str, tuple[int, float]]],
    history_days: int = 30,
) -> CostReport:
    """Build the report. ``calls_by_day``: ``{utc_day: {provider: (calls, usd)}}``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    today = now.date()
    fraction = day_fraction(now)
    fixed_compute = params.compute_usd_per_day
    fixed_storage = storage_per_day(params, db_size_bytes)
    fixed = fixed_compute + fixed_storage

    def calls_usd(day: date) -> float:
        return sum(usd for _, usd in calls_by_day.get(day, {}).values())

    today_calls_usd = calls_usd(today)
    calls_projection = today_calls_usd / max(fraction, MIN_DAY_FRACTION)
    daily_projection = fixed + calls_projection

    month_start = today.replace(day=1)
    past_days = (today - month_start).days
    month_to_date = sum(
        fixed + calls_usd(month_start + timedelta(days=i)) for i in range(past_days)
    )
    month_to_date += fixed * fraction + today_calls_usd

    days_in_month = calendar.monthrange(today.year, today.month)[1]
    remaining_days = days_in_month - past_days - fraction
    month_end = month_to_date + remaining_days * daily_projection

    history: list[tuple[date, float]] = []
    for back in range(history_days - 1, -1, -1):
        day = today - timedelta(days=back)
        if day == today:
            cost = fixed * fraction + today_calls_usd
        else:
            cost = fixed + calls_usd(day)
        history.append((day, round(cost, 4)))

    return CostReport(
        at=now,
        daily_projection=round(daily_projection, 4),
        month_to_date=round(month_to_date, 4),
        month_end_projection=round(month_end, 4),
        monthly_budget=params.monthly_budget,
        daily_target=params.daily_target,
        components={
            "compute": round(fixed_compute, 4),
            "storage": round(fixed_storage, 4),
            "provider_calls": round(calls_projection, 4),
        },
        calls_today={p: n for p, (n, _) in sorted(calls_by_day.get(today, {}).items())},
        daily_history=history,
    )


def with_recorded(
    report: CostReport, recorded: list[tuple[date, float, datetime, datetime]]
) -> CostReport:
    """``report`` with the days recorded in ``cost_days`` (oldest first), its
    modelled history cut at the first of them: the days before it are days
    the stack did not exist, and a model must not invent their cost."""
    first = recorded[0][0] if recorded else report.at.date()
    return replace(
        report,
        daily_history=[(d, c) for d, c in report.daily_history if d >= first],
        recorded_days=list(recorded),
    )
