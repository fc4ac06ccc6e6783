"""Schema migrations with Alembic inside a backend container (the runbook:
``docker exec <backend> python -m alembic upgrade head`` / ``current``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.errors import OpFailed
from console.core.ops.events import Emitter
from console.core.ops.proc import Result, docker_exec
from console.core.ops.progress import Progress, run_steps
from console.core.ops.table import MigrateParams

__all__ = ["MigrationStatus", "alembic", "migration_status", "parse_revisions", "run_migrate"]

_REV_LINE = re.compile(r"^([0-9A-Za-z_]+)(?:\s|$)")


def parse_revisions(text: str) -> set[str]:
    """Revision ids from ``alembic current`` / ``alembic heads`` output
    (``0003_add_x (head)``); log lines are ignored."""
    out = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("INFO", "WARN", "ERROR")):
            continue
        m = _REV_LINE.match(line)
        if m:
            out.add(m.group(1))
    return out


@dataclass(frozen=True)
class MigrationStatus:
    current: frozenset[str]
    heads: frozenset[str]

    @property
    def pending(self) -> bool:
        return self.current != self.heads

    def describe(self) -> str:
        cur = ",".join(sorted(self.current)) or "none"
        head = ",".join(sorted(self.heads)) or "none"
        return f"database at {cur}, code at {head}"


async def alembic(ctx: OpContext, container: str, *args: str, timeout_s: float = 300) -> Result:
    return await docker_exec(
        ctx,
        container,
        "python3",
        "-m",
        "alembic",
        *args,
        timeout_s=timeout_s,
        what=f"alembic {' '.join(args)}",
    )


async def migration_status(ctx: OpContext, container: str) -> MigrationStatus:
    """The code's heads from ``alembic heads`` in ``container`` (that
    version's migrations) and the database's revision from ``alembic_version``
    read with psql: one Python start-up instead of two (each costs seconds in
    a CPU-limited container)."""
    from console.core.ops.db import schema_revision

    heads = await alembic(ctx, container, "heads", timeout_s=120)
    revision = await schema_revision(ctx)
    if revision is None:
        current = parse_revisions((await alembic(ctx, container, "current", timeout_s=120)).stdout)
    else:
        current = set(revision.split(","))
    return MigrationStatus(frozenset(current), frozenset(parse_revisions(heads.stdout)))


async def upgrade(
    ctx: OpContext, container: str, progress: Progress, step: str = "migrate"
) -> None:
    """``alembic upgrade head`` in ``container``, checked afterwards."""
    before = await migration_status(ctx, container)
    if not before.pending:
        progress.ok(
            step, f"no pending migrations ({before.describe()})", current=sorted(before.current)
        )
        return
    progress.start(step, f"alembic upgrade head ({before.describe()})")
    await alembic(ctx, container, "upgrade", "head", timeout_s=1800)
    after = await migration_status(ctx, container)
    if after.pending:
        raise OpFailed(f"alembic upgrade head finished but {after.describe()}", step=step)
    progress.ok(
        step, f"migrated to {','.join(sorted(after.current))}", current=sorted(after.current)
    )


async def run_migrate(
    ctx: OpContext, params: MigrateParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    """Back up when something is pending (unless ``backup=False``), then
    upgrade to head in the serving colour's container."""
    from console.core.ops.backend import observe
    from console.core.ops.backup import take_backup

    async def body(progress: Progress) -> None:
        view = await observe(ctx)
        if view.serving is None:
            raise OpFailed("cannot tell which colour nginx serves (is nginx up?)", step="prepare")
        container = view.colours[view.serving].container
        status = await migration_status(ctx, container)
        progress.info("status", status.describe(), pending=status.pending)
        if not status.pending:
            progress.done("schema is up to date; nothing to do")
            return
        if params.backup:
            await take_backup(
                ctx, progress, reason="pre-migrate", serving_version=view.serving_version()
            )
        await upgrade(ctx, container, progress)
        progress.done("migrations applied")

    async for event in run_steps(Emitter("migrate", ctx.redact), body):
        yield event
