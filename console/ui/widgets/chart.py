"""A line chart drawn by plotext, as a Textual widget.

plotext renders into a string with ANSI colours; the widget turns it into a
Rich ``Text`` sized to the widget. plotext keeps one global figure, so the
chart is only ever built on the UI thread, inside ``render``.

Importing plotext takes 0.2-0.4 s. The app imports it in a thread after the
first frame (:func:`preload_plotext`); until that is done, charts draw the
sparkline fallback instead of blocking the event loop on the import.

plotext 6 replaced the 5.x module-level API (``plt.plot``, ``plt.build``)
with an object API (``plt.figure.signal(...)``); both are supported so the
console does not break on whichever the environment has.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from console.ui.widgets.sparkline import sparkline

__all__ = [
    "ChartData",
    "ChartSeries",
    "PlotextChart",
    "begin_plotext_preload",
    "nice_top",
    "preload_plotext",
    "render_chart",
    "snap_to_dots",
]

_preloading = threading.Event()
_preloaded = threading.Event()


def begin_plotext_preload() -> bool:
    """Call on the UI thread before starting :func:`preload_plotext` in a
    thread: from then on charts use the fallback until plotext is loaded.
    False (and nothing to do) when plotext is already loaded or loading."""
    if _preloading.is_set():
        return False
    _preloading.set()
    return True


def preload_plotext() -> None:
    """Import plotext (blocking: run it in a thread)."""
    try:
        import plotext  # noqa: F401
    finally:
        _preloaded.set()


def plotext_ready() -> bool:
    """Whether drawing with plotext now would not wait for its import."""
    return _preloaded.is_set() or not _preloading.is_set()


@dataclass(frozen=True)
class ChartSeries:
    """One line of the chart."""

    label: str
    values: tuple[float, ...]
    rgb: tuple[int, int, int] = (0, 120, 212)
    times: tuple[float, ...] = ()
    """Unix time of each value (a time chart); empty: one value per sample."""


@dataclass(frozen=True)
class ChartData:
    series: tuple[ChartSeries, ...] = ()
    y_max: float | None = None
    """Fixed upper bound of the y axis; None: a round number above the peak."""
    markers: tuple[int, ...] = field(default_factory=tuple)
    """Sample indexes to mark with a vertical line (deploys, restarts)."""
    span: tuple[float, float] | None = None
    """(start, end) unix times of a time chart's x axis; None: sample indexes."""
    marks: tuple[float, ...] = ()
    """Unix times to mark with a vertical line (operations: deploys, rollbacks, ...)."""
    mark_rgb: tuple[int, int, int] = (230, 180, 0)
    y_floor: float = 5.0
    """The lowest y-axis top (a quiet percent chart still spans 0-5 %)."""


def nice_top(peak: float, floor: float = 5.0) -> float:
    """The y-axis top for data peaking at ``peak``: 1, 2 or 5 x 10^k above it."""
    target = max(peak * 1.15, floor)
    magnitude = 10 ** math.floor(math.log10(target))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= target:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _y_top(data: ChartData) -> float:
    if data.y_max is not None:
        return data.y_max
    peak = max((max(s.values) for s in data.series if s.values), default=0.0)
    return nice_top(peak, data.y_floor)


SNAP_STEPS_PER_ROW = 8
"""Sub-steps of one text row a value is rounded to: a braille cell has 4
dots in height, so 8 is half a dot."""

SNAP_STEPS_PER_COLUMN = 4
"""Sub-steps of one text column a time is rounded to: a braille cell has 2
dots in width, so 4 is half a dot."""


def snap_to_dots(data: ChartData, rows: int, cols: int = 0) -> ChartData:
    """``data`` rounded to half a braille dot of a chart ``rows`` high and
    ``cols`` wide: what the eye can tell apart. Two data that snap alike look
    alike within half a dot, so the chart is not drawn again for the second.

    - values: to half a dot of the y axis (an idle container's CPU wobbling
      between 0.01 and 0.04 % on a 0-5 % axis, once a second);
    - a time chart's times and x span (``cols`` > 0): to half a dot of the x
      axis, on a grid fixed in time. A chart of the last hour on 90 columns
      moves by a dot every ~20 s; its window slides every second, its
      Prometheus samples stay where they are, the live sample at its right
      edge moves: it is drawn again when one of them moves a dot, not at
      every tick.

    Charts of unknown height, and time charts of unknown width, are returned
    as they are."""
    timed = data.span is not None or any(s.times for s in data.series)
    if rows <= 0 or (timed and cols <= 0):
        return data
    step = _y_top(data) / (rows * SNAP_STEPS_PER_ROW)
    if step <= 0:
        return data
    x_step = 0.0
    if timed and data.span is not None:
        start, end = data.span
        x_step = (end - start) / (cols * SNAP_STEPS_PER_COLUMN)
    if timed and x_step <= 0:
        return data

    def x(t: float) -> float:
        return round(t / x_step) * x_step

    snapped = tuple(
        replace(
            s,
            values=tuple(round(v / step) * step for v in s.values),
            times=tuple(x(t) for t in s.times) if timed else s.times,
        )
        for s in data.series
    )
    if not timed or data.span is None:
        return replace(data, series=snapped)
    return replace(data, series=snapped, span=(x(data.span[0]), x(data.span[1])))


