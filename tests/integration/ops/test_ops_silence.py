"""Silences on the real stack's Alertmanager.

- ``silence`` through the engine: Alertmanager holds it with the matchers,
  the operator as ``createdBy`` and the comment; ``silence list`` shows it;
  ``silence expire`` ends it; the audit log has both, with who and until;
- the CLI with Alertmanager stopped: one line on stderr, no traceback, exit 1;
- a blue-green deploy silences the new colour's expected alerts while it
  runs (seen in Alertmanager during the bake) and expires the silence when it
  ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any

import httpx
import pytest

from console.core.ops import run_op
from console.core.ops.silence import DEPLOY_ALERTS
from console.core.stack import monitoring_ports
from tests.integration.ops.ops_helpers import (
    cli_env,
    health,
    read_events_until,
    record_figure,
    start_cli,
    wait_healthy,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


def _am(stack: Any) -> httpx.Client:
    port = monitoring_ports({**stack.env, **os.environ}, stack.http_port)["ALERTMANAGER_PORT"]
    user = stack.env.get("MONITORING_USER") or "stackdeck"
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        auth=(user, stack.env["MONITORING_PASSWORD"]),
        timeout=10,
    )


def _silence(am: httpx.Client, silence_id: str) -> dict[str, Any]:
    r = am.get(f"/api/v2/silence/{silence_id}")
    r.raise_for_status()
    return dict(r.json())


def _audit(stack: Any, op_id: str) -> list[dict[str, Any]]:
    lines = (stack.state_dir / "audit.log").read_text().splitlines()
    return [rec for rec in map(json.loads, filter(None, lines)) if rec.get("op_id") == op_id]


def test_silence_add_list_expire_through_the_engine_and_the_audit(stack: Any) -> None:
    ctx = stack.op_context()
    comment = f"integration test {time.time():.0f}"

    async def op(name: str, **params: Any) -> list[Any]:
        return [e async for e in run_op(name, ctx, **params)]

    added = asyncio.run(
        op(
            "silence",
            alertname="ContainerHighCPU",
            matchers=["service=cpu_burn", "colour=green"],
            duration="30m",
            comment=comment,
        )
    )
    final = added[-1]
    assert final.status == "done", final
    sid = final.data["silence_id"]
    op_id = added[0].data["op_id"]
    who = f"{ctx.operator.user}@{ctx.operator.host}"
    with _am(stack) as am:
        got = _silence(am, sid)
        assert got["status"]["state"] == "active"
        assert {(m["name"], m["value"], m["isRegex"]) for m in got["matchers"]} == {
            ("alertname", "ContainerHighCPU", False),
            ("service", "cpu_burn", False),
            ("colour", "green", False),
        }
        assert got["createdBy"].startswith(who)
        assert got["comment"] == comment
        ends = got["endsAt"]

        listed = asyncio.run(op("silence-list"))
        assert listed[-1].status == "done"
        mine = [s for s in listed[-1].data["silences"] if s["id"] == sid]
        assert mine and mine[0]["comment"] == comment and mine[0]["created_by"].startswith(who)
        assert "alertname=ContainerHighCPU" in mine[0]["matchers"]
        line = next(e for e in listed if e.step == "silence" and e.data.get("silence_id") == sid)
        assert "until" in line.message and comment in line.message

        expired = asyncio.run(op("silence-expire", silence_id=sid))
        assert expired[-1].status == "done", expired[-1]
        assert _silence(am, sid)["status"]["state"] == "expired"
        listed = asyncio.run(op("silence-list"))
        assert sid not in {s["id"] for s in listed[-1].data["silences"]}

    audit = _audit(stack, op_id)
    assert [r["event"] for r in audit] == ["start", "end"]
    end = audit[-1]
    assert end["result"] == "ok" and end["user"] == ctx.operator.user
    assert end["host"] == ctx.operator.host
    assert end["params"]["comment"] == comment
    assert end["params"]["matchers"] == ["colour=green", "service=cpu_burn"]
    assert sid in end["message"] and comment in end["message"]
    assert "alertname=ContainerHighCPU, colour=green, service=cpu_burn" in end["message"]
    assert f"until {ends[:19]}Z" in end["message"]  # the end Alertmanager holds
    expire_audit = _audit(stack, expired[0].data["op_id"])
    assert expire_audit[-1]["result"] == "ok" and sid in expire_audit[-1]["message"]
    assert "until" in expire_audit[-1]["message"] and expire_audit[-1]["user"] == ctx.operator.user


def _wait_ready(am: httpx.Client, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if am.get("/-/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("Alertmanager not ready again")


def test_the_cli_says_in_one_line_that_alertmanager_is_down(stack: Any) -> None:
    container = stack.container("alertmanager")
    port = monitoring_ports({**stack.env, **os.environ}, stack.http_port)["ALERTMANAGER_PORT"]
    subprocess.run(["docker", "stop", "-t", "5", container], check=True, capture_output=True)
    try:
        for args in (
            ["silence", "add", "ServiceDown", "--duration", "5m", "--comment", "down test"],
            ["silence", "list"],
        ):
            r = subprocess.run(
                stack.cli_argv(*args, json_output=False),
                env=cli_env(stack),
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1, r.stderr
            assert lines[0].startswith(
                f"stackdeck {'silence-list' if 'list' in args else 'silence'}: "
                f"Alertmanager at 127.0.0.1:{port} not reachable"
            ), lines
            assert "Traceback" not in r.stdout + r.stderr
    finally:
        subprocess.run(["docker", "start", container], check=True, capture_output=True)
        with _am(stack) as am:
            _wait_ready(am)


def test_a_deploy_silences_the_new_colours_alerts_while_it_runs(stack: Any) -> None:
    wait_healthy(stack)
    version = health(stack)["version"]
    t0 = time.monotonic()
    proc = start_cli(
        stack,
        "deploy",
        "--version",
        version,
        "--force",
        "--services",
        "backend",
        "--bake-seconds",
        "8",
    )
    try:
        seen = read_events_until(proc, lambda e: e["step"] == "silence", timeout=120)
        made = seen[-1]
        assert made["status"] == "ok", made
        sid = made["data"]["silence_id"]
        colour = made["data"]["colour"]
        op_id = seen[0]["data"]["op_id"]
        seen += read_events_until(
            proc, lambda e: e["step"] == "bake" and e["status"] == "start", timeout=300
        )
        with _am(stack) as am:
            during = _silence(am, sid)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    assert proc.returncode == 0, err
    events = seen + [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert during["status"]["state"] == "active"
    matchers = {m["name"]: m for m in during["matchers"]}
    assert matchers["colour"]["value"] == colour and not matchers["colour"]["isRegex"]
    assert matchers["alertname"]["isRegex"]
    assert set(matchers["alertname"]["value"].split("|")) == set(DEPLOY_ALERTS)
    assert during["comment"] == f"deploy {version} to {colour} (op {op_id})"
    assert during["createdBy"].startswith(stack.op_context().operator.user + "@")
    # started before the new colour, expired before the deploy said done
    steps = [(e["step"], e["status"]) for e in events]
    assert steps.index(("silence", "ok")) < steps.index(("start-idle", "start"))
    expire = next(
        i
        for i, e in enumerate(events)
        if e["step"] == "silence"
        and e["status"] == "ok"
        and e["message"] == f"expired silence {sid}"
    )
    assert events[expire]["data"]["silence_id"] == sid
    assert expire < steps.index(("result", "done"))
    with _am(stack) as am:
        assert _silence(am, sid)["status"]["state"] == "expired"
    history = (stack.state_dir / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["silence_id"] == sid
    record_figure("deploy_with_silence_s", round(time.monotonic() - t0, 1))
