"""Pilot tests of the console: keys, help, filter, logs, tabs, sizes, operations."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.widgets import Button, Input, RadioButton, RadioSet, Tab, Tabs

from console.core.models import SourceState, StatsSnapshot
from console.core.ops.table import (
    OPERATIONS,
    CacheFlushParams,
    DeployParams,
    EmergencyLimitParams,
    RestartParams,
    VacuumParams,
)
from console.ui.app import StackdeckApp
from console.ui.commands import dashboard_commands
from console.ui.messages import StatsTick
from console.ui.panels import (
    ContainersPanel,
    CostPanel,
    DatabasePanel,
    EventsPanel,
    HealthPanel,
    OperationsPanel,
    QuotasPanel,
    StatsPanel,
)
from console.ui.screens.confirm import ConfirmScreen, FlushScreen, TypedConfirmScreen
from console.ui.screens.dashboard import READ_ONLY_REASON, DashboardScreen
from console.ui.screens.deploy import DeployScreen
from console.ui.screens.help import HelpScreen, HelpTable
from console.ui.screens.logs import LogsScreen
from console.ui.screens.too_small import TooSmallScreen
from console.ui.widgets.table import ListTable

from .fakes import NOW, FakeCanceller, FakeLogs, FakeMonitor, FakeOps, FakeVacuum, make_app

WRITES = [name for name, spec in OPERATIONS.items() if spec.writes and not spec.swarm_only]
BIG = (160, 48)
SMALL = (80, 24)


async def settle(pilot: Any) -> None:
    """Let the fake monitor's feed and every posted message be processed."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def until(pilot: Any, predicate: Any, seconds: float = 5.0) -> None:
    """Pause until ``predicate()`` holds (lines reach the log view in batches
    a few ms after they arrive); fail after ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    assert predicate()


def notifications(app: StackdeckApp) -> list[str]:
    return [n.message for n in app._notifications]


def rendered(widget: Any) -> str:
    """The plain text a Static-like widget shows."""
    return str(widget.render())


# --- data reaches the panels ---------------------------------------------------


async def test_fixture_data_reaches_every_panel() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        containers = app.query_one(ContainersPanel).query_one(ListTable)
        assert containers.row_count == 9  # seven services, two of them frontend colours
        assert containers.shown_keys[0] == "investment_backend_green_prod"  # running first
        assert set(containers.shown_keys[-2:]) == {  # exited last
            "investment_backend_blue_prod",
            "investment_frontend_blue_prod",
        }
        assert app.query_one(HealthPanel).query_one(ListTable).row_count == 5  # 4 API + page
        assert app.query_one(StatsPanel).query_one(ListTable).row_count == 6
        assert app.query_one(DatabasePanel).query_one(ListTable).row_count == 6
        assert app.query_one(QuotasPanel).query_one(ListTable).row_count == 4
        assert app.query_one(EventsPanel).query_one(ListTable).row_count == 8
        header = rendered(app.query_one("#header .left"))
        assert "investment @ prod-host" in header
        assert "serving green v1.2.3" in header
        assert rendered(app.query_one("#header .clock")) == "14:02:11"
        assert "no alerts" in rendered(app.query_one("#alerts-line"))
        assert not any(p.has_class("-stale") for p in app.query(".panel"))
        assert "$18.54" in rendered(app.query_one(CostPanel).query_one(".figures"))


async def test_alerts_line_shows_firing_first_and_pending_dimmed() -> None:
    app = make_app("alert")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        line = rendered(app.query_one("#alerts-line"))
        assert line.index("HighCPUUsage") < line.index("CostBudgetExceeded") < line.index("pending")
        assert "11m" in line  # pending_since 11m04s before the fixed clock
        assert app.query_one("#alerts-line").has_class("-firing")
        assert "2 alerts" in rendered(app.query_one("#header .left"))
        assert "EMERGENCY LIMIT ON" in rendered(app.query_one(QuotasPanel).query_one(".emergency"))


async def test_cost_chart_draws_recorded_days_only() -> None:
    """Issue 16: a stack recorded since yesterday afternoon shows two days,
    the first marked partial, whatever the platform models for the month."""
    from datetime import date

    from console.core.models import CostDay, CostSnapshot

    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        daily = app.query_one(CostPanel).query_one(".daily")
        shown = rendered(daily)
        assert "03-09 → 03-14" in shown and "03-09 partial" in shown
        assert "1 day not recorded" in shown and "03-01" not in shown

        base = app.dashboard.cost
        assert base is not None and len(base.daily_history) == 14  # modelled: not drawn
        two = base.model_copy(
            update={
                "recorded_days": [
                    CostDay(day=date(2025, 3, 13), cost=0.41, partial=True),
                    CostDay(day=date(2025, 3, 14), cost=0.95),
                ]
            }
        )
        app.dashboard.cost = two
        await pilot.pause()
        shown = rendered(daily)
        assert "03-13 → 03-14 · 03-13 partial" in shown and "not recorded" not in shown
        bars = shown.splitlines()[:3]
        # two days of three columns each after the 8-column scale: nothing before them
        assert all(len(line.rstrip()) <= 8 + 2 * 3 for line in bars), bars

        app.dashboard.cost = CostSnapshot(
            **{**two.model_dump(), "recorded_days": [], "daily_history": base.daily_history}
        )
        await pilot.pause()
        assert "none recorded yet" in rendered(daily)


async def test_stale_marker_has_age_and_reason_and_clears_on_recovery() -> None:
    app = make_app("stale")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        database = app.query_one(DatabasePanel)
        assert database.has_class("-stale")
        assert str(database.border_subtitle) == "stale 42s · postgres: connection refused"
        # data kept, still shown
        assert database.query_one(ListTable).row_count == 6
        cost = app.query_one(CostPanel)
        assert cost.has_class("-empty")
        assert "no data · cost: HTTP 502 from /api/metrics/cost · retry in 3s" in rendered(
            cost.query_one(".placeholder")
        )
        assert "sources down: cost, postgres" in rendered(app.query_one("#alerts-line"))
        # the age grows with the clock
        clock = app.clock
        clock.advance(60)  # type: ignore[attr-defined]
        app._tick()
        await pilot.pause()
        assert str(database.border_subtitle).startswith("stale 1m ·")
        # the source recovers
        monitor = FakeMonitor.instances[-1]
        monitor.push("source", SourceState(name="postgres", ok=True, last_ok=clock()))
        await settle(pilot)
        # no failure any more, but the data is still 1m42s old: a hung source looks like this
        assert str(database.border_subtitle) == "stale 1m · no update"
        assert database.snapshot is not None
        fresh = database.snapshot.model_copy(update={"taken_at": clock()})
        monitor.push("database", fresh)
        await settle(pilot)
        assert not database.has_class("-stale")
        assert not database.border_subtitle


async def test_empty_project_says_so_instead_of_blank_panels() -> None:
    app = make_app("empty")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        containers = app.query_one(ContainersPanel)
        assert containers.has_class("-empty")
        assert "no containers in compose project 'investment'" in rendered(
            containers.query_one(".placeholder")
        )
        assert app.query_one(HealthPanel).has_class("-empty")
        assert "health: connection refused" in rendered(
            app.query_one(HealthPanel).query_one(".placeholder")
        )


async def test_waiting_for_data_before_the_first_snapshot() -> None:
    app = make_app(None)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        for panel in app.query(".panel"):
            if isinstance(panel, OperationsPanel):
                continue
            assert panel.has_class("-empty"), panel.id
            assert "waiting for data" in rendered(panel.query_one(".placeholder"))
        assert "waiting for the first evaluation" in rendered(app.query_one("#alerts-line"))


async def test_stats_ticks_replace_each_other_and_selection_drives_the_chart() -> None:
    tick = StatsTick(StatsSnapshot(taken_at=NOW))
    assert tick.can_replace(StatsTick(StatsSnapshot(taken_at=NOW)))
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.query_one(StatsPanel)
        caption = rendered(stats.query_one(".chart-caption"))
        assert caption.startswith("backend_green")
        table = stats.query_one(ListTable)
        table.focus()
        await pilot.press("down")  # db
        await settle(pilot)
        assert app.dashboard.selected_container == "investment_db_prod"
        assert rendered(stats.query_one(".chart-caption")).startswith("db")


# --- keys ------------------------------------------------------------------------------


async def test_help_screen_lists_every_binding() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(table.text for table in app.screen.query(HelpTable))
        for binding in DashboardScreen.BINDINGS:
            assert binding.description in text, binding  # type: ignore[union-attr]
            assert (binding.tooltip or "")[:30] in text  # type: ignore[union-attr]
        for spec in OPERATIONS.values():  # the palette's operations too
            assert (spec.key.label if spec.key else spec.title) in text, spec.name
        keys = {line.split()[0].rstrip(",") for line in text.splitlines() if line.strip()}
        for key in (
            "?",
            "q",
            "d",
            "b",
            "v",
            "f",
            "e",
            "r",
            "l",
            "/",
            ":",
            "^p",
            "1",
            "8",
            "[",
            "]",
        ):
            assert key in keys, key
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_filter_narrows_the_focused_list_and_escape_restores_it() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        table = app.query_one(ContainersPanel).query_one(ListTable)
        assert table.has_focus
        await pilot.press("slash")
        await pilot.press(*"backend_")
        await pilot.pause()
        assert table.shown_keys == ["investment_backend_green_prod", "investment_backend_blue_prod"]
        await pilot.press("enter")  # keep the filter, back to the list
        await pilot.pause()
        assert table.has_focus and table.row_count == 2
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert table.row_count == 9
        assert table.has_focus


async def test_filter_on_events_and_slow_queries() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("7", "slash", *"die")
        await pilot.pause()
        assert app.query_one(EventsPanel).query_one(ListTable).row_count == 1
        await pilot.press("escape", "4", "slash", *"pg_sleep")
        await pilot.pause()
        assert app.query_one(DatabasePanel).query_one(ListTable).row_count == 1


async def test_filter_on_a_panel_without_list_explains() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("6", "slash")
        await pilot.pause()
        assert any("filter works on" in m for m in notifications(app))


async def test_log_view_tails_follows_pauses_and_filters() -> None:
    logs = FakeLogs(["starting postgres", "ERROR: relation missing", "checkpoint complete"])
    app = make_app("normal", logs=logs)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("down")  # backend_green -> db
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        assert logs.opened == [("investment_db_prod", 200)]
        await until(pilot, lambda: len(screen.lines) == 3)
        assert [line[9:] for line in screen.lines] == [
            "starting postgres",
            "ERROR: relation missing",
            "checkpoint complete",
        ]
        logs.feed("autovacuum: prices")
        await until(pilot, lambda: screen.lines[-1].endswith("autovacuum: prices"))
        await pilot.press("f")  # pause
        logs.feed("held back")
        await until(pilot, lambda: "paused (1 new)" in rendered(screen.query_one("#logs-status")))
        assert not screen.lines[-1].endswith("held back")
        await pilot.press("f")  # resume
        await pilot.pause()
        assert screen.lines[-1].endswith("held back")
        await pilot.press("slash", *"error")
        await pilot.pause()
        assert len(screen.lines) == 1 and "ERROR" in screen.lines[0]
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        assert len(screen.lines) == 5
        await pilot.press("escape")  # back to the dashboard
        await pilot.pause()
        assert not isinstance(app.screen, LogsScreen)
        logs.close()


async def test_tabs_at_80x24_switch_with_digits_and_brackets() -> None:
    app = make_app("normal")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert app.dashboard.compact
        tabs = app.query_one("#panel-tabs", Tabs)
        assert tabs.display
        assert app.query_one(ContainersPanel).display
        assert not app.query_one(StatsPanel).region.area  # hidden
        await pilot.press("3")
        await pilot.pause()
        assert tabs.active == "tab-stats"
        assert app.query_one(StatsPanel).region.area > 0
        assert not app.query_one(ContainersPanel).region.area
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert app.dashboard.active_panel == "database"
        assert app.query_one(DatabasePanel).region.area > 0
        await pilot.press("8")
        await pilot.pause()
        assert app.query_one(OperationsPanel).region.area > 0
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        assert app.dashboard.active_panel == "cost"
        # header, alerts line and footer stay visible
        for selector in ("#header", "#alerts-line", "Footer"):
            assert app.query_one(selector).region.area > 0, selector


async def test_grid_at_160x48_shows_every_panel() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        assert not app.dashboard.compact
        assert not app.query_one("#panel-tabs").display
        for panel in app.query(".panel"):
            assert panel.region.area > 0, panel.id


async def test_too_small_screen_at_40x15_and_back() -> None:
    app = make_app("normal")
    async with app.run_test(size=(40, 15)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        message = rendered(app.screen.query_one("#too-small-message"))
        assert "terminal too small" in message
        assert "need 60\u00d720, have 40\u00d715" in message
        await pilot.press("d")  # nothing behind the too-small screen reacts
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert not isinstance(app.screen, TooSmallScreen)
        assert app.query_one(ContainersPanel).region.area > 0


async def test_stale_tab_is_marked_in_compact_mode() -> None:
    app = make_app("stale")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert str(app.query_one("#tab-database", Tab).label) == "4 Queries!"
        assert str(app.query_one("#tab-cost", Tab).label) == "6 Cost!"
        assert str(app.query_one("#tab-stats", Tab).label) == "3 Stats"


# --- operations ----------------------------------------------------------------------


async def test_deploy_form_validation_confirmation_progress_and_disabled_bindings() -> None:
    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, DeployScreen)
        assert "serving: green v1.2.3" in rendered(form.query_one(".dialog-body"))
        await pilot.press(*"1.2.4", "enter")
        await pilot.pause()
        assert app.screen is form  # refused
        error = rendered(form.query_one("#version-error"))
        assert "malformed version '1.2.4'" in error
        assert form.query_one("#version-error").has_class("-visible")
        version = form.query_one("#version", Input)
        version.value = ""
        await pilot.press(*"v1.2.4")
        await pilot.pause()
        assert not form.query_one("#version-error").has_class("-visible")
        await pilot.press("enter")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "v1.2.4" in confirm.title_text
        assert ops.calls == []  # nothing runs before confirmation
        await pilot.press("y")
        await pilot.pause()
        await pilot.pause()
        assert [(c[0], c[2]) for c in ops.calls] == [
            ("deploy", DeployParams(version="v1.2.4", strategy="blue-green"))
        ]
        assert app.dashboard.op_running == "deploy"
        log = app.query_one(OperationsPanel)
        assert any("preflight" in line for line in log.lines)
        assert "deploy running" in str(log.border_title)
        for name in WRITES:
            assert app.dashboard.check_action("op", (name,)) is None, name  # greyed, not hidden
        footer_keys = {k: b.enabled for k, b in app.screen.active_bindings.items()}
        assert footer_keys["d"] is False and footer_keys["l"] is True
        await pilot.press("b")  # disabled: says why, opens nothing
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("deploy is running" in m for m in notifications(app))
        ops.release.set()
        await settle(pilot)
        assert app.dashboard.op_running is None
        assert all(app.dashboard.check_action("op", (name,)) is True for name in WRITES)
        assert any("deploy v1.2.4 complete" in line for line in log.lines)
        assert any("nginx now serves blue" in line for line in log.lines)


async def test_rolling_strategy_and_cancel_at_confirmation() -> None:
    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("d", *"v2")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, DeployScreen)
        form.query_one("#rolling", RadioButton).value = True
        await pilot.pause()
        assert form.strategy == "rolling"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancel at confirmation
        await settle(pilot)
        assert ops.calls == [] and app.dashboard.op_running is None
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")  # cancel the form
        await pilot.pause()
        assert not isinstance(app.screen, DeployScreen)
        await pilot.press("d", *"v2.0.0-rc.1", "enter")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [
            ("deploy", DeployParams(version="v2.0.0-rc.1", strategy="blue-green"))
        ]


async def test_failed_operation_is_shown_and_bindings_come_back() -> None:
    ops = FakeOps(fail=True)
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.query_one("#cancel", Button).has_focus  # destructive: safe default
        await pilot.press("y")
        await settle(pilot)
        log = app.query_one(OperationsPanel)
        assert any("smoke test failed" in line for line in log.lines)
        assert app.dashboard.op_running is None
        assert any("smoke test failed" in m for m in notifications(app))


async def test_read_only_mode_disables_write_bindings_and_says_why() -> None:
    ops = FakeOps()
    app = make_app("normal", read_only=True, ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        for name in WRITES:
            assert app.dashboard.check_action("op", (name,)) is None
        for key in ("d", "b", "v", "f", "e", "r"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, (DeployScreen, ConfirmScreen, FlushScreen)), key
        assert notifications(app).count(READ_ONLY_REASON) == 6
        assert ops.calls == []
        assert "READ-ONLY" in rendered(app.query_one("#header .left"))
        assert "read-only mode" in rendered(app.query_one(OperationsPanel).query_one(".idle"))
        # the palette refuses too
        app.dashboard.action_op("deploy")
        await pilot.pause()
        assert not isinstance(app.screen, DeployScreen)


async def test_cache_flush_all_needs_the_target_typed() -> None:
    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await pilot.pause()
        flush = app.screen
        assert isinstance(flush, FlushScreen)
        flush.query_one("#scope-all", RadioButton).value = True
        await pilot.pause()
        assert flush.query_one("#scope", RadioSet).pressed_button.id == "scope-all"  # type: ignore[union-attr]
        flush.query_one("#continue", Button).press()
        await pilot.pause()
        typed = app.screen
        assert isinstance(typed, TypedConfirmScreen)
        assert typed.expected == "investment_cache_prod"
        await pilot.press(*"investment")
        await pilot.pause()
        assert typed.query_one("#confirm", Button).disabled
        await pilot.press("enter")  # wrong name: refused
        await pilot.pause()
        assert app.screen is typed and ops.calls == []
        await pilot.press(*"_cache_prod")
        await pilot.pause()
        assert not typed.query_one("#confirm", Button).disabled
        await pilot.press("enter")
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [
            ("cache-flush", CacheFlushParams(all=True, confirm="investment_cache_prod"))
        ]


async def test_cache_flush_prefix_restart_emergency_vacuum() -> None:
    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await pilot.pause()
        app.screen.query_one("#continue", Button).press()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        # restart the selected container's service
        app.query_one(ContainersPanel).query_one(ListTable).focus()
        await pilot.press("down")  # db
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.title_text == "Restart db?"
        await pilot.press("y")
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert "ON" in app.screen.title_text  # type: ignore[attr-defined]
        await pilot.press("y")
        await settle(pilot)
        await pilot.press("v")
        await pilot.pause()
        vacuum = app.screen
        assert isinstance(vacuum, ConfirmScreen)
        assert vacuum.warning is not None and "pid 4211" in vacuum.warning
        await pilot.press("y")
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [
            ("cache-flush", CacheFlushParams()),
            ("restart", RestartParams(service="db")),
            ("emergency-limit", EmergencyLimitParams(state="on")),
            ("vacuum", VacuumParams()),
        ]


async def test_command_palette_offers_every_action() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        titles = [c.title for c in dashboard_commands(app.dashboard)]
        titles += [c.title for c in app.get_system_commands(app.screen)]
        # every operation of the table, the ones without a key too
        assert [t for t in titles if t in {s.title for s in OPERATIONS.values()}] == [
            s.title for s in OPERATIONS.values()
        ]
        for title in (
            "Deploy",
            "Rollback",
            "Backup",
            "Restore database",
            "Scale",
            "Logs of selected container",
            "Filter list",
            "Show Stats",
            "Help: keys",
            "Quit",
        ):
            assert title in titles, title
        await pilot.press("colon")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


async def test_quit_stops_the_monitor() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        monitor = FakeMonitor.instances[-1]
        assert monitor.started and not monitor.stopped
        await pilot.press("q")
        await pilot.pause()
    assert monitor.stopped


class Leave:
    """The CLI's ``leave(code)``, recorded: in the real console it ends the
    process; here the app then exits the normal way so the test can end."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.app: Any = None

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.app.exit(return_code=code)


