"""The two backend colours: what runs where, starting, waiting, stopping,
switching traffic and confirming it through nginx. Shared by deploy,
rollback and recovery.

A colour may also have a *surge* container for the length of a rolling
deploy (:data:`~console.core.ops.context.SURGE`): the functions that wait
for, switch to or confirm a colour take ``slot="surge"`` to mean it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import COLOURS, SURGE, OpContext, backend_service
from console.core.ops.errors import OpFailed
from console.core.ops.events import Emitter
from console.core.ops.http import client, probe
from console.core.ops.nginx import read_target, switch_to
from console.core.ops.proc import compose, docker, image_info, inspect_container
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.versions import image_ref
from console.core.sources.docker.inspect import (
    container_health,
    container_version,
    exit_code_of,
    last_health_log,
)

__all__ = [
    "ColourView",
    "StackView",
    "confirm_serving",
    "observe",
    "remove_surge",
    "restore_slot",
    "set_active",
    "start_colour",
    "start_surge",
    "stop_colour",
    "surge_version_var",
    "switch_traffic",
    "version_var",
    "wait_healthy",
]


def version_var(colour: str) -> str:
    return f"{colour.upper()}_VERSION"


def surge_version_var(colour: str) -> str:
    """The compose variable naming the version of a colour's surge container
    (given on the command that starts it, never kept in deploy.env)."""
    return f"{colour.upper()}_SURGE_VERSION"


def _who(colour: str, slot: str | None) -> str:
    """How messages name a colour's slot: ``blue``, ``blue surge``."""
    return colour if slot is None else f"{colour} {slot}"


@dataclass(frozen=True)
class ColourView:
    colour: str
    container: str
    state: str
    """running, exited, created, missing, ..."""
    health: str | None
    version: str | None
    """What the container runs (label); None when there is no container."""
    slot_version: str | None
    """What deploy.env says this colour runs."""


@dataclass(frozen=True)
class StackView:
    deploy_env: dict[str, str]
    serving: str | None
    """The colour nginx's config names (None: nginx down or unreadable)."""
    colours: dict[str, ColourView] = field(default_factory=dict)
    serving_slot: str | None = None
    """The slot of ``serving`` nginx names (``surge`` during a rolling
    deploy's hand-over), None for the colour's own container."""

    @property
    def idle(self) -> str | None:
        return None if self.serving is None else ("green" if self.serving == "blue" else "blue")

    def serving_version(self) -> str | None:
        if self.serving is None:
            return None
        view = self.colours[self.serving]
        return view.version or view.slot_version


async def observe(ctx: OpContext) -> StackView:
    env = read_deploy_env(ctx.deploy_env_path)
    target, *infos = await asyncio.gather(
        read_target(ctx), *(inspect_container(ctx, ctx.container(f"backend_{c}")) for c in COLOURS)
    )
    serving, slot = target if target is not None else (None, None)
    colours = {}
    for colour, info in zip(COLOURS, infos, strict=True):
        state, health = container_health(info)
        colours[colour] = ColourView(
            colour,
            ctx.container(f"backend_{colour}"),
            state,
            health,
            container_version(info),
            env.get(version_var(colour)),
        )
    return StackView(env, serving, colours, slot)


async def start_colour(ctx: OpContext, colour: str, version: str) -> None:
    """Run ``version`` in ``colour``: deploy.env first (from now on that slot
    runs it), then ``compose up -d --no-deps`` (recreates only when the
    container's config differs, so an existing container of that version is
    simply started)."""
    update_deploy_env(ctx.deploy_env_path, {version_var(colour): version})
    await compose(ctx, "up", "-d", "--no-deps", f"backend_{colour}", timeout_s=180)


async def start_existing(ctx: OpContext, colour: str) -> None:
    """Start the colour's existing container as it is (instant rollback)."""
    await docker(
        ctx,
        "start",
        ctx.container(f"backend_{colour}"),
        timeout_s=60,
        what=f"docker start backend_{colour}",
    )


async def start_surge(ctx: OpContext, colour: str, version: str) -> None:
    """Start ``version`` in the colour's surge container, beside the colour's
    own (``compose up -d --no-deps backend_<colour>_surge``; recreated when
    one is left from before)."""
    await compose(
        ctx,
        "up",
        "-d",
        "--no-deps",
        "--force-recreate",
        backend_service(colour, SURGE),
        timeout_s=180,
        env_extra={surge_version_var(colour): version},
    )


async def remove_surge(ctx: OpContext, colour: str) -> bool:
    """Stop (gracefully: requests in flight finish) and remove the colour's
    surge container. False when there was none."""
    name = ctx.container(backend_service(colour, SURGE))
    if await inspect_container(ctx, name) is None:
        return False
    await docker(ctx, "stop", "--time", "15", name, timeout_s=60, what=f"docker stop {name}")
    await docker(ctx, "rm", "-f", name, timeout_s=60, what=f"docker rm {name}")
    return True


async def stop_colour(ctx: OpContext, colour: str) -> None:
    """Stop the colour, keeping its container (for an instant rollback)."""
    await compose(ctx, "stop", f"backend_{colour}", timeout_s=120)


