"""The real app, with the real Monitor, against the real stack.

Started with ``run_test(size=(160, 48))``: the panels must show the stack's
own containers, non-zero stats, the health of each endpoint through nginx,
and a slow query this test produces with ``pg_sleep``. The app runs in
read-only mode: nothing here changes the stack, except the destructive test
at the end that stops the database container and starts it again.

Waits are bounded polls of the app's state (never fixed sleeps, never
asserts on durations).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from console.core.config import Settings
from console.core.sources.docker.handle import DockerHandle
from console.ui.app import StackdeckApp, create_app
from console.ui.panels import ContainersPanel, DatabasePanel, EventsPanel, HealthPanel, StatsPanel
from console.ui.panels.events import BEFORE_MARK
from console.ui.widgets.table import ListTable
from tests.conftest import Stack
from tests.integration.console.engine_buffer import forget_in_the_engine

pytestmark = pytest.mark.stack

SERVICES = ("nginx", "worker", "db", "redis", "market-sim")
ENDPOINTS = (
    "/api/health",
    "/api/health/database",
    "/api/health/cache",
    "/api/health/external-apis",
)


def live_settings(stack: Stack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "project": stack.name,
        "repo_root": stack.repo,
        "base_url": stack.base_url,
        "run_dir": stack.run_dir,
        "state_dir": stack.state_dir,
        "pg_password": stack.env.get("POSTGRES_PASSWORD") or None,
        "redis_password": stack.env.get("REDIS_PASSWORD") or None,
        "admin_token": stack.env.get("ADMIN_TOKEN") or None,
        "read_only": True,
    }
    values.update(overrides)
    return Settings(**values)


async def until(pilot: Any, condition: Callable[[], Any], *, limit_s: float, what: str) -> None:
    """Let the app run until ``condition()`` holds; fail naming ``what`` after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {limit_s:.0f} s")
        await pilot.pause(0.2)


def row_text(table: ListTable, key: str) -> str:
    return " ".join(str(cell) for cell in table.get_row(key))


