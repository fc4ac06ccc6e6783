"""The ``?`` screen: every key binding of the console, from the bindings themselves.

Built from the ``BINDINGS`` lists (not a hand-written copy), so a binding
cannot be added without showing up here. Bindings currently disabled (an
operation is running, read-only mode) are marked with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

from console.ui.palette import Palette
from console.ui.screens.base import ConsoleModal

__all__ = ["HelpScreen", "HelpSection"]

HelpSection = tuple[str, Sequence[BindingType]]
"""A heading and the bindings listed under it."""


def _bindings(items: Sequence[BindingType]) -> list[Binding]:
    out: list[Binding] = []
    for item in items:
        if isinstance(item, Binding):
            out.append(item)
        else:
            out.extend(Binding.make_bindings([item]))
    return out


class HelpTable(Static):
    """A Static holding a Rich table; ``text`` is its plain content (for tests)."""

    @property
    def text(self) -> str:
        import io

        from rich.console import Console

        console = Console(width=self.size.width or 100, record=True, file=io.StringIO())
        console.print(self.content)
        return console.export_text()


class HelpScreen(ConsoleModal[None]):
    """Lists every binding with its key, name and what it does.

    | key | action |
    |---|---|
    | escape, ?, q | close |
    """

    BINDINGS = [
        Binding(
            "escape,question_mark,q", "close", "Close", id="help.close", tooltip="Close the help"
        ),
    ]

    def __init__(
        self,
        sections: Sequence[HelpSection],
        *,
        key_display: Callable[[Binding], str],
        disabled_reason: Callable[[Binding], str | None] = lambda _b: None,
    ) -> None:
        super().__init__(classes="dialog-screen", id="help-screen")
        self.sections = sections
        self.key_display = key_display
        self.disabled_reason = disabled_reason

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("stackdeck keys", classes="dialog-title")
            with VerticalScroll():
                for heading, bindings in self.sections:
                    yield Static(Content.styled(heading, "bold $accent"), classes="help-heading")
                    yield HelpTable(self._table(_bindings(bindings)), classes="help-table")
            yield Static(
                Content.styled("escape or ? closes · : or ctrl+p opens the command palette", "dim"),
                classes="help-footer",
            )

    def _table(self, bindings: list[Binding]) -> Table:
        """Key, name, what it does: a Rich table, so long lines wrap in their column."""
        palette = Palette.from_app(self.app)
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(justify="right", no_wrap=True, style=f"bold {palette.blue}", min_width=7)
        table.add_column(no_wrap=True, min_width=12)
        table.add_column(ratio=1, style="dim")
        seen: set[str] = set()
        for binding in bindings:
            ident = binding.id or f"{binding.key}:{binding.action}"
            if ident in seen:
                continue
            seen.add(ident)
            keys = ", ".join(
                self.key_display(Binding(key, binding.action)) for key in binding.key.split(",")
            )
            what = Text(binding.tooltip or "")
            reason = self.disabled_reason(binding)
            if reason:
                what.append(f" (disabled: {reason})", style=f"not dim {palette.warn}")
            table.add_row(keys, binding.description or binding.action, what)
        return table

    def action_close(self) -> None:
        self.dismiss(None)
