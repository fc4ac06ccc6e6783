"""Silences, the pure parts: the parameters refuse what Alertmanager or the
team cannot use, the matchers become Alertmanager's body, the list is the
current silences soonest-ending first, and a deploy's silence never holds a
deploy up when Alertmanager is away or slow (a real socket that refuses, and
one that never answers)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core.models import OpEvent
from console.core.ops import run_op
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import BadInput
from console.core.ops.events import Emitter
from console.core.ops.progress import Progress
from console.core.ops.silence import (
    DEPLOY_ALERTS,
    DEPLOY_TIMEOUT_S,
    created_by,
    current,
    rule_names,
    silence_expected,
    validate_silence,
)
from console.core.ops.table import OPERATIONS, SilenceExpireParams, SilenceParams, parse_params
from console.core.prom import silence_body

REPO = Path(__file__).resolve().parents[3]


def _params(**kw: Any) -> SilenceParams:
    values: dict[str, Any] = {"alertname": "ContainerHighCPU", "comment": "load test"}
    values.update(kw)
    return SilenceParams(**values)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("7d", 604800)]
)
def test_durations_from_a_minute_to_a_week(text: str, seconds: float) -> None:
    assert _params(duration=text).seconds == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("59s", "between 1 minute and 7 days"),
        ("8d", "between 1 minute and 7 days"),
        ("0", "between 1 minute and 7 days"),
        ("soon", "like 30m, 2h or 1d"),
        ("", "like 30m, 2h or 1d"),
        ("-5m", "like 30m, 2h or 1d"),
    ],
)
def test_durations_outside_are_refused_with_the_field(text: str, why: str) -> None:
    with pytest.raises(BadInput, match=why) as refused:
        _params(duration=text)
    assert refused.value.field == "duration"


def test_matchers_in_every_form_become_sorted_label_value_pairs() -> None:
    want = ["colour=green", "service=backend_green"]
    assert _params(matchers=["service=backend_green", "colour=green"]).matchers == want
    assert _params(matchers="service=backend_green, colour=green").matchers == want
    assert _params(matchers={"service": "backend_green", "colour": "green"}).matchers == want
    assert _params(matchers=None).matchers == []
    labels = _params(matchers=want).labels()
    assert labels == {
        "alertname": "ContainerHighCPU",
        "colour": "green",
        "service": "backend_green",
    }


@pytest.mark.parametrize(
    ("matchers", "why"),
    [
        (["service"], "not a LABEL=VALUE matcher"),
        (["=x"], "not a LABEL=VALUE matcher"),
        (["service="], "not a LABEL=VALUE matcher"),
        (["1x=y"], "not a LABEL=VALUE matcher"),
        (["alertname=Other"], "given on its own"),
        (["service=a", "service=b"], "given twice"),
        (["service=a\x1b[2J"], "plain text"),
        ([f"service={'x' * 201}"], "plain text"),
    ],
)
def test_bad_matchers_are_refused(matchers: list[str], why: str) -> None:
    with pytest.raises(BadInput, match=why) as refused:
        _params(matchers=matchers)
    assert refused.value.field == "matchers"


@pytest.mark.parametrize("comment", ["", "   ", None, "two\nlines", "x" * 501])
def test_the_comment_is_required_and_one_line(comment: Any) -> None:
    with pytest.raises(BadInput) as refused:
        _params(comment=comment)
    assert refused.value.field == "comment"


def test_the_comment_is_required_by_the_table_too() -> None:
    with pytest.raises(BadInput, match="comment is required"):
        parse_params(OPERATIONS["silence"], {"alertname": "ContainerHighCPU"})


@pytest.mark.parametrize("name", ["", "High CPU", "x;rm", "1abc"])
def test_alertname_has_a_pattern(name: str) -> None:
    with pytest.raises(BadInput, match="not an alert name") as refused:
        _params(alertname=name)
    assert refused.value.field == "alertname"


def test_silence_ids_are_uuids() -> None:
    good = "0B8D5C3E-6A3F-4A8E-9D0E-2F6F1F0A9B11"
    assert SilenceExpireParams(silence_id=good).silence_id == good.lower()
    with pytest.raises(BadInput, match="not a silence id"):
        SilenceExpireParams(silence_id="../../api/v2/status")


def test_the_silence_operations_need_no_lock_but_are_refused_read_only() -> None:
    for name in ("silence", "silence-expire"):
        spec = OPERATIONS[name]
        assert spec.writes and not spec.takes_lock and not spec.destructive
    assert not OPERATIONS["silence-list"].writes


def _ctx(tmp_path: Path, **kw: Any) -> OpContext:
    values: dict[str, Any] = {
        "stack": "unitx",
        "repo": REPO,
        "state_dir": tmp_path / "state",
        "run_dir": tmp_path / "run",
        "base_url": "http://127.0.0.1:9",
        "env": {"MONITORING_PASSWORD": "pw-unit-0123456789"},
        "operator": Operator(user="alice", ssh_client="192.0.2.7", host="ops1", pid=1),
    }
    values.update(kw)
    return OpContext(**values)


async def test_the_alert_must_be_one_of_the_stacks_rules(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert await validate_silence(ctx, _params()) == _params()
    assert await validate_silence(ctx, _params(alertname="StackOperation"))
    with pytest.raises(BadInput, match="no alert rule named HighCPU; the stack's alerts: "):
        await validate_silence(ctx, _params(alertname="HighCPU"))


def test_the_deploys_alerts_are_rules_of_the_stack() -> None:
    names = rule_names(REPO)
    assert names is not None and len(names) >= 10
    assert set(DEPLOY_ALERTS) <= set(names)


def test_created_by_names_user_host_and_ssh_client(tmp_path: Path) -> None:
    assert created_by(_ctx(tmp_path)) == "alice@ops1 from 192.0.2.7"
    local = Operator(user="bob", ssh_client=None, host="ops1", pid=1)
    assert created_by(_ctx(tmp_path, operator=local)) == "bob@ops1"


def test_the_alertmanager_body() -> None:
    ends = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    starts = ends - timedelta(hours=2)
    body = silence_body(
        {"service": "cpu_burn", "alertname": "ContainerHighCPU"},
        ends_at=ends,
        starts_at=starts,
        created_by="alice@ops1",
        comment="load test",
    )
    assert body == {
        "matchers": [
            {"name": "alertname", "value": "ContainerHighCPU", "isRegex": False, "isEqual": True},
            {"name": "service", "value": "cpu_burn", "isRegex": False, "isEqual": True},
        ],
        "startsAt": "2026-12-02T16:00:00+00:00",
        "endsAt": "2026-12-02T18:00:00+00:00",
        "createdBy": "alice@ops1",
        "comment": "load test",
    }
    several = silence_body(
        {"alertname": ["B.x", "A"], "colour": "green"}, ends_at=ends, created_by="a", comment="c"
    )
    assert several["matchers"][0] == {
        "name": "alertname",
        "value": r"A|B\.x",
        "isRegex": True,
        "isEqual": True,
    }
    one = silence_body({"alertname": ["A"]}, ends_at=ends, created_by="a", comment="c")
    assert one["matchers"][0]["isRegex"] is False


def test_the_list_is_active_and_pending_soonest_first() -> None:
    def raw(i: str, state: str, ends: str) -> dict[str, Any]:
        return {
            "id": i,
            "status": {"state": state},
            "matchers": [{"name": "alertname", "value": "X", "isRegex": False, "isEqual": True}],
            "startsAt": "2026-12-02T10:00:00.000Z",
            "endsAt": ends,
            "createdBy": "alice@ops1",
            "comment": "why",
        }

    got = current(
        [
            raw("late", "active", "2026-12-02T20:00:00.000Z"),
            raw("gone", "expired", "2026-12-02T09:00:00.000Z"),
            raw("soon", "pending", "2026-12-02T12:00:00.000Z"),
        ]
    )
    assert [s.id for s in got] == ["soon", "late"]
    assert got[0].matchers == "alertname=X" and got[0].state == "pending"
    assert got[0].ends_at == datetime(2026, 12, 2, 12, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _collect() -> tuple[Progress, list[OpEvent]]:
    seen: list[OpEvent] = []
    return Progress(Emitter("deploy"), seen.append), seen


async def test_a_deploys_silence_warns_and_goes_on_when_alertmanager_refuses(
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path, alertmanager_url=f"http://127.0.0.1:{_free_port()}")
    progress, seen = _collect()
    handle = await silence_expected(
        ctx, progress, op="deploy", op_id="op1", colour="green", version="v2", seconds=60
    )
    assert handle.silence_id is None
    assert [e.status for e in seen] == ["warn"]
    assert "alerts of green not silenced" in seen[0].message
    assert "not reachable" in seen[0].message and "the deploy goes on" in seen[0].message
    await handle.expire(progress)  # nothing to expire: no call, no event
    assert len(seen) == 1


async def test_a_deploys_silence_is_bounded_when_alertmanager_hangs(tmp_path: Path) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(60)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ctx = _ctx(tmp_path, alertmanager_url=f"http://127.0.0.1:{port}")
        progress, seen = _collect()
        t0 = time.monotonic()
        handle = await silence_expected(
            ctx, progress, op="deploy", op_id="op1", colour="green", version="v2", seconds=60
        )
        took = time.monotonic() - t0
    finally:
        server.close()
    assert handle.silence_id is None
    assert took < DEPLOY_TIMEOUT_S + 2, took
    assert seen[0].status == "warn" and "timed out" in seen[0].message


async def test_without_a_credential_a_deploy_is_not_held_and_the_op_fails_clearly(
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path, env={}, alertmanager_url=f"http://127.0.0.1:{_free_port()}")
    progress, seen = _collect()
    handle = await silence_expected(
        ctx, progress, op="deploy", op_id="op1", colour="blue", version="v2", seconds=60
    )
    assert handle.silence_id is None and "MONITORING_PASSWORD" in seen[0].message
    events = [e async for e in run_op("silence", ctx, alertname="ServiceDown", comment="x")]
    assert events[-1].status == "fail" and events[-1].data["code"] == "failed"
    assert "no monitoring credential (MONITORING_PASSWORD in .env)" in events[-1].message
    assert "traceback" not in events[-1].data


async def test_an_unreachable_alertmanager_is_one_clear_failure(tmp_path: Path) -> None:
    port = _free_port()
    ctx = _ctx(tmp_path, alertmanager_url=f"http://127.0.0.1:{port}")
    for name, params in (
        ("silence", {"alertname": "ServiceDown", "comment": "x"}),
        ("silence-list", {}),
        ("silence-expire", {"silence_id": "0b8d5c3e-6a3f-4a8e-9d0e-2f6f1f0a9b11"}),
    ):
        events = [e async for e in run_op(name, ctx, **params)]
        final = events[-1]
        assert final.status == "fail", (name, final)
        assert final.message == (
            f"Alertmanager at 127.0.0.1:{port} not reachable (connection refused)"
        ), name
        assert "traceback" not in final.data
