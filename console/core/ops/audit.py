"""The append-only audit log and the deployment history.

``$STATE/audit.log``: one JSON object per line, one line when an operation
starts and one when it ends (or one line when it is refused), with the
operator's identity and the parameters, secrets masked. The file is opened
``O_APPEND`` for every line, so concurrent writers never overwrite each other
and nothing in stackdeck ever rewrites or truncates it.

``$STATE/history.jsonl``: one line per deploy or rollback attempt: version,
image digest, colours, schema revision, backup id, who, when, how long, and
the result (``ok``, ``failed``, ``rolled-back``, ``interrupted``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.errors import MASK, redact
from console.core.opfiles import parse_json_line

__all__ = ["append_jsonl", "audit", "read_jsonl", "record_history", "redact_params"]

_SECRET_PARAM = re.compile(
    r"pass(word|wd)?|secret|token|api_?key|dsn|auth|credential", re.IGNORECASE
)


def redact_params(params: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters safe to log: values of secret-named keys masked, every
    string passed through :func:`~console.core.errors.redact` (known secret
    values, URL passwords, ``password=`` pairs)."""
    secrets = list(secrets)

    def clean(key: str, value: Any) -> Any:
        if _SECRET_PARAM.search(key) and value not in (None, "", False):
            return MASK
        if isinstance(value, str):
            return redact(value, secrets)
        if isinstance(value, Path):
            return redact(str(value), secrets)
        if isinstance(value, Mapping):
            return {str(k): clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [clean(key, v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return redact(repr(value), secrets)

    return {str(k): clean(str(k), v) for k, v in params.items()}


def append_jsonl(path: Path, record: Mapping[str, Any], mode: int = 0o640) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` fd."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    if _torn_tail(path):
        # The last writer died mid-line: start on a fresh line so this
        # record stays readable (the torn one is skipped by readers).
        line = b"\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _torn_tail(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, oldest first (the last ``limit``).
    Lines that are not JSON objects (a torn last line) are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = [r for r in map(parse_json_line, text.splitlines()) if r is not None]
    if limit is not None:
        out = out[-limit:] if limit > 0 else []
    return out


def audit(
    path: Path,
    *,
    event: str,
    op: str,
    op_id: str,
    operator: Mapping[str, Any],
    params: Mapping[str, Any],
    secrets: Iterable[str] = (),
    result: str | None = None,
    message: str | None = None,
    duration_s: float | None = None,
    read_only: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write one audit line; returns what was written."""
    secrets = list(secrets)
    record: dict[str, Any] = {
        "at": (now or datetime.now(UTC)).isoformat(),
        "event": event,
        "op": op,
        "op_id": op_id,
        "user": operator.get("user"),
        "ssh_client": operator.get("ssh_client"),
        "host": operator.get("host"),
        "pid": operator.get("pid"),
        "via": operator.get("via"),
        "read_only": read_only,
        "params": redact_params(params, secrets),
    }
    if result is not None:
        record["result"] = result
    if message is not None:
        record["message"] = redact(message, secrets)
    if duration_s is not None:
        record["duration_s"] = round(duration_s, 3)
    append_jsonl(path, record)
    return record


def record_history(path: Path, record: Mapping[str, Any]) -> None:
    append_jsonl(path, dict(record))
