"""The web frontend's two colours (``frontend_blue`` / ``frontend_green``):
what runs where, its image, starting, waiting, stopping and switching ``/``.
Shared by deploy and rollback, beside :mod:`console.core.ops.backend`.

The frontend has a serving colour of its own: the ``$active_frontend``
line of nginx's active.conf (:mod:`console.core.ops.nginx`), mirrored in
deploy.env's ``FRONTEND_COLOUR``; each colour's version is deploy.env's
``FRONTEND_<COLOUR>_VERSION`` and ``FRONTEND_VERSION`` is the serving
one's. A deploy of "backend frontend" moves both lines in one write and one
reload (:func:`switch_with_backend`); a deploy of the frontend alone moves
its line only.

A colour is ready when its container's health check passes and, through
nginx's ``/direct/frontend_<colour>/`` route (host only), its
``/version.json`` reports the version and its page (``/``) loads.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from console.core.ops.backend import confirm_serving, set_active
from console.core.ops.context import COLOURS, OpContext, frontend_service
from console.core.ops.errors import OpFailed
from console.core.ops.nginx import read_frontend, switch_to
from console.core.ops.proc import compose, image_info, inspect_container
from console.core.ops.progress import Progress
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.steps.images import ensure_image
from console.core.ops.versions import image_ref
from console.core.sources.docker.inspect import (
    container_health,
    container_version,
    exit_code_of,
    last_health_log,
)

__all__ = [
    "DOCKERFILE",
    "FrontendView",
    "confirm_frontend",
    "ensure_frontend_image",
    "frontend_repo",
    "frontend_version_var",
    "observe_frontend",
    "recover_frontend",
    "restore_frontend_slot",
    "start_existing_frontend",
    "start_frontend",
    "stop_frontend",
    "switch_frontend",
    "switch_with_backend",
    "wait_frontend_ready",
]

DOCKERFILE = "compose/images/frontend/Dockerfile"


def frontend_repo(ctx: OpContext) -> str:
    """``<prefix>-frontend``: the backend's repository with the frontend's name."""
    return ctx.image_repo.removesuffix("-backend") + "-frontend"


def frontend_version_var(colour: str) -> str:
    return f"FRONTEND_{colour.upper()}_VERSION"


@dataclass(frozen=True)
class FrontendColour:
    colour: str
    container: str
    state: str
    health: str | None
    version: str | None
    """What the container runs (its label); None when there is none."""
    slot_version: str | None
    """What deploy.env says this colour runs."""


@dataclass(frozen=True)
class FrontendView:
    serving: str | None
    """The colour nginx sends ``/`` to (None: nginx down or unreadable)."""
    colours: dict[str, FrontendColour]

    @property
    def idle(self) -> str | None:
        return None if self.serving is None else ("green" if self.serving == "blue" else "blue")

    def serving_version(self) -> str | None:
        if self.serving is None:
            return None
        view = self.colours[self.serving]
        return view.version or view.slot_version


def _slot_version(env: dict[str, str], colour: str) -> str | None:
    return env.get(frontend_version_var(colour)) or env.get("FRONTEND_VERSION")


async def observe_frontend(ctx: OpContext) -> FrontendView:
    env = read_deploy_env(ctx.deploy_env_path)
    serving, *infos = await asyncio.gather(
        read_frontend(ctx),
        *(inspect_container(ctx, ctx.container(frontend_service(c))) for c in COLOURS),
    )
    colours = {}
    for colour, info in zip(COLOURS, infos, strict=True):
        state, health = container_health(info)
        colours[colour] = FrontendColour(
            colour,
            ctx.container(frontend_service(colour)),
            state,
            health,
            container_version(info),
            _slot_version(env, colour),
        )
    return FrontendView(serving, colours)


async def ensure_frontend_image(
    ctx: OpContext, version: str, build: bool, progress: Progress
) -> dict[str, Any]:
    """``<prefix>-frontend:<version>``, selected or built (``--build``: from
    this checkout; or from the git tag of that name)."""
    return await ensure_image(
        ctx, version, build, progress, repo=frontend_repo(ctx), dockerfile=DOCKERFILE
    )


async def start_frontend(ctx: OpContext, colour: str, version: str) -> None:
    """Run ``version`` in the frontend's ``colour``: deploy.env first, then
    ``compose up -d --no-deps`` (recreated when its version changed)."""
    update_deploy_env(ctx.deploy_env_path, {frontend_version_var(colour): version})
    await compose(ctx, "up", "-d", "--no-deps", frontend_service(colour), timeout_s=180)


async def start_existing_frontend(ctx: OpContext, colour: str) -> None:
    """Start the colour's existing container as it is (a rollback)."""
    await compose(ctx, "start", frontend_service(colour), timeout_s=60)