def _app_that_can_leave(**kw: Any) -> tuple[Any, Leave]:
    leave = Leave()
    app = leave.app = make_app("normal", leave=leave, **kw)
    return app, leave


async def test_quit_with_nothing_to_finish_leaves_at_once() -> None:
    """The terminal is given back and the process ended without the sources'
    goodbyes (the monitor is not stopped: the process's end closes its sockets)."""
    app, leave = _app_that_can_leave()
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert leave.codes == [0]
        assert not FakeMonitor.instances[-1].stopped


async def test_quit_during_an_operation_never_leaves_at_once() -> None:
    """Confirmed during a VACUUM: the normal exit, which cancels the
    operation and waits for its undo, not the quick one."""
    app, leave = _app_that_can_leave(ops=FakeOps())
    async with app.run_test(size=BIG) as pilot:
        await _quit_while_vacuum_runs(pilot, app)
        await pilot.press("y")
        await pilot.pause()
    assert leave.codes == [] and app.return_code == 0
    assert FakeMonitor.instances[-1].stopped


async def test_quit_while_a_notice_is_sent_waits_for_it() -> None:
    """An operation's notice still on its way (its thread alive): the normal
    exit, which joins that thread, so the page is not lost."""
    from console.core.ops.notify import NOTICE_THREAD

    sending = threading.Event()
    notice = threading.Thread(target=sending.wait, args=(30,), name=NOTICE_THREAD)
    notice.start()
    try:
        app, leave = _app_that_can_leave()
        async with app.run_test(size=BIG) as pilot:
            await settle(pilot)
            await pilot.press("q")
            await pilot.pause()
        assert leave.codes == [] and app.return_code == 0
    finally:
        sending.set()
        notice.join()


