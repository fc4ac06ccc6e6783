"""What the events source recalls at start of the time before it: each
container's ``docker inspect`` (recorded from a real engine,
``data/events_inspect.json``, trimmed to the fields read) and the audit log,
merged with what the engine's event buffer still replays. Fixed clock."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core.models import EngineEvent
from console.core.sources.docker.events import (
    engine_event,
    merge_timeline,
    recall_events,
    recalled_from_inspect,
)

DATA = Path(__file__).parent / "data"
START = datetime(2026, 12, 7, 2, 25, 0, tzinfo=UTC)
"""The console's start (the fixed clock)."""
SINCE = START - timedelta(seconds=900)
"""The look-back: 15 minutes."""


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-12-07T{text}+00:00")


@pytest.fixture
def inspected() -> dict[str, Any]:
    return json.loads((DATA / "events_inspect.json").read_text(encoding="utf-8"))


def rows(events: list[EngineEvent]) -> list[tuple[str, str, str, str | None]]:
    return [
        (e.at.strftime("%H:%M:%S"), e.service or e.container, e.action, e.detail) for e in events
    ]


def test_a_killed_container_recalls_its_creation_start_and_exit(inspected: dict[str, Any]) -> None:
    events = recalled_from_inspect(inspected["exited_killed"], since=SINCE, until=START)
    assert rows(events) == [
        ("02:21:56", "market-sim", "create", None),
        ("02:23:19", "market-sim", "start", None),
        ("02:24:07", "market-sim", "die", "exit 137"),
    ]
    assert all(e.before_start and e.origin == "inspect" for e in events)
    assert {e.container for e in events} == {"sdh1_market_sim_prod"}


def test_a_container_started_again_has_lost_its_exit_code(inspected: dict[str, Any]) -> None:
    """A start resets ``State.ExitCode`` to 0: the earlier exit is shown without a code."""
    attrs = inspected["running_started_again"]
    assert attrs["State"]["ExitCode"] == 0
    events = recalled_from_inspect(attrs, since=SINCE, until=START)
    assert rows(events) == [
        ("02:21:56", "market-sim", "create", None),
        ("02:24:07", "market-sim", "die", None),
        ("02:24:15", "market-sim", "start", None),
    ]


def test_a_container_never_stopped_has_no_exit(inspected: dict[str, Any]) -> None:
    events = recalled_from_inspect(inspected["running_once"], since=SINCE, until=START)
    assert [e.action for e in events] == ["create", "start"]
    stopped = recalled_from_inspect(inspected["exited_stopped"], since=SINCE, until=START)
    assert rows(stopped)[-1] == ("02:22:49", "prometheus", "die", "exit 0")


def test_oom_kill_and_policy_restarts_are_told(inspected: dict[str, Any]) -> None:
    attrs = copy.deepcopy(inspected["exited_killed"])
    attrs["State"]["OOMKilled"] = True
    attrs["RestartCount"] = 3
    events = {e.action: e.detail for e in recalled_from_inspect(attrs, since=SINCE, until=START)}
    assert events["die"] == "exit 137 · OOM killed"
    assert events["start"] == "restarted 3x by policy"


def test_only_the_look_back_is_recalled(inspected: dict[str, Any]) -> None:
    attrs = inspected["running_started_again"]
    late = recalled_from_inspect(attrs, since=at("02:22:00"), until=START)
    assert [e.action for e in late] == ["die", "start"]  # created 02:21:56: before the look-back
    early = recalled_from_inspect(attrs, since=SINCE, until=at("02:24:10"))
    assert [e.action for e in early] == ["create", "die"]  # started 02:24:15: after the start
    assert recalled_from_inspect(None, since=SINCE, until=START) == []


def audit_line(at_: str, event: str, op: str, op_id: str, **extra: Any) -> str:
    record = {
        "at": f"2026-12-07T{at_}+00:00",
        "event": event,
        "op": op,
        "op_id": op_id,
        "user": "alice",
        "ssh_client": "10.0.0.7 5022 22",
        "host": "prod-host",
        "pid": 4242,
        "read_only": False,
        "params": extra.pop("params", {}),
        **extra,
    }
    return json.dumps(record, sort_keys=True)


