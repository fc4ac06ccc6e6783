"""The workers: scaling them (``stackdeck scale worker=N``) and moving them to
a version (deploy: to the new one, after traffic; rollback: back with the
version they followed). Each is ready once its own heartbeat reports that
version, without waiting for the engine's first health check.

Design, as for the backend's replicas (:mod:`console.core.ops.replicas`):

* **The worker's own container stays worker 1** (``<stack>_worker_prod``, the
  fixed name). Workers 2..N are the compose service ``worker_replica``
  (profile ``replica``, no ``container_name``): ``<stack>-worker_replica-1``...
* **Active standbys.** Every worker runs the schedule; the Redis cycle lock
  and the interval slot (``worker:cycle:<slot>``, platform_services/worker/
  runner.py) let one cycle run per interval, whichever worker claims it. A
  stopped or crashed worker's cycles are taken by another within one interval.
* **One heartbeat each**: the hash ``worker:heartbeats`` (hostname -> JSON),
  so a deploy confirms the new version from *every* container, not from
  whichever wrote ``worker:heartbeat`` last.
* **The count persists** in deploy.env as ``WORKER_REPLICAS`` (all workers,
  the worker's own container included; 1 when absent): deploys and rollbacks
  recreate that many on the version they move to.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from console.core.ops.context import OpContext
from console.core.ops.errors import OpError, OpFailed
from console.core.ops.proc import compose, docker, inspect_container
from console.core.ops.progress import Progress
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.steps.health import ReadyProbe
from console.core.sources.docker.inspect import (
    container_health,
    container_version,
    hostname_of,
    last_health_log,
)

__all__ = [
    "WORKER_HEARTBEAT_MAX_AGE_S",
    "WORKER_REPLICA",
    "WORKER_REPLICAS_VAR",
    "heartbeat_verdict",
    "move_worker",
    "recreate_workers",
    "scale_workers",
    "worker_containers",
    "worker_heartbeat",
    "workers_wanted",
]

WORKER_HEARTBEAT_MAX_AGE_S = 60.0
"""The worker's health check accepts a heartbeat this old (the platform's default)."""
WORKER_REPLICA = "worker_replica"
"""The compose service of workers 2..N."""
WORKER_REPLICAS_VAR = "WORKER_REPLICAS"
"""deploy.env: how many workers run (the worker's own container included)."""


def workers_wanted(env: Mapping[str, str], running_replicas: int = 0) -> int:
    """``WORKER_REPLICAS`` from deploy.env; when absent or not a number, the
    worker plus the replicas that run."""
    text = str(env.get(WORKER_REPLICAS_VAR) or "").strip()
    return int(text) if text.isdigit() else 1 + running_replicas


def _name(info: dict) -> str:
    return str(info.get("Name", "")).lstrip("/")


async def list_worker_replicas(ctx: OpContext) -> list[dict]:
    from console.core.ops.replicas import list_service

    return await list_service(ctx, WORKER_REPLICA)


async def worker_containers(ctx: OpContext) -> list[dict]:
    """``docker inspect`` of every worker container (its own first, then the
    replicas by number); the own one left out when it does not exist."""
    own = await inspect_container(ctx, ctx.container("worker"))
    return ([own] if own else []) + await list_worker_replicas(ctx)


async def _read_beats(ctx: OpContext) -> tuple[dict[str, str], str | None]:
    """``worker:heartbeats`` (hostname -> JSON) and ``worker:heartbeat``."""
    from console.core.ops.db import connect_redis
    from platform_services.providers.keys import WORKER_HEARTBEAT_KEY, WORKER_HEARTBEATS_KEY

    redis = connect_redis(ctx)
    try:
        beats, shared = await asyncio.wait_for(
            asyncio.gather(redis.hgetall(WORKER_HEARTBEATS_KEY), redis.get(WORKER_HEARTBEAT_KEY)),
            5,
        )
    finally:
        await redis.aclose()

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    return {text(k): text(v) for k, v in (beats or {}).items()}, (text(shared) if shared else None)


def heartbeat_verdict(
    raw: str | bytes | None, hostname: str, version: str, now: float
) -> str | None:
    """Why a worker's heartbeat (its field of ``worker:heartbeats``, or
    ``worker:heartbeat`` from an image that predates the hash) shows that the
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


async def _verdict(ctx: OpContext, info: dict[str, Any], version: str) -> str | None:
    hostname = hostname_of(info)
    try:
        beats, shared = await _read_beats(ctx)
    except Exception:  # Redis unreachable from here: the engine's check decides
        return None
    return heartbeat_verdict(beats.get(hostname) or shared, hostname, version, time.time())


def worker_heartbeat(ctx: OpContext, version: str) -> ReadyProbe:
    """A worker's liveness as its health check judges it (a fresh heartbeat
    in Redis), without waiting for the engine to run that check: its first
    run comes one ``interval`` after the start. Stricter than the check
    itself (:func:`heartbeat_verdict`): the beat must come from *this*
    container and report ``version``, so an old worker's last beat does not
    count."""

    async def ready(info: dict[str, Any]) -> str | None:
        return await _verdict(ctx, info, version)

    return ready


async def wait_workers(
    ctx: OpContext,
    version: str,
    want: int,
    progress: Progress,
    *,
    step: str,
    timeout_s: float,
) -> list[str]:
    """Until ``want`` worker containers run ``version`` with their own fresh
    heartbeat of it; fails fast when one exits or fails its health check.
    Returns their names."""
    started = time.monotonic()
    last_note = started
    # Container ids whose own heartbeat was seen: an image from before
    # worker:heartbeats writes only worker:heartbeat, which names one worker
    # at a time, so each is confirmed when its turn comes.
    confirmed: set[str] = set()
    while True:
        infos = await worker_containers(ctx)
        ready: list[str] = []
        for info in infos:
            state, health = container_health(info)
            # a container of the version before may be seen stopping while compose recreates it
            on_version = container_version(info) == version
            if on_version and (state in ("exited", "dead") or health == "unhealthy"):
                raise OpFailed(
                    f"{_name(info)} is {health or state}: {last_health_log(info) or ''}; "
                    f"see `docker logs {_name(info)}`".replace(":  ;", ";"),
                    step=step,
                )
            if state == "running" and on_version:
                if info.get("Id") in confirmed or await _verdict(ctx, info, version):
                    confirmed.add(str(info.get("Id")))
                    ready.append(_name(info))
        elapsed = time.monotonic() - started
        if len(ready) >= want:
            progress.ok(
                step,
                f"{len(ready)} worker(s) on {version}, each with its own heartbeat "
                f"({elapsed:.1f} s): {', '.join(ready)}",
                workers=ready,
                seconds=round(elapsed, 1),
            )
            return ready
        if elapsed > timeout_s:
            raise OpFailed(
                f"{len(ready)} of {want} worker(s) report {version} in their heartbeat after "
                f"{timeout_s:g} s (ready: {', '.join(ready) or 'none'})",
                step=step,
            )
        if time.monotonic() - last_note >= 5:
            last_note = time.monotonic()
            progress.info(step, f"{len(ready)} of {want} worker(s) on {version} ({elapsed:.0f} s)")
        await asyncio.sleep(0.5)


async def _remove(ctx: OpContext, infos: list[dict]) -> None:
    """Replicas stopped (the worker finishes its cycle and releases the lock
    on SIGTERM) and removed."""
    for info in infos:
        name = _name(info)
        await docker(ctx, "stop", "--time", "15", name, timeout_s=60, what=f"docker stop {name}")
        await docker(ctx, "rm", "-f", name, timeout_s=60, what=f"docker rm {name}")


async def recreate_workers(
    ctx: OpContext,
    count: int,
    progress: Progress,
    *,
    step: str,
    timeout_s: float,
    force: bool = False,
) -> list[str]:
    """``count`` workers (>= 1) on deploy.env's ``WORKER_VERSION``: the
    worker's own container and ``count - 1`` replicas, created or recreated
    by compose when their image or settings changed (``force``: always);
    replicas above ``count - 1`` removed. Waits for each one's heartbeat."""
    version = read_deploy_env(ctx.deploy_env_path).get("WORKER_VERSION") or ""
    recreate = ["--force-recreate"] if force else []
    await compose(ctx, "up", "-d", "--no-deps", *recreate, "worker", timeout_s=180)
    replicas = await list_worker_replicas(ctx)
    if count > 1:
        await compose(
            ctx,
            "up",
            "-d",
            "--no-deps",
            *recreate,
            "--scale",
            f"{WORKER_REPLICA}={count - 1}",
            WORKER_REPLICA,
            timeout_s=240,
        )
    elif replicas:
        await _remove(ctx, replicas)
    return await wait_workers(ctx, version, count, progress, step=step, timeout_s=timeout_s)


