"""``VACUUM (ANALYZE)`` per table or for the whole database (the runbook's
"Database Optimization").

Runs over its own connection outside any transaction block (asyncpg's simple
query protocol), while a second connection reads ``pg_stat_progress_vacuum``
about once a second (:data:`PROGRESS_POLL_S`) for ``progress`` events, each
carrying a :class:`~console.core.models.VacuumProgress` (phase, heap blocks
scanned of total, index passes; or the lock it waits for). The ``start``
event of each VACUUM names its session (``data["pid"]``). Cancelling the
operation (the TUI's cancel key, quitting, SIGHUP, Ctrl-C in the CLI) sends
``pg_cancel_backend`` to the vacuuming session, so nothing keeps running on
the server after the operator gave up.

Long transactions hold back the xmin horizon: VACUUM then cannot remove the
dead tuples they may still see, so it would run for nothing. They are
reported as a warning first (:func:`long_transactions`, which the TUI can
show before asking for confirmation).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from console.core.models import OpEvent, VacuumProgress
from console.core.ops.context import OpContext
from console.core.ops.db import connect_pg
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.table import TABLE_NAME_RE, VacuumParams

__all__ = [
    "PROGRESS_POLL_S",
    "long_transactions",
    "parse_progress",
    "resolve_tables",
    "run_vacuum",
    "validate_vacuum",
    "waiting_progress",
]

PROGRESS_POLL_S = 1.0
"""How often a running VACUUM's progress is read."""
WAIT_NOTE_EVERY_S = 5.0
"""A VACUUM blocked on a lock says so again this often."""


_LONG_TX_SQL = """
SELECT pid, usename, application_name, state,
       extract(epoch FROM now() - xact_start)::float AS age_s,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query
FROM pg_stat_activity
WHERE xact_start IS NOT NULL
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND now() - xact_start > make_interval(secs => $1)
ORDER BY xact_start
"""

_WAIT_SQL = """
SELECT wait_event_type, wait_event, pg_blocking_pids(pid) AS blockers
FROM pg_stat_activity WHERE pid = $1
"""

_PROGRESS_SQL = """
SELECT p.phase, p.heap_blks_total, p.heap_blks_scanned, p.heap_blks_vacuumed,
       p.index_vacuum_count, p.relid::regclass::text AS relation
FROM pg_stat_progress_vacuum p WHERE p.pid = $1
"""


def parse_progress(row: Mapping[str, Any]) -> VacuumProgress:
    """One ``pg_stat_progress_vacuum`` row (as :data:`_PROGRESS_SQL` reads it)
    as a model; missing or NULL counters read as 0."""

    def count(key: str) -> int:
        value = row.get(key)
        return int(value) if value is not None else 0

    return VacuumProgress(
        relation=row.get("relation") or None,
        phase=str(row.get("phase") or "initializing"),
        heap_blks_total=count("heap_blks_total"),
        heap_blks_scanned=count("heap_blks_scanned"),
        heap_blks_vacuumed=count("heap_blks_vacuumed"),
        index_vacuum_count=count("index_vacuum_count"),
    )


def waiting_progress(row: Mapping[str, Any], relation: str | None) -> VacuumProgress | None:
    """The waiting state from a ``pg_stat_activity`` row (:data:`_WAIT_SQL`),
    or None when the session is not waiting for a lock."""
    if row.get("wait_event_type") != "Lock":
        return None
    return VacuumProgress(
        relation=relation,
        phase=VacuumProgress.WAITING,
        waiting_on=row.get("wait_event") or None,
        blockers=tuple(int(p) for p in row.get("blockers") or ()),
    )


async def long_transactions(
    ctx: OpContext, older_than_s: float = 300, conn: Any = None
) -> list[dict[str, Any]]:
    """Transactions open longer than ``older_than_s`` (they make VACUUM useless)."""
    own = conn is None
    conn = conn or await connect_pg(ctx)
    try:
        rows = await conn.fetch(_LONG_TX_SQL, float(older_than_s))
        return [dict(r) for r in rows]
    finally:
        if own:
            await conn.close()


async def resolve_tables(conn: Any, names: list[str]) -> list[tuple[str, str]]:
    """``[(qualified quoted name, display name)]``; BadInput for unknown or
    ambiguous names."""
    out = []
    for name in names:
        if not TABLE_NAME_RE.fullmatch(name):
            shown = name.encode("unicode_escape").decode("ascii")[:80]
            raise BadInput(f"not a table name: '{shown}'", field="tables")
        rows = await conn.fetch(
            "SELECT format('%I.%I', schemaname, relname) AS q, schemaname || '.' || relname AS d "
            "FROM pg_stat_user_tables WHERE relname = $1 OR schemaname || '.' || relname = $1",
            name,
        )
        if not rows:
            raise BadInput(
                f"no table {name!r} in the database (pg_stat_user_tables)", field="tables"
            )
        if len(rows) > 1:
            raise BadInput(
                f"table name {name!r} is ambiguous: {', '.join(r['d'] for r in rows)}; qualify it",
                field="tables",
            )
        out.append((rows[0]["q"], rows[0]["d"]))
    return out


