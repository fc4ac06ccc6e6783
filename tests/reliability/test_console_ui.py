"""The real Textual app against the real stack: terminal sizes, resize storms,
the deploy form's bad input, and read-only mode that no key, palette entry or
form can escape.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial

import pytest
import redis

from console.core.ops.table import (
    OPERATIONS,
    CacheFlushParams,
    DeployParams,
    RollbackParams,
    VacuumParams,
)
from console.ui.commands import dashboard_commands
from tests.conftest import Stack
from tests.reliability._cli import audit_lines, fingerprint
from tests.reliability._harness import (
    Figure,
    NotReached,
    app_wait,
    console_settings,
    record,
    screen_text,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


def _app(stack: Stack, **overrides):
    from console.ui.app import create_app

    return create_app(console_settings(stack, **overrides))


STORM_BURSTS = 12
STORM_BURST = 10


def _post_resize(app, width: int, height: int) -> None:
    """What Pilot.resize_terminal does, without waiting for the app to settle."""
    from textual.drivers.headless_driver import HeadlessDriver
    from textual.events import Resize
    from textual.geometry import Size

    size = Size(width, height)
    if isinstance(app._driver, HeadlessDriver):
        app._driver._size = size
    app.post_message(Resize(size, size))


def _filled(app) -> bool:
    return (
        app.dashboard.containers is not None
        and len(app.dashboard.containers.containers) >= 6
        and app.dashboard.health is not None
    )


def _form_answered(app, reason) -> bool:
    """The deploy form has handled its submit: another screen is up (accepted),
    or the form's reason is filled and on screen (refused)."""
    if type(app.screen).__name__ != "DeployScreen":
        return True
    text = screen_text(app).lower()
    return bool(str(reason.content)) and ("malformed" in text or "required" in text)


def _refusals(app) -> set[str]:
    """The identities of the notifications that say the console is read-only."""
    return {n.identity for n in app._notifications if "read-only" in str(n.message)}


async def _answered(pilot, app, seen: set[str], acted: Callable[[], object], what: str) -> None:
    """Wait (bounded) until the app has answered the last input: by a read-only
    notification it had not shown before (``seen``: :func:`_refusals` before
    the input), or by ``acted()``. The refusal proves the input was handled,
    so the caller's "nothing opened / nothing started" is a fact and not a
    guess after a fixed delay."""
    await app_wait(
        pilot,
        lambda: acted() or bool(_refusals(app) - seen),
        within=10,
        what=what,
    )


async def test_terminal_sizes_and_resize_storm(stack: Stack) -> None:
    """Started at 40×15 it says it is too small (the whole message readable);
    at 80×24 it shows the real stack in tabs; 120 resizes later it still
    refreshes and answers keys."""
    problems: list[str] = []
    sizes = [
        (40, 15),
        (80, 24),
        (200, 60),
        (120, 32),
        (59, 19),
        (60, 20),
        (160, 48),
        (119, 31),
        (30, 8),
        (81, 25),
    ]
    rng = random.Random(5)
    app = _app(stack)
    async with app.run_test(size=(40, 15)) as pilot:
        await pilot.pause(0.5)
        text = screen_text(app)
        if "too small" not in text:
            problems.append(f"40×15: no 'too small' message:\n{text}")
        elif "40×15" not in text and "40x15" not in text:
            problems.append(
                f"40×15: the too-small message is cut off (no '40×15' on screen):\n{text}"
            )
        # 80×24: the dashboard, in tabs, every panel reachable
        await pilot.resize_terminal(80, 24)
        await app_wait(pilot, lambda: _filled(app), within=40, what="containers and health arrive")
        text = screen_text(app)
        rows = text.splitlines()
        assert len(rows) == 24 and all(len(r) <= 80 for r in rows)
        assert "too small" not in text
        assert stack.name in text, "header does not name the stack"
        for key in "12345678":
            await pilot.press(key)
            await pilot.pause(0.1)
            assert len(screen_text(app).splitlines()) == 24
        # the storm: bursts of resize events faster than the app can lay out
        # (what a window being dragged sends), each burst ended by Pilot's resize
        t0 = time.monotonic()
        for _burst in range(STORM_BURSTS):
            for _ in range(STORM_BURST - 1):
                _post_resize(app, *rng.choice(sizes))
            await pilot.resize_terminal(*rng.choice(sizes))
        storm_s = time.monotonic() - t0
        await pilot.resize_terminal(100, 30)
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "too small" not in text
        assert len(text.splitlines()) == 30
        seen = app.dashboard.containers.taken_at
        await app_wait(
            pilot,
            lambda: app.dashboard.containers.taken_at > seen,
            within=20,
            what="snapshots after the storm",
        )
        await pilot.press("question_mark")
        await app_wait(
            pilot, lambda: type(app.screen).__name__ == "HelpScreen", within=5, what="help opens"
        )
        await pilot.press("escape")
        await pilot.resize_terminal(40, 15)
        await pilot.pause(0.2)
        assert "too small" in screen_text(app)
        assert app.return_code is None
    record(
        Figure(
            fault="terminal 80×24, 40×15, resize storm (120 resizes in bursts)",
            operator_saw="tabs at 80×24; too-small screen below 60×20",
            notes=f"storm {storm_s:.1f} s; console kept refreshing; "
            + ("; ".join(p.splitlines()[0] for p in problems) or "ok"),
            extra={"passed": not problems},
        )
    )
    assert not problems, "\n".join(problems)


