"""Text sparklines and gauges that fit in one table cell or one line.

Textual's ``Sparkline`` widget is a whole widget; a table needs a string per
cell, so these are plain functions returning ``str`` (the caller styles it).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BLOCKS", "gauge", "sparkline"]

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(
    values: Sequence[float],
    width: int = 8,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> str:
    """The last ``width`` values as block characters, padded on the left.

    ``lo``/``hi`` fix the scale (a CPU trend on 0-100 reads differently from
    one auto-scaled to its own min and max); by default it is the data's own
    range, with a flat series drawn at the bottom.
    """
    if width <= 0:
        return ""
    tail = [float(v) for v in values[-width:]]
    if not tail:
        return " " * width
    low = min(tail) if lo is None else lo
    high = max(tail) if hi is None else hi
    span = high - low
    chars = []
    for value in tail:
        if span <= 0:
            index = 0
        else:
            ratio = (min(max(value, low), high) - low) / span
            index = round(ratio * (len(BLOCKS) - 1))
        chars.append(BLOCKS[index])
    return " " * (width - len(chars)) + "".join(chars)


def gauge(fraction: float, width: int = 10) -> str:
    """A horizontal bar, ``████████░░``, with eighth-block resolution."""
    if width <= 0:
        return ""
    frac = min(max(fraction, 0.0), 1.0)
    eighths = round(frac * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    bar = "█" * full + partial
    return bar + "░" * (width - len(bar))
