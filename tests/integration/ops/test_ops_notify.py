"""An operation reaches the team: ``emergency-limit`` on the real stack posts
a StackOperation alert to its Alertmanager (who, from where, the result),
and Alertmanager delivers it to the alert sink's webhook."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import pytest

from console.core.ops import run_op
from console.core.stack import monitoring_ports

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


async def test_emergency_limit_is_notified_to_alertmanager_and_the_team(stack: Any) -> None:
    ctx = stack.op_context()
    user = stack.env.get("MONITORING_USER") or "stackdeck"
    auth = (user, stack.env["MONITORING_PASSWORD"])
    ports = monitoring_ports({**stack.env, **os.environ}, stack.http_port)
    am = f"http://127.0.0.1:{ports['ALERTMANAGER_PORT']}"
    sink = f"http://127.0.0.1:{ports['ALERT_SINK_PORT']}"
    events = [e async for e in run_op("emergency-limit", ctx, state="on", ttl=60)]
    assert events[-1].status == "done", events[-1]
    op_id = events[0].data["op_id"]
    http = httpx.AsyncClient()
    try:
        deadline = time.monotonic() + 20
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            r = await http.get(
                f"{am}/api/v2/alerts", params={"filter": f'op_id="{op_id}"'}, auth=auth, timeout=5
            )
            r.raise_for_status()
            found = r.json()
            await asyncio.sleep(0.5)
        assert found, "no StackOperation alert in Alertmanager"
        labels = found[0]["labels"]
        assert labels["alertname"] == "StackOperation"
        assert (labels["op"], labels["result"], labels["severity"]) == (
            "emergency-limit",
            "ok",
            "info",
        )
        assert labels["operator"] == ctx.operator.user
        assert labels["from"] == (ctx.operator.ssh_client or "local")
        assert "state=on" in found[0]["annotations"]["params"]
        # Delivered after Alertmanager's group wait (ALERT_GROUP_WAIT, 30 s by default).
        deadline = time.monotonic() + 90
        hook = None
        while hook is None and time.monotonic() < deadline:
            m = (await http.get(f"{sink}/messages", auth=auth, timeout=5)).json()
            hook = next(
                (w for w in m["webhooks"] if w["channel"] == "generic" and op_id in str(w["body"])),
                None,
            )
            await asyncio.sleep(1)
        assert hook is not None, "the notice did not reach the team's webhook"
        # the group may hold other operations' notices: this one is among its alerts
        mine = [a for a in hook["body"]["alerts"] if a["labels"].get("op_id") == op_id]
        assert mine and mine[0]["labels"]["op"] == "emergency-limit", hook["body"]["alerts"]
    finally:
        await http.aclose()
        done = [e async for e in run_op("emergency-limit", ctx, state="off")]
        assert done[-1].status == "done"
