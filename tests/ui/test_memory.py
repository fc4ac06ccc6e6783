"""The console's memory in the UI: the time range key, charts from Prometheus
with operation markers, the four dashboards, the alerts screen with its
silences, and "since the deploy" (Pilot and SVG snapshots, fed fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from console.core.history import DASHBOARDS
from console.core.models import Comparison
from console.ui.format import RANGES, fmt_range, next_range
from console.ui.panels.stats import StatsPanel
from console.ui.screens.alerts import AlertsScreen, alert_matchers
from console.ui.screens.charts import ChartBox, DashboardsScreen, fmt_value
from console.ui.screens.since import SinceDeployScreen, change_text
from console.ui.widgets.chart import ChartData, ChartSeries, PlotextChart, ago, render_chart
from console.ui.widgets.text import LiveText

from .fakes import NOW, FakeMonitor, FakeOps, FakeSince, make_app
from .memory import alerts_snapshot, history_snapshot, since_snapshot

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def until_drawn(pilot: Any, predicate: Any, what: str, seconds: float = 10.0) -> None:
    """Let the app run until ``predicate()`` holds (a redraw scheduled after a
    refresh lands a few frames later on a loaded machine); fail naming ``what``."""
    for _ in range(int(seconds / 0.02)):
        if predicate():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError(f"gave up waiting for {what} after {seconds:.0f} s")


def charts_drawn(app: Any) -> bool:
    """Every chart on the screen has the history's lines."""
    charts = list(app.screen.query(PlotextChart))
    return bool(charts) and all(any(s.values for s in c.data.series) for c in charts)


def monitor() -> FakeMonitor:
    return FakeMonitor.instances[-1]


def text_of(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector, LiveText).content)


# --- pure helpers ---------------------------------------------------------------


def test_ranges_cycle_through_15m_1h_6h_24h() -> None:
    assert [fmt_range(r) for r in RANGES] == ["15m", "1h", "6h", "24h"]
    seen = [3600]
    for _ in range(4):
        seen.append(next_range(seen[-1]))
    assert seen == [3600, 21600, 86400, 900, 3600]


def test_time_axis_labels() -> None:
    assert ago(3600) == "-1h"
    assert ago(1800) == "-30m"
    assert ago(45) == "-45s"
    assert ago(0) == "now"


def test_a_time_chart_draws_a_marker_at_its_time() -> None:
    end = NOW.timestamp()
    times = tuple(end - 3600 + i * 30 for i in range(121))
    data = ChartData(
        series=(ChartSeries("cpu", tuple(10.0 for _ in times), times=times),),
        span=(end - 3600, end),
        marks=(end - 1800,),
    )
    lines = render_chart(60, 8, data).plain.splitlines()
    columns = {line.index("│", 3) for line in lines[:-2] if "│" in line[3:]}
    assert len(columns) == 1, lines  # one vertical line...
    column = columns.pop()
    axis = lines[-2]
    left, right = axis.index("└") + 1, len(axis.rstrip())
    assert abs(column - (left + right) / 2) <= 2, lines  # ...half-way along the hour
    assert "-1h" in lines[-1] and "now" in lines[-1]
    without = render_chart(60, 8, ChartData(series=data.series, span=data.span)).plain
    assert "│" not in "".join(line[3:] for line in without.splitlines()[:-2])


def test_silence_matchers_name_the_subject_not_the_value() -> None:
    alert = alerts_snapshot().alerts[0]
    assert alert_matchers(alert) == {
        "alertname": "HighAPIResponseTime",
        "service": "backend_green",
        "colour": "green",
        "route": "/api/stocks/prices",
    }


def _cmp(metric: str, before: float | None, after: float | None) -> Comparison:
    unit = {"p95": "ms", "memory": "MiB", "requests": "/s"}.get(metric, "%")
    return Comparison(group="x", subject="s", metric=metric, unit=unit, before=before, after=after)


def test_change_text() -> None:
    assert change_text(_cmp("p95", 20, 90)).plain == "×4.50"
    assert "red" in str(change_text(_cmp("p95", 20, 90)).style)
    assert "green" in str(change_text(_cmp("p95", 90, 20)).style)
    assert change_text(_cmp("p95", None, 3.0)).plain == "new"
    # a rate is neither better nor worse; noise below the floor is not coloured
    assert str(change_text(_cmp("requests", 1.0, 9.0)).style) == ""
    assert str(change_text(_cmp("cpu", 0.29, 0.35)).style) == ""
    assert str(change_text(_cmp("p95", 4.9, 9.0)).style) == ""
    assert "red" in str(change_text(_cmp("cpu", 2.0, 30.0)).style)
    assert "red" in str(change_text(_cmp("error rate", 0.0, 5.0)).style)
    assert fmt_value(0.21, "s") == "210 ms"
    assert fmt_value(42.0, "%") == "42.0%"


# --- the range key and the stats chart -------------------------------------------------


async def test_t_steps_the_range_and_asks_the_monitor() -> None:
    app = make_app("normal")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        monitor().push("history", history_snapshot())
        await pilot.pause()
        assert "last 1h (Prometheus)" in text_of(app, "#stats .chart-caption")
        await pilot.press("t")
        await pilot.pause()
        assert monitor().history_wishes[-1] == {"range_seconds": 21600}
        assert app.dashboard.history_range == 21600
        monitor().push("history", history_snapshot(range_seconds=21600))
        await pilot.pause()
        assert "last 6h (Prometheus)" in text_of(app, "#stats .chart-caption")


async def test_without_prometheus_the_stats_chart_is_live_and_says_so() -> None:
    app = make_app("normal")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        monitor().push("history", history_snapshot(available=False))
        await pilot.pause()
        caption = text_of(app, "#stats .chart-caption")
        assert "samples" in caption and "no history" in caption
        await pilot.press("t")
        await pilot.pause()
        assert any("not reachable" in str(n.message) for n in app._notifications)


