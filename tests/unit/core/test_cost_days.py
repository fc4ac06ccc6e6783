"""The recorded cost history (issue 16, "cost history invents days"): only
days seen are recorded, the first is partial, a missing day is a gap."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from console.core.cost_days import day_series, load_record, save_record, update_record
from console.core.models import CostDay

NOW = datetime(2025, 4, 10, 15, 40, tzinfo=UTC)
TODAY = NOW.date()


def modelled(
    days: int = 30, today_cost: float = 0.9, today: date = TODAY
) -> list[tuple[date, float]]:
    """What the platform reports: 30 days, each with its fixed cost, also the
    days before the stack existed."""
    out = [(today - timedelta(days=back), 1.6) for back in range(days - 1, 0, -1)]
    return [*out, (today, today_cost)]


def test_a_new_record_holds_today_only_never_the_modelled_days() -> None:
    record = update_record({}, NOW, modelled())
    assert list(record) == ["2025-04-10"]
    assert record["2025-04-10"]["cost"] == 0.9
    series = day_series(record, TODAY)
    assert series == [CostDay(day=TODAY, cost=0.9, partial=True)]


def test_the_first_day_is_partial_and_later_days_are_not() -> None:
    record = update_record({}, NOW, modelled())
    tomorrow = NOW + timedelta(days=1)
    # the next day, the platform's figure for yesterday (now complete) moves
    report = [(TODAY, 1.55), (tomorrow.date(), 0.2)]
    record = update_record(record, tomorrow, report)
    series = day_series(record, tomorrow.date())
    assert [(d.day, d.cost, d.partial) for d in series] == [
        (TODAY, 1.55, True),
        (tomorrow.date(), 0.2, False),
    ]


def test_a_day_without_a_record_is_a_gap_not_filled_in() -> None:
    record = update_record({}, NOW, modelled())
    later = NOW + timedelta(days=3)  # no console ran in between
    record = update_record(record, later, modelled(today_cost=0.3, today=later.date()))
    # the platform models the days in between; the record does not take them
    assert sorted(record) == ["2025-04-10", "2025-04-13"]
    series = day_series(record, later.date())
    assert [d.cost for d in series] == [1.6, None, None, 0.3]
    assert [d.partial for d in series] == [True, False, False, False]


def test_the_series_is_at_most_thirty_days_and_ignores_the_future() -> None:
    record = {(TODAY - timedelta(days=back)).isoformat(): {"cost": 1.0} for back in range(0, 45)}
    record["2025-04-11"] = {"cost": 9.0}  # a clock ahead once: not drawn
    series = day_series(record, TODAY)
    assert len(series) == 30 and series[-1].day == TODAY
    assert series[0].day == TODAY - timedelta(days=29)
    assert not any(d.partial for d in series)  # the first recorded day is older
    assert update_record({}, NOW, [(TODAY + timedelta(days=1), 5.0)]) == {}


def test_nothing_recorded_draws_nothing() -> None:
    assert day_series({}, TODAY) == []
    assert day_series({"2025-04-09": {"cost": "n/a"}, "bad": {"cost": 1}}, TODAY) == []


def test_the_record_survives_a_restart_and_a_bad_file_starts_anew(tmp_path: Path) -> None:
    path = tmp_path / "cost-days.json"
    assert load_record(path) == {}
    record = update_record({}, NOW, modelled())
    save_record(path, record)
    assert load_record(path) == record
    assert not list(tmp_path.glob(".*.tmp"))
    path.write_text("{not json", encoding="utf-8")
    assert load_record(path) == {}
