"""Cancelling a running VACUUM on the real stack, the way the console's
cancel key does (``console.core.ops.engine.cancel_op``: audit, then cancel
the task that iterates ``run_op``, as SIGHUP and quitting do).

The VACUUM is made to last: a table of dead rows, and a cost-based delay
(``vacuum_cost_delay``) for the operations' database role in this database,
so the server sleeps between pages while it scans the heap, a real phase of
``pg_stat_progress_vacuum`` that the operation reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import asyncpg
import pytest

from console.core.models import OpEvent, VacuumProgress
from console.core.ops.lock import lock_state

pytestmark = pytest.mark.stack

TABLE = "sd_vacuum_cancel_test"
PG_VACUUM_PHASES = {
    "initializing",
    "scanning heap",
    "vacuuming indexes",
    "vacuuming heap",
    "cleaning up indexes",
    "truncating heap",
    "performing final cleanup",
}


async def _until(predicate: Any, what: str, seconds: float = 60.0) -> Any:
    """Poll ``predicate()`` (async) every 0.1 s until it is truthy; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"not within {seconds:g} s: {what}")
        await asyncio.sleep(0.1)


def test_a_running_vacuum_reports_its_phase_and_the_cancel_stops_it_on_the_server(
    stack: Any,
) -> None:
    async def scenario() -> None:
        from console.core.ops import run_op
        from console.core.ops.engine import cancel_op

        ctx = stack.op_context()
        admin = await asyncpg.connect(stack.pg_dsn)
        role, db = ctx.db_user, ctx.db_name
        try:
            await admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await admin.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, pad text)")
            await admin.execute(
                f"INSERT INTO {TABLE} SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g"
            )
            await admin.execute(f"DELETE FROM {TABLE} WHERE id % 2 = 0")
            await admin.execute(
                f'ALTER ROLE "{role}" IN DATABASE "{db}" SET vacuum_cost_delay = 50'
            )
            await admin.execute(f'ALTER ROLE "{role}" IN DATABASE "{db}" SET vacuum_cost_limit = 1')
            last_vacuum_before = await admin.fetchval(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1", TABLE
            )

            events: list[OpEvent] = []

            async def consume() -> None:
                async for event in run_op("vacuum", ctx, tables=[TABLE]):
                    events.append(event)

            task = asyncio.create_task(consume())

            async def scanning() -> VacuumProgress | None:
                if task.done():
                    pytest.fail(f"the VACUUM ended before it was cancelled: {_said(events)}")
                for event in events:
                    sample = event.data.get("progress")
                    if event.step == "progress" and isinstance(sample, dict):
                        progress = VacuumProgress.model_validate(sample)
                        if progress.phase in PG_VACUUM_PHASES and progress.heap_blks_total > 0:
                            return progress
                return None

            progress = await _until(
                scanning, "a progress event with a pg_stat_progress_vacuum phase"
            )
            assert progress.relation and TABLE in progress.relation
            begin = next(e for e in events if e.step == "begin")
            start = next(e for e in events if e.step == "vacuum" and e.status == "start")
            op_id, pid = begin.data["op_id"], start.data["pid"]
            assert isinstance(pid, int)
            running = await admin.fetchrow(
                "SELECT query, state FROM pg_stat_activity WHERE pid = $1", pid
            )
            assert running is not None and running["query"].upper().startswith("VACUUM"), running
            assert lock_state(ctx.lock_path).held, "the VACUUM runs without the deploy lock"

            async def stop() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            warning = await cancel_op(
                ctx, op="vacuum", op_id=op_id, via="key c", stop=stop, session_pid=pid
            )
            assert warning is None
            assert task.cancelled(), "the operation did not end as cancelled"

            async def session_gone() -> bool:
                row = await admin.fetchrow("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid)
                return row is None

            await _until(session_gone, f"VACUUM session {pid} gone from pg_stat_activity", 15)
            state = lock_state(ctx.lock_path)
            assert not state.held and not state.stale, state.as_dict()
            after = await admin.fetchval(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = $1", TABLE
            )
            assert after == last_vacuum_before, "the VACUUM finished instead of being cancelled"

            lines = [
                json.loads(line)
                for line in ctx.audit_path.read_text(encoding="utf-8").splitlines()
                if op_id in line
            ]
            assert [(r["event"], r.get("result")) for r in lines] == [
                ("start", None),
                ("cancel", None),
                ("end", "cancelled"),
            ], lines
            cancel = lines[1]
            assert cancel["user"] == ctx.operator.user and cancel["pid"] == ctx.operator.pid
            assert cancel["params"] == {"via": "key c", "session_pid": pid}
            assert "cancel requested by" in cancel["message"]
        finally:
            await admin.execute(f'ALTER ROLE "{role}" IN DATABASE "{db}" RESET vacuum_cost_delay')
            await admin.execute(f'ALTER ROLE "{role}" IN DATABASE "{db}" RESET vacuum_cost_limit')
            await admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await admin.close()

    asyncio.run(scenario())


def _said(events: list[OpEvent]) -> str:
    return "; ".join(f"{e.step}:{e.status} {e.message}" for e in events)
