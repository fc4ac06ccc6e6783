"""The deploy lock: one write operation at a time per stack, across operators.

Mutual exclusion is an ``flock`` on ``$STATE/lock``: the kernel releases it
when the holder's process ends, however it ends, so a lock can never be held
by a dead process. The file's *content* is the holder record (JSON: user, SSH
client, pid, host, operation, start time) that a refused operator is shown.

A record left in the file while nobody holds the flock means the holder died
in the middle of an operation (SIGKILL, power cut): the lock is reported
*stale*. Such a lock still refuses new operations, because whatever the dead
holder was doing may need looking at (``stackdeck status`` explains an
interrupted deploy); ``stackdeck lock break`` clears it explicitly.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.opfiles import holder_alive, parse_lock_record
from console.core.ops.context import Operator
from console.core.ops.errors import LockBusy

__all__ = [
    "DeployLock",
    "LockState",
    "break_lock",
    "describe_holder",
    "format_age",
    "holder_alive",
    "lock_state",
    "make_record",
]


def make_record(
    operator: Operator, op: str, op_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """The holder record written into the lock file."""
    started = now or datetime.now(UTC)
    return {
        "user": operator.user,
        "ssh_client": operator.ssh_client,
        "host": operator.host,
        "pid": operator.pid,
        "pid_start": operator.pid_start,
        "via": operator.via,
        "op": op,
        "op_id": op_id,
        "started": started.isoformat(),
    }


def format_age(seconds: float) -> str:
    """``42 s``, ``3 min``, ``2 h 5 min``, ``3 d 4 h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _age(holder: dict[str, Any], now: datetime | None = None) -> float | None:
    try:
        started = datetime.fromisoformat(str(holder["started"]))
    except (KeyError, ValueError):
        return None
    return ((now or datetime.now(UTC)) - started).total_seconds()


def describe_holder(holder: dict[str, Any] | None, now: datetime | None = None) -> str:
    """``deploy by alice from 10.0.0.5 (pid 4242 on web1) for 3 min``."""
    if not holder:
        return "an operation that has not written its record yet"
    who = str(holder.get("user") or "?")
    if holder.get("ssh_client"):
        who += f" from {holder['ssh_client']}"
    age = _age(holder, now)
    age_s = f" for {format_age(age)}" if age is not None else ""
    return f"{holder.get('op', '?')} by {who} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}){age_s}"


@dataclass(frozen=True)
class LockState:
    held: bool
    """A live process holds the flock right now."""
    stale: bool
    """Nobody holds the flock but a holder record is left: the holder died."""
    holder: dict[str, Any] | None
    age_s: float | None
    alive: bool | None
    """Whether the recorded pid still runs (None: other host / no record)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "stale": self.stale,
            "holder": self.holder,
            "age_s": None if self.age_s is None else round(self.age_s, 1),
            "alive": self.alive,
            "description": describe_holder(self.holder) if (self.held or self.stale) else None,
        }


def _read_record_fd(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return parse_lock_record(b"".join(chunks))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _read_record_fd(fd)
    finally:
        os.close(fd)


def lock_state(path: Path) -> LockState:
    """Who holds the lock, without taking it (the flock is tested, not kept)."""
    if not path.exists():
        return LockState(False, False, None, None, None)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            held = False
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            held = True
        holder = _read_record_fd(fd)
    finally:
        os.close(fd)
    alive = holder_alive(holder) if holder else None
    age = _age(holder) if holder else None
    return LockState(
        held=held, stale=(not held and holder is not None), holder=holder, age_s=age, alive=alive
    )


class DeployLock:
    """Held for the whole of one write operation.

    ``acquire`` raises :class:`LockBusy` naming the holder, or the dead
    holder of a stale lock. Retries for ``wait`` seconds first, so a console
    that merely *looks* at the lock (which takes it for an instant) never
    makes an operator's command fail.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self.record: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, record: dict[str, Any], wait: float = 0.5, fd: int | None = None) -> None:
        """``fd``: take it on this open (read-write) descriptor of the lock
        file, which the caller keeps: a shell script's, so that the lock
        outlives this process (:mod:`console.core.ops.script_lock`)."""
        if self._fd is not None:
            raise RuntimeError("lock already held by this object")
        own = fd is None
        if own:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            if own:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
            assert fd is not None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if own:
                    os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = _read_record(self.path)
                raise LockBusy(
                    f"the deploy lock is held by {describe_holder(holder)}; "
                    "wait for it to finish (`stackdeck lock show`)",
                    holder,
                ) from None
            break
        existing = _read_record_fd(fd)
        if existing:
            fcntl.flock(fd, fcntl.LOCK_UN)
            if own:
                os.close(fd)
            alive = holder_alive(existing)
            why = "its process is gone" if alive is False else "it no longer holds the lock"
            raise LockBusy(
                f"stale deploy lock left by {describe_holder(existing)}: {why}, so that "
                "operation was interrupted. See `stackdeck status`, then clear it with "
                "`stackdeck lock break`",
                existing,
                stale=True,
            )
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        self.record = record

    @classmethod
    def taken_on(cls, path: Path, fd: int) -> DeployLock:
        """The lock an earlier :meth:`acquire` took on ``fd`` (a script's
        descriptor, inherited by this process), to :meth:`release` it."""
        lock = cls(path)
        lock._fd = fd
        return lock

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def break_lock(path: Path) -> dict[str, Any] | None:
    """Clear a stale lock; returns the record that was cleared (None: there
    was none). A lock a live process holds is never broken: that process is
    still working, and the kernel frees its lock the moment it ends."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = _read_record(path)
            raise LockBusy(
                f"the lock is held by a live process: {describe_holder(holder)}. "
                "It is not stale; stop that operation instead of breaking its lock",
                holder,
            ) from None
        existing = _read_record_fd(fd)
        os.ftruncate(fd, 0)
        os.fsync(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return existing
    finally:
        os.close(fd)
