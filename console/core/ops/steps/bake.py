"""The bake window: requests through nginx for a while, the new colour's
health check watched too; it passes when the version, p95 latency and
error rate hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from console.core.ops.context import OpContext
from console.core.ops.errors import OpFailed
from console.core.ops.http import BakeStats, client, probe
from console.core.ops.proc import inspect_container
from console.core.ops.progress import Progress
from console.core.sources.docker.inspect import container_health, last_health_log

__all__ = ["HealthWatch", "bake"]

HealthWatch = Callable[[], Awaitable[str | None]]
"""Checked every 2 s during the bake: None while the new version is
healthy, else why not (the bake then fails with that reason)."""


def container_watch(ctx: OpContext, colour: str) -> HealthWatch:
    """The compose watch: the new colour's container runs and is not unhealthy."""
    name = ctx.container(f"backend_{colour}")

    async def watch() -> str | None:
        info = await inspect_container(ctx, name)
        state, health = container_health(info)
        if state != "running" or health == "unhealthy":
            return f"{colour} became {health or state} during the bake: {last_health_log(info) or state}"
        return None

    return watch


async def bake(
    ctx: OpContext,
    colour: str,
    version: str,
    progress: Progress,
    *,
    seconds: float,
    max_p95_ms: float,
    max_error_rate: float,
    watch: HealthWatch | None = None,
) -> None:
    """Requests through nginx for ``seconds`` (at least 5); the new colour's
    health check is watched too (``watch``: another check, e.g. a swarm
    service's tasks; default the colour's container). Raises OpFailed with
    the reason."""
    stats = BakeStats(expected_version=version)
    check = watch or container_watch(ctx, colour)
    progress.start(
        "bake",
        f"baking {version} for {seconds:g} s (p95 <= {max_p95_ms:g} ms, errors <= {max_error_rate:.1%})",
        seconds=seconds,
    )
    start = time.monotonic()
    next_report = start + 5
    next_health = start + 2
    async with client(ctx) as http:
        while time.monotonic() - start < seconds or stats.count < 5:
            stats.add(await probe(http, "/api/health"))
            now = time.monotonic()
            if stats.count >= 20 and stats.error_rate > max(max_error_rate, 0.2):
                break
            if now >= next_health:
                next_health = now + 2
                unwell = await check()
                if unwell:
                    raise OpFailed(unwell, step="bake", data=stats.summary())
            if now >= next_report:
                next_report = now + 5
                s = stats.summary()
                progress.info(
                    "bake",
                    f"{now - start:.0f}/{seconds:g} s: {s['requests']} requests, {s['errors']} errors, p95 {s['p95_ms']} ms",
                    **s,
                )
            if stats.count > 10_000 and now - start > seconds:
                break
            await asyncio.sleep(0.1)
    reason = stats.verdict(max_p95_ms, max_error_rate)
    if reason:
        raise OpFailed(f"bake window failed: {reason}", step="bake", data=stats.summary())
    s = stats.summary()
    progress.ok(
        "bake",
        f"bake passed: {s['requests']} requests, {s['errors']} errors, p95 {s['p95_ms']} ms",
        **s,
    )
