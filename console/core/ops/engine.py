"""The engine: :func:`run_op` runs every operation of the table
(:data:`console.core.ops.table.OPERATIONS`) behind the same safety net.

One entry point for the TUI and the CLI::

    async for event in run_op("deploy", ctx, DeployParams(version="v1.2.3")):
        render(event)

(``run_op("deploy", ctx, version="v1.2.3")`` builds the same model from
keywords.) In this order:

1. unknown operation -> a ``fail`` event (``bad-input``);
2. read-only mode refuses every operation that writes (``read-only``);
3. the parameters as the operation's typed model (``bad-input``, naming the
   field);
4. the operation's own validation, the checks that need the stack, before
   anything changes (``bad-input``);
5. the deploy lock for every writing operation (``lock-busy``, naming the
   holder, or explaining a stale lock);
6. one audit line when it starts and one when it ends (a single line when it
   was refused), with the operator's identity and the parameters, secrets
   masked;
7. the operation's events; the last one is ``done``, or ``fail`` with step
   ``result`` and ``data["code"]`` (see :mod:`console.core.ops.errors`).

Cancelling is cancelling the task that iterates :func:`run_op` (Ctrl-C in
the CLI, quitting or SIGHUP in the TUI): the operation undoes itself where
it stands (a VACUUM is cancelled on the server), the end line says
``cancelled`` and the lock is released. :func:`cancel_op` is the operator's
deliberate cancel (the TUI's cancel key): it writes who asked, and how,
to the audit log first, then stops the task the same way.

Events of writing operations are also appended, as text, to
``$STATE/deployment.log`` (the runbook's ``tail -f logs/deployment.log``).

A deploy or a rollback that runs (not refused) first saves a snapshot of
``pg_stat_statements`` to ``$STATE/pgss/<op_id>.json`` (step ``pgss``), what
"since the deploy" (:mod:`console.core.since`) compares the statements with.
It never holds the operation up: a database that does not answer within
:data:`PGSS_TIMEOUT_S` is a ``warn`` event and the operation goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from console.core.models import OpEvent
from console.core.ops import notify
from console.core.ops.audit import audit, redact_params
from console.core.ops.context import OpContext
from console.core.ops.errors import BadInput, OpError, ReadOnly
from console.core.ops.events import Emitter
from console.core.ops.lock import DeployLock, break_lock, describe_holder, make_record
from console.core.ops.table import OPERATIONS, NoParams, OpParams, parse_params

__all__ = [
    "IMPLEMENTATIONS",
    "PGSS_SNAPSHOT_OPS",
    "SWARM_IMPLEMENTATIONS",
    "Implementation",
    "cancel_op",
    "result_code",
    "run_op",
]

PGSS_SNAPSHOT_OPS = ("deploy", "rollback")
"""Operations that snapshot pg_stat_statements when they start."""
PGSS_TIMEOUT_S = 3.0
"""Longest a snapshot may take (connect and read) before the operation goes on without it."""

RunFn = Callable[..., AsyncIterator[OpEvent]]
"""``run(ctx, params, *, op_id)``: the operation's events."""
ValidateFn = Callable[[OpContext, Any], Awaitable[Any]]
"""``validate(ctx, params) -> params``: the checks that need the stack."""


@dataclass(frozen=True)
class Implementation:
    """How the engine runs one operation of :data:`OPERATIONS`."""

    run: RunFn
    validate: ValidateFn | None = None


async def _run_lock_break(
    ctx: OpContext, params: NoParams, *, op_id: str
) -> AsyncIterator[OpEvent]:
    ev = Emitter("lock-break", ctx.redact)
    record = await asyncio.to_thread(break_lock, ctx.lock_path)
    if record is None:
        yield ev.done("the lock was free; nothing to break")
    else:
        yield ev.done(f"broke the stale lock of {describe_holder(record)}", holder=record)


def _swarm_implementations() -> dict[str, Implementation]:
    from console.core.ops import silence
    from console.core.ops.swarm import ops as swarm

    return {
        "deploy": Implementation(swarm.run_swarm_deploy, swarm.validate_swarm_deploy),
        "rollback": Implementation(swarm.run_swarm_rollback, swarm.validate_swarm_rollback),
        "scale": Implementation(swarm.run_swarm_scale, swarm.validate_swarm_scale),
        "node-drain": Implementation(swarm.run_node_drain, swarm.validate_node_drain),
        "node-activate": Implementation(swarm.run_node_activate, swarm.validate_node_activate),
        "lock-break": Implementation(_run_lock_break),
        "silence": Implementation(silence.run_silence, silence.validate_silence),
        "silence-expire": Implementation(silence.run_silence_expire),
    }