async def restore_slot(ctx: OpContext, colour: str, version: str) -> bool:
    """Put a colour's slot back to ``version`` (stopped): deploy.env, then a
    container of that version created but not started. False when that
    version's image no longer exists (the slot keeps what it has)."""
    if await image_info(ctx, image_ref(ctx.image_repo, version)) is None:
        return False
    update_deploy_env(ctx.deploy_env_path, {version_var(colour): version})
    await compose(ctx, "up", "--no-start", "--no-deps", f"backend_{colour}", timeout_s=120)
    return True


def set_active(ctx: OpContext, colour: str) -> None:
    update_deploy_env(ctx.deploy_env_path, {"ACTIVE_COLOUR": colour})


async def wait_healthy(
    ctx: OpContext,
    colour: str,
    version: str,
    ev: Emitter,
    *,
    timeout_s: float | None = None,
    step: str = "wait-healthy",
    slot: str | None = None,
) -> AsyncIterator[OpEvent]:
    """Until the colour's container (its ``slot``'s) is healthy (its health
    check) *and* answers ``/direct/<colour>[_<slot>]/api/health`` with 200
    and ``version``.

    Fails fast when the container exits or its health check reports
    unhealthy, with the last probe's output.
    """
    timeout_s = timeout_s or ctx.health_timeout
    service = backend_service(colour, slot)
    name = ctx.container(service)
    direct = f"/direct/{service.removeprefix('backend_')}/api/health"
    who = _who(colour, slot)
    started = time.monotonic()
    last_note = started
    last_probe = ""
    yield ev.start(
        step, f"waiting for {who} ({version}) to be healthy", colour=colour, version=version
    )
    async with client(ctx) as http:
        while True:
            info = await inspect_container(ctx, name)
            state, health = container_health(info)
            elapsed = time.monotonic() - started
            if state in ("missing", "exited", "dead"):
                raise OpFailed(
                    f"{who} ({version}) is {state}"
                    + (f" (exit code {exit_code_of(info)})" if info else "")
                    + f"; see `docker logs {name}`",
                    step=step,
                )
            if health == "unhealthy":
                raise OpFailed(
                    f"{who} ({version}) failed its health check: {last_health_log(info) or 'unhealthy'}",
                    step=step,
                )
            if state == "running" and health in ("healthy", None):
                p = await probe(http, direct)
                last_probe = f"; {direct}: {p.describe()}" + (
                    f", version {p.version}" if p.ok else ""
                )
                if p.ok and p.version == version:
                    yield ev.ok(
                        step,
                        f"{who} healthy, reports {version} ({elapsed:.1f} s)",
                        colour=colour,
                        version=version,
                        seconds=round(elapsed, 1),
                    )
                    return
                if p.ok and p.version and p.version != version and health == "healthy":
                    raise OpFailed(
                        f"{who} is healthy but reports version {p.version}, not {version}",
                        step=step,
                    )
            if elapsed > timeout_s:
                raise OpFailed(
                    f"{who} ({version}) not healthy after {timeout_s:g} s (state {state}, health {health}"
                    f"{last_probe})",
                    step=step,
                )
            if time.monotonic() - last_note >= 5:
                last_note = time.monotonic()
                yield ev.info(step, f"{who}: {state}, health {health or 'n/a'} ({elapsed:.0f} s)")
            await asyncio.sleep(0.5)


async def confirm_serving(
    ctx: OpContext,
    colour: str,
    version: str,
    timeout_s: float = 20.0,
    needed: int = 3,
    slot: str | None = None,
) -> None:
    """Until ``needed`` consecutive requests through nginx came from
    ``colour`` (its ``slot``) running ``version`` (the reload is graceful, so
    the first answers may still come from old workers). Which slot answered
    is nginx's ``X-Upstream-Colour`` (the target its config named): a surge
    and the colour's own container report the same colour and, at the end
    of a rolling deploy, the same version."""
    upstream = backend_service(colour, slot)
    deadline = time.monotonic() + timeout_s
    streak = 0
    last = None
    async with client(ctx) as http:
        while time.monotonic() < deadline:
            p = await probe(http, "/api/health")
            last = p
            if p.ok and p.colour == colour and p.version == version and p.upstream == upstream:
                streak += 1
                if streak >= needed:
                    return
            else:
                streak = 0
            await asyncio.sleep(0.1)
    detail = last.describe() if last else "no request"
    if last is not None and last.ok:
        detail += f", colour {last.colour}, version {last.version}, upstream {last.upstream}"
    raise OpFailed(
        f"nginx does not serve {_who(colour, slot)} ({version}) {timeout_s:g} s after the reload: {detail}",
        step="switch",
    )


async def switch_traffic(
    ctx: OpContext, colour: str, version: str, slot: str | None = None
) -> str | None:
    """nginx to ``colour`` (its ``slot``; validated, graceful), deploy.env's
    ACTIVE_COLOUR, then confirmed through nginx. Returns the colour served
    before."""
    before = await switch_to(ctx, colour, slot)
    set_active(ctx, colour)
    await confirm_serving(ctx, colour, version, slot=slot)
    return before


def colour_table(view: StackView) -> dict[str, Any]:
    return {
        c: {
            "container": v.container,
            "state": v.state,
            "health": v.health,
            "version": v.version,
            "slot_version": v.slot_version,
            "serving": view.serving == c,
        }
        for c, v in view.colours.items()
    }