async def test_monitor_failure_becomes_a_source_marker_not_a_crash() -> None:
    from .fakes import FixedClock, test_settings

    class Broken:
        def __init__(self, settings: Any, sink: Any) -> None:
            pass

        async def start(self) -> None:
            raise RuntimeError("cannot connect to the Docker daemon")

        async def stop(self) -> None:
            pass

    app = StackdeckApp(test_settings(), monitor_factory=Broken, clock=FixedClock(), hostname="h")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        assert app.dashboard.sources["monitor"].ok is False
        assert "sources down: monitor" in rendered(app.query_one("#alerts-line"))
        assert any("cannot connect to the Docker daemon" in m for m in notifications(app))


@pytest.mark.parametrize("scenario", ["normal", "stale"])
async def test_no_color_keeps_every_state_in_text(
    monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(scenario)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        svg = app.export_screenshot()
        assert "serving" in svg
        if scenario == "stale":
            assert "stale&#160;42s" in svg
        # The stopped blue colour is on standby (spelled out, not a red ✗);
        # green's own 503 on /external-apis is still a ✗.
        assert "✓&#160;healthy" in svg and "✗&#160;503" in svg and "standby" in svg


async def _quit_while_vacuum_runs(pilot: Any, app: Any) -> None:
    """A VACUUM started from its key and confirmed, then ``q``: the quit question."""
    await settle(pilot)
    await pilot.press("v")
    await pilot.pause()
    await pilot.press("y")
    await pilot.pause()
    assert app.dashboard.op_running == "vacuum"
    await pilot.press("q")
    await pilot.pause()
    assert isinstance(app.screen, ConfirmScreen)


async def test_quit_during_an_operation_asks_first() -> None:
    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await _quit_while_vacuum_runs(pilot, app)
        assert "vacuum is running" in app.screen.title_text
        await pilot.press("n")
        await pilot.pause()
        assert app.return_code is None and app.dashboard.op_running == "vacuum"
        ops.release.set()
        await settle(pilot)
        assert app.dashboard.op_running is None


async def test_quit_confirmed_during_an_operation_exits_cleanly() -> None:
    """The operation's worker ends while the app shuts down (its screens
    already gone): that must not raise, whatever the worker's last state."""
    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await _quit_while_vacuum_runs(pilot, app)
        await pilot.press("y")
        await pilot.pause()
    # leaving run_test re-raises anything the app raised while shutting down
    assert app.return_code == 0


async def test_cancel_key_shows_only_while_a_vacuum_runs_confirms_then_cancels() -> None:
    """``c`` is absent until a VACUUM runs; then it is in the footer, the
    live line shows the recorded progress, ``c`` asks first (``n`` keeps it
    running), and ``y`` hands the op id and session to the canceller, which
    stops the operation; the key is gone again afterwards."""
    ops, canceller = FakeVacuum(), FakeCanceller()
    app = make_app("normal", ops=ops, canceller=canceller)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        dash = app.dashboard
        assert dash.check_action("cancel_op", ()) is False
        assert "c" not in app.screen.active_bindings
        await pilot.press("c")  # nothing runs: nothing opens
        await pilot.pause()
        assert app.screen is dash
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, ops.replayed.is_set)
        await until(pilot, lambda: "c" in app.screen.active_bindings)
        assert app.screen.active_bindings["c"].enabled
        assert dash.op_running == "vacuum"
        panel = app.query_one(OperationsPanel)
        live = rendered(panel.query_one(".live"))
        assert live == (
            "VACUUM (ANALYZE) public.prices › _hyper_1_1_chunk · "
            "scanning heap 937/4,673 blocks (20 %) · c cancel"
        )
        # one log line per phase (its first sample); the live line has the rest
        samples = [line for line in panel.lines if "blocks (" in line]
        assert len(samples) == 1 and "177/4,673 blocks (3 %)" in samples[0], samples
        await pilot.press("c")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.title_text == "Cancel VACUUM (ANALYZE) of public.prices?"
        assert "session 294 gets pg_cancel_backend" in str(confirm.body)
        assert "c" not in app.screen.active_bindings  # the dialog's keys only
        await pilot.press("n")
        await pilot.pause()
        assert canceller.calls == [] and not ops.cancelled and dash.op_running == "vacuum"
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: dash.op_running is None)
        assert ops.cancelled
        assert canceller.calls == [
            {
                "op": "vacuum",
                "op_id": "aa1c1a3b8979",
                "via": "key c",
                "session_pid": 294,
                "target": "public.prices",
            }
        ]
        await settle(pilot)
        last = dash.ops_log.events[-1]
        assert (last.step, last.status) == ("result", "fail")
        assert (
            last.message == "cancelled by the operator (key c): session 294 cancelled on the server"
        )
        assert dash.check_action("cancel_op", ()) is False
        assert "c" not in app.screen.active_bindings
        assert not panel.query_one(".live").display