async def test_panels_show_the_real_stack(stack: Stack) -> None:
    app: StackdeckApp = create_app(live_settings(stack), hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(
            pilot,
            lambda: (
                app.dashboard.containers is not None
                and len(app.dashboard.containers.containers) >= len(SERVICES)
            ),
            limit_s=60,
            what="the container list",
        )
        assert app.dashboard.containers is not None
        table = app.query_one(ContainersPanel).query_one(ListTable)
        shown = set(table.shown_keys)
        for service in SERVICES:
            assert stack.container(service) in shown, (service, sorted(shown))
        serving = app.dashboard.containers.serving_colour
        assert serving in ("blue", "green")
        assert stack.container(f"backend_{serving}") in shown
        assert "running" in row_text(table, stack.container("db"))
        # the web frontend's serving colour like the backend's: its version
        # label, its health, its colour from nginx's active.conf
        env = stack.deploy_env()
        page = app.dashboard.containers.serving_frontend
        assert page == env.get("FRONTEND_COLOUR", env["ACTIVE_COLOUR"])
        frontend = next(
            c
            for c in app.dashboard.containers.containers
            if c.name == stack.container(f"frontend_{page}")
        )
        assert frontend.version == env.get("FRONTEND_VERSION", "v1.0.0")
        assert (frontend.state, frontend.health) == ("running", "healthy")
        assert frontend.version in row_text(table, stack.container(f"frontend_{page}"))
        title = str(app.query_one(ContainersPanel).border_title)
        assert f"page {page} {frontend.version}" in title, title
        header = str(app.query_one("#header .left").render())
        assert f"{stack.name} @ itest" in header and f"serving {serving}" in header

        # stats: every running container sampled, memory measured, some CPU used
        await until(
            pilot,
            lambda: (
                app.dashboard.stats is not None
                and len(app.dashboard.stats.containers) >= len(SERVICES)
                and app.dashboard.stats.total_cpu_percent > 0
            ),
            limit_s=60,
            what="docker stats with CPU use",
        )
        assert app.dashboard.stats is not None
        assert all(s.mem_usage > 0 and s.pids > 0 for s in app.dashboard.stats.containers)
        stats_table = app.query_one(StatsPanel).query_one(ListTable)
        db_row = row_text(stats_table, stack.container("db"))
        assert "0B / " not in db_row  # memory of the database is not zero

        # health of each endpoint, through nginx and for the serving colour
        await until(
            pilot,
            lambda: (
                app.dashboard.health is not None
                and {r.path for r in app.dashboard.health.results if r.target == "nginx"}
                >= set(ENDPOINTS)
                # the source publishes the nginx wave first, then the colours'
                and {r.path for r in app.dashboard.health.results if r.target == serving}
                >= set(ENDPOINTS[:3])
            ),
            limit_s=60,
            what="the health checks",
        )
        assert app.dashboard.health is not None
        by = {(r.path, r.target): r for r in app.dashboard.health.results}
        for path in ENDPOINTS[:3]:  # external-apis depends on the simulated providers' mood
            assert by[(path, "nginx")].status == 200, by[(path, "nginx")]
            assert by[(path, serving)].status == 200, by[(path, serving)]
        health_table = app.query_one(HealthPanel).query_one(ListTable)
        assert health_table.shown_keys[: len(ENDPOINTS)] == list(ENDPOINTS)
        assert "200" in row_text(health_table, "/api/health")
        assert not app.query_one(HealthPanel).has_class("-stale")


async def test_a_restart_before_the_start_is_on_screen_marked(stack: Stack) -> None:
    """market-sim restarted, then forgotten by the engine's event buffer,
    before the console starts: the Events panel shows its start at once,
    marked as before the console started."""
    market = stack.container("market-sim")
    t0 = time.time()
    stack.compose("restart", "market-sim")
    handle = DockerHandle(live_settings(stack))
    try:
        await asyncio.to_thread(forget_in_the_engine, handle.api, market, t0)
    finally:
        await handle.aclose()

    app: StackdeckApp = create_app(live_settings(stack), hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(EventsPanel).query_one(ListTable)

        def restart_rows() -> list[str]:
            return [
                row_text(table, key)
                for key in table.shown_keys
                if f"|{market}|" in key and key.split("|")[2] in ("die", "start")
            ]

        await until(pilot, lambda: len(restart_rows()) >= 2, limit_s=60, what="the restart")
        rows = restart_rows()
        assert all(row.startswith(f"{BEFORE_MARK} ") for row in rows), rows
        assert "before the console started" in str(app.query_one(EventsPanel).border_title)


async def test_a_slow_query_shows_up(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.pg_dsn)
    try:
        await conn.execute("SELECT pg_sleep(0.3)")  # stackdeck-ui-itest
    finally:
        await conn.close()
    app = create_app(live_settings(stack), hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(
            pilot,
            lambda: (
                app.dashboard.database is not None
                and any("pg_sleep" in q.query for q in app.dashboard.database.slow_queries)
            ),
            limit_s=60,
            what="pg_sleep among the slow queries",
        )
        table = app.query_one(DatabasePanel).query_one(ListTable)
        table.filter_text = "pg_sleep"
        await pilot.pause()
        assert table.row_count >= 1
        assert app.dashboard.database is not None
        assert (
            app.dashboard.database.max_connections > 0 and app.dashboard.database.db_size_bytes > 0
        )


@pytest.mark.destructive
async def test_database_down_marks_the_panel_stale_and_recovers(stack: Stack) -> None:
    db = stack.container("db")
    app = create_app(live_settings(stack), hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(DatabasePanel)
        await until(
            pilot, lambda: app.dashboard.database is not None, limit_s=60, what="database data"
        )
        await asyncio.to_thread(
            subprocess.run, ["docker", "stop", "-t", "10", db], check=True, capture_output=True
        )
        try:
            await until(
                pilot, lambda: panel.has_class("-stale"), limit_s=90, what="the stale marker"
            )
            marker = str(panel.border_subtitle)
            assert marker.startswith("stale ") and "postgres" in marker, marker
            assert panel.query_one(ListTable).row_count > 0  # last good data still shown
            assert app.dashboard.containers is not None  # the rest keeps working
        finally:
            await asyncio.to_thread(
                subprocess.run, ["docker", "start", db], check=True, capture_output=True
            )
        await until(
            pilot,
            lambda: not panel.has_class("-stale"),
            limit_s=180,
            what="recovery after the database came back",
        )
        assert app.return_code is None


async def test_the_console_opens_on_the_last_hour(stack: Stack) -> None:
    """Load first, then the console: its charts carry samples from before it started."""
    from console.core.prom import PromClient, PromError
    from console.core.sources.prometheus import HistorySource, PrometheusUnavailable
    from console.ui.widgets.chart import PlotextChart
    from tests.load import LoadLoop

    settings = live_settings(stack)
    prom = PromClient(settings)
    try:
        async with LoadLoop(stack.base_url, max_requests=600, max_seconds=60, pause=0.02):
            # until Prometheus has scraped the backend's counters of this load
            deadline = time.monotonic() + 90
            while True:
                try:  # Prometheus answers 503 for a while after it starts
                    rate: Any = await prom.query(
                        'sum(rate(http_request_duration_seconds_count{job="backend"}[1m]))'
                    )
                except PromError as exc:
                    rate = exc
                if isinstance(rate, list) and rate and rate[0][1] > 0:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"Prometheus never saw the load (last answer {rate!r})")
                await asyncio.sleep(1)
        # On a stack brought up a minute ago (CI runs this tier first) Prometheus
        # holds less history than the claim needs: wait until the console's own
        # history source (same range, same step-aligned grid as the console's
        # first poll) has a backend CPU line reaching 20 s into the past, so a
        # console started after this must carry a point from before its start.
        source = HistorySource(settings, client=prom)
        deadline = time.monotonic() + 150
        while True:
            try:
                snap = await source.poll()
            except PrometheusUnavailable as exc:
                oldest_cpu, seen = None, str(exc)
            else:
                firsts = [
                    s.points[0][0]
                    for s in snap.series
                    if s.key.startswith("cpu:backend_") and s.points
                ]
                oldest_cpu, seen = (min(firsts) if firsts else None), f"first points {firsts}"
            if oldest_cpu is not None and oldest_cpu < time.time() - 20:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus holds no backend CPU from 20 s ago ({seen})")
            await asyncio.sleep(2)
    finally:
        await prom.aclose()
    started = time.time()
    app = create_app(settings, hostname="itest")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(
            pilot,
            lambda: app.dashboard.history is not None and app.dashboard.history.series,
            limit_s=60,
            what="the history from Prometheus",
        )
        history = app.dashboard.history
        assert history is not None and history.available, history
        assert history.range_seconds == 3600
        oldest = {s.key: s.points[0][0] for s in history.series if s.points}
        backend = [k for k in oldest if k.startswith("cpu:backend_")]
        assert backend, sorted(oldest)
        assert min(oldest[k] for k in backend) < started - 15, (started, oldest)
        assert any(k.startswith("rps:") or k.startswith("requests:") for k in oldest), sorted(
            oldest
        )
        # the stats panel's chart draws them: a time axis reaching before the start
        await until(pilot, lambda: app.dashboard.stats is not None, limit_s=60, what="stats")
        chart = app.query_one(StatsPanel).query_one(PlotextChart)
        await until(pilot, lambda: chart.data.span is not None, limit_s=30, what="a time chart")
        times = [t for series in chart.data.series for t in series.times]
        assert times and min(times) < started - 15
        # the range key: the next poll covers six hours
        await pilot.press("t")
        await until(
            pilot,
            lambda: (
                app.dashboard.history is not None and app.dashboard.history.range_seconds == 21600
            ),
            limit_s=60,
            what="the 6 h range",
        )
