"""The request deadline: a hung dependency becomes a 503, not a hung request."""

from __future__ import annotations

import asyncio
from typing import Any

from platform_services.api.middleware import DeadlineMiddleware


async def _call(app: Any, seconds: float) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await DeadlineMiddleware(app, seconds)({"type": "http"}, None, send)  # type: ignore[arg-type]
    return sent


async def test_a_request_that_does_not_answer_in_time_gets_503_with_retry_after() -> None:
    async def hung(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    sent = await _call(hung, 0.1)
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]
    assert b"not responding" in sent[1]["body"]


async def test_a_prompt_request_is_untouched() -> None:
    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await _call(quick, 5)
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"ok"
