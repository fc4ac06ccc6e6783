"""The deploy form: version (validated as you type) and strategy.

Validation is the deploy's parameter model
(:class:`~console.core.ops.table.DeployParams`), so the form refuses exactly
what ``stackdeck deploy`` would refuse, with the same message. The form only
collects input and returns the model; the flow then asks for confirmation
and starts the operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Select, Static

from console.core.ops.errors import BadInput
from console.core.ops.table import OPERATIONS, DeployParams, parse_params
from console.ui.screens.base import ConsoleModal

__all__ = ["DeployScreen", "VersionValidator", "check_version"]

Strategy = Literal["blue-green", "rolling"]


def check_version(value: str) -> str | None:
    """None when ``value`` is a valid version tag, else the reason it is not."""
    if value and not (value.isascii() and value.isprintable()):
        # \d in the engine's pattern also matches non-ASCII digits; docker tags do not.
        shown = value.encode("unicode_escape").decode("ascii")[:80]
        return f"malformed version '{shown}': only ASCII letters, digits, '.', '-' (e.g. v1.2.3)"
    try:
        parse_params(OPERATIONS["deploy"], {"version": value})
    except BadInput as exc:
        return str(exc)
    return None


class VersionValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        reason = check_version(value.strip())
        return self.success() if reason is None else self.failure(reason)


class DeployScreen(ConsoleModal[DeployParams | None]):
    """Collects what ``stackdeck deploy`` takes: the version (with the ones
    that exist offered as you type), the strategy, build from this checkout,
    the backup policy and the bake window.

    | key | action |
    |---|---|
    | enter | deploy (when the version is valid) |
    | escape | cancel |
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="deploy.cancel", tooltip="Close the form"),
    ]

    def __init__(
        self,
        project: str,
        serving: str | None,
        idle: str | None,
        versions: Sequence[str] = (),
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.project = project
        self.serving = serving
        self.idle = idle
        self.versions = list(versions)
        """Versions with an image or a git tag (newest last), offered by the input."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="deploy-form"):
            yield Label(
                f"Deploy a version of the backend to {self.project}", classes="dialog-title"
            )
            facts = []
            if self.serving:
                facts.append(f"serving: {self.serving}")
            if self.idle:
                facts.append(f"idle: {self.idle}")
            if facts:
                yield Static(" · ".join(facts), classes="dialog-body")
            yield Label("Version")
            yield Input(
                placeholder="v1.2.3",
                id="version",
                validators=[VersionValidator()],
                validate_on=["changed", "submitted"],
                suggester=SuggestFromList(list(reversed(self.versions))),
            )
            yield Static("", id="version-error", classes="field-error")
            yield Static(self._known(), id="versions", classes="dialog-hint")
            yield Checkbox(
                "build it from this checkout when there is no image (--build)",
                False,
                id="build",
                compact=True,
            )
            yield Label("Strategy")
            with RadioSet(id="strategy"):
                yield RadioButton(
                    "blue-green: start the idle colour, verify, switch nginx",
                    value=True,
                    id="blue-green",
                )
                yield RadioButton(
                    "rolling: start the new beside the serving one, switch, replace",
                    id="rolling",
                )
            with Horizontal(classes="form-row"):
                yield Label("Backup before migrating")
                yield Select(
                    [(choice, choice) for choice in _BACKUP],
                    value="auto",
                    allow_blank=False,
                    id="backup",
                    compact=True,
                )
                yield Label("Bake s")
                yield Input(placeholder="30", id="bake-seconds", compact=True, type="number")
            yield Static("", id="form-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Deploy…", variant="primary", id="submit", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _known(self) -> str:
        if not self.versions:
            return "no version has an image or a git tag yet: type one and tick build"
        shown = self.versions[-6:]
        more = (
            f" (+{len(self.versions) - len(shown)} older)"
            if len(self.versions) > len(shown)
            else ""
        )
        return f"available: {', '.join(reversed(shown))}{more}"

    def on_mount(self) -> None:
        self.query_one("#version", Input).focus()

    @property
    def strategy(self) -> Strategy:
        pressed = self.query_one("#strategy", RadioSet).pressed_button
        return "rolling" if pressed is not None and pressed.id == "rolling" else "blue-green"

    def _show_error(self, reason: str | None, where: str = "#version-error") -> None:
        error = self.query_one(where, Static)
        error.update(reason or "")
        error.set_class(bool(reason), "-visible")

    @on(Input.Changed, "#version")
    def _changed(self, event: Input.Changed) -> None:
        # Say nothing while the field is empty; complain once something is typed.
        value = event.value.strip()
        self._show_error(check_version(value) if value else None)

    def values(self) -> dict[str, object]:
        """The form as the deploy's raw parameters (an empty bake: the default)."""
        out: dict[str, object] = {
            "version": self.query_one("#version", Input).value.strip(),
            "strategy": self.strategy,
            "build": self.query_one("#build", Checkbox).value,
            "backup": self.query_one("#backup", Select).value,
        }
        bake = self.query_one("#bake-seconds", Input).value.strip()
        if bake:
            out["bake_seconds"] = bake
        return out

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def submit(self) -> None:
        values = self.values()
        reason = check_version(str(values["version"]))
        if reason is not None:
            self._show_error(reason)
            self.query_one("#version", Input).focus()
            return
        try:
            params = parse_params(OPERATIONS["deploy"], values)
        except BadInput as exc:
            self._show_error(
                str(exc), "#version-error" if exc.field == "version" else "#form-error"
            )
            return
        assert isinstance(params, DeployParams)
        self.dismiss(params)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


_BACKUP = ("auto", "always", "never")
