"""Carrying out the recovery plan of an interrupted deploy or rollback.

Run at the start of every deploy and rollback (under the deploy lock), so
an interruption is always repaired before anything new happens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from console.core.ops.audit import record_history
from console.core.ops.backend import (
    observe,
    remove_surge,
    restore_slot,
    set_active,
    start_colour,
    start_existing,
    stop_colour,
    switch_traffic,
    wait_healthy,
)
from console.core.ops.backup import recover_restore
from console.core.ops.context import SURGE, OpContext, backend_service
from console.core.ops.errors import OpError, OpFailed
from console.core.ops.frontend import recover_frontend
from console.core.ops.journal import Journal, Recovery, plan_recovery
from console.core.ops.progress import Progress
from console.core.ops.replicas import remove_colour_replicas
from console.core.ops.rolling_pool import undo_rolling_pool

__all__ = ["recover"]


async def recover(ctx: OpContext, progress: Progress, *, op_id: str | None = None) -> Recovery:
    """Repair an interrupted deploy/rollback, if the journal shows one.

    Returns the :class:`Recovery` that was carried out (action ``none``
    when there was nothing to do).
    """
    journal = Journal.load(ctx.journal_path)
    view = await observe(ctx)
    plan = plan_recovery(journal, serving=view.serving, serving_slot=view.serving_slot)
    if plan.action == "none":
        return plan
    assert journal is not None
    if plan.action == "running":
        raise OpFailed(f"cannot recover: {plan.explanation}", step="recover")
    progress.warn("recover", plan.explanation, recovery=plan.as_dict())

    restore_state = journal.get("restore")
    if isinstance(restore_state, dict) and restore_state.get("phase") not in (None, "done"):
        await recover_restore(ctx, restore_state, progress)

    target = plan.traffic
    if plan.pool_back:
        notes: list[tuple[str, str]] = []
        try:
            await undo_rolling_pool(ctx, Journal(ctx.journal_path, dict(journal)), notes)
        finally:
            for status_, message in notes:
                progress.make("recover", status_, message)
    elif target in ("blue", "green"):
        cv = view.colours[target]
        version = cv.version or cv.slot_version
        if plan.start_version and plan.start_version != cv.version:
            # a rolling deploy stopped while it recreated the colour's own container
            await start_colour(ctx, target, plan.start_version)
            version = plan.start_version
            await progress.relay(
                wait_healthy(ctx, target, version, progress.emitter, step="recover")
            )
        elif plan.rewrite_nginx or cv.state != "running":
            if cv.state == "missing":
                if not cv.slot_version:
                    raise OpFailed(
                        f"cannot recover: {target} has no container and no version in deploy.env",
                        step="recover",
                    )
                await start_colour(ctx, target, cv.slot_version)
                version = cv.slot_version
            elif cv.state != "running":
                await start_existing(ctx, target)
            assert version is not None
            await progress.relay(
                wait_healthy(ctx, target, version, progress.emitter, step="recover")
            )
        if plan.rewrite_nginx:
            assert version is not None
            await switch_traffic(ctx, target, version)
            progress.ok("recover", f"traffic on {target} ({version})")
        else:
            set_active(ctx, target)
    if plan.remove_surge and await remove_surge(ctx, plan.remove_surge):
        progress.ok("recover", f"removed {backend_service(plan.remove_surge, SURGE)}")
    if plan.stop and view.colours[plan.stop].state in (
        "running",
        "restarting",
        "created",
        "paused",
    ):
        await stop_colour(ctx, plan.stop)
        progress.ok("recover", f"stopped {plan.stop} (kept)")
    if plan.stop:
        # a blue-green deploy of N killed after it started the new colour's replicas
        try:
            removed = await remove_colour_replicas(ctx, plan.stop)
        except OpError as exc:
            progress.warn("recover", f"{plan.stop}'s replicas were not removed: {exc}")
        else:
            if removed:
                progress.ok("recover", f"removed {plan.stop}'s replicas: {', '.join(removed)}")
    if plan.restore_slot:
        colour, version = plan.restore_slot
        if await restore_slot(ctx, colour, version):
            progress.ok(
                "recover", f"{colour}'s slot is back to {version} (stopped, ready for rollback)"
            )
        else:
            progress.warn(
                "recover", f"image of {version} is gone: {colour}'s slot keeps what it has"
            )

    await recover_frontend(ctx, dict(journal), plan.action, progress)

    now = datetime.now(UTC)
    data: dict[str, Any] = dict(journal)
    jr = Journal(ctx.journal_path, data)
    jr.finish("recovered", recovery=plan.as_dict(), recovered_by=op_id)
    try:
        started = datetime.fromisoformat(str(journal.get("started")))
        duration = (now - started).total_seconds()
    except ValueError:
        duration = None
    record_history(
        ctx.history_path,
        {
            "id": journal.get("id"),
            "op": journal.get("op"),
            "strategy": journal.get("strategy", "blue-green"),
            "version": journal.get("version"),
            "from_version": journal.get("from_version"),
            "colour": journal.get("to_colour"),
            "from_colour": journal.get("from_colour"),
            "image": journal.get("image"),
            "image_digest": journal.get("image_digest"),
            "schema_revision": journal.get("schema_revision"),
            "backup_id": journal.get("backup_id"),
            "user": journal.get("user"),
            "ssh_client": journal.get("ssh_client"),
            "started": journal.get("started"),
            "finished": now.isoformat(),
            "duration_s": None if duration is None else round(duration, 1),
            "result": "interrupted",
            "reason": f"interrupted at step {journal.get('step')}; recovered: {plan.action}",
            "recovered_by": op_id,
            "serving_after": plan.traffic,
            "frontend": journal.get("frontend"),
        },
    )
    progress.ok("recover", f"recovered ({plan.action}): traffic on {plan.traffic}")
    return plan
