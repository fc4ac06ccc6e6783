"""The Containers panel when the stack is a swarm stack (issue 14): services ->
tasks -> nodes, from the recorded ``swarm`` fixture (three nodes, node-3 just
went down: backend 2/3, its task there lost, the replacement starting on
node-2), then ``swarm_scaled`` (node-3 back, backend scaled to 5).

The compose-mode panel is held by the dashboard snapshots of
``test_snapshots.py``, which are unchanged by the swarm table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rich.text import Text

from console.core.models import SourceState, SwarmSnapshot
from console.ui.app import create_app
from console.ui.palette import Palette
from console.ui.panels import ContainersPanel
from console.ui.widgets.table import ListTable

from .fakes import (
    NOW,
    FakeMonitor,
    FakeOps,
    FixedClock,
    load_feed,
    make_app,
    monitor_factory,
    test_settings,
)
from .fixtures.make_fixtures import swarm

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def cells(table: ListTable, key: str) -> dict[str, str]:
    return {
        column: table.get_cell(key, column).plain
        for column in ("name", "node", "state", "desired", "replicas", "image", "note")
    }


def has_style(cell: Text, colour: str) -> bool:
    return any(colour in str(s) for s in (cell.style, *(span.style for span in cell.spans)))


@pytest.mark.parametrize("size", list(SIZES))
def test_swarm_dashboard(snap_compare: Any, size: str) -> None:
    assert snap_compare(make_app("swarm"), terminal_size=SIZES[size], run_before=settle)


async def test_services_tasks_and_nodes_shown() -> None:
    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        panel = app.query_one(ContainersPanel)
        assert panel.swarm_mode
        table = panel.table
        assert table is not None and table.id == "swarm-table" and table.display
        assert not panel.query_one("#containers-table", ListTable).display
        # the compose project has no containers: no "is the stack up?" placeholder
        assert not panel.has_class("-empty")
        keys = table.shown_keys
        backend = cells(table, "service:s-backend")
        assert (backend["name"], backend["state"], backend["replicas"]) == (
            "backend",
            "degraded",
            "2/3",
        )
        # why a replica is missing: its task on the node that went down
        assert backend["note"] == "backend.3 lost: node-3 down"
        # its tasks beneath it, before the next service
        start = keys.index("service:s-backend")
        end = keys.index("service:s-worker")
        tasks = [cells(table, k) for k in keys[start + 1 : end]]
        assert [(t["name"].strip(), t["node"], t["state"], t["desired"]) for t in tasks] == [
            ("└ backend.1", "node-1", "running", "running"),
            ("└ backend.2", "node-2", "running", "running"),
            ("└ backend.3", "node-2", "starting", "running"),
            ("└ backend.3", "node-3", "lost", "shutdown"),
        ]
        lost = tasks[-1]["note"]
        assert lost == "node down: last seen running"
        # nodes after the services, with role, state and availability
        assert keys.index("nodes") > keys.index("service:s-redis")
        node3 = cells(table, "node:n3")
        assert (node3["node"], node3["state"], node3["desired"], node3["note"]) == (
            "worker",
            "down",
            "active",
            "heartbeat failure",
        )
        assert has_style(table.get_cell("node:n3", "state"), Palette.from_app(app).err)
        node1 = cells(table, "node:n1")
        assert node1["name"] == "node-1 ★ ◂" and node1["note"] == "investment.db=true"
        assert node1["replicas"] == "4"  # nginx, backend.1, db, redis run there
        title = str(panel.border_title)
        assert "swarm investment · 5 services · 7/8 tasks · 3 nodes, 1 down" in title


async def test_the_panel_follows_a_scale_and_a_node_coming_back() -> None:
    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        monitor = FakeMonitor.instances[-1]
        for kind, payload in load_feed("swarm_scaled"):
            monitor.push(kind, payload)
        await settle(pilot)
        table = app.query_one(ContainersPanel).table
        assert table is not None
        backend = cells(table, "service:s-backend")
        assert (backend["state"], backend["replicas"]) == ("running", "5/5")
        names = [cells(table, k)["name"].strip() for k in table.shown_keys if k.startswith("task:")]
        assert [n for n in names if "backend" in n] == [f"└ backend.{i}" for i in range(1, 6)]
        assert cells(table, "node:n3")["state"] == "ready"
        assert "3 nodes" in str(app.query_one(ContainersPanel).border_title)
        assert "down" not in str(app.query_one(ContainersPanel).border_title)


async def test_a_failing_swarm_source_marks_the_panel_stale_and_keeps_the_rows() -> None:
    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        monitor = FakeMonitor.instances[-1]
        monitor.push(
            "source",
            SourceState(
                name="swarm",
                ok=False,
                last_ok=NOW - timedelta(seconds=12),
                last_error="cannot connect to the engine (is dockerd running?)",
                failures=3,
                next_retry=NOW + timedelta(seconds=4),
            ),
        )
        await settle(pilot)
        panel = app.query_one(ContainersPanel)
        assert panel.has_class("-stale")
        assert "swarm: cannot connect to the engine" in str(panel.border_subtitle)
        assert "service:s-backend" in (panel.table.shown_keys if panel.table else [])
        # the compose source failing does not make the swarm view stale
        monitor.push("source", SourceState(name="swarm", ok=True, last_ok=NOW))
        monitor.push("source", SourceState(name="engine", ok=False, last_error="x"))
        await settle(pilot)
        assert not panel.has_class("-stale")


async def test_a_compose_verdict_keeps_the_compose_table() -> None:
    """``auto`` on an engine with no swarm stack: the compose panel, as before."""
    app = make_app("normal")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        FakeMonitor.instances[-1].push(
            "swarm",
            SwarmSnapshot(
                taken_at=NOW,
                stack="investment",
                mode="compose",
                reason="the engine is not part of a swarm (swarm state: inactive)",
            ),
        )
        await settle(pilot)
        panel = app.query_one(ContainersPanel)
        assert not panel.swarm_mode
        table = panel.table
        assert table is not None and table.id == "containers-table" and table.display
        assert table.row_count_total > 0
        assert str(panel.border_title).startswith("Containers · ")
        assert "swarm" not in str(panel.border_title)


async def test_forced_swarm_mode_before_any_snapshot_says_why() -> None:
    """``STACKDECK_MODE=swarm`` on an engine that is no manager: the panel
    shows the swarm source's reason, not the compose table."""
    app = create_app(
        test_settings(mode="swarm"),
        monitor_factory=monitor_factory(None),
        clock=FixedClock(),
        ops_runner=FakeOps(),
    )
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        FakeMonitor.instances[-1].push(
            "source",
            SourceState(
                name="swarm",
                ok=False,
                last_error="the engine is a swarm worker (node w1): services are read on a "
                "manager; point DOCKER_HOST at a manager's engine (STACKDECK_MODE=swarm)",
                failures=1,
            ),
        )
        await settle(pilot)
        panel = app.query_one(ContainersPanel)
        assert panel.swarm_mode and panel.has_class("-empty")
        placeholder = str(panel.query_one(".placeholder").render())
        assert "point DOCKER_HOST at a manager" in placeholder


