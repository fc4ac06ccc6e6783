"""The Docker engine: the project's containers, the colour nginx serves, the
event stream, and container logs.

docker-py is blocking, so every call runs on a small thread pool owned by
:class:`DockerHandle` (never the event loop's default executor, which the UI
may need), each call bounded by a timeout. Streams (events, logs, and the
stats streams in :mod:`.stats`) run on threads of their own and are closed by
shutting their socket down, which unblocks the reading thread at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import struct
import tarfile
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.models import (
    ContainerInfo,
    ContainersSnapshot,
    EngineEvent,
    EventsSnapshot,
    LogLine,
)
from console.core.sources.base import Clock, Source, utcnow, with_timeout

__all__ = [
    "ContainersSource",
    "DockerHandle",
    "EventsSource",
    "container_info",
    "engine_event",
    "follow_logs",
    "parse_active_colour",
    "parse_docker_time",
    "split_image",
]

T = TypeVar("T")

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
COLOUR_LABEL = "com.investment.colour"
VERSION_LABEL = "com.investment.version"
ACTIVE_CONF = "/etc/nginx/upstream/active.conf"

# --- pure helpers ---------------------------------------------------------------

_NEVER = "0001-01-01T00:00:00Z"
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_docker_time(value: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (``2024-05-01T10:00:01.123456789Z``) to an
    aware datetime (microsecond precision). Docker's zero time and junk: None."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    base, frac, zone = match.groups()
    micro = (frac or "0")[:6].ljust(6, "0")
    tz = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{base}.{micro}{tz}").astimezone(UTC)
    except ValueError:
        return None


def split_image(image: str) -> tuple[str, str]:
    """``registry:5000/investment-backend:v1.2.3`` -> (``registry:5000/investment-backend``, ``v1.2.3``).

    A digest (``name@sha256:...``) gives the short digest as tag; no tag: ``latest``.
    """
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest.split(":")[-1][:12]
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


_COLOUR_RE = re.compile(r"\$active_backend\s+backend_(blue|green)\s*;")


def parse_active_colour(text: str) -> str | None:
    """Colour from nginx's ``set $active_backend backend_green;`` (None if absent)."""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        match = _COLOUR_RE.search(line)
        if match:
            return match.group(1)
    return None


