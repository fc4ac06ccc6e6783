"""Database backup and restore (the runbook's ``scripts/backup.sh`` and the
rollback's ``--restore-db``).

A backup is ``pg_dump --format=custom`` run inside the db container, its
stdout streamed into ``$STATE/backups/<id>.dump`` on the host, then a
``<id>.json`` beside it: id, checksum (SHA-256), size, schema revision, the
version that was serving, why it was taken, by whom.

A restore never drops the live database first. It loads the dump into a new
database (TimescaleDB's pre/post-restore protocol), then swaps names in a few
milliseconds (connections refused, sessions ended, two ``ALTER DATABASE ...
RENAME``), then drops the old one. Until the swap the stack runs on the old
data; if anything fails before it, the old database is untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from console.core.models import OpEvent
from console.core.ops.context import OpContext
from console.core.ops.db import psql, quote_ident, schema_revision
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.proc import docker_exec
from console.core.ops.progress import Progress, run_steps
from console.core.ops.statefiles import atomic_write, read_json
from console.core.ops.table import BackupParams, RestoreParams

__all__ = [
    "BackupInfo",
    "list_backups",
    "resolve_backup",
    "restore_database",
    "run_backup",
    "run_restore",
    "take_backup",
]


@dataclass(frozen=True)
class BackupInfo:
    id: str
    path: Path
    meta: dict[str, Any]

    @property
    def created(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.meta.get("created")))
        except ValueError:
            return None


def _new_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_backups(ctx: OpContext) -> list[BackupInfo]:
    """Completed backups, oldest first (a ``.dump`` without its ``.json`` is
    an interrupted backup and is not listed)."""
    out: list[BackupInfo] = []
    folder = ctx.backups_dir
    if not folder.is_dir():
        return out
    for meta_path in sorted(folder.glob("*.json")):
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            continue
        dump = folder / f"{meta_path.stem}.dump"
        if dump.is_file():
            out.append(BackupInfo(meta_path.stem, dump, meta))
    out.sort(key=lambda b: str(b.meta.get("created", "")))
    return out


def find_backup(ctx: OpContext, backup_id: str) -> BackupInfo | None:
    for b in list_backups(ctx):
        if b.id == backup_id:
            return b
    return None


def resolve_backup(
    ctx: OpContext, value: str | os.PathLike[str] | None, field: str = "backup"
) -> BackupInfo:
    """A backup named by id or by path; only files inside the backup folder
    are accepted (symlinks resolved), so a restore can never read an
    arbitrary file on the host."""
    if value is None or str(value).strip() == "":
        raise BadInput(f"{field}: give a backup id or a path inside {ctx.backups_dir}", field=field)
    text = str(value)
    if any(ord(c) < 32 for c in text):
        raise BadInput(f"{field}: the path contains control characters", field=field)
    root = ctx.backups_dir.resolve()
    candidate = Path(text)
    if not candidate.is_absolute() and "/" not in text and not text.endswith(".dump"):
        candidate = root / f"{text}.dump"
    elif not candidate.is_absolute():
        candidate = Path.cwd() / candidate
    resolved = candidate.resolve()
    if resolved.parent != root and root not in resolved.parents:
        raise BadInput(
            f"{field} {text!r} is outside the backup folder {root}: restores only read backups "
            "stackdeck took (copy the file there first if you trust it)",
            field=field,
        )
    if not resolved.is_file():
        raise BadInput(f"{field} {text!r}: no such backup file in {root}", field=field)
    meta = read_json(resolved.with_suffix(".json"))
    return BackupInfo(resolved.stem, resolved, meta if isinstance(meta, dict) else {})


async def take_backup(
    ctx: OpContext,
    progress: Progress,
    *,
    reason: str,
    serving_version: str | None = None,
    op_id: str | None = None,
) -> BackupInfo:
    """pg_dump into the backup folder; returns the backup taken."""
    folder = ctx.backups_dir
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o750)
    bid = _new_id()
    partial = folder / f"{bid}.dump.partial"
    dump = folder / f"{bid}.dump"
    progress.start("backup", f"backing up {ctx.db_name} ({reason})", backup_id=bid)
    started = datetime.now(UTC)
    revision = await schema_revision(ctx)
    try:
        await docker_exec(
            ctx,
            ctx.container("db"),
            "pg_dump",
            "-h",
            "/var/run/postgresql",
            "--format=custom",
            "--compress=6",
            "-d",
            ctx.db_name,
            user="postgres",
            stdout_path=partial,
            timeout_s=3600,
            what="pg_dump",
        )
        size = partial.stat().st_size
        if size == 0:
            raise OpFailed("pg_dump wrote nothing", step="backup")
        digest = await asyncio.to_thread(_sha256, partial)
        os.chmod(partial, 0o640)
        os.replace(partial, dump)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    meta = {
        "id": bid,
        "file": dump.name,
        "created": started.isoformat(),
        "database": ctx.db_name,
        "format": "custom",
        "size": size,
        "sha256": digest,
        "schema_revision": revision,
        "serving_version": serving_version,
        "reason": reason,
        "op_id": op_id,
        "user": ctx.operator.user,
        "ssh_client": ctx.operator.ssh_client,
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 2),
    }
    atomic_write(folder / f"{bid}.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    progress.ok(
        "backup",
        f"backup {bid} taken: {size / 1e6:.1f} MB, sha256 {digest[:12]}…, schema {revision}",
        backup_id=bid,
        path=str(dump),
        size=size,
        sha256=digest,
        schema_revision=revision,
    )
    return BackupInfo(bid, dump, meta)


async def _db_exists(ctx: OpContext, name: str) -> bool:
    r = await psql(
        ctx,
        f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        database="postgres",
        timeout_s=30,
    )
    return r.stdout.strip() == "1"


async def restore_database(
    ctx: OpContext,
    backup: BackupInfo,
    progress: Progress,
    journal: Any = None,
) -> None:
    """Load ``backup`` into a fresh database, then swap it in."""
    expected = backup.meta.get("sha256")
    if expected:
        progress.start("restore-verify", f"checking the checksum of {backup.id}")
        actual = await asyncio.to_thread(_sha256, backup.path)
        if actual != expected:
            raise OpFailed(
                f"backup {backup.id} is corrupt: sha256 {actual[:12]}… does not match the recorded {expected[:12]}…",
                step="restore-verify",
            )
        progress.ok("restore-verify", "checksum matches")
    suffix = backup.id.replace("-", "_").lower()[:24]
    new_db = f"{ctx.db_name}__restore_{suffix}"
    old_db = f"{ctx.db_name}__pre_restore_{suffix}"
    live = ctx.db_name
    if journal is not None:
        journal.update(
            restore={"backup_id": backup.id, "new_db": new_db, "old_db": old_db, "phase": "load"}
        )
    progress.start("restore-load", f"loading {backup.id} into a new database {new_db}")
    await psql(
        ctx, f"DROP DATABASE IF EXISTS {quote_ident(new_db)} WITH (FORCE)", database="postgres"
    )
    await psql(ctx, f"CREATE DATABASE {quote_ident(new_db)}", database="postgres")
    try:
        await psql(
            ctx,
            "CREATE EXTENSION IF NOT EXISTS timescaledb",
            "SELECT timescaledb_pre_restore()",
            database=new_db,
        )
        r = await docker_exec(
            ctx,
            ctx.container("db"),
            "pg_restore",
            "-h",
            "/var/run/postgresql",
            "--no-owner",
            "-d",
            new_db,
            user="postgres",
            stdin_path=backup.path,
            timeout_s=3600,
            check=False,
            what="pg_restore",
        )
        await psql(
            ctx, "SELECT timescaledb_post_restore()", "ANALYZE", database=new_db, timeout_s=600
        )
        if not r.ok:
            # pg_restore exits 1 when it ignored errors; TimescaleDB's catalog
            # emits benign ones. The data check below decides.
            progress.warn("restore-load", f"pg_restore reported: {ctx.redact(r.tail(4))}")
        restored_rev = await schema_revision(ctx, database=new_db)
        expected_rev = backup.meta.get("schema_revision")
        if expected_rev and restored_rev != expected_rev:
            raise OpFailed(
                f"the restored database is at schema {restored_rev}, the backup was taken at {expected_rev}",
                step="restore-load",
            )
    except BaseException:
        await psql(
            ctx,
            f"DROP DATABASE IF EXISTS {quote_ident(new_db)} WITH (FORCE)",
            database="postgres",
            check=False,
        )
        raise
    progress.ok("restore-load", f"{backup.id} loaded (schema {restored_rev})")

    progress.start("restore-swap", f"swapping {new_db} in as {live}")
    if journal is not None:
        journal.update(
            restore={"backup_id": backup.id, "new_db": new_db, "old_db": old_db, "phase": "swap"}
        )
    await psql(
        ctx, f"ALTER DATABASE {quote_ident(live)} WITH ALLOW_CONNECTIONS false", database="postgres"
    )
    swapped = False
    try:
        for attempt in range(20):
            await psql(
                ctx,
                f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{live}' AND pid <> pg_backend_pid()",
                database="postgres",
            )
            r = await psql(
                ctx,
                f"ALTER DATABASE {quote_ident(live)} RENAME TO {quote_ident(old_db)}",
                database="postgres",
                check=False,
            )
            if r.ok:
                break
            if attempt == 19:
                raise OpFailed(f"could not rename {live}: {r.tail()}", step="restore-swap")
            await asyncio.sleep(0.1)
        await psql(
            ctx,
            f"ALTER DATABASE {quote_ident(new_db)} RENAME TO {quote_ident(live)}",
            database="postgres",
        )
        swapped = True
    finally:
        if not swapped:
            # Put the live database back as it was.
            if not await _db_exists(ctx, live) and await _db_exists(ctx, old_db):
                await psql(
                    ctx,
                    f"ALTER DATABASE {quote_ident(old_db)} RENAME TO {quote_ident(live)}",
                    database="postgres",
                    check=False,
                )
            await psql(
                ctx,
                f"ALTER DATABASE {quote_ident(live)} WITH ALLOW_CONNECTIONS true",
                database="postgres",
                check=False,
            )
    if journal is not None:
        journal.update(
            restore={"backup_id": backup.id, "new_db": new_db, "old_db": old_db, "phase": "swapped"}
        )
    progress.ok("restore-swap", f"{live} now holds the data of backup {backup.id}")
    await psql(
        ctx,
        f"DROP DATABASE IF EXISTS {quote_ident(old_db)} WITH (FORCE)",
        database="postgres",
        check=False,
    )
    if journal is not None:
        journal.update(restore={"backup_id": backup.id, "phase": "done"})


async def recover_restore(ctx: OpContext, state: dict[str, Any], progress: Progress) -> None:
    """Repair what an interrupted restore left: the live database missing
    between the two renames, or a half-loaded copy."""
    live = ctx.db_name
    new_db = state.get("new_db")
    old_db = state.get("old_db")
    if not new_db or not old_db:
        return
    if not await _db_exists(ctx, live):
        if state.get("phase") in ("swap",) and await _db_exists(ctx, new_db):
            await psql(
                ctx,
                f"ALTER DATABASE {quote_ident(new_db)} RENAME TO {quote_ident(live)}",
                database="postgres",
            )
            progress.ok("recover", f"finished the interrupted restore swap: {new_db} is now {live}")
        elif await _db_exists(ctx, old_db):
            await psql(
                ctx,
                f"ALTER DATABASE {quote_ident(old_db)} RENAME TO {quote_ident(live)}",
                database="postgres",
            )
            await psql(
                ctx,
                f"ALTER DATABASE {quote_ident(live)} WITH ALLOW_CONNECTIONS true",
                database="postgres",
            )
            progress.ok("recover", f"put the pre-restore database back as {live}")
    for name in (new_db, old_db):
        if await _db_exists(ctx, name):
            await psql(
                ctx,
                f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)",
                database="postgres",
                check=False,
            )
            progress.info("recover", f"dropped the leftover database {name}")


# --- the operations -------------------------------------------------------------


async def run_backup(
    ctx: OpContext, params: BackupParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    from console.core.ops.backend import observe

    async def body(progress: Progress) -> None:
        try:
            view = await observe(ctx)
            serving = view.serving_version()
        except OpFailed:
            serving = None
        info = await take_backup(ctx, progress, reason=params.reason, serving_version=serving)
        progress.done(
            f"backup {info.id} at {info.path}",
            backup_id=info.id,
            path=str(info.path),
            sha256=info.meta["sha256"],
        )

    async for event in run_steps(Emitter("backup", ctx.redact), body):
        yield event


async def validate_restore(ctx: OpContext, params: RestoreParams) -> RestoreParams:
    backup = resolve_backup(ctx, params.path, field="path")
    if params.confirm != ctx.db_name:
        raise BadInput(
            f"restoring replaces every row of {ctx.db_name}: type the database name to confirm "
            f"(--confirm {ctx.db_name})",
            field="confirm",
        )
    return params.model_copy(update={"path": str(backup.path)})


async def run_restore(
    ctx: OpContext, params: RestoreParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    backup = resolve_backup(ctx, params.path, field="path")
    created = backup.created
    age = (
        f", taken {(datetime.now(UTC) - created) // timedelta(minutes=1)} min ago"
        if created
        else ""
    )

    async def body(progress: Progress) -> None:
        progress.info(
            "restore", f"restoring {ctx.db_name} from {backup.id}{age}", backup_id=backup.id
        )
        await restore_database(ctx, backup, progress)
        progress.done(f"{ctx.db_name} restored from {backup.id}", backup_id=backup.id)

    async for event in run_steps(Emitter("restore", ctx.redact), body):
        yield event