async def stop_frontend(ctx: OpContext, colour: str) -> None:
    """Stop the colour, keeping its container (the rollback target)."""
    await compose(ctx, "stop", frontend_service(colour), timeout_s=120)


async def restore_frontend_slot(ctx: OpContext, colour: str, version: str) -> bool:
    """The colour's slot back to ``version`` (created, not started). False
    when that version's image is gone."""
    if await image_info(ctx, image_ref(frontend_repo(ctx), version)) is None:
        return False
    update_deploy_env(ctx.deploy_env_path, {frontend_version_var(colour): version})
    await compose(ctx, "up", "--no-start", "--no-deps", frontend_service(colour), timeout_s=120)
    return True


async def _fetch(http: httpx.AsyncClient, path: str) -> tuple[int | None, str, dict[str, str]]:
    """(status, body, headers); status None when nothing answered."""
    try:
        r = await http.get(path)
    except httpx.HTTPError as exc:
        return None, type(exc).__name__, {}
    return r.status_code, r.text, dict(r.headers)


def _version_of(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("version") if isinstance(data, dict) else None


async def wait_frontend_ready(
    ctx: OpContext,
    colour: str,
    version: str,
    progress: Progress,
    timeout_s: float,
    *,
    step: str = "frontend-healthy",
) -> None:
    """Until the colour's container is healthy, its ``/version.json``
    (through ``/direct/frontend_<colour>/``) reports ``version`` and its
    page loads (200, an HTML document). Fails fast when the container exits
    or reports unhealthy."""
    service = frontend_service(colour)
    name = ctx.container(service)
    base = f"/direct/{service}"
    started = time.monotonic()
    last = ""
    progress.start(step, f"waiting for {service} ({version}) to be healthy and serve its page")
    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=ctx.http_timeout) as http:
        while True:
            info = await inspect_container(ctx, name)
            state, health = container_health(info)
            elapsed = time.monotonic() - started
            if state in ("missing", "exited", "dead"):
                raise OpFailed(
                    f"{service} ({version}) is {state}"
                    + (f" (exit code {exit_code_of(info)})" if info else "")
                    + f"; see `docker logs {name}`",
                    step=step,
                )
            if health == "unhealthy":
                raise OpFailed(
                    f"{service} ({version}) failed its health check: "
                    f"{last_health_log(info) or 'unhealthy'}",
                    step=step,
                )
            if state == "running" and health in ("healthy", None):
                status, body, _ = await _fetch(http, f"{base}/version.json")
                seen = _version_of(body) if status == 200 else None
                last = f"{base}/version.json: {status or body}, version {seen}"
                if status == 200 and seen and seen != version:
                    raise OpFailed(
                        f"{service} is healthy but its /version.json says {seen}, not {version}",
                        step=step,
                    )
                if seen == version:
                    status, body, _ = await _fetch(http, f"{base}/")
                    last = f"{base}/: {status or body}"
                    if status == 200 and "<html" in body.lower():
                        progress.ok(
                            step,
                            f"{service} healthy, serves its page and reports {version} "
                            f"({elapsed:.1f} s)",
                            colour=colour,
                            version=version,
                        )
                        return
            if elapsed > timeout_s:
                raise OpFailed(
                    f"{service} ({version}) not ready after {timeout_s:g} s (state {state}, "
                    f"health {health}; {last or 'no answer yet'})",
                    step=step,
                )
            await asyncio.sleep(0.5)


