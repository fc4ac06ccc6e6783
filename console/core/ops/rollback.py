"""Rollback (the runbook's ``scripts/deployment/rollback.sh``).

* no version: back to the previous colour. A deploy leaves it running, out
  of the upstream (``keep_previous_colour``): its health is checked directly
  (``/direct/<colour>/api/health``), nginx is switched, and "traffic back
  on <colour>" is reported. When it is not running (stopped by the
  operator, or keep_previous_colour off) but its container exists, it is
  started and waited for first. Then the colour left is stopped (kept for a
  roll-forward).
* ``version``: that version. Instant when the idle colour holds it; else it
  is started in the idle colour from its image (like a deploy, no bake).
* ``restore_db``: after the switch, the database is restored from the
  backup taken before the deploy being rolled back (or ``backup_path``); the
  operator confirms by typing the database name.

Then the runbook's rollback verification: the version reported through nginx,
containers up, the schema version. The worker, when it followed the version
being rolled back, moves back last: traffic never waits for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from console.core.models import OpEvent
from console.core.ops.audit import read_jsonl, record_history
from console.core.ops.backend import (
    observe,
    restore_slot,
    start_colour,
    start_existing,
    stop_colour,
    switch_traffic,
    wait_healthy,
)
from console.core.ops.backup import (
    BackupInfo,
    find_backup,
    list_backups,
    resolve_backup,
    restore_database,
)
from console.core.ops.context import OpContext, other_colour
from console.core.ops.db import schema_revision
from console.core.ops.deploy import _journal_identity, _move_worker, bake
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.journal import Journal, Recovery
from console.core.ops.proc import image_info
from console.core.ops.recovery import recover
from console.core.ops.statefiles import read_deploy_env
from console.core.ops.versions import image_ref, validate_version

__all__ = ["backup_for_version", "run_rollback", "validate_rollback"]


def backup_for_version(ctx: OpContext, version: str | None) -> BackupInfo | None:
    """The backup taken before the (last successful) deploy of ``version``."""
    if not version:
        return None
    for rec in reversed(read_jsonl(ctx.history_path)):
        if rec.get("op") == "deploy" and rec.get("version") == version and rec.get("backup_id"):
            found = find_backup(ctx, str(rec["backup_id"]))
            if found:
                return found
    for b in reversed(list_backups(ctx)):
        if b.meta.get("reason") == f"pre-deploy {version}":
            return b
    return None


def _previous_version_from_history(ctx: OpContext, serving_version: str | None) -> str | None:
    for rec in reversed(read_jsonl(ctx.history_path)):
        if (
            rec.get("op") == "deploy"
            and rec.get("result") == "ok"
            and rec.get("version") == serving_version
        ):
            prev = rec.get("from_version")
            return str(prev) if prev else None
    return None


async def validate_rollback(ctx: OpContext, params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    version = params.get("version")
    if version not in (None, ""):
        version = validate_version(version)
        if await image_info(ctx, image_ref(ctx.image_repo, version)) is None:
            raise BadInput(
                f"unknown version {version}: no image {image_ref(ctx.image_repo, version)} to roll back to",
                field="version",
            )
        out["version"] = version
    else:
        out["version"] = None
    restore = bool(params.get("restore_db"))
    out["restore_db"] = restore
    backup_path = params.get("backup_path")
    if backup_path not in (None, "") and not restore:
        raise BadInput("--backup-path is only used with --restore-db", field="backup_path")
    if restore:
        if params.get("confirm") != ctx.db_name:
            raise BadInput(
                f"--restore-db replaces every row of {ctx.db_name} with the backup: type the database "
                f"name to confirm (--confirm {ctx.db_name})",
                field="confirm",
            )
        if backup_path not in (None, ""):
            out["backup_path"] = str(resolve_backup(ctx, backup_path, field="backup_path").path)
        else:
            view = await observe(ctx)
            serving_version = view.serving_version()
            found = backup_for_version(ctx, serving_version)
            if found is None:
                raise BadInput(
                    f"no backup was taken before the deploy of {serving_version}: name one with --backup-path "
                    f"(backups are in {ctx.backups_dir}; `stackdeck backup` lists how to take one)",
                    field="backup_path",
                )
            out["backup_path"] = str(found.path)
    out["verify_seconds"] = float(params.get("verify_seconds") or 3)
    return out


async def run_rollback(
    ctx: OpContext,
    *,
    op_id: str = "",
    version: str | None = None,
    restore_db: bool = False,
    backup_path: str | None = None,
    verify_seconds: float = 3,
    **_: Any,
) -> AsyncIterator[OpEvent]:
    ev = Emitter("rollback", ctx.redact)
    t0 = time.monotonic()
    plan: Recovery | None = None
    async for item in recover(ctx, ev, op_id=op_id):
        if isinstance(item, Recovery):
            plan = item
        else:
            yield item
    if plan is not None and plan.action != "none" and version is None and not restore_db:
        yield ev.done(
            f"the interrupted operation was undone ({plan.action}); traffic on {plan.traffic}"
        )
        return

    view = await observe(ctx)
    if view.serving is None:
        raise OpFailed(
            f"cannot tell which colour nginx serves ({ctx.container('nginx')} does not answer)",
            step="prepare",
        )
    frm = view.serving
    from_version = view.serving_version()
    to = other_colour(frm)
    idle = view.colours[to]
    idle_version = idle.version or idle.slot_version
    target = version
    if target is None:
        target = idle_version
        if target is None or target == from_version:
            target = _previous_version_from_history(ctx, from_version)
        if target is None or target == from_version:
            raise OpFailed(
                f"nothing to roll back to: {frm} serves {from_version} and {to} holds {idle_version or 'nothing'}; "
                "name a version with --version",
                step="prepare",
            )
    if target == from_version and not restore_db:
        yield ev.done(f"{frm} already serves {target}; nothing to do")
        return
    instant = idle.state != "missing" and idle.version == target
    warm = instant and idle.state == "running"
    yield ev.info(
        "prepare",
        f"{frm} serves {from_version}; rolling back to {target} on {to}"
        + (
            " (instant: it is running, out of the upstream)"
            if warm
            else " (its container exists: started first)"
            if instant
            else ""
        ),
        from_colour=frm,
        to_colour=to,
        target=target,
        instant=instant,
        warm=warm,
    )
    backup = (
        resolve_backup(ctx, backup_path, field="backup_path")
        if restore_db and backup_path
        else None
    )
    if target == from_version:
        # restore only
        to = frm
    history: dict[str, Any] = {
        "id": op_id,
        "op": "rollback",
        "strategy": "instant" if instant else "redeploy",
        "version": target,
        "from_version": from_version,
        "colour": to,
        "from_colour": frm,
        "image": image_ref(ctx.image_repo, target),
        "user": ctx.operator.user,
        "ssh_client": ctx.operator.ssh_client,
        "host": ctx.operator.host,
        "started": datetime.now(UTC).isoformat(),
        "backup_id": backup.id if backup else None,
        "restore_db": restore_db,
    }
    info = await image_info(ctx, image_ref(ctx.image_repo, target))
    history["image_digest"] = info.get("Id") if info else None
    journal = Journal.begin(
        ctx.journal_path,
        id=op_id,
        op="rollback",
        strategy=history["strategy"],
        version=target,
        from_version=from_version,
        from_colour=frm,
        to_colour=to if to != frm else None,
        to_prev_version=idle_version,
        after_switch="finalize",
        to_was_running=warm,
        backup_id=history["backup_id"],
        **_journal_identity(ctx),
    )
    step = "start"
    switched = False
    try:
        if to != frm:
            journal.step(step)
            if warm:
                yield ev.info(step, f"{to} ({target}) is already running: checking its health")
            elif instant:
                yield ev.start(step, f"starting the existing {to} container ({target})")
                await start_existing(ctx, to)
            else:
                yield ev.start(step, f"starting {to} with {target}")
                await start_colour(ctx, to, target)
            step = "wait-healthy"
            journal.step(step)
            async for item in wait_healthy(ctx, to, target, ev):
                yield item
            step = "switch"
            journal.step(step, switch_started=True)
            yield ev.start(step, f"switching nginx from {frm} to {to}")
            await switch_traffic(ctx, to, target)
            switched = True
            journal.update(switched=True)
            yield ev.ok(
                step,
                f"traffic back on {to} ({target}): nginx serves it "
                f"{time.monotonic() - t0:.1f} s after the rollback began",
                colour=to,
                version=target,
                seconds=round(time.monotonic() - t0, 2),
            )
        if restore_db and backup is not None:
            step = "restore-db"
            journal.step(step)
            async for item in restore_database(ctx, backup, ev, journal=journal):
                yield item
        step = "verify"
        journal.step(step)
        async for item in bake(
            ctx,
            to,
            target,
            ev,
            seconds=verify_seconds,
            max_p95_ms=ctx.max_p95_ms,
            max_error_rate=ctx.max_error_rate,
        ):
            yield item
        revision = await schema_revision(ctx)
        history["schema_revision"] = revision
        yield ev.ok(
            "verify",
            f"version {target} reported through nginx; schema version {revision}",
            schema_revision=revision,
        )
        journal.update(bake_passed=True)
    except (asyncio.CancelledError, GeneratorExit):
        journal.finish("failed", reason=f"cancelled at {step}")
        history.update(
            result="failed", reason=f"cancelled at {step}", finished=datetime.now(UTC).isoformat()
        )
        record_history(ctx.history_path, history)
        raise
    except Exception as exc:
        reason = ctx.redact(
            str(exc) if isinstance(exc, OpError) else f"{type(exc).__name__}: {exc}"
        )
        yield ev.fail(step, reason)
        if not switched and to != frm and warm:
            yield ev.info("rollback", f"{to} left running as it was; traffic stays on {frm}")
        elif not switched and to != frm:
            try:
                await stop_colour(ctx, to)
                if not instant and idle_version and idle_version != target:
                    await restore_slot(ctx, to, idle_version)
                yield ev.ok("rollback", f"{to} stopped; traffic stays on {frm} ({from_version})")
            except OpError as e2:
                yield ev.warn("rollback", f"cleaning up {to}: {e2}")
        journal.finish("failed", reason=reason)
        history.update(
            result="failed",
            reason=f"{step}: {reason}",
            failed_step=step,
            finished=datetime.now(UTC).isoformat(),
            duration_s=round(time.monotonic() - t0, 1),
        )
        record_history(ctx.history_path, history)
        serving_now = to if switched else frm
        raise OpFailed(
            f"rollback to {target} failed at {step}: {reason}. Traffic is on {serving_now}.",
            step=step,
        ) from None

    if to != frm:
        journal.step("stop-old")
        try:
            await stop_colour(ctx, frm)
            yield ev.ok("stop-old", f"{frm} ({from_version}) stopped, kept for a roll-forward")
        except OpError as exc:
            yield ev.warn("stop-old", f"could not stop {frm}: {exc}")
    worker_version = read_deploy_env(ctx.deploy_env_path).get("WORKER_VERSION")
    if worker_version == from_version and worker_version != target:
        # the worker followed the version being rolled back: it goes back too
        async for item in _move_worker(ctx, target, ev, ctx.health_timeout):
            yield item
    duration = time.monotonic() - t0
    journal.finish("done", duration_s=round(duration, 1))
    history.update(
        result="ok", finished=datetime.now(UTC).isoformat(), duration_s=round(duration, 1)
    )
    record_history(ctx.history_path, history)
    yield ev.done(
        f"rolled back to {target} on {to} in {duration:.1f} s"
        + (f"; database restored from {backup.id}" if backup else ""),
        version=target,
        colour=to,
        duration_s=round(duration, 1),
        backup_id=backup.id if backup else None,
    )
