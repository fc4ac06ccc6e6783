"""The record of one deploy or rollback, from its first step to its result.

A deploy or rollback leaves two records: the journal
(``$STATE/deploy-journal.json``, :mod:`console.core.ops.journal`: what it
has done so far, read by recovery when the process dies) and one line of
deployment history (``$STATE/history.jsonl``: what it did, read by
``stackdeck history``, by rollback to find the previous version and by
the audit). :class:`OpRecord` owns both, plus the operation's clock, so
every operation writes them the same way: who ran it, when it started, how
long it took, how it ended.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from console.core.ops.audit import record_history
from console.core.ops.context import OpContext
from console.core.ops.journal import Journal

__all__ = ["OpRecord"]


class OpRecord:
    """Journal + history line + timing + result of one deploy or rollback.

    Made when the operation begins (its clock starts then); :meth:`open`
    names what it does once that is known; :meth:`begin_journal` starts the
    journal before the first step that changes the stack; :meth:`succeed`
    or :meth:`fail` closes both records.
    """

    def __init__(self, ctx: OpContext, op: str, op_id: str):
        self.ctx = ctx
        self.op = op
        self.op_id = op_id
        self.history: dict[str, Any] = {}
        self.journal: Journal | None = None
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the operation began."""
        return time.monotonic() - self._t0

    def open(self, **fields: Any) -> None:
        """The history line: the operation, what it does (``strategy``,
        ``version``, colours, ...), who runs it and when."""
        self.history = {
            "id": self.op_id,
            "op": self.op,
            **fields,
            **self._operator("user", "ssh_client", "host"),
            "started": datetime.now(UTC).isoformat(),
        }

    def note(self, **fields: Any) -> None:
        """Facts for the history line (image digest, backup, schema revision)."""
        self.history.update(fields)

    def begin_journal(self, **fields: Any) -> Journal:
        """The journal of this operation, with the process that owns it
        (recovery checks whether that process still runs)."""
        self.journal = Journal.begin(
            self.ctx.journal_path,
            id=self.op_id,
            op=self.op,
            **fields,
            **self._operator("pid", "pid_start", "host", "user", "ssh_client", "via"),
        )
        return self.journal

    def step(self, name: str, **fields: Any) -> None:
        """Journal the step about to run (before it changes anything)."""
        assert self.journal is not None
        self.journal.step(name, **fields)

    def mark(self, **fields: Any) -> None:
        """Journal a fact recovery needs (``switched``, ``bake_passed``, ...)."""
        assert self.journal is not None
        self.journal.update(**fields)

    def succeed(self) -> float:
        """Both records say ``done``/``ok``; returns the duration (s)."""
        duration = self.elapsed()
        if self.journal is not None:
            self.journal.finish("done", duration_s=round(duration, 1))
        self._write(result="ok", duration_s=round(duration, 1))
        return duration

    def fail(
        self,
        result: str,
        reason: str,
        *,
        history_reason: str | None = None,
        journal_status: str | None = None,
        undo: list[tuple[str, str]] | None = None,
        timed: bool = True,
        **history_fields: Any,
    ) -> None:
        """Both records say how it ended (``failed``, ``rolled-back``) and why.

        ``history_reason``: the history's wording when it differs (the
        failed step in front); ``journal_status``: the journal's status when
        it differs from ``result``; ``undo``: what the automatic rollback
        did, for the journal; ``timed=False``: no duration in the history.
        """
        if self.journal is not None:
            extra: dict[str, Any] = {} if undo is None else {"undo": undo}
            self.journal.finish(journal_status or result, reason=reason, **extra)
        if timed:
            history_fields["duration_s"] = round(self.elapsed(), 1)
        self._write(
            result=result,
            reason=reason if history_reason is None else history_reason,
            **history_fields,
        )

    def _operator(self, *names: str) -> dict[str, Any]:
        return {name: getattr(self.ctx.operator, name) for name in names}

    def _write(self, **fields: Any) -> None:
        self.history.update(fields, finished=datetime.now(UTC).isoformat())
        record_history(self.ctx.history_path, self.history)