def test_swarm_fixture_is_what_make_fixtures_builds() -> None:
    """The recorded fixture and the builder agree (regenerate after a change)."""
    recorded = [p for k, p in load_feed("swarm") if k == "swarm"]
    assert recorded == [swarm()]


def test_rows_of_a_recorded_swarm_with_a_paused_update() -> None:
    """The rows of the real one-node recording (tests/unit/core/data): the
    service says its update paused and why, the task still on the old tag is
    in the warning colour, the rejected one in the error colour."""
    import json
    from pathlib import Path

    from console.core.sources.docker.swarm import swarm_snapshot
    from console.ui.panels.swarm import swarm_rows

    data = json.loads(
        (Path(__file__).parents[1] / "unit/core/data/swarm_one_node.json").read_text()
    )
    snap = swarm_snapshot(
        taken_at=NOW,
        stack=data["stack"],
        info=data["info"],
        services=data["services"],
        tasks=data["tasks"],
        nodes=data["nodes"],
    )
    palette = Palette()
    rows = {r.key: r for r in swarm_rows(snap, palette, NOW)}
    service = next(r for k, r in rows.items() if k.startswith("service:"))
    assert service.cells[2].plain == "update paused"
    assert service.cells[5].plain == "1/2"
    assert service.cells[6].plain.startswith("update paused due to failure")
    old, rejected = (rows["task:rcg4z2yd1d0c"], rows["task:zecr4f8si5qv"])
    assert old.cells[7].plain == "latest" and has_style(old.cells[7], palette.warn)
    assert rejected.cells[2].plain == "rejected" and has_style(rejected.cells[2], palette.err)
    assert rejected.cells[6].plain.startswith("No such image")
    assert list(rows)[-2:] == ["nodes", f"node:{snap.nodes[0].id}"]


async def test_the_filter_works_on_the_swarm_table() -> None:
    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await pilot.press(*"node-3")
        await pilot.pause()
        table = app.query_one(ContainersPanel).table
        assert table is not None and table.id == "swarm-table"
        # what mentions node-3: backend (its note), the lost task, the node
        assert table.shown_keys == ["service:s-backend", "task:bac3n3000000", "node:n3"]
        await pilot.press("escape")
        await pilot.pause()
        assert "service:s-backend" in table.shown_keys


async def test_a_worker_engine_says_why_the_compose_table_is_empty() -> None:
    """``DOCKER_HOST`` on a swarm worker (auto mode): the compose panel, empty,
    with the swarm's reason to point at a manager."""
    app = make_app("empty")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        FakeMonitor.instances[-1].push(
            "swarm",
            SwarmSnapshot(
                taken_at=NOW,
                stack="investment",
                mode="compose",
                reason="the engine is a swarm worker (node w1): services are read on a "
                "manager; point DOCKER_HOST at a manager's engine",
            ),
        )
        await settle(pilot)
        panel = app.query_one(ContainersPanel)
        assert not panel.swarm_mode and panel.has_class("-empty")
        text = str(panel.query_one(".placeholder").render())
        assert "no containers in compose project 'investment'" in text
        assert "swarm: the engine is a swarm worker" in text


async def test_compose_operations_are_refused_on_a_swarm_stack() -> None:
    # flush, restart: they act on a compose project; on a swarm stack a key
    # says why instead of opening a form that would run them (deploy and
    # rollback run the swarm path: tests/ui/test_swarm_ops_ui.py)
    from console.ui.screens.dashboard import SWARM_REASON

    app = make_app("swarm")
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await settle(pilot)
        shown: list[str] = []
        app.notify = lambda message, **_k: shown.append(str(message))  # type: ignore[method-assign]
        for key in ("f", "r", "e", "v"):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == "DashboardScreen", (key, app.screen)
        assert shown and all(m == SWARM_REASON for m in shown), shown