async def validate_vacuum(ctx: OpContext, params: VacuumParams) -> VacuumParams:
    """The names are checked by the model; here, that the tables exist."""
    if params.tables:
        conn = await connect_pg(ctx)
        try:
            await resolve_tables(conn, list(params.tables))
        finally:
            await conn.close()
    return params


async def _last_vacuum(conn: Any, display: str) -> Any:
    return await conn.fetchval(
        "SELECT last_vacuum FROM pg_stat_user_tables WHERE schemaname || '.' || relname = $1",
        display,
    )


async def run_vacuum(
    ctx: OpContext, params: VacuumParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("vacuum", ctx.redact)
    tables, long_tx_seconds = list(params.tables), params.long_tx_seconds
    work = await connect_pg(ctx)
    # If this process dies (killed console, lost SSH), the server notices within
    # seconds even while VACUUM waits on a lock, and ends the session.
    await work.execute("SET client_connection_check_interval = '2s'")
    mon = await connect_pg(ctx)
    try:
        for tx in await long_transactions(ctx, long_tx_seconds, conn=mon):
            yield ev.warn(
                "check",
                f"transaction open for {tx['age_s'] / 60:.0f} min (pid {tx['pid']}, {tx['usename']}, {tx['state']}): "
                "VACUUM cannot remove tuples it may still see",
                pid=tx["pid"],
                age_s=round(tx["age_s"]),
            )
        targets: list[tuple[str | None, str]]
        if tables:
            targets = [(q, d) for q, d in await resolve_tables(mon, tables)]
        else:
            targets = [(None, f"every table of {ctx.db_name}")]
        pid = work.get_server_pid()
        for qualified, display in targets:
            before = await _last_vacuum(mon, display) if qualified else None
            sql = f"VACUUM (ANALYZE) {qualified}" if qualified else "VACUUM (ANALYZE)"
            t0 = time.monotonic()
            task = asyncio.ensure_future(work.execute(sql))
            last_progress: VacuumProgress | None = None
            waiting_noted = 0.0
            try:
                yield ev.start("vacuum", f"{sql} (session {pid})", table=display, pid=pid)
                while not task.done():
                    await asyncio.wait({task}, timeout=PROGRESS_POLL_S)
                    if task.done():
                        break
                    row = await mon.fetchrow(_PROGRESS_SQL, pid)
                    if row is None:
                        wait = await mon.fetchrow(_WAIT_SQL, pid)
                        waiting = waiting_progress(dict(wait), display) if wait else None
                        if (
                            waiting is not None
                            and time.monotonic() - waiting_noted > WAIT_NOTE_EVERY_S
                        ):
                            waiting_noted = time.monotonic()
                            last_progress = waiting
                            yield ev.warn(
                                "progress",
                                waiting.describe(),
                                blockers=list(waiting.blockers),
                                progress=waiting.model_dump(mode="json"),
                            )
                        continue
                    progress = parse_progress(dict(row))
                    if progress != last_progress:
                        last_progress = progress
                        yield ev.info(
                            "progress",
                            f"{progress.relation}: {progress.describe()}",
                            relation=progress.relation,
                            phase=progress.phase,
                            heap_blks_total=progress.heap_blks_total,
                            heap_blks_scanned=progress.heap_blks_scanned,
                            progress=progress.model_dump(mode="json"),
                        )
                await task
            except BaseException:
                # cancelled (or failed): the server must not go on vacuuming
                # for an operator who gave up
                if not task.done():
                    with contextlib.suppress(Exception):
                        await mon.execute("SELECT pg_cancel_backend($1)", pid)
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(task, 10)
                raise
            seconds = time.monotonic() - t0
            after = await _last_vacuum(mon, display) if qualified else None
            if qualified and after == before:
                raise OpFailed(
                    f"VACUUM of {display} returned but last_vacuum did not change", step="vacuum"
                )
            yield ev.ok(
                "vacuum",
                f"{display} vacuumed and analyzed in {seconds:.1f} s"
                + (f" (last_vacuum {after:%H:%M:%S})" if after else ""),
                table=display,
                seconds=round(seconds, 2),
                last_vacuum=after.isoformat() if after else None,
            )
    finally:
        with contextlib.suppress(Exception):
            await work.close(timeout=5)
        with contextlib.suppress(Exception):
            await mon.close(timeout=5)
    yield ev.done(f"VACUUM (ANALYZE) finished for {len(targets)} target(s)")
