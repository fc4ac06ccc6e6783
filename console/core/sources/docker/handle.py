"""The Docker client the engine sources share, and how its errors read.

docker-py is blocking, so every call runs on a thread of its own, at most
``workers`` at once per :class:`DockerHandle` (never the event loop's default
executor, which the UI may need), each call bounded by a timeout. Streams
(stats, events, logs) run on threads of their own (:mod:`.stream`).

The call threads are daemon threads that nothing joins: a call stuck in a
socket read (a daemon that hangs, or answers slowly under load) is abandoned
when its caller times out or the console quits, and ends with its socket
timeout if the process is still there. A ``ThreadPoolExecutor`` cannot do
this: ``concurrent.futures`` joins every pool thread at interpreter exit,
so a quit waited for the slowest call in flight (issue 16, "quit lags under
load").
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from console.core.config import Settings
from console.core.errors import SourceError, redact
from console.core.sources.base import with_timeout

__all__ = ["DockerHandle", "describe_docker_error"]

T = TypeVar("T")


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
    """A lazily created docker client, and its calls on daemon threads.

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
        self._workers = workers
        self._slots: asyncio.Semaphore | None = None
        """At most ``workers`` calls run at once (a stuck call holds its slot
        until its thread ends, as a pool's busy worker would)."""
        self._calls = 0
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
        """Run a blocking docker call on a daemon thread, bounded by a timeout
        (which includes the wait for a free slot)."""
        return await with_timeout(
            self._run(fn, *args), deadline or self.settings.request_timeout + 1.0, "engine", what
        )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise SourceError("engine", "closed")
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._workers)
        slots = self._slots
        await slots.acquire()
        done: asyncio.Future[T] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            slots.release()
            if done.done():
                return  # the caller gave up (timeout, cancel, quit)
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                pass  # the loop is closed: the console has quit

        self._calls += 1
        thread = threading.Thread(target=work, name=f"stackdeck-docker-{self._calls}", daemon=True)
        try:
            thread.start()
        except BaseException:
            slots.release()
            raise
        return await done

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
        """Close the client; never blocks. Calls still in flight are abandoned:
        their threads are daemon threads, and end with their socket timeout."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    async def aclose(self) -> None:
        """:meth:`close` (nothing to wait for: see the module docstring)."""
        self.close()
