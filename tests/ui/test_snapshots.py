"""SVG snapshots of the console at 80x24 and 160x48, from recorded fixtures.

Regenerate on purpose with ``python3 -m pytest tests/ui --snapshot-update``,
then look at the SVGs under ``__snapshots__/`` before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .fakes import FakeOps, FakeVacuum, make_app

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
SCENARIOS = ["normal", "alert", "stale", "empty", "standby"]


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_dashboard(snap_compare: Any, scenario: str, size: str) -> None:
    assert snap_compare(make_app(scenario), terminal_size=SIZES[size], run_before=settle)


def test_stale_panel_tab_at_80x24(snap_compare: Any) -> None:
    """The stale marker of the slow-queries panel when it is the tab shown."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("4")
        await pilot.pause()

    assert snap_compare(make_app("stale"), terminal_size=(80, 24), run_before=run_before)


def test_health_tab_with_the_page_row_80x24(snap_compare: Any) -> None:
    """The Health panel at 80 columns: the API's endpoints and the page's row
    (the web frontend's /version.json), frontend_green stopped on standby."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(make_app("standby"), terminal_size=(80, 24), run_before=run_before)


def test_cost_tab_recorded_days_80x24(snap_compare: Any) -> None:
    """The cost chart draws the recorded days only (issue 16): from the 9th,
    partial and dim, with the 12th a gap; none of the platform's 14 modelled days."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("6")
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(80, 24), run_before=run_before)


def test_help_screen_80x24(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(80, 24), run_before=run_before)


def test_deploy_in_progress_160x48(snap_compare: Any) -> None:
    """Form filled, confirmed, first steps in the operations log, write keys greyed."""
    ops = FakeOps()

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("d", *"v1.2.4", "enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        await pilot.pause()

    app = make_app("normal", ops=ops)
    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)
    ops.release.set()


@pytest.mark.parametrize("size", list(SIZES))
def test_vacuum_in_progress_with_its_cancel_key(snap_compare: Any, size: str) -> None:
    """A VACUUM in progress (recorded progress of a real one): the live line
    with its phase, blocks and the cancel key, which is in the footer; at
    80x24 on the Operations tab."""
    ops = FakeVacuum()

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        if size == "80x24":
            await pilot.press("8")  # the Operations tab, where a VACUUM is watched
            await pilot.pause()
        await pilot.press("v")
        await pilot.pause()
        await pilot.press("y")
        for _ in range(250):  # the recorded events replayed, the footer refreshed
            if ops.replayed.is_set() and "c" in pilot.app.screen.active_bindings:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(
        make_app("normal", ops=ops), terminal_size=SIZES[size], run_before=run_before
    )


def test_deploy_form_error_80x24(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("d", *"1.2", "enter")
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(80, 24), run_before=run_before)


def test_too_small_40x15(snap_compare: Any) -> None:
    assert snap_compare(make_app("normal"), terminal_size=(40, 15), run_before=settle)


def test_operation_form_error_80x24(snap_compare: Any) -> None:
    """An operation without a key, from the palette: its form, built from its
    parameter model, refusing an empty required field."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.dashboard.action_op("restore")
        await pilot.pause()
        pilot.app.screen.submit()
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(80, 24), run_before=run_before)


def test_operation_form_160x48(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        pilot.app.dashboard.action_op("verify")
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(160, 48), run_before=run_before)


def test_deploy_form_with_build_160x48(snap_compare: Any) -> None:
    """A version with no image yet: typed, build ticked, a backup and a bake window chosen."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("d", *"v1.4.0")
        await pilot.pause()
        form = pilot.app.screen
        form.query_one("#build").value = True
        form.query_one("#backup").value = "always"
        form.query_one("#bake-seconds").value = "10"
        await pilot.pause()

    assert snap_compare(make_app("normal"), terminal_size=(160, 48), run_before=run_before)
