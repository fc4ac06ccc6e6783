"""Deploys: blue-green (the runbook's recommended method) and rolling (method 2,
start-first through the serving colour's surge container: see :func:`_rolling`).

Blue-green, step by step (each step journaled before it changes anything):

1. recover an interrupted deploy/rollback, if the journal shows one;
2. select ``investment-backend:<version>``, or build it (``--build``: from
   this checkout; or from the git tag of that name);
3. start the idle colour with the new version (deploy.env names the version
   from that moment) and wait until its health check passes and
   ``/direct/<colour>/api/health`` reports the new version;
4. back up the database when migrations are pending (or ``backup=always``),
   then ``alembic upgrade head`` inside the new colour (expand-only
   migrations: the serving colour keeps working on the new schema);
5. smoke-test the new colour directly through ``/direct/<colour>``;
6. switch nginx (whole file, ``nginx -t``, graceful reload) and confirm
   through nginx that the new colour answers;
7. bake: requests through nginx for ``bake_seconds``; version, p95 latency,
   error rate and the container's health must hold;
8. keep the old colour running, out of the upstream, as the instant
   rollback target (``keep_previous_colour``, the default; when false it is
   stopped, its container kept); then move the worker to the new version
   (ready once its own heartbeat reports the new version).

Any failure before or during the bake switches traffic back to the old
colour (still running), stops the new one, puts its slot back to the
version it held, and records why in the history.

The shared steps (image, health, bake, worker) are in
:mod:`console.core.ops.steps`; the journal and the history line are kept by
:class:`~console.core.ops.lifecycle.OpRecord`; events are reported on a
:class:`~console.core.ops.progress.Progress` (see that module for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

from console.core.models import OpEvent
from console.core.ops.backend import (
    StackView,
    observe,
    remove_surge,
    restore_slot,
    start_colour,
    start_surge,
    stop_colour,
    switch_traffic,
    version_var,
    wait_healthy,
)
from console.core.ops.backup import take_backup
from console.core.ops.context import (
    SURGE,
    OpContext,
    backend_service,
    frontend_service,
    other_colour,
)
from console.core.ops.db import schema_revision
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.frontend import (
    ensure_frontend_image,
    frontend_repo,
    observe_frontend,
    restore_frontend_slot,
    start_frontend,
    stop_frontend,
    switch_frontend,
    switch_with_backend,
    wait_frontend_ready,
)
from console.core.ops.http import client, probe
from console.core.ops.journal import Journal
from console.core.ops.lifecycle import OpRecord
from console.core.ops.migrate import upgrade
from console.core.ops.nginx import reload_nginx
from console.core.ops.proc import compose, image_info, inspect_container
from console.core.ops.progress import Progress, run_steps
from console.core.ops.recovery import recover
from console.core.ops.replicas import (
    REPLICAS_VAR,
    ensure_colour_replicas,
    list_service,
    remove_colour_replicas,
)
from console.core.ops.rolling_pool import pooled_containers, roll_pool, undo_rolling_pool
from console.core.ops.silence import silence_expected
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.steps.bake import bake
from console.core.ops.steps.drain import hand_off_streams, wait_drained
from console.core.ops.steps.health import wait_ready
from console.core.ops.steps.images import (
    ensure_image,
    git_tag_exists,
    known_versions,
    newest_versions,
)
from console.core.ops.steps.worker import (
    WORKER_REPLICA,
    move_worker,
    recreate_workers,
    workers_wanted,
)
from console.core.ops.table import DeployParams
from console.core.ops.verify import smoke_colour
from console.core.ops.versions import image_ref
from console.core.sources.docker.inspect import container_health, image_id

__all__ = ["parse_services", "run_deploy", "validate_deploy"]

ENVIRONMENTS = ("production", "prod")
DEPLOYABLE = ("backend", "worker", "frontend")
ABSENT: tuple[str, ...] = ()
"""Services the runbook names that this stack does not have (skipped with a
note): none since the web frontend has colours of its own."""


def parse_services(value: Any) -> list[str]:
    """``"backend frontend"`` / ``"backend,worker"`` / a list -> names, checked."""
    if value is None or value == "":
        return ["backend", "worker"]
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,]+", str(value).strip())
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        if name not in DEPLOYABLE and name not in ABSENT:
            shown = name.encode("unicode_escape").decode("ascii")[:40]
            raise BadInput(
                f"unknown service '{shown}' in --services: this stack deploys {', '.join(DEPLOYABLE)}",
                field="services",
            )
        if name not in out:
            out.append(name)
    if not any(name in DEPLOYABLE for name in out):
        raise BadInput(
            f"--services names nothing this stack can deploy ({', '.join(DEPLOYABLE)})",
            field="services",
        )
    return out


async def validate_deploy(ctx: OpContext, params: DeployParams) -> DeployParams:
    """The environment is this host's, the services deployable, the image
    there (or buildable: --build, or a git tag); the thresholds the operator
    left out are the configured ones. Choices and ranges are the model's."""
    if params.environment not in ENVIRONMENTS:
        raise BadInput(
            f"environment {params.environment!r}: this host runs the production stack {ctx.stack!r} "
            "(use --stack to address another stack)",
            field="environment",
        )
    services = parse_services(params.services)
    version = params.version
    backend_image = {"backend", "worker"} & set(services)
    if backend_image and await image_info(ctx, image_ref(ctx.image_repo, version)) is None:
        if not params.build and not await git_tag_exists(ctx, version):
            have = await known_versions(ctx)
            raise BadInput(
                f"unknown version {version}: there is no image {image_ref(ctx.image_repo, version)} and no git "
                f"tag {version} to build it from. Available: {newest_versions(have)}. "
                "To build this checkout as that version, add --build",
                field="version",
            )
    if "frontend" in services:
        await _check_frontend_image(ctx, version, params.build)

    def given(value: float | None, default: float) -> float:
        return default if value is None else value

    return params.model_copy(
        update={
            "environment": "production",
            "services": services,
            "bake_seconds": given(params.bake_seconds, ctx.bake_seconds),
            "max_p95_ms": given(params.max_p95_ms, ctx.max_p95_ms),
            "max_error_rate": given(params.max_error_rate, ctx.max_error_rate),
            "health_timeout": given(params.health_timeout, ctx.health_timeout),
        }
    )


