"""One Docker stream, read by a thread of its own.

docker-py's streams (``/events``, ``/containers/{id}/stats?stream=1``,
``/containers/{id}/logs?follow=1``) are blocking iterators. A
:class:`StreamThread` opens one on a thread, hands every item to a callback
(the stats and events sources keep what they need under a lock; their
``poll()`` publishes it), and records why the stream ended. :func:`stream_items`
turns the same thread into an async iterator through a bounded queue (the log
follower): the thread waits while the consumer is behind.

Closing never waits for the thread: it shuts the stream's socket down (what
docker-py's ``CancellableStream.close`` does), which unblocks the read at
once; a stream closed while it was still connecting is closed by its thread as
soon as the engine answers.

docker-py's public API is used where it does the job: ``APIClient.events``
returns a closeable ``CancellableStream``. Two requests go through its private
``_get``/``_url`` (:func:`request_stream`) because the public call cannot do
what we need; each says why where it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "ResponseStream",
    "Stream",
    "StreamThread",
    "raise_for_status",
    "request_stream",
    "stream_items",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_DEFAULT: Any = object()


class Stream(Protocol[T_co]):
    """What a stream opener returns: items to iterate, and ``close()`` that may
    be called from another thread while the iteration blocks (docker-py's
    ``CancellableStream`` and :class:`ResponseStream` are streams)."""

    def __iter__(self) -> Iterator[T_co]: ...

    def close(self) -> None: ...


def raise_for_status(response: Any) -> None:
    """Raise docker-py's ``APIError`` (``NotFound``, ...) for an HTTP error answer."""
    from docker.errors import create_api_error_from_http_exception
    from requests.exceptions import HTTPError  # docker-py's transport

    try:
        response.raise_for_status()
    except HTTPError as exc:
        try:
            create_api_error_from_http_exception(exc)  # raises, with the engine's message
        finally:
            response.close()


def request_stream(
    api: Any, path: str, *args: str, params: dict[str, Any], timeout: float | None = _DEFAULT
) -> Any:
    """``GET`` an engine endpoint as a streaming ``requests`` response, its
    status checked. ``timeout`` defaults to the client's (per read); None
    waits forever (a log follower may see no line for hours).

    Private docker-py API (``APIClient._get`` and ``_url``, which prefix the
    API version and route to the engine's socket): the public calls either hide
    the response, so the stream cannot be closed from another thread
    (``APIClient.stats`` returns a bare generator), or merge stdout and stderr
    (``APIClient.logs``, where the console shows stderr lines in red).
    """
    kwargs = {} if timeout is _DEFAULT else {"timeout": timeout}
    response = api._get(api._url(path, *args), params=params, stream=True, **kwargs)
    raise_for_status(response)
    return response


class ResponseStream(Generic[T]):
    """Items read from one streaming HTTP response, closeable from any thread.

    Unlike docker-py's ``CancellableStream``, iterating does not turn a broken
    connection into a quiet end: the error reaches whoever reads the stream.
    """

    def __init__(self, items: Iterator[T], response: Any) -> None:
        self._items = items
        self._response = response

    def __iter__(self) -> Iterator[T]:
        return self._items

    def close(self) -> None:
        from docker.types import CancellableStream

        # CancellableStream.close finds the response's socket and shuts it
        # down: the thread blocked reading it returns at once.
        with contextlib.suppress(Exception):  # already closed, or no socket (SSH)
            CancellableStream(self._items, self._response).close()
        with contextlib.suppress(Exception):
            self._response.close()


def _close_quietly(stream: Stream[Any]) -> None:
    with contextlib.suppress(Exception):  # already closed, or no socket (SSH)
        stream.close()


class StreamThread(Generic[T]):
    """A thread that opens a stream and hands each item to ``on_item``.

    ``open_stream`` runs on the thread (it talks to the engine). ``on_item``
    runs on the thread too; an exception from it ends the stream like a read
    error. ``on_end(error)`` is called once the stream ended by itself (not
    when :meth:`close` ended it): ``error`` is None when the engine closed it.
    """

    def __init__(
        self,
        open_stream: Callable[[], Stream[T]],
        on_item: Callable[[T], None],
        *,
        name: str,
        on_end: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._open = open_stream
        self._on_item = on_item
        self._on_end = on_end
        self._lock = threading.Lock()
        self._stream: Stream[T] | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        """Set once the engine accepted the request (the stream is open)."""
        self.settled = threading.Event()
        """Set once connected, or once the attempt failed."""
        self.error: BaseException | None = None
        """Why the stream ended by itself (None while it runs, when the engine
        closed it cleanly, or when :meth:`close` ended it)."""
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> StreamThread[T]:
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def stopped(self) -> bool:
        """:meth:`close` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop reading and close the stream; never blocks, idempotent."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _close_quietly(stream)

    def join(self, timeout: float | None = None) -> None:
        if self.thread.ident is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            stream = self._open()
            with self._lock:
                self._stream = stream
            # close() sets the flag before it looks for the stream, so either
            # it saw the stream (and closed it) or we see the flag here.
            if self._stop.is_set():
                _close_quietly(stream)
                return
            self.connected.set()
            self.settled.set()
            for item in stream:
                if self._stop.is_set():
                    break
                self._on_item(item)
        except BaseException as exc:
            error = exc
        finally:
            self.settled.set()
            if not self._stop.is_set():
                self.error = error
                if self._on_end is not None:
                    self._on_end(error)


@dataclass(frozen=True)
class _End:
    error: BaseException | None


async def stream_items(
    open_stream: Callable[[], Stream[T]],
    *,
    name: str,
    maxsize: int,
    wrap_error: Callable[[BaseException], BaseException] = lambda exc: exc,
) -> AsyncGenerator[T, None]:
    """The items of a stream read by a :class:`StreamThread`, on the event loop.

    Bounded memory: the thread waits while ``maxsize`` items are queued. The
    iteration ends when the stream does; an error of the stream (or of its
    opener) is raised here, through ``wrap_error``. The stream is closed as
    soon as the consumer stops (break, cancel, error): iterate inside
    ``contextlib.aclosing`` so that happens at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize=maxsize)
    stopped = threading.Event()

    def put(item: T | _End) -> None:
        """From the thread: queue ``item``, waiting while the queue is full,
        giving up once the consumer has gone."""
        if stopped.is_set():
            return
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stopped.is_set():
            try:
                fut.result(timeout=0.5)
                return
            except TimeoutError:
                continue
            except Exception:  # the loop is closed
                return
        fut.cancel()

    reader = StreamThread(
        open_stream,
        put,
        name=name,
        on_end=lambda error: put(_End(None if error is None else wrap_error(error))),
    ).start()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stopped.set()
        reader.close()
