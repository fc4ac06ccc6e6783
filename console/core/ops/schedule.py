"""``stackdeck schedule``: list, install into cron, and run the configured
schedule (see :mod:`console.core.schedule` for the design).

- ``install`` checks every enabled entry as ``stackdeck scale`` would
  (unknown service, a count below what the health checks need, a singleton):
  one bad entry refuses the whole install and nothing is written. Then it
  writes ``/etc/cron.d/stackdeck-<stack>`` (or removes it when nothing is
  enabled) and audits what it installed.
- ``run NAME`` (what cron calls) runs the entry's scale through
  :func:`~console.core.ops.engine.run_op`: the deploy lock, the audit log
  (``via``: ``schedule NAME``), the journal and the notifications are those
  of any operation; a console that is open shows it as another operator's.
  Its outcome is stored for ``stackdeck schedule`` and the console.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.config import ScheduleEntry, Settings, default_config_path
from console.core.ops.audit import audit
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import BadInput
from console.core.schedule import (
    CRON_DIR,
    LastRun,
    cron_file,
    explain,
    next_run,
    read_state,
    record_run,
    render_cron,
)

__all__ = ["InstallReport", "cron_running", "install_schedule", "run_entry", "schedule_rows"]

REFUSALS = ("bad-input", "lock-busy", "read-only")
"""Result codes that mean "not done, nothing changed" rather than "failed"."""


def schedule_rows(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per entry: what, when, next run, last run (``stackdeck schedule``)."""
    now = now or datetime.now().astimezone()
    last = read_state(Path(settings.state_dir))
    installed = cron_file(settings.project)
    text = installed.read_text(encoding="utf-8") if installed.exists() else ""
    rows = []
    for entry in settings.schedule:
        nxt = next_run(entry, now)
        run = last.get(entry.name)
        rows.append(
            {
                "name": entry.name,
                "cron": entry.cron,
                "when": explain(entry),
                "scale": entry.scale,
                "enabled": entry.enabled,
                "installed": f" schedule run {entry.name} " in text,
                "next_run": nxt.isoformat() if nxt else None,
                "last_run": run.as_dict() if run else None,
            }
        )
    return rows


def cron_running() -> bool:
    """Whether a cron daemon runs on this host (``cron`` or ``crond``)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as f:
                if f.read().strip() in ("cron", "crond"):
                    return True
        except OSError:
            continue
    return False


@dataclass(frozen=True)
class InstallReport:
    path: Path
    entries: list[str]
    """Names of the entries now in cron."""
    removed: bool
    """Nothing enabled: the file was removed (or was not there)."""
    cron_running: bool


def _stack_env(settings: Settings, config: Path | None) -> dict[str, str]:
    """What names this stack to a ``stackdeck`` started by cron (whose
    environment is nearly empty and whose home may differ)."""
    from urllib.parse import urlsplit

    env = {
        "STACK_NAME": settings.project,
        "IMAGE_PREFIX": settings.image_prefix,
        "STACKDECK_STATE_DIR": str(settings.state_dir),
        "STACKDECK_RUN_DIR": str(settings.run_dir),
    }
    port = urlsplit(settings.base_url).port
    if port:
        env["HTTP_PORT"] = str(port)
    if config is not None:
        env["STACKDECK_CONFIG"] = str(config.resolve())
    return env


async def install_schedule(ctx: OpContext, settings: Settings) -> InstallReport:
    """Check every enabled entry, then write (or remove) the cron file and audit it."""
    from console.core.ops.services import validate_scale
    from console.core.ops.table import ScaleParams

    enabled = [entry for entry in settings.schedule if entry.enabled]
    for entry in enabled:
        try:
            await validate_scale(ctx, ScaleParams(spec=entry.scale))
        except BadInput as exc:
            raise BadInput(
                f"schedule entry '{entry.name}' ({entry.scale}): {exc}; nothing was installed",
                field="schedule",
            ) from None
    if ctx.read_only:
        raise BadInput("read-only mode: the schedule was not installed", field="schedule")
    path = cron_file(settings.project)
    if enabled and not CRON_DIR.is_dir():
        raise BadInput(
            f"{CRON_DIR} does not exist: the cron daemon is not installed "
            "(bash scripts/schedule.sh installs Debian's cron and starts it)",
            field="schedule",
        )
    config = default_config_path()
    repo = ctx.repo
    if enabled:
        text = render_cron(
            enabled,
            stack=settings.project,
            command=[str(repo / "scripts" / "stackdeck")],
            env=_stack_env(settings, config if config.exists() else None),
            cwd=repo,
            log=Path(settings.state_dir) / "schedule.log",
        )
        tmp = path.with_name(f".{path.name}.new")  # cron skips names with dots
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o644)  # cron ignores group- or world-writable files
        os.replace(tmp, path)
        # cron looks at the folder's modification time once a minute
        os.utime(CRON_DIR)
    else:
        path.unlink(missing_ok=True)
    names = [entry.name for entry in enabled]
    audit(
        ctx.audit_path,
        event="schedule",
        op="schedule-install",
        op_id=secrets.token_hex(4),
        operator=ctx.operator.as_dict(),
        params={"entries": [e.model_dump() for e in enabled], "path": str(path)},
        secrets=ctx.secrets,
        result="ok",
        message=(
            f"installed {', '.join(names)}" if names else "nothing enabled: cron file removed"
        ),
        read_only=ctx.read_only,
    )
    return InstallReport(path, names, not enabled, cron_running())


async def run_entry(
    settings: Settings,
    name: str,
    on_event: Callable[[Any], None],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[str | None, LastRun]:
    """Run entry ``name`` once as cron does; returns (error code or None, its
    :class:`LastRun`, also stored). Unknown names raise :class:`BadInput`."""
    from console.core.ops.engine import result_code, run_op

    entry = _entry(settings, name)
    started = now()
    ctx = OpContext.from_settings(settings, operator=Operator.current(via=f"schedule {name}"))
    code: str | None = "failed"
    message = ""
    op_id: str | None = None
    if not entry.enabled:
        code, message = "bad-input", f"schedule entry '{name}' is disabled in the configuration"
    else:
        async for event in run_op("scale", ctx, spec=entry.scale):
            on_event(event)
            if event.step == "begin" and event.data.get("op_id"):
                op_id = str(event.data["op_id"])
            if event.status == "done":
                code, message = None, event.message
            elif event.status == "fail" and event.step == "result":
                code, message = result_code(event), event.message
                op_id = op_id or event.data.get("op_id")
    result = "ok" if code is None else ("refused" if code in REFUSALS else "failed")
    run = LastRun(at=started, result=result, message=message, op_id=op_id)
    record_run(Path(settings.state_dir), name, run)
    return code, run


def _entry(settings: Settings, name: str) -> ScheduleEntry:
    for entry in settings.schedule:
        if entry.name == name:
            return entry
    have = ", ".join(e.name for e in settings.schedule) or "none (add [[schedule]] tables)"
    raise BadInput(f"no schedule entry '{name}': the configuration has {have}", field="name")
