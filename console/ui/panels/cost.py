"""Cost panel: month to date, daily projection against the target, month end
against the budget, components, cache hit rate and a small chart of the
recorded days (``CostSnapshot.recorded_days``: no day before the record began)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var

from console.core.models import CostSnapshot
from console.ui.format import fmt_money
from console.ui.panels.base import Panel
from console.ui.widgets.sparkline import BLOCKS, gauge
from console.ui.widgets.text import LiveText

__all__ = ["CostPanel", "bar_rows"]

DAILY_COLUMNS = 31
"""Columns of the daily chart: a month of days, one column each."""


def bar_rows(values: Sequence[float], height: int, *, top: float | None = None) -> list[str]:
    """A vertical bar chart ``height`` rows tall, one column per value (top row first)."""
    if not values or height <= 0:
        return []
    peak = top if top is not None else max(values)
    peak = peak if peak > 0 else 1.0
    levels = len(BLOCKS)
    rows = []
    for row in range(height - 1, -1, -1):
        line = []
        for value in values:
            eighths = round(min(value, peak) / peak * height * levels)
            cell = eighths - row * levels
            if cell >= levels:
                line.append(BLOCKS[-1])
            elif cell <= 0:
                line.append(" ")
            else:
                line.append(BLOCKS[cell - 1])
        rows.append("".join(line))
    return rows


class CostPanel(Panel):
    """Spend so far this month and where it is heading."""

    PANEL_ID = "cost"
    TITLE = "Cost"
    NUMBER = 6
    SOURCES: ClassVar[tuple[str, ...]] = ("cost",)

    snapshot: var[CostSnapshot | None] = var(None, init=False)
    """The newest cost projection."""

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="figures")
        yield LiveText(classes="daily")

    def title_detail(self, snapshot: CostSnapshot) -> str:
        return "over target" if snapshot.daily_projection > snapshot.daily_target else "on target"

    def render_snapshot(self, snapshot: CostSnapshot) -> None:
        self.query_one(".figures", LiveText).update(self._figures(snapshot))
        self.query_one(".daily", LiveText).update(self._daily(snapshot))

    def _figures(self, s: CostSnapshot) -> Content:
        spent = s.month_to_date / s.monthly_budget if s.monthly_budget else 0.0
        over_day = s.daily_projection > s.daily_target
        over_month = s.month_end_projection > s.monthly_budget
        bad, good = ("$error bold", "$success")
        lines: list[str | tuple[str, str]] = [
            "month to date  ",
            (fmt_money(s.month_to_date), "bold"),
            f" of {fmt_money(s.monthly_budget, cents=False)}  ",
            (gauge(spent, 10), "$warning" if spent >= 0.8 else "$primary"),
            f" {spent:.0%}\n",
            "today → ",
            (f"{fmt_money(s.daily_projection)}/day", bad if over_day else good),
            f" (target {fmt_money(s.daily_target)})",
            (" ✗ over" if over_day else " ✓", bad if over_day else good),
            "\nmonth end → ",
            (fmt_money(s.month_end_projection), bad if over_month else good),
            f" (budget {fmt_money(s.monthly_budget, cents=False)})",
            (" ✗ over" if over_month else " ✓", bad if over_month else good),
        ]
        if s.components:
            parts = " · ".join(
                f"{name} {fmt_money(value)}"
                for name, value in sorted(s.components.items(), key=lambda kv: -kv[1])
            )
            lines.append(f"\nper day: {parts}")
        if s.cache_hit_rate is not None:
            rate = s.cache_hit_rate
            lines += ["\ncache hit rate ", (f"{rate:.0%}", "$warning" if rate < 0.5 else "")]
        return Content.assemble(*lines)

    def _daily(self, s: CostSnapshot) -> Content:
        """The recorded days only (never the platform's modelled ones): the
        first day, recorded from when the record began, drawn dim and marked
        partial; a day without a record is a gap (a dot on the baseline)."""
        days = s.recorded_days[-31:]
        if not days:
            return Content.styled("daily: none recorded yet (recording from now on)", "dim")
        values = [d.cost or 0.0 for d in days]
        top = max(max(values), s.daily_target)
        rows = bar_rows(values, 3, top=top)
        width = max(1, min(3, DAILY_COLUMNS // len(days)))  # a few days: wider bars
        parts: list[str | tuple[str, str]] = []
        for index, row in enumerate(rows):
            parts.append((f"{fmt_money(top):>7} " if index == 0 else " " * 8, "dim"))
            baseline = index == len(rows) - 1
            for char, day in zip(row, days, strict=True):
                if day.cost is None:
                    parts.append((("·" if baseline else " ") * width, "dim"))
                else:
                    parts.append((char * width, "$primary 50%" if day.partial else "$primary"))
            parts.append("\n")
        first, last = days[0].day, days[-1].day
        span = f"{first:%m-%d}" if first == last else f"{first:%m-%d} → {last:%m-%d}"
        notes = [span]
        if days[0].partial:
            notes.append(f"{first:%m-%d} partial")
        gaps = sum(1 for d in days if d.cost is None)
        if gaps:
            notes.append(f"{gaps} day{'s' if gaps > 1 else ''} not recorded")
        parts.append((f"{'daily':>7} " + " · ".join(notes), "dim"))
        return Content.assemble(*parts)
