"""Moving the worker to a version (deploy: to the new one, after traffic;
rollback: back with the version it followed). Ready once its own heartbeat
reports that version, without waiting for the engine's first health check."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from console.core.ops.context import OpContext
from console.core.ops.errors import OpError
from console.core.ops.proc import compose, inspect_container
from console.core.ops.progress import Progress
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.steps.health import ReadyProbe, wait_service_healthy
from console.core.sources.docker.inspect import container_health, hostname_of

__all__ = ["WORKER_HEARTBEAT_MAX_AGE_S", "heartbeat_verdict", "move_worker", "worker_heartbeat"]

WORKER_HEARTBEAT_MAX_AGE_S = 60.0
"""The worker's health check accepts a heartbeat this old (the platform's default)."""


async def move_worker(ctx: OpContext, version: str, progress: Progress, timeout_s: float) -> None:
    """Run the worker on ``version`` (only started when it was running); put
    back on the version it had when it does not come up."""
    env = read_deploy_env(ctx.deploy_env_path)
    prev = env.get("WORKER_VERSION")
    if prev == version:
        return
    info = await inspect_container(ctx, ctx.container("worker"))
    state, _ = container_health(info)
    update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": version})
    if state != "running":
        progress.info(
            "worker",
            f"worker is {state} (scaled to 0?): WORKER_VERSION set to {version}, not started",
        )
        return
    progress.start("worker", f"moving the worker from {prev} to {version}")
    try:
        await compose(ctx, "up", "-d", "--no-deps", "worker", timeout_s=180)
        await wait_service_healthy(
            ctx, "worker", progress, timeout_s=timeout_s, ready=worker_heartbeat(ctx, version)
        )
    except OpError as exc:
        progress.warn("worker", f"worker on {version} failed ({exc}); putting it back on {prev}")
        if prev:
            update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": prev})
            await compose(ctx, "up", "-d", "--no-deps", "worker", timeout_s=180)
        return
    progress.ok("worker", f"worker runs {version}")


def heartbeat_verdict(
    raw: str | bytes | None, hostname: str, version: str, now: float
) -> str | None:
    """Why the worker's heartbeat (``worker:heartbeat``) shows that the
    container with ``hostname`` runs ``version`` and is alive; None when it
    does not (missing, unreadable, another container's, another version,
    older than the health check accepts)."""
    if not raw or not hostname:
        return None
    try:
        beat = json.loads(raw)
        age = now - float(beat["epoch"])
    except (ValueError, TypeError, KeyError):
        return None
    if (
        str(beat.get("worker", "")).split(":")[0] != hostname
        or beat.get("version") != version
        or not -5 < age <= WORKER_HEARTBEAT_MAX_AGE_S
    ):
        return None
    return f"its heartbeat reports {version} ({max(age, 0):.0f} s old)"


def worker_heartbeat(ctx: OpContext, version: str) -> ReadyProbe:
    """The worker's liveness as its health check judges it (a fresh
    ``worker:heartbeat`` in Redis), without waiting for the engine to run that
    check: its first run comes one ``interval`` (30 s) after the start.
    Stricter than the check itself (:func:`heartbeat_verdict`): the beat must
    come from *this* container and report ``version``, so the old worker's
    last beat does not count."""
    from platform_services.providers.keys import WORKER_HEARTBEAT_KEY

    async def ready(info: dict[str, Any]) -> str | None:
        hostname = hostname_of(info)
        try:
            from console.core.ops.db import connect_redis

            redis = connect_redis(ctx)
            try:
                raw = await asyncio.wait_for(redis.get(WORKER_HEARTBEAT_KEY), 5)
            finally:
                await redis.aclose()
        except Exception:  # Redis unreachable from here: the engine's check decides
            return None
        return heartbeat_verdict(raw, hostname, version, time.time())

    return ready
