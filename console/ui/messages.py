"""Messages that carry data from workers (and the monitor's sink) to the app.

Workers and the monitor never touch widgets: they post one of these, the
app's handler stores the payload in a typed reactive, and the panels bound to
that reactive re-render. ``post_message`` is thread-safe, so the sink may be
called from the monitor's threads as well as from its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from console.core.models import LogLine, OpEvent, Snapshot, SourceState, StatsSnapshot


@dataclass
class SnapshotArrived(Message):
    """A source produced a new snapshot (any kind except ``stats``)."""

    kind: str
    """containers, health, database, quotas, cost, alerts or events."""
    snapshot: Snapshot


@dataclass
class StatsTick(Message):
    """A new docker-stats snapshot (about once a second).

    Only the newest tick matters: when the app falls behind, a queued tick is
    replaced by the next one instead of being rendered late.
    """

    snapshot: StatsSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsTick)


@dataclass
class SourceChanged(Message):
    """A source's liveness changed (failed, recovered, retrying)."""

    state: SourceState


@dataclass
class OpProgress(Message):
    """One step event of the running operation."""

    event: OpEvent


@dataclass
class LogsArrived(Message):
    """Lines of the followed container log (posted to the log screen in
    batches: a 200-line tail is one message, not 200)."""

    lines: list[LogLine]