async def _check_frontend_image(ctx: OpContext, version: str, build: bool) -> None:
    """The frontend's image of ``version`` is there, or can be built (--build,
    or a git tag of that name); else a refusal naming what is missing."""
    ref = image_ref(frontend_repo(ctx), version)
    if await image_info(ctx, ref) is not None or build or await git_tag_exists(ctx, version):
        return
    have = await known_versions(ctx, frontend_repo(ctx))
    raise BadInput(
        f"unknown version {version} for the frontend: there is no image {ref} and no git tag "
        f"{version} to build it from. Frontend images: {newest_versions(have)}. To build "
        "this checkout's frontend as that version, add --build",
        field="version",
    )


def _open_record(
    record: OpRecord, strategy: str, view: StackView, version: str, to_colour: str | None
) -> None:
    record.open(
        strategy=strategy,
        version=version,
        from_version=view.serving_version(),
        colour=to_colour,
        from_colour=view.serving,
    )


Undo = Callable[[OpContext, Journal, list[tuple[str, str]]], Awaitable[None]]
"""A strategy's undo (:func:`_undo_blue_green`, :func:`_undo_rolling`): puts
traffic and containers back from what the journal says was done, appending
``(status, message)`` notes."""


async def _undo_after_cancel(
    ctx: OpContext,
    record: OpRecord,
    journal: Journal,
    notes: list[tuple[str, str]],
    undo: Undo,
    *,
    step: str,
) -> None:
    """Cancelled (Ctrl-C, the cancel key, SIGHUP) at ``step``: the undo runs to
    its end whatever else is cancelled, and the result is recorded."""
    try:
        await asyncio.shield(undo(ctx, journal, notes))
    finally:
        record.fail(
            "rolled-back" if journal.data.get("switch_started") else "failed",
            f"cancelled at step {step}",
            journal_status="rolled-back",
            undo=notes,
        )


async def _undo_after_failure(
    ctx: OpContext,
    progress: Progress,
    record: OpRecord,
    journal: Journal,
    notes: list[tuple[str, str]],
    undo: Undo,
    *,
    step: str,
    exc: Exception,
    switched_key: str = "switch_started",
    **details: Any,
) -> tuple[str, bool, OpError | None]:
    """``step`` failed with ``exc``: say so, undo automatically, show each
    note, record the result (``details`` join the record). Returns the
    reason (secrets redacted), whether traffic had been switched (the
    journal's ``switched_key``: the page's own for the frontend's hand-over,
    which may follow a backend's switch in the same deploy), and the undo's
    own failure if it failed too."""
    reason = ctx.redact(str(exc) if isinstance(exc, OpError) else f"{type(exc).__name__}: {exc}")
    progress.fail(step, reason)
    progress.start("rollback", f"automatic rollback: {reason}")
    undo_error: OpError | None = None
    try:
        await undo(ctx, journal, notes)
    except OpError as e2:
        undo_error = e2
    for status_, message in notes:
        progress.make("rollback", status_, message)
    switched = bool(journal.data.get(switched_key))
    result = "rolled-back" if switched else "failed"
    record.fail(
        result,
        reason,
        history_reason=f"{step}: {reason}",
        journal_status="failed" if undo_error else result,
        undo=notes,
        failed_step=step,
        **details,
    )
    return reason, switched, undo_error


async def _undo_blue_green(ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]) -> None:
    """Traffic back on the old colour, new colour stopped, its slot restored.

    Reports nothing (it also runs when the operation is cancelled, when
    nobody reads its events any more); what it did goes into ``notes`` as
    (status, message).
    """
    d = journal.data
    frm, to = d["from_colour"], d["to_colour"]
    from_version = d.get("from_version")
    if d.get("switch_started"):
        try:
            await switch_traffic(ctx, frm, str(from_version))
            notes.append(("ok", f"traffic switched back to {frm} ({from_version})"))
        except OpError as exc:
            notes.append(("fail", f"could not switch traffic back to {frm}: {exc}"))
            raise
    else:
        notes.append(("info", f"traffic never left {frm} ({from_version})"))
    try:
        removed = await remove_colour_replicas(ctx, to)
        if removed:
            notes.append(("ok", f"removed {to}'s replicas ({', '.join(removed)})"))
    except OpError as exc:
        notes.append(("warn", f"removing {to}'s replicas: {exc}"))
    try:
        info = await inspect_container(ctx, ctx.container(f"backend_{to}"))
        if container_health(info)[0] in ("running", "restarting", "created", "paused"):
            await stop_colour(ctx, to)
            notes.append(("ok", f"stopped {to}"))
        prev = d.get("to_prev_version")
        if prev and prev != d.get("version"):
            if await restore_slot(ctx, to, prev):
                notes.append(("ok", f"{to}'s slot is back to {prev} (stopped, ready for rollback)"))
            else:
                notes.append(
                    ("warn", f"image of {prev} is gone: {to} keeps {d.get('version')} (stopped)")
                )
    except OpError as exc:
        notes.append(("warn", f"cleaning up {to}: {exc}"))


async def _undo_frontend(
    ctx: OpContext, fe: dict[str, Any], switched: bool, notes: list[tuple[str, str]]
) -> None:
    """The frontend's part of an undo: ``/`` back on its old colour (when it
    had been switched), the new colour stopped, its slot restored."""
    frm, to = fe["from_colour"], fe["to_colour"]
    old, new = frontend_service(frm), frontend_service(to)
    if switched:
        try:
            from_version = fe.get("from_version")
            await switch_frontend(ctx, frm, str(from_version) if from_version else None)
            notes.append(("ok", f"the page switched back to {old} ({fe.get('from_version')})"))
        except OpError as exc:
            notes.append(("fail", f"could not switch the page back to {old}: {exc}"))
            raise
    else:
        notes.append(("info", f"the page never left {old} ({fe.get('from_version')})"))
    try:
        info = await inspect_container(ctx, ctx.container(new))
        if container_health(info)[0] in ("running", "restarting", "created", "paused"):
            await stop_frontend(ctx, to)
            notes.append(("ok", f"stopped {new}"))
        prev = fe.get("to_prev_version")
        if prev and prev != fe.get("version"):
            if await restore_frontend_slot(ctx, to, prev):
                notes.append(
                    ("ok", f"{new}'s slot is back to {prev} (stopped, ready for rollback)")
                )
            else:
                notes.append(
                    ("warn", f"frontend image of {prev} is gone: {new} keeps {fe.get('version')}")
                )
    except OpError as exc:
        notes.append(("warn", f"cleaning up {new}: {exc}"))


