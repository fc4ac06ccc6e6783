"""Deploys: blue-green (the runbook's recommended method) and rolling (method 2).

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
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.models import OpEvent
from console.core.ops.audit import record_history
from console.core.ops.backend import (
    StackView,
    observe,
    restore_slot,
    start_colour,
    stop_colour,
    switch_traffic,
    wait_healthy,
)
from console.core.ops.backup import BackupInfo, take_backup
from console.core.ops.context import OpContext, other_colour
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.http import BakeStats, client, probe
from console.core.ops.journal import Journal
from console.core.ops.migrate import MigrationStatus, migration_status, upgrade
from console.core.ops.proc import (
    compose,
    container_health,
    docker,
    image_info,
    inspect_container,
    last_health_log,
)
from console.core.ops.proc import run as run_command
from console.core.ops.recovery import recover
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.verify import smoke_colour
from console.core.ops.versions import image_ref, validate_version

__all__ = [
    "bake",
    "ensure_image",
    "heartbeat_verdict",
    "known_versions",
    "parse_services",
    "run_deploy",
    "validate_deploy",
]

STRATEGIES = ("blue-green", "rolling")
ENVIRONMENTS = ("production", "prod")
DEPLOYABLE = ("backend", "worker")
ABSENT = ("frontend",)
"""Services the runbook names that this stack does not have (skipped with a note)."""


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
    if "backend" not in out and "worker" not in out:
        raise BadInput(
            "--services names nothing this stack can deploy (backend, worker)", field="services"
        )
    return out


def _number(params: dict[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    value = params.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{key} must be a number, not {value!r}", field=key) from None
    if not lo <= number <= hi:
        raise BadInput(f"{key} must be between {lo:g} and {hi:g}, not {number:g}", field=key)
    return number


async def known_versions(ctx: OpContext) -> list[str]:
    r = await docker(
        ctx, "image", "ls", ctx.image_repo, "--format", "{{.Tag}}", timeout_s=30, check=False
    )
    return sorted({t for t in r.stdout.split() if t and t != "<none>"})


BASE_IMAGE_LABEL = "com.investment.base-image"
"""Label scripts/images.sh puts on every image: the base it was built from."""


async def stack_base_image(ctx: OpContext) -> str | None:
    """The base the stack's backend images were built from (their label), so
    a version built by the engine shares the base of the ones images.sh made;
    None when no image carries the label (the Dockerfile's default applies)."""
    for tag in reversed(await known_versions(ctx)):
        info = await image_info(ctx, image_ref(ctx.image_repo, tag))
        base = ((info or {}).get("Config") or {}).get("Labels", {}) or {}
        if base.get(BASE_IMAGE_LABEL):
            return str(base[BASE_IMAGE_LABEL])
    return None


async def _git_tag_exists(ctx: OpContext, version: str) -> bool:
    if not (ctx.repo / ".git").exists():
        return False
    r = await run_command(
        ["git", "-C", str(ctx.repo), "rev-parse", "-q", "--verify", f"refs/tags/{version}"],
        check=False,
        timeout_s=15,
    )
    return r.ok


async def validate_deploy(ctx: OpContext, params: dict[str, Any]) -> dict[str, Any]:
    version = validate_version(params.get("version"))
    strategy = params.get("strategy") or "blue-green"
    if strategy not in STRATEGIES:
        raise BadInput(
            f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}", field="strategy"
        )
    environment = params.get("environment") or "production"
    if environment not in ENVIRONMENTS:
        raise BadInput(
            f"environment {environment!r}: this host runs the production stack {ctx.stack!r} "
            "(use --stack to address another stack)",
            field="environment",
        )
    services = parse_services(params.get("services"))
    backup = params.get("backup") or "auto"
    if backup not in ("auto", "always", "never"):
        raise BadInput(f"backup must be auto, always or never, not {backup!r}", field="backup")
    out = {
        **params,
        "version": version,
        "strategy": strategy,
        "environment": "production",
        "services": services,
        "backup": backup,
        "bake_seconds": _number(params, "bake_seconds", 0, 3600, ctx.bake_seconds),
        "max_p95_ms": _number(params, "max_p95_ms", 0.001, 600_000, ctx.max_p95_ms),
        "max_error_rate": _number(params, "max_error_rate", 0, 1, ctx.max_error_rate),
        "health_timeout": _number(params, "health_timeout", 1, 3600, ctx.health_timeout),
        "build": bool(params.get("build")),
        "force": bool(params.get("force")),
    }
    if await image_info(ctx, image_ref(ctx.image_repo, version)) is None:
        if not out["build"] and not await _git_tag_exists(ctx, version):
            have = await known_versions(ctx)
            raise BadInput(
                f"unknown version {version}: there is no image {image_ref(ctx.image_repo, version)} and no git "
                f"tag {version} to build it from. Available: {', '.join(have) or 'none'}. "
                "To build this checkout as that version, add --build",
                field="version",
            )
    return out