BAD_VERSIONS = ["1.2.3", "v1..2", "v1.2.3;reboot", "v１.２", "v1\x1b[2Jx", " "]
"""The CLI tests try many more; the form uses the engine's own rule."""


async def test_forms_refuse_bad_input(stack: Stack) -> None:
    from textual.widgets import Button, Input, RadioButton, Static

    before = fingerprint(stack)
    accepted = []
    app = _app(stack)
    async with app.run_test(size=(120, 32)) as pilot:
        await app_wait(pilot, lambda: _filled(app), within=40)
        for value in BAD_VERSIONS:
            await pilot.press("d")
            await app_wait(
                pilot,
                lambda: type(app.screen).__name__ == "DeployScreen",
                within=5,
                what="deploy form",
            )
            field = app.screen.query_one("#version", Input)
            reason = app.screen.query_one("#version-error", Static)
            # set without Input.Changed, so the form's reason stays empty and
            # only the submit can fill it: a reason on screen (or another
            # screen) is what proves the enter was handled
            with field.prevent(Input.Changed):
                field.value = value
            assert not str(reason.content), reason.content
            await pilot.press("enter")
            try:
                await app_wait(
                    pilot,
                    partial(_form_answered, app, reason),
                    within=10,
                    what=f"the form answers {value!r}",
                )
            except NotReached:
                pass  # refused in silence: said below
            if type(app.screen).__name__ != "DeployScreen":
                accepted.append(value)
            else:
                text = screen_text(app).lower()
                if "malformed" not in text and "required" not in text:
                    accepted.append(f"{value!r}: refused without saying why")
            while len(app.screen_stack) > 1:
                await pilot.press("escape")
                await pilot.pause(0.1)
        # FLUSHDB's typed confirmation with the wrong name (and an escape sequence)
        r = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
        r.set("reliability:canary", "1", ex=600)
        await pilot.press("f")
        await app_wait(pilot, lambda: type(app.screen).__name__ == "FlushScreen", within=5)
        app.screen.query_one("#scope-all", RadioButton).value = True
        app.screen.query_one("#continue", Button).press()
        await app_wait(pilot, lambda: type(app.screen).__name__ == "TypedConfirmScreen", within=5)
        app.screen.query_one("#typed", Input).value = "not-the-name\x1b[2J"
        await pilot.press("enter")
        await pilot.pause(0.3)
        if type(app.screen).__name__ != "TypedConfirmScreen" or app.dashboard.op_running:
            accepted.append("FLUSHDB with a wrong typed name")
        while len(app.screen_stack) > 1:
            await pilot.press("escape")
            await pilot.pause(0.1)
        flushed = not r.exists("reliability:canary")
        r.delete("reliability:canary")
        # well-formed but unknown: the form lets it through, the engine refuses it
        n_audit = len(audit_lines(stack))
        await pilot.press("d")
        await app_wait(pilot, lambda: type(app.screen).__name__ == "DeployScreen", within=5)
        app.screen.query_one("#version", Input).value = "v95.0.0"
        await pilot.press("enter")
        await app_wait(
            pilot,
            lambda: type(app.screen).__name__ == "ConfirmScreen",
            within=5,
            what="confirmation",
        )
        await pilot.press("y")
        await app_wait(
            pilot,
            lambda: app.dashboard.op_running is None and "v95.0.0" in screen_text(app),
            within=60,
            what="the operation ends and says why",
        )
        text = screen_text(app).lower()
    assert not accepted, f"the forms accepted: {accepted!r}"
    assert not flushed, "FLUSHDB ran without the typed confirmation"
    assert "unknown version" in text or "no image" in text, text[-800:]
    assert fingerprint(stack) == before
    refusals = [a for a in audit_lines(stack)[n_audit:] if a.get("op") == "deploy"]
    assert refusals and refusals[-1].get("result") == "bad-input", refusals


