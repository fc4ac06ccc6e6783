"""The recorded cost history: each UTC day's cost, kept as it happens.

The platform's ``/api/metrics/cost`` models the last 30 days: its fixed part
(compute, storage) is counted for every day, also the days before the stack
existed (issue 16, "cost history invents days"). The chart draws this record
instead: the cost source writes today's cost so far at every poll (and
updates a day already recorded when the platform's figure for it moves, e.g.
the last minutes of yesterday), and the chart shows only the days that have
a record. The first day is partial (the record began during it); a day
without a record between two recorded ones is a gap, never filled in.

The record lives in the stack's state folder (``<state_dir>/cost-days.json``,
beside the audit log and the deploy history), so every console on the host
shares it. It is written only while a console runs: a day on which none ran
is a gap. A console that cannot write there (read-only mount, another user)
keeps the record in memory for its own session.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from console.core.models import CostDay

__all__ = ["RECORD_FILE", "day_series", "load_record", "save_record", "update_record"]

log = logging.getLogger(__name__)

RECORD_FILE = "cost-days.json"
"""The record's file name in the stack's state folder."""
KEEP_DAYS = 400
"""Days older than this are dropped from the record."""

Record = dict[str, dict[str, Any]]
"""``{"2025-03-14": {"cost": 1.52, "first": iso, "last": iso}}``: one entry
per recorded UTC day; ``first``/``last``: when it was first and last recorded."""


def update_record(
    record: Mapping[str, Mapping[str, Any]],
    now: datetime,
    platform_days: Iterable[tuple[date, float]],
) -> Record:
    """The record after a poll at ``now`` whose report gave ``platform_days``
    (its per-day costs; today's is the cost so far).

    Today is recorded (or updated); a day already in the record takes the
    report's newer figure; a day the record does not have is never added:
    the report's figure for it is modelled, not seen."""
    now = now.astimezone(UTC)
    today = now.date()
    at = now.isoformat()
    out: Record = {day: dict(entry) for day, entry in record.items()}
    for day, cost in platform_days:
        key = day.isoformat()
        if day > today:
            continue
        if day == today:
            entry = out.setdefault(key, {"first": at})
            entry["cost"] = round(float(cost), 4)
            entry["last"] = at
        elif key in out:
            out[key]["cost"] = round(float(cost), 4)
    oldest = (today - timedelta(days=KEEP_DAYS)).isoformat()
    return {day: entry for day, entry in sorted(out.items()) if day >= oldest}


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


def load_record(path: Path) -> Record:
    """The record in ``path``; empty when there is none or it is unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cost record %s unreadable (%s): starting a new one", path, exc)
        return {}
    days = raw.get("days") if isinstance(raw, dict) else None
    if not isinstance(days, dict):
        return {}
    return {str(k): dict(v) for k, v in days.items() if isinstance(v, dict)}


def save_record(path: Path, record: Mapping[str, Mapping[str, Any]]) -> None:
    """Write the record atomically (a reader never sees half a file).
    Raises OSError when the folder is missing or not writable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"days": record}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
