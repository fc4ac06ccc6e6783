"""The command palette (``:`` or ``ctrl+p``): every operation and view by name.

Every operation of the table (:data:`console.core.ops.table.OPERATIONS`) is
here, the ones without a key too (backup, restore, migrate, scale, verify,
preflight, status, cache warm, lock break); a writing operation that cannot
start now says why in its description and, when chosen, in a notification.
Then the dashboard's views: logs, filter, each panel. Textual's own system
commands (theme, keys, screenshot, quit) stay in the app's provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from console.core.ops.table import OPERATIONS
from console.ui.panels import PANEL_CLASSES

if TYPE_CHECKING:
    from console.ui.screens.dashboard import DashboardScreen

__all__ = ["Command", "DashboardCommands", "dashboard_commands"]


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    callback: Callable[[], object]


def dashboard_commands(dash: DashboardScreen) -> list[Command]:
    """The dashboard's palette entries, in the order they are listed."""
    out: list[Command] = []
    # read-only operations the console has a view of open that view
    views: dict[str, tuple[str, Callable[[], object]]] = {
        "since-deploy": ("w", dash.action_since_deploy),
        "silence-list": ("a", dash.action_alerts),
    }
    for spec in OPERATIONS.values():
        reason = dash.block_reason(spec)
        key = f" (key {spec.key.key})" if spec.key else ""
        suffix = f" (disabled: {reason})" if reason else ""
        callback: Callable[[], object] = partial(dash.action_op, spec.name)
        if spec.name in views:
            view_key, callback = views[spec.name]
            key = f" (key {view_key})"
        out.append(Command(spec.title, f"{spec.help}{key}{suffix}", callback))
    out.append(Command("Logs of selected container", "Tail, follow, filter", dash.action_logs))
    out.append(Command("Filter list", "Filter the focused list", dash.action_filter))
    out.append(
        Command(
            "Alerts and silences",
            "Pending, firing, silenced; silence one (key a)",
            dash.action_alerts,
        )
    )
    out.append(
        Command(
            "Dashboards",
            "The runbook's four dashboards over the range (key g)",
            dash.action_dashboards,
        )
    )
    out.append(Command("Time range", "Charts: 15m, 1h, 6h, 24h (key t)", dash.action_cycle_range))
    for cls in sorted(PANEL_CLASSES, key=lambda c: c.NUMBER):
        out.append(
            Command(
                f"Show {cls.TITLE}",
                f"Key {cls.NUMBER}",
                partial(dash.action_show_panel, cls.PANEL_ID),
            )
        )
    return out


class DashboardCommands(Provider):
    """The palette's entries while the dashboard is the screen below it."""

    def _commands(self) -> list[Command]:
        from console.ui.screens.dashboard import DashboardScreen

        screen = self.screen
        return dashboard_commands(screen) if isinstance(screen, DashboardScreen) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(command.title), command.callback, help=command.help
                )
