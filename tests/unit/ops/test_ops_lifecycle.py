"""The two pieces every deploy and rollback is made of (pure logic, no stack):
the progress channel (:func:`run_steps`: a step reports, returns its result,
events stream live and in order, cancellation waits for the clean-up) and the
operation's record (:class:`OpRecord`: journal + history line + timing +
result)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from console.core.models import OpEvent
from console.core.ops.audit import read_jsonl
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import OpFailed
from console.core.ops.events import Emitter
from console.core.ops.journal import Journal
from console.core.ops.lifecycle import OpRecord
from console.core.ops.progress import Progress, run_steps

REPO = Path(__file__).resolve().parents[3]


def _ctx(tmp_path: Path) -> OpContext:
    op = Operator(user="unit", ssh_client="192.0.2.1", host="h", pid=4242, pid_start=7)
    return OpContext(
        stack="unitl",
        repo=REPO,
        state_dir=tmp_path / "state",
        run_dir=tmp_path / "run",
        base_url="http://127.0.0.1:9",
        env={"POSTGRES_PASSWORD": "pw-Secret-0123456789abcdef"},
        operator=op,
    )


async def _step_with_result(progress: Progress) -> int:
    progress.start("count", "counting")
    await asyncio.sleep(0)
    progress.ok("count", "counted")
    return 42


async def test_a_step_returns_its_result_and_events_keep_their_order() -> None:
    got: list[int] = []

    async def body(progress: Progress) -> None:
        progress.info("prepare", "first")
        got.append(await _step_with_result(progress))
        progress.done("finished", n=got[-1])

    events = [e async for e in run_steps(Emitter("unit"), body)]
    assert [(e.op, e.step, e.status, e.message) for e in events] == [
        ("unit", "prepare", "info", "first"),
        ("unit", "count", "start", "counting"),
        ("unit", "count", "ok", "counted"),
        ("unit", "result", "done", "finished"),
    ]
    assert got == [42]
    assert events[-1].data == {"n": 42}


async def test_events_stream_live_while_the_step_still_runs() -> None:
    """The consumer sees an event before the step that reported it goes on."""
    release = asyncio.Event()

    async def body(progress: Progress) -> None:
        progress.start("bake", "baking")
        await release.wait()
        progress.ok("bake", "baked")

    stream = run_steps(Emitter("unit"), body)
    first = await asyncio.wait_for(anext(stream), 5)
    assert (first.step, first.status) == ("bake", "start")
    release.set()
    rest = [e.status async for e in stream]
    assert rest == ["ok"]


async def test_the_body_s_error_comes_after_the_events_it_reported() -> None:
    async def body(progress: Progress) -> None:
        progress.fail("smoke", "1 check failed")
        raise OpFailed("smoke test failed", step="smoke")

    seen: list[OpEvent] = []
    with pytest.raises(OpFailed, match="smoke test failed"):
        async for event in run_steps(Emitter("unit"), body):
            seen.append(event)
    assert [(e.step, e.status) for e in seen] == [("smoke", "fail")]


async def test_redaction_applies_to_reported_events() -> None:
    async def body(progress: Progress) -> None:
        progress.warn("x", "password=hunter2 leaked")

    emitter = Emitter("unit", lambda text: text.replace("hunter2", "***"))
    events = [e async for e in run_steps(emitter, body)]
    assert events[0].message == "password=*** leaked"


async def test_relay_forwards_a_generator_of_events() -> None:
    emitter = Emitter("unit")

    async def gen() -> Any:
        yield emitter.start("wait-healthy", "waiting")
        yield emitter.ok("wait-healthy", "healthy")

    async def body(progress: Progress) -> None:
        await progress.relay(gen())

    assert [e.status async for e in run_steps(emitter, body)] == ["start", "ok"]


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_cancelling_the_consumer_waits_for_the_body_s_clean_up(how: str) -> None:
    """Quit / SIGHUP cancels the consumer: the body is cancelled where it
    waits, and its clean-up (undo, journal, history) finishes before the
    cancellation goes on."""
    cleaned: list[str] = []
    started = asyncio.Event()

    async def body(progress: Progress) -> None:
        progress.start("bake", "baking")
        try:
            started.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # an undo that takes a moment
            cleaned.append("undone")
            raise

    stream = run_steps(Emitter("unit"), body)

    if how == "cancel":

        async def consume() -> None:
            async for _event in stream:
                pass

        task = asyncio.ensure_future(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await anext(stream)
        await started.wait()
        await stream.aclose()  # type: ignore[attr-defined]
    assert cleaned == ["undone"]


def test_the_record_of_a_success(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    record = OpRecord(ctx, "deploy", "op1")
    record.open(strategy="blue-green", version="v2", from_version="v1", colour="green")
    record.begin_journal(strategy="blue-green", version="v2", to_colour="green")
    record.step("switch", switch_started=True)
    record.mark(switched=True)
    record.note(backup_id="b1")
    duration = record.succeed()
    journal = Journal.load(ctx.journal_path)
    assert journal is not None
    assert journal["status"] == "done" and journal["id"] == "op1" and journal["op"] == "deploy"
    assert journal["pid"] == 4242 and journal["pid_start"] == 7 and journal["user"] == "unit"
    assert journal["switched"] and [s["step"] for s in journal["steps"]] == ["switch"]
    assert journal["duration_s"] == round(duration, 1)
    (line,) = read_jsonl(ctx.history_path)
    assert line["result"] == "ok" and line["id"] == "op1" and line["version"] == "v2"
    assert line["backup_id"] == "b1" and line["ssh_client"] == "192.0.2.1"
    assert line["started"] and line["finished"] and line["duration_s"] == round(duration, 1)


def test_the_record_of_a_failure(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    record = OpRecord(ctx, "deploy", "op2")
    record.open(strategy="blue-green", version="v3")
    record.begin_journal(strategy="blue-green", version="v3")
    notes = [("ok", "traffic switched back to blue (v1)")]
    record.fail(
        "rolled-back",
        "bake window failed: p95",
        history_reason="bake: bake window failed: p95",
        journal_status="failed",
        undo=notes,
        failed_step="bake",
    )
    journal = Journal.load(ctx.journal_path)
    assert journal is not None
    assert journal["status"] == "failed" and journal["reason"] == "bake window failed: p95"
    assert journal["undo"] == [list(n) for n in notes]
    (line,) = read_jsonl(ctx.history_path)
    assert line["result"] == "rolled-back" and line["failed_step"] == "bake"
    assert line["reason"] == "bake: bake window failed: p95" and "duration_s" in line


def test_an_untimed_failure_without_a_journal(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    record = OpRecord(ctx, "rollback", "op3")
    record.open(strategy="instant", version="v1")
    record.fail("failed", "cancelled at verify", timed=False)
    assert not ctx.journal_path.exists()
    (line,) = read_jsonl(ctx.history_path)
    assert line["result"] == "failed" and line["reason"] == "cancelled at verify"
    assert "duration_s" not in line and line["finished"]
