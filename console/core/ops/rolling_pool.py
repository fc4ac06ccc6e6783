"""The rolling deploy with N backend containers behind nginx's pool
(``stackdeck scale backend=N``, :mod:`console.core.ops.replicas`): one
container at a time, start-first, as Swarm's ``update_config`` with
``parallelism: 1`` and ``order: start-first`` does.

The single-container rolling deploy (``console/core/ops/deploy.py``,
``_roll_backend``) moves nginx's target to the colour's surge and back. With
N containers the target stays ``backend_<colour>``; what changes is the
membership of its pool (pool.conf, ``nginx -t``, graceful reload, confirmed
through nginx's ``X-Upstream-Addr``): the surge joins it, each old container
leaves it, is drained and replaced by a new-version one that joins once
healthy, and the surge leaves last. The pool never has fewer than N
members, nor one that is not healthy (members are added only once their
health check passes, and taken out before they stop).

The undo (:func:`undo_rolling_pool`) does the same backwards from whatever
the journal and the containers show, so it also serves the recovery of a
process killed halfway (:mod:`console.core.ops.recovery`).
"""

from __future__ import annotations

import contextlib

from console.core.ops.backend import (
    StackView,
    remove_surge,
    version_var,
    wait_healthy,
)
from console.core.ops.context import SURGE, OpContext, backend_service
from console.core.ops.errors import OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.journal import Journal
from console.core.ops.lifecycle import OpRecord
from console.core.ops.proc import compose, image_info, inspect_container
from console.core.ops.progress import Progress
from console.core.ops.replicas import (
    REPLICAS_VAR,
    colour_members,
    drain_and_remove,
    list_replicas,
    member_of,
    read_pool_map,
    replicas_wanted,
    route_pool,
    start_replicas,
)
from console.core.ops.statefiles import update_deploy_env
from console.core.ops.steps.drain import wait_drained
from console.core.ops.versions import image_ref
from console.core.sources.docker.inspect import container_version

__all__ = ["pooled_containers", "roll_pool", "undo_rolling_pool"]


async def pooled_containers(ctx: OpContext, view: StackView, colour: str) -> int:
    """How many containers serve ``colour``: 1, or ``BACKEND_REPLICAS`` when
    that many run healthy in nginx's pool (``stackdeck scale backend=N``).
    Anything in between (a replica gone, one not in the pool, replicas while
    deploy.env says 1) is refused before anything changes."""
    wanted = replicas_wanted(view.deploy_env)
    running = await list_replicas(ctx, colour)
    if wanted == 1 and not running:
        return 1
    members = await colour_members(ctx, colour)
    pooled = colour in await read_pool_map(ctx)
    if wanted > 1 and len(running) == wanted - 1 and len(members) == wanted and pooled:
        return wanted
    raise OpFailed(
        f"{colour} should run {wanted} container(s) ({REPLICAS_VAR} in deploy.env) but "
        f"{len(members)} run healthy ({', '.join(m.container for m in members) or 'none'})"
        + ("" if pooled or wanted == 1 else ", and nginx has no pool for them")
        + f": `stackdeck scale backend={wanted}` first, then deploy again",
        step="prepare",
    )


async def roll_pool(
    ctx: OpContext,
    progress: Progress,
    *,
    record: OpRecord,
    colour: str,
    version: str,
    prev: str | None,
    h_timeout: float,
) -> None:
    """Steps 3-5 of the rolling deploy (``console/core/ops/deploy.py``,
    ``_rolling``) when ``colour`` runs N containers behind nginx's pool
    (:mod:`console.core.ops.replicas`): one at a time, never fewer than N in
    the pool, never one that is not healthy.

    The surge (healthy, smoke-tested) joins the pool; each replica of the
    old version leaves it (graceful reload), is drained, stopped and
    removed, and a new-version replica joins once healthy; then the
    colour's own container leaves, is drained and recreated with the new
    version (deploy.env names it from then on) and joins once healthy while
    the surge leaves. Each change of the pool is confirmed through nginx.
    The steps are journaled for :func:`undo_rolling_pool`.
    """
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    own_name, surge_name = ctx.container(own), ctx.container(surge)
    step = "switch-surge"
    record.step(step, switch_started=True)
    surge_member = member_of(ctx, await inspect_container(ctx, surge_name))
    if surge_member is None:
        raise OpFailed(f"{surge} does not run healthy any more", step=step)
    pool = await colour_members(ctx, colour)
    old = await list_replicas(ctx, colour)
    progress.start(
        step,
        f"adding {surge} ({version}) to nginx's pool of {colour} beside its {len(pool)} "
        f"containers ({prev})",
    )
    pool.append(surge_member)
    await route_pool(ctx, colour, pool, progress, step=step)
    record.mark(switched=True)

    for info in old:
        name = str(info.get("Name", "")).lstrip("/")
        step = "replace-replica"
        record.step(step, replica=name)
        progress.start(step, f"{name} ({prev}) out of nginx's pool, drained, removed")
        pool = [m for m in pool if m.container != name]
        await route_pool(ctx, colour, pool, progress, step=step)
        await drain_and_remove(ctx, [info], progress, step=step)
        step = "replica-healthy"
        record.step(step)
        progress.start(step, f"starting a replica of {colour} with {version} in its place")
        pool += await start_replicas(
            ctx, colour, version, 1, progress, step=step, timeout_s=h_timeout
        )
        await route_pool(ctx, colour, pool, progress, step=step)

    step = "drain-old"
    record.step(step)
    progress.start(step, f"{own} ({prev}) out of nginx's pool (graceful reload)")
    pool = [m for m in pool if m.container != own_name]
    await route_pool(ctx, colour, pool, progress, step=step)
    await wait_drained(ctx, own, progress, step=step)

    step = "replace"
    record.step(step, replace_started=True)
    progress.start(step, f"recreating {own} with {version} (was {prev}); the pool serves meanwhile")
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
    progress.start(step, f"{own} ({version}) into nginx's pool, {surge} out (graceful reload)")
    own_member = member_of(ctx, await inspect_container(ctx, own_name))
    if own_member is None:
        raise OpFailed(f"{own} does not run healthy any more", step=step)
    pool = [own_member] + [m for m in pool if m.container != surge_name]
    await route_pool(ctx, colour, pool, progress, step=step)
    record.mark(home=True)
    progress.ok(
        step, f"nginx's pool of {colour}: {len(pool)} containers on {version}", colour=colour
    )


