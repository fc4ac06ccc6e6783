"""From :class:`~console.core.models.HistorySnapshot` to what the charts draw."""

from __future__ import annotations

from console.core.models import HistorySeries, HistorySnapshot

__all__ = ["SERIES_RGB", "history_span", "history_values", "marker_times", "series_rgb"]

SERIES_RGB: tuple[tuple[int, int, int], ...] = (
    (1, 120, 212),
    (254, 166, 43),
    (80, 200, 120),
    (220, 80, 200),
    (230, 90, 70),
    (120, 200, 230),
)
"""Line colours in order; blue and green subjects keep their own."""

_NAMED = {"blue": (1, 120, 212), "green": (80, 200, 120)}


def series_rgb(series: HistorySeries, index: int) -> tuple[int, int, int]:
    return _NAMED.get(series.subject, SERIES_RGB[index % len(SERIES_RGB)])


def history_values(
    history: HistorySnapshot, chart: str, subject: str
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(times, values) of one subject's series, or None when there is none."""
    series = history.subject(chart, subject)
    if series is None or not series.points:
        return None
    points = [(t, v) for t, v in series.points if v == v]  # NaN: a gap
    return tuple(t for t, _ in points), tuple(v for _, v in points)


def history_span(history: HistorySnapshot, now: float) -> tuple[float, float]:
    """The x axis: the chosen range up to ``now``."""
    return (now - history.range_seconds, now)


def marker_times(history: HistorySnapshot) -> tuple[float, ...]:
    return tuple(m.at.timestamp() for m in history.markers)