SWARM_IMPLEMENTATIONS: dict[str, Implementation] = _swarm_implementations()
"""The writing operations a swarm stack has (:mod:`console.core.ops.swarm`);
the other writing operations act on a compose project and are refused there."""
assert set(SWARM_IMPLEMENTATIONS) == {n for n, s in OPERATIONS.items() if s.on_swarm}, (
    "OpSpec.on_swarm and the swarm implementations disagree"
)


async def _implementation(name: str, ctx: OpContext) -> tuple[Implementation, str]:
    """The implementation of ``name`` for this stack's mode, and the mode:
    on a swarm stack the swarm one (a writing operation without one is
    refused: it would run docker compose against a manager); a swarm-only
    operation is refused on a compose project. Reading operations are not
    asked about (no engine round trip)."""
    spec = OPERATIONS[name]
    if not spec.writes and not spec.swarm_only:
        return IMPLEMENTATIONS[name], "compose"
    from console.core.ops.swarm.ops import resolve_mode

    mode, reason = await resolve_mode(ctx)
    if mode == "swarm":
        impl = SWARM_IMPLEMENTATIONS.get(name)
        if impl is None:
            raise BadInput(
                f"{name} acts on a compose project and this is a swarm stack ({reason}); on Swarm "
                f"stackdeck runs {', '.join(n for n in SWARM_IMPLEMENTATIONS if n in OPERATIONS)}; "
                "nothing was changed",
                field=None,
            )
        return impl, mode
    if spec.swarm_only:
        raise BadInput(
            f"{name} acts on a swarm stack's nodes and {ctx.stack} is a compose project "
            f"({reason}); nothing was changed",
            field=None,
        )
    return IMPLEMENTATIONS[name], mode


def _implementations() -> dict[str, Implementation]:
    from console.core import since
    from console.core.ops import (
        backup,
        cache,
        deploy,
        migrate,
        preflight,
        rollback,
        services,
        silence,
        status,
        vacuum,
        verify,
    )

    impls = {
        "preflight": Implementation(preflight.run_preflight),
        "verify": Implementation(verify.run_verify),
        "status": Implementation(status.run_status),
        "deploy": Implementation(deploy.run_deploy, deploy.validate_deploy),
        "rollback": Implementation(rollback.run_rollback, rollback.validate_rollback),
        "backup": Implementation(backup.run_backup),
        "restore": Implementation(backup.run_restore, backup.validate_restore),
        "migrate": Implementation(migrate.run_migrate),
        "vacuum": Implementation(vacuum.run_vacuum, vacuum.validate_vacuum),
        "cache-flush": Implementation(cache.run_cache_flush, cache.validate_cache_flush),
        "cache-warm": Implementation(cache.run_cache_warm, cache.validate_cache_warm),
        "emergency-limit": Implementation(cache.run_emergency_limit),
        "scale": Implementation(services.run_scale, services.validate_scale),
        "restart": Implementation(services.run_restart, services.validate_restart),
        "since-deploy": Implementation(since.run_since_deploy),
        "lock-break": Implementation(_run_lock_break),
        "silence": Implementation(silence.run_silence, silence.validate_silence),
        "silence-expire": Implementation(silence.run_silence_expire),
        "silence-list": Implementation(silence.run_silence_list),
        # refused on a compose project before they run (OpSpec.swarm_only)
        "node-drain": SWARM_IMPLEMENTATIONS["node-drain"],
        "node-activate": SWARM_IMPLEMENTATIONS["node-activate"],
    }
    missing = set(OPERATIONS) ^ set(impls)
    assert not missing, f"operations without an implementation (or the reverse): {missing}"
    return impls


IMPLEMENTATIONS: dict[str, Implementation] = _implementations()
"""The engine's side of every operation in :data:`OPERATIONS`."""


def result_code(event: OpEvent) -> str | None:
    """The error code of a final ``fail`` event (None for ``done``)."""
    if event.status == "done":
        return None
    return str(event.data.get("code", "failed"))


def _fail_data(exc: OpError, op_id: str) -> dict[str, Any]:
    data = {k: v for k, v in exc.data.items() if k not in ("code", "op_id")}
    data.setdefault("failed_step", exc.step)
    return {**data, "code": exc.code, "op_id": op_id}