def _tick(value: float) -> str:
    return f"{value:.3g}"


def ago(seconds: float) -> str:
    """``-1h``, ``-30m``, ``-45s`` for a time axis label."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value = seconds / size
            return (
                f"-{value:.0f}{unit}"
                if value >= 10 or value == int(value)
                else f"-{value:.1f}{unit}"
            )
    return f"-{seconds:.0f}s"


def _render_plotext6(width: int, height: int, data: ChartData) -> str:
    import plotext as plt

    fig = plt.figure
    fig.clear()
    fig.theme("colorless")
    fig.plot_size(width, height)
    top = _y_top(data)
    timed = data.span is not None
    for series in data.series:
        if not series.values:
            continue
        marker = plt.marker("braille", plt.pixel(foreground=series.rgb))
        if timed and len(series.times) == len(series.values):
            signal = fig.signal(list(series.times), list(series.values), marker=marker)
        else:
            signal = fig.signal(list(series.values), marker=marker)
        signal.lines()
        fig.draw(signal)
    if data.span is not None:
        start, end = data.span
        mark = plt.marker("│", plt.pixel(foreground=data.mark_rgb))
        for at in data.marks:
            if start <= at <= end:
                fig.draw(fig.segment([at, at], [0, top], marker=mark))
        fig.ruler("x").lim(start, end)
        middle = (start + end) / 2
        fig.ruler("x").ticks([start, middle, end], [ago(end - start), ago(end - middle), "now"])
    else:
        fig.ruler("x").ticks([])
    fig.legend(False)
    fig.ruler("y").lim(0, top)
    fig.ruler("y").ticks([0, top / 2, top], [_tick(0), _tick(top / 2), _tick(top)])
    fig.axes(False, axis="x", side="upper")
    fig.axes(False, axis="y", side="right")
    return str(fig.build())


def _render_plotext5(width: int, height: int, data: ChartData) -> str:
    import plotext as plt

    plt.clf()  # type: ignore[attr-defined]
    plt.theme("clear")  # type: ignore[attr-defined]
    plt.plotsize(width, height)  # type: ignore[attr-defined]
    for series in data.series:
        if series.values:
            plt.plot(list(series.values), marker="braille", color=series.rgb)  # type: ignore[attr-defined]
    plt.ylim(0, _y_top(data))  # type: ignore[attr-defined]
    plt.xticks([])  # type: ignore[attr-defined]
    return str(plt.build())  # type: ignore[attr-defined]


def render_chart(width: int, height: int, data: ChartData) -> Text:
    """The chart as Rich Text; a sparkline fallback when plotext cannot draw it."""
    if width < 12 or height < 4:
        return Text("")
    renderers = (_render_plotext6, _render_plotext5) if plotext_ready() else ()
    for renderer in renderers:
        try:
            return Text.from_ansi(renderer(width, height, data), no_wrap=True)
        except Exception:  # plotext API of another major version
            continue
    lines = Text(no_wrap=True)
    for series in data.series:
        lines.append(f"{series.label:<6} ")
        lines.append(
            sparkline(series.values, width - 7, lo=0, hi=_y_top(data)),
            style=f"rgb({series.rgb[0]},{series.rgb[1]},{series.rgb[2]})",
        )
        lines.append("\n")
    return lines


class PlotextChart(Widget):
    """Renders :class:`ChartData` with plotext at the widget's size."""

    DEFAULT_CSS = """
    PlotextChart {
        height: 1fr;
        min-height: 5;
    }
    """

    data: reactive[ChartData] = reactive(ChartData, layout=False)
    """What to draw; set a new value to redraw."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawn: ChartData | None = None
        """What the drawn data looks like (:func:`snap_to_dots`)."""

    def set_series(
        self,
        series: Sequence[ChartSeries],
        *,
        y_max: float | None = None,
        span: tuple[float, float] | None = None,
        marks: Sequence[float] = (),
        y_floor: float = 5.0,
    ) -> None:
        data = ChartData(
            series=tuple(series), y_max=y_max, span=span, marks=tuple(marks), y_floor=y_floor
        )
        # A new sample that moves no dot is kept but not drawn (see
        # snap_to_dots); the next change that does is drawn exactly.
        size = self.content_size
        seen = snap_to_dots(data, size.height, size.width)
        if seen is not data and seen == self._drawn:
            self.set_reactive(PlotextChart.data, data)
            return
        self._drawn = seen
        self.data = data

    def render(self) -> Text:
        size = self.content_size
        if not any(s.values for s in self.data.series):
            return Text("no samples yet", style="dim")
        return render_chart(size.width, size.height, self.data)
