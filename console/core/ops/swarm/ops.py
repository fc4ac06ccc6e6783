"""Deploy, rollback, scale and node drain/activate on a swarm stack.

The same operations as on a compose project (same table entries, CLI verbs,
keys, lock, audit, history and notices: :func:`console.core.ops.run_op`
picks these implementations when the stack is a swarm stack), done the
Swarm way, through a manager's engine API with the docker SDK:

* **deploy** = a rolling ``service update`` of the backend's image
  (``<registry>/<prefix>-backend:<version>``, refused before anything
  changes when the registry does not have it). Swarm gates it on the task
  health checks with the service's own ``update_config`` (start-first,
  ``failure_action: rollback``, its monitor window); once Swarm says
  ``completed``, stackdeck's bake (:func:`console.core.ops.steps.bake.bake`:
  p95 and error rate through nginx, the compose deploy's code and
  thresholds) runs on top, the service's tasks watched. When Swarm rolls
  the update back, pauses it, or the bake fails, the service is rolled back
  (``service rollback``, unless Swarm already did) and the reason reported:
  Swarm's ``UpdateStatus`` message and the failed task's error, or the
  bake's figures. The worker (same image) follows once the bake passed.
* **rollback** = ``service rollback`` to the previous spec, or a rolling
  update to a named version (no bake, as on compose).
* **scale** = ``service scale``; pinned, global and singleton services refused.
* **node-drain / node-activate** = the node's availability; a node that
  does not exist, or draining the last node a pinned service (the
  database) can run on, refused.

What Swarm keeps itself replaces compose's journal: the previous spec is
the service's ``PreviousSpec`` and an update in flight is Swarm's to finish
or roll back, so an interrupted deploy leaves nothing for stackdeck to
recover; a cancelled one (Ctrl-C, the TUI's quit) rolls back before it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import httpx

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.errors import BadInput, OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.http import client, probe
from console.core.ops.lifecycle import OpRecord
from console.core.ops.progress import Progress, run_steps
from console.core.ops.steps.bake import bake
from console.core.ops.steps.images import newest_versions
from console.core.ops.swarm import plan
from console.core.ops.table import DeployParams, NodeParams, RollbackParams, ScaleParams
from console.core.sources.docker.swarm import STACK_LABEL, short_service_name, stack_mode

__all__ = [
    "SwarmEngine",
    "registry_versions",
    "resolve_mode",
    "run_node_activate",
    "run_node_drain",
    "run_swarm_deploy",
    "run_swarm_rollback",
    "run_swarm_scale",
    "validate_node",
    "validate_swarm_deploy",
    "validate_swarm_rollback",
    "validate_swarm_scale",
]

POLL_S = 1.0
"""Between two reads of a service's update status or tasks."""
REPORT_S = 5.0
"""Between two progress lines while Swarm works."""
SETTLE_S = 60.0
"""Beyond the health timeout, how long an update, rollback or scale may take
(Swarm's monitor windows, image pulls)."""
REGISTRY_TIMEOUT_S = 5.0
HOLD_POLLS = 3
"""A drain is done when its end check (every service at its count on active,
ready nodes, nothing still starting or unplaced) holds over this many
consecutive reads, not on one."""
UNPLACED_S = 20.0
"""How long a task may stay pending with the scheduler's reason (``no
suitable node``) before the drain fails with that reason."""
CANCEL_ROLLBACK_S = 30.0
"""How long a cancelled deploy waits for its rollback to complete before it
ends saying the rollback is still running (Swarm finishes it)."""


# --- the engine ---------------------------------------------------------------------------


class SwarmEngine:
    """The manager's engine through the docker SDK (blocking calls, each run
    on a thread by :meth:`call`)."""

    def __init__(self, ctx: OpContext):
        self.ctx = ctx
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            if self.ctx.docker_host:
                self._client = docker.DockerClient(base_url=self.ctx.docker_host, timeout=30)
            else:
                self._client = docker.from_env(timeout=30)
        return self._client

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    # blocking helpers (run through call)

    def full_name(self, short: str) -> str:
        return f"{self.ctx.stack}_{short}"

    def services(self) -> list[dict[str, Any]]:
        return list(self.client.api.services(filters={"label": f"{STACK_LABEL}={self.ctx.stack}"}))

    def service(self, short: str) -> dict[str, Any] | None:
        name = self.full_name(short)
        for svc in self.services():
            if svc.get("Spec", {}).get("Name") == name:
                return dict(svc)
        return None

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        return list(self.client.api.tasks(filters={"service": service_id}))

    def stack_tasks(self) -> list[dict[str, Any]]:
        ids = [s["ID"] for s in self.services()]
        return list(self.client.api.tasks(filters={"service": ids})) if ids else []

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.client.api.nodes())

    def image_exists(self, image: str) -> bool | str:
        """True when the registry the nodes pull from has ``image`` (the
        manager asks it: ``GET /distribution/<image>/json``); else why not."""
        try:
            self.client.api.inspect_distribution(image)
            return True
        except Exception as exc:
            return str(getattr(exc, "explanation", None) or exc).splitlines()[0][:200]

    def update_image(self, short: str, image: str, *, force: bool = False) -> None:
        svc = self.client.services.get(self.full_name(short))
        svc.update(image=image, force_update=force or None)

    def _post_spec(self, svc: dict[str, Any], spec: dict[str, Any], **params: Any) -> None:
        """``POST /services/{id}/update`` with ``spec`` as it is, at the
        version read (the SDK's model merges the spec through its own fields
        first, which changes the task template: see :meth:`scale`)."""
        api = self.client.api
        url = api._url("/services/{0}/update", svc["ID"])
        resp = api._post_json(url, data=spec, params={"version": svc["Version"]["Index"], **params})
        api._result(resp, json=True)

    def rollback(self, short: str) -> None:
        """``docker service rollback``: the current spec posted back with
        ``rollback=previous`` (the SDK has no call of its own for it)."""
        svc = self.client.api.inspect_service(self.full_name(short))
        self._post_spec(svc, svc["Spec"], rollback="previous")

    def scale(self, short: str, n: int) -> None:
        """``docker service scale``: the current spec posted back with only its
        replicas changed. Not the SDK's ``Service.scale``: its merge adds
        ``DNSConfig: {}`` to a stack-deployed task template, and a changed
        template is a rolling update of every task (its monitor window and
        ``failure_action: rollback``): a drain during it stopped a task of
        that update, and Swarm rolled the scale back."""
        svc = self.client.api.inspect_service(self.full_name(short))
        spec = copy.deepcopy(svc["Spec"])
        spec["Mode"]["Replicated"]["Replicas"] = n
        self._post_spec(svc, spec)

    def set_availability(self, node_id: str, availability: str) -> None:
        node = self.client.nodes.get(node_id)
        spec = dict(node.attrs["Spec"])
        spec["Availability"] = availability
        node.update(spec)

    def info(self) -> dict[str, Any]:
        return dict(self.client.api.info())


