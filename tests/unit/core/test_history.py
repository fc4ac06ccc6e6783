"""The charts' specs, the step of a range query, and the markers read from the
tail of the audit log (console/core/history.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core import history
from console.core.history import (
    DASHBOARDS,
    MAIN_CHARTS,
    RANGES,
    SCRAPE_INTERVAL,
    ChartSpec,
    _lines_backwards,
    choose_step,
    read_markers,
    to_series,
    view_charts,
)
from console.core.ops.audit import audit

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ROOT = {"user": "root", "ssh_client": "10.0.0.7 51000 22", "host": "prod", "pid": 1}


# --- specs and steps -----------------------------------------------------------------------


def test_every_view_is_a_screenful_of_uniquely_named_charts() -> None:
    assert set(DASHBOARDS) == {
        "System Overview",
        "Application Performance",
        "Business Metrics",
        "Database Performance",
    }
    for name, charts in DASHBOARDS.items():
        assert 4 <= len(charts) <= 6, name
        ids = [c.chart for c in view_charts(name)]
        assert len(ids) == len(set(ids)), name  # a chart shared with the main ones once
        assert ids[: len(MAIN_CHARTS)] == [c.chart for c in MAIN_CHARTS]
    assert view_charts(None) == MAIN_CHARTS
    assert {c.chart for c in MAIN_CHARTS} == {
        "cpu",
        "mem",
        "p95",
        "errors",
        "requests",
        "cost",
        "quota",
    }


@pytest.mark.parametrize("range_s", RANGES)
def test_step_gives_120_to_180_points_and_never_less_than_a_scrape(range_s: int) -> None:
    step = choose_step(range_s)
    assert step >= SCRAPE_INTERVAL
    assert step % SCRAPE_INTERVAL == 0  # whole scrapes: every point lands on a sample
    points = range_s / step
    if step > SCRAPE_INTERVAL:
        assert 120 <= points <= 180, (range_s, step, points)
    else:  # 15 minutes hold only 60 scrapes: the floor wins
        assert points <= 180


def test_step_of_the_console_ranges() -> None:
    assert [choose_step(r) for r in RANGES] == [15.0, 30.0, 150.0, 585.0]
    assert choose_step(10) == SCRAPE_INTERVAL
    assert choose_step(0) == SCRAPE_INTERVAL


def test_series_are_scaled_named_by_the_legend_and_nan_is_a_gap() -> None:
    spec = ChartSpec("mem", "Memory", "%", "x", legend="service", scale=100.0)
    matrix = [
        ({"service": "db"}, [(1.0, 0.5), (2.0, math.nan), (3.0, 0.25)]),
        ({"service": "redis"}, [(1.0, math.inf)]),  # nothing finite: no line at all
        ({}, [(1.0, 0.1)]),  # no legend label: the default subject
    ]
    series = to_series(spec, matrix)
    assert [(s.key, s.subject, s.points) for s in series] == [
        ("mem:db", "db", [(1.0, 50.0), (3.0, 25.0)]),
        ("mem:total", "total", [(1.0, 10.0)]),
    ]
    assert all(s.unit == "%" and s.chart == "mem" for s in series)
    routes = ChartSpec("routes", "Routes", "req/s", "x", legend="route")
    got = to_series(routes, [({"route": "/api/health", "method": "GET"}, [(1.0, 2.0)])])
    assert got[0].subject == "GET /api/health"


# --- markers ----------------------------------------------------------------------------------


def op(
    log: Path,
    name: str,
    op_id: str,
    at: datetime,
    params: dict[str, Any],
    result: str | None = "ok",
    user: str = "root",
) -> None:
    operator = {**ROOT, "user": user}
    audit(log, event="start", op=name, op_id=op_id, operator=operator, params=params, now=at)
    if result is not None:
        audit(
            log,
            event="end",
            op=name,
            op_id=op_id,
            operator=operator,
            params=params,
            result=result,
            now=at + timedelta(seconds=40),
        )


def test_one_marker_per_operation_at_its_start_with_what_who_and_how(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    op(log, "deploy", "d1", T0 - timedelta(hours=2), {"version": "v1.9.0"})  # before the range
    op(
        log,
        "deploy",
        "d2",
        T0 + timedelta(minutes=1),
        {"version": "v2.0.0", "strategy": "blue-green"},
    )
    op(log, "status", "s1", T0 + timedelta(minutes=2), {})  # read-only: not drawn
    op(log, "vacuum", "v1", T0 + timedelta(minutes=3), {"tables": []}, result="failed")
    op(log, "cache-flush", "c1", T0 + timedelta(minutes=4), {"prefix": "cache:prices:"})
    op(
        log,
        "emergency-limit",
        "e1",
        T0 + timedelta(minutes=5),
        {"state": "on", "ttl": 3600},
        user="alice",
    )
    audit(
        log,
        event="refused",
        op="deploy",
        op_id="r1",
        operator=ROOT,
        params={"version": "v3"},
        result="lock-busy",
        now=T0 + timedelta(minutes=6),
    )  # refused: nothing happened, nothing drawn
    op(
        log,
        "rollback",
        "b1",
        T0 + timedelta(minutes=7),
        {"version": None, "reason": "p95 above 2 s"},
        result=None,
    )  # still running (no end line)
    markers = read_markers(tmp_path, T0, T0 + timedelta(hours=1))
    assert [(m.op, m.label, m.result, m.op_id) for m in markers] == [
        ("deploy", "deploy v2.0.0 (blue-green) by root: ok", "ok", "d2"),
        ("vacuum", "vacuum all tables by root: failed", "failed", "v1"),
        ("cache-flush", "cache-flush cache:prices: by root: ok", "ok", "c1"),
        ("emergency-limit", "emergency-limit on by alice: ok", "ok", "e1"),
        (
            "rollback",
            "rollback to the previous colour (p95 above 2 s) by root: running",
            None,
            "b1",
        ),
    ]
    assert markers[0].at == T0 + timedelta(minutes=1)
    assert markers[3].operator == "alice"
    # the end of the range bounds too
    assert [m.op_id for m in read_markers(tmp_path, T0, T0 + timedelta(minutes=3))] == [
        "d2",
        "v1",
    ]


def test_a_torn_last_line_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    op(log, "deploy", "d1", T0 + timedelta(minutes=1), {"version": "v2.0.0"})
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("not json at all\n[1, 2]\n{}\n")
        fh.write('{"at": "yesterday", "op": "deploy", "event": "start"}\n')
    op(log, "migrate", "m1", T0 + timedelta(minutes=2), {"backup": True})
    with open(log, "ab") as fh:  # the writer died mid-line
        fh.write(b'{"at": "2026-12-02T12:03:00+00:00", "event": "start", "op": "dep')
    markers = read_markers(tmp_path, T0, T0 + timedelta(hours=1))
    assert [m.op_id for m in markers] == ["d1", "m1"]
    assert markers[1].label == "migrate by root: ok"
    # the next writer starts on a fresh line; the torn one stays skipped
    op(log, "restore", "x1", T0 + timedelta(minutes=4), {"path": "2026-12-02.sql.gz"})
    markers = read_markers(tmp_path, T0, T0 + timedelta(hours=1))
    assert [m.label for m in markers][-1] == "restore 2026-12-02.sql.gz by root: ok"


def test_no_log_no_markers(tmp_path: Path) -> None:
    assert read_markers(tmp_path, T0, T0 + timedelta(hours=1)) == []


def test_lines_backwards_across_block_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "f"
    lines = [f"line {i} " + "x" * (i % 13) for i in range(200)]
    path.write_text("\n".join(lines) + "\n")
    for block in (1, 7, 64, 10_000):
        got = [b.decode() for b in _lines_backwards(path, block=block) if b]
        assert got == lines[::-1], block
    path.write_text("a\nb")  # no final newline
    assert list(_lines_backwards(path, block=1)) == [b"b", b"a"]


def test_a_large_log_is_read_from_its_tail_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.log"
    old = json.dumps(
        {
            "at": (T0 - timedelta(days=30)).isoformat(),
            "event": "start",
            "op": "vacuum",
            "op_id": "old",
            "user": "root",
            "params": {"tables": ["stock_prices"]},
        }
    )
    with open(log, "w", encoding="utf-8") as fh:
        for _ in range(200_000):  # ~30 MB of old history
            fh.write(old + "\n")
    op(log, "deploy", "new", T0 + timedelta(minutes=1), {"version": "v2.0.0"})
    size = log.stat().st_size
    read = 0
    real_open = open

    class Counting:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def read(self, n: int = -1) -> bytes:
            nonlocal read
            data = self.fh.read(n)
            read += len(data)
            return bytes(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    monkeypatch.setattr(
        history, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False
    )
    markers = read_markers(tmp_path, T0, T0 + timedelta(hours=1))
    assert [m.op_id for m in markers] == ["new"]
    assert size > 20_000_000
    assert read <= 2 * history.BLOCK, f"read {read} of {size} bytes"
