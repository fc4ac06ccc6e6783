"""The engine's event stream of the project, kept as a bounded timeline."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.models import EngineEvent, EventsSnapshot
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.docker.handle import DockerHandle, describe_docker_error
from console.core.sources.docker.inspect import PROJECT_LABEL, SERVICE_LABEL
from console.core.sources.docker.stream import Stream, StreamThread, raise_for_status

__all__ = ["EventsSource", "engine_event", "open_events"]

_EVENT_ACTIONS = (
    "start",
    "die",
    "stop",
    "kill",
    "restart",
    "oom",
    "pause",
    "unpause",
    "create",
    "destroy",
)


def engine_event(raw: Mapping[str, Any]) -> EngineEvent | None:
    """An :class:`EngineEvent` from a decoded ``/events`` message, or None for
    actions the timeline does not show (exec, attach, archive, ...)."""
    if raw.get("Type", "container") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    if not (action in _EVENT_ACTIONS or action.startswith("health_status")):
        return None
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    nano = raw.get("timeNano")
    at = (
        datetime.fromtimestamp(int(nano) / 1e9, UTC)
        if nano
        else datetime.fromtimestamp(float(raw.get("time") or 0), UTC)
    )
    detail = None
    if action == "die":
        detail = f"exit {attrs.get('exitCode', '?')}"
    elif action == "kill" and attrs.get("signal"):
        detail = f"signal {attrs['signal']}"
    elif action.startswith("health_status"):
        detail = action.split(":", 1)[1].strip() if ":" in action else None
    return EngineEvent(
        at=at,
        container=str(attrs.get("name") or str(actor.get("ID", ""))[:12]),
        service=attrs.get(SERVICE_LABEL),
        action=action,
        detail=detail,
    )


def open_events(api: Any, *, since: float, filters: dict[str, list[str]]) -> Stream[dict[str, Any]]:
    """``/events`` from ``since`` (a Unix time), decoded, once the engine accepted it."""
    stream = api.events(since=f"{since:.9f}", filters=filters, decode=True)
    # docker-py checks the status only when the first event is read, which may
    # be hours away: a refused request must fail the poll now. The response is
    # reachable only through CancellableStream's private ``_response``.
    raise_for_status(stream._response)
    return stream  # type: ignore[no-any-return]


class EventsSource(Source):
    """The engine event stream of the project, kept as a bounded timeline.

    One :class:`~.stream.StreamThread` reads ``/events`` (filtered by the
    project label). ``poll()`` publishes the timeline when it changed, and
    restarts the stream (from the last event seen, so nothing is lost) when it
    died; a stream that cannot be (re)opened makes ``poll()`` raise, so the
    monitor backs off. ``on_event`` (set by the monitor) is called from the
    reading thread for every event, to refresh the container list at once.
    """

    name = "events"
    kind = "events"

    def __init__(
        self,
        settings: Settings,
        handle: DockerHandle,
        *,
        clock: Clock = utcnow,
        history_seconds: float = 900.0,
    ) -> None:
        super().__init__(settings, clock=clock)
        self.handle = handle
        self.history_seconds = history_seconds
        self.on_event: Callable[[EngineEvent], None] | None = None
        self._events: deque[EngineEvent] = deque(maxlen=settings.events_max)
        self._lock = threading.Lock()
        self._reader: StreamThread[dict[str, Any]] | None = None
        self._closed = False
        self._since: float | None = None
        self._version = 0
        self._published = -1

    @property
    def interval(self) -> float:
        return self.settings.refresh.events

    def _open(self) -> Stream[dict[str, Any]]:
        since = self._since if self._since is not None else time.time() - self.history_seconds
        return open_events(
            self.handle.api,
            since=since,
            filters={"type": ["container"], "label": [f"{PROJECT_LABEL}={self.settings.project}"]},
        )

    def _on_raw(self, raw: Mapping[str, Any]) -> None:
        nano = raw.get("timeNano")
        if nano:
            self._since = int(nano) / 1e9 + 1e-9
        event = engine_event(raw)
        if event is None:
            return
        with self._lock:
            self._events.append(event)
            self._version += 1
        callback = self.on_event
        if callback is not None:
            try:
                callback(event)
            except Exception:
                pass

    async def poll(self) -> EventsSnapshot | None:
        if self._closed:
            return None
        reader = self._reader
        if reader is None or not reader.alive:
            # (Re)connect, from the last event seen so none is lost; wait until
            # the stream is established or failed, so a dead daemon is a failed poll.
            reader = self._reader = StreamThread(
                self._open, self._on_raw, name="stackdeck-events"
            ).start()
            await self.handle.call(
                reader.settled.wait,
                self.settings.request_timeout,
                deadline=self.settings.request_timeout + 1.0,
                what="connect event stream",
            )
            if not reader.alive and not reader.stopped:
                error = reader.error or SourceError("events", "the engine closed the event stream")
                raise SourceError("events", describe_docker_error(error)) from None
        if not reader.connected.is_set():
            # the daemon accepted the request but has not answered (hung)
            raise SourceError("events", "the engine has not answered the event request")
        with self._lock:
            version = self._version
            events = list(self._events)
        if version == self._published:
            return None
        self._published = version
        return EventsSnapshot(taken_at=self.clock(), events=events)

    async def aclose(self) -> None:
        """Close the stream (its socket is shut down, so the thread returns at
        once); never waits for the thread, which is a daemon: one still
        connecting ends when the engine answers or its timeout passes."""
        self._closed = True
        reader = self._reader
        if reader is not None:
            reader.close()