async def _undo_blue_green_with_frontend(
    ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]
) -> None:
    """:func:`_undo_blue_green` for a deploy of "backend frontend": the page
    back on its old colour first (when the start of the frontend had been
    reached), then the backend's undo."""
    fe = journal.data.get("frontend")
    page_failed: OpError | None = None
    if isinstance(fe, dict) and (
        journal.data.get("frontend_started") or journal.data.get("switch_started")
    ):
        try:
            await _undo_frontend(ctx, fe, bool(journal.data.get("switch_started")), notes)
        except OpError as exc:
            # the API goes back whatever became of the page
            page_failed = exc
    await _undo_blue_green(ctx, journal, notes)
    if page_failed is not None:
        raise page_failed


async def _undo_frontend_only(
    ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]
) -> None:
    """The undo of the frontend's hand-over (:func:`_frontend_handover`)."""
    fe = journal.data["frontend"]
    await _undo_frontend(ctx, fe, bool(journal.data.get("frontend_switch_started")), notes)


async def _prepare_frontend(
    ctx: OpContext, progress: Progress, version: str, build: bool, *, rolling: bool
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """What a frontend deploy will do (its journal entry) and its image; None
    when the serving frontend colour already runs ``version``."""
    fview = await observe_frontend(ctx)
    if fview.serving is None:
        raise OpFailed(
            f"cannot tell which frontend colour nginx serves: {ctx.container('nginx')} does not "
            "answer (start it: stackdeck restart nginx)",
            step="prepare",
        )
    frm = fview.serving
    to = other_colour(frm)
    from_version = fview.serving_version()
    if from_version == version:
        return None
    to_prev = fview.colours[to].version or fview.colours[to].slot_version
    how = (
        f"start-first: {frontend_service(to)} (idle) takes {version}, / moves to it once it is "
        f"ready, {frontend_service(frm)} is stopped"
        if rolling
        else f"deploying {version} to {frontend_service(to)} (which holds {to_prev or 'nothing'})"
    )
    progress.info("prepare", f"frontend: {frontend_service(frm)} serves {from_version}; {how}")
    fimage = await ensure_frontend_image(ctx, version, build, progress)
    fe = {
        "from_colour": frm,
        "to_colour": to,
        "from_version": from_version,
        "to_prev_version": to_prev,
        "version": version,
    }
    return fe, fimage


def _note_frontend(ctx: OpContext, record: OpRecord, fe: dict[str, Any], image: Any) -> None:
    record.note(
        frontend_version=fe["version"],
        frontend_from_version=fe["from_version"],
        frontend_colour=fe["to_colour"],
        frontend_from_colour=fe["from_colour"],
        frontend_image=image_ref(frontend_repo(ctx), fe["version"]),
        frontend_image_digest=image_id(image),
    )


async def _frontend_handover(
    ctx: OpContext,
    progress: Progress,
    *,
    record: OpRecord,
    journal: Journal,
    fe: dict[str, Any],
    h_timeout: float,
    keep_old: bool,
    what: str = "frontend deploy of",
    backend_committed: bool = False,
) -> None:
    """The idle frontend colour gets the version, is checked directly
    (health, its /version.json, its page), then nginx's ``/`` moves to it
    (the backend's line of active.conf kept; one graceful reload) and is
    confirmed through nginx. Start-first: the old colour serves until the
    new one is ready, so no page load fails. The old colour keeps running,
    out of the upstream (``keep_old``), or is stopped (its container kept).
    A failure or cancel puts ``/`` back and stops the new colour.
    ``backend_committed`` (a rolling deploy's page, after the API and the
    workers were verified on the version): a failure says they stay on it,
    and the history line says so (``backend_committed``), so a rollback
    still finds the version the API ran before."""
    frm, to, version = fe["from_colour"], fe["to_colour"], fe["version"]
    old, new = frontend_service(frm), frontend_service(to)
    record.mark(frontend=fe)
    notes: list[tuple[str, str]] = []
    step = "start-frontend"
    try:
        record.step(step, frontend_started=True)
        progress.start(step, f"starting {new} with {version}")
        await start_frontend(ctx, to, version)
        progress.ok(step, f"{new} started")
        step = "frontend-healthy"
        record.step(step)
        await wait_frontend_ready(ctx, to, version, progress, h_timeout, step=step)
        step = "switch-frontend"
        record.step(step, switch_started=True, frontend_switch_started=True)
        progress.start(step, f"switching / from {old} to {new} (nginx -t, graceful reload)")
        await switch_frontend(ctx, to, version)
        record.mark(switched=True)
        progress.ok(step, f"nginx serves the page from {new} ({version})", frontend_colour=to)
    except asyncio.CancelledError:
        await _undo_after_cancel(ctx, record, journal, notes, _undo_frontend_only, step=step)
        raise
    except Exception as exc:
        reason, switched, undo_error = await _undo_after_failure(
            ctx,
            progress,
            record,
            journal,
            notes,
            _undo_frontend_only,
            step=step,
            exc=exc,
            switched_key="frontend_switch_started",
            **({"backend_committed": True} if backend_committed else {}),
        )
        kept = (
            f" The API runs {version}: its part of the deploy was verified before the page's "
            "and stays (`stackdeck rollback --services backend` takes it back)."
            if backend_committed
            else ""
        )
        if undo_error:
            raise OpFailed(
                f"{what} {version} failed at {step} ({reason}) and the automatic "
                f"rollback failed too: {undo_error}. Run `stackdeck status` and `stackdeck rollback`"
                + kept,
                step=step,
            ) from None
        raise OpFailed(
            f"{what} {version} failed at {step}: {reason}. The page "
            + ("was switched back to" if switched else "never left")
            + f" {old} ({fe['from_version']})."
            + kept,
            step=step,
            data={"failed_step": step},
        ) from None
    if keep_old:
        progress.ok(
            "keep-old",
            f"{old} ({fe['from_version']}) keeps running, out of the upstream: the rollback target",
        )
        return
    step = "stop-old-frontend"
    record.step(step)
    try:
        # graceful: the frontend's nginx stops on SIGQUIT, finishing the
        # requests in flight (compose/images/frontend/Dockerfile)
        await stop_frontend(ctx, frm)
        progress.ok(step, f"{old} stopped (kept for rollback)")
    except OpError as exc:
        progress.warn(step, f"could not stop {old}: {exc}")


async def _deploy_frontend_only(
    ctx: OpContext,
    progress: Progress,
    *,
    record: OpRecord,
    version: str,
    build: bool,
    force: bool,
    h_timeout: float,
    services: list[str],
    rolling: bool = False,
) -> None:
    """``--services frontend``: the web frontend alone, blue-green (the old
    colour kept running as the rollback target) or rolling (start-first
    through the idle colour, the old one stopped): :func:`_frontend_handover`.
    The backend's colour and line of active.conf are not touched."""
    prepared = await _prepare_frontend(ctx, progress, version, build, rolling=rolling)
    if prepared is None and not force:
        progress.done(
            f"the frontend already serves {version}; nothing to do (--force to redeploy it)",
            version=version,
        )
        return
    if prepared is None:
        # --force: redeploy the serving version to the idle colour
        fview = await observe_frontend(ctx)
        frm = str(fview.serving)
        to = other_colour(frm)
        fe: dict[str, Any] = {
            "from_colour": frm,
            "to_colour": to,
            "from_version": version,
            "to_prev_version": fview.colours[to].version or fview.colours[to].slot_version,
            "version": version,
        }
        fimage: Any = await ensure_frontend_image(ctx, version, build, progress)
    else:
        fe, fimage = prepared
    record.open(
        strategy="rolling" if rolling else "blue-green",
        version=version,
        from_version=fe["from_version"],
        colour=fe["to_colour"],
        from_colour=fe["from_colour"],
    )
    record.note(services=services)
    _note_frontend(ctx, record, fe, fimage)
    journal = record.begin_journal(
        strategy="blue-green",  # recovery: no backend colour chosen, nothing of it to undo
        version=version,
        from_version=fe["from_version"],
        from_colour=None,
        to_colour=None,
        services=services,
        frontend=fe,
    )
    await _frontend_handover(
        ctx,
        progress,
        record=record,
        journal=journal,
        fe=fe,
        h_timeout=h_timeout,
        keep_old=ctx.keep_previous_colour and not rolling,
    )
    if "worker" in services:
        await move_worker(ctx, version, progress, h_timeout)
    duration = record.succeed()
    to_name, from_name = frontend_service(fe["to_colour"]), frontend_service(fe["from_colour"])
    progress.done(
        f"deployed frontend {version} to {to_name} in {duration:.1f} s "
        f"({from_name} keeps {fe['from_version']} for rollback)",
        version=version,
        frontend_colour=fe["to_colour"],
        duration_s=round(duration, 1),
    )


async def run_deploy(
    ctx: OpContext, params: DeployParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    strategy = _rolling if params.strategy == "rolling" else _blue_green
    values = params.model_dump(exclude={"strategy", "environment"})
    values["services"] = parse_services(params.services)
    body = partial(strategy, ctx, op_id=op_id, **values)
    async for event in run_steps(Emitter("deploy", ctx.redact), body):
        yield event


async def _blue_green(ctx: OpContext, progress: Progress, **kwargs: Any) -> None:
    """The blue-green deploy; what it registers on ``cleanup`` (the silence of
    the new colour's alerts) is undone when it ends, however it ends."""
    async with AsyncExitStack() as cleanup:
        await _blue_green_steps(ctx, progress, cleanup=cleanup, **kwargs)


async def _blue_green_steps(
    ctx: OpContext,
    progress: Progress,
    *,
    cleanup: AsyncExitStack,
    op_id: str,
    version: str,
    services: list[str] | None = None,
    build: bool = False,
    force: bool = False,
    backup: str = "auto",
    bake_seconds: float | None = None,
    max_p95_ms: float | None = None,
    max_error_rate: float | None = None,
    health_timeout: float | None = None,
    **_: Any,
) -> None:
    services = services or ["backend", "worker"]
    bake_s = ctx.bake_seconds if bake_seconds is None else bake_seconds
    p95_max = max_p95_ms or ctx.max_p95_ms
    err_max = ctx.max_error_rate if max_error_rate is None else max_error_rate
    h_timeout = health_timeout or ctx.health_timeout
    record = OpRecord(ctx, "deploy", op_id)

    await recover(ctx, progress, op_id=op_id)
    for name in services:
        if name in ABSENT:
            progress.info("prepare", f"{name}: not part of this stack, skipped")
    if "frontend" in services and "backend" not in services:
        await _deploy_frontend_only(
            ctx,
            progress,
            record=record,
            version=version,
            build=build,
            force=force,
            h_timeout=h_timeout,
            services=services,
        )
        return
    with_frontend = "frontend" in services

    view = await observe(ctx)
    if view.serving is None:
        raise OpFailed(
            f"cannot tell which colour nginx serves: {ctx.container('nginx')} does not answer "
            "(start it: stackdeck restart nginx)",
            step="prepare",
        )
    frm = view.serving
    to = other_colour(frm)
    from_version = view.serving_version()
    serving_view = view.colours[frm]
    if serving_view.state != "running":
        raise OpFailed(
            f"nginx routes to {frm} but its container is {serving_view.state}; fix that first (stackdeck rollback)",
            step="prepare",
        )
    fview = await observe_frontend(ctx) if with_frontend else None
    ffrm = (fview.serving or frm) if fview else frm
    fto = other_colour(ffrm)
    ffrom_version = fview.serving_version() if fview else None
    if fview is not None and from_version == version and not force and ffrom_version != version:
        # the API already serves it: the page alone catches up
        progress.info("prepare", f"{frm} already serves {version}: deploying the frontend alone")
        await _deploy_frontend_only(
            ctx,
            progress,
            record=record,
            version=version,
            build=build,
            force=False,
            h_timeout=h_timeout,
            services=[s for s in services if s != "backend"],
        )
        return
    if from_version == version and not force and (fview is None or ffrom_version == version):
        progress.done(
            f"{frm} already serves {version}; nothing to do (--force to redeploy it)",
            colour=frm,
            version=version,
        )
        return
    to_prev = view.colours[to].version or view.colours[to].slot_version
    progress.info(
        "prepare",
        f"{frm} serves {from_version}; deploying {version} to {to} (which holds {to_prev or 'nothing'})",
        from_colour=frm,
        to_colour=to,
        from_version=from_version,
    )

    image = await ensure_image(ctx, version, build, progress) if "backend" in services else None
    digest = image_id(image)
    frontend_journal: dict[str, Any] | None = None
    if fview is not None:
        fimage = await ensure_frontend_image(ctx, version, build, progress)
        fto_prev = fview.colours[fto].version or fview.colours[fto].slot_version
        frontend_journal = {
            "from_colour": ffrm,
            "to_colour": fto,
            "from_version": ffrom_version,
            "to_prev_version": fto_prev,
            "version": version,
        }
        progress.info(
            "prepare",
            f"frontend: {frontend_service(ffrm)} serves {ffrom_version}; deploying {version} to "
            f"{frontend_service(fto)} (which holds {fto_prev or 'nothing'}); one switch moves / "
            "and /api/",
            frontend=frontend_journal,
        )

    _open_record(record, "blue-green", view, version, to)
    record.note(image=image_ref(ctx.image_repo, version), image_digest=digest, services=services)
    if frontend_journal is not None:
        _note_frontend(ctx, record, frontend_journal, fimage)
    if "backend" not in services:
        # worker only
        await move_worker(ctx, version, progress, h_timeout)
        record.succeed()
        progress.done(f"worker on {version}")
        return

    journal = record.begin_journal(
        strategy="blue-green",
        version=version,
        from_version=from_version,
        from_colour=frm,
        to_colour=to,
        to_prev_version=to_prev,
        image=image_ref(ctx.image_repo, version),
        image_digest=digest,
        services=services,
        after_switch="switch-back",
        keep_previous=ctx.keep_previous_colour,
        frontend=frontend_journal,
    )
    undo = _undo_blue_green_with_frontend if frontend_journal else _undo_blue_green
    step = "start-idle"
    notes: list[tuple[str, str]] = []
    silence = await silence_expected(
        ctx,
        progress,
        op="deploy",
        op_id=op_id,
        colour=to,
        version=version,
        seconds=h_timeout + bake_s,
    )
    cleanup.push_async_callback(silence.expire, progress)
    record.note(silence_id=silence.silence_id)
    try:
        record.step("start-idle")
        progress.start("start-idle", f"starting {to} with {version}")
        await start_colour(ctx, to, version)
        progress.ok("start-idle", f"{to} started")
        if with_frontend:
            step = "start-frontend"
            record.step(step, frontend_started=True)
            progress.start(step, f"starting {frontend_service(fto)} with {version}")
            await start_frontend(ctx, fto, version)
            progress.ok(step, f"{frontend_service(fto)} started")

        step = "wait-healthy"
        record.step(step)
        container = ctx.container(f"backend_{to}")
        status = await wait_ready(ctx, to, version, progress, h_timeout)
        if with_frontend:
            step = "frontend-healthy"
            record.step(step)
            await wait_frontend_ready(ctx, fto, version, progress, h_timeout, step=step)

        step = "migrate"
        record.step(step)
        progress.info("migrate", status.describe(), pending=status.pending)
        if backup == "always" or (backup == "auto" and status.pending):
            step = "backup"
            record.step(step)
            taken = await take_backup(
                ctx,
                progress,
                reason=f"pre-deploy {version}",
                serving_version=from_version,
                op_id=op_id,
            )
            record.mark(backup_id=taken.id)
            record.note(backup_id=taken.id)
            step = "migrate"
        elif status.pending:
            progress.warn("backup", "migrations are pending and backup=never: no backup taken")
        if status.pending:
            await upgrade(ctx, container, progress)
        revision = await schema_revision(ctx)
        record.mark(schema_revision=revision)
        record.note(schema_revision=revision)

        step = "smoke"
        record.step(step)
        await smoke_colour(ctx, to, version, progress)

        step = "replicas"
        record.step(step)
        replicas = await ensure_colour_replicas(ctx, to, version, progress, timeout_s=h_timeout)
        if replicas > 1:
            progress.ok(step, f"{to} runs {replicas} healthy containers ({REPLICAS_VAR})")

        step = "switch"
        record.step(step, switch_started=True)
        if with_frontend:
            progress.start(
                "switch",
                f"switching nginx in one reload: /api/ from {frm} to {to}, / from "
                f"{frontend_service(ffrm)} to {frontend_service(fto)} (nginx -t, graceful reload)",
            )
            await switch_with_backend(ctx, to, version, fto, version)
        else:
            progress.start(
                "switch", f"switching nginx from {frm} to {to} (nginx -t, graceful reload)"
            )
            await switch_traffic(ctx, to, version)
        record.mark(switched=True)
        progress.ok(
            "switch",
            f"nginx serves {to} ({version})"
            + (f" and the page from {frontend_service(fto)}" if with_frontend else ""),
            colour=to,
            frontend_colour=fto if with_frontend else None,
        )
        # the price streams still open on the old colour move to the new one
        await hand_off_streams(ctx, backend_service(frm), progress, step="switch")

        step = "bake"
        record.step(step)
        await bake(
            ctx, to, version, progress, seconds=bake_s, max_p95_ms=p95_max, max_error_rate=err_max
        )
        record.mark(bake_passed=True)
    except asyncio.CancelledError:
        await _undo_after_cancel(ctx, record, journal, notes, undo, step=step)
        raise
    except Exception as exc:
        reason, switched, undo_error = await _undo_after_failure(
            ctx,
            progress,
            record,
            journal,
            notes,
            undo,
            step=step,
            exc=exc,
            bake=getattr(exc, "data", None) or None,
        )
        await cleanup.aclose()
        where = f"{frm} ({from_version})"
        if undo_error:
            raise OpFailed(
                f"deploy of {version} failed at {step} ({reason}) and the automatic rollback failed too: {undo_error}. "
                "Run `stackdeck status` and `stackdeck rollback`",
                step=step,
            ) from None
        raise OpFailed(
            f"deploy of {version} failed at {step}: {reason}. "
            + (
                f"Traffic was switched back to {where}."
                if switched
                else f"Traffic never left {where}."
            ),
            step=step,
            data={"failed_step": step},
        ) from None

    # --- committed: traffic stays on the new colour -------------------------------
    try:
        removed = await remove_colour_replicas(ctx, frm)
        if removed:
            progress.ok(
                "keep-old",
                f"{frm}'s replicas removed ({', '.join(removed)}); its own container stays",
            )
    except OpError as exc:
        progress.warn("keep-old", f"could not remove {frm}'s replicas: {exc}")
    if ctx.keep_previous_colour:
        record.step("keep-old")
        progress.ok(
            "keep-old",
            f"{frm} ({from_version}) keeps running, out of the upstream: the instant rollback "
            "target (stackdeck rollback)",
            colour=frm,
            version=from_version,
        )
    else:
        record.step("stop-old")
        progress.start("stop-old", f"stopping {frm} ({from_version}), kept for rollback")
        try:
            await stop_colour(ctx, frm)
            progress.ok("stop-old", f"{frm} stopped (rollback: stackdeck rollback)")
        except OpError as exc:
            progress.warn("stop-old", f"could not stop {frm}: {exc}")
        if with_frontend:
            try:
                await stop_frontend(ctx, ffrm)
                progress.ok("stop-old", f"{frontend_service(ffrm)} stopped (kept for rollback)")
            except OpError as exc:
                progress.warn("stop-old", f"could not stop {frontend_service(ffrm)}: {exc}")
    if "worker" in services:
        await move_worker(ctx, version, progress, h_timeout)
    await cleanup.aclose()  # the silence ends before the deploy reports done
    duration = record.succeed()
    progress.done(
        f"deployed {version} to {to} in {duration:.1f} s ({frm} keeps {from_version} for rollback)"
        + (
            f"; the page from {frontend_service(fto)} ({frontend_service(ffrm)} keeps "
            f"{ffrom_version})"
            if with_frontend
            else ""
        ),
        version=version,
        colour=to,
        frontend_colour=fto if with_frontend else None,
        duration_s=round(duration, 1),
        backup_id=record.history.get("backup_id"),
    )


async def _undo_rolling(ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]) -> None:
    """Back to where the rolling deploy started: the colour's own container
    on the version it ran, traffic on it, no surge container.

    Traffic never stops while it runs: when the colour's own container was
    already being recreated, the surge (healthy, it took the traffic) keeps
    serving until the colour's container is back on its version and healthy.
    The surge is removed only once traffic is off it. Reports nothing (it
    also runs when the operation is cancelled); what it did goes into
    ``notes`` as (status, message).
    """
    d = journal.data
    colour, version = d["from_colour"], d["version"]
    prev = d.get("prev_version")
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    if d.get("replace_started"):
        if not prev or await image_info(ctx, image_ref(ctx.image_repo, prev)) is None:
            notes.append(
                (
                    "fail",
                    f"{own} was recreated with {version} and {prev}'s image is gone: {surge} keeps serving",
                )
            )
            raise OpFailed(
                f"cannot put {own} back on {prev}: {surge} ({version}) still serves",
                step="rollback",
            )
        update_deploy_env(ctx.deploy_env_path, {version_var(colour): prev})
        await compose(ctx, "up", "-d", "--no-deps", "--force-recreate", own, timeout_s=180)
        async for _event in wait_healthy(ctx, colour, prev, Emitter("deploy"), step="rollback"):
            pass
        notes.append(("ok", f"{own} recreated with {prev} while {surge} served"))
    if d.get("switch_started"):
        try:
            await switch_traffic(ctx, colour, str(prev))
            notes.append(("ok", f"traffic switched back to {own} ({prev})"))
        except OpError as exc:
            notes.append(("fail", f"could not switch traffic back to {own}: {exc}"))
            raise
    else:
        notes.append(("info", f"traffic never left {own} ({prev})"))
    try:
        if await remove_surge(ctx, colour):
            notes.append(("ok", f"removed {surge}"))
    except OpError as exc:
        notes.append(("warn", f"removing {surge}: {exc}"))


async def _rolling(
    ctx: OpContext,
    progress: Progress,
    *,
    op_id: str,
    version: str,
    services: list[str] | None = None,
    build: bool = False,
    force: bool = False,
    backup: str = "auto",
    health_timeout: float | None = None,
    **_: Any,
) -> None:
    """The runbook's method 2, start-first (as Swarm's ``order: start-first``
    and docker-rollout do), with no downtime:

    1. start the new version in the serving colour's surge container
       (``backend_<colour>_surge``), beside the colour's own container;
    2. wait until it is healthy and reports the new version through
       ``/direct/<colour>_surge``; back up and migrate as blue-green does
       (expand-only: the old version keeps working); smoke-test it;
    3. switch nginx to the surge (``nginx -t``, graceful reload, confirmed
       through nginx), and drain the colour's own container;
    4. recreate the colour's own container with the new version (deploy.env
       names it from then on) while the surge serves; wait until healthy;
    5. switch nginx back to the colour's own container, drain the surge,
       remove it; then the worker, recreated in place (it serves no
       requests).

    The stack ends as a normal one: the colour's own container runs the new
    version, no surge. There is no bake and no warm previous colour: the
    other colour keeps whatever it held (the rollback target). Any failure
    or cancel before step 5 undoes it all without downtime
    (:func:`_undo_rolling`).
    """
    services = [s for s in (services or ["backend", "worker"]) if s in DEPLOYABLE]
    h_timeout = health_timeout or ctx.health_timeout
    record = OpRecord(ctx, "deploy", op_id)
    await recover(ctx, progress, op_id=op_id)
    if "frontend" in services and "backend" not in services:
        await _deploy_frontend_only(
            ctx,
            progress,
            record=record,
            version=version,
            build=build,
            force=force,
            h_timeout=h_timeout,
            services=services,
            rolling=True,
        )
        return
    view = await observe(ctx)
    if view.serving is None:
        raise OpFailed(
            f"cannot tell which colour nginx serves: {ctx.container('nginx')} does not answer "
            "(start it: stackdeck restart nginx)",
            step="prepare",
        )
    colour = view.serving
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    if view.serving_slot is not None:
        # left by a rolling deploy whose own undo failed (its journal says so):
        # recreating that surge now would stop what serves
        raise OpFailed(
            f"nginx routes to {surge}, left by an earlier rolling deploy that could not finish "
            f"or undo itself (stackdeck history): put traffic on a colour's own container first "
            f"(stackdeck rollback), then remove it: docker rm -f {ctx.container(surge)}",
            step="prepare",
        )
    current = view.colours[colour]
    from_version = view.serving_version()
    # N containers behind nginx's pool: replaced one at a time through it
    replicas = await pooled_containers(ctx, view, colour) if "backend" in services else 1
    if view.serving_version() == version and not force and services == ["backend"]:
        progress.done(f"{colour} already serves {version}; nothing to do")
        return
    if "backend" in services and current.state != "running":
        raise OpFailed(
            f"nginx routes to {colour} but its container is {current.state}; fix that first "
            "(stackdeck rollback)",
            step="prepare",
        )
    prev = current.version or current.slot_version
    if "backend" in services:
        progress.info(
            "prepare",
            f"{colour} serves {from_version}; rolling {version} onto {colour} start-first: "
            + (
                f"{surge} takes the traffic while {own} is recreated"
                if replicas == 1
                else f"{surge} joins nginx's pool, then its {replicas} containers are replaced "
                "one at a time"
            ),
            colour=colour,
            from_version=from_version,
            replicas=replicas,
        )
    image = await ensure_image(ctx, version, build, progress)
    # the frontend's image before anything changes: method 2's order is the
    # backend first (verified), then the frontend
    frontend = (
        await _prepare_frontend(ctx, progress, version, build, rolling=True)
        if "frontend" in services
        else None
    )
    if "backend" in services:
        await _ensure_surge_route(ctx, colour, progress)
    _open_record(record, "rolling", view, version, colour)
    record.note(
        image=image_ref(ctx.image_repo, version),
        image_digest=image_id(image),
        services=services,
    )
    journal = record.begin_journal(
        strategy="rolling",
        version=version,
        from_version=from_version,
        from_colour=colour,
        to_colour=None,
        prev_version=prev,
        image=image_ref(ctx.image_repo, version),
        services=services,
    )
    if "backend" in services:
        await _roll_backend(
            ctx,
            progress,
            record=record,
            journal=journal,
            op_id=op_id,
            colour=colour,
            version=version,
            from_version=from_version,
            prev=prev,
            backup=backup,
            h_timeout=h_timeout,
            replicas=replicas,
        )
    if "worker" in services:
        await _recreate_worker(ctx, progress, record=record, version=version, h_timeout=h_timeout)
    if frontend is not None:
        fe, fimage = frontend
        _note_frontend(ctx, record, fe, fimage)
        await _frontend_handover(
            ctx,
            progress,
            record=record,
            journal=journal,
            fe=fe,
            h_timeout=h_timeout,
            keep_old=False,
            backend_committed="backend" in services,
        )
    duration = record.succeed()
    progress.done(
        f"rolling deploy of {version} done in {duration:.1f} s"
        + (f" ({own} runs it; {surge} was removed)" if "backend" in services else "")
        + (
            f"; the page from {frontend_service(frontend[0]['to_colour'])}"
            if frontend is not None
            else ""
        ),
        version=version,
        colour=colour,
        duration_s=round(duration, 1),
        backup_id=record.history.get("backup_id"),
    )


async def _ensure_surge_route(ctx: OpContext, colour: str, progress: Progress) -> None:
    """nginx has loaded ``/direct/<colour>_surge/`` (compose/nginx/conf/site.conf),
    the route that checks the surge before it serves; reloaded once
    (gracefully) when it has not: a site.conf updated under a running nginx.
    Which location answered is its ``X-Upstream-Colour``: the colour for a
    direct route, ``backend_<colour>`` for the catch-all."""
    path = f"/direct/{colour}_{SURGE}/api/health"
    async with client(ctx) as http:
        p = await probe(http, path)
        if p.upstream == colour:
            return
        progress.info("prepare", f"nginx has not loaded {path} yet: reloading its configuration")
        await reload_nginx(ctx)
        # the reload is asynchronous: new workers take over within moments
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            p = await probe(http, path)
            if p.upstream == colour:
                progress.ok("prepare", f"nginx routes {path}")
                return
            await asyncio.sleep(0.2)
    raise OpFailed(
        f"nginx does not route {path} (answer: {p.describe()}, upstream {p.upstream}): its "
        "configuration lacks the surge routes of compose/nginx/conf/site.conf",
        step="prepare",
    )


async def _roll_backend(
    ctx: OpContext,
    progress: Progress,
    *,
    record: OpRecord,
    journal: Journal,
    op_id: str,
    colour: str,
    version: str,
    from_version: str | None,
    prev: str | None,
    backup: str,
    h_timeout: float,
    replicas: int = 1,
) -> None:
    """Steps 1-5 of :func:`_rolling` for the backend; steps 3-5 through
    nginx's pool, one container at a time, when the colour runs ``replicas``
    > 1 containers (:func:`~console.core.ops.rolling_pool.roll_pool`)."""
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    notes: list[tuple[str, str]] = []
    pooled = replicas > 1
    undo: Undo = undo_rolling_pool if pooled else _undo_rolling
    if pooled:
        record.mark(replicas=replicas)
    step = "start-surge"
    try:
        record.step(step)
        progress.start(step, f"starting {surge} with {version} beside {own} ({prev})")
        await start_surge(ctx, colour, version)
        progress.ok(step, f"{surge} started", container=ctx.container(surge))

        step = "surge-healthy"
        record.step(step)
        status = await wait_ready(ctx, colour, version, progress, h_timeout, slot=SURGE, step=step)

        step = "migrate"
        record.step(step)
        progress.info("migrate", status.describe(), pending=status.pending)
        if backup == "always" or (backup == "auto" and status.pending):
            step = "backup"
            record.step(step)
            taken = await take_backup(
                ctx,
                progress,
                reason=f"pre-deploy {version}",
                serving_version=from_version,
                op_id=op_id,
            )
            record.mark(backup_id=taken.id)
            record.note(backup_id=taken.id)
            step = "migrate"
        elif status.pending:
            progress.warn("backup", "migrations are pending and backup=never: no backup taken")
        if status.pending:
            await upgrade(ctx, ctx.container(surge), progress)
        revision = await schema_revision(ctx)
        record.mark(schema_revision=revision)
        record.note(schema_revision=revision)

        step = "smoke"
        record.step(step)
        await smoke_colour(ctx, colour, version, progress, slot=SURGE)

        if pooled:
            await roll_pool(
                ctx,
                progress,
                record=record,
                colour=colour,
                version=version,
                prev=prev,
                h_timeout=h_timeout,
            )
        else:
            step = "switch-surge"
            record.step(step, switch_started=True)
            progress.start(
                step, f"switching nginx from {own} to {surge} (nginx -t, graceful reload)"
            )
            await switch_traffic(ctx, colour, version, slot=SURGE)
            record.mark(switched=True)
            progress.ok(step, f"nginx serves {surge} ({version})", colour=colour, slot=SURGE)

            step = "drain-old"
            record.step(step)
            await wait_drained(ctx, own, progress, step=step)

            step = "replace"
            record.step(step, replace_started=True)
            progress.start(
                step, f"recreating {own} with {version} (was {prev}); {surge} serves meanwhile"
            )
            update_deploy_env(ctx.deploy_env_path, {version_var(colour): version})
            await compose(ctx, "up", "-d", "--no-deps", "--force-recreate", own, timeout_s=180)
            progress.ok(step, f"{own} recreated with {version}")

            step = "replace-healthy"
            record.step(step)
            await progress.relay(
                wait_healthy(ctx, colour, version, progress.emitter, timeout_s=h_timeout, step=step)
            )

            step = "switch-home"
            record.step(step)
            progress.start(step, f"switching nginx from {surge} back to {own} (graceful reload)")
            await switch_traffic(ctx, colour, version)
            record.mark(home=True)
            progress.ok(step, f"nginx serves {own} ({version})", colour=colour)
    except asyncio.CancelledError:
        if pooled and journal.data.get("switch_started"):  # _roll_pool journals its steps
            step = str(journal.data.get("step") or step)
        await _undo_after_cancel(ctx, record, journal, notes, undo, step=step)
        raise
    except Exception as exc:
        if pooled and journal.data.get("switch_started"):
            step = str(journal.data.get("step") or step)
        reason, switched, undo_error = await _undo_after_failure(
            ctx, progress, record, journal, notes, undo, step=step, exc=exc
        )
        where = f"{own} ({prev})" if not pooled else f"{colour}'s {replicas} containers ({prev})"
        if undo_error:
            raise OpFailed(
                f"rolling deploy of {version} failed at {step} ({reason}) and the automatic rollback "
                f"failed too: {undo_error}. Run `stackdeck status` and `stackdeck rollback`",
                step=step,
            ) from None
        raise OpFailed(
            f"rolling deploy of {version} failed at {step}: {reason}. "
            + (
                f"Traffic was switched back to {where}; {surge} was removed."
                if switched
                else f"Traffic never left {where}; {surge} was removed."
            ),
            step=step,
            data={"failed_step": step},
        ) from None

    # --- committed: the colour's own container serves the new version --------
    try:
        step = "drain-surge"
        record.step(step)
        await wait_drained(ctx, surge, progress, step=step)
        step = "remove-surge"
        record.step(step)
        progress.start(step, f"removing {surge}")
        await remove_surge(ctx, colour)
        progress.ok(step, f"{surge} removed")
    except asyncio.CancelledError:
        await asyncio.shield(_remove_surge_quietly(ctx, colour))
        record.succeed()
        raise
    except OpError as exc:
        progress.warn(
            step,
            f"could not remove {surge} ({exc}); nginx no longer routes to it: "
            f"`docker rm -f {ctx.container(surge)}`",
        )


async def _remove_surge_quietly(ctx: OpContext, colour: str) -> None:
    with contextlib.suppress(OpError):
        await remove_surge(ctx, colour)


async def _recreate_worker(
    ctx: OpContext, progress: Progress, *, record: OpRecord, version: str, h_timeout: float
) -> None:
    """Every worker, recreated in place (they serve no requests), each
    confirmed by its own heartbeat; put back on their version when they do
    not come up."""
    env = read_deploy_env(ctx.deploy_env_path)
    prev = env.get("WORKER_VERSION")
    step = "recreate-worker"
    state, _ = container_health(await inspect_container(ctx, ctx.container("worker")))
    if state != "running":
        # scaled to 0 (by hand or by the schedule): stays stopped, as a
        # blue-green deploy's move_worker leaves it
        update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": version})
        progress.info(
            step, f"worker is {state} (scaled to 0?): WORKER_VERSION set to {version}, not started"
        )
        return
    replicas = await list_service(ctx, WORKER_REPLICA)
    count = max(1, workers_wanted(env, len(replicas)))
    record.step(step, service="worker", prev_version=prev, workers=count)
    progress.start(step, f"recreating {count} worker(s) with {version} (was {prev})")
    update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": version})
    try:
        await recreate_workers(ctx, count, progress, step=step, timeout_s=h_timeout, force=True)
    except OpError as exc:
        reason = ctx.redact(str(exc))
        progress.fail(step, reason)
        if prev:
            progress.start("rollback", f"putting the workers back on {prev}")
            update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": prev})
            await compose(ctx, "up", "-d", "--no-deps", "--force-recreate", "worker", timeout_s=180)
            if count > 1:
                await compose(
                    ctx,
                    "up",
                    "-d",
                    "--no-deps",
                    "--force-recreate",
                    "--scale",
                    f"{WORKER_REPLICA}={count - 1}",
                    WORKER_REPLICA,
                    timeout_s=240,
                )
            progress.ok("rollback", f"workers recreated with {prev}")
        record.fail("failed", reason, history_reason=f"{step}: {reason}", failed_step=step)
        raise OpFailed(
            f"rolling deploy of {version} failed at {step}: {reason}", step=step
        ) from None
    progress.ok(step, f"{count} worker(s) run {version}")
