"""The ``?`` screen: every key binding of the console, from the bindings themselves.

Built from the ``BINDINGS`` lists (not a hand-written copy), so a binding
cannot be added without showing up here. Bindings currently disabled (an
operation is running, read-only mode) are marked with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

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


class HelpScreen(ModalScreen[None]):
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
                    yield Static(self._table(_bindings(bindings)), classes="help-table")
            yield Static(
                Content.styled("escape or ? closes · : or ctrl+p opens the command palette", "dim"),
                classes="help-footer",
            )

    def _table(self, bindings: list[Binding]) -> Content:
        rows: list[Content] = []
        seen: set[str] = set()
        for binding in bindings:
            ident = binding.id or f"{binding.key}:{binding.action}"
            if ident in seen:
                continue
            seen.add(ident)
            keys = ", ".join(
                self.key_display(Binding(key, binding.action)) for key in binding.key.split(",")
            )
            description = binding.description or binding.action
            tooltip = binding.tooltip or ""
            reason = self.disabled_reason(binding)
            parts: list[str | tuple[str, str]] = [
                (f"{keys:>14}", "bold $primary"),
                f"  {description:<18}",
                (tooltip, "dim"),
            ]
            if reason:
                parts.append((f"  (disabled: {reason})", "$warning"))
            rows.append(Content.assemble(*parts))
        return Content("\n").join(rows)

    def action_close(self) -> None:
        self.dismiss(None)
