"""Stats panel: live CPU, memory, network, block I/O and PIDs per container,
with a sparkline per row and a plotext chart of the selected container.

In swarm mode (the swarm snapshot says so, or ``Settings.mode`` is ``swarm``)
the Docker stats API would see one engine only: the panel shows the
monitoring's figures instead (:class:`~console.core.models.SwarmStatsSnapshot`:
CPU, memory and load per node, CPU and memory per task beneath its node), in
a table of its own, stale when the ``swarm-stats`` source fails (Prometheus
down: the border says so, the body keeps the last figures)."""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.color import Color
from textual.content import Content
from textual.reactive import var
from textual.widgets import DataTable

from console.core.models import (
    ContainerStats,
    HistorySnapshot,
    StatsSnapshot,
    SwarmSnapshot,
    SwarmStatsSnapshot,
)
from console.ui.format import fmt_bytes, fmt_range
from console.ui.history import history_span, history_values, marker_times
from console.ui.palette import Palette
from console.ui.panels.base import ContainerSelected, Panel
from console.ui.panels.swarm import (
    SWARM_STATS_COLUMNS,
    swarm_stats_empty_reason,
    swarm_stats_rows,
    swarm_stats_title,
)
from console.ui.widgets.chart import ChartSeries, PlotextChart
from console.ui.widgets.sparkline import sparkline
from console.ui.widgets.table import LazyRow, ListTable, Row
from console.ui.widgets.text import LiveText

__all__ = ["StatsPanel", "stats_cells", "stats_row"]

TREND_WIDTH = 10


def stats_row(
    stats: ContainerStats, palette: Palette, *, cpu_alert: float, mem_alert: float
) -> Row:
    return Row(
        key=stats.name,
        cells=stats_cells(stats, palette, cpu_alert=cpu_alert, mem_alert=mem_alert),
        search=f"{stats.name} {stats.service}",
    )


def stats_cells(
    stats: ContainerStats, palette: Palette, *, cpu_alert: float, mem_alert: float
) -> tuple[Text, ...]:
    """One container's cells: what a row shows."""
    cpu_style = palette.level(stats.cpu_percent, cpu_alert * 0.75, cpu_alert)
    mem_style = palette.level(stats.mem_percent, mem_alert * 0.8, mem_alert)
    limit = fmt_bytes(stats.mem_limit) if stats.mem_limit else "∞"
    return (
        Text(stats.service or stats.name, style="bold"),
        Text(f"{stats.cpu_percent:.1f}", justify="right", style=cpu_style),
        Text(
            sparkline(
                stats.cpu_history,
                TREND_WIDTH,
                lo=0.0,
                hi=max([1.0, *stats.cpu_history[-TREND_WIDTH:]]),
            ),
            style=palette.blue,
        ),
        Text(f"{fmt_bytes(stats.mem_usage)} / {limit}", justify="right"),
        Text(f"{stats.mem_percent:.0f}%", justify="right", style=mem_style),
        Text(f"{fmt_bytes(stats.net_rx_rate)}/{fmt_bytes(stats.net_tx_rate)}", justify="right"),
        Text(
            f"{fmt_bytes(stats.blk_read_rate)}/{fmt_bytes(stats.blk_write_rate)}", justify="right"
        ),
        Text(str(stats.pids), justify="right"),
    )


