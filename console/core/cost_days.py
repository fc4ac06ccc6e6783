"""The recorded cost history: each UTC day's cost, as the platform recorded it.

The platform's cost model counts its fixed part (compute, storage) for every
day, also the days before the stack existed (issue 16, "cost history invents
days"). The platform therefore records each day's cost as it happens, in its
database (``cost_days``, migration 0003): whenever it computes its report
(every ``/api/metrics/cost``, and every Prometheus scrape of ``/metrics``),
with or without a console open. The report carries those days as
``recorded_days``; the chart draws only them. The first day is partial (the
record began during it); a day without a record between two recorded ones
(the stack was down) is a gap, never filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from console.core.models import CostDay

__all__ = ["Record", "day_series", "parse_recorded"]

Record = dict[str, dict[str, Any]]
"""``{"2025-03-14": {"cost": 1.52, "first": iso, "last": iso}}``: one entry
per recorded UTC day; ``first``/``last``: when it was first and last recorded."""


def parse_recorded(raw: Any) -> Record:
    """The report's ``recorded_days``; empty when it has none (a platform
    older than the record, or its database down)."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): dict(v) for k, v in raw.items() if isinstance(v, Mapping)}


def day_series(
    record: Mapping[str, Mapping[str, Any]], today: date, days: int = 30
) -> list[CostDay]:
    """What the chart draws: every day from the first recorded one (at most
    ``days`` back) to today; the first recorded day is partial, a day without
    a record has ``cost=None``. Empty when nothing was recorded yet."""
    recorded: dict[date, float] = {}
    for key, entry in record.items():
        try:
            day = date.fromisoformat(key)
            cost = float(entry["cost"])
        except (KeyError, TypeError, ValueError):
            continue
        if day <= today:
            recorded[day] = cost
    if not recorded:
        return []
    first = min(recorded)
    start = max(first, today - timedelta(days=days - 1))
    return [
        CostDay(day=day, cost=recorded.get(day), partial=day == first)
        for day in (start + timedelta(days=i) for i in range((today - start).days + 1))
    ]