async def confirm_frontend(
    ctx: OpContext, colour: str, version: str | None, timeout_s: float = 20.0, needed: int = 3
) -> None:
    """Until ``needed`` consecutive ``/version.json`` through nginx came from
    ``frontend_<colour>`` (nginx's ``X-Upstream``) reporting ``version``
    (any version when it is not known: a page put back whose version no
    record kept)."""
    service = frontend_service(colour)
    deadline = time.monotonic() + timeout_s
    streak = 0
    last = "no request"
    async with httpx.AsyncClient(base_url=ctx.base_url, timeout=ctx.http_timeout) as http:
        while time.monotonic() < deadline:
            status, body, headers = await _fetch(http, "/version.json")
            seen = _version_of(body) if status == 200 else None
            last = f"{status or body}, version {seen}, upstream {headers.get('x-upstream')}"
            if version in (None, seen) and headers.get("x-upstream") == service:
                streak += 1
                if streak >= needed:
                    return
            else:
                streak = 0
            await asyncio.sleep(0.1)
    raise OpFailed(
        f"nginx does not serve the page from {service} ({version or 'any version'}) "
        f"{timeout_s:g} s after the "
        f"reload: {last}",
        step="switch",
    )


def _set_frontend_active(ctx: OpContext, colour: str, version: str | None) -> None:
    update_deploy_env(
        ctx.deploy_env_path,
        {"FRONTEND_COLOUR": colour} | ({"FRONTEND_VERSION": version} if version else {}),
    )


def _known(version: Any) -> str | None:
    """A version a journal recorded, None when it recorded none."""
    return str(version) if version else None


async def switch_frontend(ctx: OpContext, colour: str, version: str | None) -> str | None:
    """nginx's ``/`` to the frontend's ``colour`` (the backend's line kept),
    deploy.env, then confirmed through nginx. Returns the colour it served
    before (the backend's, as switch_to reports it, for a file that had no
    frontend line)."""
    before = await read_frontend(ctx)
    await switch_to(ctx, None, frontend=colour)
    _set_frontend_active(ctx, colour, version)
    await confirm_frontend(ctx, colour, version)
    return before


async def switch_with_backend(
    ctx: OpContext,
    colour: str,
    version: str,
    frontend: str,
    frontend_version: str,
) -> None:
    """The one switch of a deploy of "backend frontend": both lines of
    active.conf in one write, one ``nginx -t``, one graceful reload; then
    deploy.env and both confirmed through nginx."""
    await switch_to(ctx, colour, frontend=frontend)
    set_active(ctx, colour)
    _set_frontend_active(ctx, frontend, frontend_version)
    # a TaskGroup: when one check fails the other is cancelled (not left
    # polling nginx while the undo switches back), and the first error is raised
    try:
        async with asyncio.TaskGroup() as checks:
            checks.create_task(confirm_serving(ctx, colour, version))
            checks.create_task(confirm_frontend(ctx, frontend, frontend_version))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None


async def recover_frontend(
    ctx: OpContext, journal: dict[str, Any], action: str, progress: Progress
) -> None:
    """The frontend's part of recovering an interrupted deploy (the journal's
    ``frontend`` entry, once its start was reached): a blue-green deploy
    whose backend is kept (``finalize``: the bake had passed) keeps the page
    on the new colour too; anything else puts ``/`` back on the colour it
    left (when that one still runs), stops the new colour and restores its
    slot. Called by :func:`console.core.ops.recovery.recover` after the
    backend's part."""
    fe = journal.get("frontend")
    if not isinstance(fe, dict) or not journal.get("frontend_started"):
        return
    frm, to = str(fe["from_colour"]), str(fe["to_colour"])
    view = await observe_frontend(ctx)
    keep_new = action == "finalize" and journal.get("strategy") != "rolling"
    if keep_new or view.colours[frm].state != "running":
        if view.serving != to and view.colours[to].state == "running":
            await switch_frontend(ctx, to, str(fe["version"]))
        progress.ok("recover", f"the page stays on {frontend_service(to)} ({fe['version']})")
        return
    if view.serving != frm:
        await switch_frontend(ctx, frm, _known(fe.get("from_version")))
    progress.ok("recover", f"the page is on {frontend_service(frm)} ({fe.get('from_version')})")
    if view.colours[to].state in ("running", "restarting", "created", "paused"):
        await stop_frontend(ctx, to)
        progress.ok("recover", f"stopped {frontend_service(to)} (kept)")
    prev = fe.get("to_prev_version")
    if prev and prev != fe.get("version") and await restore_frontend_slot(ctx, to, str(prev)):
        progress.ok("recover", f"{frontend_service(to)}'s slot is back to {prev}")
