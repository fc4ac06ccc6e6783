"""How a step of an operation reports progress and returns its result.

A step is a plain ``async def`` that takes a :class:`Progress`, reports what
it does through it (``progress.ok("image", "using ...")``) and *returns* its
result (``info = await ensure_image(ctx, version, build, progress)``). An
operation is the same kind of function one level up: its body reports
events and returns nothing; :func:`run_steps` turns it into the
``AsyncIterator[OpEvent]`` that :func:`console.core.ops.run_op` (and through
it the TUI and the CLI) consumes.

Why this shape: a step that is an async generator cannot also return a
value, which is how the engine came to mix events and typed results in one
stream (``AsyncIterator[OpEvent | BackupInfo]``) filtered with
``isinstance`` at every call site. With a report callback the result is a
return value again, and mypy checks it.

Why a task: a plain function can only hand its events out *live* (a bake
reports every 5 s, the TUI shows it as it happens) if something else reads
them while it still runs. :func:`run_steps` runs the body in a task and
yields what it reports from a FIFO queue, so the events come out in the
order they were made, each as soon as it is made; ``report`` never blocks
a step. When the consumer goes away (cancelled: quit, SIGHUP; or the
iterator is closed), the body's task is cancelled at the ``await`` it is
in and waited for, so its clean-up (undo, journal, history) runs to its
end before the cancellation goes on, as it did when the body was the
generator itself.

A generator that only yields events (:func:`console.core.ops.backend.wait_healthy`)
is relayed with ``await progress.relay(events)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from console.core.models import OpEvent
from console.core.ops.events import Emitter

__all__ = ["Body", "Progress", "Report", "run_steps"]

Report = Callable[[OpEvent], None]
"""Where a step's events go (never blocks)."""


class Progress:
    """The channel a step reports on: makes events with the operation's
    :class:`Emitter` (its op name, secrets redacted) and hands them to
    ``report``."""

    def __init__(self, emitter: Emitter, report: Report):
        self.emitter = emitter
        self._report = report

    def event(self, event: OpEvent) -> None:
        self._report(event)

    def make(self, step: str, status: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.make(step, status, message, **data))

    def start(self, step: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.start(step, message, **data))

    def ok(self, step: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.ok(step, message, **data))

    def info(self, step: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.info(step, message, **data))

    def warn(self, step: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.warn(step, message, **data))

    def fail(self, step: str, message: str, /, **data: Any) -> None:
        self._report(self.emitter.fail(step, message, **data))

    def done(self, message: str, /, **data: Any) -> None:
        self._report(self.emitter.done(message, **data))

    async def relay(self, events: AsyncIterable[OpEvent]) -> None:
        """Report every event of a generator that yields only events."""
        async for event in events:
            self._report(event)


Body = Callable[[Progress], Awaitable[Any]]
"""An operation's (or a step's) body: reports on the Progress it is given."""

_END = object()


async def run_steps(emitter: Emitter, body: Body) -> AsyncIterator[OpEvent]:
    """The events ``body`` reports, live and in order; then whatever it
    raised (after the events it reported before raising)."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def run() -> None:
        try:
            await body(Progress(emitter, queue.put_nowait))
        finally:
            queue.put_nowait(_END)

    task = asyncio.ensure_future(run())
    try:
        while (item := await queue.get()) is not _END:
            assert isinstance(item, OpEvent)
            yield item
        await task  # its exception, if it raised one
    finally:
        if not task.done():
            # The consumer went away: stop the body where it is and let its
            # clean-up finish (a second cancellation of the consumer stops
            # this wait, not the clean-up, which shields its undo).
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
