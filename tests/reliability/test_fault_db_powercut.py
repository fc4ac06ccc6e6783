"""Power-cut the database (``docker kill -s KILL``) while rows are being
written, single and batched, by several clients at once.

PostgreSQL must come back through crash recovery (WAL replay) on its own
volume, and every row whose COMMIT was acknowledged before the cut must be
there afterwards. The console marks the database source stale and recovers
by itself; the API says 503 while the database is gone and 200 after.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._harness import (
    AckedWriter,
    LoadLoop,
    MonitorWatch,
    console_settings,
    count_rows,
    docker,
    ensure_acks_table,
    figure,
    run_sync,
    running_and_healthy,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

WRITERS = 3
BATCH = 50


class BatchWriter:
    """Commits BATCH rows per transaction; remembers the tags of committed batches."""

    def __init__(self, dsn: str, max_seconds: float = 120) -> None:
        self.dsn = dsn
        self.tag = f"batch-{uuid.uuid4().hex[:10]}"
        self.committed = 0
        self.failures = 0
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        conn = None
        t_end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < t_end:
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.dsn, timeout=3, command_timeout=5)
                async with conn.transaction():
                    await conn.executemany(
                        "INSERT INTO reliability_acks (tag) VALUES ($1)", [(self.tag,)] * BATCH
                    )
                self.committed += 1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                self.failures += 1
                if conn is not None:
                    conn.terminate()
                conn = None
                await asyncio.sleep(0.2)
        if conn is not None:
            conn.terminate()

    def verify(self) -> tuple[int, int]:
        async def count() -> int:
            c = await asyncpg.connect(self.dsn, timeout=10)
            try:
                return int(
                    await c.fetchval(
                        "SELECT count(*) FROM reliability_acks WHERE tag = $1", self.tag
                    )
                )
            finally:
                await c.close()

        return self.committed * BATCH, run_sync(count)


def _api(stack: Stack, path: str) -> int | None:
    try:
        return httpx.get(stack.base_url + path, timeout=10).status_code
    except httpx.HTTPError:
        return None


async def test_db_power_cut_during_writes(stack: Stack) -> None:
    db = stack.container("db")
    wait_until(lambda: running_and_healthy(db), timeout=120, what="db healthy first")
    await ensure_acks_table(stack.pg_dsn)
    prices_before = await count_rows(stack.pg_dsn, "prices")
    with figure("power cut of the db (docker kill -s KILL) during writes") as fig:
        async with MonitorWatch(console_settings(stack)) as watch:
            await watch.wait(
                lambda: (s := watch.source_state("postgres")) is not None and s.ok, within=30
            )
            # Bounds above what the test's waits can use: with the default
            # 20 000 rows, unpaused writers reached their bound soon after the
            # db came back (a clean-clone run, 2026-12-01), and writes that had
            # stopped at the bound looked like writes that never resumed.
            writers = [
                AckedWriter(stack.pg_dsn, pause=0.0, max_rows=400_000, max_seconds=480)
                for _ in range(WRITERS)
            ]
            batch = BatchWriter(stack.pg_dsn)
            with LoadLoop(stack.base_url) as load:
                for w in writers:
                    w.__enter__()
                batch.start()
                try:
                    await watch.wait(
                        lambda: sum(w.acked_count for w in writers) > 300 and batch.committed > 5,
                        within=60,
                        what="writes flowing",
                    )
                    started = docker("inspect", "-f", "{{.State.StartedAt}}", db).stdout.strip()
                    t_cut = time.monotonic()
                    docker("kill", "-s", "KILL", db)
                    acked_at_cut = sum(w.acked_count for w in writers) + batch.committed * BATCH
                    bad = await watch.wait(
                        lambda: watch.failing_state_since("postgres", t_cut) is not None,
                        within=30,
                        what="console marks postgres stale",
                    )
                    status_down = await asyncio.to_thread(_api, stack, "/api/health/database")
                    assert status_down is not None and status_down >= 500, status_down
                    await asyncio.sleep(2)
                    docker("start", db)
                    t_start = time.monotonic()
                    acked_while_down = sum(w.acked_count for w in writers)
                    db_back_s = await watch.wait(
                        lambda: running_and_healthy(db),
                        within=120,
                        what="db healthy after crash recovery",
                    )
                    api_back_s = await watch.wait(
                        lambda: _api(stack, "/api/health") == 200, within=120, what="API 200 again"
                    )
                    await watch.wait(
                        lambda: watch.recovered_since("postgres", t_start) is not None,
                        within=60,
                        what="console postgres source recovers by itself",
                    )
                    console_s = time.monotonic() - t_start
                    await watch.wait(
                        lambda: sum(w.acked_count for w in writers) > acked_while_down + 50,
                        within=60,
                        what="writes resume after recovery",
                    )
                finally:
                    batch.stop()
                    for w in writers:
                        w.stop()
            result = load.result()
        logs = docker("logs", "--since", started, db, check=False).stdout
        logs += docker("logs", "--since", started, db, check=False).stderr
        recovered = any(
            m in logs
            for m in (
                "automatic recovery in progress",
                "redo done",
                "redo starts",
                "database system was interrupted",
            )
        )
        totals = [w.verify() for w in writers] + [batch.verify()]
        acked = sum(a for a, _ in totals)
        found = sum(min(a, f) for a, f in totals)
        prices_after = await count_rows(stack.pg_dsn, "prices")
        fig.operator_saw = (
            f"postgres source stale ({bad:.1f} s): '{watch.failing_state_since('postgres', t_cut).last_error}'; "
            f"/api/health/database {status_down}; crash recovery in db log: {recovered}"
        )
        fig.recover_s = round(db_back_s, 1)
        fig.load(result)
        fig.rows_acked = acked
        fig.rows_lost = acked - found
        fig.extra = {
            "api_back_s": round(api_back_s, 1),
            "console_back_s": round(console_s, 1),
            "acked_at_cut": acked_at_cut,
            "outcomes": result.outcomes(),
            "prices": [prices_before, prices_after],
        }
        assert recovered, "no sign of crash recovery in the db log: was it really killed mid-write?"
        assert found == acked, f"{acked - found} acknowledged rows lost in the power cut"
        assert prices_after >= prices_before
        assert not result.timeouts, f"{len(result.timeouts)} requests hung"
