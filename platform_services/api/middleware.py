"""Pure ASGI middleware: security headers, request metrics, body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming and background tasks are
untouched and the cost per request stays a few function calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platform_services import telemetry

log = logging.getLogger(__name__)

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "interest-cohort=()",
}
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class SecurityHeadersMiddleware:
    """Adds the security headers to every response, including errors.

    Also the last line of defence: an unhandled exception becomes a JSON 500
    (with the headers) instead of a bare text response, and is logged.
    """

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if self.docs_paths and path.startswith(self.docs_paths):
                    headers["Content-Security-Policy"] = DOCS_CSP
                if path.startswith("/api/") or path == "/metrics":
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": path}})
            if started:
                raise
            await _send_json(send_with_headers, 500, {"detail": "internal server error"})


class MetricsMiddleware:
    """Observes ``http_request_duration_seconds{method, route, status}``.

    The route label is the matched route's template (``/api/health/database``),
    never the raw path, so the label set stays bounded; unmatched paths are
    ``unmatched``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            telemetry.REQUEST_DURATION.labels(
                scope.get("method", ""), template, str(status)
            ).observe(time.perf_counter() - started)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing
    re-raises it untouched and the exception middleware turns it into a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body too large (limit {max_bytes} bytes)")


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length"})
                    return
        if declared is not None and declared > self.max_bytes:
            await _send_json(send, 413, self._body())
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _send_json(send, 413, self._body())

    def _body(self) -> dict[str, Any]:
        return {"detail": f"request body too large (limit {self.max_bytes} bytes)"}


class DeadlineMiddleware:
    """Answers 503 (with Retry-After) when a request has not started its
    response within ``seconds``: a database cut off the network or a hung
    dependency turns into a clear error, never a request that hangs until the
    client gives up. A response already started is left to finish."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            await _send_json(
                send,
                503,
                {
                    "detail": f"no answer within {self.seconds:g} s: a dependency "
                    "(database, cache or provider) is not responding; retry shortly"
                },
                headers=[(b"retry-after", b"5")],
            )