async def test_the_cancel_key_is_absent_while_an_operation_that_cannot_be_cancelled_runs() -> None:
    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("d", *"v1.2.4", "enter")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: app.dashboard.op_running == "deploy")
        assert app.dashboard.check_action("cancel_op", ()) is False
        assert "c" not in app.screen.active_bindings
        ops.release.set()
        await settle(pilot)


async def test_live_table_updates_in_place_widen_columns_and_keep_cells_cached() -> None:
    from rich.text import Text
    from textual.app import App, ComposeResult

    from console.ui.widgets.table import Row

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ListTable([("name", "name"), ("cpu", "CPU%>")])

    def rows(cpu: str) -> list[Row]:
        return [
            Row(key=name, cells=(Text(name), Text(cpu, justify="right")), search=name)
            for name in ("nginx", "db")
        ]

    app = One()
    async with app.run_test(size=(60, 8)) as pilot:
        table = app.query_one(ListTable)
        table.set_rows(rows("1.5"))
        await pilot.pause()
        rendered = table._cells.copy() if hasattr(table._cells, "copy") else None
        del rendered
        table.set_rows(rows("1234.5"))  # same rows, wider values: updated in place
        await pilot.pause()
        assert table.shown_keys == ["nginx", "db"]
        assert table.get_cell("db", "cpu").plain == "1234.5"
        screen = "\n".join(
            "".join(seg.text for seg in line) for line in app.screen._compositor.render_strips()
        )
        assert "1234.5" in screen, screen  # widened, not cut to the old "1.5" width
        # the name cells did not change: they were not rendered again
        before = len(table._cells)
        table.set_rows(rows("99.9"))
        await pilot.pause()
        assert len(table._cells) - before <= 2  # only the two CPU cells are new