async def undo_rolling_pool(ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]) -> None:
    """Back to where a rolling deploy of N containers started
    (:func:`roll_pool`): the colour's own container and N-1 replicas on the
    version they ran, in nginx's pool, no surge, no new-version replica.

    Start-first too: the colour's own container is recreated only once it is
    out of the pool (the surge and the replicas serve); the missing
    old-version replicas are started and healthy before the pool is
    rewritten to the N old-version containers; only then are the others
    (new-version replicas, the surge) drained and removed. Reports nothing
    (it also runs when the operation is cancelled); what it did goes into
    ``notes`` as (status, message).
    """
    d = journal.data
    colour, prev = d["from_colour"], d.get("prev_version")
    n = int(d.get("replicas") or 2)
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    own_name, surge_name = ctx.container(own), ctx.container(surge)
    quiet = Progress(Emitter("deploy"), lambda _event: None)
    if not d.get("switch_started"):
        notes.append(("info", f"traffic never left {colour}'s {n} containers ({prev})"))
        with contextlib.suppress(OpError):
            if await remove_surge(ctx, colour):
                notes.append(("ok", f"removed {surge}"))
        return

    async def need_prev() -> str:
        if not prev or await image_info(ctx, image_ref(ctx.image_repo, prev)) is None:
            notes.append(("fail", f"{prev}'s image is gone: {colour} keeps what runs now"))
            raise OpFailed(
                f"cannot put {colour} back on {prev}: its image is gone", step="rollback"
            )
        return prev

    replicas = await list_replicas(ctx, colour)
    kept = [
        m
        for m in (member_of(ctx, i) for i in replicas if container_version(i) == prev)
        if m is not None
    ][: n - 1]
    others = [
        i for i in replicas if str(i.get("Name", "")).lstrip("/") not in {m.container for m in kept}
    ]
    serving = [m for m in (member_of(ctx, i) for i in others) if m is not None]
    surge_member = member_of(ctx, await inspect_container(ctx, surge_name))
    if surge_member is not None:
        serving.append(surge_member)
    own_info = await inspect_container(ctx, own_name)
    own_member = member_of(ctx, own_info)
    if own_member is None or container_version(own_info) != prev:
        # out of the pool (the others serve), back on its version, healthy
        target = await need_prev()
        await route_pool(ctx, colour, kept + serving, quiet, step="rollback")
        if own_member is not None:  # else not served (the pool takes only healthy members)
            await wait_drained(ctx, own, quiet, step="rollback")
        update_deploy_env(ctx.deploy_env_path, {version_var(colour): target})
        await compose(ctx, "up", "-d", "--no-deps", "--force-recreate", own, timeout_s=180)
        async for _event in wait_healthy(ctx, colour, target, Emitter("deploy"), step="rollback"):
            pass
        own_member = member_of(ctx, await inspect_container(ctx, own_name))
        if own_member is None:
            raise OpFailed(f"{own} ({target}) does not run healthy", step="rollback")
        notes.append(("ok", f"{own} recreated with {target} while the pool served"))
    if d.get("replace_started") and prev:
        # the forward path names the new version before recreating the
        # container; it runs the previous one now (healthy, or put back above)
        update_deploy_env(ctx.deploy_env_path, {version_var(colour): prev})
    if len(kept) < n - 1:
        target = await need_prev()
        kept += await start_replicas(
            ctx,
            colour,
            target,
            n - 1 - len(kept),
            quiet,
            step="rollback",
            timeout_s=ctx.health_timeout,
        )
        notes.append(("ok", f"{n - 1} replica(s) of {colour} on {target} healthy"))
    try:
        await route_pool(ctx, colour, [own_member, *kept], quiet, step="rollback")
        notes.append(("ok", f"nginx's pool of {colour} is back to its {n} containers ({prev})"))
    except OpError as exc:
        notes.append(("fail", f"could not put nginx's pool of {colour} back: {exc}"))
        raise
    try:
        await drain_and_remove(ctx, others, quiet, step="rollback")
        if others:
            notes.append(
                ("ok", f"removed {', '.join(str(i.get('Name', '')).lstrip('/') for i in others)}")
            )
        if surge_member is not None:
            await wait_drained(ctx, surge, quiet, step="rollback")
        if await remove_surge(ctx, colour):
            notes.append(("ok", f"removed {surge}"))
    except OpError as exc:
        notes.append(("warn", f"removing what is out of the pool: {exc}"))
