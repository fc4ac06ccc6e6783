"""The Stats and Health panels of a swarm stack (issue 14): stats per node
and per task, health per task, from the monitoring (recorded
``swarm_monitoring`` fixture: three nodes, node-3 went down 75 s ago), then
Prometheus stopping to answer (``swarm_prometheus_down``: the last figures,
marked stale with the reason) and answering again.

The compose-mode panels are held by ``test_snapshots.py``, unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from console.core.models import SourceState
from console.ui.panels import HealthPanel, StatsPanel
from console.ui.widgets.table import ListTable

from .fakes import NOW, FakeMonitor, load_feed, make_app
from .fixtures.make_fixtures import swarm_stats

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
DOWN = "Prometheus at 127.0.0.1:9090: not reachable (connection refused)"


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def row(table: ListTable, key: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(table.get_cell(key, c).plain.strip() for c in columns)


@pytest.mark.parametrize("size", list(SIZES))
def test_swarm_monitoring_dashboard(snap_compare: Any, size: str) -> None:
    assert snap_compare(make_app("swarm_monitoring"), terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize(("key", "tab"), [("3", "stats"), ("2", "health")])
def test_swarm_tabs_at_80x24(snap_compare: Any, key: str, tab: str) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)

    assert snap_compare(make_app("swarm_monitoring"), terminal_size=(80, 24), run_before=run_before)


def test_prometheus_down_160x48(snap_compare: Any) -> None:
    assert snap_compare(
        make_app("swarm_prometheus_down"), terminal_size=(160, 48), run_before=settle
    )


STATS_COLUMNS = ("name", "node", "cpu", "mem", "memp", "load", "age")


async def test_stats_per_node_then_its_tasks() -> None:
    app = make_app("swarm_monitoring")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        panel = app.query_one(StatsPanel)
        assert panel.swarm_mode
        table = panel.table
        assert table is not None and table.id == "swarm-stats-table" and table.display
        assert not panel.query_one("#stats-table", ListTable).display
        keys = list(table.shown_keys)
        # node-1, its tasks, node-2, its tasks, node-3 (down), its last task
        assert keys[0] == "node:node-1" and keys.index("node:node-2") < keys.index("node:node-3")
        assert row(table, "node:node-2", STATS_COLUMNS) == (
            "▣ node-2",
            "node",
            "88.2",
            "3.6G / 4.0G",
            "90.0",
            "3.05",
            "9s",
        )
        node3 = row(table, "node:node-3", STATS_COLUMNS)
        assert node3[2] == "–" and node3[6] == "stale 1m"
        under3 = keys[keys.index("node:node-3") + 1 :]
        assert [row(table, k, ("name", "node"))[0] for k in under3] == ["backend.3"]
        stale_task = row(table, under3[0], STATS_COLUMNS)
        assert stale_task[2] == "–" and stale_task[6] == "stale 1m"
        # a task of node-2, under node-2
        between = keys[keys.index("node:node-2") + 1 : keys.index("node:node-3")]
        assert [row(table, k, ("name",))[0] for k in between] == [
            "backend.2",
            "backend.3",
            "worker.1",
        ]
        title = str(panel.border_title)
        assert "3 nodes · 7 tasks · 1 stale" in title
        assert panel.stale_marker == ""


HEALTH_COLUMNS = ("name", "node", "probe", "health", "detail")


async def test_health_through_nginx_then_per_task() -> None:
    app = make_app("swarm_monitoring")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        panel = app.query_one(HealthPanel)
        table = panel.table
        assert table is not None and table.id == "swarm-health-table" and table.display
        keys = list(table.shown_keys)
        assert keys[0] == "/api/health"  # the endpoints through nginx first
        assert row(table, "/api/health", HEALTH_COLUMNS)[2].startswith("200")
        tasks = [row(table, k, HEALTH_COLUMNS) for k in keys if k.startswith("task:")]
        assert tasks[:4] == [
            ("backend.1", "node-1", "up", "healthy", "10.0.1.7:8000"),
            ("backend.2", "node-2", "up", "healthy", "10.0.1.9:8000"),
            ("backend.3", "node-2", "✗ down", "starting", "10.0.1.12:8000"),
            # its node is down: the last health status is not claimed
            ("backend.3", "node-3", "✗ down", "unknown", "10.0.1.4:8000"),
        ]
        assert ("worker.1", "node-2", "up", "unhealthy", "10.0.1.10:8001") in tasks
        assert ("db.1", "node-1", "–", "healthy", "–") in tasks
        assert "· 3/5 tasks up" in str(panel.border_title)


async def test_prometheus_down_keeps_the_figures_stale_and_recovers() -> None:
    app = make_app("swarm_prometheus_down")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        stats, health = app.query_one(StatsPanel), app.query_one(HealthPanel)
        assert stats.stale_marker == f"stale 42s · swarm-stats: {DOWN}"
        assert health.stale_marker == f"stale 42s · swarm-stats: {DOWN}"
        table = stats.table
        assert table is not None and "node:node-1" in table.shown_keys  # last figures kept
        monitor = FakeMonitor.instances[-1]
        monitor.push("swarm_stats", swarm_stats(taken=NOW))
        monitor.push("source", SourceState(name="swarm-stats", ok=True, last_ok=NOW, failures=0))
        await settle(pilot)
        assert stats.stale_marker == "" and health.stale_marker == ""


async def test_prometheus_never_answered_says_why() -> None:
    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        FakeMonitor.instances[-1].push(
            "source",
            SourceState(
                name="swarm-stats",
                ok=False,
                last_error=DOWN,
                failures=2,
                next_retry=NOW + timedelta(seconds=4),
            ),
        )
        await settle(pilot)
        stats = app.query_one(StatsPanel)
        assert stats.has_class("-empty")
        placeholder = str(stats.query_one(".placeholder").render())
        assert f"no data · swarm-stats: {DOWN}" in placeholder
        health = app.query_one(HealthPanel).table
        assert health is not None
        assert "tasks: waiting for the monitoring" in health.get_cell("tasks-note", "name").plain


def test_fixture_feeds_are_recorded() -> None:
    kinds = [kind for kind, _ in load_feed("swarm_monitoring")]
    assert "swarm_stats" in kinds and "swarm" in kinds