async def test_a_long_tail_reaches_the_log_view_in_a_few_batches(monkeypatch: Any) -> None:
    from console.ui.messages import LogsArrived

    batches: list[int] = []
    original = LogsScreen.on_logs_arrived

    def counting(self: LogsScreen, message: LogsArrived) -> None:
        batches.append(len(message.lines))
        original(self, message)

    monkeypatch.setattr(LogsScreen, "on_logs_arrived", counting)
    tail = [f"line {i}" for i in range(1200)]
    logs = FakeLogs(tail)
    app = make_app("normal", logs=logs)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await until(pilot, lambda: len(screen.lines) == 1200)
        assert screen.lines[-1].endswith("line 1199")
        logs.feed("one more")
        await until(pilot, lambda: screen.lines[-1].endswith("one more"))
        logs.close()
    # 1201 lines in batches of at most 500, not 1201 messages. How many batches
    # depends on when the reader thread gets the CPU (3-4 on a calm machine, 13
    # seen at load 12): the bound is far from both that and one message a line.
    assert sum(batches) == 1201 and max(batches) <= 500
    assert len(batches) <= 60, batches


# --- operations without a key: the palette, a form from their model --------------


async def test_palette_operation_without_a_key_asks_its_model_then_confirms() -> None:
    from console.core.ops.table import ScaleParams
    from console.ui.screens.params import ParamsScreen

    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        scale = next(c for c in dashboard_commands(app.dashboard) if c.title == "Scale")
        scale.callback()
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ParamsScreen)
        await pilot.press(*"worker=2", "enter")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen) and confirm.destructive
        assert confirm.title_text == "Scale?"
        assert ops.calls == []
        await pilot.press("y")
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [("scale", ScaleParams(spec="worker=2"))]


