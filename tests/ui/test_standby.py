"""A colour that does not serve is on standby, not broken (issue 16 item 2).

After a rollback the colour rolled back from is stopped and kept for a
roll-forward: the console showed it as ``exited ✗ unhealthy`` in red and
``✗ 502`` on every Health row. These tests hold the new reading on the
recorded ``standby`` fixture (blue v1.2.2 serves, green v1.2.3 exited),
and that the colour nginx routes to stays red when it is the one down.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from console.core.models import EndpointResult, HealthSnapshot
from console.ui.palette import Palette
from console.ui.panels import ContainersPanel, HealthPanel
from console.ui.widgets.table import ListTable

from .fakes import NOW, FakeMonitor, make_app
from .fixtures.make_fixtures import FRONTEND_PATH, PATHS, name, rolled_back

BIG = (160, 48)
SMALL = (80, 24)
GREEN = name("backend_green")
BLUE = name("backend_blue")
COLUMNS = ("service", "colour", "state", "health", "up", "restarts", "image", "ports")


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def is_error(cell: Text, palette: Palette) -> bool:
    """The cell is styled as an error (the theme's error colour, anywhere in it)."""
    styles = [str(cell.style), *(str(span.style) for span in cell.spans)]
    return any(palette.err in style for style in styles)


def is_dimmed(cell: Text) -> bool:
    return "dim" in str(cell.style).split()


def row(table: ListTable, key: str) -> dict[str, Text]:
    return {column: table.get_cell(key, column) for column in COLUMNS}


def health_cells(app: Any, target: str) -> list[Text]:
    table = app.query_one(HealthPanel).query_one(ListTable)
    return [table.get_cell(path, target) for path in PATHS]


async def test_a_stopped_standby_colour_reads_standby_dimmed_and_is_not_counted() -> None:
    app = make_app("standby")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        palette = Palette.from_app(app)
        containers = app.query_one(ContainersPanel)
        green = row(containers.query_one(ListTable), GREEN)
        assert green["state"].plain == "stopped"
        assert green["health"].plain == "◌ standby"
        assert not any(is_error(cell, palette) for cell in green.values())
        assert all(is_dimmed(cell) for cell in green.values())
        title = str(containers.border_title)
        assert "serving blue" in title
        assert "green v1.2.3 kept for rollback/roll-forward" in title
        # The serving colour is untouched: running, healthy, its dot.
        blue = row(containers.query_one(ListTable), BLUE)
        assert blue["colour"].plain == "blue ●" and blue["health"].plain == "✓ healthy"

        cells = health_cells(app, "green")
        assert [c.plain for c in cells] == ["standby"] * len(PATHS)
        assert not any(is_error(c, palette) for c in cells)
        assert all(is_dimmed(c) for c in cells)
        assert [c.plain.split()[0] for c in health_cells(app, "blue")] == ["200"] * len(PATHS)
        health_title = str(app.query_one(HealthPanel).border_title)
        assert health_title == "Health · 4/4 ok via nginx · green standby v1.2.3"

        # The page's row: the frontend went back with the API (blue serves
        # it), frontend_green is stopped on standby: dimmed, not red.
        table = app.query_one(HealthPanel).query_one(ListTable)
        page = {
            t: table.get_cell(FRONTEND_PATH, t)
            for t in ("endpoint", "nginx", "blue", "green", "version")
        }
        assert page["endpoint"].plain == "page"
        assert page["nginx"].plain.split()[0] == "200" and page["blue"].plain.split()[0] == "200"
        assert page["green"].plain == "standby" and is_dimmed(page["green"])
        assert not is_error(page["green"], palette)
        assert page["version"].plain == "v1.2.2"


async def test_at_80_columns_the_note_is_shorter() -> None:
    app = make_app("standby")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        title = str(app.query_one(ContainersPanel).border_title)
        assert title.endswith("serving blue · page blue v1.2.2 · green v1.2.3 standby")
        assert "kept for" not in title


async def test_the_serving_colour_down_stays_red() -> None:
    """nginx routes to green and green is the colour that stopped: an outage."""
    app = make_app("standby")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        palette = Palette.from_app(app)
        monitor = FakeMonitor.instances[-1]
        monitor.push("containers", rolled_back(serving_down=True))
        results = []
        for path in PATHS:
            results.append(EndpointResult(path=path, target="nginx", status=502, latency_ms=2007))
            results.append(
                EndpointResult(path=path, target="blue", status=200, latency_ms=9, version="v1.2.2")
            )
            results.append(EndpointResult(path=path, target="green", status=502, latency_ms=2007))
        monitor.push("health", HealthSnapshot(taken_at=NOW, results=results))
        await settle(pilot)

        containers = app.query_one(ContainersPanel)
        green = row(containers.query_one(ListTable), GREEN)
        assert green["state"].plain == "exited" and is_error(green["state"], palette)
        assert is_error(green["health"], palette)
        assert "serving green ✗ down" in str(containers.border_title)
        cells = health_cells(app, "green")
        assert all(c.plain.startswith("✗ 502") and is_error(c, palette) for c in cells)
        assert all(is_error(c, palette) for c in health_cells(app, "nginx"))
        # blue runs as the rollback target: standby, not an alarm.
        blue = row(containers.query_one(ListTable), BLUE)
        assert blue["health"].plain == "✓ standby"
        assert not any(is_error(cell, palette) for cell in blue.values())
        assert str(app.query_one(HealthPanel).border_title) == (
            "Health · 0/4 ok via nginx · blue standby v1.2.2 (running)"
        )


async def test_the_previous_colour_kept_running_is_a_quiet_standby() -> None:
    """The default blue-green state: the previous colour runs as the instant
    rollback target. Healthy reads ``✓ standby``; a failing check of it is a
    warning (the rollback target would not work), never an error."""
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        palette = Palette.from_app(app)
        monitor = FakeMonitor.instances[-1]
        snap = rolled_back()
        infos = [
            c.model_copy(update={"state": "running", "health": "healthy"})
            if c.service.startswith("backend_")
            else c
            for c in snap.containers
        ]
        monitor.push("containers", snap.model_copy(update={"containers": infos}))
        results = [
            EndpointResult(path=path, target=target, status=status, latency_ms=10)
            for path in PATHS
            for target, status in (("nginx", 200), ("blue", 200), ("green", 503))
        ]
        monitor.push("health", HealthSnapshot(taken_at=NOW, results=results))
        await settle(pilot)
        table = app.query_one(ContainersPanel).query_one(ListTable)
        green = row(table, GREEN)
        assert green["state"].plain == "running" and green["health"].plain == "✓ standby"
        assert "green v1.2.3 standby (running)" in str(app.query_one(ContainersPanel).border_title)
        cells = health_cells(app, "green")
        assert all(c.plain.startswith("✗ 503") for c in cells)
        assert not any(is_error(c, palette) for c in cells)
        assert all(palette.warn in str(c.style) for c in cells)