WRITE_SCREENS = ("DeployScreen", "ConfirmScreen", "FlushScreen", "TypedConfirmScreen")


async def test_read_only_cannot_be_escaped_from_the_ui(stack: Stack) -> None:
    before = fingerprint(stack)
    n_audit = len(audit_lines(stack))
    app = _app(stack, read_only=True)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await app_wait(pilot, lambda: _filled(app), within=40)
        dashboard = app.screen
        # every write key: nothing opens, a notification says why
        for key in "dbvfer":
            seen = _refusals(app)
            await pilot.press(key)
            await _answered(
                pilot, app, seen, lambda: app.screen is not dashboard, f"key {key!r} answered"
            )
            assert app.screen is dashboard, (
                f"key {key!r} opened {type(app.screen).__name__} in read-only mode"
            )
        notes = " ".join(str(n.message) for n in app._notifications)
        assert "read-only" in notes, notes
        # the command palette: one real round trip through its UI ...
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"deploy")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.5)
        opened = type(app.screen).__name__
        while app.screen is not dashboard:
            await pilot.press("escape")
            await pilot.pause(0.1)
        assert opened not in WRITE_SCREENS, f"palette 'deploy' opened {opened} in read-only mode"
        # ... and every write entry it lists, run as the palette runs them
        commands = [c for c in dashboard_commands(app.dashboard) if "disabled" in c.help]
        assert len(commands) == sum(s.writes for s in OPERATIONS.values()), [
            c.title for c in commands
        ]
        for command in commands:
            seen = _refusals(app)
            command.callback()
            await _answered(
                pilot,
                app,
                seen,
                lambda: app.screen is not dashboard,
                f"palette {command.title!r} answered",
            )
            assert app.screen is dashboard, (
                f"palette {command.title!r} opened {type(app.screen).__name__}"
            )
        # a write started the way the confirmation screens start one
        for action, params in (
            ("deploy", DeployParams(version="v1.0.0", strategy="blue-green")),
            ("vacuum", VacuumParams()),
            ("cache-flush", CacheFlushParams(prefix="cache:")),
            ("rollback", RollbackParams()),
        ):
            seen = _refusals(app)
            app.start_operation(action, params)
            await _answered(
                pilot, app, seen, lambda: app.dashboard.op_running is not None, f"{action} answered"
            )
            assert app.dashboard.op_running is None, f"{action} started in read-only mode"
        # and the engine itself refuses, should a UI path ever forget to check
        app._run_operation("cache-flush", CacheFlushParams(prefix="cache:"))
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
    assert fingerprint(stack) == before
    new = audit_lines(stack)[n_audit:]
    assert all(a.get("result") in ("read-only", None) or a.get("event") != "end" for a in new), new
    assert any(a.get("result") == "read-only" and a.get("read_only") is True for a in new), (
        "the engine did not record the read-only refusal"
    )