async def ensure_image(
    ctx: OpContext, version: str, build: bool, ev: Emitter
) -> AsyncIterator[OpEvent | dict[str, Any]]:
    """Select or build the image; yields events, then its inspect data."""
    ref = image_ref(ctx.image_repo, version)
    info = await image_info(ctx, ref)
    if info is not None:
        yield ev.ok(
            "image",
            f"using {ref} ({str(info.get('Id', ''))[7:19]})",
            image=ref,
            digest=info.get("Id"),
        )
        yield info
        return
    dockerfile = "compose/images/backend/Dockerfile"
    common = [
        "build",
        "--network",
        "host",
        "-q",
        "--build-arg",
        f"APP_VERSION={version}",
        "--label",
        "com.investment.built-by=stackdeck",
        "-t",
        ref,
    ]
    base = await stack_base_image(ctx)
    if base:
        common += ["--build-arg", f"BASE_IMAGE={base}", "--label", f"{BASE_IMAGE_LABEL}={base}"]
    env = {"DOCKER_BUILDKIT": "0"}
    if await _git_tag_exists(ctx, version):
        yield ev.start("image", f"building {ref} from git tag {version}")
        with tempfile.TemporaryDirectory(prefix="stackdeck-build-") as tmp:
            tar = Path(tmp) / "context.tar"
            await run_command(
                ["git", "-C", str(ctx.repo), "archive", "--format=tar", "-o", str(tar), version],
                timeout_s=120,
                what="git archive",
            )
            await docker(
                ctx,
                *common,
                "-f",
                dockerfile,
                "-",
                stdin_path=tar,
                timeout_s=1800,
                env_extra=env,
                what=f"docker build {ref}",
            )
    elif build:
        yield ev.start("image", f"building {ref} from this checkout ({ctx.repo})")
        await docker(
            ctx,
            *common,
            "-f",
            str(ctx.repo / dockerfile),
            str(ctx.repo),
            timeout_s=1800,
            env_extra=env,
            what=f"docker build {ref}",
        )
    else:
        raise BadInput(
            f"unknown version {version}: no image {ref}; add --build to build it", field="version"
        )
    info = await image_info(ctx, ref)
    if info is None:
        raise OpFailed(f"docker build reported success but {ref} does not exist", step="image")
    yield ev.ok(
        "image", f"built {ref} ({str(info.get('Id', ''))[7:19]})", image=ref, digest=info.get("Id")
    )
    yield info


