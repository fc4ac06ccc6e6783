"""What keeps the idle console cheap (issue 15, docs/PERFORMANCE.md): a stats
tick repaints only what changed. These pin the behaviour the idle CPU figure
relies on, which no screenshot would catch (the frames look the same; only
the work behind them differs)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region

from console.core.models import StatsSnapshot
from console.ui.panels import StatsPanel
from console.ui.panels import stats as stats_panel
from console.ui.widgets.chart import ChartData, ChartSeries, PlotextChart, snap_to_dots
from console.ui.widgets.table import ListTable

from .fakes import FakeMonitor, make_app
from .test_app import BIG, SMALL, settle


def _count_refreshes(widget: Any) -> list[tuple[Region, ...]]:
    """Record the regions of every ``refresh`` of ``widget`` from now on
    (an empty tuple: the whole widget)."""
    calls: list[tuple[Region, ...]] = []
    refresh = widget.refresh

    def counting(*regions: Region, **kwargs: Any) -> Any:
        calls.append(regions)
        return refresh(*regions, **kwargs)

    widget.refresh = counting
    return calls


def _tick(stats: StatsSnapshot, **changes: Any) -> StatsSnapshot:
    """The next tick: one second later, ``changes`` applied to the first
    container (by sort order: the table's first row)."""
    first = min(stats.containers, key=lambda s: (s.service, s.name))
    rows = [
        s.model_copy(update=changes) if s.name == first.name and changes else s
        for s in stats.containers
    ]
    return stats.model_copy(
        update={"containers": rows, "taken_at": stats.taken_at.replace(microsecond=1)}
    )


async def test_a_stats_tick_repaints_only_the_table_rows_that_changed() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.dashboard.stats
        assert stats is not None and len(stats.containers) > 2
        table = app.query_one(StatsPanel).query_one(ListTable)
        calls = _count_refreshes(table)
        monitor = FakeMonitor.instances[-1]

        monitor.push("stats", _tick(stats))  # same figures, a new sample time
        await settle(pilot)
        assert calls == [], "a tick with the same figures repainted the table"

        first = min(stats.containers, key=lambda s: (s.service, s.name))
        monitor.push("stats", _tick(stats, cpu_percent=first.cpu_percent + 12.3))
        await settle(pilot)
        # one repaint, of one row: not the whole table once per changed cell
        assert len(calls) == 1 and len(calls[0]) == 1, calls
        (region,) = calls[0]
        assert region.height == 1
        assert region.y == table.header_height  # the first row, under the header
        assert table.get_cell_at((0, 1)).plain == f"{first.cpu_percent + 12.3:.1f}"


async def test_a_level_colour_change_alone_is_drawn() -> None:
    """``rich.Text.__eq__`` leaves the base style out: a cell whose text stays
    and whose colour changes must still count as changed."""
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        panel = app.query_one(StatsPanel)
        table = panel.query_one(ListTable)
        before = table.get_cell_at((0, 1))
        panel.cpu_alert = 0.001  # every figure above the alert: the red level
        panel.render_snapshot(app.dashboard.stats)
        await settle(pilot)
        after = table.get_cell_at((0, 1))
        assert after.plain == before.plain
        assert after.style != before.style


async def test_a_chart_sample_that_moves_no_dot_is_not_drawn() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.dashboard.stats
        assert stats is not None
        chart = app.query_one(StatsPanel).query_one(PlotextChart)
        target = (
            app.dashboard.selected_container
            or min(stats.containers, key=lambda s: (s.service, s.name)).name
        )
        row = next(s for s in stats.containers if s.name == target)
        calls = _count_refreshes(chart)
        monitor = FakeMonitor.instances[-1]

        def with_history(values: list[float]) -> StatsSnapshot:
            rows = [
                s.model_copy(update={"cpu_history": values}) if s.name == target else s
                for s in stats.containers
            ]
            return stats.model_copy(update={"containers": rows})

        base = [float(v) for v in row.cpu_history] or [1.0] * 10
        moved = [*base[:-1], base[-1] + 40.0]
        monitor.push("stats", with_history(moved))
        await settle(pilot)
        assert calls, "a sample that moves the line was not drawn"
        calls.clear()
        # a wobble far below half a dot of the chart's height
        monitor.push("stats", with_history([v + 0.0001 for v in moved]))
        await settle(pilot)
        assert calls == [], "a sample that moves no dot redrew the chart"
        assert chart.data.series[0].values[0] == moved[0] + 0.0001  # kept for the next draw
        monitor.push("stats", with_history(base))  # a real change again
        await settle(pilot)
        assert calls, "a sample that moves the line was not drawn"


def test_snap_to_dots_leaves_unknown_sizes_alone() -> None:
    live = ChartData(series=(ChartSeries("cpu", (0.01, 0.02, 3.0)),))
    assert snap_to_dots(live, 0) is live
    timed = ChartData(series=(ChartSeries("cpu", (0.01, 0.02), times=(1.0, 2.0)),), span=(0, 2))
    assert snap_to_dots(timed, 10) is timed  # a time chart of unknown width
    # the 0-5 axis on 10 rows: steps of 5 / 80; 0.01 and 0.02 both round to 0
    assert snap_to_dots(live, 10).series[0].values[:2] == (0.0, 0.0)
    assert snap_to_dots(live, 10) == snap_to_dots(
        ChartData(series=(ChartSeries("cpu", (0.0, 0.0, 3.0)),)), 10
    )


NOW = 1_800_000_000.0
"""A clock on the 10 s grid of half a dot of an hour on 90 columns."""


def _last_hour(now: float, live: float = 3.0) -> ChartData:
    """A chart of the last hour as the stats panel draws it: Prometheus'
    samples every 15 s up to its last poll (before :data:`NOW`), then the
    live sample at ``now`` on the right edge."""
    times = tuple(float(t) for t in range(int(NOW) - 3600 + 15, int(NOW) - 30, 15))
    return ChartData(
        series=(ChartSeries("cpu", (*[2.0] * len(times), live), times=(*times, now)),),
        span=(now - 3600, now),
    )


def test_a_time_chart_is_snapped_to_its_dots() -> None:
    """On 90 columns an hour is 180 dots of 20 s: the window sliding by a
    second, or the live sample moving by a hair, moves no dot; the window
    sliding by a dot does."""
    now = NOW
    drawn = snap_to_dots(_last_hour(now), 10, 90)
    assert snap_to_dots(_last_hour(now + 1), 10, 90) == drawn
    assert snap_to_dots(_last_hour(now + 4), 10, 90) == drawn
    assert snap_to_dots(_last_hour(now + 1, live=3.01), 10, 90) == drawn
    assert snap_to_dots(_last_hour(now + 20), 10, 90) != drawn
    assert snap_to_dots(_last_hour(now, live=4.0), 10, 90) != drawn


class _ChartApp(App[None]):
    """One chart alone: no source publishes into it behind the test's back."""

    def compose(self) -> ComposeResult:
        yield PlotextChart()


async def test_a_time_chart_is_drawn_when_a_dot_moves_not_every_tick() -> None:
    app = _ChartApp()
    async with app.run_test(size=(94, 12)) as pilot:
        chart = app.query_one(PlotextChart)

        def show(now: float, live: float = 3.0) -> None:
            data = _last_hour(now, live)
            chart.set_series(data.series, span=data.span)

        now = NOW
        show(now)
        await pilot.pause()
        width = chart.content_size.width
        assert width > 20
        calls = _count_refreshes(chart)
        ticks = 30
        for second in range(1, ticks + 1):  # a tick a second, as the stats panel
            show(now + second)
            await pilot.pause()
        # half a dot is an hour / (4 x width): ~10 s; a draw per dot moved,
        # not one per tick
        half_dot = 3600 / (4 * width)
        assert 1 <= len(calls) <= ticks / half_dot + 1, (len(calls), half_dot)
        assert chart.data.span == (now + ticks - 3600, now + ticks)  # the newest, kept
        calls.clear()
        show(now + ticks, live=40.0)  # the live sample jumps: drawn at once
        await pilot.pause()
        assert len(calls) == 1, calls


async def test_a_stats_tick_builds_only_the_rows_on_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 containers, a handful of rows on screen: a tick builds those rows'
    cells, not 50; a row scrolled into view then shows the newest tick."""
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.dashboard.stats
        assert stats is not None
        model = stats.containers[0]
        many = [
            model.model_copy(update={"name": f"bench_{i:02d}", "service": f"bench_{i:02d}"})
            for i in range(50)
        ]
        monitor = FakeMonitor.instances[-1]
        monitor.push("stats", stats.model_copy(update={"containers": many}))
        await settle(pilot)
        table = app.query_one(StatsPanel).query_one(ListTable)
        assert table.row_count == 50
        on_screen = table.size.height - table.header_height
        assert 0 < on_screen < 20

        built: list[str] = []
        real = stats_panel.stats_cells

        def counting(s: Any, *args: Any, **kwargs: Any) -> Any:
            built.append(s.name)
            return real(s, *args, **kwargs)

        monkeypatch.setattr(stats_panel, "stats_cells", counting)
        newest = [s.model_copy(update={"cpu_percent": 42.0 + i}) for i, s in enumerate(many)]
        monitor.push("stats", stats.model_copy(update={"containers": newest}))
        await settle(pilot)
        assert 0 < len(built) <= on_screen + 3, built  # the rows on screen, one more each side
        assert "bench_49" not in built

        table.scroll_end(animate=False, immediate=True)
        await settle(pilot)
        assert table.get_cell_at((49, 1)).plain == f"{42.0 + 49:.1f}"  # not the older tick's


async def test_a_new_list_of_rows_while_scrolled_down_does_not_crash() -> None:
    """Lazy rows were waiting off screen, the table scrolled down, then the
    list of containers changed (one replaced by a deploy, the database
    restarted): clear() reset the scroll, its watcher caught the old lazy
    rows up against a table already emptied, and the console died with a
    KeyError (CI, test_app_live and test_other_operator_live)."""
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.dashboard.stats
        assert stats is not None
        model = stats.containers[0]
        monitor = FakeMonitor.instances[-1]

        def push(names: list[str], cpu: float) -> None:
            rows = [
                model.model_copy(update={"name": n, "service": n, "cpu_percent": cpu})
                for n in names
            ]
            monitor.push("stats", stats.model_copy(update={"containers": rows}))

        first = [f"bench_{i:02d}" for i in range(50)]
        push(first, 1.0)
        await settle(pilot)
        push(first, 2.0)  # a tick with the same rows: the ones off screen wait, lazy
        await settle(pilot)
        table = app.query_one(StatsPanel).query_one(ListTable)
        table.scroll_end(animate=False, immediate=True)
        await settle(pilot)
        push(first, 3.0)
        await settle(pilot)
        push([*first[:10], "bench_new", *first[11:]], 4.0)  # one container replaced
        await settle(pilot)
        assert app.is_running
        assert "bench_new" in table.shown_keys and "bench_10" not in table.shown_keys
        table.scroll_home(animate=False, immediate=True)
        await settle(pilot)
        assert table.get_cell_at((0, 1)).plain == "4.0"


# --- a frame renders its dirty regions' lines, not their bounding box ----------


def _output(update: Any, width: int) -> list[tuple[str, Any]]:
    """What a partial frame writes to the terminal: text and style of every
    segment, cursor moves included."""
    from rich.console import Console

    console = Console(width=width, force_terminal=True, color_system="truecolor")
    return [(s.text, s.style) for s in update.__rich_console__(console, console.options)]


async def test_a_frame_renders_only_the_lines_of_its_dirty_regions() -> None:
    """The clock (top right), a quota countdown (right column) and a stats
    row (left column) dirty in one frame: the terminal gets exactly what
    Textual's own compositor would send, from a few lines instead of every
    widget under the three regions' bounding box."""
    from textual._compositor import Compositor

    from console.ui.compositor import RegionCompositor
    from console.ui.panels import QuotasPanel

    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        screen = app.dashboard
        compositor = screen._compositor
        assert isinstance(compositor, RegionCompositor)
        clock = screen.query_one("#header .clock")
        quotas = screen.query_one(QuotasPanel).query_one(ListTable)
        stats = screen.query_one(StatsPanel).query_one(ListTable)
        dirty = {
            clock.region,
            Region(quotas.region.x, quotas.region.y + 1, quotas.region.width, 1),
            Region(stats.region.x, stats.region.y + 2, stats.region.width, 1),
        }
        assert all(dirty) and Region.from_union(list(dirty)).height > 15

        lines: dict[str, int] = {}
        from textual.widget import Widget

        render_lines = Widget.render_lines

        def counting(self: Widget, crop: Region) -> Any:
            lines["n"] = lines.get("n", 0) + crop.height
            return render_lines(self, crop)

        results = []
        for render in (RegionCompositor.render_partial_update, Compositor.render_partial_update):
            lines["n"] = 0
            compositor._dirty_regions = set(dirty)
            Widget.render_lines = counting  # type: ignore[method-assign]
            try:
                update = render(compositor)
            finally:
                Widget.render_lines = render_lines  # type: ignore[method-assign]
            assert update is not None
            results.append((_output(update, BIG[0]), lines["n"]))
        (ours, our_lines), (textuals, their_lines) = results
        assert ours == textuals
        # each region's line of each widget over it (screen, containers,
        # panel, table): a handful, where the bounding box took hundreds
        assert our_lines <= 3 * 8, (our_lines, their_lines)
        assert their_lines > 5 * our_lines


@pytest.mark.parametrize("size", [BIG, SMALL])
async def test_partial_frames_write_what_textuals_compositor_writes(
    size: tuple[int, int],
) -> None:
    """Any few dirty regions anywhere on the screen, at both sizes (panels
    side by side; tabs at 80×24), with the filter bar open over the stats
    table: the dashboard's compositor sends the terminal the same bytes as
    Textual's."""
    import random

    from textual._compositor import Compositor

    from console.ui.compositor import RegionCompositor

    app = make_app("normal")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("/")
        await settle(pilot)
        compositor = app.dashboard._compositor
        rng = random.Random(15)
        width, height = size
        for _ in range(200):
            some = set()
            for _ in range(rng.randint(1, 4)):
                x, y = rng.randrange(width), rng.randrange(height)
                w, h = rng.randint(1, width - x), rng.randint(1, min(4, height - y))
                some.add(Region(x, y, w, h))
            outputs = []
            for render in (
                RegionCompositor.render_partial_update,
                Compositor.render_partial_update,
            ):
                compositor._dirty_regions = set(some)
                outputs.append(_output(render(compositor), width))
            assert outputs[0] == outputs[1], some


async def test_the_clock_redraws_only_the_panels_it_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The clock's second reaches the panels through ``DashboardScreen.watch_now``,
    not a binding of ``now`` to all ten: a panel redraws (``watch_now``) only
    when something it shows moves with the clock, a countdown of its own or
    a stale marker; every panel still holds the new time for its next
    render, and a snapshot that ages past ``stale_after`` is marked stale
    on the tick it does (issue 15, fourth pass)."""
    from datetime import timedelta

    from console.ui.panels.base import Panel
    from console.ui.panels.quotas import QuotasPanel

    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        dashboard = app.dashboard
        redrawn: list[str] = []
        watch_now = Panel.watch_now

        def counting(self: Panel) -> None:
            redrawn.append(self.PANEL_ID)
            watch_now(self)

        monkeypatch.setattr(Panel, "watch_now", counting)
        fresh = [p.PANEL_ID for p in dashboard.panels if not p._moves_with_clock(dashboard.now)]
        assert len(fresh) >= 5, fresh  # most panels have nothing that moves
        listed: list[int] = []
        panels = type(dashboard).panels

        def listing(self: Any) -> Any:
            listed.append(1)
            return panels.fget(self)

        monkeypatch.setattr(type(dashboard), "panels", property(listing))
        start = dashboard.now
        dashboard.now = start + timedelta(seconds=1)
        assert listed == []  # no DOM query a second: the panels are listed at mount
        await settle(pilot)
        assert QuotasPanel.PANEL_ID in redrawn  # its "resets 22s" countdown
        assert not set(fresh) & set(redrawn), redrawn
        # (a set: the app's own clock may tick again while the test settles)
        assert len(set(redrawn)) <= len(dashboard.panels) - len(fresh)
        assert all(p.now == dashboard.now for p in dashboard.panels)

        # a fresh panel whose snapshot ages past stale_after: marked on that tick
        panel = dashboard.panel(fresh[0])
        assert panel.stale_after is not None and panel.stale_marker == ""
        snapshot = panel.shown_snapshot()
        # (the watchers run in the assignment; the app's own clock may set it back later)
        dashboard.now = snapshot.taken_at + timedelta(seconds=panel.stale_after + 1)
        assert panel.PANEL_ID in redrawn
        assert panel.stale_marker.startswith("stale "), panel.stale_marker


async def test_a_changed_row_does_not_work_out_the_tables_styles_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DataTable asked for the table's ``rich_style`` and ``background_colors``
    (a walk over every ancestor's styles) and merged its component styles
    again for every row it rendered: two thirds of a changed row's cost.
    ``ListTable`` keeps them until the styles change (issue 15, fourth
    pass): rendering changed rows walks no ancestor, and a new theme or
    the table's focus still gives the styles Textual would."""
    from textual.dom import DOMNode

    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        stats = app.dashboard.stats
        assert stats is not None
        table = app.query_one(StatsPanel).query_one(ListTable)
        table.render_line(table.header_height)  # the styles once, as any frame does
        walks: list[str] = []
        rich_style = DOMNode.rich_style.fget
        assert rich_style is not None

        def counting(self: DOMNode) -> Any:
            walks.append(type(self).__name__)
            return rich_style(self)

        monkeypatch.setattr(DOMNode, "rich_style", property(counting))
        first = min(stats.containers, key=lambda s: (s.service, s.name))
        for step in range(1, 4):
            app.dashboard.stats = _tick(stats, cpu_percent=first.cpu_percent + step)
            for y in range(table.header_height, table.header_height + 3):
                table.render_line(y)
        assert walks == [], walks[:5]

        def fresh() -> Any:
            return (rich_style(table), DOMNode.background_colors.fget(table))  # type: ignore[attr-defined]

        assert (table.rich_style, table.background_colors) == fresh()
        before = table.rich_style
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await settle(pilot)
        assert table.rich_style != before
        assert (table.rich_style, table.background_colors) == fresh()
        table.focus()
        await settle(pilot)
        assert (table.rich_style, table.background_colors) == fresh()
        header = table.get_component_styles("datatable--header").rich_style
        assert header == rich_style(table.get_component_styles("datatable--header").node)
