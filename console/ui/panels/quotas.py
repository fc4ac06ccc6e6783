"""Quotas panel: provider quota gauges from the Redis ledger, and the
emergency rate-limit flag with its remaining TTL."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var

from console.core.models import ProviderQuota, QuotaSnapshot
from console.ui.format import NONE, fmt_duration, seconds_between
from console.ui.palette import Palette
from console.ui.panels.base import Panel
from console.ui.widgets.sparkline import gauge
from console.ui.widgets.table import ListTable, Row
from console.ui.widgets.text import LiveText

__all__ = ["QuotasPanel", "quota_row", "window_name"]

GAUGE_WIDTH = 6


def window_name(seconds: int) -> str:
    """``day``, ``hour``, ``min`` or ``5m``-style for other windows."""
    return {86400: "day", 3600: "hour", 60: "min", 1: "s"}.get(seconds) or fmt_duration(
        seconds, parts=1
    )


def _burn(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:.1f}/h" if value < 10 else f"{value:.0f}/h"


def quota_row(quota: ProviderQuota, now: datetime, palette: Palette) -> Row:
    """``Alpha Vantage ███████░ 19/25  day  9h57m  1.4/h  ~4h``."""
    fraction = quota.used / quota.limit if quota.limit else 0.0
    exhausted = bool(quota.limit) and quota.used >= quota.limit
    style = (
        f"bold {palette.err}" if exhausted else (palette.warn if fraction >= 0.8 else palette.ok)
    )
    used = Text(gauge(fraction, GAUGE_WIDTH), style=style)
    used.append(f" {quota.used}/{quota.limit}", style="bold" if exhausted else "")
    reset_in = max(0.0, seconds_between(quota.resets_at, now))
    if exhausted:
        empty = Text("full", style=f"bold {palette.err}")
    elif quota.exhausts_at is not None:
        left = max(0.0, seconds_between(quota.exhausts_at, now))
        empty = Text(f"~{fmt_duration(left, parts=1)}", style=palette.warn)
    else:
        empty = Text(NONE, style=palette.muted)
    cells = (
        Text(quota.label, style="bold"),
        used,
        Text(window_name(quota.window_seconds)),
        Text(fmt_duration(reset_in), justify="right"),
        Text(_burn(quota.burn_per_hour), justify="right"),
        empty,
    )
    return Row(key=quota.provider, cells=cells, search=f"{quota.provider} {quota.label}")


class QuotasPanel(Panel):
    """Used / limit per provider window, reset countdown, burn, exhaustion."""

    PANEL_ID = "quotas"
    TITLE = "Quotas"
    NUMBER = 5
    SOURCES: ClassVar[tuple[str, ...]] = ("redis", "quotas")

    snapshot: var[QuotaSnapshot | None] = var(None, init=False)
    """The newest quota ledger reading."""

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="emergency")
        yield ListTable(
            [
                ("provider", "provider"),
                ("used", "used"),
                ("window", "per"),
                ("resets", "resets>"),
                ("burn", "burn>"),
                ("empty", "empty"),
            ],
            id="quotas-table",
        )

    def title_detail(self, snapshot: QuotaSnapshot) -> str:
        full = sum(1 for p in snapshot.providers if p.limit and p.used >= p.limit)
        text = f"{len(snapshot.providers)} providers"
        if full:
            text += f" · {full} exhausted"
        if snapshot.emergency_limit:
            text += " · EMERGENCY"
        return text

    def empty_reason(self, snapshot: QuotaSnapshot) -> str | None:
        if snapshot.providers or snapshot.emergency_limit:
            return None
        return "no provider quotas in the ledger yet"

    def on_tick(self) -> None:
        if self.snapshot is not None:
            self.render_snapshot(self.snapshot)

    def render_snapshot(self, snapshot: QuotaSnapshot) -> None:
        self.query_one(".emergency", LiveText).update(self._emergency(snapshot))
        palette = self.palette
        self.query_one(ListTable).set_rows(
            [quota_row(p, self.now, palette) for p in snapshot.providers]
        )

    def _emergency(self, snapshot: QuotaSnapshot) -> Content:
        if not snapshot.emergency_limit:
            return Content.assemble("emergency limit ", ("off", "$success"))
        ttl = snapshot.emergency_ttl_s
        if ttl is not None:
            left = ttl - max(0.0, seconds_between(self.now, snapshot.taken_at))
            ttl_text = f" · {fmt_duration(max(left, 0))} left"
        else:
            ttl_text = " · no expiry"
        return Content.assemble(
            ("▲ EMERGENCY LIMIT ON", "$error bold reverse"), (ttl_text, "$error bold")
        )
