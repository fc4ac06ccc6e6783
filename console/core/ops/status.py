"""``stackdeck status``: everything an on-call engineer asks first.

Containers, the colours and their versions, the colour nginx serves (from
its config and confirmed by a request), the deploy lock, the last deploy,
and an interrupted deploy explained with what the next deploy or rollback
will do about it. Every section is collected on its own: an engine that
does not answer still leaves the lock and history readable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.events import Emitter
from console.core.ops.table import NoParams

__all__ = ["collect_status", "format_status", "run_status"]


async def collect_status(ctx: OpContext) -> dict[str, Any]:
    from console.core.ops.audit import read_jsonl
    from console.core.ops.backend import colour_table, observe
    from console.core.ops.backup import list_backups
    from console.core.ops.db import schema_revision
    from console.core.ops.frontend import observe_frontend
    from console.core.ops.http import client, probe
    from console.core.ops.journal import Journal, explain_journal
    from console.core.ops.lock import lock_state
    from console.core.ops.proc import docker
    from console.core.ops.statefiles import read_deploy_env

    out: dict[str, Any] = {
        "stack": ctx.stack,
        "at": datetime.now(UTC).isoformat(),
        "base_url": ctx.base_url,
        "state_dir": str(ctx.state_dir),
        "errors": {},
    }
    errors: dict[str, str] = out["errors"]
    out["deploy_env"] = read_deploy_env(ctx.deploy_env_path)

    async def containers() -> None:
        try:
            r = await docker(
                ctx,
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={ctx.stack}",
                "--format",
                "{{json .}}",
                timeout_s=20,
            )
            rows = []
            for line in r.stdout.splitlines():
                row = json.loads(line)
                labels = dict(
                    kv.split("=", 1) for kv in str(row.get("Labels", "")).split(",") if "=" in kv
                )
                rows.append(
                    {
                        "name": row.get("Names"),
                        "service": labels.get("com.docker.compose.service"),
                        "image": row.get("Image"),
                        "state": row.get("State"),
                        "status": row.get("Status"),
                        "version": labels.get("com.investment.version"),
                        "colour": labels.get("com.investment.colour"),
                    }
                )
            out["containers"] = sorted(rows, key=lambda c: str(c["name"]))
        except Exception as exc:
            errors["containers"] = ctx.redact(str(exc))
            out["containers"] = []

    async def colours() -> None:
        try:
            view = await observe(ctx)
            out["serving_colour"] = view.serving
            out["serving_slot"] = view.serving_slot
            out["serving_version"] = view.serving_version()
            out["colours"] = colour_table(view)
        except Exception as exc:
            errors["colours"] = ctx.redact(str(exc))
            out["serving_colour"] = None
            out["colours"] = {}

    async def frontend() -> None:
        try:
            view = await observe_frontend(ctx)
            out["frontend"] = {
                "serving_colour": view.serving,
                "serving_version": view.serving_version(),
                "colours": {
                    c: {
                        "container": v.container,
                        "state": v.state,
                        "health": v.health,
                        "version": v.version,
                        "slot_version": v.slot_version,
                        "serving": view.serving == c,
                    }
                    for c, v in view.colours.items()
                },
            }
        except Exception as exc:
            errors["frontend"] = ctx.redact(str(exc))
            out["frontend"] = None

    async def health() -> None:
        try:
            async with client(ctx, timeout_s=5) as http:
                p = await probe(http, "/api/health")
            out["health"] = {
                "status": p.status,
                "latency_ms": round(p.latency_ms, 1),
                "version": p.version,
                "colour": p.colour,
                "error": p.error,
            }
        except Exception as exc:
            errors["health"] = ctx.redact(str(exc))

    async def schema() -> None:
        try:
            out["schema_revision"] = await schema_revision(ctx)
        except Exception as exc:
            errors["schema_revision"] = ctx.redact(str(exc))

    # independent sections, collected concurrently: one slow source does not
    # add up with the others
    await asyncio.gather(containers(), colours(), frontend(), health(), schema())
    serving = out.get("serving_colour")

    out["lock"] = lock_state(ctx.lock_path).as_dict()
    history = read_jsonl(ctx.history_path)
    out["last_deploy"] = history[-1] if history else None
    ok = [h for h in history if h.get("result") == "ok"]
    out["last_successful"] = ok[-1] if ok else None
    out["deploy"] = explain_journal(
        Journal.load(ctx.journal_path), serving, out.get("serving_slot")
    )
    backups = list_backups(ctx)
    out["backups"] = {
        "count": len(backups),
        "latest": backups[-1].id if backups else None,
        "latest_created": backups[-1].meta.get("created") if backups else None,
    }
    env_file = ctx.repo / ".env"
    if not env_file.exists():
        out["env_file_missing"] = str(env_file)
    out["summary"] = _summary(out)
    return out


def _summary(s: dict[str, Any]) -> list[str]:
    lines = []
    if s.get("env_file_missing"):
        lines.append(
            f"no .env at {s['env_file_missing']}: the stack's passwords are unknown "
            "(run scripts/setup.sh, or copy .env.example and fill it)"
        )
    if not s.get("containers") and "containers" not in (s.get("errors") or {}):
        lines.append(
            f"no container of compose project {s['stack']!r} on this engine "
            "(wrong --stack / STACK_NAME, or the stack is not up: scripts/setup.sh)"
        )
    serving = s.get("serving_colour")
    if serving:
        lines.append(f"serving {serving} {s.get('serving_version') or '?'}")
        idle_line = _idle_line(serving, s.get("serving_version"), s.get("colours") or {})
        if idle_line:
            lines.append(idle_line)
    else:
        lines.append("serving colour unknown (nginx does not answer)")
    page = s.get("frontend") or {}
    if page.get("serving_colour"):
        other = (page.get("colours") or {}).get(
            "green" if page["serving_colour"] == "blue" else "blue"
        ) or {}
        lines.append(
            f"page (frontend) from {page['serving_colour']} {page.get('serving_version') or '?'}"
            + (
                f"; {other.get('version') or other.get('slot_version')} on standby ({other.get('state')})"
                if other.get("state") not in (None, "missing")
                else ""
            )
        )
    health = s.get("health") or {}
    if health.get("status") != 200:
        lines.append(f"/api/health through nginx: {health.get('status') or health.get('error')}")
    lock = s.get("lock") or {}
    if lock.get("held"):
        lines.append(f"deploy lock held: {lock.get('description')}")
    elif lock.get("stale"):
        lines.append(
            f"STALE deploy lock: {lock.get('description')}; its process is gone (stackdeck lock break)"
        )
    dep = s.get("deploy") or {}
    if dep.get("interrupted"):
        lines.append("INTERRUPTED: " + str((dep.get("recovery") or {}).get("explanation")))
        lines.append("the next `stackdeck deploy` or `stackdeck rollback` recovers it first")
    elif dep.get("status") == "running":
        lines.append(f"{dep.get('op')} of {dep.get('version')} running (step {dep.get('step')})")
    last = s.get("last_deploy")
    if last:
        lines.append(
            f"last {last.get('op')}: {last.get('version')} -> {last.get('colour')} {last.get('result')}"
            + (
                f" ({last.get('reason')})"
                if last.get("reason") and last.get("result") != "ok"
                else ""
            )
            + f" by {last.get('user')} at {last.get('finished') or last.get('started')}"
        )
    return lines


def _idle_line(serving: str, serving_version: str | None, colours: dict[str, Any]) -> str | None:
    """The colour out of the upstream, as a rollback sees it."""
    idle = next((c for c in colours if c != serving), None)
    if idle is None:
        return None
    v = colours[idle]
    version = v.get("version") or v.get("slot_version") or "?"
    state = v.get("state")
    if state == "running":
        health = v.get("health")
        if health not in (None, "healthy"):
            return f"{idle} {version} running, out of the upstream, health {health}"
        if version == serving_version:
            return f"{idle} {version} running, out of the upstream (the version {serving} serves)"
        return f"{idle} {version} running, out of the upstream: instant rollback target"
    if state == "missing":
        return f"{idle}: no container (deploy.env names {version}); a rollback creates it"
    return f"{idle} {version} {state}: a rollback starts it and waits for its health first"


def format_status(s: dict[str, Any]) -> str:
    """Human-readable status for the CLI."""
    out = [f"stack {s['stack']} ({s['base_url']})"]
    out += [f"  {line}" for line in s.get("summary", [])]
    colours = s.get("colours") or {}
    if colours:
        out.append("colours:")
        for c, v in colours.items():
            mark = "*" if v.get("serving") else " "
            out.append(
                f" {mark} {c:<6} {v.get('version') or '-':<14} {v.get('state'):<8} {v.get('health') or '':<9} "
                f"(deploy.env: {v.get('slot_version')})"
            )
    if s.get("containers"):
        out.append("containers:")
        for c in s["containers"]:
            out.append(f"   {c['name']:<34} {c['state']:<8} {c['status']}")
    out.append(f"schema revision: {s.get('schema_revision')}")
    b = s.get("backups") or {}
    out.append(f"backups: {b.get('count')} (latest {b.get('latest')})")
    for k, v in (s.get("errors") or {}).items():
        out.append(f"  ! {k}: {v}")
    return "\n".join(out)


async def run_status(
    ctx: OpContext, params: NoParams | None = None, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("status", ctx.redact)
    s = await collect_status(ctx)
    for line in s["summary"]:
        yield ev.info("status", line)
    yield ev.done("; ".join(s["summary"][:1]), status=s)