async def scale_workers(
    ctx: OpContext, count: int, progress: Progress, *, timeout_s: float
) -> list[str]:
    """``count`` workers (0 stops them all; the worker's own container is
    kept, stopped); ``WORKER_REPLICAS`` set once they run. A failure puts
    back the count that ran before."""
    infos = await worker_containers(ctx)
    running = [i for i in infos if container_health(i)[0] == "running"]
    progress.info(
        "prepare",
        f"{len(running)} worker(s) running; scaling to {count}",
        before=len(running),
    )
    if count == 0:
        progress.start("scale", "stopping every worker")
        await _remove(ctx, await list_worker_replicas(ctx))
        await compose(ctx, "stop", "worker", timeout_s=120)
        update_deploy_env(ctx.deploy_env_path, {WORKER_REPLICAS_VAR: "0"})
        progress.ok("scale", "no worker runs: ingestion stopped, the API keeps serving")
        return []
    progress.start(
        "scale", f"{count} worker(s): {ctx.container('worker')} and {count - 1} standby(s)"
    )
    try:
        names = await recreate_workers(ctx, count, progress, step="heartbeats", timeout_s=timeout_s)
    except OpError as exc:
        progress.fail(exc.step or "scale", ctx.redact(str(exc)))
        before = len(running)
        progress.start("rollback", f"putting the workers back to {before}")
        if before:
            await recreate_workers(ctx, before, progress, step="rollback", timeout_s=timeout_s)
        else:
            await _remove(ctx, await list_worker_replicas(ctx))
            await compose(ctx, "stop", "worker", timeout_s=120)
        raise
    update_deploy_env(ctx.deploy_env_path, {WORKER_REPLICAS_VAR: str(count)})
    return names


async def move_worker(ctx: OpContext, version: str, progress: Progress, timeout_s: float) -> None:
    """Run every worker on ``version`` (only when the worker was running:
    as many as ``WORKER_REPLICAS`` says), each confirmed by its own
    heartbeat; all put back on the version they had when they do not come up."""
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
    replicas = [i for i in await list_worker_replicas(ctx) if container_health(i)[0] == "running"]
    count = max(1, workers_wanted(env, len(replicas)))
    progress.start("worker", f"moving {count} worker(s) from {prev} to {version}")
    try:
        await recreate_workers(ctx, count, progress, step="worker", timeout_s=timeout_s)
    except OpError as exc:
        progress.warn("worker", f"workers on {version} failed ({exc}); putting them back on {prev}")
        if prev:
            update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": prev})
            with_prev = recreate_workers(ctx, count, progress, step="worker", timeout_s=timeout_s)
            try:
                await with_prev
            except OpError as again:
                progress.warn("worker", f"workers back on {prev} not confirmed: {again}")
        return
    progress.ok("worker", f"{count} worker(s) run {version}")
