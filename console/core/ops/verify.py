"""The runbook's post-deployment verification (health checks, performance,
functional tests) through nginx, and the smoke test of one colour directly
(``/direct/<colour>/...``) that a deploy runs before switching to it.

Levels: ``smoke`` (the runbook's ``api_smoke_test.sh``: health endpoints and a
price lookup), ``full`` (the runbook's post-deployment verification and
``critical_path_test.sh``: smoke plus login, cost/usage/cache metrics,
containers up, schema version)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.errors import OpFailed
from console.core.ops.events import Emitter
from console.core.ops.http import Probe, client, probe
from console.core.ops.progress import Progress, run_steps
from console.core.ops.table import VerifyParams

__all__ = ["Check", "run_verify", "smoke_colour"]

LEVELS = ("smoke", "full")


@dataclass(frozen=True)
class Check:
    name: str
    path: str
    required: bool = True
    """A failed optional check is a warning."""
    method: str = "GET"
    body: Any = None
    slow_ms: float = 2000.0
    """Slower than this is a warning (runbook: response time threshold 2 s)."""


SMOKE = (
    Check("health", "/api/health"),
    Check("database", "/api/health/database"),
    Check("cache", "/api/health/cache"),
    Check("external-apis", "/api/health/external-apis", required=False),
    Check("prices", "/api/stocks/prices?symbols=AAPL", required=False),
)


def _describe(p: Probe) -> str:
    extra = ""
    if isinstance(p.body, dict) and p.body.get("status"):
        extra = f", status {p.body['status']}"
    return p.describe() + extra


async def _run_checks(
    ctx: OpContext, progress: Progress, prefix: str, checks: tuple[Check, ...], step: str
) -> tuple[int, int]:
    """Run ``checks`` under ``prefix``; returns (failed, warned)."""
    failed = warned = 0
    async with client(ctx, timeout_s=max(ctx.http_timeout, 10)) as http:
        for c in checks:
            p = await probe(http, prefix + c.path, method=c.method, json_body=c.body)
            data = {
                "check": c.name,
                "path": prefix + c.path,
                "status": p.status,
                "latency_ms": round(p.latency_ms, 1),
            }
            if p.ok and p.latency_ms <= c.slow_ms:
                progress.ok(step, f"{c.name}: {_describe(p)}", **data)
            elif p.ok:
                warned += 1
                progress.warn(
                    step, f"{c.name}: slow, {_describe(p)} (threshold {c.slow_ms:g} ms)", **data
                )
            elif c.required:
                failed += 1
                progress.fail(step, f"{c.name}: {_describe(p)}", **data)
            else:
                warned += 1
                progress.warn(step, f"{c.name}: {_describe(p)} (not required)", **data)
    return failed, warned


async def smoke_colour(
    ctx: OpContext,
    colour: str,
    version: str,
    progress: Progress,
    step: str = "smoke",
    *,
    slot: str | None = None,
) -> None:
    """The smoke test of one colour (its ``slot``'s container) straight
    through ``/direct/<colour>[_<slot>]``."""
    where = f"/direct/{colour}" if slot is None else f"/direct/{colour}_{slot}"
    who = colour if slot is None else f"{colour} {slot}"
    progress.start(step, f"smoke-testing {who} directly ({where}/...)")
    failed, _warned = await _run_checks(ctx, progress, where, SMOKE, step)
    if failed:
        raise OpFailed(
            f"smoke test of {who} ({version}): {failed} required check(s) failed", step=step
        )
    progress.ok(step, f"{who} passed the smoke test")


async def run_verify(
    ctx: OpContext, params: VerifyParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    level, expect_version = params.level, params.expect_version
    from console.core.ops.backend import observe
    from console.core.ops.db import schema_revision
    from console.core.ops.frontend import observe_frontend
    from console.core.ops.proc import docker

    async def body(progress: Progress) -> None:
        failed, warned = await _run_checks(ctx, progress, "", SMOKE, "health")

        async with client(ctx, timeout_s=max(ctx.http_timeout, 10)) as http:
            p = await probe(http, "/api/health")
            version = p.version
            if expect_version and version != expect_version:
                failed += 1
                progress.fail("version", f"nginx serves {version}, expected {expect_version}")
            elif version:
                progress.ok(
                    "version", f"serving {version} ({p.colour})", version=version, colour=p.colour
                )

            if level == "full":
                user = ctx.env.get("TEST_USERNAME") or "test"
                password = ctx.env.get("TEST_PASSWORD")
                if password:
                    p = await probe(
                        http,
                        "/api/auth/login",
                        method="POST",
                        json_body={"username": user, "password": password},
                    )
                    token_ok = isinstance(p.body, dict) and any(
                        k in p.body for k in ("access_token", "token")
                    )
                    if p.ok and token_ok:
                        progress.ok("login", f"login as {user}: {p.describe()}, token issued")
                    else:
                        failed += 1
                        progress.fail("login", f"login as {user}: {p.describe()}")
                else:
                    warned += 1
                    progress.warn("login", "TEST_PASSWORD is not in .env: login not tested")
                for name, path, field in (
                    ("cost", "/api/metrics/cost", "daily_projection"),
                    ("api-usage", "/api/metrics/api-usage", None),
                    ("cache-metrics", "/api/metrics/cache", "hit_rate"),
                ):
                    p = await probe(http, path)
                    if p.ok and (field is None or (isinstance(p.body, dict) and field in p.body)):
                        value = p.body.get(field) if field and isinstance(p.body, dict) else None
                        progress.ok(
                            name,
                            f"{path}: {p.describe()}" + (f", {field} {value}" if field else ""),
                        )
                    else:
                        failed += 1
                        progress.fail(
                            name, f"{path}: {p.describe()}" + (f" (no {field})" if p.ok else "")
                        )

        if level == "full":
            r = await docker(
                ctx,
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={ctx.stack}",
                "--format",
                "{{.Names}}\t{{.State}}\t{{.Status}}",
                timeout_s=30,
            )
            view = await observe(ctx)
            page = await observe_frontend(ctx)
            # the backend's idle colour and the web frontend's
            idle_names = {
                ctx.container(f"{part}_{idle}")
                for part, idle in (("backend", view.idle), ("frontend", page.idle))
                if idle
            }
            for line in sorted(r.stdout.splitlines()):
                name, state, status = [*line.split("\t"), "", ""][:3]
                if state == "running" and "unhealthy" not in status:
                    kept = " (idle colour, warm rollback target)" if name in idle_names else ""
                    progress.ok("containers", f"{name}: {status}{kept}")
                elif name in idle_names and state in ("exited", "created"):
                    progress.info("containers", f"{name}: {state} (idle colour, kept for rollback)")
                elif name == ctx.container("worker") and state in ("exited", "created"):
                    warned += 1
                    progress.warn("containers", f"{name}: {state} (worker scaled to 0?)")
                else:
                    failed += 1
                    progress.fail("containers", f"{name}: {state} {status}")
            revision = await schema_revision(ctx)
            if revision:
                progress.ok("schema", f"schema version {revision}", schema_revision=revision)
            else:
                failed += 1
                progress.fail("schema", "cannot read the schema version (alembic_version)")

        if failed:
            raise OpFailed(
                f"verification failed: {failed} check(s) failed, {warned} warning(s)", step="verify"
            )
        progress.done(f"verification passed ({warned} warning(s))", warnings=warned)

    async for event in run_steps(Emitter("verify", ctx.redact), body):
        yield event
