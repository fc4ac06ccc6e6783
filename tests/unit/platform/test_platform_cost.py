"""The cost model (platform_services/api/cost.py): projections and components."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from platform_services.api.cost import GB, CostParams, compute_cost, day_fraction, storage_per_day

PARAMS = CostParams(
    monthly_budget=50.0,
    compute_usd_per_day=1.0,
    storage_usd_per_gb_month=0.30,
    storage_base_gb=10.0,
)


def test_daily_target_is_the_seeds_threshold() -> None:
    assert CostParams().daily_target == 1.67
    assert CostParams(monthly_budget=60).daily_target == 2.0


def test_storage_grows_with_the_database() -> None:
    assert storage_per_day(PARAMS, 0) == pytest.approx(10 * 0.30 / 30)
    assert storage_per_day(PARAMS, 20 * GB) == pytest.approx(30 * 0.30 / 30)


def test_fixed_costs_only_project_to_themselves() -> None:
    now = datetime(2025, 4, 10, 6, 0, tzinfo=UTC)  # quarter of the day
    report = compute_cost(now, PARAMS, 0, {})
    fixed = 1.0 + 0.1
    assert report.daily_projection == pytest.approx(fixed)
    # 9 full days + a quarter of today.
    assert report.month_to_date == pytest.approx(9.25 * fixed)
    # April has 30 days: the month ends at 30 x fixed.
    assert report.month_end_projection == pytest.approx(30 * fixed)
    assert report.components == {"compute": 1.0, "storage": 0.1, "provider_calls": 0.0}
    assert not report.over_budget


def test_calls_so_far_are_extrapolated_to_the_whole_day() -> None:
    now = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)  # half the day gone
    calls = {date(2025, 4, 10): {"finnhub": (1000, 0.30), "polygon": (10, 0.10)}}
    report = compute_cost(now, PARAMS, 0, calls)
    assert report.components["provider_calls"] == pytest.approx(0.80)
    assert report.daily_projection == pytest.approx(1.1 + 0.80)
    assert report.calls_today == {"finnhub": 1000, "polygon": 10}
    assert report.over_budget  # 1.90 > 1.67


def test_month_to_date_counts_past_days_calls() -> None:
    now = datetime(2025, 2, 3, 0, 0, tzinfo=UTC)
    calls = {date(2025, 2, 1): {"finnhub": (10, 1.0)}, date(2025, 1, 31): {"finnhub": (5, 9.0)}}
    report = compute_cost(now, PARAMS, 0, calls)
    assert report.month_to_date == pytest.approx(2 * 1.1 + 1.0)  # January is not this month
    # February 2025 has 28 days; 26 remain at midnight on the 3rd.
    assert report.month_end_projection == pytest.approx(report.month_to_date + 26 * 1.1)


def test_first_minutes_of_the_day_do_not_explode() -> None:
    now = datetime(2025, 4, 10, 0, 1, tzinfo=UTC)
    calls = {date(2025, 4, 10): {"newsapi": (1, 0.01)}}
    report = compute_cost(now, PARAMS, 0, calls)
    # Clamped to one hour elapsed: 0.01 x 24, not 0.01 x 1440.
    assert report.components["provider_calls"] == pytest.approx(0.24)


def test_history_has_thirty_days_oldest_first_with_today_so_far() -> None:
    now = datetime(2025, 4, 10, 18, 0, tzinfo=UTC)
    report = compute_cost(now, PARAMS, 0, {date(2025, 4, 9): {"polygon": (3, 0.5)}})
    assert len(report.daily_history) == 30
    assert report.daily_history[0][0] == date(2025, 4, 10) - timedelta(days=29)
    assert report.daily_history[-1] == (date(2025, 4, 10), pytest.approx(0.75 * 1.1))
    assert report.daily_history[-2] == (date(2025, 4, 9), pytest.approx(1.6))
    body = report.to_json()
    assert body["daily_history"][-2] == ["2025-04-09", pytest.approx(1.6)]
    assert body["monthly_budget"] == 50.0
    assert set(body) >= {"daily_projection", "month_to_date", "month_end_projection", "components"}


def test_day_fraction_and_naive_time() -> None:
    assert day_fraction(datetime(2025, 1, 1, 18, 0, tzinfo=UTC)) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        compute_cost(datetime(2025, 1, 1), PARAMS, 0, {})


def test_recorded_days_cut_the_modelled_history_and_reach_the_api_json() -> None:
    """Issue 16: the model counts the fixed cost for 30 days, also the days
    before the stack existed; with what ``cost_days`` recorded, the history
    starts at the first recorded day, and the recorded days go out as they are."""
    from platform_services.api.cost import with_recorded

    now = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    report = compute_cost(now, PARAMS, 0, {})
    assert len(report.daily_history) == 30  # the model alone invents 29 days
    first_at = datetime(2025, 3, 12, 17, 5, tzinfo=UTC)
    recorded = [
        (date(2025, 3, 12), 0.55, first_at, datetime(2025, 3, 12, 23, 59, 50, tzinfo=UTC)),
        (date(2025, 3, 14), 0.65, datetime(2025, 3, 14, 0, 0, 5, tzinfo=UTC), now),
    ]
    cut = with_recorded(report, recorded)
    assert [d for d, _ in cut.daily_history] == [date(2025, 3, d) for d in (12, 13, 14)]
    body = cut.to_json()
    assert body["recorded_days"] == {
        "2025-03-12": {
            "cost": 0.55,
            "first": first_at.isoformat(),
            "last": recorded[0][3].isoformat(),
        },
        "2025-03-14": {"cost": 0.65, "first": recorded[1][2].isoformat(), "last": now.isoformat()},
    }
    # nothing recorded yet (a database that just came up): today only
    assert [d for d, _ in with_recorded(report, []).daily_history] == [date(2025, 3, 14)]
