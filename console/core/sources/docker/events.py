"""The engine's event stream of the project, kept as a bounded timeline,
with what happened before the console started recalled at start.

The engine keeps only its last 256 events in memory (of every kind, for every
container and image of the host). Each health probe alone logs
``exec_create``/``exec_start``/``exec_die``, so on the bundled stack the
buffer spans a minute or less, and ``/events?since=<15 min ago>`` returns
what fits in it: a deploy four minutes earlier is gone. At start the source
therefore also recalls, within the look-back, what the engine still knows for
certain (each container's creation, last start and last exit from
``docker inspect``) and stackdeck's own audit log (operations by anyone), and
merges them with the buffer's replay; every event before the start is marked
``before_start``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from docker.errors import NotFound

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.history import read_markers
from console.core.models import EngineEvent, EventsSnapshot, Marker
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.docker.handle import DockerHandle, describe_docker_error
from console.core.sources.docker.inspect import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    Attrs,
    container_name,
    labels_of,
    parse_docker_time,
    state_of,
)
from console.core.sources.docker.stream import Stream, StreamThread, raise_for_status

__all__ = [
    "EventsSource",
    "engine_event",
    "merge_timeline",
    "open_events",
    "recall_events",
    "recalled_from_audit",
    "recalled_from_inspect",
]

SAME_EVENT_SECONDS = 5.0
"""A recalled event and a streamed one of the same container and action this
close are one event (``State.StartedAt`` is stamped a few ms before the
``start`` event; ``Created`` before ``create`` by the time the set-up took)."""

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


def recalled_from_inspect(attrs: Attrs, *, since: datetime, until: datetime) -> list[EngineEvent]:
    """What one container's ``docker inspect`` proves happened in [since, until]:
    its creation (``Created``), its last start (``State.StartedAt``, with the
    restart policy's count) and its last exit (``State.FinishedAt``; the exit
    code and OOM kill only while it is still stopped: a start resets them).
    Oldest first, each marked ``before_start``."""
    if not attrs:
        return []
    state = attrs.get("State") or {}
    name = container_name(attrs)
    service = labels_of(attrs).get(SERVICE_LABEL)
    created = parse_docker_time(attrs.get("Created"))
    started = parse_docker_time(state.get("StartedAt"))
    finished = parse_docker_time(state.get("FinishedAt"))
    restarts = int(attrs.get("RestartCount") or 0)
    out: list[tuple[datetime, str, str | None]] = []
    if created is not None:
        out.append((created, "create", None))
    if started is not None:
        out.append((started, "start", f"restarted {restarts}x by policy" if restarts else None))
    if finished is not None:
        detail = None
        stopped = state_of(attrs) in ("exited", "dead", "created")
        if stopped and (started is None or finished >= started):
            detail = f"exit {state.get('ExitCode', '?')}"
            if state.get("OOMKilled"):
                detail += " · OOM killed"
        out.append((finished, "die", detail))
    return [
        EngineEvent(
            at=at,
            container=name,
            service=service,
            action=action,
            detail=detail,
            origin="inspect",
            before_start=True,
        )
        for at, action, detail in sorted(out, key=lambda item: item[0])
        if since <= at <= until
    ]


def recalled_from_audit(markers: Iterable[Marker]) -> list[EngineEvent]:
    """The operations of stackdeck's audit log (by anyone, from any terminal)
    as timeline entries at their start: ``deploy`` · ``v2.0.0 (blue-green)
    by root: ok`` (the chart marker's label, after the name). Marked
    ``before_start``."""
    return [
        EngineEvent(
            at=marker.at,
            container="stackdeck",
            action=marker.op,
            detail=marker.label.removeprefix(f"{marker.op} "),
            origin="audit",
            before_start=True,
        )
        for marker in markers
    ]


def recall_events(
    inspected: Iterable[Attrs], state_dir: Path, *, since: datetime, until: datetime
) -> list[EngineEvent]:
    """Everything recalled for the look-back [since, until] (``until``: the
    console's start): the containers' inspect and the audit log, oldest first."""
    events = [
        e for attrs in inspected for e in recalled_from_inspect(attrs, since=since, until=until)
    ]
    events.extend(recalled_from_audit(read_markers(state_dir, since, until)))
    events.sort(key=lambda e: e.at)
    return events


def merge_timeline(
    recalled: Iterable[EngineEvent],
    streamed: Iterable[EngineEvent],
    *,
    limit: int,
    tolerance: float = SAME_EVENT_SECONDS,
) -> list[EngineEvent]:
    """The timeline: streamed events (the engine's own, exact) and the
    recalled ones the stream does not already hold (same container and
    action within ``tolerance`` seconds), oldest first, the newest ``limit``."""
    streamed = list(streamed)
    seen: dict[tuple[str, str], list[datetime]] = {}
    for event in streamed:
        seen.setdefault((event.container, event.action), []).append(event.at)
    window = timedelta(seconds=tolerance)
    merged = [
        event
        for event in recalled
        if not any(
            abs(event.at - at) <= window for at in seen.get((event.container, event.action), ())
        )
    ]
    merged.extend(streamed)
    merged.sort(key=lambda e: e.at)  # stable: a recalled event stays before a streamed tie
    return merged[-limit:] if limit > 0 else []


class EventsSource(Source):
    """The engine event stream of the project, kept as a bounded timeline.

    The first ``poll()`` notes the start, recalls what happened in the
    ``history_seconds`` before it (:func:`recall_events`) and asks the engine
    for its events from then on (its buffer, then live); events before the
    start are marked ``before_start`` and merged by :func:`merge_timeline`.
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
        self._started: datetime | None = None
        """When the first poll ran (the console's start)."""
        self._recalled: list[EngineEvent] | None = None
        """What :func:`recall_events` found before the start (None: not yet)."""
        self._lock = threading.Lock()
        self._reader: StreamThread[dict[str, Any]] | None = None
        self._closed = False
        self._since: float | None = None
        self._version = 0
        self._published = -1

    @property
    def interval(self) -> float:
        return self.settings.refresh.events

    @property
    def look_back(self) -> datetime | None:
        """The oldest moment the timeline covers (None before the first poll)."""
        if self._started is None:
            return None
        return self._started - timedelta(seconds=self.history_seconds)

    def _recall(self, since: datetime, until: datetime) -> list[EngineEvent]:
        """Blocking: inspect every container of the project (stopped ones
        too) and read the audit log; see :func:`recall_events`."""
        api = self.handle.api
        listed = api.containers(
            all=True, filters={"label": [f"{PROJECT_LABEL}={self.settings.project}"]}
        )
        inspected = []
        for item in listed:
            try:
                inspected.append(api.inspect_container(item["Id"]))
            except NotFound:  # removed between the list and the inspect
                continue
        return recall_events(inspected, self.settings.state_dir, since=since, until=until)

    def _open(self) -> Stream[dict[str, Any]]:
        if self._since is not None:
            since = self._since
        elif self._started is not None:
            since = self._started.timestamp() - self.history_seconds
        else:
            since = time.time() - self.history_seconds
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
        started = self._started
        if started is not None and event.at < started:
            event = event.model_copy(update={"before_start": True})
        with self._lock:
            self._events.append(event)
            self._version += 1
        callback = self.on_event
        if callback is not None:
            try:
                callback(event)
            except Exception:
                pass

    def add(self, events: Iterable[EngineEvent]) -> bool:
        """Put events read elsewhere in the timeline (the swarm's changes,
        :func:`~console.core.sources.docker.swarm.swarm_changes`); the next
        poll publishes them. False when there was nothing to add."""
        added = list(events)
        if not added:
            return False
        with self._lock:
            self._events.extend(added)
            self._version += 1
        return True

    async def poll(self) -> EventsSnapshot | None:
        if self._closed:
            return None
        if self._started is None:
            self._started = self.clock()
        if self._recalled is None:
            until = self._started
            since = until - timedelta(seconds=self.history_seconds)
            try:
                recalled = await self.handle.call(
                    self._recall, since, until, what="recall the events before the start"
                )
            except Exception as exc:  # a dead daemon is a failed poll of this source
                raise SourceError("events", describe_docker_error(exc)) from None
            with self._lock:
                self._recalled = recalled
                self._version += 1
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
            streamed = list(self._events)
            recalled = list(self._recalled or ())
        if version == self._published:
            return None
        self._published = version
        return EventsSnapshot(
            taken_at=self.clock(),
            events=merge_timeline(recalled, streamed, limit=self.settings.events_max),
            started_at=self._started,
            since=self.look_back,
        )

    async def aclose(self) -> None:
        """Close the stream (its socket is shut down, so the thread returns at
        once); never waits for the thread, which is a daemon: one still
        connecting ends when the engine answers or its timeout passes."""
        self._closed = True
        reader = self._reader
        if reader is not None:
            reader.close()
