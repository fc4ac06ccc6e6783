"""The runbook's four dashboards as console views over one time range.

Each view is a grid of time charts from Prometheus (the same queries as
``console.core.history.DASHBOARDS``), with the operations of the range drawn
on every chart and listed under them.

| key | action |
|---|---|
| 1-4, tab | System Overview, Application Performance, Business Metrics, Database Performance |
| t | time range: 15m, 1h, 6h, 24h |
| escape, q | back to the dashboard |
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Footer

from console.core.history import DASHBOARDS, ChartSpec
from console.core.models import HistorySnapshot, Marker
from console.ui.format import fmt_range, fmt_time
from console.ui.history import history_span, marker_times, series_rgb
from console.ui.screens.base import OverDashboard
from console.ui.widgets.chart import ChartSeries, PlotextChart
from console.ui.widgets.text import LiveText

__all__ = ["ChartBox", "DashboardsScreen", "fmt_value", "markers_text"]

VIEWS: tuple[str, ...] = tuple(DASHBOARDS)


def fmt_value(value: float, unit: str) -> str:
    """A chart's latest value with its unit: ``42.0%``, ``0.21 s``, ``$1.20``."""
    if value != value:
        return "–"
    if unit == "$":
        return f"${value:.2f}"
    if unit in ("%", "%/core"):
        return f"{value:.1f}%"
    if unit in ("B", "B/s"):
        from console.ui.format import fmt_bytes

        return fmt_bytes(value) + unit[1:]
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def markers_text(markers: list[Marker], now: datetime, limit: int = 4) -> Content:
    """The newest operations of the range, one per line, newest first."""
    if not markers:
        return Content.styled("no operations in this range", "dim")
    lines: list[Content] = []
    for marker in sorted(markers, key=lambda m: m.at, reverse=True)[:limit]:
        failed = marker.result not in (None, "ok", "running")
        lines.append(
            Content.assemble(
                ("│ ", "$warning"),
                (fmt_time(marker.at, now), "dim"),
                " ",
                (marker.label, "$error" if failed else ""),
            )
        )
    more = len(markers) - limit
    if more > 0:
        lines.append(Content.styled(f"  … and {more} older", "dim"))
    return Content("\n").join(lines)


class ChartBox(Vertical):
    """One chart of a dashboard: title and latest values, then the lines."""

    DEFAULT_CSS = """
    ChartBox { height: 1fr; min-height: 7; border: round $panel; padding: 0 1; }
    ChartBox > .chart-caption { height: 1; }
    ChartBox > PlotextChart { height: 1fr; min-height: 4; }
    """

    def __init__(self, spec: ChartSpec) -> None:
        super().__init__(classes="chart-box")
        self.spec = spec
        self._wanted: tuple[HistorySnapshot | None, float] | None = None
        """What ``show`` was last given: a history that arrives between the
        box's mount and its compose is drawn once its children exist."""

    def compose(self) -> ComposeResult:
        yield LiveText(classes="chart-caption")
        yield PlotextChart()

    def on_mount(self) -> None:
        if self._wanted is not None:
            self.show(*self._wanted)

    def show(self, history: HistorySnapshot | None, now: float) -> None:
        self._wanted = (history, now)
        try:
            caption = self.query_one(".chart-caption", LiveText)
            chart = self.query_one(PlotextChart)
        except NoMatches:  # not composed yet: on_mount draws it
            return
        spec = self.spec
        if history is None or not history.available:
            caption.update(Content.assemble((spec.title, "bold"), ("  no history", "dim")))
            chart.set_series([])
            return
        series = history.chart(spec.chart)
        parts: list[str | tuple[str, str] | Content] = [(spec.title, "bold")]
        lines = []
        for index, item in enumerate(series[:6]):
            values = [(t, v) for t, v in item.points if v == v]
            rgb = series_rgb(item, index)
            colour = f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"
            last = fmt_value(values[-1][1], spec.unit) if values else "–"
            parts.append(("  ━ ", colour))
            parts.append(f"{item.subject} {last}")
            lines.append(
                ChartSeries(
                    item.subject,
                    tuple(v for _, v in values),
                    rgb,
                    tuple(t for t, _ in values),
                )
            )
        if not series:
            parts.append(("  no samples in this range", "dim"))
        caption.update(Content.assemble(*parts))
        chart.set_series(
            lines,
            span=history_span(history, now),
            marks=marker_times(history),
            y_floor=5.0 if spec.unit.startswith("%") else 1e-3,
        )


