"""A deploy and a rollback on the real stack are drawn on the charts and told
to the team: both are markers of the history the console reads (from the
audit log, whoever ran them: here the CLI), and both reach the alert sink
as StackOperation notices, the rollback's with the reason it was given."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from console.core.history import read_markers
from console.core.sources.prometheus import HistorySource
from console.core.stack import monitoring_ports
from tests.fault_versions import Fault, build_fault_version
from tests.integration.ops.ops_helpers import health, run_cli, wait_healthy

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

REASON = "p95 regression seen after the deploy"
BASE = "v1.0.0"
VERSIONS = ("v1.2.0-markers", "v1.2.1-markers")
"""Two plain versions (the real backend, no fault): the test deploys the one not serving."""


def _op_id(result: Any) -> str:
    return str(next(e["data"]["op_id"] for e in result.events if "op_id" in e.get("data", {})))


async def test_a_deploy_and_a_rollback_are_markers_and_notices(stack: Any) -> None:
    serving = wait_healthy(stack)["version"]
    version = VERSIONS[1] if serving == VERSIONS[0] else VERSIONS[0]
    build_fault_version(stack.backend_image, BASE, version, Fault())
    started = datetime.now(UTC) - timedelta(seconds=5)
    deploy = run_cli(
        stack, "deploy", "--version", version, "--services", "backend", "--bake-seconds", "2"
    )
    assert deploy.rc == 0, deploy.text()
    assert health(stack)["version"] == version
    rollback = run_cli(stack, "rollback", "--force", "--reason", REASON)
    assert rollback.rc == 0, rollback.text()
    assert health(stack)["version"] == serving
    deploy_id, rollback_id = _op_id(deploy), _op_id(rollback)

    # the markers, as the history source publishes them with its range
    settings = stack.settings()
    markers = {m.op_id: m for m in read_markers(settings.state_dir, started, datetime.now(UTC))}
    assert markers[deploy_id].op == "deploy" and markers[deploy_id].result == "ok"
    assert version in markers[deploy_id].label
    assert markers[rollback_id].op == "rollback" and markers[rollback_id].result == "ok"
    assert markers[deploy_id].at < markers[rollback_id].at
    source = HistorySource(settings)
    try:
        snapshot = await source.poll()
    finally:
        await source.aclose()
    assert snapshot is not None and snapshot.available, snapshot
    assert {deploy_id, rollback_id} <= {m.op_id for m in snapshot.markers}

    # the team's webhook gets both; the rollback's says why
    user = stack.env.get("MONITORING_USER") or "stackdeck"
    auth = (user, stack.env["MONITORING_PASSWORD"])
    sink = f"http://127.0.0.1:{monitoring_ports({**stack.env, **os.environ}, stack.http_port)['ALERT_SINK_PORT']}"
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120  # Alertmanager's group wait (30 s by default)
    async with httpx.AsyncClient(auth=auth, timeout=5) as http:
        while len(got) < 2 and time.monotonic() < deadline:
            for hook in (await http.get(f"{sink}/messages")).json()["webhooks"]:
                if hook["channel"] != "generic":
                    continue
                for alert in hook["body"].get("alerts", []):
                    op_id = alert["labels"].get("op_id")
                    if op_id in (deploy_id, rollback_id):
                        got[op_id] = alert
            await asyncio.sleep(1)
    assert set(got) == {deploy_id, rollback_id}, f"notices received: {sorted(got)}"
    assert got[deploy_id]["labels"]["op"] == "deploy"
    assert got[rollback_id]["labels"]["op"] == "rollback"
    assert REASON in got[rollback_id]["annotations"]["summary"]
    assert got[rollback_id]["labels"]["operator"] == stack.op_context().operator.user
