"""Building :class:`~console.core.models.OpEvent` values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from console.core.models import OpEvent

__all__ = ["Emitter"]


class Emitter:
    """Makes the events of one operation: ``ev.ok("backup", "backup 2025… taken")``."""

    def __init__(self, op: str, redact: Any = None):
        self.op = op
        self._redact = redact

    def make(self, step: str, status: str, message: str, /, **data: Any) -> OpEvent:
        if self._redact is not None:
            message = self._redact(message)
        return OpEvent(
            at=datetime.now(UTC),
            op=self.op,
            step=step,
            status=status,  # type: ignore[arg-type]
            message=message,
            data=data,
        )

    def start(self, step: str, message: str, /, **data: Any) -> OpEvent:
        return self.make(step, "start", message, **data)

    def ok(self, step: str, message: str, /, **data: Any) -> OpEvent:
        return self.make(step, "ok", message, **data)

    def info(self, step: str, message: str, /, **data: Any) -> OpEvent:
        return self.make(step, "info", message, **data)

    def warn(self, step: str, message: str, /, **data: Any) -> OpEvent:
        return self.make(step, "warn", message, **data)

    def fail(self, step: str, message: str, /, **data: Any) -> OpEvent:
        return self.make(step, "fail", message, **data)

    def done(self, message: str, /, **data: Any) -> OpEvent:
        return self.make("result", "done", message, **data)
