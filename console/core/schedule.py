"""Scheduled operations: the runbook's off-peak scale-down "automated via cron".

The schedule is part of the configuration (``[[schedule]]`` tables, see
:class:`~console.core.config.ScheduleEntry`). The host's cron daemon runs it,
so it fires whether or not a console is open: ``stackdeck schedule install``
writes one line per enabled entry to ``/etc/cron.d/stackdeck-<stack>``, and
each line runs ``stackdeck schedule run NAME``, which takes the deploy lock and
writes the audit log like any operation (its ``via`` says ``schedule NAME``).
The outcome of each entry's last run is kept in ``<state_dir>/schedule.json``;
the console shows the next and the last run beside the operations.

This module is the light half (no ops imports; the console's operations
source reads it every second): when the next run is, the state file, and the
cron file's text. :mod:`console.core.ops.schedule` is the half that writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cronsim import CronSim, CronSimError

from console.core.config import ScheduleEntry

__all__ = [
    "CRON_DIR",
    "STATE_FILE",
    "LastRun",
    "cron_file",
    "explain",
    "next_run",
    "read_state",
    "record_run",
    "render_cron",
]

CRON_DIR = Path(os.environ.get("STACKDECK_CRON_DIR", "/etc/cron.d"))
"""Where cron reads system crontabs (every minute, by modification time)."""
STATE_FILE = "schedule.json"
CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""cron's own PATH is /usr/bin:/bin; docker may live in /usr/local/bin."""


def cron_file(stack: str) -> Path:
    """``/etc/cron.d/stackdeck-<stack>`` (cron ignores names with dots)."""
    return CRON_DIR / f"stackdeck-{stack}"


def next_run(entry: ScheduleEntry, now: datetime) -> datetime | None:
    """The first time after ``now`` that ``entry`` fires, in ``now``'s zone
    (cron's fields are the host's local time: pass a local aware ``now``)."""
    if not entry.enabled:
        return None
    try:
        return next(CronSim(entry.cron, now.replace(second=0, microsecond=0)))
    except (CronSimError, StopIteration):
        return None


def explain(entry: ScheduleEntry) -> str:
    """``At 22:00`` (cronsim's English), the expression itself when it has none."""
    try:
        return CronSim(entry.cron, datetime.now().astimezone()).explain()
    except Exception:  # explain() is best effort; the expression was checked
        return entry.cron


@dataclass(frozen=True)
class LastRun:
    """How an entry's last run ended."""

    at: datetime
    result: str
    """``ok``, ``refused`` (the lock was held, a rule said no), ``failed``."""
    message: str = ""
    op_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "result": self.result,
            "message": self.message,
            "op_id": self.op_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LastRun | None:
        try:
            at = datetime.fromisoformat(str(data["at"]))
        except (KeyError, ValueError):
            return None
        op_id = data.get("op_id")
        return cls(
            at=at,
            result=str(data.get("result") or "?"),
            message=str(data.get("message") or ""),
            op_id=str(op_id) if op_id else None,
        )


def read_state(state_dir: Path) -> dict[str, LastRun]:
    """Each entry's last run (an unreadable or torn file reads as none)."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, LastRun] = {}
    for name, value in data.items():
        run = LastRun.from_dict(value) if isinstance(value, dict) else None
        if run is not None:
            out[str(name)] = run
    return out


def record_run(state_dir: Path, name: str, run: LastRun) -> None:
    """Store ``run`` as ``name``'s last run: read, change, write a temporary
    file and rename it, under an exclusive lock (two entries of the same
    minute run at once)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    with open(state_dir / f".{STATE_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {k: v.as_dict() for k, v in read_state(state_dir).items()}
        data[name] = run.as_dict()
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)


def render_cron(
    entries: Iterable[ScheduleEntry],
    *,
    stack: str,
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    user: str = "root",
) -> str:
    """The text of ``/etc/cron.d/stackdeck-<stack>``: one line per enabled
    entry, ``MIN HOUR DOM MON DOW USER cd CWD && env ... COMMAND run NAME >> LOG``.
    ``env`` holds what names the stack to the command (``STACK_NAME``,
    ``STACKDECK_CONFIG``, ...), so it acts on the stack it was installed for."""
    assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    run = " ".join(shlex.quote(part) for part in command)
    lines = [
        f"# stackdeck's schedule for the stack {stack}: written by `stackdeck schedule install`.",
        "# Edit the [[schedule]] tables of the configuration and install again, not this file.",
        "SHELL=/bin/sh",
        f"PATH={CRON_PATH}",
    ]
    for entry in entries:
        if not entry.enabled:
            continue
        lines.append(
            f"{entry.cron} {user} cd {shlex.quote(str(cwd))} && "
            f"env {assigned} {run} schedule run {entry.name} >> {shlex.quote(str(log))} 2>&1"
        )
    # cron turns an unescaped % into a newline; it wants a final newline
    return "\n".join(line.replace("%", "\\%") for line in lines) + "\n"
