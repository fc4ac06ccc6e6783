"""Waiting until what was started is healthy: a service's container (its
health check, or a readiness probe while the engine has not run that check
yet), or a backend colour on a version (through
:func:`console.core.ops.backend.wait_healthy`), with the migration status of
that version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from console.core.ops.backend import wait_healthy
from console.core.ops.context import OpContext, backend_service
from console.core.ops.errors import OpError, OpFailed
from console.core.ops.migrate import MigrationStatus, migration_status
from console.core.ops.proc import inspect_container
from console.core.ops.progress import Progress
from console.core.sources.docker.inspect import container_health, last_health_log

__all__ = ["ReadyProbe", "wait_ready", "wait_service_healthy"]

ReadyProbe = Callable[[dict[str, Any]], Awaitable[str | None]]
"""Given a running container's inspect data: why it is ready, or None (not yet)."""


async def wait_service_healthy(
    ctx: OpContext,
    service: str,
    progress: Progress,
    timeout_s: float = 180,
    step: str | None = None,
    ready: ReadyProbe | None = None,
) -> None:
    """Until a service's container is running and healthy (or has no check),
    or, while the engine's check has not run yet, ``ready`` says it is."""
    step = step or service
    name = ctx.container(service)
    start = time.monotonic()
    last_note = start
    while True:
        info = await inspect_container(ctx, name)
        state, health = container_health(info)
        if state == "running" and health in ("healthy", None):
            progress.ok(
                step,
                f"{service} is running"
                + (f" and {health}" if health else "")
                + f" ({time.monotonic() - start:.1f} s)",
            )
            return
        if state in ("exited", "dead", "missing") or health == "unhealthy":
            raise OpFailed(
                f"{service} is {health or state}: {last_health_log(info) or ''}".rstrip(": "),
                step=step,
            )
        if state == "running" and info is not None and ready is not None:
            why = await ready(info)
            if why:
                progress.ok(
                    step,
                    f"{service} is running and {why} ({time.monotonic() - start:.1f} s)",
                )
                return
        if time.monotonic() - start > timeout_s:
            raise OpFailed(
                f"{service} not healthy after {timeout_s:g} s (state {state}, health {health})",
                step=step,
            )
        if time.monotonic() - last_note > 5:
            last_note = time.monotonic()
            progress.info(
                step,
                f"{service}: {state}, health {health or 'n/a'} ({time.monotonic() - start:.0f} s)",
            )
        await asyncio.sleep(0.5)


async def wait_ready(
    ctx: OpContext,
    colour: str,
    version: str,
    progress: Progress,
    timeout_s: float,
    *,
    slot: str | None = None,
    step: str = "wait-healthy",
) -> MigrationStatus:
    """Until ``colour`` (its ``slot``'s container) is healthy on ``version``;
    returns the :class:`MigrationStatus` of that version.

    ``alembic heads`` costs a Python start-up in the new container: it runs
    while the container warms up rather than after."""
    container = ctx.container(backend_service(colour, slot))
    heads_task = asyncio.ensure_future(migration_status(ctx, container))
    try:
        await progress.relay(
            wait_healthy(
                ctx, colour, version, progress.emitter, timeout_s=timeout_s, step=step, slot=slot
            )
        )
    except BaseException:
        heads_task.cancel()
        raise
    try:
        return await heads_task
    except OpError:  # the container was not ready for it yet: once more, now it is
        return await migration_status(ctx, container)
