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

``services`` decides what moves back: ``backend`` (the API alone; the page
stays where it is), ``frontend`` (the page alone:
:func:`_rollback_frontend`), or both (the page with the API in one switch
when it serves from the same colour and the other frontend colour exists,
else rolled back after it). Without it, the last successful deploy's
services decide: a plain rollback moves back what that deploy moved.

Then the runbook's rollback verification: the version reported through nginx,
containers up, the schema version. The worker, when it followed the version
being rolled back, moves back last: traffic never waits for it.

Built like a deploy: steps from :mod:`console.core.ops.steps`, the journal
and history line kept by :class:`~console.core.ops.lifecycle.OpRecord`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

from console.core.models import OpEvent
from console.core.ops.audit import read_jsonl
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
from console.core.ops.context import OpContext, backend_service, frontend_service, other_colour
from console.core.ops.db import schema_revision
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.frontend import (
    frontend_repo,
    observe_frontend,
    start_existing_frontend,
    stop_frontend,
    switch_with_backend,
    wait_frontend_ready,
)
from console.core.ops.journal import Journal
from console.core.ops.lifecycle import OpRecord
from console.core.ops.nginx import read_target
from console.core.ops.proc import image_info
from console.core.ops.progress import Progress, run_steps
from console.core.ops.recovery import recover
from console.core.ops.replicas import remove_colour_replicas, replicas_wanted, scale_colour
from console.core.ops.silence import silence_expected
from console.core.ops.statefiles import read_deploy_env
from console.core.ops.steps.bake import bake
from console.core.ops.steps.drain import hand_off_streams
from console.core.ops.steps.worker import move_worker
from console.core.ops.table import RollbackParams
from console.core.ops.versions import image_ref
from console.core.sources.docker.inspect import image_id

__all__ = [
    "backup_for_version",
    "parse_rollback_services",
    "rollback_services",
    "run_rollback",
    "validate_rollback",
]

ROLLBACKABLE = ("backend", "frontend")


def parse_rollback_services(value: Any) -> list[str] | None:
    """``"frontend"`` / ``"backend frontend"`` / a list -> names, checked;
    None when not given (the last deploy decides: :func:`rollback_services`)."""
    if value is None or value == "" or value == []:
        return None
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,]+", str(value).strip())
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        if name not in ROLLBACKABLE:
            shown = name.encode("unicode_escape").decode("ascii")[:40]
            raise BadInput(
                f"unknown service '{shown}' in --services: rollback moves back "
                f"{' and '.join(ROLLBACKABLE)} (the worker follows the backend)",
                field="services",
            )
        if name not in out:
            out.append(name)
    if not out:
        return None
    return [n for n in ROLLBACKABLE if n in out]


def rollback_services(
    ctx: OpContext, services: list[str] | None, *, backend_flags: bool = False
) -> list[str]:
    """What a rollback moves back: ``services`` when named, else what the
    last successful deploy moved (the page alone, the backend alone, or both;
    the worker goes with the backend). ``backend_flags`` (--version,
    --restore-db, --backup-path given): the backend, whatever the history
    says."""
    if services:
        return services
    if backend_flags:
        return ["backend"]
    for rec in reversed(read_jsonl(ctx.history_path)):
        if rec.get("op") == "deploy" and rec.get("result") == "ok":
            deployed = rec.get("services") or ["backend"]
            if "frontend" not in deployed:
                return ["backend"]
            if "backend" not in deployed:
                return ["frontend"]
            return ["backend", "frontend"]
    return ["backend"]


def _frontend_previous_from_history(ctx: OpContext, serving_version: str | None) -> str | None:
    """The page's version before the deploy that brought ``serving_version``."""
    for rec in reversed(read_jsonl(ctx.history_path)):
        if (
            rec.get("op") == "deploy"
            and rec.get("result") == "ok"
            and rec.get("frontend_version") == serving_version
        ):
            prev = rec.get("frontend_from_version")
            return str(prev) if prev else None
    return None


