"""Confirmation dialogs for operations that change the stack.

:class:`ConfirmScreen` asks yes/no. :class:`TypedConfirmScreen` is for the
most destructive operations: the operator must type the target's name
(``investment_cache_prod``) before the confirm button enables, as GitHub does
for deleting a repository. :class:`FlushScreen` picks the scope of a cache
flush and hands the dangerous scope on to a typed confirmation.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from console.ui.screens.base import ConsoleModal

__all__ = ["ConfirmScreen", "FlushScreen", "TypedConfirmScreen"]


class ConfirmScreen(ConsoleModal[bool]):
    """Yes/no for one operation. ``y`` confirms, ``n`` or Escape cancels.

    | key | action |
    |---|---|
    | y | confirm |
    | n, escape | cancel |
    """

    BINDINGS = [
        Binding("y", "confirm", "Confirm", id="confirm.yes", tooltip="Run the operation"),
        Binding("n,escape", "cancel", "Cancel", id="confirm.no", tooltip="Do nothing"),
    ]

    def __init__(
        self,
        title: str,
        body: str | Content = "",
        *,
        confirm_label: str = "Confirm",
        destructive: bool = False,
        warning: str | None = None,
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.destructive = destructive
        self.warning = warning

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            if self.warning:
                yield Static(
                    Content.assemble(("⚠ ", "bold"), self.warning), classes="dialog-warning"
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.confirm_label} (y)",
                    variant="error" if self.destructive else "primary",
                    id="confirm",
                    compact=True,
                )
                yield Button("Cancel (n)", id="cancel", compact=True)

    def on_mount(self) -> None:
        # Destructive: the safe choice has the focus, Enter does not run it.
        self.query_one("#cancel" if self.destructive else "#confirm", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmScreen(ConsoleModal[bool]):
    """Confirm by typing the target's exact name. Escape cancels.

    | key | action |
    |---|---|
    | enter | confirm (only when the typed name matches) |
    | escape | cancel |
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="typed.cancel", tooltip="Do nothing"),
    ]

    def __init__(self, title: str, body: str | Content, expected: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.body, classes="dialog-body")
            yield Static(
                Content.assemble("Type ", (self.expected, "bold"), " to confirm:"),
                classes="dialog-prompt",
            )
            yield Input(placeholder=self.expected, id="typed")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Confirm", variant="error", id="confirm", disabled=True, compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#typed", Input).focus()

    @on(Input.Changed, "#typed")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value != self.expected

    @on(Input.Submitted, "#typed")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value == self.expected:
            self.dismiss(True)
        else:
            self.notify(f"type {self.expected} exactly, or press Escape", severity="warning")

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.query_one("#typed", Input).value == self.expected:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class FlushScreen(ConsoleModal[str | None]):
    """Choose what a cache flush removes: ``prefix`` (cache keys) or ``all`` (FLUSHDB).

    | key | action |
    |---|---|
    | enter | continue with the selected scope |
    | escape | cancel |
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="flush.cancel", tooltip="Do nothing"),
    ]

    def __init__(self, target: str, cache_prefix: str = "cache:") -> None:
        super().__init__(classes="dialog-screen")
        self.target = target
        self.cache_prefix = cache_prefix

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Flush the cache of {self.target}", classes="dialog-title")
            with RadioSet(id="scope"):
                yield RadioButton(
                    f"cache keys only ({self.cache_prefix}*): quota counters are kept",
                    value=True,
                    id="scope-prefix",
                )
                yield RadioButton(
                    "FLUSHDB: every key (quota counters and the emergency flag are restored)",
                    id="scope-all",
                )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Continue", variant="primary", id="continue", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#scope", RadioSet).focus()

    @on(Button.Pressed, "#continue")
    def _continue(self) -> None:
        pressed = self.query_one("#scope", RadioSet).pressed_button
        self.dismiss("all" if pressed is not None and pressed.id == "scope-all" else "prefix")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