async def test_the_form_refuses_what_the_model_refuses_and_names_the_field() -> None:
    from console.ui.screens.params import ParamsScreen

    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        app.dashboard.action_op("restore")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, ParamsScreen)
        form.submit()  # nothing typed: the backup is required
        await pilot.pause()
        assert app.screen is form
        error = form.query_one("#params-error")
        assert "path is required" in rendered(error) and error.has_class("-visible")
        await pilot.press(*"20261201T000000Z", "enter")
        await pilot.pause()
        typed = app.screen
        assert isinstance(typed, TypedConfirmScreen)  # a restore replaces the database
        assert typed.expected == app.database_name()
        await pilot.press("escape")
        await settle(pilot)
        assert ops.calls == []


async def test_a_read_only_operation_from_the_palette_runs_at_once() -> None:
    from console.core.ops.table import NoParams

    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", read_only=True, ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        entries = {c.title: c for c in dashboard_commands(app.dashboard)}
        assert "(disabled: read-only mode" in entries["Backup"].help
        assert "disabled" not in entries["Pre-deployment checks"].help
        entries["Backup"].callback()  # refused, says why
        await pilot.pause()
        assert notifications(app).count(READ_ONLY_REASON) == 1
        entries["Pre-deployment checks"].callback()
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [("preflight", NoParams())]


