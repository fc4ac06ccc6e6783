"""The runbook's pre-deployment checklist, the part a machine can check.

Engine and Compose versions, CPU, memory, disk, database reachable,
TimescaleDB present, ``.env`` complete, provider keys present, backups
recent, pending migrations, and the state of the deploy machinery (lock,
interrupted deploy, serving colour). A failed check fails the operation; a
warning does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.errors import OpError, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.table import NoParams
from console.core.tls import (
    WARN_DAYS,
    CertificateError,
    days_left,
    expiry_verdict,
    read_certificate,
)

__all__ = ["PROVIDER_KEYS", "env_problems", "parse_meminfo", "run_preflight", "version_at_least"]

PROVIDER_KEYS = ("ALPHA_VANTAGE_API_KEY", "FINNHUB_API_KEY", "POLYGON_API_KEY", "NEWSAPI_KEY")
GIB = 1024**3


def version_at_least(text: str, minimum: tuple[int, ...]) -> bool:
    """``"20.10.24+dfsg1"`` >= (20, 10)?"""
    nums = [int(n) for n in re.findall(r"\d+", text)[: len(minimum)]]
    return tuple(nums) >= minimum if nums else False


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> bytes by field."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"(\w+):\s+(\d+)\s*kB", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * 1024
    return out


def env_problems(env: dict[str, str], example: dict[str, str]) -> tuple[list[str], list[str]]:
    """(missing or placeholder keys, weak secrets) of ``.env`` against
    ``.env.example``. A key the example leaves empty is optional (an SMTP
    login, test-only overrides): it may be empty or absent."""
    missing = []
    weak = []
    for key, example_value in example.items():
        value = env.get(key)
        if value is None or value == "":
            if example_value != "":
                missing.append(key)
        elif value == "change-me":
            missing.append(f"{key} (still change-me)")
        elif example_value == "change-me" and len(value) < 16:
            weak.append(key)
    return missing, weak


async def run_preflight(
    ctx: OpContext, params: NoParams | None = None, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    from console.core.config import read_env_file
    from console.core.ops.backend import observe
    from console.core.ops.backup import list_backups
    from console.core.ops.db import connect_pg
    from console.core.ops.http import client, probe
    from console.core.ops.journal import Journal, plan_recovery
    from console.core.ops.lock import lock_state
    from console.core.ops.migrate import migration_status
    from console.core.ops.proc import docker, run

    ev = Emitter("preflight", ctx.redact)
    failed: list[str] = []
    warned: list[str] = []

    def fail(step: str, message: str, **data: Any) -> OpEvent:
        failed.append(step)
        return ev.fail(step, message, **data)

    def warn(step: str, message: str, **data: Any) -> OpEvent:
        warned.append(step)
        return ev.warn(step, message, **data)

    # --- Docker environment -----------------------------------------------------
    docker_root = "/var/lib/docker"
    r = await docker(ctx, "version", "--format", "{{json .}}", check=False, timeout_s=20)
    if r.ok:
        info = json.loads(r.stdout)
        server = (info.get("Server") or {}).get("Version", "?")
        if version_at_least(server, (20, 10)):
            yield ev.ok("engine", f"Docker Engine {server} (20.10+ required)", version=server)
        else:
            yield fail("engine", f"Docker Engine {server}: 20.10+ required")
        r2 = await docker(ctx, "info", "--format", "{{.DockerRootDir}}", check=False, timeout_s=20)
        if r2.ok and r2.stdout.strip():
            docker_root = r2.stdout.strip()
    else:
        yield fail("engine", f"the Docker engine does not answer: {r.tail(2)}")
    r = await run([ctx.docker, "compose", "version", "--short"], check=False, timeout_s=20)
    if r.ok and version_at_least(r.stdout.strip(), (2, 0)):
        yield ev.ok("compose", f"Docker Compose {r.stdout.strip()} (2.0+ required)")
    else:
        yield fail(
            "compose", f"Docker Compose v2 missing or too old: {r.tail(2) or r.stdout.strip()}"
        )

    # --- server resources -------------------------------------------------------------
    cpus = os.cpu_count() or 0
    if cpus >= 2:
        yield ev.ok("cpu", f"{cpus} cores (2 minimum, 4 recommended)", cores=cpus)
    else:
        yield fail("cpu", f"{cpus} core(s): the runbook's minimum is 2")
    try:
        mem = parse_meminfo(Path("/proc/meminfo").read_text())  # noqa: ASYNC240
        total, avail = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
        if total >= 3.8 * GIB:
            yield ev.ok(
                "memory",
                f"{total / GIB:.1f} GiB, {avail / GIB:.1f} GiB available (4 GiB minimum)",
                total=total,
                available=avail,
            )
        else:
            yield fail("memory", f"{total / GIB:.1f} GiB: the runbook's minimum is 4 GiB")
    except OSError as exc:
        yield warn("memory", f"cannot read /proc/meminfo: {exc}")
    for label, path in (("docker", docker_root), ("state", str(ctx.state_dir))):
        where = Path(path)
        while not where.exists() and where != where.parent:  # noqa: ASYNC240
            where = where.parent
        try:
            usage = shutil.disk_usage(where)
        except OSError as exc:
            yield warn("disk", f"cannot measure {path}: {exc}")
            continue
        free = usage.free / 1e9
        if free >= 10:
            yield ev.ok(
                "disk",
                f"{label} ({path}): {free:.0f} GB free (10 GB minimum for images)",
                free_bytes=usage.free,
            )
        else:
            yield fail("disk", f"{label} ({path}): only {free:.1f} GB free, 10 GB needed")

    # --- database ----------------------------------------------------------------------
    try:
        conn = await connect_pg(ctx)
        try:
            pg = await conn.fetchval("SHOW server_version")
            yield ev.ok("database", f"PostgreSQL {pg} reachable on {ctx.pg_socket_dir}")
            ts = await conn.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )
            if ts:
                yield ev.ok("timescaledb", f"TimescaleDB {ts} installed in {ctx.db_name}")
            else:
                yield fail(
                    "timescaledb", f"the timescaledb extension is not installed in {ctx.db_name}"
                )
        finally:
            await conn.close()
    except OpError as exc:
        yield fail("database", str(exc))

    # --- configuration -------------------------------------------------------------------
    env_path = ctx.repo / ".env"
    if not env_path.exists():
        yield fail("env", f"{env_path} is missing (scripts/setup.sh creates it)")
    else:
        example = read_env_file(ctx.repo / ".env.example")
        missing, weak = env_problems(dict(ctx.env), example)
        if missing:
            yield fail("env", f".env is incomplete: {', '.join(missing)}")
        else:
            yield ev.ok("env", f".env has all {len(example)} settings of .env.example")
        if weak:
            yield warn("env", f"short secrets (< 16 characters): {', '.join(weak)}")
        mode = env_path.stat().st_mode & 0o777
        if mode & 0o077:
            yield warn("env", f".env is readable by others (mode {mode:o}); chmod 600 .env")
    absent = [k for k in PROVIDER_KEYS if not ctx.env.get(k)]
    sim = [k for k in PROVIDER_KEYS if ctx.env.get(k) == "offline-sim"]
    if absent:
        yield fail("provider-keys", f"provider keys missing: {', '.join(absent)}")
    elif sim:
        yield ev.ok(
            "provider-keys",
            f"all provider keys present ({len(sim)} use the offline market simulator)",
        )
    else:
        yield ev.ok("provider-keys", "all provider keys present")

    # --- TLS (runbook: "SSL certificates installed") ------------------------------------
    try:
        cert = read_certificate(ctx.cert_path)
    except CertificateError as exc:
        yield fail("tls", str(exc))
    else:
        left = days_left(cert.not_after, datetime.now(UTC))
        verdict = expiry_verdict(left)
        until = cert.not_after.strftime("%Y-%m-%d %H:%M UTC")
        who = f"{cert.subject}{' (self-signed)' if cert.self_signed else ''}"
        data = {"days_left": left, "not_after": cert.not_after.isoformat(), "subject": cert.subject}
        if verdict == "expired":
            yield fail(
                "tls",
                f"nginx's certificate {who} expired on {until}: install a new one "
                "(TLS_CERT_FILE/TLS_KEY_FILE in .env, then scripts/tls.sh)",
                **data,
            )
        elif verdict == "warn":
            yield warn(
                "tls",
                f"nginx's certificate {who} expires in {left} day(s), on {until} "
                f"(< {WARN_DAYS}): renew it, then scripts/tls.sh",
                **data,
            )
        else:
            yield ev.ok(
                "tls", f"nginx's certificate {who}: {left} days left (until {until})", **data
            )

    # --- backups, migrations, deploy state --------------------------------------------------------
    backups = list_backups(ctx)
    if backups:
        latest = backups[-1]
        created = latest.created
        age_h = (datetime.now(UTC) - created).total_seconds() / 3600 if created else None
        if age_h is not None and age_h <= 24:
            yield ev.ok(
                "backups", f"latest backup {latest.id}, {age_h:.1f} h old", backup_id=latest.id
            )
        else:
            yield warn(
                "backups",
                f"latest backup {latest.id} is {age_h or 0:.0f} h old (> 24 h): stackdeck backup",
            )
    else:
        yield warn("backups", f"no backup in {ctx.backups_dir} yet: stackdeck backup")

    try:
        view = await observe(ctx)
    except OpError as exc:
        yield fail("stack", f"cannot read the stack: {exc}")
        view = None
    if view is not None:
        if view.serving is None:
            yield fail(
                "serving", f"cannot read which colour nginx serves ({ctx.container('nginx')} down?)"
            )
        else:
            async with client(ctx) as http:
                p = await probe(http, "/api/health")
            if p.ok:
                yield ev.ok("serving", f"nginx serves {view.serving} ({p.version}): {p.describe()}")
            else:
                yield fail("serving", f"/api/health through nginx: {p.describe()}")
            cv = view.colours[view.serving]
            if cv.state == "running":
                try:
                    status = await migration_status(ctx, cv.container)
                    if status.pending:
                        yield warn(
                            "migrations",
                            f"pending migrations: {status.describe()} (a deploy backs up, then migrates)",
                        )
                    else:
                        yield ev.ok("migrations", f"no pending migrations ({status.describe()})")
                except OpError as exc:
                    yield warn("migrations", f"cannot check migrations: {exc}")
    ls = lock_state(ctx.lock_path)
    if ls.held:
        yield warn("lock", f"deploy lock held: {ls.as_dict()['description']}")
    elif ls.stale:
        yield fail(
            "lock",
            f"stale deploy lock: {ls.as_dict()['description']} (stackdeck status, stackdeck lock break)",
        )
    else:
        yield ev.ok("lock", "deploy lock free")
    plan = plan_recovery(
        Journal.load(ctx.journal_path),
        serving=view.serving if view else None,
        serving_slot=view.serving_slot if view else None,
    )
    if plan.action in ("abort", "switch-back", "finalize"):
        yield warn("journal", f"{plan.explanation} The next deploy or rollback recovers it first.")

    if failed:
        raise OpFailed(
            f"pre-deployment checks failed: {', '.join(dict.fromkeys(failed))} ({len(warned)} warning(s))",
            step="preflight",
        )
    yield ev.done(f"pre-deployment checks passed ({len(warned)} warning(s))", warnings=len(warned))
