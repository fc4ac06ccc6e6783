"""Another operator's deploy, seen from this console: the Operations panel,
the header's lock, the greyed write keys and their reason (issue 16, item 4).

Fed from the recorded fixtures ``other_operator.json`` (alice's ``stackdeck
deploy`` from a second terminal, the lock held, five journal steps) and
``other_operator_done.json`` (it ended, the lock free).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual.widgets._footer import FooterKey

from console.core.models import LockInfo, OpHolder, OtherOpsSnapshot
from console.core.ops.table import OPERATIONS
from console.ui.panels import OperationsPanel
from console.ui.screens.deploy import DeployScreen
from console.ui.widgets.header import HeaderBar, lock_reason, lock_summary

from .fakes import NOW, FakeMonitor, load_feed, make_app

BIG = (160, 48)
SMALL = (80, 24)
LOCKING = [
    name
    for name, spec in OPERATIONS.items()
    if spec.writes and spec.takes_lock and not spec.swarm_only  # node ops: greyed on compose
]
ALICE = OpHolder(user="alice", host="host2", pid=4242, ssh_client="10.0.0.5", via="cli")


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def notifications(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def footer_disabled(app: Any, key: str) -> bool:
    """Whether the footer draws ``key`` greyed (what the operator sees)."""
    (item,) = [k for k in app.screen.query(FooterKey) if k.key == key]
    return bool(item.has_class("-disabled"))


def header_text(app: Any) -> str:
    return str(app.query_one(HeaderBar).query_one(".left").render())


# --- the words --------------------------------------------------------------------


def test_holder_and_lock_words() -> None:
    assert ALICE.who == "alice@host2 (cli)"
    assert OpHolder(user="bob", host="web1").who == "bob@web1"  # an older record: no via
    assert OpHolder().who == "?@?"
    lock = LockInfo(op="deploy", op_id="x", holder=ALICE, started=NOW - timedelta(seconds=72))
    assert lock_summary(lock, NOW) == "lock: deploy by alice@host2 (cli) 1m12s"
    assert lock_reason(lock, NOW) == (
        "deploy in progress by alice@host2 (cli) since 14:00:59 from 10.0.0.5, pid 4242: "
        "wait for it to finish"
    )
    stale = lock.model_copy(update={"stale": True, "alive": False})
    assert lock_summary(stale, NOW) == (
        "lock: STALE deploy by alice@host2 (cli), pid 4242 gone: stackdeck lock show"
    )
    reason = lock_reason(stale, NOW)
    assert reason.startswith("stale deploy lock: deploy by alice@host2 (cli) since 14:00:59")
    assert "`stackdeck lock show`" in reason and "`stackdeck lock break`" in reason
    unknown = stale.model_copy(update={"alive": None})
    assert "pid 4242 no longer holds it" in lock_summary(unknown, NOW)


# --- the console ------------------------------------------------------------------


async def test_another_operators_deploy_greys_the_keys_until_the_lock_is_released() -> None:
    app = make_app("other_operator")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        dash = app.dashboard
        # the Operations panel: who, from where, its steps
        lines = app.query_one(OperationsPanel).lines
        assert any(
            "deploy ▶ begin" in line and "alice@host2 (cli)" in line and "pid 4242" in line
            for line in lines
        ), lines
        assert any("wait-healthy" in line and "alice@host2 (cli)" in line for line in lines)
        # the header: the lock and its holder, with its age
        assert "lock: deploy by alice@host2 (cli) 1m12s" in header_text(app)
        # the keys that take the lock are greyed (not hidden), with the reason on a press
        for name in LOCKING:
            assert dash.check_action("op", (name,)) is None, name
        assert dash.check_action("op", ("status",)) is True  # reading is not locked
        footer_keys = {k: b.enabled for k, b in app.screen.active_bindings.items()}
        assert footer_keys["d"] is False and footer_keys["l"] is True
        assert footer_disabled(app, "d") and not footer_disabled(app, "l")
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, DeployScreen)
        assert any(
            "deploy in progress by alice@host2 (cli) since 14:00:59" in m
            for m in notifications(app)
        ), notifications(app)

        # the lock released: the keys come back on their own, the end is logged
        monitor = FakeMonitor.instances[-1]
        for kind, payload in load_feed("other_operator_done"):
            monitor.push(kind, payload)
        await settle(pilot)
        for name in LOCKING:
            assert dash.check_action("op", (name,)) is True, name
        assert "lock:" not in header_text(app)
        footer_keys = {k: b.enabled for k, b in app.screen.active_bindings.items()}
        assert footer_keys["d"] is True
        assert not footer_disabled(app, "d")  # redrawn without a key pressed
        lines = app.query_one(OperationsPanel).lines
        assert any("deploy ✔ end" in line and "deployed v1.2.4" in line for line in lines)
        assert sum("deploy ▶ begin" in line for line in lines) == 1  # not twice
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DeployScreen)


async def test_a_stale_lock_says_how_to_clear_it() -> None:
    app = make_app("normal")
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot)
        lock = LockInfo(
            op="deploy", holder=ALICE, started=NOW - timedelta(minutes=5), stale=True, alive=False
        )
        app.dashboard.others = OtherOpsSnapshot(taken_at=NOW, lock=lock)
        await pilot.pause()
        assert "lock: STALE deploy by alice@host2 (cli), pid 4242 gone" in header_text(app)
        assert app.dashboard.check_action("op", ("deploy",)) is None
        await pilot.press("d")
        await pilot.pause()
        assert any("stackdeck lock break" in m for m in notifications(app))


# --- snapshots: another operator's deploy in progress -----------------------------


def test_another_operators_deploy_in_progress_160x48(snap_compare: Any) -> None:
    assert snap_compare(make_app("other_operator"), terminal_size=BIG, run_before=settle)


def test_another_operators_deploy_in_progress_80x24(snap_compare: Any) -> None:
    """At 80 columns one panel at a time: the Operations panel (8)."""

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("8")
        await pilot.pause()

    assert snap_compare(make_app("other_operator"), terminal_size=SMALL, run_before=run_before)