def _ports(network_settings: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    ports = (network_settings or {}).get("Ports") or {}
    for container_port, bindings in sorted(ports.items()):
        for binding in bindings or []:
            host_ip = binding.get("HostIp") or "0.0.0.0"
            if host_ip == "::":
                continue  # the IPv6 twin of a 0.0.0.0 binding
            out.append(f"{host_ip}:{binding.get('HostPort')}->{container_port}")
    return out


def container_info(inspect: Mapping[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from ``docker inspect`` output (pure)."""
    config = inspect.get("Config") or {}
    state = inspect.get("State") or {}
    labels = config.get("Labels") or {}
    env = dict(item.split("=", 1) for item in (config.get("Env") or []) if "=" in item)
    image, tag = split_image(str(config.get("Image") or inspect.get("Image") or ""))
    colour = labels.get(COLOUR_LABEL) or env.get("APP_COLOUR") or None
    if colour not in ("blue", "green"):
        colour = None
    status = str(state.get("Status") or "unknown")
    health = (state.get("Health") or {}).get("Status") or None
    if health == "none":
        health = None
    started = parse_docker_time(state.get("StartedAt")) if status in ("running", "paused") else None
    version = labels.get(VERSION_LABEL) or env.get("APP_VERSION") or None
    name = str(inspect.get("Name") or "").lstrip("/")
    return ContainerInfo(
        id=str(inspect.get("Id", ""))[:12],
        name=name,
        service=labels.get(SERVICE_LABEL) or name,
        colour=colour,
        image=image,
        tag=tag,
        state=status,
        health=health,
        started_at=started,
        restart_count=int(inspect.get("RestartCount") or 0),
        ports=_ports(inspect.get("NetworkSettings")),
        version=version,
    )


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


def read_tar_member(data: bytes) -> str:
    """Text of the first regular file in a tar archive (``get_archive`` output)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    return fh.read().decode("utf-8", "replace")
    return ""


# --- the docker client, shared ---------------------------------------------------


def describe_docker_error(exc: BaseException) -> str:
    """A short, operator-readable reason for a failed Docker call."""
    if isinstance(exc, SourceError):
        return exc.message.split(": ", 1)[-1]
    text = str(exc)
    status = getattr(exc, "status_code", None)
    if status:
        explanation = getattr(exc, "explanation", None) or text
        return f"HTTP {status}: {redact(explanation)[:160]}"
    if "Read timed out" in text or isinstance(exc, TimeoutError):
        return "the engine did not answer in time"
    markers = ("Connection refused", "No such file", "FileNotFoundError", "Connection aborted")
    if any(m in text for m in markers) or isinstance(exc, ConnectionError | FileNotFoundError):
        return "cannot connect to the engine (is dockerd running?)"
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:160]


class DockerHandle:
    """A lazily created docker client and a small private thread pool.

    Creating the client talks to the daemon (API version negotiation), so it
    happens on the pool, inside a poll, and a daemon that is down is just a
    failing poll. The client is reused afterwards; docker-py opens a new
    connection per request when needed, so a restarted daemon is picked up.
    """

    def __init__(self, settings: Settings, *, workers: int = 4) -> None:
        self.settings = settings
        self._client: Any = None
        self._create_lock = threading.Lock()
        """Serialises client creation only; close() never waits for it."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stackdeck-docker")
        self._closed = False
        self._failed_at: float | None = None
        self._failure: SourceError | None = None
        self._version: dict[str, Any] | None = None
        self._info: dict[str, Any] | None = None

    def client(self) -> Any:
        """The ``docker.DockerClient`` (blocking; call from a thread).

        While one thread creates it (a round trip to the daemon), the others
        wait; if that attempt fails they get its error instead of each trying
        again in turn against a daemon that does not answer.
        """
        client = self._client
        if client is not None:
            return client
        asked = time.monotonic()
        with self._create_lock:
            if self._closed:
                raise SourceError("engine", "closed")
            if self._client is not None:
                return self._client
            if (
                self._failure is not None
                and self._failed_at is not None
                and self._failed_at >= asked
            ):
                raise self._failure
            import docker  # imported here: only the engine needs it

            kwargs: dict[str, Any] = {
                "timeout": max(1.0, self.settings.request_timeout),
                "max_pool_size": 32,
            }
            try:
                if self.settings.docker_host:
                    client = docker.DockerClient(base_url=self.settings.docker_host, **kwargs)
                else:
                    client = docker.from_env(**kwargs)
            except Exception as exc:
                self._failed_at = time.monotonic()
                self._failure = SourceError("engine", describe_docker_error(exc))
                raise self._failure from None
            if self._closed:
                client.close()
                raise SourceError("engine", "closed")
            self._client = client
            self._failure = None
            return client

    @property
    def api(self) -> Any:
        """The low-level ``docker.APIClient`` (blocking)."""
        return self.client().api

    async def call(
        self, fn: Callable[..., T], *args: Any, deadline: float | None = None, what: str = "call"
    ) -> T:
        """Run a blocking docker call on the pool, bounded by a timeout."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, lambda: fn(*args))
        return await with_timeout(
            fut, deadline or self.settings.request_timeout + 1.0, "engine", what
        )

    def info(self, refresh: bool = False) -> dict[str, Any]:
        """``docker info`` (cached; blocking)."""
        if self._info is None or refresh:
            self._info = dict(self.api.info())
        return self._info

    def version(self) -> dict[str, Any]:
        """``docker version`` (cached; blocking)."""
        if self._version is None:
            self._version = dict(self.api.version())
        return self._version

    def forget_cache(self) -> None:
        """Forget cached info/version (after the daemon went away)."""
        self._info = None
        self._version = None

    def close(self) -> None:
        """Close the client and the pool (never blocks: stuck calls end with
        their socket timeout)."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self, grace: float = 2.0) -> None:
        """:meth:`close`, then wait (bounded) until the pool's threads are gone."""
        self.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._pool.shutdown, wait=True), timeout=grace)
        except TimeoutError:
            pass  # a call stuck in the daemon; its thread ends with its socket timeout


