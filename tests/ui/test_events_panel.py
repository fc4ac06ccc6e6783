"""The Events panel at start: what happened before the console started is on
screen, marked as such; the look-back is told when there is nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from console.core.models import EngineEvent, EventsSnapshot
from console.ui.panels import EventsPanel
from console.ui.widgets.table import ListTable

from .fakes import NOW, FakeMonitor, make_app

STARTED = NOW - timedelta(seconds=5)
SINCE = STARTED - timedelta(seconds=900)
SIZES = [(160, 48), (80, 24)]


def ago(seconds: float) -> Any:
    return NOW - timedelta(seconds=seconds)


def at_start() -> EventsSnapshot:
    """What the events source publishes at start after a deploy four minutes earlier."""
    return EventsSnapshot(
        taken_at=NOW,
        started_at=STARTED,
        since=SINCE,
        events=[
            EngineEvent(
                at=ago(250),
                container="stackdeck",
                action="deploy",
                detail="v2.0.0 (blue-green) by alice: ok",
                origin="audit",
                before_start=True,
            ),
            EngineEvent(
                at=ago(240),
                container="investment_backend_blue_prod",
                service="backend_blue",
                action="die",
                detail="exit 0",
                origin="inspect",
                before_start=True,
            ),
            EngineEvent(
                at=ago(30),
                container="investment_market_sim_prod",
                service="market-sim",
                action="start",
                origin="engine",
                before_start=True,
            ),
            EngineEvent(
                at=ago(2),
                container="investment_worker_prod",
                service="worker",
                action="start",
            ),
        ],
    )


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table_rows(panel: EventsPanel) -> list[list[str]]:
    table = panel.query_one(ListTable)
    return [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_events_before_the_start_are_shown_marked() -> None:
    for size in SIZES:
        app = make_app("normal")
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            FakeMonitor.instances[-1].push("events", at_start())
            await pilot.press("7")
            await settle(pilot)
            panel = app.query_one(EventsPanel)
            assert table_rows(panel) == [
                ["14:02:09", "worker", "start", ""],
                ["‹ 14:01:41", "market-sim", "start", ""],
                ["‹ 13:58:11", "backend_blue", "die", "exit 0"],
                ["‹ 13:58:01", "stackdeck", "deploy", "v2.0.0 (blue-green) by alice: ok"],
            ]
            assert str(panel.border_title) == "Events · 4 · ‹ 3 before the console started"
            await pilot.press("slash", *"before start")
            await pilot.pause()
            assert panel.query_one(ListTable).row_count == 3


async def test_no_events_tells_the_look_back() -> None:
    app = make_app("normal")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        empty = EventsSnapshot(taken_at=NOW, started_at=STARTED, since=SINCE)
        FakeMonitor.instances[-1].push("events", empty)
        await settle(pilot)
        panel = app.query_one(EventsPanel)
        text = str(panel.query_one(".placeholder").render())
        assert text == "no engine events since 13:47:06 (15m before the console started)"
        assert str(panel.border_title) == "Events · 0"
