"""The formats of the operations' state files, one parser each.

The ops engine writes them (``ops/lock.py``, ``ops/audit.py``,
``ops/journal.py``); the console's operations source
(:mod:`console.core.sources.operations`) reads them to show what *other*
operators do. Both read through the functions here, so a format is parsed in
one place, and the source does not import the ops engine (the layers in
docs/ARCHITECTURE.md).

- ``$STATE/lock``: the holder record, one JSON object (empty: free).
- ``$STATE/audit.log``: JSON lines, one per operation start, end or refusal;
  a torn last line (a writer that died mid-line) is skipped.
- ``$STATE/deploy-journal.json``: one JSON object, replaced whole.

Also here: whether the process of a record still runs (the stale test the
lock and recovery use), by pid and its start time.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = [
    "holder_alive",
    "parse_json_line",
    "parse_lock_record",
    "proc_start_time",
    "read_journal",
    "read_json",
]


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat).

    Together with the pid it identifies a process even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses
    rest = text[text.rfind(")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def holder_alive(holder: dict[str, Any], host: str | None = None) -> bool | None:
    """Whether the process of a lock or journal record still runs: None when
    it ran on another host (cannot be checked from here). A reused pid
    (different start time) counts as dead."""
    if holder.get("host") not in (None, host or socket.gethostname()):
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded = holder.get("pid_start")
    if recorded is not None:
        current = proc_start_time(pid)
        if current is not None and current != recorded:
            return False
    return True


def parse_lock_record(data: bytes | str) -> dict[str, Any] | None:
    """The holder record of a lock file's content: None when empty (the lock
    is free), ``{"corrupt": ...}`` when it is not a JSON object."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"corrupt": text[:200]}
    return value if isinstance(value, dict) else {"corrupt": text[:200]}


def parse_json_line(line: bytes | str) -> dict[str, Any] | None:
    """One record of a JSON-lines file (audit log, history), or None for a
    line that is blank or not a JSON object (a torn line)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if not line:
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def read_json(path: Path) -> Any:
    """The JSON in ``path``, None when missing or empty (or unreadable JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def read_journal(path: Path) -> dict[str, Any] | None:
    """The deploy journal, None when missing, empty or not a JSON object
    (it is replaced atomically, so a reader never sees half of it)."""
    value = read_json(path)
    return value if isinstance(value, dict) else None