async def test_deploy_form_offers_what_the_cli_offers() -> None:
    """A version with no image can be deployed from the TUI: build, backup
    policy and bake window, with the versions that exist offered as you type."""
    from textual.widgets import Checkbox, Select

    from .fakes import VERSIONS

    ops = FakeOps()
    ops.release.set()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, DeployScreen)
        hint = rendered(form.query_one("#versions"))
        assert all(v in hint for v in VERSIONS)
        await pilot.press(*"v1.3", "right")  # the suggestion completes it
        await pilot.pause()
        assert form.query_one("#version", Input).value == "v1.3.0-rc.1"
        form.query_one("#version", Input).value = "v1.4.0"
        form.query_one("#build", Checkbox).value = True
        form.query_one("#backup", Select).value = "always"
        form.query_one("#bake-seconds", Input).value = "abc"
        form.submit()
        await pilot.pause()
        assert app.screen is form  # the model refuses what the CLI refuses
        assert "bake_seconds must be a number" in rendered(form.query_one("#form-error"))
        form.query_one("#bake-seconds", Input).value = "10"
        form.submit()
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "Built from this checkout first" in str(confirm.body)
        await pilot.press("y")
        await settle(pilot)
        assert [(c[0], c[2]) for c in ops.calls] == [
            (
                "deploy",
                DeployParams(version="v1.4.0", build=True, backup="always", bake_seconds=10),
            )
        ]