class DashboardsScreen(OverDashboard):
    """System Overview, Application Performance, Business Metrics and Database
    Performance: a screenful of charts each, over the chosen range."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="charts.back"),
        Binding("tab", "next_view", "Next", id="charts.next", tooltip="The next dashboard"),
        Binding("shift+tab", "prev_view", "Prev", show=False, id="charts.prev"),
        Binding("t", "cycle_range", "Range", id="charts.range", tooltip="15m, 1h, 6h, 24h"),
        *[
            Binding(str(n), f"view({n - 1})", name, show=False, id=f"charts.view{n}")
            for n, name in enumerate(VIEWS, start=1)
        ],
    ]

    def __init__(self, view: int = 0) -> None:
        super().__init__(id="dashboards-screen")
        self.view = view % len(VIEWS)

    def compose(self) -> ComposeResult:
        yield LiveText(id="charts-title", classes="screen-title")
        yield VerticalScroll(Grid(id="charts-grid"), id="charts-scroll")
        yield LiveText(id="charts-markers", classes="markers")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.dash, "history", self._redraw, init=False)
        self._show_view()

    def on_resize(self) -> None:
        self._fit_rows()

    def _fit_rows(self) -> None:
        """Three rows of charts in the space left (at least 7 lines each)."""
        free = self.size.height - 9
        self.query_one("#charts-grid", Grid).styles.grid_rows = str(max(7, free // 3))

    def on_unmount(self) -> None:
        self.dash.stack_app.set_history(view="")

    def _show_view(self) -> None:
        name = VIEWS[self.view]
        self.dash.stack_app.set_history(view=name)
        grid = self.query_one("#charts-grid", Grid)
        grid.remove_children()
        grid.mount_all([ChartBox(spec) for spec in DASHBOARDS[name]])
        self._fit_rows()
        self.call_after_refresh(self._redraw)

    def _redraw(self, *_: Any) -> None:
        history = self.dash.history
        name = VIEWS[self.view]
        tabs: list[str | tuple[str, str]] = []
        for index, view in enumerate(VIEWS):
            label = f" {index + 1} {view} "
            tabs.append((label, "reverse bold") if index == self.view else label)
        range_s = history.range_seconds if history else self.dash.history_range
        if history is None:
            state: tuple[str, str] = ("waiting for Prometheus…", "dim")
        elif not history.available:
            state = (f"no history: {history.reason or 'Prometheus did not answer'}", "$warning")
        else:
            state = (f"step {history.step_seconds:g}s · Prometheus", "dim")
        self.query_one("#charts-title", LiveText).update(
            Content.assemble((name, "bold"), f" · last {fmt_range(range_s)} · ", state, "\n", *tabs)
        )
        now = self.dash.now
        for box in self.query(ChartBox):
            box.show(history, now.timestamp())
        self.query_one("#charts-markers", LiveText).update(
            markers_text(history.markers if history else [], now)
        )

    def action_view(self, index: int) -> None:
        self.view = index % len(VIEWS)
        self._show_view()

    def action_next_view(self) -> None:
        self.action_view(self.view + 1)

    def action_prev_view(self) -> None:
        self.action_view(self.view - 1)

    def action_cycle_range(self) -> None:
        self.dash.action_cycle_range()
        self._redraw()
