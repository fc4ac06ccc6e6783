"""pg_stat_statements across a deploy: the snapshot the ops engine takes when
a deploy or a rollback starts, and the comparison of it with the current view.

pg_stat_statements keeps cumulative counters per statement (``calls``,
``total_exec_time``): the snapshot at the deploy's start ``T`` holds them as
they were then, so for a statement seen both then and now

- mean before = ``total_T / calls_T`` (everything up to the deploy);
- mean after  = ``(total_now - total_T) / (calls_now - calls_T)`` (only
  what ran since).

A statement whose counters went *down* was reset (``pg_stat_statements_reset()``)
or evicted and seen again: its current counters are all from after the
deploy, so they are the "after" side. A reset of the whole view is told by
``pg_stat_statements_info.stats_reset`` moving.

The snapshot file (``$STATE/pgss/<op_id>.json``) keeps the top
:data:`TOP_STATEMENTS` statements by total time with their text, and the
counters of every statement (``all``: queryid -> [calls, total ms, rows]), a
few hundred kB at most with ``pg_stat_statements.max = 5000``. Only the last
:data:`KEEP_SNAPSHOTS` are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.models import StatementChange
from console.core.ops.statefiles import atomic_write

__all__ = [
    "KEEP_SNAPSHOTS",
    "TOP_STATEMENTS",
    "Stat",
    "StatementsView",
    "compare_statements",
    "load_snapshot",
    "read_view",
    "save_snapshot",
    "snapshot_path",
    "view_from_snapshot",
]

TOP_STATEMENTS = 200
"""Statements kept with their text in a snapshot (by total time)."""
KEEP_SNAPSHOTS = 20
"""Snapshots kept in ``$STATE/pgss`` (older ones are pruned)."""
QUERY_CHARS = 1000
"""Longest query text kept."""
FORMAT = 1

Q_VIEW = f"""
SELECT s.queryid::text AS queryid,
       sum(s.calls)::int8 AS calls,
       sum(s.total_exec_time)::float8 AS total_ms,
       sum(s.rows)::int8 AS rows,
       left(min(s.query), {QUERY_CHARS}) AS query
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
  AND s.query NOT LIKE '%pg_stat_statements%'
GROUP BY s.queryid
"""
"""Every statement of this database, one row per queryid (summed over
users and nesting levels); the console's own reads of the view left out."""

Q_INFO = "SELECT stats_reset, dealloc FROM pg_stat_statements_info"


@dataclass(frozen=True)
class Stat:
    """One statement's cumulative counters."""

    calls: int
    total_ms: float
    rows: int = 0
    query: str = ""

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.calls if self.calls > 0 else None


@dataclass(frozen=True)
class StatementsView:
    """pg_stat_statements at one moment."""

    taken_at: datetime
    stats: Mapping[str, Stat]
    """queryid -> counters."""
    stats_reset: datetime | None = None
    """When the whole view was last reset (pg_stat_statements_info)."""
    dealloc: int | None = None
    """How many times entries were evicted to make room."""


async def read_view(conn: Any) -> StatementsView:
    """The current view over an asyncpg connection (two queries)."""
    rows = await conn.fetch(Q_VIEW)
    info = await conn.fetchrow(Q_INFO)
    stats = {
        str(r["queryid"]): Stat(
            calls=int(r["calls"] or 0),
            total_ms=float(r["total_ms"] or 0.0),
            rows=int(r["rows"] or 0),
            query=" ".join(str(r["query"] or "").split()),
        )
        for r in rows
    }
    reset = info["stats_reset"] if info is not None else None
    if reset is not None and reset.tzinfo is None:
        reset = reset.replace(tzinfo=UTC)
    return StatementsView(
        taken_at=datetime.now(UTC),
        stats=stats,
        stats_reset=reset,
        dealloc=int(info["dealloc"]) if info is not None and info["dealloc"] is not None else None,
    )


# --- the snapshot file -------------------------------------------------------------


def snapshot_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "pgss"


def snapshot_path(state_dir: Path, op_id: str) -> Path:
    """``$STATE/pgss/<op_id>.json``."""
    return snapshot_dir(state_dir) / f"{op_id}.json"


