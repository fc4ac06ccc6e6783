"""The write side of stackdeck: deploy, rollback, backup, maintenance.

One entry point for the TUI and the CLI::

    async for event in run_op("deploy", ctx, version="v1.2.3"):
        render(event)

:func:`run_op` wraps every operation in the same safety net, in this order:

1. unknown operation -> a ``fail`` event (``bad-input``);
2. read-only mode refuses every operation that writes (``read-only``);
3. the operation's own validation, before anything changes (``bad-input``);
4. the deploy lock for every writing operation (``lock-busy``, naming the
   holder, or explaining a stale lock);
5. one audit line when it starts and one when it ends (a single line when it
   was refused), with the operator's identity and the parameters, secrets
   masked;
6. the operation's events; the last one is ``done``, or ``fail`` with step
   ``result`` and ``data["code"]`` (see :mod:`console.core.ops.errors`).

Events of writing operations are also appended, as text, to
``$STATE/deployment.log`` (the runbook's ``tail -f logs/deployment.log``).
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
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import BadInput, LockBusy, OpError, OpFailed, ReadOnly, exit_code
from console.core.ops.events import Emitter
from console.core.ops.lock import DeployLock, break_lock, describe_holder, make_record

__all__ = [
    "OPS",
    "BadInput",
    "LockBusy",
    "OpContext",
    "OpError",
    "OpFailed",
    "OpSpec",
    "Operator",
    "ReadOnly",
    "exit_code",
    "result_code",
    "run_op",
]

RunFn = Callable[..., AsyncIterator[OpEvent]]
ValidateFn = Callable[[OpContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class OpSpec:
    name: str
    title: str
    destructive: bool
    """Asks for a confirmation in the TUI (the most destructive: a typed one)."""
    writes: bool
    """Changes the stack: refused in read-only mode, takes the deploy lock."""
    run: RunFn
    validate: ValidateFn | None = None
    locks: bool | None = None
    """Takes the deploy lock (default: ``writes``)."""
    audited: bool = True
    help: str = ""

    @property
    def takes_lock(self) -> bool:
        return self.writes if self.locks is None else self.locks


async def _run_lock_break(ctx: OpContext, **_: Any) -> AsyncIterator[OpEvent]:
    ev = Emitter("lock-break", ctx.redact)
    record = await asyncio.to_thread(break_lock, ctx.lock_path)
    if record is None:
        yield ev.done("the lock was free; nothing to break")
    else:
        yield ev.done(f"broke the stale lock of {describe_holder(record)}", holder=record)


def _registry() -> dict[str, OpSpec]:
    from console.core.ops import (
        backup,
        cache,
        deploy,
        migrate,
        preflight,
        rollback,
        services,
        status,
        vacuum,
        verify,
    )

    async def _validate_restore(ctx: OpContext, params: dict[str, Any]) -> dict[str, Any]:
        return backup.validate_restore(ctx, params)

    specs = [
        OpSpec(
            "preflight",
            "Pre-deployment checks",
            False,
            False,
            preflight.run_preflight,
            help="the runbook's pre-deployment checklist",
        ),
        OpSpec(
            "verify",
            "Post-deployment verification",
            False,
            False,
            verify.run_verify,
            verify.validate_verify,
            help="health, performance and functional checks through nginx",
        ),
        OpSpec(
            "status",
            "Status",
            False,
            False,
            status.run_status,
            audited=False,
            help="containers, colours, lock, last deploy, interrupted deploy",
        ),
        OpSpec(
            "deploy",
            "Deploy",
            True,
            True,
            deploy.run_deploy,
            deploy.validate_deploy,
            help="blue-green (default) or rolling deploy of a version",
        ),
        OpSpec(
            "rollback",
            "Rollback",
            True,
            True,
            rollback.run_rollback,
            rollback.validate_rollback,
            help="back to the previous colour or a version, optionally restoring the database",
        ),
        OpSpec(
            "backup",
            "Backup",
            False,
            True,
            backup.run_backup,
            help="pg_dump into the backup folder",
        ),
        OpSpec(
            "restore",
            "Restore database",
            True,
            True,
            backup.run_restore,
            _validate_restore,
            help="replace the database with a backup (typed confirmation)",
        ),
        OpSpec(
            "migrate",
            "Migrate",
            True,
            True,
            migrate.run_migrate,
            help="alembic upgrade head (backup first)",
        ),
        OpSpec(
            "vacuum",
            "VACUUM (ANALYZE)",
            False,
            True,
            vacuum.run_vacuum,
            vacuum.validate_vacuum,
            help="per table or the whole database, cancellable",
        ),
        OpSpec(
            "cache-flush",
            "Flush cache",
            True,
            True,
            cache.run_cache_flush,
            cache.validate_cache_flush,
            help="delete cache:* keys (quota counters survive)",
        ),
        OpSpec(
            "cache-warm",
            "Warm cache",
            False,
            True,
            cache.run_cache_warm,
            cache.validate_cache_warm,
            help="fetch the watchlist so readers hit the cache",
        ),
        OpSpec(
            "emergency-limit",
            "Emergency rate limit",
            False,
            True,
            cache.run_emergency_limit,
            cache.validate_emergency_limit,
            help="stop every outbound provider call (TTL)",
        ),
        OpSpec(
            "scale",
            "Scale",
            True,
            True,
            services.run_scale,
            services.validate_scale,
            help="scale the worker (0..10)",
        ),
        OpSpec(
            "restart",
            "Restart service",
            True,
            True,
            services.run_restart,
            services.validate_restart,
            help="restart one service and wait until healthy",
        ),
        OpSpec(
            "lock-break",
            "Break stale lock",
            True,
            True,
            _run_lock_break,
            locks=False,
            help="clear a lock left by a dead process",
        ),
    ]
    return {s.name: s for s in specs}


OPS: dict[str, OpSpec] = _registry()
"""Every operation by name."""


def result_code(event: OpEvent) -> str | None:
    """The error code of a final ``fail`` event (None for ``done``)."""
    if event.status == "done":
        return None
    return str(event.data.get("code", "failed"))


def _fail_data(exc: OpError, op_id: str) -> dict[str, Any]:
    data = {k: v for k, v in exc.data.items() if k not in ("code", "op_id")}
    data.setdefault("failed_step", exc.step)
    return {**data, "code": exc.code, "op_id": op_id}


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


async def run_op(name: str, ctx: OpContext, **params: Any) -> AsyncIterator[OpEvent]:
    """Run operation ``name``; yields its :class:`OpEvent` s (see the module doc)."""
    ev = Emitter(name, ctx.redact)
    spec = OPS.get(name)
    if spec is None:
        yield ev.fail(
            "result", f"unknown operation {name!r}; known: {', '.join(OPS)}", code="bad-input"
        )
        return
    op_id = uuid.uuid4().hex[:12]
    t0 = time.monotonic()
    operator = ctx.operator.as_dict()

    def write_audit(event: str, **kw: Any) -> None:
        if spec.audited:
            audit(
                ctx.audit_path,
                event=event,
                op=name,
                op_id=op_id,
                operator=operator,
                params=params,
                secrets=ctx.secrets,
                read_only=ctx.read_only,
                **kw,
            )

    lock: DeployLock | None = None
    try:
        if spec.writes and ctx.read_only:
            raise ReadOnly(name)
        if spec.validate is not None:
            params = await spec.validate(ctx, dict(params))
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
            params=redact_params(params, ctx.secrets),
        )
        last: OpEvent | None = None
        events = spec.run(ctx, op_id=op_id, **params)
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
        notify.operation_finished(ctx, name, spec.writes, op_id, result, message, params)
