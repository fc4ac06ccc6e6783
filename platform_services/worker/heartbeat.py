"""The worker's heartbeat file, for the container's health check.

After each heartbeat it writes to Redis (``worker:heartbeat``), the worker's
loop touches the file named by ``WORKER_HEARTBEAT_FILE`` (when set; compose
sets ``/run/worker/heartbeat``, on a tmpfs). Compose's health check reads the
file's age with sh, ``stat`` and ``date``: no Python start per probe (a Python
start every few seconds timed out on a busy 2-core host, defect 14 in
docs/RELIABILITY.md). The check also takes this module's presence in the image
as the sign that the image writes the file: an image built before it (a
rollback to an older version) keeps the old check,
``python3 -m platform_services.worker --check``.

Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

HEARTBEAT_FILE_ENV = "WORKER_HEARTBEAT_FILE"

log = logging.getLogger("platform_services.worker")


def heartbeat_file_path() -> Path | None:
    """The file to touch (``WORKER_HEARTBEAT_FILE``), None when unset."""
    value = os.environ.get(HEARTBEAT_FILE_ENV, "").strip()
    return Path(value) if value else None


def touch_heartbeat_file(path: Path | None) -> None:
    """Set the file's mtime to now (creating it). A failure is logged, not
    raised: the health check reports it, by the file's age."""
    if path is None:
        return
    try:
        path.touch()
    except OSError as exc:
        log.warning(
            "heartbeat file not written",
            extra={"fields": {"path": str(path), "error": type(exc).__name__}},
        )


def remove_heartbeat_file(path: Path | None) -> None:
    """Remove the file (at start and stop: it must stand for this process only)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