def snapshot_record(
    view: StatementsView, *, op: str, op_id: str, params: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """What the snapshot file holds (JSON-ready)."""
    ranked = sorted(view.stats.items(), key=lambda kv: kv[1].total_ms, reverse=True)
    top = [
        {
            "queryid": qid,
            "query": s.query,
            "calls": s.calls,
            "total_exec_time": round(s.total_ms, 3),
            "mean_exec_time": round(s.mean_ms or 0.0, 3),
            "rows": s.rows,
        }
        for qid, s in ranked[:TOP_STATEMENTS]
    ]
    return {
        "format": FORMAT,
        "op": op,
        "op_id": op_id,
        "taken_at": view.taken_at.isoformat(),
        "params": dict(params),
        **extra,
        "stats_reset": view.stats_reset.isoformat() if view.stats_reset else None,
        "dealloc": view.dealloc,
        "count": len(view.stats),
        "top": top,
        "all": {qid: [s.calls, round(s.total_ms, 3), s.rows] for qid, s in ranked},
    }


def save_snapshot(state_dir: Path, record: Mapping[str, Any], keep: int = KEEP_SNAPSHOTS) -> Path:
    """Write the snapshot (atomically) and prune all but the newest ``keep``."""
    path = snapshot_path(state_dir, str(record["op_id"]))
    atomic_write(path, json.dumps(record, separators=(",", ":"), default=str), mode=0o640)
    prune_snapshots(state_dir, keep)
    return path


def prune_snapshots(state_dir: Path, keep: int = KEEP_SNAPSHOTS) -> list[Path]:
    """Remove all but the newest ``keep`` snapshot files; returns the removed ones."""
    folder = snapshot_dir(state_dir)
    try:
        files = [p for p in folder.iterdir() if p.suffix == ".json" and p.is_file()]
    except FileNotFoundError:
        return []
    files.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    removed = []
    for p in files[max(keep, 1) :]:
        try:
            os.unlink(p)
            removed.append(p)
        except OSError:
            pass
    return removed


def load_snapshot(state_dir: Path, op_id: str) -> dict[str, Any] | None:
    """The snapshot taken at operation ``op_id`` (None when there is none or
    it is unreadable)."""
    try:
        value = json.loads(snapshot_path(state_dir, op_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("all"), dict) else None


def parse_time(value: Any) -> datetime | None:
    """An ISO time from a JSON record (UTC when it has no zone); None when absent or bad."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def view_from_snapshot(record: Mapping[str, Any]) -> StatementsView:
    """A snapshot file back as a :class:`StatementsView` (texts for its top only)."""
    texts = {str(t.get("queryid")): str(t.get("query") or "") for t in record.get("top") or []}
    stats: dict[str, Stat] = {}
    for qid, counters in (record.get("all") or {}).items():
        try:
            calls, total, rows = counters[0], counters[1], counters[2]
            stats[str(qid)] = Stat(int(calls), float(total), int(rows), texts.get(str(qid), ""))
        except (TypeError, ValueError, IndexError):
            continue
    return StatementsView(
        taken_at=parse_time(record.get("taken_at")) or datetime.fromtimestamp(0, UTC),
        stats=stats,
        stats_reset=parse_time(record.get("stats_reset")),
        dealloc=record.get("dealloc"),
    )


# --- the comparison ----------------------------------------------------------------


def compare_statements(
    at_deploy: StatementsView,
    now: StatementsView,
    *,
    min_ratio: float = 1.5,
    min_calls: int = 3,
    min_delta_ms: float = 0.5,
    limit: int = 50,
) -> tuple[list[StatementChange], list[StatementChange], list[str]]:
    """(slower, new, warnings).

    ``slower``: statements seen at the deploy and run again since, whose mean
    since is at least ``min_ratio`` times the mean before and ``min_delta_ms``
    more (a 2 µs statement taking 4 µs is noise, not a regression), with at
    least ``min_calls`` calls on each side; the biggest ratio first.
    ``new``: statements the deploy's snapshot did not have, the most total
    time first. Both at most ``limit`` long.
    """
    warnings: list[str] = []
    whole_reset = now.stats_reset is not None and (
        now.stats_reset > at_deploy.stats_reset
        if at_deploy.stats_reset is not None
        else now.stats_reset > at_deploy.taken_at
    )
    if whole_reset:
        assert now.stats_reset is not None
        warnings.append(
            f"pg_stat_statements was reset at {now.stats_reset.isoformat(timespec='seconds')}, "
            "after the deploy: 'after' counts only what ran since that reset"
        )
    elif (
        now.dealloc is not None
        and at_deploy.dealloc is not None
        and now.dealloc > at_deploy.dealloc
    ):
        warnings.append(
            f"pg_stat_statements evicted entries {now.dealloc - at_deploy.dealloc} time(s) since "
            "the deploy (pg_stat_statements.max is full): a 'new' statement may be an old one seen again"
        )
    slower: list[StatementChange] = []
    new: list[StatementChange] = []
    restarted = 0
    for qid, cur in now.stats.items():
        before = at_deploy.stats.get(qid)
        if before is None:
            if cur.calls > 0:
                new.append(
                    StatementChange(
                        queryid=qid,
                        query=cur.query,
                        calls_after=cur.calls,
                        mean_ms_after=_r(cur.mean_ms),
                        new=True,
                    )
                )
            continue
        if whole_reset or cur.calls < before.calls:
            # the counters started again after the deploy: all of them are "after"
            if not whole_reset:
                restarted += 1
            calls_after, total_after = cur.calls, cur.total_ms
        else:
            calls_after = cur.calls - before.calls
            total_after = max(cur.total_ms - before.total_ms, 0.0)
        if calls_after <= 0 or before.calls <= 0:
            continue
        mean_before = before.total_ms / before.calls
        mean_after = total_after / calls_after
        if calls_after < min_calls or before.calls < min_calls:
            continue
        if mean_after < min_ratio * mean_before or mean_after - mean_before < min_delta_ms:
            continue
        slower.append(
            StatementChange(
                queryid=qid,
                query=cur.query or before.query,
                calls_before=before.calls,
                mean_ms_before=_r(mean_before),
                calls_after=calls_after,
                mean_ms_after=_r(mean_after),
            )
        )
    if restarted:
        warnings.append(
            f"{restarted} statement(s) have fewer calls than at the deploy (reset or evicted "
            "since): their current counters are taken as 'after'"
        )
    slower.sort(key=lambda c: (c.ratio or 0.0, c.calls_after), reverse=True)
    new.sort(key=lambda c: (c.mean_ms_after or 0.0) * c.calls_after, reverse=True)
    return slower[:limit], new[:limit], warnings


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