async def _pgss_snapshot(
    ctx: OpContext, ev: Emitter, name: str, op_id: str, params: dict[str, Any]
) -> OpEvent:
    """Snapshot pg_stat_statements for "since the deploy"; never raises."""
    from console.core import pgss
    from console.core.ops.db import connect_pg
    from console.core.ops.statefiles import read_deploy_env

    t0 = time.monotonic()

    async def read() -> pgss.StatementsView:
        conn = await connect_pg(ctx, timeout_s=PGSS_TIMEOUT_S)
        try:
            return await pgss.read_view(conn)
        finally:
            try:
                await asyncio.wait_for(conn.close(), timeout=1.0)
            except Exception:
                conn.terminate()

    try:
        view = await asyncio.wait_for(read(), timeout=PGSS_TIMEOUT_S)
        serving = read_deploy_env(ctx.deploy_env_path).get("ACTIVE_COLOUR")
        record = pgss.snapshot_record(
            view,
            op=name,
            op_id=op_id,
            params=redact_params(params, ctx.secrets),
            serving_colour=serving,
            database=ctx.db_name,
        )
        path = await asyncio.to_thread(pgss.save_snapshot, ctx.state_dir, record)
    except TimeoutError:
        return ev.warn(
            "pgss",
            f"no pg_stat_statements snapshot: the database did not answer within "
            f"{PGSS_TIMEOUT_S:g} s; {name} goes on without it",
        )
    except Exception as exc:
        reason = exc if isinstance(exc, OpError) else f"{type(exc).__name__}: {exc}"
        return ev.warn(
            "pgss", ctx.redact(f"no pg_stat_statements snapshot ({reason}); {name} goes on")
        )
    ms = (time.monotonic() - t0) * 1000
    return ev.info(
        "pgss",
        f"pg_stat_statements snapshot: {len(view.stats)} statements in {ms:.0f} ms ({path.name})",
        path=str(path),
        statements=len(view.stats),
        seconds=round(ms / 1000, 3),
    )


def _log_line(ctx: OpContext, event: OpEvent) -> None:
    line = f"{event.at.isoformat(timespec='seconds')} {event.op:<16} {event.status:<5} {event.step:<14} {event.message}\n"
    try:
        ctx.deployment_log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            ctx.deployment_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
        )
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        pass


async def validate_op(name: str, ctx: OpContext, params: dict[str, Any]) -> OpParams:
    """The checks :func:`run_op` makes before anything changes (the mode,
    the parameters, the operation's own ``validate``), without the lock or
    the audit: for a prompt to ask only about what would run. Raises the
    same :class:`OpError`."""
    spec = OPERATIONS[name]
    impl, _ = await _implementation(name, ctx)
    typed = parse_params(spec, params)
    return await impl.validate(ctx, typed) if impl.validate is not None else typed


