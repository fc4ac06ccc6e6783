"""What the screens pushed over the dashboard share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from console.ui.screens.dashboard import DashboardScreen

__all__ = ["OverDashboard"]


class OverDashboard(Screen[None]):
    """A full screen over the dashboard that reads the dashboard's state
    (its snapshots, clock and range) and starts operations through the app."""

    @property
    def dash(self) -> DashboardScreen:
        from console.ui.app import StackdeckApp

        app = self.app
        assert isinstance(app, StackdeckApp)
        return app.dashboard