def write_audit(state_dir: Path) -> None:
    lines = [
        audit_line("02:05:00", "start", "vacuum", "v1", params={"tables": ["prices"]}),
        audit_line("02:06:00", "end", "vacuum", "v1", result="ok"),
        audit_line("02:21:40", "start", "deploy", "d1", params={"version": "v2.0.0"}),
        audit_line("02:21:58", "start", "status", "s1"),  # read-only: not a timeline entry
        audit_line("02:22:30", "end", "deploy", "d1", result="ok"),
        audit_line("02:23:10", "start", "rollback", "r1", params={}),
        audit_line("02:23:50", "end", "rollback", "r1", result="ok"),
        audit_line("02:25:30", "start", "cache-flush", "c1", params={"prefix": "cache:"}),
    ]
    (state_dir / "audit.log").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_recall_merges_containers_and_operations_in_time_order(
    inspected: dict[str, Any], tmp_path: Path
) -> None:
    write_audit(tmp_path)
    events = recall_events(
        [inspected["exited_stopped"], inspected["running_started_again"]],
        tmp_path,
        since=SINCE,
        until=START,
    )
    assert rows(events) == [
        ("02:21:40", "stackdeck", "deploy", "v2.0.0 (blue-green) by alice: ok"),
        ("02:21:56", "market-sim", "create", None),
        ("02:22:22", "prometheus", "create", None),
        ("02:22:24", "prometheus", "start", None),
        ("02:22:49", "prometheus", "die", "exit 0"),
        ("02:23:10", "stackdeck", "rollback", "to the previous colour by alice: ok"),
        ("02:24:07", "market-sim", "die", None),
        ("02:24:15", "market-sim", "start", None),
    ]
    # the vacuum (02:05) is older than the look-back, the cache flush (02:25:30) after the start
    assert all(e.before_start for e in events)
    assert {e.origin for e in events if e.container == "stackdeck"} == {"audit"}


def streamed(raw_time: str, action: str, name: str = "sdh1_market_sim_prod") -> EngineEvent:
    """An event as the engine's buffer replays it, marked as the source marks it."""
    nano = int(at(raw_time).timestamp() * 1e9)
    attrs = {"name": name, "com.docker.compose.service": "market-sim", "exitCode": "137"}
    event = engine_event(
        {"Type": "container", "Action": action, "timeNano": nano, "Actor": {"Attributes": attrs}}
    )
    assert event is not None
    return event.model_copy(update={"before_start": event.at < START})


def test_merge_keeps_the_engine_event_of_a_recalled_one(inspected: dict[str, Any]) -> None:
    recalled = recalled_from_inspect(inspected["exited_killed"], since=SINCE, until=START)
    # The buffer still holds the die (stamped 3 ms after FinishedAt), plus a
    # live start after the console started.
    buffer = [streamed("02:24:07.052", "die"), streamed("02:25:04", "start")]
    merged = merge_timeline(recalled, buffer, limit=100)
    assert [(e.action, e.origin, e.before_start) for e in merged] == [
        ("create", "inspect", True),
        ("start", "inspect", True),
        ("die", "engine", True),
        ("start", "engine", False),
    ]
    assert merged[2].detail == "exit 137"


def test_merge_keeps_distinct_events_and_the_newest_within_the_limit(
    inspected: dict[str, Any],
) -> None:
    recalled = recalled_from_inspect(inspected["exited_killed"], since=SINCE, until=START)
    # a start 20 s away from the recalled one is another start
    buffer = [streamed("02:23:40", "start")]
    merged = merge_timeline(recalled, buffer, limit=100)
    assert [e.action for e in merged] == ["create", "start", "start", "die"]
    assert [e.action for e in merge_timeline(recalled, buffer, limit=2)] == ["start", "die"]
    assert merge_timeline(recalled, buffer, limit=0) == []