async def run_op(
    name: str, ctx: OpContext, params: OpParams | None = None, **kwargs: Any
) -> AsyncIterator[OpEvent]:
    """Run operation ``name`` with ``params`` (its :class:`OpParams` model,
    or keywords to build it from); yields its :class:`OpEvent` s (see the
    module doc)."""
    ev = Emitter(name, ctx.redact)
    spec = OPERATIONS.get(name)
    if spec is None:
        yield ev.fail(
            "result",
            f"unknown operation {name!r}; known: {', '.join(OPERATIONS)}",
            code="bad-input",
        )
        return
    impl = IMPLEMENTATIONS[name]
    # the mode the operation runs in (resolved below; a fixed one before that,
    # for the notice of an operation refused early)
    mode = ctx.mode if ctx.mode == "swarm" else "compose"
    op_id = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    operator = ctx.operator.as_dict()
    shown: dict[str, Any] = params.model_dump() if params is not None else dict(kwargs)

    def write_audit(event: str, **kw: Any) -> None:
        if spec.audited:
            audit(
                ctx.audit_path,
                event=event,
                op=name,
                op_id=op_id,
                operator=operator,
                params=shown,
                secrets=ctx.secrets,
                read_only=ctx.read_only,
                **kw,
            )

    lock: DeployLock | None = None
    try:
        if params is not None and kwargs:
            raise BadInput(f"{name}: give a parameter model or keywords, not both")
        if spec.writes and ctx.read_only:
            raise ReadOnly(name)
        impl, mode = await _implementation(name, ctx)
        typed = parse_params(spec, params if params is not None else kwargs)
        shown = typed.model_dump()
        if impl.validate is not None:
            typed = await impl.validate(ctx, typed)
            shown = typed.model_dump()
        if spec.takes_lock:
            lock = DeployLock(ctx.lock_path)
            await asyncio.to_thread(lock.acquire, make_record(ctx.operator, name, op_id))
    except OpError as exc:
        try:
            write_audit("refused", result=exc.code, message=str(exc))
        except OSError:
            pass
        yield ev.fail("result", str(exc), **_fail_data(exc, op_id))
        return
    except Exception as exc:
        message = ctx.redact(f"could not start {name}: {type(exc).__name__}: {exc}")
        yield ev.fail("result", message, code="failed", op_id=op_id)
        return

    try:
        write_audit("start")
    except OSError as exc:
        if lock is not None:
            lock.release()
        if spec.writes:
            yield ev.fail(
                "result",
                f"cannot write the audit log {ctx.audit_path} ({exc.strerror}): refusing to act unaudited",
                code="failed",
                op_id=op_id,
            )
            return
        yield ev.warn("audit", f"cannot write the audit log {ctx.audit_path}: {exc.strerror}")

    result, message = "ok", ""
    try:
        yield ev.start(
            "begin",
            f"{spec.title} (op {op_id}) by {ctx.operator.describe()}",
            op_id=op_id,
            params=redact_params(shown, ctx.secrets),
        )
        if name in PGSS_SNAPSHOT_OPS and mode != "swarm":
            snapshot = await _pgss_snapshot(ctx, ev, name, op_id, shown)
            if spec.writes:
                _log_line(ctx, snapshot)
            yield snapshot
        last: OpEvent | None = None
        events = impl.run(ctx, typed, op_id=op_id)
        try:
            async for event in events:
                if spec.writes:
                    _log_line(ctx, event)
                if event.status == "done":
                    last = event
                yield event
        finally:
            # Close the operation's generator now (its cleanup runs here),
            # not whenever the garbage collector gets to it.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if last is None:
            done = ev.done(f"{spec.title} finished")
            if spec.writes:
                _log_line(ctx, done)
            yield done
        else:
            message = last.message
    except OpError as exc:
        result, message = exc.code, str(exc)
        final = ev.fail("result", message, **_fail_data(exc, op_id))
        if spec.writes:
            _log_line(ctx, final)
        yield final
    except (asyncio.CancelledError, GeneratorExit):
        result, message = "cancelled", "cancelled by the operator"
        raise
    except Exception as exc:
        result = "error"
        message = ctx.redact(f"internal error in {name}: {type(exc).__name__}: {exc}")
        tb = ctx.redact("".join(traceback.format_exception(exc))[-2000:])
        final = ev.fail("result", message, code="failed", op_id=op_id, traceback=tb)
        if spec.writes:
            _log_line(ctx, final)
        yield final
    finally:
        try:
            write_audit("end", result=result, message=message, duration_s=time.monotonic() - t0)
        except OSError:
            pass
        if lock is not None:
            lock.release()
        notify.operation_finished(ctx, name, spec.writes, op_id, result, message, shown, mode)


async def cancel_op(
    ctx: OpContext,
    *,
    op: str,
    op_id: str,
    via: str,
    stop: Callable[[], Awaitable[object]],
    **detail: Any,
) -> str | None:
    """The operator cancels operation ``op`` (``op_id``) that runs in this
    process: an audit line ``cancel`` (who, ``via`` what, ``detail`` such as
    the VACUUM's session pid), then ``stop()``, which cancels the task that
    iterates :func:`run_op` and waits for it to end (its own clean-up, the
    end line ``cancelled``, the lock released). Returns a warning when the
    audit line could not be written: the cancel happens anyway, since
    stopping is never the riskier choice."""
    warning = None
    spec = OPERATIONS.get(op)
    if spec is None or spec.audited:
        try:
            audit(
                ctx.audit_path,
                event="cancel",
                op=op,
                op_id=op_id,
                operator=ctx.operator.as_dict(),
                params={"via": via, **detail},
                secrets=ctx.secrets,
                read_only=ctx.read_only,
                message=f"cancel requested by {ctx.operator.describe()} ({via})",
            )
        except OSError as exc:
            warning = (
                f"cannot write the audit log {ctx.audit_path} ({exc.strerror}); cancelling anyway"
            )
    await stop()
    return warning