async def bake(
    ctx: OpContext,
    colour: str,
    version: str,
    ev: Emitter,
    *,
    seconds: float,
    max_p95_ms: float,
    max_error_rate: float,
) -> AsyncIterator[OpEvent]:
    """Requests through nginx for ``seconds`` (at least 5); the new colour's
    health check is watched too. Raises OpFailed with the reason."""
    stats = BakeStats(expected_version=version)
    name = ctx.container(f"backend_{colour}")
    yield ev.start(
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
                info = await inspect_container(ctx, name)
                state, health = container_health(info)
                if state != "running" or health == "unhealthy":
                    raise OpFailed(
                        f"{colour} became {health or state} during the bake: {last_health_log(info) or state}",
                        step="bake",
                        data=stats.summary(),
                    )
            if now >= next_report:
                next_report = now + 5
                s = stats.summary()
                yield ev.info(
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
    yield ev.ok(
        "bake",
        f"bake passed: {s['requests']} requests, {s['errors']} errors, p95 {s['p95_ms']} ms",
        **s,
    )


async def _move_worker(
    ctx: OpContext,
    version: str,
    ev: Emitter,
    timeout_s: float,
) -> AsyncIterator[OpEvent]:
    """Run the worker on ``version`` (only started when it was running)."""
    env = read_deploy_env(ctx.deploy_env_path)
    prev = env.get("WORKER_VERSION")
    if prev == version:
        return
    info = await inspect_container(ctx, ctx.container("worker"))
    state, _ = container_health(info)
    update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": version})
    if state != "running":
        yield ev.info(
            "worker",
            f"worker is {state} (scaled to 0?): WORKER_VERSION set to {version}, not started",
        )
        return
    yield ev.start("worker", f"moving the worker from {prev} to {version}")
    try:
        await compose(ctx, "up", "-d", "--no-deps", "worker", timeout_s=180)
        async for item in wait_service_healthy(
            ctx, "worker", ev, timeout_s=timeout_s, ready=_worker_heartbeat(ctx, version)
        ):
            yield item
    except OpError as exc:
        yield ev.warn("worker", f"worker on {version} failed ({exc}); putting it back on {prev}")
        if prev:
            update_deploy_env(ctx.deploy_env_path, {"WORKER_VERSION": prev})
            await compose(ctx, "up", "-d", "--no-deps", "worker", timeout_s=180)
        return
    yield ev.ok("worker", f"worker runs {version}")


WORKER_HEARTBEAT_MAX_AGE_S = 60.0
"""The worker's health check accepts a heartbeat this old (the platform's default)."""

ReadyProbe = Callable[[dict[str, Any]], Awaitable[str | None]]
"""Given a running container's inspect data: why it is ready, or None (not yet)."""


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


def _worker_heartbeat(ctx: OpContext, version: str) -> ReadyProbe:
    """The worker's liveness as its health check judges it (a fresh
    ``worker:heartbeat`` in Redis), without waiting for the engine to run that
    check: its first run comes one ``interval`` (30 s) after the start.
    Stricter than the check itself (:func:`heartbeat_verdict`): the beat must
    come from *this* container and report ``version``, so the old worker's
    last beat does not count."""
    from platform_services.providers.keys import WORKER_HEARTBEAT_KEY

    async def ready(info: dict[str, Any]) -> str | None:
        hostname = str((info.get("Config") or {}).get("Hostname") or "")
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


async def wait_service_healthy(
    ctx: OpContext,
    service: str,
    ev: Emitter,
    timeout_s: float = 180,
    step: str | None = None,
    ready: ReadyProbe | None = None,
) -> AsyncIterator[OpEvent]:
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
            yield ev.ok(
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
                yield ev.ok(
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
            yield ev.info(
                step,
                f"{service}: {state}, health {health or 'n/a'} ({time.monotonic() - start:.0f} s)",
            )
        await asyncio.sleep(0.5)


async def _wait_ready(
    ctx: OpContext, colour: str, version: str, ev: Emitter, timeout_s: float
) -> AsyncIterator[OpEvent | MigrationStatus]:
    """Until ``colour`` is healthy on ``version`` (:func:`wait_healthy`);
    yields its events, then the :class:`MigrationStatus` of that version.

    ``alembic heads`` costs a Python start-up in the new container: it runs
    while the container warms up rather than after."""
    container = ctx.container(f"backend_{colour}")
    heads_task = asyncio.ensure_future(migration_status(ctx, container))
    try:
        async for item in wait_healthy(ctx, colour, version, ev, timeout_s=timeout_s):
            yield item
    except BaseException:
        heads_task.cancel()
        raise
    try:
        status = await heads_task
    except OpError:  # the container was not ready for it yet: once more, now it is
        status = await migration_status(ctx, container)
    yield status


def _history_base(
    ctx: OpContext, op_id: str, strategy: str, view: StackView, version: str, to_colour: str | None
) -> dict[str, Any]:
    return {
        "id": op_id,
        "op": "deploy",
        "strategy": strategy,
        "version": version,
        "from_version": view.serving_version(),
        "colour": to_colour,
        "from_colour": view.serving,
        "user": ctx.operator.user,
        "ssh_client": ctx.operator.ssh_client,
        "host": ctx.operator.host,
        "started": datetime.now(UTC).isoformat(),
    }


def _journal_identity(ctx: OpContext) -> dict[str, Any]:
    return {
        "pid": ctx.operator.pid,
        "pid_start": ctx.operator.pid_start,
        "host": ctx.operator.host,
        "user": ctx.operator.user,
        "ssh_client": ctx.operator.ssh_client,
    }


async def _undo_blue_green(ctx: OpContext, journal: Journal, notes: list[tuple[str, str]]) -> None:
    """Traffic back on the old colour, new colour stopped, its slot restored.

    Emits nothing (it also runs when the operation is cancelled and can no
    longer yield); what it did goes into ``notes`` as (status, message).
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


async def run_deploy(ctx: OpContext, *, op_id: str = "", **params: Any) -> AsyncIterator[OpEvent]:
    if params.get("strategy") == "rolling":
        async for e in _rolling(ctx, op_id=op_id, **params):
            yield e
        return
    async for e in _blue_green(ctx, op_id=op_id, **params):
        yield e


async def _blue_green(
    ctx: OpContext,
    *,
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
) -> AsyncIterator[OpEvent]:
    ev = Emitter("deploy", ctx.redact)
    services = services or ["backend", "worker"]
    bake_s = ctx.bake_seconds if bake_seconds is None else bake_seconds
    p95_max = max_p95_ms or ctx.max_p95_ms
    err_max = ctx.max_error_rate if max_error_rate is None else max_error_rate
    h_timeout = health_timeout or ctx.health_timeout
    t0 = time.monotonic()

    async for rec in recover(ctx, ev, op_id=op_id):
        if isinstance(rec, OpEvent):
            yield rec
    for name in services:
        if name in ABSENT:
            yield ev.info("prepare", f"{name}: not part of this stack, skipped")

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
    if from_version == version and not force:
        yield ev.done(
            f"{frm} already serves {version}; nothing to do (--force to redeploy it)",
            colour=frm,
            version=version,
        )
        return
    to_prev = view.colours[to].version or view.colours[to].slot_version
    yield ev.info(
        "prepare",
        f"{frm} serves {from_version}; deploying {version} to {to} (which holds {to_prev or 'nothing'})",
        from_colour=frm,
        to_colour=to,
        from_version=from_version,
    )

    image: dict[str, Any] | None = None
    if "backend" in services:
        async for got in ensure_image(ctx, version, build, ev):
            if isinstance(got, OpEvent):
                yield got
            else:
                image = got
    digest = image.get("Id") if image else None

    history = _history_base(ctx, op_id, "blue-green", view, version, to)
    history.update(image=image_ref(ctx.image_repo, version), image_digest=digest, services=services)
    if "backend" not in services:
        # worker only
        async for item in _move_worker(ctx, version, ev, h_timeout):
            yield item
        history.update(
            result="ok",
            finished=datetime.now(UTC).isoformat(),
            duration_s=round(time.monotonic() - t0, 1),
        )
        record_history(ctx.history_path, history)
        yield ev.done(f"worker on {version}")
        return

    journal = Journal.begin(
        ctx.journal_path,
        id=op_id,
        op="deploy",
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
        **_journal_identity(ctx),
    )
    step = "start-idle"
    notes: list[tuple[str, str]] = []
    try:
        journal.step("start-idle")
        yield ev.start("start-idle", f"starting {to} with {version}")
        await start_colour(ctx, to, version)
        yield ev.ok("start-idle", f"{to} started")

        step = "wait-healthy"
        journal.step(step)
        container = ctx.container(f"backend_{to}")
        status: MigrationStatus | None = None
        async for ready in _wait_ready(ctx, to, version, ev, h_timeout):
            if isinstance(ready, MigrationStatus):
                status = ready
            else:
                yield ready
        assert status is not None

        step = "migrate"
        journal.step(step)
        yield ev.info("migrate", status.describe(), pending=status.pending)
        if backup == "always" or (backup == "auto" and status.pending):
            step = "backup"
            journal.step(step)
            async for b in take_backup(
                ctx, ev, reason=f"pre-deploy {version}", serving_version=from_version, op_id=op_id
            ):
                if isinstance(b, BackupInfo):
                    journal.update(backup_id=b.id)
                    history["backup_id"] = b.id
                else:
                    yield b
            step = "migrate"
        elif status.pending:
            yield ev.warn("backup", "migrations are pending and backup=never: no backup taken")
        if status.pending:
            async for item in upgrade(ctx, container, ev):
                yield item
        from console.core.ops.db import schema_revision

        revision = await schema_revision(ctx)
        journal.update(schema_revision=revision)
        history["schema_revision"] = revision

        step = "smoke"
        journal.step(step)
        async for item in smoke_colour(ctx, to, version, ev):
            yield item

        step = "switch"
        journal.step(step, switch_started=True)
        yield ev.start("switch", f"switching nginx from {frm} to {to} (nginx -t, graceful reload)")
        await switch_traffic(ctx, to, version)
        journal.update(switched=True)
        yield ev.ok("switch", f"nginx serves {to} ({version})", colour=to)

        step = "bake"
        journal.step(step)
        async for item in bake(
            ctx, to, version, ev, seconds=bake_s, max_p95_ms=p95_max, max_error_rate=err_max
        ):
            yield item
        journal.update(bake_passed=True)
    except (asyncio.CancelledError, GeneratorExit):
        reason = f"cancelled at step {step}"
        try:
            await asyncio.shield(_undo_blue_green(ctx, journal, notes))
        finally:
            journal.finish("rolled-back", reason=reason, undo=notes)
            history.update(
                result="rolled-back" if journal.data.get("switch_started") else "failed",
                reason=reason,
                finished=datetime.now(UTC).isoformat(),
                duration_s=round(time.monotonic() - t0, 1),
            )
            record_history(ctx.history_path, history)
        raise
    except Exception as exc:
        reason = ctx.redact(
            str(exc) if isinstance(exc, OpError) else f"{type(exc).__name__}: {exc}"
        )
        yield ev.fail(step, reason)
        yield ev.start("rollback", f"automatic rollback: {reason}")
        undo_error: OpError | None = None
        try:
            await _undo_blue_green(ctx, journal, notes)
        except OpError as e2:
            undo_error = e2
        for status_, message in notes:
            yield ev.make("rollback", status_, message)
        switched = journal.data.get("switch_started")
        result = "rolled-back" if switched else "failed"
        journal.finish(result if not undo_error else "failed", reason=reason, undo=notes)
        history.update(
            result=result,
            reason=f"{step}: {reason}",
            failed_step=step,
            finished=datetime.now(UTC).isoformat(),
            duration_s=round(time.monotonic() - t0, 1),
            bake=getattr(exc, "data", None) or None,
        )
        record_history(ctx.history_path, history)
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
    if ctx.keep_previous_colour:
        journal.step("keep-old")
        yield ev.ok(
            "keep-old",
            f"{frm} ({from_version}) keeps running, out of the upstream: the instant rollback "
            "target (stackdeck rollback)",
            colour=frm,
            version=from_version,
        )
    else:
        journal.step("stop-old")
        yield ev.start("stop-old", f"stopping {frm} ({from_version}), kept for rollback")
        try:
            await stop_colour(ctx, frm)
            yield ev.ok("stop-old", f"{frm} stopped (rollback: stackdeck rollback)")
        except OpError as exc:
            yield ev.warn("stop-old", f"could not stop {frm}: {exc}")
    if "worker" in services:
        async for item in _move_worker(ctx, version, ev, h_timeout):
            yield item
    duration = time.monotonic() - t0
    journal.finish("done", duration_s=round(duration, 1))
    history.update(
        result="ok", finished=datetime.now(UTC).isoformat(), duration_s=round(duration, 1)
    )
    record_history(ctx.history_path, history)
    yield ev.done(
        f"deployed {version} to {to} in {duration:.1f} s ({frm} keeps {from_version} for rollback)",
        version=version,
        colour=to,
        duration_s=round(duration, 1),
        backup_id=history.get("backup_id"),
    )


async def _rolling(
    ctx: OpContext,
    *,
    op_id: str,
    version: str,
    services: list[str] | None = None,
    build: bool = False,
    force: bool = False,
    backup: str = "auto",
    health_timeout: float | None = None,
    **_: Any,
) -> AsyncIterator[OpEvent]:
    """The runbook's method 2: recreate one service at a time in place, health
    verified between them. The serving colour is recreated under traffic, so
    requests fail while it restarts: blue-green is the zero-downtime path."""
    ev = Emitter("deploy", ctx.redact)
    services = [s for s in (services or ["backend", "worker"]) if s in DEPLOYABLE]
    h_timeout = health_timeout or ctx.health_timeout
    t0 = time.monotonic()
    async for rec in recover(ctx, ev, op_id=op_id):
        if isinstance(rec, OpEvent):
            yield rec
    view = await observe(ctx)
    if view.serving is None:
        raise OpFailed("cannot tell which colour nginx serves (is nginx up?)", step="prepare")
    colour = view.serving
    if view.serving_version() == version and not force and services == ["backend"]:
        yield ev.done(f"{colour} already serves {version}; nothing to do")
        return
    yield ev.warn(
        "prepare", f"rolling deploy recreates {colour} in place: requests fail while it restarts"
    )
    image: dict[str, Any] | None = None
    async for got in ensure_image(ctx, version, build, ev):
        if isinstance(got, OpEvent):
            yield got
        else:
            image = got
    history = _history_base(ctx, op_id, "rolling", view, version, colour)
    history.update(
        image=image_ref(ctx.image_repo, version),
        image_digest=(image or {}).get("Id"),
        services=services,
    )
    journal = Journal.begin(
        ctx.journal_path,
        id=op_id,
        op="deploy",
        strategy="rolling",
        version=version,
        from_version=view.serving_version(),
        from_colour=colour,
        to_colour=None,
        services=services,
        **_journal_identity(ctx),
    )
    step = "prepare"
    try:
        for svc in services:
            service = f"backend_{colour}" if svc == "backend" else "worker"
            var = f"{colour.upper()}_VERSION" if svc == "backend" else "WORKER_VERSION"
            prev = read_deploy_env(ctx.deploy_env_path).get(var)
            step = f"recreate-{service}"
            journal.step(step, service=service, prev_version=prev)
            yield ev.start(step, f"recreating {service} with {version} (was {prev})")
            update_deploy_env(ctx.deploy_env_path, {var: version})
            try:
                await compose(
                    ctx, "up", "-d", "--no-deps", "--force-recreate", service, timeout_s=180
                )
                if svc == "backend":
                    status: MigrationStatus | None = None
                    async for ready in _wait_ready(ctx, colour, version, ev, h_timeout):
                        if isinstance(ready, MigrationStatus):
                            status = ready
                        else:
                            yield ready
                    assert status is not None
                    if (status.pending and backup != "never") or backup == "always":
                        async for b in take_backup(
                            ctx, ev, reason=f"pre-deploy {version}", op_id=op_id
                        ):
                            if isinstance(b, BackupInfo):
                                history["backup_id"] = b.id
                            else:
                                yield b
                    if status.pending:
                        async for item in upgrade(ctx, ctx.container(service), ev):
                            yield item
                else:
                    async for item in wait_service_healthy(
                        ctx, service, ev, timeout_s=h_timeout, ready=_worker_heartbeat(ctx, version)
                    ):
                        yield item
            except OpError as exc:
                yield ev.fail(step, str(exc))
                if prev:
                    yield ev.start("rollback", f"putting {service} back on {prev}")
                    update_deploy_env(ctx.deploy_env_path, {var: prev})
                    await compose(
                        ctx, "up", "-d", "--no-deps", "--force-recreate", service, timeout_s=180
                    )
                    yield ev.ok("rollback", f"{service} recreated with {prev}")
                raise
            yield ev.ok(step, f"{service} runs {version}")
    except Exception as exc:
        reason = ctx.redact(str(exc))
        journal.finish("failed", reason=reason)
        history.update(
            result="failed",
            reason=f"{step}: {reason}",
            finished=datetime.now(UTC).isoformat(),
            duration_s=round(time.monotonic() - t0, 1),
        )
        record_history(ctx.history_path, history)
        raise OpFailed(
            f"rolling deploy of {version} failed at {step}: {reason}", step=step
        ) from None
    duration = time.monotonic() - t0
    journal.finish("done", duration_s=round(duration, 1))
    history.update(
        result="ok", finished=datetime.now(UTC).isoformat(), duration_s=round(duration, 1)
    )
    record_history(ctx.history_path, history)
    yield ev.done(
        f"rolling deploy of {version} done in {duration:.1f} s",
        version=version,
        duration_s=round(duration, 1),
    )
