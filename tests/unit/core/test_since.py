"""Since the deploy, the parts that need no stack: the pg_stat_statements
maths (slower, new, reset, too few calls), the snapshot file, the window, the
last deploy read from the audit log, and since_deploy()'s warnings when a
part is missing. The engine's snapshot at a deploy's start, with a database
that is gone or does not answer."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core import pgss
from console.core.config import Settings
from console.core.models import Comparison, OpEvent
from console.core.ops import engine
from console.core.ops.audit import audit
from console.core.ops.context import OpContext, Operator
from console.core.ops.engine import Implementation, run_op
from console.core.ops.events import Emitter
from console.core.pgss import Stat, StatementsView, compare_statements
from console.core.since import choose_window, format_since, last_deploy, since_deploy

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def view(
    at: datetime, reset: datetime | None = None, dealloc: int = 0, **stats: Stat
) -> StatementsView:
    return StatementsView(taken_at=at, stats=stats, stats_reset=reset, dealloc=dealloc)


# --- the statements' maths --------------------------------------------------------------


def test_a_statement_slower_after_the_deploy_is_listed_with_its_means() -> None:
    before = view(T, q1=Stat(10, 10.0, query="SELECT pg_sleep($1)"), q2=Stat(100, 100.0))
    now = view(
        T + timedelta(minutes=10),
        q1=Stat(20, 10.0 + 10 * 50.0, query="SELECT pg_sleep($1)"),  # 1 ms -> 50 ms
        q2=Stat(200, 200.0),  # unchanged: 1 ms
    )
    slower, new, warnings = compare_statements(before, now)
    assert [s.queryid for s in slower] == ["q1"]
    s = slower[0]
    assert (s.calls_before, s.mean_ms_before, s.calls_after, s.mean_ms_after) == (10, 1.0, 10, 50.0)
    assert s.ratio == pytest.approx(50.0) and s.query == "SELECT pg_sleep($1)"
    assert new == [] and warnings == []


def test_slower_is_sorted_by_ratio_and_the_threshold_is_configurable() -> None:
    before = view(T, a=Stat(10, 100.0), b=Stat(10, 100.0), c=Stat(10, 100.0))
    now = view(
        T, a=Stat(20, 100 + 10 * 20.0), b=Stat(20, 100 + 10 * 80.0), c=Stat(20, 100 + 10 * 14.0)
    )  # 10 ms before
    slower, _, _ = compare_statements(before, now)
    assert [s.queryid for s in slower] == ["b", "a"]  # c: 1.4x is below 1.5x
    slower, _, _ = compare_statements(before, now, min_ratio=1.3)
    assert [s.queryid for s in slower] == ["b", "a", "c"]
    slower, _, _ = compare_statements(before, now, min_ratio=3.0)
    assert [s.queryid for s in slower] == ["b"]


def test_too_few_calls_or_a_tiny_difference_is_not_a_regression() -> None:
    before = view(T, few_before=Stat(2, 2.0), few_after=Stat(10, 10.0), tiny=Stat(10, 0.02))
    now = view(
        T,
        few_before=Stat(12, 2.0 + 10 * 50.0),  # 2 calls before the deploy
        few_after=Stat(12, 10.0 + 2 * 50.0),  # 2 calls after
        tiny=Stat(20, 0.02 + 10 * 0.01),  # 2 µs -> 10 µs: 5x, but 8 µs more
    )
    slower, _, _ = compare_statements(before, now)
    assert slower == []
    slower, _, _ = compare_statements(before, now, min_calls=2, min_delta_ms=0.005)
    assert {s.queryid for s in slower} == {"few_before", "few_after", "tiny"}


def test_a_statement_not_run_since_is_not_compared() -> None:
    before = view(T, idle=Stat(10, 10.0))
    slower, new, warnings = compare_statements(before, view(T, idle=Stat(10, 10.0)))
    assert (slower, new, warnings) == ([], [], [])


def test_new_statements_are_the_ones_the_snapshot_lacks_most_time_first() -> None:
    before = view(T, old=Stat(5, 5.0))
    now = view(
        T,
        old=Stat(5, 5.0),
        cheap=Stat(100, 10.0, query="SELECT 1"),  # 10 ms in all
        costly=Stat(2, 400.0, query="SELECT big"),  # 400 ms in all
    )
    _, new, _ = compare_statements(before, now)
    assert [(n.queryid, n.new, n.calls_after, n.mean_ms_after) for n in new] == [
        ("costly", True, 2, 200.0),
        ("cheap", True, 100, 0.1),
    ]


def test_a_reset_of_the_whole_view_takes_the_current_counters_as_after() -> None:
    before = view(T, reset=T - timedelta(days=1), q=Stat(100, 100.0))
    now = view(T + timedelta(minutes=5), reset=T + timedelta(minutes=1), q=Stat(10, 500.0))
    slower, new, warnings = compare_statements(before, now)
    assert [(s.queryid, s.calls_after, s.mean_ms_after) for s in slower] == [("q", 10, 50.0)]
    assert new == []
    assert len(warnings) == 1 and "reset at 2026-12-01T12:01:00" in warnings[0]
    assert "after the deploy" in warnings[0]


def test_one_statement_with_fewer_calls_than_at_the_deploy_was_reset_on_its_own() -> None:
    # pg_stat_statements_reset(userid, dbid, queryid), or evicted and seen again
    before = view(T, q=Stat(100, 100.0), other=Stat(10, 10.0))
    now = view(T, q=Stat(4, 40.0), other=Stat(10, 10.0))
    slower, _, warnings = compare_statements(before, now)
    assert [(s.queryid, s.calls_after, s.mean_ms_after) for s in slower] == [("q", 4, 10.0)]
    assert any("fewer calls than at the deploy" in w for w in warnings), warnings


def test_evictions_since_the_deploy_are_said() -> None:
    before = view(T, dealloc=3)
    now = view(T, dealloc=5, q=Stat(1, 1.0))
    _, new, warnings = compare_statements(before, now)
    assert [n.queryid for n in new] == ["q"]
    assert any("evicted entries 2 time(s)" in w for w in warnings), warnings


# --- the snapshot file ----------------------------------------------------------------------


def test_a_snapshot_round_trips_and_keeps_the_text_of_the_top_only(tmp_path: Path) -> None:
    stats = {
        f"q{i}": Stat(i + 1, float(i), i, f"SELECT {i}") for i in range(pgss.TOP_STATEMENTS + 50)
    }
    v = StatementsView(taken_at=T, stats=stats, stats_reset=T - timedelta(days=2), dealloc=1)
    record = pgss.snapshot_record(v, op="deploy", op_id="abc", params={"version": "v2"})
    path = pgss.save_snapshot(tmp_path, record)
    assert path == tmp_path / "pgss" / "abc.json"
    back = pgss.view_from_snapshot(pgss.load_snapshot(tmp_path, "abc") or {})
    assert back.taken_at == T and back.stats_reset == v.stats_reset and back.dealloc == 1
    assert set(back.stats) == set(stats)
    assert all(
        back.stats[k].calls == s.calls and back.stats[k].total_ms == s.total_ms
        for k, s in stats.items()
    )
    texts = [k for k, s in back.stats.items() if s.query]
    assert len(texts) == pgss.TOP_STATEMENTS  # the most total time: the highest i
    assert "q0" not in texts and f"q{pgss.TOP_STATEMENTS + 49}" in texts
    assert pgss.load_snapshot(tmp_path, "missing") is None


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    v = StatementsView(taken_at=T, stats={})
    for i in range(pgss.KEEP_SNAPSHOTS + 5):
        path = pgss.save_snapshot(
            tmp_path, pgss.snapshot_record(v, op="deploy", op_id=f"op{i:02d}", params={})
        )
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    pgss.prune_snapshots(tmp_path)
    kept = sorted(p.stem for p in (tmp_path / "pgss").iterdir())
    assert kept == [f"op{i:02d}" for i in range(5, pgss.KEEP_SNAPSHOTS + 5)]


# --- the window --------------------------------------------------------------------------------


def test_the_window_is_the_time_since_the_deploy_up_to_the_maximum() -> None:
    w, before_start, after_end, warning = choose_window(T, T + timedelta(minutes=20), 3600)
    assert (w, before_start, after_end, warning) == (
        1200.0,
        T - timedelta(minutes=20),
        T + timedelta(minutes=20),
        None,
    )
    w, before_start, after_end, warning = choose_window(T, T + timedelta(hours=5), 3600)
    assert (w, before_start, after_end, warning) == (
        3600.0,
        T - timedelta(hours=1),
        T + timedelta(hours=1),
        None,
    )


def test_a_deploy_moments_ago_still_gets_the_shortest_window_and_says_so() -> None:
    now = T + timedelta(seconds=10)
    w, before_start, after_end, warning = choose_window(T, now, 3600, min_window=60)
    assert w == 60.0 and before_start == T - timedelta(seconds=60) and after_end == now
    assert warning is not None and "only 10 s since the deploy" in warning


# --- the last deploy in the audit log -----------------------------------------------------------


def _line(event: str, op: str, op_id: str, at: datetime, **kw: Any) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "event": event,
        "op": op,
        "op_id": op_id,
        "user": "alice",
        "params": kw.pop("params", {}),
        **kw,
    }


def test_the_last_deploy_is_the_newest_ok_deploy_or_rollback_from_its_start() -> None:
    v = {"version": "v2.0.0"}
    records = [
        _line("start", "deploy", "d1", T, params=v),
        _line("end", "deploy", "d1", T + timedelta(seconds=40), result="ok", params=v),
        _line("start", "vacuum", "v1", T + timedelta(minutes=5)),
        _line("end", "vacuum", "v1", T + timedelta(minutes=6), result="ok"),
        _line("start", "deploy", "d2", T + timedelta(minutes=10)),  # failed
        _line("end", "deploy", "d2", T + timedelta(minutes=11), result="bake-failed"),
        _line("refused", "deploy", "d3", T + timedelta(minutes=12), result="lock-busy"),
        _line("start", "deploy", "d4", T + timedelta(minutes=20)),  # still running: no end
    ]
    d = last_deploy(records)
    assert d is not None and (d.op_id, d.started, d.params["version"]) == ("d1", T, "v2.0.0")
    assert (
        d.marker().label == "deploy v2.0.0 (blue-green) by alice: ok"
    )  # as the charts label it and d.marker().at == T
    records += [
        _line("start", "rollback", "r1", T + timedelta(minutes=30)),
        _line("end", "rollback", "r1", T + timedelta(minutes=31), result="ok"),
    ]
    d = last_deploy(records)
    assert d is not None and d.op == "rollback" and d.started == T + timedelta(minutes=30)
    assert d.marker().label == "rollback to the previous colour by alice: ok"
    # as of a moment before the rollback started
    d = last_deploy(records, now=T + timedelta(minutes=29))
    assert d is not None and d.op_id == "d1"


def test_a_deploy_whose_start_line_is_lost_starts_at_its_end_minus_its_duration() -> None:
    records = [
        _line("end", "deploy", "d1", T + timedelta(seconds=90), result="ok", duration_s=90.0),
        {"torn": True},
    ]
    d = last_deploy(records)
    assert d is not None and d.started == T
    assert last_deploy([]) is None


# --- since_deploy() with parts missing ----------------------------------------------------------


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "repo_root": tmp_path,
        "project": "unitx",
        "state_dir": tmp_path / "state",
        "run_dir": tmp_path / "run",
        "prometheus_url": "",
        "request_timeout": 1.0,
    }
    values.update(kw)
    return Settings(**values)


def _deploy_on_record(settings: Settings, op_id: str, at: datetime) -> None:
    op = {"user": "alice"}
    audit(
        settings.state_dir / "audit.log",
        event="start",
        op="deploy",
        op_id=op_id,
        operator=op,
        params={"version": "v2.0.0"},
        now=at,
    )
    audit(
        settings.state_dir / "audit.log",
        event="end",
        op="deploy",
        op_id=op_id,
        operator=op,
        params={"version": "v2.0.0"},
        result="ok",
        now=at + timedelta(seconds=30),
    )


async def test_without_a_deploy_on_record_there_is_nothing_to_compare(
    clean_env: Path, tmp_path: Path
) -> None:
    snap = await since_deploy(_settings(tmp_path), now=T)
    assert snap.deploy is None and snap.comparisons == [] and snap.slower == []
    assert len(snap.warnings) == 1 and "no deploy or rollback on record" in snap.warnings[0]
    assert "no deploy on record" in format_since(snap)


async def test_without_prometheus_or_a_snapshot_it_says_why(
    clean_env: Path, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    _deploy_on_record(settings, "d42", T)
    snap = await since_deploy(settings, now=T + timedelta(minutes=10))
    assert snap.deploy is not None and snap.deploy.op_id == "d42"
    assert snap.window_seconds == 600 and snap.comparisons == []
    assert any(w.startswith("no Prometheus: no Prometheus configured") for w in snap.warnings), (
        snap.warnings
    )
    assert any(
        w.startswith("no pg_stat_statements snapshot for deploy d42 (taken by stackdeck ≥")
        for w in snap.warnings
    ), snap.warnings


async def test_a_database_that_is_gone_is_a_warning_not_an_error(
    clean_env: Path, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    _deploy_on_record(settings, "d43", T)
    pgss.save_snapshot(
        settings.state_dir,
        pgss.snapshot_record(view(T, q=Stat(1, 1.0)), op="deploy", op_id="d43", params={}),
    )
    t0 = time.monotonic()
    snap = await since_deploy(settings, now=T + timedelta(minutes=10))
    assert time.monotonic() - t0 < 5
    assert snap.statements_snapshot_at == T
    assert any(
        w.startswith("pg_stat_statements: cannot read the current view") for w in snap.warnings
    ), snap.warnings


class FakeProm:
    """Answers each query by what it asks, at the deploy (before) or after."""

    def __init__(self, deploy_at: datetime) -> None:
        self.deploy_at = deploy_at
        self.asked: list[tuple[str, float]] = []

    async def query(self, expr: str, at: Any = None) -> list[tuple[dict[str, str], float]]:
        ts = at.timestamp() if isinstance(at, datetime) else float(at)
        self.asked.append((expr, ts))
        after = ts > self.deploy_at.timestamp()
        ep = {"method": "GET", "route": "/api/stocks/prices"}
        if "histogram_quantile" in expr:
            return [
                (ep, 0.12 if after else 0.03),
                ({"method": "GET", "route": "/api/health"}, float("nan")),
            ]
        if "status=~" in expr:
            return [(ep, 0.02 if after else 0.0)]
        if "http_request_duration_seconds_count" in expr:
            return [(ep, 5.0)]
        if "cpu" in expr:
            return (
                [({"service": "backend_blue"}, 0.05)]
                if not after
                else [({"service": "backend_green"}, 0.2)]
            )
        if "memory" in expr:
            return [({"service": "backend_green"}, 100 * 1024 * 1024), ({}, 1.0)]
        return []


async def test_prometheus_comparisons_per_endpoint_and_service(
    clean_env: Path, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    _deploy_on_record(settings, "d44", T)
    prom = FakeProm(T)
    snap = await since_deploy(settings, now=T + timedelta(minutes=10), prom=prom)
    got = {(c.group, c.subject, c.metric): (c.before, c.after) for c in snap.comparisons}
    assert got[("endpoint", "GET /api/stocks/prices", "p95")] == (30.0, 120.0)
    assert got[("endpoint", "GET /api/stocks/prices", "error rate")] == (0.0, 2.0)
    assert got[("endpoint", "GET /api/stocks/prices", "requests")] == (5.0, 5.0)
    assert got[("service", "backend_blue", "cpu")] == (5.0, None)
    assert got[("service", "backend_green", "cpu")] == (None, 20.0)
    assert got[("service", "backend_green", "memory")] == (100.0, 100.0)
    assert ("endpoint", "GET /api/health", "p95") not in got  # NaN on both sides
    # evaluated at the deploy and at its end, with the window as the range
    times = {ts for _, ts in prom.asked}
    assert times == {T.timestamp(), (T + timedelta(minutes=10)).timestamp()}
    assert all("[600s]" in expr for expr, _ in prom.asked)
    assert not any(w.startswith("no Prometheus") for w in snap.warnings)
    text = format_since(snap)
    assert "GET /api/stocks/prices" in text and "×4.00" in text


# --- the engine's snapshot at a deploy's start ----------------------------------------------------


def _ctx(tmp_path: Path) -> OpContext:
    return OpContext(
        stack="unitx",
        repo=REPO,
        state_dir=tmp_path / "state",
        run_dir=tmp_path / "run",
        base_url="http://127.0.0.1:9",
        env={"POSTGRES_PASSWORD": "pw-unit-0123456789"},
        operator=Operator(user="unit", ssh_client=None, host="h", pid=os.getpid()),
    )


async def _fake_deploy(ctx: OpContext, params: Any, *, op_id: str) -> AsyncIterator[OpEvent]:
    yield Emitter("deploy").ok("switch", "switched")


async def _events(ctx: OpContext, monkeypatch: pytest.MonkeyPatch) -> list[OpEvent]:
    monkeypatch.setitem(engine.IMPLEMENTATIONS, "deploy", Implementation(_fake_deploy))
    monkeypatch.setattr("console.core.ops.notify.operation_finished", lambda *a, **k: None)
    return [e async for e in run_op("deploy", ctx, version="v2.0.0")]


async def test_a_deploy_goes_on_without_a_snapshot_when_the_database_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = await _events(_ctx(tmp_path), monkeypatch)
    steps = [(e.step, e.status) for e in events]
    assert steps == [("begin", "start"), ("pgss", "warn"), ("switch", "ok"), ("result", "done")]
    assert (
        "no pg_stat_statements snapshot" in events[1].message
        and "deploy goes on" in events[1].message
    )
    assert not (tmp_path / "state" / "pgss").exists()


async def test_a_database_that_does_not_answer_holds_the_deploy_up_for_the_timeout_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(tmp_path)
    ctx.pg_socket_dir.mkdir(parents=True)
    # a socket that accepts and never answers: a wedged server
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(ctx.pg_socket_dir / ".s.PGSQL.5432"))
    server.listen(4)
    monkeypatch.setattr(engine, "PGSS_TIMEOUT_S", 0.5)
    try:
        t0 = time.monotonic()
        events = await asyncio.wait_for(_events(ctx, monkeypatch), timeout=10)
        took = time.monotonic() - t0
    finally:
        server.close()
    warn = next(e for e in events if e.step == "pgss")
    assert warn.status == "warn" and "did not answer within 0.5 s" in warn.message
    assert events[-1].status == "done" and took < 3.0


async def test_a_refused_deploy_takes_no_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(tmp_path).replace(read_only=True)
    events = await _events(ctx, monkeypatch)
    assert [e.step for e in events] == ["result"] and events[0].status == "fail"


class BrokenProm:
    async def query(self, expr: str, at: Any = None) -> Any:
        from console.core.prom import PromError

        raise PromError("Prometheus: not reachable (connection refused)")


async def test_a_prometheus_that_fails_is_a_warning_and_no_comparisons(
    clean_env: Path, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    _deploy_on_record(settings, "d45", T)
    snap = await since_deploy(settings, now=T + timedelta(minutes=10), prom=BrokenProm())
    assert snap.comparisons == [] and snap.deploy is not None
    assert "no Prometheus: Prometheus: not reachable (connection refused)" in snap.warnings


def test_verdict_needs_the_ratio_and_more_than_the_noise_floor() -> None:
    from console.core.since import NOISE_FLOOR, verdict

    def c(metric: str, before: float | None, after: float | None) -> Comparison:
        return Comparison(group="service", subject="s", metric=metric, before=before, after=after)

    assert verdict(c("p95", 20.0, 90.0)) == 1
    assert verdict(c("p95", 90.0, 20.0)) == -1
    assert verdict(c("p95", 100.0, 110.0)) == 0  # ×1.1: under the ratio
    assert verdict(c("cpu", 0.29, 0.35)) == 0  # ×1.2, but 0.06 points of a core
    assert verdict(c("cpu", 0.29, 0.29 + NOISE_FLOOR["cpu"])) == 1
    assert verdict(c("memory", 40.0, 50.0)) == 0  # ×1.25, 10 MiB
    assert verdict(c("error rate", 0.0, 2.0)) == 1  # errors from none
    assert verdict(c("error rate", 0.0, 0.0)) == 0
    assert verdict(c("requests", 1.0, 50.0)) == 0  # a rate is neither
    assert verdict(c("p95", None, 50.0)) == 0  # new: said as new, not as worse
