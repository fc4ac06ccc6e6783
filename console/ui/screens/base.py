"""What the console's screens share: they lay themselves out at the
terminal's size (:class:`ConsoleScreen`, :class:`ConsoleModal`), and the
screens pushed over the dashboard read its state (:class:`OverDashboard`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from textual import events
from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from console.ui.screens.dashboard import DashboardScreen

__all__ = ["ConsoleModal", "ConsoleScreen", "OverDashboard"]

ResultT = TypeVar("ResultT")


async def _at_the_terminals_size(self: Screen[Any], event: events.Resize) -> None:
    """Runs before Textual's own ``Screen._on_resize``: a Resize whose size is
    no longer the terminal's is made the terminal's.

    Textual lays a screen out at the size its Resize carries, and a screen
    whose layout changed its size posts itself a Resize of that size. Two of
    them with different sizes in a screen's queue (the terminal went from
    40x15 to 80x24 while the first was pending) each lay the screen out at
    their size and post themselves again; with other messages between them
    (Textual merges only adjacent ones) that never ends: the console hung at
    100 % CPU, laying the dashboard out at 40x15 and 80x24 in turn (the
    resize storm test, twice in CI). Only the terminal's size is ever right."""
    size = self.app.size
    if event.size != size:
        event.size = event.virtual_size = event.container_size = size


class ConsoleScreen(Screen[ResultT]):
    """A full screen of the console."""

    _on_resize = _at_the_terminals_size


class ConsoleModal(ModalScreen[ResultT]):
    """A dialog of the console."""

    _on_resize = _at_the_terminals_size


class OverDashboard(ConsoleScreen[None]):
    """A full screen over the dashboard that reads the dashboard's state
    (its snapshots, clock and range) and starts operations through the app."""

    @property
    def dash(self) -> DashboardScreen:
        from console.ui.app import StackdeckApp

        app = self.app
        assert isinstance(app, StackdeckApp)
        return app.dashboard