def _rgb(value: str, fallback: tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        colour = Color.parse(value)
    except Exception:
        return fallback
    return (colour.r, colour.g, colour.b)


class StatsPanel(Panel):
    """Docker stats: table with trends, host totals, and a chart."""

    PANEL_ID = "stats"
    TITLE = "Stats"
    NUMBER = 3
    SOURCES: ClassVar[tuple[str, ...]] = ("stats",)
    FILTERABLE = True

    snapshot: var[StatsSnapshot | None] = var(None, init=False)
    """The newest stats tick."""
    selected: var[str | None] = var(None, init=False)
    """Container whose history the chart shows (bound to the app's selection)."""
    history: var[HistorySnapshot | None] = var(None, init=False)
    """Prometheus' memory: the chart shows the chosen range, then live samples."""
    swarm: var[SwarmSnapshot | None] = var(None, init=False)
    """The stack as a swarm sees it (which mode the panel is in)."""
    swarm_stats: var[SwarmStatsSnapshot | None] = var(None, init=False)
    """Per-node and per-task figures of a swarm stack, from the monitoring."""

    SWARM_SOURCES: ClassVar[tuple[str, ...]] = ("swarm-stats",)
    """What makes the panel stale in swarm mode."""

    def __init__(
        self,
        *,
        stale_after: float | None = None,
        cpu_alert: float = 80.0,
        mem_alert: float = 85.0,
        mode: str = "auto",
    ) -> None:
        super().__init__(stale_after=stale_after)
        self.cpu_alert = cpu_alert
        self.mem_alert = mem_alert
        self.forced_swarm = mode == "swarm"

    @property
    def swarm_mode(self) -> bool:
        """Whether the panel shows the monitoring's nodes and tasks."""
        if self.swarm is not None:
            return self.swarm.mode == "swarm"
        return self.forced_swarm

    def shown_snapshot(self) -> StatsSnapshot | SwarmStatsSnapshot | None:
        return self.swarm_stats if self.swarm_mode else self.snapshot

    def source_names(self) -> tuple[str, ...]:
        return self.SWARM_SOURCES if self.swarm_mode else self.SOURCES

    @property
    def table(self) -> ListTable | None:
        tables = self.query("#swarm-stats-table" if self.swarm_mode else "#stats-table")
        return tables.first(ListTable) if tables else None

    def watch_swarm(self) -> None:
        swarm = self.swarm_mode
        for table in self.query(ListTable):
            table.display = (table.id == "swarm-stats-table") == swarm
        for widget in self.query(".chart-caption, .chart"):
            widget.display = not swarm
        self.refresh_panel()

    def watch_swarm_stats(self) -> None:
        if self.swarm_mode:
            self.refresh_panel()

    def compose_body(self) -> ComposeResult:
        compose = ListTable(
            [
                ("container", "container"),
                ("cpu", "CPU%>"),
                ("trend", "trend"),
                ("mem", "mem / limit>"),
                ("memp", "mem%>"),
                ("net", "net rx/tx>"),
                ("blk", "blk r/w>"),
                ("pids", "pids>"),
            ],
            id="stats-table",
        )
        compose.display = not self.forced_swarm
        yield compose
        swarm = ListTable(SWARM_STATS_COLUMNS, id="swarm-stats-table")
        swarm.display = self.forced_swarm
        yield swarm
        yield LiveText(classes="totals")
        caption = LiveText(classes="chart-caption")
        chart = PlotextChart(classes="chart")
        caption.display = chart.display = not self.forced_swarm
        yield caption
        yield chart

    def empty_reason(self, snapshot: StatsSnapshot | SwarmStatsSnapshot) -> str | None:
        if isinstance(snapshot, SwarmStatsSnapshot):
            return swarm_stats_empty_reason(snapshot)
        return None if snapshot.containers else "no running containers to sample"

    def title_detail(self, snapshot: StatsSnapshot | SwarmStatsSnapshot) -> str:
        if isinstance(snapshot, SwarmStatsSnapshot):
            return swarm_stats_title(snapshot)
        return f"{len(snapshot.containers)} containers"

    def watch_selected(self) -> None:
        if self.snapshot is not None and self.is_mounted and not self.swarm_mode:
            self._render_chart(self.snapshot)

    def watch_history(self) -> None:
        if self.snapshot is not None and self.is_mounted and not self.swarm_mode:
            self._render_chart(self.snapshot)

    def watch_snapshot(self) -> None:
        if not self.swarm_mode:  # docker stats of the local engine: not shown on Swarm
            self.refresh_panel()

    def _render_swarm(self, snapshot: SwarmStatsSnapshot) -> None:
        rows = swarm_stats_rows(
            snapshot, self.palette, cpu_alert=self.cpu_alert, mem_alert=self.mem_alert
        )
        self.query_one("#swarm-stats-table", ListTable).set_rows(rows)
        self.query_one(".totals", LiveText).update(
            Content.from_markup(
                "$where · nodes: node exporter · tasks: stack exporter",
                where=snapshot.where,
            )
        )

    def render_snapshot(self, snapshot: StatsSnapshot | SwarmStatsSnapshot) -> None:
        if isinstance(snapshot, SwarmStatsSnapshot):
            self._render_swarm(snapshot)
            return
        palette = self.palette
        # built only for the rows on screen (LazyRow): 6 of 50 at 160×48
        rows = [
            LazyRow(
                key=s.name,
                build=partial(
                    stats_cells, s, palette, cpu_alert=self.cpu_alert, mem_alert=self.mem_alert
                ),
                search=f"{s.name} {s.service}",
            )
            for s in sorted(snapshot.containers, key=lambda s: (s.service, s.name))
        ]
        self.query_one("#stats-table", ListTable).set_rows(rows)
        cores = f" of {snapshot.host_cpus} cores" if snapshot.host_cpus else ""
        host_mem = f" of {fmt_bytes(snapshot.host_mem_total)}" if snapshot.host_mem_total else ""
        refresh = (
            f" · refresh {snapshot.refresh_seconds:.2f}s"
            if snapshot.refresh_seconds is not None
            else ""
        )
        self.query_one(".totals", LiveText).update(
            Content.from_markup(
                "[b]host[/b] cpu $cpu$cores · mem $mem$host_mem$refresh",
                cpu=f"{snapshot.total_cpu_percent:.1f}%",
                cores=cores,
                mem=fmt_bytes(snapshot.total_mem_usage),
                host_mem=host_mem,
                refresh=refresh,
            )
        )
        self._render_chart(snapshot)

    def _chart_target(self, snapshot: StatsSnapshot) -> ContainerStats | None:
        by_name = {s.name: s for s in snapshot.containers}
        if self.selected in by_name:
            return by_name[self.selected]
        table = self.query_one("#stats-table", ListTable)
        key = table.cursor_key
        if key in by_name:
            return by_name[key]
        ordered = sorted(snapshot.containers, key=lambda s: (s.service, s.name))
        return ordered[0] if ordered else None

    def _render_chart(self, snapshot: StatsSnapshot) -> None:
        target = self._chart_target(snapshot)
        chart = self.query_one(PlotextChart)
        caption = self.query_one(".chart-caption", LiveText)
        if target is None:
            chart.set_series([])
            caption.update("")
            return
        variables = self.app.theme_variables
        cpu_rgb = _rgb(variables.get("primary", ""), (1, 120, 212))
        mem_rgb = _rgb(variables.get("warning", ""), (254, 166, 43))
        history = self.history
        service = target.service or target.name
        cpu_hist = history_values(history, "cpu", service) if history else None
        mem_hist = history_values(history, "mem", service) if history else None
        if history is not None and history.available and (cpu_hist or mem_hist):
            now = snapshot.taken_at.timestamp()
            cpu_t, cpu_v = cpu_hist or ((), ())
            mem_t, mem_v = mem_hist or ((), ())
            span = history_span(history, now)
            chart.set_series(
                [
                    # Prometheus' range, then the newest live sample at the right edge
                    ChartSeries("cpu %", (*cpu_v, target.cpu_percent), cpu_rgb, (*cpu_t, now)),
                    ChartSeries("mem %", (*mem_v, target.mem_percent), mem_rgb, (*mem_t, now)),
                ],
                span=span,
                marks=marker_times(history),
            )
            span_text = f" · last {fmt_range(history.range_seconds)} (Prometheus)"
        else:
            chart.set_series(
                [
                    ChartSeries("cpu %", tuple(target.cpu_history), cpu_rgb),
                    ChartSeries("mem %", tuple(target.mem_history), mem_rgb),
                ],
            )
            samples = max(len(target.cpu_history), len(target.mem_history))
            span_text = f" · last {samples} samples" if samples else ""
            if history is not None and not history.available:
                span_text += " · no history"
        caption.update(
            Content.from_markup(
                "[b]$name[/b]  [$primary]━ cpu $cpu[/]  [$warning]━ mem $mem[/]$span",
                name=service,
                cpu=f"{target.cpu_percent:.1f}%",
                mem=f"{target.mem_percent:.0f}%",
                span=span_text,
            )
        )

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.data_table.has_focus and event.row_key.value:
            self.post_message(ContainerSelected(str(event.row_key.value)))
