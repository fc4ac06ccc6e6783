"""Since the deploy: the window before the last deploy against the window after it.

The last deploy is the newest deploy or rollback that ended ``ok`` in
``$STATE/audit.log``; ``T`` is when it started (its ``start`` line). The
window ``W`` is ``min(now - T, window_max)``, at least ``min_window``:

- before = ``[T - W, T]``, after = ``[T, T + W]``;
- Prometheus: instant queries with ``[W]`` range selectors evaluated at
  ``T`` and at ``T + W``: p95, error rate and request rate per endpoint
  (method and route), CPU (% of one core) and memory per service;
- pg_stat_statements: the snapshot the ops engine took at ``T``
  (:mod:`console.core.pgss`) against the current view, so its "after" is
  ``[T, now]``: the statements that got slower, and the new ones.

Nothing here raises for a missing part: no Prometheus, no snapshot, no
database or no deploy on record is a warning in the snapshot, and every
call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from console.core import pgss
from console.core.config import Settings
from console.core.errors import redact
from console.core.history import marker_label
from console.core.models import Comparison, Marker, OpEvent, SinceDeploySnapshot

__all__ = [
    "DEPLOY_OPS",
    "LastDeploy",
    "choose_window",
    "format_since",
    "last_deploy",
    "run_since_deploy",
    "since_deploy",
]

DEPLOY_OPS = ("deploy", "rollback")
"""Operations that change what runs: each one is a "deploy" to compare across."""
MIN_WINDOW_S = 60.0
"""The shortest window compared: four scrapes at the stack's 15 s interval."""


@dataclass(frozen=True)
class LastDeploy:
    """A deploy or rollback that ended ``ok``, from the audit log."""

    op: str
    op_id: str
    started: datetime
    ended: datetime | None
    params: Mapping[str, Any]
    user: str
    result: str

    def marker(self) -> Marker:
        start = {"op": self.op, "params": self.params, "user": self.user}
        return Marker(
            at=self.started,
            op=self.op,
            label=marker_label(start, self.result),
            result=self.result,
            op_id=self.op_id,
            operator=self.user,
        )


