"""The recorded cost history (issue 16, "cost history invents days"): the
chart draws the days the platform recorded, the first is partial, a missing
day is a gap; the report's modelled days are never drawn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from console.core.cost_days import day_series, parse_recorded
from console.core.models import CostDay
from console.core.sources.cost import cost_snapshot_from

NOW = datetime(2025, 4, 10, 15, 40, tzinfo=UTC)
TODAY = NOW.date()


def report(recorded: dict[str, Any] | None) -> dict[str, Any]:
    """A platform report: its 30 modelled days, and what it recorded."""
    history = [[(TODAY - timedelta(days=b)).isoformat(), 1.6] for b in range(29, -1, -1)]
    body: dict[str, Any] = {
        "daily_projection": 1.5,
        "month_to_date": 14.0,
        "daily_target": 1.67,
        "monthly_budget": 50.0,
        "components": {"compute": 1.3},
        "daily_history": history,
    }
    if recorded is not None:
        body["recorded_days"] = recorded
    return body


def drawn(body: dict[str, Any]) -> list[CostDay]:
    """The days the source's snapshot of ``body`` draws."""
    return cost_snapshot_from(
        body, None, now=NOW, monthly_budget=50.0, daily_target=1.67
    ).recorded_days


def test_a_stack_that_began_today_draws_today_only_and_partial() -> None:
    days = drawn(report({"2025-04-10": {"cost": 0.9, "first": "...", "last": "..."}}))
    assert days == [CostDay(day=TODAY, cost=0.9, partial=True)]


def test_the_modelled_days_are_never_drawn() -> None:
    assert drawn(report(None)) == []  # a platform without the record: nothing invented
    assert drawn(report({})) == []


def test_the_first_day_is_partial_and_a_missing_day_is_a_gap() -> None:
    days = drawn(
        report(
            {
                "2025-04-07": {"cost": 0.4},
                "2025-04-08": {"cost": 1.6},
                "2025-04-10": {"cost": 0.9},  # the stack was down on the 9th
            }
        )
    )
    assert [(d.day.day, d.cost, d.partial) for d in days] == [
        (7, 0.4, True),
        (8, 1.6, False),
        (9, None, False),
        (10, 0.9, False),
    ]


def test_the_series_is_at_most_thirty_days_and_ignores_the_future() -> None:
    record = {(TODAY - timedelta(days=b)).isoformat(): {"cost": 1.0} for b in range(45)}
    record["2025-04-11"] = {"cost": 9.0}  # a clock ahead once: not drawn
    series = day_series(record, TODAY)
    assert len(series) == 30 and series[-1].day == TODAY
    assert series[0].day == TODAY - timedelta(days=29)
    assert not any(d.partial for d in series)  # the first recorded day is older


def test_bad_entries_are_skipped() -> None:
    assert day_series({"2025-04-09": {"cost": "n/a"}, "bad": {"cost": 1}}, TODAY) == []
    assert parse_recorded(["2025-04-09", 1.0]) == {}
    assert parse_recorded({"2025-04-09": 1.0}) == {}
