"""Rich styles resolved from the active Textual theme.

Widgets that render Textual ``Content`` use theme variables directly
(``$error``). DataTable cells and plotext output are Rich ``Text``, which
cannot see theme variables, so the panels ask for a :class:`Palette` built
from the app's current theme. Every state is also spelled out with a symbol
or a word (``✓``, ``✗``, ``stale``), so nothing relies on colour alone and
``NO_COLOR`` loses no information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.color import Color, ColorParseError

if TYPE_CHECKING:
    from textual.app import App

__all__ = ["Palette"]


def _solid(value: str | None, background: str, fallback: str) -> str:
    """A hex colour without alpha (Rich has none): blend onto the background."""
    if not value:
        return fallback
    try:
        colour = Color.parse(value)
        if colour.a < 1:
            colour = Color.parse(background) + colour
        return colour.hex6
    except ColorParseError:
        return fallback


@dataclass(frozen=True)
class Palette:
    """Rich style strings for the states the panels show."""

    ok: str = "green"
    warn: str = "yellow"
    err: str = "red"
    accent: str = "cyan"
    blue: str = "blue"
    green: str = "green"
    muted: str = "dim"

    @classmethod
    def from_app(cls, app: App[object]) -> Palette:
        variables = app.theme_variables
        bg = variables.get("background", "#000000")
        return cls(
            ok=_solid(variables.get("success"), bg, "green"),
            warn=_solid(variables.get("warning"), bg, "yellow"),
            err=_solid(variables.get("error"), bg, "red"),
            accent=_solid(variables.get("accent"), bg, "cyan"),
            blue=_solid(variables.get("primary"), bg, "blue"),
            green=_solid(variables.get("success"), bg, "green"),
            muted="dim",
        )

    def colour(self, name: str | None) -> str:
        """Style of a deployment colour label."""
        if name == "blue":
            return f"bold {self.blue}"
        if name == "green":
            return f"bold {self.green}"
        return self.muted

    def level(self, value: float, warn: float, err: float) -> str:
        """ok/warn/err style for a value against two thresholds (higher is worse)."""
        if value >= err:
            return f"bold {self.err}"
        if value >= warn:
            return self.warn
        return ""