async def _frontend_target(ctx: OpContext) -> dict[str, Any]:
    """What a rollback of the page does: the journal's ``frontend`` entry
    (from/to colour and version). The idle frontend colour's version, else
    the version history says served before; refuses (nothing changed) when
    there is nothing to go back to."""
    fview = await observe_frontend(ctx)
    if fview.serving is None:
        raise OpFailed(
            f"cannot tell which frontend colour nginx serves ({ctx.container('nginx')} does not answer)",
            step="prepare",
        )
    frm = fview.serving
    to = other_colour(frm)
    from_version = fview.serving_version()
    idle = fview.colours[to]
    held = idle.version or idle.slot_version
    target = held if idle.state != "missing" else None
    if target is None or target == from_version:
        target = _frontend_previous_from_history(ctx, from_version)
    if target is None or target == from_version:
        raise BadInput(
            f"nothing to roll the page back to: {frontend_service(frm)} serves {from_version} and "
            f"{frontend_service(to)} holds {held or 'nothing'}; deploy the version wanted with "
            "`stackdeck deploy VERSION --services frontend`",
            field="services",
        )
    if (
        idle.version != target
        and await image_info(ctx, image_ref(frontend_repo(ctx), target)) is None
    ):
        raise BadInput(
            f"the page's previous version {target} has no image "
            f"{image_ref(frontend_repo(ctx), target)} any more: deploy a version with "
            "`stackdeck deploy VERSION --services frontend --build`",
            field="services",
        )
    return {
        "from_colour": frm,
        "to_colour": to,
        "from_version": from_version,
        "to_prev_version": held,
        "version": target,
        "warm": idle.state == "running" and idle.version == target,
    }


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
            and (rec.get("result") == "ok" or rec.get("backend_committed"))
            and rec.get("version") == serving_version
            and "backend" in (rec.get("services") or ["backend"])
        ):
            prev = rec.get("from_version")
            return str(prev) if prev else None
    return None


def _backend_flags(params: RollbackParams) -> bool:
    """Flags only the backend's rollback takes."""
    return bool(params.version or params.restore_db or params.backup_path)


async def validate_rollback(ctx: OpContext, params: RollbackParams) -> RollbackParams:
    """The version's image exists; a database restore is confirmed and has a
    backup (named, or the one taken before the serving version's deploy)."""
    update: dict[str, Any] = {}
    version = params.version
    named = parse_rollback_services(params.services)
    services = rollback_services(ctx, named, backend_flags=_backend_flags(params))
    update["services"] = services
    if "backend" not in services:
        for given, flag in ((version, "--version"), (params.restore_db, "--restore-db")):
            if given:
                raise BadInput(
                    f"{flag} is the backend's: a rollback of the page alone goes back to the "
                    "frontend's previous colour (add backend to --services, or leave it out)",
                    field="services",
                )
        journal = Journal.load(ctx.journal_path)
        if not journal or journal.get("status") != "running":
            # refuses now, before any lock or change (an interrupted
            # operation is recovered by the run first, then it stops)
            await _frontend_target(ctx)
    elif "frontend" in services and version is not None:
        raise BadInput(
            "--version rolls back the backend only: leave frontend out of --services, or "
            "roll the page back after it with --services frontend",
            field="services",
        )
    if version is not None and await image_info(ctx, image_ref(ctx.image_repo, version)) is None:
        raise BadInput(
            f"unknown version {version}: no image {image_ref(ctx.image_repo, version)} to roll back to",
            field="version",
        )
    backup_path = params.backup_path or None
    if backup_path is not None and not params.restore_db:
        raise BadInput("--backup-path is only used with --restore-db", field="backup_path")
    if params.restore_db:
        if params.confirm != ctx.db_name:
            raise BadInput(
                f"--restore-db replaces every row of {ctx.db_name} with the backup: type the database "
                f"name to confirm (--confirm {ctx.db_name})",
                field="confirm",
            )
        if backup_path is not None:
            update["backup_path"] = str(resolve_backup(ctx, backup_path, field="backup_path").path)
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
            update["backup_path"] = str(found.path)
    return params.model_copy(update=update)


