"""Errors of the operations engine.

Every error an operation raises on purpose is an :class:`OpError` (a
:class:`~console.core.errors.StackdeckError`), carrying a ``code`` that the
CLI maps to its exit status and the TUI to its message style:

=============  ====  ==========================================================
code           exit  meaning
=============  ====  ==========================================================
``bad-input``  2     the request itself is wrong; nothing was changed
``read-only``  2     a write operation in read-only mode; nothing was changed
``lock-busy``  3     another operator holds the deploy lock (or a stale lock)
``failed``     1     the operation ran and failed (what it undid is in the log)
=============  ====  ==========================================================
"""

from __future__ import annotations

from typing import Any

from console.core.errors import StackdeckError

__all__ = [
    "BadInput",
    "LockBusy",
    "OpError",
    "OpFailed",
    "ReadOnly",
    "exit_code",
]


class OpError(StackdeckError):
    """Root of the operation errors; ``step`` names where it happened."""

    code = "failed"

    def __init__(self, message: str, *, step: str = "result", data: dict[str, Any] | None = None):
        self.step = step
        self.data = dict(data or {})
        super().__init__(message)


class BadInput(OpError):
    """The request is malformed or names something that does not exist.

    Raised before anything is changed, so the operator can fix the command
    and run it again.
    """

    code = "bad-input"

    def __init__(
        self, message: str, *, field: str | None = None, data: dict[str, Any] | None = None
    ):
        self.field = field
        super().__init__(message, step="validate", data={**(data or {}), "field": field})


class ReadOnly(OpError):
    """A write operation was asked for while the console is read-only."""

    code = "read-only"

    def __init__(self, op: str):
        super().__init__(
            f"{op} changes the stack and the console is in read-only mode "
            "(--read-only / read_only = true); nothing was changed",
            step="read-only",
        )


class LockBusy(OpError):
    """The deploy lock is held by another operation (or left by a dead one)."""

    code = "lock-busy"

    def __init__(self, message: str, holder: dict[str, Any] | None = None, *, stale: bool = False):
        self.holder = holder or {}
        self.stale = stale
        super().__init__(message, step="lock", data={"holder": self.holder, "stale": stale})


class OpFailed(OpError):
    """The operation ran and failed at ``step``."""

    code = "failed"


_EXIT = {"bad-input": 2, "read-only": 2, "lock-busy": 3, "failed": 1}


def exit_code(code: str | None) -> int:
    """Process exit status for an error code (``None``: success)."""
    if code is None:
        return 0
    return _EXIT.get(code, 1)