def _engine_error(exc: BaseException) -> str:
    from console.core.sources.docker.handle import describe_docker_error

    return describe_docker_error(exc)


async def resolve_mode(ctx: OpContext) -> tuple[str, str]:
    """``(mode, reason)``: the context's mode when it is set, else the
    engine's answer (a swarm manager with services of this stack: swarm).
    An engine that does not answer is a compose stack here: the compose
    operation then reports what is wrong with it."""
    if ctx.mode in ("compose", "swarm"):
        return ctx.mode, f"mode = {ctx.mode}"
    engine = SwarmEngine(ctx)
    try:
        info = await asyncio.wait_for(engine.call(engine.info), timeout=ctx.http_timeout)
        swarm = info.get("Swarm") or {}
        manager = swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))
        has = bool(await engine.call(engine.services)) if manager else None
        return stack_mode(info, ctx.stack, has_services=has)
    except Exception as exc:
        return "compose", f"the engine did not say ({_engine_error(exc)})"
    finally:
        engine.close()


async def _need(engine: SwarmEngine, short: str) -> dict[str, Any]:
    try:
        svc = await engine.call(engine.service, short)
    except Exception as exc:
        raise BadInput(
            f"cannot read the swarm stack {engine.ctx.stack} ({_engine_error(exc)}); "
            "point DOCKER_HOST at a manager's engine (bash scripts/swarm.sh env)"
        ) from None
    if svc is None:
        raise BadInput(
            f"the swarm stack {engine.ctx.stack} has no service {engine.full_name(short)}"
        )
    return dict(svc)