async def run_rollback(
    ctx: OpContext, params: RollbackParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    services = rollback_services(
        ctx, parse_rollback_services(params.services), backend_flags=_backend_flags(params)
    )
    if "backend" not in services:
        body = partial(_rollback_frontend, ctx, op_id=op_id)
        async for event in run_steps(Emitter("rollback", ctx.redact), body):
            yield event
        return
    body = partial(
        _rollback,
        ctx,
        op_id=op_id,
        page="frontend" in services,
        version=params.version,
        restore_db=params.restore_db,
        backup_path=params.backup_path,
        verify_seconds=params.verify_seconds,
    )
    async for event in run_steps(Emitter("rollback", ctx.redact), body):
        yield event


async def _rollback(
    ctx: OpContext, progress: Progress, *, page: bool = False, **kwargs: Any
) -> None:
    """The rollback; the silence of a colour it starts ends when it ends.
    ``page`` ("backend frontend"): when the page did not go back with the
    API (it serves from another colour), it is rolled back after it."""
    async with AsyncExitStack() as cleanup:
        followed = await _rollback_steps(ctx, progress, cleanup=cleanup, page=page, **kwargs)
    if page and not followed:
        try:
            await _rollback_frontend(ctx, progress, op_id=f"{kwargs['op_id']}-frontend")
        except BadInput as exc:
            # the API went back; the page has nothing to go back to
            progress.warn("frontend", f"the page stays where it is: {exc}")


async def _rollback_frontend(ctx: OpContext, progress: Progress, *, op_id: str) -> None:
    """The page alone back on its previous version: the other frontend
    colour (warm when it still runs it, else started with it), checked
    directly, one switch of nginx's ``/`` (the backend's line kept),
    ``/version.json`` confirmed through nginx, the colour left stopped and
    kept for a roll-forward. Journal and history like a frontend deploy's,
    so an interrupted one is recovered the same way."""
    from console.core.ops.deploy import _frontend_handover  # deploy imports this module's peers

    plan = await recover(ctx, progress, op_id=op_id)
    if plan.action != "none":
        # as the backend's: undoing the interrupted operation is the rollback
        progress.done(f"the interrupted operation was undone ({plan.action})")
        return
    record = OpRecord(ctx, "rollback", op_id)
    fe = await _frontend_target(ctx)
    warm = fe.pop("warm")
    frm, to, target = fe["from_colour"], fe["to_colour"], fe["version"]
    progress.info(
        "prepare",
        f"{frontend_service(frm)} serves the page {fe['from_version']}; rolling it back to {target} "
        f"on {frontend_service(to)}"
        + (" (instant: it is running, out of the upstream)" if warm else " (started first)"),
        from_colour=frm,
        to_colour=to,
        target=target,
        warm=warm,
    )
    record.open(
        strategy="instant" if warm else "redeploy",
        version=target,
        from_version=fe["from_version"],
        colour=to,
        from_colour=frm,
        services=["frontend"],
        frontend_version=target,
        frontend_from_version=fe["from_version"],
        frontend_colour=to,
        frontend_from_colour=frm,
        frontend_image=image_ref(frontend_repo(ctx), target),
    )
    journal = record.begin_journal(
        strategy="blue-green",  # recovery: no backend colour chosen, nothing of it to undo
        version=target,
        from_version=fe["from_version"],
        from_colour=None,
        to_colour=None,
        services=["frontend"],
        frontend=fe,
    )
    # a failure or cancel puts / back on the colour it left and closes the
    # journal and the history line (rolled-back, with the step)
    await _frontend_handover(
        ctx,
        progress,
        record=record,
        journal=journal,
        fe=fe,
        h_timeout=ctx.health_timeout,
        keep_old=False,
        what="rollback of the page to",
    )
    duration = record.succeed()
    progress.done(
        f"rolled the page back to {target} on {frontend_service(to)} in {duration:.1f} s "
        f"({frontend_service(frm)} stopped, kept for a roll-forward)",
        version=target,
        frontend_colour=to,
        duration_s=round(duration, 1),
    )


async def _rollback_steps(
    ctx: OpContext,
    progress: Progress,
    *,
    cleanup: AsyncExitStack,
    page: bool,
    op_id: str,
    version: str | None,
    restore_db: bool,
    backup_path: str | None,
    verify_seconds: float,
) -> bool:
    """The backend's rollback; True when the page went back with it (only
    when ``page``: the page is part of the rollback)."""
    record = OpRecord(ctx, "rollback", op_id)
    plan = await recover(ctx, progress, op_id=op_id)
    if plan.action != "none" and version is None and not restore_db:
        progress.done(
            f"the interrupted operation was undone ({plan.action}); traffic on {plan.traffic}"
        )
        return True

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
        progress.done(f"{frm} already serves {target}; nothing to do")
        return False
    instant = idle.state != "missing" and idle.version == target
    warm = instant and idle.state == "running"
    # the page goes back with the API (when it is part of the rollback) in
    # one switch when it serves from the same colour (deployed together) and
    # the other frontend colour has a container
    fview = await observe_frontend(ctx)
    fidle = fview.colours[to]
    fe_follow = page and fview.serving == frm and fidle.state != "missing" and version is None
    fe_version = fidle.version or fidle.slot_version
    progress.info(
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
    strategy = "instant" if instant else "redeploy"
    record.open(
        strategy=strategy,
        version=target,
        from_version=from_version,
        colour=to,
        from_colour=frm,
        image=image_ref(ctx.image_repo, target),
        backup_id=backup.id if backup else None,
        restore_db=restore_db,
    )
    info = await image_info(ctx, image_ref(ctx.image_repo, target))
    record.note(image_digest=image_id(info))
    journal = record.begin_journal(
        strategy=strategy,
        version=target,
        from_version=from_version,
        from_colour=frm,
        to_colour=to if to != frm else None,
        to_prev_version=idle_version,
        after_switch="finalize",
        to_was_running=warm,
        backup_id=backup.id if backup else None,
    )
    step = "start"
    switched = False
    if to != frm and not warm:
        silence = await silence_expected(
            ctx,
            progress,
            op="rollback",
            op_id=op_id,
            colour=to,
            version=target,
            seconds=ctx.health_timeout + verify_seconds,
        )
        cleanup.push_async_callback(silence.expire, progress)
        record.note(silence_id=silence.silence_id)
    try:
        if to != frm:
            record.step(step)
            if warm:
                progress.info(step, f"{to} ({target}) is already running: checking its health")
            elif instant:
                progress.start(step, f"starting the existing {to} container ({target})")
                await start_existing(ctx, to)
            else:
                progress.start(step, f"starting {to} with {target}")
                await start_colour(ctx, to, target)
            step = "wait-healthy"
            record.step(step)
            await progress.relay(wait_healthy(ctx, to, target, progress.emitter))
            if fe_follow and fe_version:
                step = "frontend-healthy"
                record.step(step)
                if fidle.state != "running":
                    await start_existing_frontend(ctx, to)
                await wait_frontend_ready(
                    ctx, to, fe_version, progress, ctx.health_timeout, step=step
                )
            step = "switch"
            record.step(step, switch_started=True)
            if fe_follow and fe_version:
                progress.start(
                    step,
                    f"switching nginx from {frm} to {to} in one reload, the page with it "
                    f"({frontend_service(to)}, {fe_version})",
                )
                await switch_with_backend(ctx, to, target, to, fe_version)
                record.note(frontend_version=fe_version, frontend_colour=to)
            else:
                progress.start(step, f"switching nginx from {frm} to {to}")
                await switch_traffic(ctx, to, target)
            switched = True
            record.mark(switched=True)
            progress.ok(
                step,
                f"traffic back on {to} ({target}): nginx serves it "
                f"{record.elapsed():.1f} s after the rollback began",
                colour=to,
                version=target,
                seconds=round(record.elapsed(), 2),
            )
            await hand_off_streams(ctx, backend_service(frm), progress, step=step)
        if restore_db and backup is not None:
            step = "restore-db"
            record.step(step)
            await restore_database(ctx, backup, progress, journal=journal)
        step = "verify"
        record.step(step)
        await bake(
            ctx,
            to,
            target,
            progress,
            seconds=verify_seconds,
            max_p95_ms=ctx.max_p95_ms,
            max_error_rate=ctx.max_error_rate,
        )
        revision = await schema_revision(ctx)
        record.note(schema_revision=revision)
        progress.ok(
            "verify",
            f"version {target} reported through nginx; schema version {revision}",
            schema_revision=revision,
        )
        record.mark(bake_passed=True)
    except asyncio.CancelledError:
        record.fail("failed", f"cancelled at {step}", timed=False)
        raise
    except Exception as exc:
        reason = ctx.redact(
            str(exc) if isinstance(exc, OpError) else f"{type(exc).__name__}: {exc}"
        )
        progress.fail(step, reason)
        if not switched and to != frm and warm:
            progress.info("rollback", f"{to} left running as it was; traffic stays on {frm}")
        elif not switched and to != frm and (nginx_on := await _nginx_colour(ctx)) != frm:
            # the switch reached nginx (its check after the reload failed), or
            # nginx cannot be read: never stop a colour that may be serving
            progress.warn(
                "rollback",
                f"{to} left running: nginx names {nginx_on or 'no readable colour'}, not {frm}; "
                "`stackdeck status` shows what serves",
            )
        elif not switched and to != frm:
            try:
                await stop_colour(ctx, to)
                if not instant and idle_version and idle_version != target:
                    await restore_slot(ctx, to, idle_version)
                progress.ok("rollback", f"{to} stopped; traffic stays on {frm} ({from_version})")
            except OpError as e2:
                progress.warn("rollback", f"cleaning up {to}: {e2}")
        record.fail("failed", reason, history_reason=f"{step}: {reason}", failed_step=step)
        await cleanup.aclose()
        serving_now = to if switched else frm
        raise OpFailed(
            f"rollback to {target} failed at {step}: {reason}. Traffic is on {serving_now}.",
            step=step,
        ) from None

    if to != frm:
        await _replicas_follow(ctx, progress, frm=frm, to=to, version=target)
        record.step("stop-old")
        try:
            await stop_colour(ctx, frm)
            progress.ok("stop-old", f"{frm} ({from_version}) stopped, kept for a roll-forward")
        except OpError as exc:
            progress.warn("stop-old", f"could not stop {frm}: {exc}")
        if fe_follow and fe_version:
            try:
                await stop_frontend(ctx, frm)
                progress.ok("stop-old", f"{frontend_service(frm)} stopped, kept for a roll-forward")
            except OpError as exc:
                progress.warn("stop-old", f"could not stop {frontend_service(frm)}: {exc}")
    worker_version = read_deploy_env(ctx.deploy_env_path).get("WORKER_VERSION")
    if worker_version == from_version and worker_version != target:
        # the worker followed the version being rolled back: it goes back too
        await move_worker(ctx, target, progress, ctx.health_timeout)
    await cleanup.aclose()  # the silence ends before the rollback reports done
    duration = record.succeed()
    progress.done(
        f"rolled back to {target} on {to} in {duration:.1f} s"
        + (f"; database restored from {backup.id}" if backup else ""),
        version=target,
        colour=to,
        duration_s=round(duration, 1),
        backup_id=backup.id if backup else None,
    )
    return bool(fe_follow and fe_version and to != frm)


async def _replicas_follow(
    ctx: OpContext, progress: Progress, *, frm: str, to: str, version: str
) -> None:
    """After the switch: the colour traffic left loses its replicas, the one
    it is on gets ``BACKEND_REPLICAS`` containers (healthy before nginx
    has them). Traffic is already back, so a failure here only warns."""
    try:
        removed = await remove_colour_replicas(ctx, frm)
        if removed:
            progress.ok("replicas", f"{frm}'s replicas removed ({', '.join(removed)})")
        n = replicas_wanted(read_deploy_env(ctx.deploy_env_path))
        if n > 1:
            await scale_colour(ctx, to, n, progress, version=version)
    except OpError as exc:
        progress.warn(
            "replicas",
            f"{to} serves, but its replicas could not follow ({exc}): stackdeck scale backend=N",
        )


async def _nginx_colour(ctx: OpContext) -> str | None:
    """The colour nginx's active.conf names now (None: nginx unreadable)."""
    try:
        target = await read_target(ctx)
    except OpError:
        return None
    return None if target is None else target[0]