def shutdown_response(response: Any) -> None:
    """Unblock a thread reading a streaming docker response: shut the socket down.

    Same approach as docker-py's ``CancellableStream.close`` (which this
    generalises to any streaming response).
    """
    try:
        raw = response.raw
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock: Any = None
        if fp is not None:
            raw_io = getattr(fp, "raw", None)
            sock = (
                getattr(raw_io, "sock", None)
                or getattr(raw_io, "_sock", None)
                or getattr(fp, "_sock", None)
            )
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        response.close()
    except Exception:
        pass


# --- containers --------------------------------------------------------------------


class ContainersSource(Source):
    """Every container of the compose project, and the colour nginx serves."""

    name = "engine"
    kind = "containers"

    def __init__(self, settings: Settings, handle: DockerHandle, *, clock: Clock = utcnow) -> None:
        super().__init__(settings, clock=clock)
        self.handle = handle
        self._inspected: dict[str, tuple[tuple[Any, ...], ContainerInfo]] = {}
        """Container id -> (what the list said of it, its info): a container
        whose list entry did not change is not inspected again."""

    @property
    def interval(self) -> float:
        return self.settings.refresh.containers

    @staticmethod
    def _list_key(item: dict[str, Any]) -> tuple[Any, ...]:
        # Status ("Up 13 minutes (healthy)") changes with the state, the health,
        # a restart (the uptime starts over) and once a minute anyway.
        return (item.get("State"), item.get("Status"), item.get("Image"), item.get("Created"))

    def _info(self, api: Any, item: dict[str, Any]) -> ContainerInfo | None:
        container_id = str(item["Id"])
        key = self._list_key(item)
        cached = self._inspected.get(container_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            inspect = api.inspect_container(container_id)
        except Exception as exc:  # removed between list and inspect
            if getattr(exc, "status_code", None) == 404:
                return None
            raise
        info = container_info(inspect)
        self._inspected[container_id] = (key, info)
        return info

    def _collect(self) -> ContainersSnapshot:
        api = self.handle.api
        try:
            version = self.handle.version().get("Version")
        except Exception:
            self.handle.forget_cache()
            raise
        listed = api.containers(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.settings.project}"}
        )
        infos: list[ContainerInfo] = []
        nginx_id: str | None = None
        for item in listed:
            info = self._info(api, item)
            if info is None:
                continue
            infos.append(info)
            if info.service == "nginx" and info.state == "running":
                nginx_id = str(item["Id"])
        listed_ids = {str(item["Id"]) for item in listed}
        for gone in set(self._inspected) - listed_ids:
            del self._inspected[gone]
        serving = self._serving_colour(api, nginx_id) if nginx_id else None
        infos.sort(key=lambda c: (_SERVICE_ORDER.get(c.service, 99), c.service, c.name))
        return ContainersSnapshot(
            taken_at=self.clock(),
            project=self.settings.project,
            containers=infos,
            serving_colour=serving,  # type: ignore[arg-type]
            engine_version=version,
        )

    @staticmethod
    def _serving_colour(api: Any, nginx_id: str) -> str | None:
        """Read active.conf out of the nginx container (get_archive: no exec,
        no process in the container)."""
        try:
            stream, _stat = api.get_archive(nginx_id, ACTIVE_CONF)
            data = b"".join(stream)
        except Exception:
            return None
        return parse_active_colour(read_tar_member(data))

    async def poll(self) -> ContainersSnapshot:
        try:
            return await self.handle.call(
                self._collect, deadline=self.poll_timeout, what="list containers"
            )
        except Exception as exc:
            raise SourceError("engine", describe_docker_error(exc)) from None


