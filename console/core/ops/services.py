"""Scaling and restarting one service (the runbook's ``docker-compose scale
celery_worker=0``, ``--scale backend=N`` and ``docker-compose restart ...``).

The runbook's service names are accepted as aliases (``celery_worker``,
``postgres``, ``cache``), so its commands translate one to one.

:func:`validate_scale` then :func:`run_scale` is the one entry point for
scaling (the CLI, the TUI and schedules call it): ``worker=0..MAX_WORKERS``
(the worker plus N-1 active standbys, :mod:`console.core.ops.steps.worker`)
and ``backend=1..MAX_BACKEND`` (the serving colour's containers, behind
nginx, with no failed request: :mod:`console.core.ops.replicas`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from console.core.models import OpEvent
from console.core.ops.context import SERVICES, OpContext
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.proc import compose, inspect_container
from console.core.ops.table import RestartParams, ScaleParams

__all__ = [
    "parse_scale",
    "resolve_service",
    "run_restart",
    "run_scale",
    "validate_restart",
    "validate_scale",
]

ALIASES = {
    "celery_worker": "worker",
    "postgres": "db",
    "cache": "redis",
    "market_sim": "market-sim",
}
SCALABLE = ("worker", "backend")
MAX_SCALE = 10
MAX_BACKEND = 4
"""Containers of the serving colour at most: each has a 384 MiB limit
(compose/docker-compose.production.yml) and the runbook's server has 4 GB,
2 cores; four is what fits beside the rest of the stack."""
MIN_BACKEND = 1
"""Health checks (nginx's, the console's, Prometheus's) need a serving container."""
MAX_WORKERS = 3
"""Workers at most: one ingests per interval (the cycle lock and slot), the
others stand by, so a worker adds availability, never throughput; two
standbys survive any one failure during a deploy's recreate, and each worker
costs 256 MiB / half a core (compose/docker-compose.production.yml) on the
runbook's 4 GB, 2-core server."""


def _shown(value: object) -> str:
    return str(value).encode("unicode_escape").decode("ascii")[:40]


def resolve_service(name: object) -> str:
    """A compose service of the stack from its name or a runbook alias; BadInput otherwise."""
    text = str(name or "").strip()
    service = ALIASES.get(text, text)
    if service not in SERVICES:
        raise BadInput(
            f"unknown service '{_shown(name)}': the stack has {', '.join(SERVICES)}",
            field="service",
        )
    return service


def parse_scale(spec: object, count: object = None) -> tuple[str, int]:
    """``"worker=2"`` (or service and count apart) -> ``("worker", 2)``; worker
    0..MAX_WORKERS, backend MIN_BACKEND..MAX_BACKEND."""
    if count is None:
        m = re.fullmatch(
            r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(-?[0-9]+)\s*", str(spec or ""), re.ASCII
        )
        if not m:
            raise BadInput(
                f"expected SERVICE=N (e.g. worker=0), not '{_shown(spec)}'", field="scale"
            )
        spec, count = m.group(1), m.group(2)
    # "backend" and "frontend" name a part with colours, not one service
    name = str(spec).strip()
    service = name if name in ("backend", "frontend") else resolve_service(spec)
    if service not in SCALABLE:
        raise BadInput(
            f"{service} does not scale: the worker and the backend do (backend=N: the serving colour; "
            "backend_blue/backend_green and the frontend's colours frontend_blue/frontend_green are "
            "managed by deploy and rollback; db, redis, nginx and market-sim run once)",
            field="scale",
        )
    try:
        n = int(str(count))
    except ValueError:
        raise BadInput(
            f"replica count must be a whole number, not '{_shown(count)}'", field="scale"
        ) from None
    if service == "backend":
        if n < MIN_BACKEND:
            raise BadInput(
                f"backend cannot scale to {n}: at least {MIN_BACKEND} container must serve "
                "(nginx's and the console's health checks go through it); to stop the API, "
                "stop the stack",
                field="scale",
            )
        if n > MAX_BACKEND:
            raise BadInput(
                f"backend scales to at most {MAX_BACKEND} containers (384 MiB each on the runbook's "
                f"4 GB server), not {n}",
                field="scale",
            )
        return service, n
    if service == "worker" and n < 0:
        raise BadInput(
            f"worker scales to 0..{MAX_WORKERS}, not {n}: 0 stops ingestion (the API keeps "
            "serving), 1 is the worker alone, more add standbys",
            field="scale",
        )
    if service == "worker" and n > MAX_WORKERS:
        raise BadInput(
            f"worker scales to 0..{MAX_WORKERS}, not {n}: one worker ingests per interval "
            "(a Redis cycle lock), the others only stand by, so more than "
            f"{MAX_WORKERS} adds memory, not ingestion",
            field="scale",
        )
    if n < 0 or n > MAX_SCALE:
        raise BadInput(f"replica count must be between 0 and {MAX_SCALE}, not {n}", field="scale")
    return service, n


async def validate_scale(ctx: OpContext, params: ScaleParams) -> ScaleParams:
    if params.service is not None and params.count is not None:
        service, n = parse_scale(params.service, params.count)
    else:
        service, n = parse_scale(params.spec, params.count)
    return params.model_copy(update={"service": service, "count": n})


async def _wait(
    ctx: OpContext,
    service: str,
    ev: Emitter,
    timeout_s: float,
) -> AsyncIterator[OpEvent]:
    from console.core.ops.progress import Progress, run_steps
    from console.core.ops.steps.health import wait_service_healthy

    async def wait(progress: Progress) -> None:
        await wait_service_healthy(ctx, service, progress, timeout_s=timeout_s, step="wait-healthy")

    async for item in run_steps(ev, wait):
        yield item


async def run_scale(
    ctx: OpContext, params: ScaleParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("scale", ctx.redact)
    service, count = str(params.service), int(params.count or 0)
    if service == "backend":
        async for item in _scale_backend(ctx, count, ev):
            yield item
        return
    if service == "worker":
        async for item in _scale_worker(ctx, count, ev):
            yield item
        return
    raise OpFailed(f"{service} does not scale (validate_scale lets only {SCALABLE} through)")


async def _scale_worker(ctx: OpContext, count: int, ev: Emitter) -> AsyncIterator[OpEvent]:
    """The worker and ``count - 1`` standbys (:func:`console.core.ops.steps.worker.scale_workers`),
    each confirmed by its own heartbeat; the count kept in deploy.env
    (``WORKER_REPLICAS``) for deploys and rollbacks."""
    from console.core.ops.progress import Progress, run_steps
    from console.core.ops.steps.worker import scale_workers

    async def body(progress: Progress) -> None:
        names = await scale_workers(ctx, count, progress, timeout_s=ctx.health_timeout)
        if count == 0:
            progress.done(
                "worker scaled to 0: no ingestion (the worker's container kept, stopped; the "
                "standbys removed; scale worker=1 to bring it back)",
                count=0,
            )
            return
        progress.done(
            f"worker scaled to {count}: " + ", ".join(names), count=count, containers=names
        )

    async for item in run_steps(ev, body):
        yield item


async def _scale_backend(ctx: OpContext, count: int, ev: Emitter) -> AsyncIterator[OpEvent]:
    """The serving colour to ``count`` containers (:func:`console.core.ops.replicas.scale_colour`);
    the count kept in deploy.env (``BACKEND_REPLICAS``) for the next deploy.
    A failure puts the colour back to the count it had."""
    from console.core.ops.backend import observe
    from console.core.ops.progress import Progress, run_steps
    from console.core.ops.replicas import (
        colour_members,
        scale_colour,
        set_replicas_wanted,
    )

    async def body(progress: Progress) -> None:
        view = await observe(ctx)
        if view.serving is None:
            raise OpFailed(
                f"cannot tell which colour nginx serves: {ctx.container('nginx')} does not answer "
                "(start it: stackdeck restart nginx)",
                step="prepare",
            )
        colour = view.serving
        if view.serving_slot is not None:
            raise OpFailed(
                f"nginx routes to {colour}'s {view.serving_slot} container (a rolling deploy's "
                "hand-over): scale once it has finished (stackdeck history)",
                step="prepare",
            )
        if view.colours[colour].state != "running":
            raise OpFailed(
                f"nginx routes to {colour} but its container is {view.colours[colour].state}; "
                "fix that first (stackdeck rollback)",
                step="prepare",
            )
        before = await colour_members(ctx, colour)
        progress.info(
            "prepare",
            f"{colour} serves with {len(before)} container(s); scaling to {count}",
            colour=colour,
            before=len(before),
        )
        try:
            members = await scale_colour(ctx, colour, count, progress)
        except OpError as exc:
            progress.fail(exc.step or "scale", ctx.redact(str(exc)))
            progress.start("rollback", f"putting {colour} back to {len(before)} container(s)")
            try:
                await scale_colour(ctx, colour, max(1, len(before)), progress)
            except OpError as undo:
                # the first failure is the one to fix; say the put-back's too
                progress.warn(
                    "rollback",
                    f"could not put {colour} back to {len(before)} container(s): "
                    f"{ctx.redact(str(undo))}; see `stackdeck status`",
                )
            raise
        set_replicas_wanted(ctx, count)
        progress.done(
            f"backend scaled to {count}: {colour} serves from "
            + ", ".join(m.container for m in members),
            colour=colour,
            count=count,
            containers=[m.container for m in members],
        )

    async for item in run_steps(ev, body):
        yield item


async def validate_restart(ctx: OpContext, params: RestartParams) -> RestartParams:
    return params.model_copy(update={"service": resolve_service(params.service)})


async def run_restart(
    ctx: OpContext, params: RestartParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    from console.core.ops.backend import observe

    ev = Emitter("restart", ctx.redact)
    service = params.service
    if service.startswith("backend_"):
        view = await observe(ctx)
        if view.serving == service.removeprefix("backend_"):
            yield ev.warn(
                "restart",
                f"{service} serves traffic: requests fail while it restarts (a deploy or rollback switches without that)",
            )
    info = await inspect_container(ctx, ctx.container(service))
    if info is None:
        raise OpFailed(
            f"{service} has no container ({ctx.container(service)}); start the stack first",
            step="restart",
        )
    yield ev.start("restart", f"restarting {service}")
    await compose(ctx, "restart", service, timeout_s=180)
    async for item in _wait(ctx, service, ev, ctx.health_timeout):
        yield item
    yield ev.done(f"{service} restarted and healthy")
