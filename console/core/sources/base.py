"""What every source has in common: a name, an interval, ``poll()``, and backoff.

A source turns one backend (the Docker engine, nginx, PostgreSQL, Redis) into
snapshot models. The monitor calls :meth:`Source.poll` on each source's own
asyncio task, bounded by a timeout; a source that raises keeps its last good
snapshot in the monitor and is retried after :func:`backoff_delay`.

Streaming sources (engine events, docker stats) run their streams in threads
and use ``poll()`` to publish what the streams collected, so the monitor treats
every source alike.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from console.core.config import Settings
from console.core.errors import SourceTimeout
from console.core.models import Snapshot

__all__ = ["Clock", "Source", "backoff_delay", "utcnow", "with_timeout"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (injected for tests)."""

T = TypeVar("T")


def utcnow() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def backoff_delay(
    failures: int,
    *,
    base: float = 1.0,
    cap: float = 30.0,
    jitter: float = 0.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures.

    Exponential: ``base``, 2x ``base``, 4x ``base``, ... capped at ``cap``.
    ``jitter`` (0..1) spreads retries of many sources: the delay is scaled by
    a random factor in ``[1 - jitter, 1]`` (never above the cap).
    ``failures <= 0`` means no failure: no wait.
    """
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, 62)  # 2**62 is already far above any cap
    delay = min(cap, base * (2.0**exponent))
    if jitter > 0:
        delay *= 1.0 - min(jitter, 1.0) * rng()
    return max(0.0, delay)


async def with_timeout(awaitable: Awaitable[T], seconds: float, source: str, what: str) -> T:
    """Await with a deadline; a timeout becomes a :class:`SourceTimeout`."""
    try:
        return await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        raise SourceTimeout(source, seconds, what) from None


class Source(ABC):
    """One read-side source. Subclasses set ``name`` and ``kind``."""

    name: str = "source"
    """Name in :class:`~console.core.models.SourceState` (engine, stats, ...)."""
    kind: str = "source"
    """Sink kind of the snapshots (containers, stats, ...)."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.early: Callable[[Snapshot], Awaitable[None]] | None = None
        """Set by the monitor: publishes a partial snapshot before ``poll``
        returns (a source whose first poll waits on something slow shows what
        it already has)."""

    @property
    def interval(self) -> float:
        """Seconds between two polls when all is well."""
        return 5.0

    @property
    def poll_timeout(self) -> float:
        """Upper bound of one poll (a few requests, each bounded too)."""
        return self.settings.request_timeout * 2 + 1.0

    @abstractmethod
    async def poll(self) -> Snapshot | None:
        """Produce a fresh snapshot, or None when there is nothing new.

        Raises on failure; the monitor keeps the last good snapshot.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads. Idempotent."""
