"""Cost panel: month to date, daily projection against the target, month end
against the budget, components, cache hit rate and a small daily chart."""

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
        history = s.daily_history[-31:]
        if not history:
            return Content.styled("no daily history yet", "dim")
        values = [v for _, v in history]
        top = max(max(values), s.daily_target)
        rows = bar_rows(values, 3, top=top)
        first, last = history[0][0], history[-1][0]
        label_lo = f"{first:%m-%d}"
        label_hi = f"{last:%m-%d}"
        gap = max(1, len(values) - len(label_lo) - len(label_hi))
        parts: list[str | tuple[str, str]] = []
        for index, row in enumerate(rows):
            prefix = f"{fmt_money(top):>7} " if index == 0 else " " * 8
            parts += [(prefix, "dim"), (row, "$primary"), "\n"]
        parts.append((f"{'daily':>7} {label_lo}{' ' * gap}{label_hi}", "dim"))
        return Content.assemble(*parts)