_SERVICE_ORDER = {
    "nginx": 0,
    "backend_blue": 1,
    "backend_green": 2,
    "worker": 3,
    "db": 4,
    "redis": 5,
    "market-sim": 6,
}


# --- events ------------------------------------------------------------------------


class EventsSource(Source):
    """The engine event stream of the project, kept as a bounded timeline.

    One thread reads ``/events`` (filtered by the project label). ``poll()``
    publishes the timeline when it changed, and restarts the stream (from the
    last event seen, so nothing is lost) when it died; a dead stream with an
    error makes ``poll()`` raise, so the monitor backs off.
    ``on_event`` (set by the monitor) is called from the reading thread for
    every event, to refresh the container list at once.
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
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._connected = threading.Event()
        self._since: float | None = None
        self._version = 0
        self._published = -1

    @property
    def interval(self) -> float:
        return self.settings.refresh.events

    def _run(self) -> None:
        try:
            api = self.handle.api
            since = self._since if self._since is not None else time.time() - self.history_seconds
            params = {
                "since": f"{since:.9f}",
                "filters": json.dumps(
                    {"type": ["container"], "label": [f"{PROJECT_LABEL}={self.settings.project}"]}
                ),
            }
            response = api._get(api._url("/events"), params=params, stream=True, timeout=None)
            api._raise_for_status(response)
            self._response = response
            self._connected.set()
            self._ready.set()
            if self._stop.is_set():
                return
            for raw in api._stream_helper(response, decode=True):
                if self._stop.is_set():
                    break
                nano = raw.get("timeNano")
                if nano:
                    self._since = int(nano) / 1e9 + 1e-9
                event = engine_event(raw)
                if event is None:
                    continue
                with self._lock:
                    self._events.append(event)
                    self._version += 1
                callback = self.on_event
                if callback is not None:
                    try:
                        callback(event)
                    except Exception:
                        pass
            if not self._stop.is_set():
                self._error = SourceError("events", "the engine closed the event stream")
        except BaseException as exc:  # reported by the next poll
            if not self._stop.is_set():
                self._error = exc
        finally:
            self._ready.set()

    async def poll(self) -> EventsSnapshot | None:
        if self._stop.is_set():
            return None
        thread = self._thread
        if thread is None or not thread.is_alive():
            # (Re)connect, from the last event seen so none is lost; wait until
            # the stream is established or failed, so a dead daemon is a failed poll.
            self._error = None
            self._ready.clear()
            self._connected.clear()
            self._thread = threading.Thread(target=self._run, name="stackdeck-events", daemon=True)
            self._thread.start()
            await self.handle.call(
                self._ready.wait,
                self.settings.request_timeout,
                deadline=self.settings.request_timeout + 1.0,
                what="connect event stream",
            )
            error = self._error
            if error is not None and not self._thread.is_alive():
                self._error = None
                raise SourceError("events", describe_docker_error(error)) from None
        if not self._connected.is_set():
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
        self._stop.set()
        if self._response is not None:
            shutdown_response(self._response)
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, 1.0)


# --- logs --------------------------------------------------------------------------

_LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\S+)\s(.*)$", re.DOTALL)


def parse_log_line(container: str, stream: str, line: str) -> LogLine:
    """Split docker's ``--timestamps`` prefix off one line."""
    match = _LOG_TS.match(line)
    at = parse_docker_time(match.group(1)) if match else None
    text = match.group(2) if (match and at is not None) else line
    return LogLine(
        at=at, container=container, stream="stderr" if stream == "stderr" else "stdout", text=text
    )