# --- dashboards ---------------------------------------------------------------------


async def test_a_history_that_arrives_before_a_chart_box_is_composed_is_drawn() -> None:
    """Pressing a view key mounts new boxes; a history poll landing before their
    compose used to raise NoMatches (.chart-caption) in the screen's redraw."""
    from textual.app import App

    spec = DASHBOARDS[list(DASHBOARDS)[1]][0]
    box = ChartBox(spec)
    box.show(history_snapshot(view=list(DASHBOARDS)[1]), NOW.timestamp())  # not mounted yet

    class Host(App[None]):
        def compose(self) -> Any:
            yield box

    async with Host().run_test(size=(80, 20)) as pilot:
        await pilot.pause()
        caption = str(box.query_one(".chart-caption", LiveText).content)
        assert spec.title in caption and "no history" not in caption
        assert any(s.values for s in box.query_one(PlotextChart).data.series)


async def test_g_opens_the_four_dashboards_over_the_range() -> None:
    views = list(DASHBOARDS)
    assert len(views) == 4
    app = make_app("normal")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, DashboardsScreen)
        assert monitor().history_wishes[-1] == {"view": views[0]}
        monitor().push("history", history_snapshot(view=views[0]))
        await pilot.pause()
        boxes = list(app.screen.query(ChartBox))
        assert [b.spec.chart for b in boxes] == [s.chart for s in DASHBOARDS[views[0]]]
        assert all("no samples" not in str(b.query_one(LiveText).content) for b in boxes)
        assert "deploy v1.2.4" in text_of(app, "#charts-markers")
        for index in (2, 3, 4):
            await pilot.press(str(index))
            await pilot.pause()
            assert monitor().history_wishes[-1] == {"view": views[index - 1]}
            assert views[index - 1] in text_of(app, "#charts-title")
        await pilot.press("escape")
        await pilot.pause()
        assert monitor().history_wishes[-1] == {"view": ""}


# --- alerts and silences ------------------------------------------------------------


async def test_alerts_screen_silences_the_selected_alert_through_the_operation() -> None:
    ops = FakeOps()
    app = make_app("normal", ops=ops)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        monitor().push("alerts", alerts_snapshot())
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)
        assert "2 firing" not in text_of(app, "#alerts-title")  # the silenced one does not count
        assert "1 firing · 1 pending · 1 silences" in text_of(app, "#alerts-title")
        await pilot.press("s")
        await pilot.pause()
        await pilot.press(*"rollout of v1.2.4", "enter")  # the comment, then submit
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        await pilot.pause()
        name, _ctx, params = ops.calls[-1]
        assert name == "silence"
        assert params.alertname == "HighAPIResponseTime"
        assert "rollout of v1.2.4" in params.comment
        ops.release.set()


async def test_local_alerts_are_marked_with_the_reason() -> None:
    app = make_app("normal")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        local = alerts_snapshot().model_copy(
            update={"source": "local", "note": "Prometheus not reachable", "silences": []}
        )
        monitor().push("alerts", local)
        await pilot.pause()
        line = str(app.screen.query_one("#alerts-line", LiveText).content)
        assert "local alerts: Prometheus not reachable" in line
        await pilot.press("a")
        await pilot.pause()
        assert "LOCAL evaluation" in text_of(app, "#alerts-source")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, AlertsScreen)  # no form: nothing to silence with
        assert any("Alertmanager" in str(n.message) for n in app._notifications)


# --- since the deploy ---------------------------------------------------------------


async def test_w_shows_what_changed_since_the_deploy() -> None:
    since = FakeSince()
    app = make_app("normal", since=since)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, SinceDeployScreen)
        assert since.calls == 1
        assert "deploy v1.2.4" in text_of(app, "#since-title")
        table = app.screen.query_one("#since-statements")
        assert table.row_count == 2
        await pilot.press("r")
        await settle(pilot)
        assert since.calls == 2


async def test_since_the_deploy_says_why_it_could_not_compare() -> None:
    app = make_app("normal", since=FakeSince(error=TimeoutError("database timed out")))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        assert "could not compare: database timed out" in text_of(app, "#since-title")


# --- snapshots ----------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
def test_snapshot_dashboard_with_history(snap_compare: Any, size: str) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        monitor().push("history", history_snapshot())
        monitor().push("alerts", alerts_snapshot())
        await pilot.press("3")  # the stats panel (the tab shown at 80x24)
        chart = pilot.app.query_one(StatsPanel).query_one(PlotextChart)
        await until_drawn(pilot, lambda: chart.data.span is not None, "the stats chart's history")

    assert snap_compare(make_app("normal"), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", list(SIZES))
def test_snapshot_dashboards_view(snap_compare: Any, size: str) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("g")
        await pilot.pause()
        monitor().push("history", history_snapshot(view=list(DASHBOARDS)[1]))
        await pilot.press("2")
        await until_drawn(pilot, lambda: charts_drawn(pilot.app), "the dashboard's charts")

    assert snap_compare(make_app("normal"), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", list(SIZES))
def test_snapshot_alerts(snap_compare: Any, size: str) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        monitor().push("alerts", alerts_snapshot())
        await pilot.press("a")
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", list(SIZES))
def test_snapshot_since_the_deploy(snap_compare: Any, size: str) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("w")
        await settle(pilot)
        await until_drawn(
            pilot,
            lambda: pilot.app.screen.query_one("#since-statements").row_count > 0,
            "the comparison",
        )

    assert snap_compare(
        make_app("normal", since=FakeSince(since_snapshot())),
        terminal_size=SIZES[size],
        run_before=run_before,
    )
