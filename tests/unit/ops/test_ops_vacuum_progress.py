"""A VACUUM's progress: ``pg_stat_progress_vacuum`` rows (and the waiting
state from ``pg_stat_activity``) parsed into :class:`VacuumProgress`, said
in words, and read back from the Operations log as the live line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from console.core.models import OpEvent, OpsLog, VacuumProgress
from console.core.ops.vacuum import parse_progress, waiting_progress
from console.ui.panels.operations import live_line, running_op

AT = datetime(2025, 3, 14, 14, 2, 11, tzinfo=UTC)


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "phase": "scanning heap",
        "heap_blks_total": 5678,
        "heap_blks_scanned": 1234,
        "heap_blks_vacuumed": 0,
        "index_vacuum_count": 0,
        "relation": "prices",
    }
    row.update(overrides)
    return row


def test_a_scanning_row_reads_blocks_of_total_with_the_percentage() -> None:
    progress = parse_progress(_row())
    assert progress == VacuumProgress(
        relation="prices", phase="scanning heap", heap_blks_total=5678, heap_blks_scanned=1234
    )
    assert progress.describe() == "scanning heap 1,234/5,678 blocks (21 %)"


def test_vacuuming_heap_counts_the_vacuumed_blocks_not_the_scanned() -> None:
    progress = parse_progress(
        _row(phase="vacuuming heap", heap_blks_scanned=5678, heap_blks_vacuumed=2839)
    )
    assert progress.describe() == "vacuuming heap 2,839/5,678 blocks (50 %)"


@pytest.mark.parametrize(
    ("phase", "passes", "said"),
    [
        ("vacuuming indexes", 0, "vacuuming indexes"),
        ("vacuuming indexes", 1, "vacuuming indexes · 1 index pass"),
        ("cleaning up indexes", 3, "cleaning up indexes · 3 index passes"),
        ("truncating heap", 0, "truncating heap"),
        ("performing final cleanup", 0, "performing final cleanup"),
    ],
)
def test_phases_without_block_counts_say_the_phase_and_index_passes(
    phase: str, passes: int, said: str
) -> None:
    assert parse_progress(_row(phase=phase, index_vacuum_count=passes)).describe() == said


def test_nulls_and_an_empty_table_never_divide_by_zero() -> None:
    progress = parse_progress(
        {
            "phase": "initializing",
            "heap_blks_total": None,
            "heap_blks_scanned": None,
            "heap_blks_vacuumed": None,
            "index_vacuum_count": None,
            "relation": None,
        }
    )
    assert progress.relation is None and progress.heap_blks_total == 0
    assert progress.describe() == "initializing"
    assert parse_progress(_row(heap_blks_total=0, heap_blks_scanned=0)).describe() == (
        "scanning heap"
    )


def test_the_percentage_never_passes_100() -> None:
    # the table grew while it was scanned: total is read at the start
    assert parse_progress(_row(heap_blks_scanned=6000)).describe().endswith("(100 %)")


def test_waiting_on_a_lock_names_the_lock_and_its_holders() -> None:
    row = {"wait_event_type": "Lock", "wait_event": "relation", "blockers": [4242, 4343]}
    progress = waiting_progress(row, "public.users")
    assert progress is not None and progress.waiting
    assert progress.relation == "public.users" and progress.blockers == (4242, 4343)
    assert progress.describe() == "waiting for a lock (relation) held by pids 4242, 4343"
    one = waiting_progress({**row, "blockers": [4242]}, "public.users")
    assert one is not None and one.describe() == "waiting for a lock (relation) held by pid 4242"


def test_a_session_busy_on_anything_but_a_lock_is_not_waiting() -> None:
    assert waiting_progress({"wait_event_type": "IO", "wait_event": "DataFileRead"}, "t") is None
    assert waiting_progress({"wait_event_type": None, "wait_event": None}, "t") is None


def _ev(step: str, status: str, message: str = "", op: str = "vacuum", **data: object) -> OpEvent:
    return OpEvent(at=AT, op=op, step=step, status=status, message=message, data=data)  # type: ignore[arg-type]


def _progress_event(**row: object) -> OpEvent:
    progress = parse_progress(_row(**row))
    return _ev("progress", "info", progress.describe(), progress=progress.model_dump(mode="json"))


def test_the_live_line_reads_the_running_vacuum_from_the_log() -> None:
    log = OpsLog()
    for event in (
        _ev("begin", "start", op="deploy", op_id="old"),
        _ev("result", "done", op="deploy"),
        _ev("begin", "start", op_id="a1b2c3d4e5f6"),
        _ev("vacuum", "start", "VACUUM (ANALYZE) ...", table="public.prices", pid=4242),
        _progress_event(heap_blks_scanned=100),
        _progress_event(heap_blks_scanned=1234),
    ):
        log = log.add(event)
    state = running_op(log, "vacuum")
    assert state is not None
    assert (state.op_id, state.target, state.session_pid) == ("a1b2c3d4e5f6", "public.prices", 4242)
    assert state.progress is not None and state.progress.heap_blks_scanned == 1234
    line = live_line(state, "c")
    assert line is not None
    assert line.plain == (
        "VACUUM (ANALYZE) public.prices · scanning heap 1,234/5,678 blocks (21 %) · c cancel"
    )
    assert running_op(log, None) is None


def test_a_hypertable_names_the_chunk_being_vacuumed() -> None:
    log = OpsLog()
    for event in (
        _ev("begin", "start", op_id="h"),
        _ev("vacuum", "start", table="public.prices", pid=294),
        _progress_event(relation="_timescaledb_internal._hyper_1_1_chunk", heap_blks_total=4673),
    ):
        log = log.add(event)
    state = running_op(log, "vacuum")
    assert state is not None
    line = live_line(state, "c")
    assert line is not None and line.plain == (
        "VACUUM (ANALYZE) public.prices › _hyper_1_1_chunk · "
        "scanning heap 1,234/4,673 blocks (26 %) · c cancel"
    )


def test_before_its_first_sample_the_line_names_the_session_and_no_key_without_one() -> None:
    log = (
        OpsLog()
        .add(_ev("begin", "start", op_id="x"))
        .add(_ev("vacuum", "start", table="public.users", pid=77))
    )
    state = running_op(log, "vacuum")
    assert state is not None and state.progress is None
    line = live_line(state, None)
    assert (
        line is not None and line.plain == "VACUUM (ANALYZE) public.users · starting (session 77)"
    )


def test_an_earlier_vacuums_progress_is_not_the_running_ones() -> None:
    log = OpsLog()
    for event in (
        _ev("begin", "start", op_id="first"),
        _ev("vacuum", "start", table="public.prices", pid=1),
        _progress_event(heap_blks_scanned=5000),
        _ev("result", "done"),
        _ev("begin", "start", op_id="second"),
    ):
        log = log.add(event)
    state = running_op(log, "vacuum")
    assert state is not None and state.op_id == "second"
    assert state.progress is None and state.target is None and state.session_pid is None
    assert live_line(state, "c") is None  # nothing live to say yet