def _demux(raw: Any) -> Iterator[tuple[str, bytes]]:
    """Frames of docker's multiplexed log stream: (``stdout``|``stderr``, bytes)."""
    while True:
        header = raw.read(8)
        if not header or len(header) < 8:
            return
        kind, length = struct.unpack(">BxxxL", header)
        if not length:
            continue
        data = raw.read(length)
        if not data:
            return
        yield ("stderr" if kind == 2 else "stdout", data)


def _raw_chunks(raw: Any) -> Iterator[tuple[str, bytes]]:
    while True:
        data = raw.read1(65536) if hasattr(raw, "read1") else raw.read(4096)
        if not data:
            return
        yield ("stdout", data)


async def follow_logs(
    container: str,
    tail: int | str = 200,
    since: datetime | float | None = None,
    *,
    follow: bool = True,
    settings: Settings | None = None,
    handle: DockerHandle | None = None,
    batch_max: int = 500,
) -> AsyncIterator[LogLine]:
    """Lines of a container's log: the last ``tail`` lines, then (``follow``)
    new ones as they come, until the consumer stops iterating.

    ``container`` is a name or id. ``since`` is a datetime or a Unix time.
    The reading thread is stopped (its socket shut down) as soon as the
    consumer breaks out of the loop or is cancelled. Bounded memory: the
    thread waits for the consumer when ``batch_max`` batches are queued.
    """
    own_handle = handle is None
    if handle is None:
        handle = DockerHandle(settings or Settings(), workers=1)
    # Applications may log a secret (a token in a URL, a DSN in a traceback):
    # mask every known one before a line leaves this function.
    secrets = (settings or handle.settings).secret_values()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[LogLine] | BaseException | None] = asyncio.Queue(maxsize=batch_max)
    stop = threading.Event()
    holder: dict[str, Any] = {}

    def put(item: list[LogLine] | BaseException | None) -> None:
        if stop.is_set():
            return
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                fut.result(timeout=0.5)
                return
            except TimeoutError:
                continue
            except Exception:
                return
        fut.cancel()

    def run() -> None:
        try:
            api = handle.api
            inspect = api.inspect_container(container)
            name = str(inspect.get("Name", container)).lstrip("/")
            tty = bool((inspect.get("Config") or {}).get("Tty"))
            params: dict[str, Any] = {
                "stdout": 1,
                "stderr": 1,
                "timestamps": 1,
                "follow": 1 if follow else 0,
                "tail": str(tail),
            }
            if since is not None:
                params["since"] = since.timestamp() if isinstance(since, datetime) else float(since)
            response = api._get(
                api._url("/containers/{0}/logs", inspect["Id"]),
                params=params,
                stream=True,
                timeout=None,
            )
            api._raise_for_status(response)
            holder["response"] = response
            if stop.is_set():
                return
            buffers = {"stdout": b"", "stderr": b""}
            frames = _raw_chunks(response.raw) if tty else _demux(response.raw)
            for stream_name, data in frames:
                if stop.is_set():
                    break
                buf = buffers[stream_name] + data
                *lines, rest = buf.split(b"\n")
                buffers[stream_name] = rest
                if lines:
                    put(
                        [
                            parse_log_line(
                                name,
                                stream_name,
                                redact(ln.decode("utf-8", "replace").rstrip("\r"), secrets),
                            )
                            for ln in lines
                        ]
                    )
            for stream_name, rest in buffers.items():
                if rest:
                    put(
                        [
                            parse_log_line(
                                name, stream_name, redact(rest.decode("utf-8", "replace"), secrets)
                            )
                        ]
                    )
            put(None)
        except BaseException as exc:
            put(SourceError("logs", redact(exc)) if not stop.is_set() else None)

    thread = threading.Thread(target=run, name=f"stackdeck-logs-{container}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            for line in item:
                yield line
    finally:
        stop.set()
        response = holder.get("response")
        if response is not None:
            shutdown_response(response)
        if own_handle:
            handle.close()