def last_deploy(
    records: Iterable[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    ops: tuple[str, ...] = DEPLOY_OPS,
) -> LastDeploy | None:
    """The newest deploy (or rollback) with an ``end`` line whose result is
    ``ok``, started no later than ``now``. Its start is its ``start`` line's
    time (or the end's minus its duration, when the start line is missing)."""
    starts: dict[str, datetime] = {}
    best: LastDeploy | None = None
    for rec in records:
        if rec.get("op") not in ops:
            continue
        op_id = str(rec.get("op_id") or "")
        at = pgss.parse_time(rec.get("at"))
        if at is None or not op_id:
            continue
        if rec.get("event") == "start":
            starts[op_id] = at
            continue
        if rec.get("event") != "end" or rec.get("result") != "ok":
            continue
        started = starts.get(op_id)
        if started is None:
            try:
                started = at - timedelta(seconds=float(rec.get("duration_s") or 0.0))
            except (TypeError, ValueError):
                started = at
        if now is not None and started > now:
            continue
        if best is None or started >= best.started:
            params = rec.get("params")
            best = LastDeploy(
                op=str(rec.get("op")),
                op_id=op_id,
                started=started,
                ended=at,
                params=params if isinstance(params, Mapping) else {},
                user=str(rec.get("user") or "?"),
                result=str(rec.get("result")),
            )
    return best


def choose_window(
    started: datetime,
    now: datetime,
    window_max: float = 3600.0,
    min_window: float = MIN_WINDOW_S,
) -> tuple[float, datetime, datetime, str | None]:
    """(W seconds, before start, after end, warning): ``W = min(now - T,
    window_max)``, at least ``min_window``; after end = ``min(T + W, now)``."""
    elapsed = (now - started).total_seconds()
    window = max(min(elapsed, window_max), min_window)
    warning = None
    if elapsed < min_window:
        warning = (
            f"only {max(elapsed, 0):.0f} s since the deploy: the windows are {min_window:.0f} s, "
            "so the 'after' side still holds some of the time before it"
        )
    window = float(round(window))
    after_end = min(started + timedelta(seconds=window), now)
    return window, started - timedelta(seconds=window), after_end, warning


# --- Prometheus ----------------------------------------------------------------------

_ENDPOINT = ("method", "route")


def _queries(w: int) -> list[tuple[str, str, str, tuple[str, ...], str, float]]:
    """(group, metric, unit, labels, PromQL, scale) of every comparison."""
    rng = f"[{w}s]"
    count = "http_request_duration_seconds_count"
    by = "sum by (method, route)"
    return [
        (
            "endpoint",
            "p95",
            "ms",
            _ENDPOINT,
            f"histogram_quantile(0.95, sum by (method, route, le) "
            f"(rate(http_request_duration_seconds_bucket{rng})))",
            1000.0,
        ),
        (
            "endpoint",
            "error rate",
            "%",
            _ENDPOINT,
            f'({by} (rate({count}{{status=~"5.."}}{rng})) or {by} (rate({count}{rng})) * 0)'
            f" / {by} (rate({count}{rng}))",
            100.0,
        ),
        ("endpoint", "requests", "/s", _ENDPOINT, f"{by} (rate({count}{rng}))", 1.0),
        (
            "service",
            "cpu",
            "%",
            ("service",),
            f"sum by (service) (rate(container_cpu_usage_seconds_total{rng}))",
            100.0,
        ),
        (
            "service",
            "memory",
            "MiB",
            ("service",),
            f"sum by (service) (avg_over_time(container_memory_working_set_bytes{rng}))",
            1.0 / (1024 * 1024),
        ),
    ]


def _subject(labels: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    values = [labels.get(k, "") for k in keys]
    if not all(values):
        return None
    return " ".join(values)


async def prom_comparisons(
    prom: Any, window: float, before_at: datetime, after_at: datetime
) -> list[Comparison]:
    """Every comparison, from instant queries at ``before_at`` and ``after_at``
    (raises :class:`~console.core.prom.PromError` when Prometheus fails)."""
    w = max(int(window), 1)
    queries = _queries(w)
    answers = await asyncio.gather(
        *(prom.query(expr, at=at) for *_, expr, _s in queries for at in (before_at, after_at))
    )
    out: list[Comparison] = []
    for i, (group, metric, unit, keys, _expr, scale) in enumerate(queries):
        sides: dict[str, dict[str, float | None]] = {}
        for side, vector in (("before", answers[2 * i]), ("after", answers[2 * i + 1])):
            for labels, value in vector:
                subject = _subject(labels, keys)
                if subject is None:
                    continue
                v = None if math.isnan(value) or math.isinf(value) else round(value * scale, 4)
                sides.setdefault(subject, {})[side] = v
        for subject, values in sides.items():
            if values.get("before") is None and values.get("after") is None:
                continue
            out.append(
                Comparison(
                    group=group,
                    subject=subject,
                    metric=metric,
                    unit=unit,
                    before=values.get("before"),
                    after=values.get("after"),
                )
            )
    order = {m: n for n, (_g, m, *_r) in enumerate(queries)}
    out.sort(key=lambda c: (c.group != "endpoint", c.subject, order.get(c.metric, 99)))
    return out


# --- pg_stat_statements ------------------------------------------------------------


async def _connect_pg(settings: Settings) -> Any:
    """asyncpg over the stack's socket, as the console's PostgreSQL source connects."""
    import asyncpg

    password = settings.pg_password.get_secret_value() if settings.pg_password else None
    return await asyncio.wait_for(
        asyncpg.connect(
            dsn=settings.pg_dsn.get_secret_value(),
            password=password or None,
            timeout=settings.request_timeout,
            command_timeout=settings.request_timeout,
            statement_cache_size=0,
            server_settings={
                "application_name": "stackdeck-console",
                "statement_timeout": str(int(settings.request_timeout * 1000)),
            },
        ),
        timeout=settings.request_timeout + 1.0,
    )


async def current_view(settings: Settings) -> pgss.StatementsView:
    conn = await _connect_pg(settings)
    try:
        return await asyncio.wait_for(pgss.read_view(conn), timeout=settings.request_timeout + 0.5)
    finally:
        try:
            await asyncio.wait_for(conn.close(), timeout=1.0)
        except Exception:
            conn.terminate()


# --- the snapshot --------------------------------------------------------------------


async def since_deploy(
    settings: Settings,
    *,
    now: datetime | None = None,
    prom: Any = None,
    window_max: float = 3600.0,
    min_window: float = MIN_WINDOW_S,
    min_ratio: float = 1.5,
    min_calls: int = 3,
    min_delta_ms: float = 0.5,
) -> SinceDeploySnapshot:
    """The last deploy's before and after (see the module doc). ``prom``: a
    :class:`~console.core.prom.PromClient` to use (default: one for
    ``settings``, closed after)."""
    from console import __version__
    from console.core.ops.audit import read_jsonl
    from console.core.prom import PromClient, PromError, monitoring_configured

    now = now or datetime.now(UTC)
    audit_path = settings.state_dir / "audit.log"
    records = await asyncio.to_thread(read_jsonl, audit_path)
    deploy = last_deploy(records, now=now)
    if deploy is None:
        return SinceDeploySnapshot(
            taken_at=now,
            warnings=[f"no deploy or rollback on record in {audit_path}: nothing to compare"],
        )
    window, before_start, after_end, window_warning = choose_window(
        deploy.started, now, window_max, min_window
    )
    warnings: list[str] = [window_warning] if window_warning else []
    timeout = settings.request_timeout + 2.0

    async def from_prometheus() -> list[Comparison]:
        reason = monitoring_configured(settings)
        if reason is not None and prom is None:
            warnings.append(f"no Prometheus: {reason}")
            return []
        client = prom if prom is not None else PromClient(settings)
        try:
            return await asyncio.wait_for(
                prom_comparisons(client, window, deploy.started, after_end), timeout=timeout
            )
        except PromError as exc:
            warnings.append(f"no Prometheus: {exc}")
        except TimeoutError:
            warnings.append(f"no Prometheus: no answer within {timeout:g} s")
        finally:
            if prom is None:
                await client.aclose()
        return []

    snapshot_at: datetime | None = None

    async def from_statements() -> tuple[list[Any], list[Any]]:
        nonlocal snapshot_at
        record = await asyncio.to_thread(pgss.load_snapshot, settings.state_dir, deploy.op_id)
        if record is None:
            warnings.append(
                f"no pg_stat_statements snapshot for {deploy.op} {deploy.op_id} "
                f"(taken by stackdeck ≥ {__version__})"
            )
            return [], []
        at_deploy = pgss.view_from_snapshot(record)
        snapshot_at = at_deploy.taken_at
        try:
            current = await asyncio.wait_for(current_view(settings), timeout=timeout)
        except TimeoutError:
            warnings.append(f"pg_stat_statements: the database did not answer within {timeout:g} s")
            return [], []
        except Exception as exc:
            warnings.append(f"pg_stat_statements: cannot read the current view: {redact(exc)}")
            return [], []
        slower, new, notes = pgss.compare_statements(
            at_deploy,
            current,
            min_ratio=min_ratio,
            min_calls=min_calls,
            min_delta_ms=min_delta_ms,
        )
        warnings.extend(notes)
        return slower, new

    comparisons, (slower, new) = await asyncio.gather(from_prometheus(), from_statements())
    return SinceDeploySnapshot(
        taken_at=now,
        deploy=deploy.marker(),
        before_start=before_start,
        after_end=after_end,
        window_seconds=window,
        comparisons=comparisons,
        slower=slower,
        new_statements=new,
        statements_snapshot_at=snapshot_at,
        warnings=warnings,
    )


# --- what counts as a change ----------------------------------------------------------

WORSE_RATIO = 1.2
"""A comparison changed when after/before moved by this factor or more, either way."""

NOISE_FLOOR: dict[str, float] = {"p95": 5.0, "error rate": 0.25, "cpu": 1.0, "memory": 16.0}
"""The smallest absolute change, in the metric's unit (ms, percentage points,
percentage points of one core, MiB), that counts, whatever the ratio: an idle
exporter going from 0.29 % to 0.35 % of a core is ×1.2 and means nothing."""

UP_IS_WORSE = frozenset(NOISE_FLOOR)
"""Metrics whose rise is a regression (a request rate is neither better nor worse)."""


def verdict(c: Comparison) -> int:
    """+1 when ``c`` got worse, -1 when it got better, 0 when it did not move
    (or moved less than its noise floor, or is not a better/worse metric)."""
    if c.metric not in UP_IS_WORSE or c.before is None or c.after is None:
        return 0
    if abs(c.after - c.before) < NOISE_FLOOR[c.metric]:
        return 0
    if c.before == 0:
        return 1 if c.after > 0 else 0
    ratio = c.after / c.before
    return 1 if ratio >= WORSE_RATIO else -1 if ratio <= 1 / WORSE_RATIO else 0


# --- text -------------------------------------------------------------------------------


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text}{unit}" if unit in ("%", "ms") else text


def _change(c: Comparison) -> str:
    before, after = c.before, c.after
    if before is None or after is None:
        return "new" if before is None and after is not None else "gone" if after is None else ""
    text = ("" if after == 0 else "from 0") if before == 0 else f"×{after / before:.2f}"
    return text + {1: " !", -1: "", 0: ""}[verdict(c)]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_since(snap: SinceDeploySnapshot, width: int = 100) -> str:
    """A readable table for the CLI."""
    out: list[str] = []
    if snap.deploy is None:
        out.append("since the deploy: no deploy on record")
    else:
        d = snap.deploy
        out.append(f"since the {d.op} {d.op_id} at {d.at.isoformat(timespec='seconds')}: {d.label}")
        if snap.before_start and snap.after_end:
            out.append(
                f"  before {snap.before_start.isoformat(timespec='seconds')} .. the deploy .. "
                f"{snap.after_end.isoformat(timespec='seconds')} after ({snap.window_seconds:.0f} s each)"
            )
    for w in snap.warnings:
        out.append(f"  ! {w}")
    for group, title in (("endpoint", "endpoints"), ("service", "services")):
        rows = [c for c in snap.comparisons if c.group == group]
        if not rows:
            continue
        out.append("")
        out.append(f"{title:<44} {'metric':<11} {'before':>10} {'after':>10} {'change':>10}")
        last = None
        for c in rows:
            subject = _clip(c.subject, 44) if c.subject != last else ""
            last = c.subject
            out.append(
                f"{subject:<44} {c.metric + (' ' + c.unit if c.unit not in ('%', 'ms') else ''):<11} "
                f"{_num(c.before, c.unit):>10} {_num(c.after, c.unit):>10} {_change(c):>10}"
            )
    qw = max(width - 48, 30)
    if snap.slower:
        out.append("")
        out.append(
            f"slower statements{'':<{qw - 17}} {'mean before':>11} {'after':>9} {'ratio':>7} {'calls':>6}"
        )
        for s in snap.slower:
            out.append(
                f"{_clip(s.query, qw):<{qw}} {_num(s.mean_ms_before, 'ms'):>11} "
                f"{_num(s.mean_ms_after, 'ms'):>9} {'×' + format(s.ratio or 0, '.1f'):>7} {s.calls_after:>6}"
            )
    if snap.new_statements:
        out.append("")
        out.append(f"new statements{'':<{qw - 14}} {'mean':>11} {'calls':>6}")
        for s in snap.new_statements:
            out.append(
                f"{_clip(s.query, qw):<{qw}} {_num(s.mean_ms_after, 'ms'):>11} {s.calls_after:>6}"
            )
    if snap.deploy is not None and not (snap.slower or snap.new_statements):
        out.append("")
        out.append("statements: none slower and none new since the deploy")
    return "\n".join(out)


# --- the operation ------------------------------------------------------------------------


def settings_for(ctx: Any) -> Settings:
    """The console's settings for an operation's context (same stack, folders and port)."""
    import os

    from console.core.stack import monitoring_ports

    ports = monitoring_ports({**ctx.env, **os.environ}, ctx.http_port)
    return Settings.for_stack(
        ctx.repo,
        project=ctx.stack,
        state_dir=str(ctx.state_dir),
        run_dir=str(ctx.run_dir),
        base_url=ctx.base_url,
        prometheus_url=f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}",
    )


async def run_since_deploy(ctx: Any, params: Any, *, op_id: str = "") -> AsyncIterator[OpEvent]:
    """``since-deploy``: the comparison as events (one line each), the
    snapshot in the ``done`` event's ``data["since"]``."""
    from console.core.ops.events import Emitter

    ev = Emitter("since-deploy", ctx.redact)
    settings = await asyncio.to_thread(settings_for, ctx)
    snap = await since_deploy(
        settings,
        window_max=params.window,
        min_ratio=params.min_ratio,
        min_calls=params.min_calls,
    )
    lines = format_since(snap).splitlines()
    for line in lines[1:]:
        if line.strip():
            yield ev.info("since", line)
    yield ev.done(lines[0], since=snap.model_dump(mode="json"))
