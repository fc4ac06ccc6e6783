"""Cost projection: month-end arithmetic and the API report parser."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from console.core.sources.cost import (
    cache_hit_rate,
    cost_snapshot_from,
    daily_projection_from_month,
    month_end_projection,
    remaining_days_in_month,
)


def test_remaining_days() -> None:
    # 14 March noon: 31 - 13 full days - half of today = 17.5
    assert remaining_days_in_month(datetime(2025, 3, 14, 12, tzinfo=UTC)) == pytest.approx(17.5)
    assert remaining_days_in_month(datetime(2025, 2, 1, tzinfo=UTC)) == pytest.approx(28.0)
    assert remaining_days_in_month(datetime(2024, 2, 29, 18, tzinfo=UTC)) == pytest.approx(0.25)


def test_month_end_projection() -> None:
    now = datetime(2025, 3, 14, 12, tzinfo=UTC)
    assert month_end_projection(22.0, 1.92, now) == pytest.approx(22.0 + 17.5 * 1.92)


def test_daily_projection_from_month_to_date() -> None:
    now = datetime(2025, 3, 11, tzinfo=UTC)  # 10 days elapsed
    assert daily_projection_from_month(16.7, now) == pytest.approx(1.67)
    # minutes after the month began: clamped to one hour, no division blow-up
    early = datetime(2025, 3, 1, 0, 1, tzinfo=UTC)
    assert daily_projection_from_month(0.05, early) == pytest.approx(0.05 * 24)


def test_snapshot_from_api_report() -> None:
    now = datetime(2025, 3, 14, 12, tzinfo=UTC)
    report = {
        "daily_projection": 1.92,
        "daily_target": 1.67,
        "month_to_date": 22.1,
        "month_end_projection": 55.7,
        "monthly_budget": 50.0,
        "components": {"compute": 1.3, "storage": 0.07, "provider_calls": 0.55},
        "daily_history": [["2025-03-13", 1.8], ["2025-03-12", 1.7], ["bad", 1]],
    }
    snap = cost_snapshot_from(
        report, {"hit_rate": 0.83}, now=now, monthly_budget=50, daily_target=1.67
    )
    assert snap.daily_projection == 1.92
    assert snap.month_end_projection == 55.7
    assert snap.components["provider_calls"] == 0.55
    assert snap.cache_hit_rate == 0.83
    assert snap.daily_history == [(date(2025, 3, 12), 1.7), (date(2025, 3, 13), 1.8)]


def test_snapshot_derives_missing_figures() -> None:
    now = datetime(2025, 3, 11, tzinfo=UTC)
    snap = cost_snapshot_from(
        {"month_to_date": 16.7}, None, now=now, monthly_budget=50, daily_target=1.67
    )
    assert snap.daily_projection == pytest.approx(1.67)
    assert snap.month_end_projection == pytest.approx(16.7 + 21 * 1.67, abs=1e-3)
    assert snap.cache_hit_rate is None
    with pytest.raises(ValueError):
        cost_snapshot_from({}, None, now=now, monthly_budget=50, daily_target=1.67)


def test_cache_hit_rate_forms() -> None:
    assert cache_hit_rate({"hit_rate": 0.5}) == 0.5
    assert cache_hit_rate({"hit_rate": 75}) == 0.75  # a percent
    assert cache_hit_rate({"hits": 3, "misses": 1}) == 0.75
    assert cache_hit_rate({"hits": 0, "misses": 0}) is None