def _image(svc: dict[str, Any]) -> str:
    return str(svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def registry_url(ctx: OpContext) -> str:
    """The registry on the host (``SWARM_REGISTRY_URL``, else 127.0.0.1:``SWARM_REGISTRY_PORT``)."""
    url = os.environ.get("SWARM_REGISTRY_URL") or ctx.env.get("SWARM_REGISTRY_URL")
    if url:
        return url.rstrip("/")
    port = os.environ.get("SWARM_REGISTRY_PORT") or ctx.env.get("SWARM_REGISTRY_PORT") or "5000"
    return f"http://127.0.0.1:{port}"


async def registry_versions(ctx: OpContext, image: str) -> list[str] | None:
    """The tags the registry has of ``image``'s repository (None: it could
    not be asked)."""
    _, path = plan.repository_path(image)
    try:
        async with httpx.AsyncClient(timeout=REGISTRY_TIMEOUT_S) as http:
            r = await http.get(f"{registry_url(ctx)}/v2/{path}/tags/list")
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return sorted(str(t) for t in (r.json().get("tags") or []))
    except (httpx.HTTPError, ValueError):
        return None


async def _check_version(engine: SwarmEngine, current: str, version: str) -> str:
    """The image of ``version`` beside ``current``, or BadInput naming the
    versions the registry has."""
    ref = plan.image_for_version(current, version)
    found = await engine.call(engine.image_exists, ref)
    if found is True:
        return ref
    tags = await registry_versions(engine.ctx, ref)
    have = (
        newest_versions(tags)
        if tags
        else (
            "none" if tags == [] else f"(the registry at {registry_url(engine.ctx)} did not answer)"
        )
    )
    _, path = plan.repository_path(ref)
    raise BadInput(
        f"unknown version {version}: the registry has no {ref} ({found}). Available: {have}. "
        f"Push it first: bash scripts/swarm.sh push {path}:{version}",
        field="version",
    )


# --- waiting on Swarm -------------------------------------------------------------------


def _started(svc: dict[str, Any]) -> str:
    return str((svc.get("UpdateStatus") or {}).get("StartedAt") or "")


async def _wait_update(
    engine: SwarmEngine,
    short: str,
    progress: Progress,
    *,
    before: str,
    image: str,
    step: str,
    within_s: float,
    rollback: bool = False,
) -> plan.UpdateOutcome:
    """Poll the service until the update (or rollback) that began after
    ``before`` (the previous ``UpdateStatus.StartedAt``) has finished;
    report every few seconds. A timeout is an outcome too (not finished)."""
    t0 = time.monotonic()
    next_report = t0 + REPORT_S
    outcome = plan.UpdateOutcome("none", False, False, False, "no update status yet")
    while time.monotonic() - t0 < within_s:
        svc = await engine.call(engine.service, short)
        if svc is not None and _started(svc) and _started(svc) != before:
            tasks = await engine.call(engine.tasks, svc["ID"])
            outcome = plan.update_outcome(svc.get("UpdateStatus"), tasks, image, rollback=rollback)
            if outcome.finished:
                return outcome
            now = time.monotonic()
            if now >= next_report:
                next_report = now + REPORT_S
                on = len(plan.running_of(tasks, image))
                want = svc["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", "?")
                progress.info(
                    step,
                    f"{now - t0:.0f} s: {outcome.state}, {on}/{want} task(s) running "
                    f"{plan.version_of(image)}",
                    state=outcome.state,
                )
        await asyncio.sleep(POLL_S)
    return plan.UpdateOutcome(
        outcome.state,
        False,
        False,
        outcome.rolled_back,
        f"not finished within {within_s:.0f} s ({outcome.reason})",
    )


async def _served_version(ctx: OpContext, version: str, within_s: float = 20.0) -> str | None:
    """What nginx's /api/health reports, polled until it is ``version`` (or the time is up)."""
    seen: str | None = None
    deadline = time.monotonic() + within_s
    async with client(ctx) as http:
        while True:
            p = await probe(http, "/api/health")
            seen = p.version if p.ok else p.describe()
            if seen == version or time.monotonic() >= deadline:
                return seen
            await asyncio.sleep(0.5)


def _tasks_watch(engine: SwarmEngine, short: str, image: str) -> Callable[[], Any]:
    """The bake's health watch on Swarm: a task of the new image failed, or
    none of them runs any more."""

    async def watch() -> str | None:
        svc = await engine.call(engine.service, short)
        if svc is None:
            return f"the service {engine.full_name(short)} is gone"
        tasks = await engine.call(engine.tasks, svc["ID"])
        if not plan.running_of(tasks, image):
            why = plan.update_outcome(svc.get("UpdateStatus"), tasks, image).reason
            return f"no task of {plan.version_of(image)} runs any more during the bake ({why})"
        state = (svc.get("UpdateStatus") or {}).get("State")
        if str(state or "").startswith("rollback_"):
            return f"Swarm started a rollback during the bake: {(svc.get('UpdateStatus') or {}).get('Message')}"
        return None

    return watch


async def _roll_back(
    engine: SwarmEngine,
    short: str,
    progress: Progress,
    *,
    to_image: str,
    within_s: float,
    swarm_did: bool,
    step: str = "rollback",
    after_update: bool = True,
) -> plan.UpdateOutcome:
    """``service rollback`` (unless Swarm rolls back by itself already),
    then wait for it to complete. The service is read again first: when
    its update status is a rollback of Swarm's (``rollback_started``,
    ``rollback_completed``, ``rollback_paused``), or it has no previous
    spec, a second rollback would be refused: its state is the outcome
    (``after_update``: the status is of the update we just made; a
    rollback the operator asks for reads no meaning into an older one)."""
    svc = await engine.call(engine.service, short)
    if svc is None:
        return plan.UpdateOutcome("none", True, False, False, f"{engine.full_name(short)} is gone")
    status = svc.get("UpdateStatus") or {}
    state = str(status.get("State") or "")
    before = _started(svc)
    if swarm_did or (after_update and state.startswith("rollback_")):
        progress.info(step, f"Swarm is rolling the update back by itself ({state or 'rollback'})")
        if state in ("rollback_completed", "rollback_paused"):
            tasks = await engine.call(engine.tasks, svc["ID"])
            return plan.update_outcome(status, tasks, to_image, rollback=True)
        before = ""  # the rollback in flight is the one to wait for
    elif not svc.get("PreviousSpec"):
        return plan.UpdateOutcome(
            state or "none",
            True,
            False,
            False,
            f"{engine.full_name(short)} has no previous spec to roll back to (update status: "
            f"{state or 'none'})",
        )
    else:
        progress.start(step, f"docker service rollback {engine.full_name(short)}")
        await engine.call(engine.rollback, short)
    return await _wait_update(
        engine,
        short,
        progress,
        before=before,
        image=to_image,
        step=step,
        within_s=within_s,
        rollback=True,
    )


async def _roll_back_safely(
    engine: SwarmEngine,
    short: str,
    progress: Progress,
    *,
    to_image: str,
    within_s: float,
    swarm_did: bool,
) -> plan.UpdateOutcome:
    """:func:`_roll_back`, an engine error being its outcome (not finished)."""
    try:
        return await _roll_back(
            engine, short, progress, to_image=to_image, within_s=within_s, swarm_did=swarm_did
        )
    except OpError as exc:
        return plan.UpdateOutcome("error", False, False, False, str(exc))
    except Exception as exc:
        return plan.UpdateOutcome("error", False, False, False, _engine_error(exc))


# --- deploy ----------------------------------------------------------------------------------

SWARM_DEPLOYABLE = ("backend", "worker")


def parse_swarm_services(value: Any) -> list[str]:
    """What a deploy moves on Swarm: the backend, and the worker (same image) after it."""
    from console.core.ops.deploy import parse_services

    services = parse_services(value)
    if "frontend" in services:
        raise BadInput(
            "on a swarm stack deploy moves the backend and the worker (one image); the "
            "frontend is rolled with its own image: docker service update --image on a manager",
            field="services",
        )
    return services


async def validate_swarm_deploy(ctx: OpContext, params: DeployParams) -> DeployParams:
    from console.core.ops.deploy import ENVIRONMENTS

    if params.environment not in ENVIRONMENTS:
        raise BadInput(
            f"environment {params.environment!r}: this host runs the production stack {ctx.stack!r}",
            field="environment",
        )
    services = parse_swarm_services(params.services)
    if params.build:
        raise BadInput(
            "--build: the nodes pull from the swarm's registry; build the image on the host "
            "(scripts/images.sh) and push it (bash scripts/swarm.sh push), then deploy",
            field="build",
        )
    engine = SwarmEngine(ctx)
    try:
        svc = await _need(engine, "backend")
        await _check_version(engine, _image(svc), params.version)
    finally:
        engine.close()

    def given(value: float | None, default: float) -> float:
        return default if value is None else value

    return params.model_copy(
        update={
            "environment": "production",
            "strategy": "rolling",
            "services": services,
            "bake_seconds": given(params.bake_seconds, ctx.bake_seconds),
            "max_p95_ms": given(params.max_p95_ms, ctx.max_p95_ms),
            "max_error_rate": given(params.max_error_rate, ctx.max_error_rate),
            "health_timeout": given(params.health_timeout, ctx.health_timeout),
        }
    )


def _update_words(svc: dict[str, Any]) -> str:
    cfg = svc["Spec"].get("UpdateConfig") or {}
    monitor = cfg.get("Monitor")
    parts = [
        f"order {cfg.get('Order', 'stop-first')}",
        f"failure_action {cfg.get('FailureAction', 'pause')}",
    ]
    if monitor:
        parts.append(f"monitor {monitor / 1e9:g} s")
    return ", ".join(parts)


def _monitor_s(svc: dict[str, Any]) -> float:
    return float((svc["Spec"].get("UpdateConfig") or {}).get("Monitor") or 0) / 1e9


def _update_timeout(svc: dict[str, Any], health_timeout: float) -> float:
    """How long Swarm may take to update (or roll back) the service: each
    batch of ``Parallelism`` tasks (all at once when 0) gets the health
    timeout, the monitor window and the delay; then the settling time."""
    cfg = svc["Spec"].get("UpdateConfig") or {}
    replicas = svc["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
    parallelism = int(cfg.get("Parallelism") or 0)
    batches = 1
    if isinstance(replicas, int) and replicas > 0 and parallelism > 0:
        batches = math.ceil(replicas / parallelism)
    per_batch = health_timeout + _monitor_s(svc) + float(cfg.get("Delay") or 0) / 1e9
    return batches * per_batch + SETTLE_S


async def run_swarm_deploy(
    ctx: OpContext, params: DeployParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    body = partial(_deploy, ctx, params, op_id=op_id)
    async for event in run_steps(Emitter("deploy", ctx.redact), body):
        yield event


async def _deploy(ctx: OpContext, params: DeployParams, progress: Progress, *, op_id: str) -> None:
    engine = SwarmEngine(ctx)
    try:
        await _deploy_steps(ctx, engine, params, progress, op_id=op_id)
    finally:
        engine.close()


async def _deploy_steps(
    ctx: OpContext, engine: SwarmEngine, params: DeployParams, progress: Progress, *, op_id: str
) -> None:
    version = params.version
    services = parse_swarm_services(params.services)
    bake_s = ctx.bake_seconds if params.bake_seconds is None else params.bake_seconds
    p95_max = params.max_p95_ms or ctx.max_p95_ms
    err_max = ctx.max_error_rate if params.max_error_rate is None else params.max_error_rate
    h_timeout = params.health_timeout or ctx.health_timeout
    svc = await _need(engine, "backend")
    from_image = _image(svc)
    from_version = plan.version_of(from_image)
    image = plan.image_for_version(from_image, version)
    replicas = svc["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
    if from_version == version and not params.force:
        progress.done(
            f"{engine.full_name('backend')} already runs {version}; nothing to do (--force to redeploy it)",
            version=version,
        )
        return
    progress.info(
        "prepare",
        f"{engine.full_name('backend')} runs {from_version} on {replicas} task(s); rolling update to "
        f"{version} ({_update_words(svc)}), then a bake of {bake_s:g} s through nginx",
        from_version=from_version,
        image=image,
    )
    record = OpRecord(ctx, "deploy", op_id)
    record.open(
        strategy="swarm-rolling",
        version=version,
        from_version=from_version,
        colour=None,
        from_colour=None,
    )
    record.note(image=image, services=services, mode="swarm")
    timeout = _update_timeout(svc, h_timeout)
    step = "update"
    updated = False
    update: asyncio.Future[Any] | None = None
    try:
        progress.start(step, f"docker service update --image {image} {engine.full_name('backend')}")
        before = _started(svc)
        # the engine call runs on a thread and cannot be stopped: shielded,
        # so that a cancel finds out whether it landed (see below)
        update = asyncio.ensure_future(
            engine.call(engine.update_image, "backend", image, force=params.force)
        )
        await asyncio.shield(update)
        updated = True
        outcome = await _wait_update(
            engine, "backend", progress, before=before, image=image, step=step, within_s=timeout
        )
        if not outcome.ok:
            raise _SwarmUpdateFailed(outcome)
        progress.ok(step, f"Swarm completed the update: {outcome.reason}")
        served = await _served_version(ctx, version)
        if served != version:
            raise OpFailed(f"nginx still serves {served} after the update", step=step)
        step = "bake"
        await bake(
            ctx,
            "backend",
            version,
            progress,
            seconds=bake_s,
            max_p95_ms=p95_max,
            max_error_rate=err_max,
            watch=_tasks_watch(engine, "backend", image),
        )
    except asyncio.CancelledError:
        if not updated and update is not None:
            try:
                await update  # the update call in flight: did it land?
                updated = True
            except Exception:
                pass  # it did not land: nothing to undo
        if not updated:
            record.fail(
                "failed", f"cancelled at step {step}; nothing was changed", failed_step=step
            )
            raise
        within = min(timeout, CANCEL_ROLLBACK_S)
        progress.start("rollback", f"cancelled at step {step}: rolling back to {from_version}")
        try:
            back = await _roll_back(
                engine, "backend", progress, to_image=from_image, within_s=within, swarm_did=False
            )
        except Exception as exc:
            back = plan.UpdateOutcome("error", True, False, False, _error_line(exc))
        if back.ok:
            result, how = "rolled-back", f"rolled back to {from_version}"
        elif not back.finished:
            # the rollback was asked for; Swarm finishes it without us
            result, how = (
                "rolled-back",
                f"the rollback to {from_version} is still running after {within:.0f} s "
                f"(docker service ps {engine.full_name('backend')})",
            )
        else:
            result, how = "failed", f"the rollback did not happen: {back.reason}"
        progress.info("rollback", how)
        record.fail(result, f"cancelled at step {step}; {how}", failed_step=step)
        raise
    except Exception as exc:
        reason = ctx.redact(_error_line(exc))
        progress.fail(step, reason, **(getattr(exc, "data", None) or {}))
        if not updated:
            record.fail("failed", reason, history_reason=f"{step}: {reason}", failed_step=step)
            raise OpFailed(f"deploy of {version} failed at {step}: {reason}", step=step) from None
        swarm_did = isinstance(exc, _SwarmUpdateFailed) and exc.outcome.rolled_back
        progress.start("rollback", f"automatic rollback: {reason}")
        back = await _roll_back_safely(
            engine, "backend", progress, to_image=from_image, within_s=timeout, swarm_did=swarm_did
        )
        try:
            served = await _served_version(ctx, from_version)
        except Exception as err:
            served = f"unknown ({_error_line(err)})"
        if back.ok:
            progress.ok("rollback", f"backend back on {from_version}; nginx serves {served}")
        else:
            progress.fail("rollback", f"the rollback did not complete: {back.reason}")
        record.fail(
            "rolled-back" if back.ok else "failed",
            reason if back.ok else f"{reason}; the rollback did not complete: {back.reason}",
            history_reason=f"{step}: {reason}"
            + ("" if back.ok else f"; the rollback did not complete: {back.reason}"),
            failed_step=step,
            bake=getattr(exc, "data", None) or None,
        )
        if not back.ok:
            raise OpFailed(
                f"deploy of {version} failed at {step} ({reason}) and the rollback did not "
                f"complete ({back.state}: {back.reason}). Run `stackdeck status` and "
                "`stackdeck rollback --version VERSION`",
                step=step,
            ) from None
        who = "Swarm rolled" if swarm_did else "Rolled"
        raise OpFailed(
            f"deploy of {version} failed at {step}: {reason}. {who} {engine.full_name('backend')} "
            f"back to {from_version} (nginx serves {served})",
            step=step,
            data={"failed_step": step, **(getattr(exc, "data", None) or {})},
        ) from None
    record.note(bake_passed=True)
    if "worker" in services:
        try:
            await _follow(engine, "worker", version, progress, within_s=timeout)
        except asyncio.CancelledError:
            # the backend serves the new version and passed its bake: that is the deploy
            record.note(worker=f"cancelled while the worker moved to {version}")
            record.succeed()
            raise
    duration = record.succeed()
    progress.done(
        f"deployed {version} to {engine.full_name('backend')} in {duration:.1f} s "
        f"(Swarm's rolling update, then the bake; {from_version} is the previous spec for rollback)",
        version=version,
        from_version=from_version,
        duration_s=round(duration, 1),
    )


def _error_line(exc: BaseException) -> str:
    """An error's one line: an operation's own message, else the engine's."""
    return str(exc) if isinstance(exc, OpError) else _engine_error(exc)


class _SwarmUpdateFailed(OpFailed):
    """Swarm rolled back, paused, or did not finish the update."""

    def __init__(self, outcome: plan.UpdateOutcome):
        self.outcome = outcome
        what = {
            "rollback_started": "Swarm rolled the update back",
            "rollback_completed": "Swarm rolled the update back",
            "rollback_paused": "Swarm rolled the update back and its rollback paused",
            "paused": "Swarm paused the update",
        }.get(outcome.state, "the update did not complete")
        super().__init__(f"{what}: {outcome.reason}", step="update")


async def _follow(
    engine: SwarmEngine,
    short: str,
    version: str,
    progress: Progress,
    *,
    within_s: float,
    only_from: str | None = None,
) -> None:
    """A service of the same image (the worker) moves to ``version`` after
    the backend (``only_from``: when it runs that version); a failure, an
    engine error included, is reported, the backend stays (it passed its bake)."""
    try:
        svc = await engine.call(engine.service, short)
    except Exception as exc:
        progress.warn(
            short, f"cannot read {engine.full_name(short)} ({_engine_error(exc)}): skipped"
        )
        return
    if svc is None:
        progress.info(short, f"no {engine.full_name(short)} service: skipped")
        return
    current = _image(svc)
    if only_from is not None and plan.version_of(current) != only_from:
        return
    if plan.version_of(current) == version:
        progress.ok(short, f"{short} already runs {version}")
        return
    image = plan.image_for_version(current, version)
    progress.start(short, f"docker service update --image {image} {engine.full_name(short)}")
    before = _started(svc)
    try:
        await engine.call(engine.update_image, short, image)
        outcome = await _wait_update(
            engine, short, progress, before=before, image=image, step=short, within_s=within_s
        )
    except Exception as exc:
        outcome = plan.UpdateOutcome("error", True, False, False, _engine_error(exc))
    if outcome.ok:
        progress.ok(short, f"{short} on {version}")
    else:
        progress.warn(
            short,
            f"{short} did not move to {version} ({outcome.reason}); the backend stays on it: "
            f"docker service ps {engine.full_name(short)}",
        )


# --- rollback ----------------------------------------------------------------------------------


async def validate_swarm_rollback(ctx: OpContext, params: RollbackParams) -> RollbackParams:
    if params.restore_db or params.backup_path:
        raise BadInput(
            "--restore-db on a swarm stack: the database runs as a task on its node and "
            "stackdeck's backups are of a compose stack; nothing was changed",
            field="restore_db",
        )
    from console.core.ops.deploy import parse_services

    named = parse_services(params.services) if params.services else []
    if any(s not in SWARM_DEPLOYABLE for s in named):
        raise BadInput(
            "on a swarm stack rollback moves the backend (and the worker with it)",
            field="services",
        )
    engine = SwarmEngine(ctx)
    try:
        svc = await _need(engine, "backend")
        if params.version:
            await _check_version(engine, _image(svc), params.version)
        elif _rollback_plan(ctx, svc) is None:
            raise BadInput(_nowhere(ctx, engine, svc), field="version")
    finally:
        engine.close()
    return params


def _previous_image(svc: dict[str, Any]) -> str | None:
    image = (
        ((svc.get("PreviousSpec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    ).get("Image")
    return str(image) if image else None


def _swarm_history(ctx: OpContext) -> list[dict[str, Any]]:
    from console.core.ops.audit import read_jsonl

    return [r for r in read_jsonl(ctx.history_path) if r.get("mode") == "swarm"]


def _rollback_plan(ctx: OpContext, svc: dict[str, Any]) -> tuple[str, str] | None:
    previous = _previous_image(svc)
    return plan.rollback_target(
        plan.version_of(_image(svc)),
        plan.version_of(previous) if previous else None,
        _swarm_history(ctx),
    )


def _nowhere(ctx: OpContext, engine: SwarmEngine, svc: dict[str, Any]) -> str:
    """Why a rollback without a version has no target, and the versions to name."""
    current = plan.version_of(_image(svc))
    previous = _previous_image(svc)
    if previous is None:
        why = "no previous spec, no deploy in the history that brought it"
    elif plan.version_of(previous) == current:
        why = f"its previous spec is {current} too"
    else:
        why = (
            f"its previous spec {plan.version_of(previous)} is the version a deploy from "
            f"{current} failed at"
        )
    known = plan.rollback_candidates(current, _swarm_history(ctx))
    hint = f" (the history's: {', '.join(known)})" if known else ""
    return (
        f"{engine.full_name('backend')} runs {current} and has nothing to roll back to ({why}); "
        f"name a version: --version VERSION{hint}; nothing was changed"
    )


async def run_swarm_rollback(
    ctx: OpContext, params: RollbackParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    body = partial(_rollback, ctx, params, op_id=op_id)
    async for event in run_steps(Emitter("rollback", ctx.redact), body):
        yield event


async def _rollback(
    ctx: OpContext, params: RollbackParams, progress: Progress, *, op_id: str
) -> None:
    engine = SwarmEngine(ctx)
    try:
        svc = await _need(engine, "backend")
        current = _image(svc)
        from_version = plan.version_of(current)
        how = "update"
        if params.version:
            target = plan.image_for_version(current, params.version)
        else:
            planned = _rollback_plan(ctx, svc)
            if planned is None:
                raise OpFailed(_nowhere(ctx, engine, svc), step="prepare")
            version, how = planned
            target = plan.image_for_version(current, version)
            if how == "previous-spec":
                target = _previous_image(svc) or target
        version = plan.version_of(target)
        record = OpRecord(ctx, "rollback", op_id)
        record.open(
            strategy="swarm-rollback" if not params.version else "swarm-rolling",
            version=version,
            from_version=from_version,
            colour=None,
            from_colour=None,
        )
        record.note(mode="swarm", reason=params.reason)
        timeout = _update_timeout(svc, ctx.health_timeout)
        if params.version and version == from_version:
            record.succeed()
            progress.done(f"{engine.full_name('backend')} already runs {version}", version=version)
            return
        try:
            if how == "update":
                progress.start(
                    "update",
                    f"rolling {engine.full_name('backend')} from {from_version} to {version}",
                )
                before = _started(svc)
                await engine.call(engine.update_image, "backend", target)
                outcome = await _wait_update(
                    engine,
                    "backend",
                    progress,
                    before=before,
                    image=target,
                    step="update",
                    within_s=timeout,
                )
            else:
                progress.info(
                    "prepare", f"previous spec of {engine.full_name('backend')}: {version}"
                )
                outcome = await _roll_back(
                    engine,
                    "backend",
                    progress,
                    to_image=target,
                    within_s=timeout,
                    swarm_did=False,
                    after_update=False,
                )
            if not outcome.ok:
                raise OpFailed(f"Swarm did not complete it: {outcome.reason}", step="update")
            served = await _served_version(ctx, version)
            if served != version:
                raise OpFailed(f"nginx serves {served}, not {version}", step="verify")
            progress.ok("verify", f"nginx serves {version}")
        except asyncio.CancelledError:
            record.fail(
                "failed",
                f"cancelled; Swarm finishes what it was asked (docker service ps "
                f"{engine.full_name('backend')})",
            )
            raise
        except Exception as exc:
            failed_step = exc.step if isinstance(exc, OpError) else "update"
            reason = ctx.redact(_error_line(exc))
            record.fail("failed", reason, failed_step=failed_step)
            raise OpFailed(f"rollback to {version} failed: {reason}", step=failed_step) from None
        try:
            await _follow(
                engine, "worker", version, progress, within_s=timeout, only_from=from_version
            )
        except asyncio.CancelledError:
            record.note(worker=f"cancelled while the worker moved to {version}")
            record.succeed()
            raise
        duration = record.succeed()
        progress.done(
            f"rolled {engine.full_name('backend')} back from {from_version} to {version} in {duration:.1f} s",
            version=version,
            from_version=from_version,
            duration_s=round(duration, 1),
        )
    finally:
        engine.close()


# --- scale ---------------------------------------------------------------------------------------


async def validate_swarm_scale(ctx: OpContext, params: ScaleParams) -> ScaleParams:
    if params.service is not None and params.count is not None:
        short, n = plan.parse_swarm_scale(params.service, params.count)
    else:
        short, n = plan.parse_swarm_scale(params.spec, params.count)
    engine = SwarmEngine(ctx)
    try:
        try:
            services, nodes = await asyncio.gather(
                engine.call(engine.services), engine.call(engine.nodes)
            )
        except Exception as exc:
            raise BadInput(
                f"cannot read the swarm stack {ctx.stack} ({_engine_error(exc)})"
            ) from None
    finally:
        engine.close()
    by_short = {short_service_name(str(s["Spec"]["Name"]), ctx.stack): s for s in services}
    plan.check_scale(by_short.get(short), short, n, nodes, ctx.stack, by_short)
    return params.model_copy(update={"service": short, "count": n})


async def run_swarm_scale(
    ctx: OpContext, params: ScaleParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    body = partial(_scale, ctx, str(params.service), int(params.count or 0))
    async for event in run_steps(Emitter("scale", ctx.redact), body):
        yield event


async def _scale(ctx: OpContext, short: str, n: int, progress: Progress) -> None:
    engine = SwarmEngine(ctx)
    try:
        svc = await _need(engine, short)
        was = svc["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
        if was == n:
            progress.done(
                f"{engine.full_name(short)} already has {n} task(s)", service=short, count=n
            )
            return
        image = _image(svc)
        progress.start("scale", f"docker service scale {engine.full_name(short)}={n} (was {was})")
        t0 = time.monotonic()
        await engine.call(engine.scale, short, n)
        timeout = ctx.health_timeout + SETTLE_S
        next_report = t0 + REPORT_S
        while True:
            tasks = await engine.call(engine.tasks, svc["ID"])
            running = len(plan.running_of(tasks, image))
            meant = sum(1 for t in tasks if t.get("DesiredState") == "running")
            if running == n and meant == n:
                break
            now = time.monotonic()
            if now - t0 > timeout:
                raise OpFailed(
                    f"{engine.full_name(short)}: {running} of {n} task(s) running after {timeout:.0f} s "
                    f"(docker service ps {engine.full_name(short)})",
                    step="scale",
                )
            if now >= next_report:
                next_report = now + REPORT_S
                progress.info("scale", f"{now - t0:.0f} s: {running}/{n} task(s) running")
            await asyncio.sleep(POLL_S)
        took = time.monotonic() - t0
        progress.done(
            f"{engine.full_name(short)} runs {n} task(s) (was {was}) after {took:.1f} s",
            service=short,
            count=n,
            was=was,
            seconds=round(took, 1),
        )
    finally:
        engine.close()


# --- nodes -----------------------------------------------------------------------------------------


async def validate_node(ctx: OpContext, params: NodeParams, *, drain: bool) -> NodeParams:
    engine = SwarmEngine(ctx)
    try:
        try:
            nodes, services = await asyncio.gather(
                engine.call(engine.nodes), engine.call(engine.services)
            )
        except Exception as exc:
            raise BadInput(
                f"cannot read the swarm's nodes ({_engine_error(exc)}); point DOCKER_HOST at a manager"
            ) from None
    finally:
        engine.close()
    node = plan.find_node(nodes, params.node)
    if drain:
        plan.check_drain(nodes, node, services, ctx.stack)
        plan.check_no_update(services, ctx.stack)
    return params.model_copy(update={"node": plan.describe_node(node).hostname})


async def validate_node_drain(ctx: OpContext, params: NodeParams) -> NodeParams:
    return await validate_node(ctx, params, drain=True)


async def validate_node_activate(ctx: OpContext, params: NodeParams) -> NodeParams:
    return await validate_node(ctx, params, drain=False)


async def run_node_drain(
    ctx: OpContext, params: NodeParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    body = partial(_availability, ctx, params.node, "drain")
    async for event in run_steps(Emitter("node-drain", ctx.redact), body):
        yield event


async def run_node_activate(
    ctx: OpContext, params: NodeParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    body = partial(_availability, ctx, params.node, "active")
    async for event in run_steps(Emitter("node-activate", ctx.redact), body):
        yield event


async def _availability(ctx: OpContext, name: str, availability: str, progress: Progress) -> None:
    """Set a node's availability; for a drain, wait until the stack's tasks
    left it and every service runs its desired count again (Swarm starts
    the replacements elsewhere), naming what moved."""
    engine = SwarmEngine(ctx)
    try:
        nodes = await engine.call(engine.nodes)
        node = plan.find_node(nodes, name)
        was = node["Spec"].get("Availability")
        if was == availability:
            progress.done(f"{name} is already {availability}", node=name)
            return
        before = [t for t in await engine.call(engine.stack_tasks) if t.get("NodeID") == node["ID"]]
        before = plan.tasks_on(before, node["ID"])
        if availability == "drain":
            lonely = _only_tasks_here(
                await engine.call(engine.services),
                await engine.call(engine.stack_tasks),
                node["ID"],
                ctx.stack,
            )
            for short in lonely:
                progress.warn(
                    "drain",
                    f"{short}: every running task is on {name}, so its requests fail while Swarm "
                    f"starts it elsewhere (scale it to 2 first for none to fail)",
                )
        started = {str(s["ID"]): _started(s) for s in await engine.call(engine.services)}
        verb = "docker node update --availability"
        progress.start(availability, f"{verb} {availability} {name} (was {was})")
        t0 = time.monotonic()
        await engine.call(engine.set_availability, node["ID"], availability)
        if availability == "active":
            progress.done(
                f"{name} is active: Swarm places new tasks on it (running ones are not moved back)",
                node=name,
            )
            return
        timeout = ctx.health_timeout + SETTLE_S
        next_report = t0 + REPORT_S
        held = 0
        pending_since: dict[str, float] = {}
        while True:
            services, tasks, nodes = await asyncio.gather(
                engine.call(engine.services),
                engine.call(engine.stack_tasks),
                engine.call(engine.nodes),
            )
            rolled = plan.rolled_back_since(services, started, ctx.stack)
            if rolled:
                raise OpFailed(
                    f"{name} is drained, but Swarm rolled back {'; '.join(rolled)} while it "
                    f"drained (a task of an update in flight was stopped); its spec is the "
                    f"previous one again: check it (docker service ps --no-trunc), and to undo "
                    f"the drain: stackdeck node activate {name}",
                    step="drain",
                )
            check = plan.drain_check(services, tasks, nodes, node["ID"], ctx.stack)
            now = time.monotonic()
            # done only when it holds over consecutive reads: a replacement
            # seen running once can still fail its start, a stale task vanish
            held = held + 1 if check.done else 0
            if held >= HOLD_POLLS:
                break
            pending_since = {tid: pending_since.get(tid, now) for tid in check.unplaced}
            stuck = sorted(
                check.unplaced[tid]
                for tid, since in pending_since.items()
                if now - since >= UNPLACED_S
            )
            if stuck or now - t0 > timeout:
                raise OpFailed(_not_settled(engine, name, check, stuck, timeout), step="drain")
            if now >= next_report:
                next_report = now + REPORT_S
                progress.info("drain", f"{now - t0:.0f} s: {check.describe(name)}")
            await asyncio.sleep(POLL_S)
        took = time.monotonic() - t0
        moved = _moved(services, tasks, before, nodes, ctx.stack)
        progress.done(
            f"{name} drained in {took:.1f} s: "
            + ("; ".join(moved) if moved else "no task of the stack had to move"),
            node=name,
            moved=moved,
            seconds=round(took, 1),
        )
    finally:
        engine.close()


def _not_settled(
    engine: SwarmEngine, name: str, check: plan.DrainCheck, stuck: list[str], timeout: float
) -> str:
    """The drain's failure: Swarm's reason for the tasks it cannot place (or
    what still keeps the drain from being done at its timeout) and what the
    operator can do."""
    what = (
        f"Swarm cannot place {'; '.join(stuck)}"
        if stuck
        else f"after {timeout:.0f} s: {check.describe(name)}"
    )
    labels = [*check.short, *(u.split(".", 1)[0] for u in stuck)]
    services = " ".join(engine.full_name(s) for s in dict.fromkeys(labels)) or "<service>"
    return (
        f"{name} is drained, but {what}; activate it again for Swarm to place them there: "
        f"stackdeck node activate {name} (or add a node that can run them; "
        f"docker service ps --no-trunc {services})"
    )


def _global(services: list[dict[str, Any]], task: Mapping[str, Any]) -> bool:
    for svc in services:
        if svc["ID"] == task.get("ServiceID"):
            return "Global" in (svc["Spec"].get("Mode") or {})
    return False


def _only_tasks_here(
    services: list[dict[str, Any]], tasks: list[dict[str, Any]], node_id: str, stack: str
) -> list[str]:
    """Replicated services whose running tasks are all on ``node_id``."""
    out = []
    for svc in services:
        if "Global" in (svc["Spec"].get("Mode") or {}):
            continue
        own = plan.running_of([t for t in tasks if t.get("ServiceID") == svc["ID"]])
        if own and all(t.get("NodeID") == node_id for t in own):
            out.append(short_service_name(str(svc["Spec"]["Name"]), stack))
    return sorted(out)


def _moved(
    services: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    before: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    stack: str,
) -> list[str]:
    """``backend.2 -> node-1`` for each task that was on the drained node."""
    names = {s["ID"]: short_service_name(str(s["Spec"]["Name"]), stack) for s in services}
    out = []
    for old in before:
        if _global(services, old):
            continue
        slot = old.get("Slot")
        now = [
            t
            for t in plan.running_of(tasks)
            if t.get("ServiceID") == old.get("ServiceID") and t.get("Slot") == slot
        ]
        where = plan.node_name(nodes, now[0].get("NodeID")) if now else "(not placed)"
        out.append(f"{names.get(old.get('ServiceID'), '?')}.{slot} -> {where}")
    return sorted(out)
