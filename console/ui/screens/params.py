"""A form for an operation's parameters, built from its typed model.

One input per field of the model (:mod:`console.core.ops.table`): a select
for a ``Literal``, a checkbox for a bool, a text input otherwise, prefilled
with the default. Submitting validates with the same model the CLI and the
engine use (:func:`~console.core.ops.table.parse_params`), so the form
refuses what ``stackdeck <command>`` refuses, with the same sentence; the
checks that need the stack (does that backup exist?) are the engine's, and
their answer is in the Operations panel.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from console.core.ops.errors import BadInput
from console.core.ops.table import OpParams, OpSpec, arg_of, literal_choices, parse_params
from console.ui.screens.base import ConsoleModal

__all__ = ["ParamsScreen", "asks_for_input", "form_fields"]


def form_fields(model: type[OpParams]) -> list[str]:
    """The fields a form asks for (the CLI's, less those a confirmation fills)."""
    return [
        name for name in model.model_fields if arg_of(model, name).cli and arg_of(model, name).form
    ]


def asks_for_input(model: type[OpParams]) -> bool:
    return bool(form_fields(model))


def _label(name: str, description: str | None) -> str:
    words = name.replace("_", " ")
    return f"{words}: {description}" if description else words


class ParamsScreen(ConsoleModal[OpParams | None]):
    """The parameters of one operation. Enter (in a field) or the button submits.

    | key | action |
    |---|---|
    | enter | validate, then continue to the confirmation |
    | escape | cancel |
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="params.cancel", tooltip="Close the form"),
    ]

    def __init__(self, spec: OpSpec, *, initial: dict[str, Any] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.spec = spec
        self.initial = dict(initial or {})
        """Values shown instead of the model's defaults (e.g. the alert being silenced)."""

    def compose(self) -> ComposeResult:
        model = self.spec.params
        with Vertical(classes="dialog", id="params-form"):
            yield Label(self.spec.title, classes="dialog-title")
            yield Static(self.spec.help, classes="dialog-body")
            for name in form_fields(model):
                info = model.model_fields[name]
                default = None if info.is_required() else info.default
                if name in self.initial:
                    default = self.initial[name]
                choices = literal_choices(info.annotation)
                if info.annotation is bool:
                    yield Checkbox(_label(name, info.description), bool(default), id=f"f-{name}")
                    continue
                yield Label(_label(name, info.description))
                if choices:
                    yield Select(
                        [(c, c) for c in choices],
                        value=str(default) if default is not None else choices[0],
                        allow_blank=False,
                        id=f"f-{name}",
                    )
                else:
                    if isinstance(default, list | tuple):
                        default = " ".join(str(v) for v in default)
                    shown = "" if default in (None, "", [], ()) else str(default)
                    yield Input(value=shown, placeholder=name, id=f"f-{name}")
            yield Static("", id="params-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Continue…", variant="primary", id="submit", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        fields = form_fields(self.spec.params)
        # the first field still to fill (a pre-filled form starts at its blank one)
        blank = [name for name in fields if name not in self.initial]
        first = blank[0] if blank else (fields[0] if fields else None)
        if first is not None:
            self.query_one(f"#f-{first}").focus()

    def values(self) -> dict[str, Any]:
        """What the form holds, as the model's raw input (empty text: the default)."""
        out: dict[str, Any] = {}
        for name in form_fields(self.spec.params):
            widget = self.query_one(f"#f-{name}")
            if isinstance(widget, Checkbox):
                out[name] = widget.value
            elif isinstance(widget, Select):
                out[name] = widget.value
            elif isinstance(widget, Input) and widget.value.strip():
                out[name] = widget.value.strip()
        return out

    def _show_error(self, reason: str) -> None:
        error = self.query_one("#params-error", Static)
        error.update(reason)
        error.set_class(bool(reason), "-visible")

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        try:
            params = parse_params(self.spec, self.values())
        except BadInput as exc:
            self._show_error(str(exc))
            if exc.field:
                fields = self.query(f"#f-{exc.field}")
                if fields:
                    fields.first().focus()
            return
        self.dismiss(params)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
