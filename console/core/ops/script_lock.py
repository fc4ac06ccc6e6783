"""The deploy lock and the audit log for shell scripts (``scripts/swarm.sh``).

A script that changes the stack beside stackdeck (``swarm.sh deploy``) takes
the lock stackdeck's operations take (:class:`~console.core.ops.lock.DeployLock`
on ``$STATE/lock``), so that neither runs over the other, and writes the
operations' audit log (:func:`~console.core.ops.audit.audit`), where the
console shows what other operators do. The script opens the lock file on a
descriptor it keeps (``exec 8<>"$STATE/lock"``) and runs::

    python3 -m console.core.ops.script_lock take 8 STATE OP OP_ID [KEY=VALUE...]
    python3 -m console.core.ops.script_lock release 8 STATE OP OP_ID RESULT [KEY=VALUE...]

``take`` flocks that descriptor: a flock belongs to the open file, so the
script holds it after this process ends, until ``release`` or the script's
own end. The holder record names the script's process (this one's parent),
and the audit log gets the ``start`` line. Held (or stale) already: the
refusal's one line on stderr, a ``refused`` line in the audit log, exit 2.
``release``: the ``end`` line with RESULT, the record cleared, the flock
dropped. The standard library only: the scripts run the host's python3.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from console.core.opfiles import proc_start_time
from console.core.ops.audit import audit
from console.core.ops.context import Operator
from console.core.ops.errors import LockBusy
from console.core.ops.lock import DeployLock, make_record

USAGE = (
    "usage: script_lock take FD STATE_DIR OP OP_ID [KEY=VALUE...]\n"
    "       script_lock release FD STATE_DIR OP OP_ID RESULT [KEY=VALUE...]"
)


def _script() -> Operator:
    """The operator, with the calling script's process as the holder."""
    parent = os.getppid()
    return dataclasses.replace(
        Operator.current(via="script"), pid=parent, pid_start=proc_start_time(parent)
    )


def _params(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments (a bare ``KEY``: an empty value)."""
    return {key: value for key, _, value in (p.partition("=") for p in pairs)}


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[0] not in ("take", "release") or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return 64
    verb, fd, state, op, op_id = argv[0], int(argv[1]), Path(argv[2]), argv[3], argv[4]
    path = state / "lock"
    operator = _script()

    def record(
        event: str, params: list[str], result: str | None = None, message: str | None = None
    ) -> None:
        audit(
            state / "audit.log",
            event=event,
            op=op,
            op_id=op_id,
            operator=operator.as_dict(),
            params=_params(params),
            result=result,
            message=message,
        )

    def audit_failed(exc: OSError) -> int:
        print(f"writing the audit log {state / 'audit.log'} failed: {exc}", file=sys.stderr)
        return 1

    if verb == "take":
        try:
            DeployLock(path).acquire(make_record(operator, op, op_id), fd=fd)
        except LockBusy as exc:
            record("refused", argv[5:], result=exc.code, message=str(exc))
            print(f"refused: {exc}; nothing was changed", file=sys.stderr)
            return 2
        try:
            record("start", argv[5:])
        except BaseException as exc:
            # no record left behind that would refuse every operation as stale
            DeployLock.taken_on(path, fd).release()
            if not isinstance(exc, OSError):
                raise
            return audit_failed(exc)
        return 0
    if len(argv) < 6:
        print(USAGE, file=sys.stderr)
        return 64
    try:
        record("end", argv[6:], result=argv[5])
    except OSError as exc:
        return audit_failed(exc)
    finally:
        DeployLock.taken_on(path, fd).release()  # whatever the audit log did
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
