"""Small, pure formatting helpers shared by the panels (no Textual imports).

Everything here turns numbers and datetimes from the snapshot models into
short strings that fit table cells: ``1.2G``, ``3m12s``, ``2h``, ``$1.92``.
Kept pure so they are trivially testable and reusable by the screenshot
script.
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = [
    "NONE",
    "TIMES",
    "fmt_age",
    "fmt_bytes",
    "fmt_count",
    "fmt_duration",
    "fmt_money",
    "fmt_rate",
    "fmt_time",
    "seconds_between",
    "shorten",
]

NONE = "\u2013"
"""An en dash: the cell has no value (unknown, not applicable)."""
TIMES = "\u00d7"
"""The multiplication sign of terminal sizes ("80" + TIMES + "24")."""

_BYTE_UNITS = ("B", "K", "M", "G", "T", "P")


def fmt_bytes(value: float | int | None) -> str:
    """``412M``, ``1.2G``; binary units, one decimal below 10."""
    if value is None:
        return NONE
    size = float(value)
    for unit in _BYTE_UNITS:
        if abs(size) < 1024 or unit == _BYTE_UNITS[-1]:
            if unit == "B":
                return f"{int(size)}B"
            return f"{size:.1f}{unit}" if abs(size) < 10 else f"{size:.0f}{unit}"
        size /= 1024
    return f"{size:.0f}P"  # pragma: no cover - loop always returns


def fmt_rate(value: float | None) -> str:
    """Bytes per second as ``1.2K`` (the ``/s`` is in the column header)."""
    if value is None:
        return NONE
    return fmt_bytes(value)


def fmt_count(value: float | int | None) -> str:
    """``812``, ``1.2k``, ``3.4M``."""
    if value is None:
        return NONE
    n = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            scaled = n / scale
            return f"{scaled:.1f}{unit}" if abs(scaled) < 10 else f"{scaled:.0f}{unit}"
    return f"{int(n)}" if n == int(n) else f"{n:.1f}"


def fmt_duration(seconds: float | None, *, parts: int = 2) -> str:
    """``42s``, ``3m12s``, ``2h05m``, ``3d04h``; ``NONE`` (an en dash) for None.

    ``parts`` is how many units are shown, counted from the largest non-zero
    one (``parts=1``: ``3m``, ``2h``, ``3d``).
    """
    if seconds is None:
        return NONE
    total = max(0, int(seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next((i for i, (n, _) in enumerate(units) if n), len(units) - 1)
    shown = units[first : first + max(1, parts)]
    head_n, head_u = shown[0]
    return f"{head_n}{head_u}" + "".join(f"{n:02d}{u}" for n, u in shown[1:])


def seconds_between(later: datetime, earlier: datetime) -> float:
    """``later - earlier`` in seconds; naive datetimes are taken as UTC."""
    from datetime import UTC

    if later.tzinfo is None:
        later = later.replace(tzinfo=UTC)
    if earlier.tzinfo is None:
        earlier = earlier.replace(tzinfo=UTC)
    return (later - earlier).total_seconds()


def fmt_age(now: datetime, then: datetime | None, *, parts: int = 1) -> str:
    """How long ago ``then`` was, compactly: ``42s``, ``3m``, ``2h``, ``3d``."""
    if then is None:
        return NONE
    return fmt_duration(max(0.0, seconds_between(now, then)), parts=parts)


def fmt_time(moment: datetime | None, now: datetime) -> str:
    """Wall-clock ``HH:MM:SS`` of ``moment`` in the clock's timezone; older
    than a day adds the date (``03-12 14:02``)."""
    if moment is None:
        return NONE
    tz = now.tzinfo
    local = moment.astimezone(tz) if moment.tzinfo else moment
    if abs(seconds_between(now, moment)) >= 86400:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%H:%M:%S")


def fmt_money(value: float | None, *, cents: bool = True) -> str:
    """``$1.92``, ``$55.10``; ``NONE`` (an en dash) for None."""
    if value is None:
        return NONE
    return f"${value:,.2f}" if cents else f"${value:,.0f}"


def shorten(text: str, width: int) -> str:
    """One line, whitespace collapsed, cut with an ellipsis at ``width``."""
    flat = " ".join(text.split())
    if width <= 1:
        return flat[:width]
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def as_timedelta(seconds: float) -> timedelta:
    """Convenience for callers that want a timedelta."""
    return timedelta(seconds=seconds)


RANGES: tuple[int, ...] = (900, 3600, 21600, 86400)
"""The time ranges the ``t`` key steps through: 15 m, 1 h, 6 h, 24 h."""


def fmt_range(seconds: float) -> str:
    """``15m``, ``1h``, ``6h``, ``24h``."""
    seconds = int(seconds)
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def next_range(seconds: float) -> int:
    """The range after ``seconds`` in :data:`RANGES` (wrapping)."""
    later = [r for r in RANGES if r > seconds]
    return later[0] if later else RANGES[0]
