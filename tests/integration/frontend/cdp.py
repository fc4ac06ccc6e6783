"""A small Chrome DevTools Protocol client for the browser tests.

One page target of a headless Chromium (compose/images/browser), driven over
its DevTools WebSocket with ``websockets``' synchronous client: commands are
JSON messages with an ``id``, answered by a message with the same ``id``;
events in between are ignored (the tests poll the page's state instead of
following events, with a deadline each). Only what the tests need: navigate,
evaluate JavaScript, capture a screenshot, toggle the cache.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

__all__ = ["VIEWPORT", "CdpError", "Page", "open_page"]

VIEWPORT = (1280, 800)
"""The page's viewport (CSS pixels = screenshot pixels)."""


class CdpError(AssertionError):
    """A command Chromium refused, an exception in the page, or a wait that ran out."""


class Page:
    """One page target: commands, JavaScript, waits with a deadline."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Send one command; its result (events received meanwhile are dropped)."""
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                break
            if message.get("id") != ident:
                continue
            if "error" in message:
                raise CdpError(f"{method}: {message['error']}")
            return message.get("result", {})
        raise CdpError(f"{method}: no answer within {timeout} s")

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript failed: {text}\n  in: {expression[:200]}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, bound_s: float = 30) -> Any:
        """Poll ``expression`` until it is truthy (its value), at most ``bound_s``."""
        deadline = time.monotonic() + bound_s
        value: Any = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise CdpError(f"{what}: not within {bound_s} s (last value {value!r})")

    def navigate(self, url: str, bound_s: float = 30) -> None:
        """Load ``url`` and wait until its document has loaded. The old
        document is marked first, so a reload of the same address does not
        pass for loaded before the new document is there."""
        self.evaluate("window.__cdpLeaving = true")
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        self.wait_for(
            f"!window.__cdpLeaving && location.href === {json.dumps(url)}"
            " && document.readyState === 'complete'",
            f"{url} loaded",
            bound_s,
        )

    def screenshot(self) -> bytes:
        """The viewport as PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return base64.b64decode(data)


def _page_ws_url(devtools: str, bound_s: float = 60) -> str:
    """The DevTools WebSocket address of Chromium's first page target, on the
    published port (Chromium names its own 127.0.0.1:9222 in the address)."""
    deadline = time.monotonic() + bound_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            targets = httpx.get(f"{devtools}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                path = pages[0]["webSocketDebuggerUrl"].split("/devtools/", 1)[1]
                return devtools.replace("http://", "ws://") + "/devtools/" + path
            last = f"no page target in {targets}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.25)
    raise CdpError(f"Chromium's DevTools endpoint {devtools} did not answer in {bound_s} s: {last}")


@contextmanager
def open_page(devtools: str) -> Iterator[Page]:
    """The first page of the Chromium whose DevTools HTTP endpoint is ``devtools``."""
    with connect(_page_ws_url(devtools), open_timeout=10, max_size=32 * 1024 * 1024) as ws:
        page = Page(ws)
        page.call("Page.enable")
        page.call("Runtime.enable")
        # A fixed viewport: the same layout and screenshot size on every machine.
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield page
