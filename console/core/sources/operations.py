"""Other operators' operations: the stack's deploy lock, audit log and journal.

A deploy started from another terminal (``stackdeck deploy``, a runbook
script, a second console) holds the deploy lock and writes the audit log and
the deploy journal in ``$STATE`` (``settings.state_dir``). This source
follows those three files, so the console shows that operation live (who,
from where, its steps, its end), the header shows the held lock, and the
write keys are greyed while someone else holds it.

It is cheap: each poll stats the three files; the audit log is read only
from where the last poll stopped (:class:`AppendedLines`: complete lines
only, a torn last line kept until it is finished, a rotated or truncated
file read again from its start); the lock and the journal are small and
read only when their ``stat`` changed (the lock's ``flock`` is also tested
while it has a record, to tell a held lock from a stale one). The formats
are parsed by :mod:`console.core.opfiles`, the same parsers the ops engine
uses, so this module imports nothing of the engine.

This console's own operations (same host, same pid: the TUI runs them in its
own process) are left out: the Operations panel shows them from the engine's
events already.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from console.core.config import Settings
from console.core.models import LockInfo, OpEvent, OpHolder, OtherOpsSnapshot, ScheduleLine
from console.core.opfiles import holder_alive, parse_json_line, parse_lock_record, read_journal
from console.core.sources.base import Clock, Source, utcnow

__all__ = ["AppendedLines", "OperationsSource", "holder_of"]

MAX_READ = 1 << 20
"""At most this many bytes of the audit log are read in one poll (a burst
larger than that is skipped to its last MiB)."""


class AppendedLines:
    """The complete lines appended to a file since the last :meth:`read`.

    The first read starts at the end of the file (``from_start=False``): what
    was written before the console started is history, not news. A last line
    without its newline is kept back until it is complete; a file replaced
    (another inode) is read from its start, and so is one that shrank
    (truncated). A line torn by a writer that died is returned as it is, and
    the parser skips it.
    """

    def __init__(self, path: Path, *, from_start: bool = False, max_read: int = MAX_READ) -> None:
        self.path = path
        self.max_read = max_read
        self._from_start = from_start
        self._ino: int | None = None
        self._offset = 0
        self._partial = b""
        self._started = False

    def read(self) -> list[bytes]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            # gone (rotated away): whatever comes next is a new file
            self._started = True
            self._ino, self._offset, self._partial = None, 0, b""
            return []
        if not self._started:
            self._started = True
            self._ino = st.st_ino
            self._offset = 0 if self._from_start else st.st_size
        elif st.st_ino != self._ino:
            self._ino, self._offset, self._partial = st.st_ino, 0, b""
        elif st.st_size < self._offset:
            self._offset, self._partial = 0, b""
        if st.st_size == self._offset:
            return []
        start, skipped = self._offset, False
        if st.st_size - start > self.max_read:
            start, skipped, self._partial = st.st_size - self.max_read, True, b""
        with open(self.path, "rb") as fh:
            if os.fstat(fh.fileno()).st_ino != self._ino:
                return []  # replaced between stat and open: the next poll reads it
            fh.seek(start)
            data = fh.read(self.max_read)
        self._offset = start + len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return lines[1:] if skipped else lines


def holder_of(record: dict[str, Any]) -> OpHolder:
    """The operator named by a lock, audit or journal record."""
    pid = record.get("pid")
    return OpHolder(
        user=_str(record.get("user")),
        host=_str(record.get("host")),
        pid=pid if isinstance(pid, int) else None,
        ssh_client=_str(record.get("ssh_client")),
        via=_str(record.get("via")),
    )


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


class OperationsSource(Source):
    """Publishes :class:`OtherOpsSnapshot` (kind ``others``) when the lock or
    another operator's operation changed."""

    name = "operations"
    kind = "others"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        state_dir: Path | None = None,
        own_pid: int | None = None,
        host: str | None = None,
    ) -> None:
        super().__init__(settings, clock=clock)
        self.state_dir = Path(state_dir or settings.state_dir)
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.host = host or socket.gethostname()
        self._audit = AppendedLines(self.state_dir / "audit.log")
        self._lock_key: tuple[int, int, int] | None = None
        self._lock_record: dict[str, Any] | None = None
        self._lock: LockInfo | None = None
        self._journal_key: tuple[int, int, int] | None = None
        self._journal_steps: dict[str, int] = {}
        """op_id -> how many of its journal steps were published."""
        self._announced: set[str] = set()
        """op_ids whose start was published."""
        self._ended: set[str] = set()
        self._events: deque[OpEvent] = deque(maxlen=OtherOpsSnapshot.MAX_EVENTS)
        self._seq = 0
        self._first = True
        self._schedule_key: tuple[Any, ...] | None = None
        self._schedule: list[ScheduleLine] = []

    @property
    def interval(self) -> float:
        return 1.0

    @property
    def poll_timeout(self) -> float:
        return 5.0

    async def poll(self) -> OtherOpsSnapshot | None:
        return await asyncio.to_thread(self.scan)

    def scan(self) -> OtherOpsSnapshot | None:
        """One look at the three files; a snapshot when something changed."""
        seq, lock = self._seq, self._lock
        self._scan_lock()
        for line in self._audit.read():
            record = parse_json_line(line)
            if record is not None:
                self._audit_record(record)
        self._scan_journal()
        schedule = self._schedule
        self._scan_schedule()
        first, self._first = self._first, False
        if not first and seq == self._seq and lock == self._lock and schedule == self._schedule:
            return None
        return OtherOpsSnapshot(
            taken_at=self.clock(),
            lock=self._lock,
            events=list(self._events),
            seq=self._seq,
            schedule=list(self._schedule),
        )

    # --- the schedule -------------------------------------------------------------------

    def _scan_schedule(self) -> None:
        """The configured schedule's next and last runs: worked out again
        when the minute, the state file or the cron file changed."""
        entries = self.settings.schedule
        if not entries:
            return
        from console.core.schedule import cron_file, explain, next_run, read_state

        now = self.clock().astimezone()  # cron's fields are local time
        key = (
            now.replace(second=0, microsecond=0),
            _stat_key(self.state_dir / "schedule.json"),
            _stat_key(cron_file(self.settings.project)),
        )
        if key == self._schedule_key:
            return
        self._schedule_key = key
        last = read_state(self.state_dir)
        try:
            installed = cron_file(self.settings.project).read_text(encoding="utf-8")
        except OSError:
            installed = ""
        lines = []
        for entry in entries:
            run = last.get(entry.name)
            lines.append(
                ScheduleLine(
                    name=entry.name,
                    scale=entry.scale,
                    when=explain(entry),
                    next_run=next_run(entry, now),
                    installed=f" schedule run {entry.name} " in installed,
                    last_at=run.at if run else None,
                    last_result=run.result if run else None,
                    last_message=run.message if run else "",
                )
            )
        self._schedule = lines

    # --- what is mine -------------------------------------------------------------------

    def _mine(self, record: dict[str, Any]) -> bool:
        return record.get("pid") == self.own_pid and record.get("host") in (None, self.host)

    # --- the lock -----------------------------------------------------------------------

    def _scan_lock(self) -> None:
        path = self.state_dir / "lock"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._lock_key, self._lock_record, self._lock = None, None, None
            return
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._lock_key:
            self._lock_key = key
            try:
                self._lock_record = parse_lock_record(path.read_bytes()) if st.st_size else None
            except FileNotFoundError:
                self._lock_record = None
        record = self._lock_record
        if not record or "corrupt" in record or self._mine(record):
            self._lock = None
            return
        held = _flock_held(path)
        if held is None:
            return  # cannot test (gone, no permission): keep what was shown
        alive = holder_alive(record, self.host) if not held else True
        op_id = _str(record.get("op_id"))
        self._lock = LockInfo(
            op=str(record.get("op") or "?"),
            op_id=op_id,
            holder=holder_of(record),
            started=_time(record.get("started")),
            stale=not held,
            alive=alive,
        )
        if held and op_id and op_id not in self._announced:
            self._start(record, op_id, _time(record.get("started")))

    # --- the audit log ------------------------------------------------------------------

    def _audit_record(self, record: dict[str, Any]) -> None:
        if self._mine(record):
            return
        op_id = _str(record.get("op_id"))
        event = record.get("event")
        if not op_id:
            return
        at = _time(record.get("at")) or self.clock()
        if event == "start":
            if op_id not in self._announced:
                self._start(record, op_id, at)
        elif event in ("end", "refused"):
            if op_id in self._ended:
                return
            # (one that began before this console looked ends without a
            # begin line: its end line names who ran it)
            self._scan_journal()  # the last steps before the end
            self._ended.add(op_id)
            result = str(record.get("result") or "?")
            message = str(record.get("message") or "")
            op = str(record.get("op") or "?")
            if event == "refused":
                text = f"refused ({result}): {message}" if message else f"refused ({result})"
                self._emit(record, op_id, at, "refused", "warn", text)
            elif result == "ok":
                duration = record.get("duration_s")
                took = f" in {duration:.0f} s" if isinstance(duration, int | float) else ""
                self._emit(record, op_id, at, "end", "done", message or f"{op} finished{took}")
            else:
                self._emit(record, op_id, at, "result", "fail", f"{result}: {message}".rstrip(": "))

    # --- the journal --------------------------------------------------------------------

    def _scan_journal(self) -> None:
        path = self.state_dir / "deploy-journal.json"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._journal_key:
            return
        self._journal_key = key
        journal = read_journal(path)
        if journal is None or self._mine(journal):
            return
        op_id = _str(journal.get("id"))
        if not op_id or op_id in self._ended:
            return
        if op_id not in self._announced:
            return  # not one seen starting (an interrupted one shows as a stale lock)
        steps = journal.get("steps")
        if not isinstance(steps, list):
            return
        done = self._journal_steps.get(op_id, 0)
        for step in steps[done:]:
            if isinstance(step, dict):
                at = _time(step.get("at")) or self.clock()
                self._emit(journal, op_id, at, str(step.get("step") or "?"), "info", "")
        self._journal_steps[op_id] = len(steps)

    # --- events -------------------------------------------------------------------------

    def _start(self, record: dict[str, Any], op_id: str, at: datetime | None) -> None:
        self._announced.add(op_id)
        holder = holder_of(record)
        where = f" from {holder.ssh_client}" if holder.ssh_client else ""
        op = str(record.get("op") or "?")
        self._emit(
            record,
            op_id,
            at or self.clock(),
            "begin",
            "start",
            f"by {holder.who}{where}, pid {holder.pid if holder.pid is not None else '?'} (op {op_id})",
            op=op,
        )

    def _emit(
        self,
        record: dict[str, Any],
        op_id: str,
        at: datetime,
        step: str,
        status: str,
        message: str,
        *,
        op: str | None = None,
    ) -> None:
        holder = holder_of(record)
        self._seq += 1
        self._events.append(
            OpEvent(
                at=at,
                op=op or str(record.get("op") or "?"),
                step=step,
                status=status,  # type: ignore[arg-type]
                message=message,
                data={"seq": self._seq, "op_id": op_id, "by": holder.who, "pid": holder.pid},
            )
        )


def _flock_held(path: Path) -> bool | None:
    """Whether some process holds the ``flock`` of ``path`` (tested with a
    shared lock taken and dropped at once; the engine's ``acquire`` retries
    for half a second, so the test never makes an operation fail)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
