"""Kill the console (a ``stackdeck`` process, SIGKILL to its process group:
what a dropped SSH session or a power cut of the operator's side does) in the
middle of a deploy and of a VACUUM, then start it again.

What must hold: traffic is never half-switched (every answer comes from the
one colour nginx's active.conf names, nginx's config stays valid), the lock
and the interrupted operation are explained by ``stackdeck status``, a new
operation is refused with the dead holder named until the lock is broken
explicitly, and the next rollback / VACUUM recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.load import HEALTH, LoadLoop
from tests.reliability._cli import (
    assert_dead_deploy_explained_then_recovered,
    assert_one_colour_served,
    popen_stackdeck,
    stackdeck,
)
from tests.reliability._harness import (
    NotReached,
    figure,
    hold_table,
    last_vacuum,
    pg_query,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def _kill_group(proc) -> None:
    """SIGKILL the process group of a stackdeck we started (and only that)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


async def test_kill_console_during_deploy(stack: Stack, tmp_path: Path) -> None:
    stack.reload_env()
    before_colour = stack.env.get("ACTIVE_COLOUR", "blue")
    version = "v1.0.1"
    log = tmp_path / "deploy.jsonl"
    load = LoadLoop(stack.base_url, HEALTH, max_requests=6000, max_seconds=400)
    with figure("kill the console during a blue-green deploy (bake window)") as fig:
        await asyncio.to_thread(load.start)
        proc = popen_stackdeck(
            stack,
            "--json",
            "deploy",
            "--version",
            version,
            "--build",
            "--force",
            "--bake-seconds",
            "60",
            log=log,
        )
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: (
                    any(e.get("step") == "bake" for e in _events(log)) or proc.poll() is not None
                ),
                timeout=400,
                what="deploy reaches its bake window",
            )
            assert proc.poll() is None, (
                f"deploy ended before the bake window: {log.read_text()[-1500:]}"
            )
            await asyncio.sleep(2)
            t_kill = time.monotonic()
            _kill_group(proc)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        # --- right after the kill: one colour, valid config, still serving
        serving = assert_one_colour_served(stack, load, t_kill)
        # --- the restarted console explains, refuses, recovers
        recover_s = assert_dead_deploy_explained_then_recovered(
            stack, pid=proc.pid, version=version, before_colour=before_colour
        )
        await asyncio.sleep(2)
        result = await asyncio.to_thread(load.stop)
        last = result.colours(since=time.monotonic() - 1.5)
        assert set(last) == {before_colour}, last
        fig.operator_saw = (
            f"killed in bake with nginx on {serving}; status: stale lock (deploy, pid {proc.pid} gone), "
            f"deploy interrupted at bake; new deploy refused exit 3; lock break + rollback -> {before_colour}"
        )
        fig.recover_s = round(recover_s, 1)
        fig.load(result)
        fig.extra = {"colours": result.colours()}
        # two reloads: the deploy's switch, the rollback's switch back
        result.assert_clean(reloads=2)


def _vacuum_sessions_sync(dsn: str, table: str) -> list[dict[str, Any]]:
    rows = pg_query(
        dsn,
        "SELECT pid, state, wait_event_type, query FROM pg_stat_activity "
        "WHERE query ILIKE 'vacuum%' AND query ILIKE $1 AND pid <> pg_backend_pid()",
        f"%{table}%",
    )
    return [dict(r) for r in rows]


async def _vacuum_sessions(dsn: str, table: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(_vacuum_sessions_sync, dsn, table)


async def test_kill_console_during_vacuum(stack: Stack, tmp_path: Path) -> None:
    table = "reliability_acks"
    log = tmp_path / "vacuum.jsonl"
    with figure("kill the console during VACUUM") as fig:
        # hold the table so the VACUUM is caught in the middle, deterministically
        blocker, tx, before = await hold_table(stack.pg_dsn, table)
        try:
            proc = popen_stackdeck(stack, "--json", "vacuum", table, log=log)
            try:
                await asyncio.to_thread(
                    wait_until,
                    lambda: (
                        bool(_vacuum_sessions_sync(stack.pg_dsn, table)) or proc.poll() is not None
                    ),
                    timeout=120,
                    what="VACUUM running on the server",
                )
                assert proc.poll() is None, log.read_text()[-1500:]
                t_kill = time.monotonic()
                _kill_group(proc)
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
            # the server must not keep an orphaned VACUUM queued behind the lock:
            # gone by itself (lock_timeout, client check) or at the latest when
            # the operator breaks the dead holder's lock; our lock is still held,
            # so it cannot simply finish
            orphan_s = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not await _vacuum_sessions(stack.pg_dsn, table):
                    orphan_s = time.monotonic() - t_kill
                    break
                await asyncio.sleep(0.5)
            status = json.loads(stackdeck(stack, "status", "--json").stdout)
            assert status["lock"]["stale"] is True and status["lock"]["holder"]["op"] == "vacuum", (
                status["lock"]
            )
            refused = stackdeck(stack, "vacuum", table)
            said = (refused.stdout + refused.stderr).lower()
            assert refused.returncode == 3 and "stale" in said and "vacuum" in said, said
            broke = stackdeck(stack, "lock", "break")
            assert broke.returncode == 0, broke.stdout + broke.stderr
            # wait for the server to be rid of it (bounded) rather than look
            # once after a fixed delay; a session that stays fails below
            with contextlib.suppress(NotReached):
                await asyncio.to_thread(
                    wait_until,
                    lambda: not _vacuum_sessions_sync(stack.pg_dsn, table),
                    timeout=10,
                    what="no VACUUM session of the dead console after `lock break`",
                )
            orphans = await _vacuum_sessions(stack.pg_dsn, table)
            await tx.rollback()
        finally:
            await blocker.close()
        t0 = time.monotonic()
        again = stackdeck(stack, "vacuum", table, timeout=300)
        recover_s = time.monotonic() - t0
        assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-500:]
        after = await asyncio.to_thread(last_vacuum, stack.pg_dsn, table)
        assert after is not None and (before is None or after > before)
        fig.operator_saw = (
            f"status: stale lock (vacuum, pid {proc.pid} gone); new vacuum refused exit 3; "
            + (
                f"orphaned server-side VACUUM gone after {orphan_s:.1f} s"
                if orphan_s is not None
                else f"orphaned server-side VACUUM still queued 20 s later and {len(orphans)} after lock break"
            )
        )
        fig.recover_s = round(recover_s, 1)
        assert not orphans, (
            f"{len(orphans)} VACUUM session(s) of the dead console still on the server after `lock break`: {orphans}"
        )
