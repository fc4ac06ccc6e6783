"""The configured schedule's pure parts: the entries the configuration
accepts, when each runs next, the cron file's text, the last-run state, the
console's line and the operations source that feeds it."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cronsim import CronSim

from console.core.config import ScheduleEntry, Settings
from console.core.errors import ConfigError
from console.core.models import ScheduleLine
from console.core.schedule import LastRun, next_run, read_state, record_run, render_cron
from console.core.sources.operations import OperationsSource
from console.ui.panels.operations import schedule_line

OFF_PEAK = ScheduleEntry(name="off-peak", cron="0 22 * * *", scale="backend=1")
PEAK = ScheduleEntry(name="peak", cron="0 7 * * 1-5", scale="backend=3")
CET = timezone(timedelta(hours=1))


# --- the configuration ------------------------------------------------------------------


def test_a_schedule_in_the_toml_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = clean_env / "c.toml"
    toml.write_text(
        '[[schedule]]\nname = "off-peak"\ncron = "0  22 * * *"\nscale = "backend=1"\n\n'
        '[[schedule]]\nname = "peak"\ncron = "0 7 * * 1-5"\nscale = "backend=3"\nenabled = false\n'
    )
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    s = Settings(repo_root=clean_env)
    assert [(e.name, e.cron, e.scale, e.enabled) for e in s.schedule] == [
        ("off-peak", "0 22 * * *", "backend=1", True),  # spaces normalised
        ("peak", "0 7 * * 1-5", "backend=3", False),
    ]


@pytest.mark.parametrize(
    ("entry", "field", "expected"),
    [
        ({"cron": "61 * * * *"}, "schedule.0.cron", "a valid cron expression (bad minute)"),
        ({"cron": "0 22 * *"}, "schedule.0.cron", "five cron fields"),
        ({"cron": "@daily"}, "schedule.0.cron", "five cron fields"),
        # cronsim reads these; Debian's cron would ignore the stack's whole file
        ({"cron": "0 22 L * *"}, "schedule.0.cron", "Debian's cron reads"),
        ({"cron": "0 7 * * 1#1"}, "schedule.0.cron", "not '1#1'"),
        ({"cron": "0 7 * jan-mar *"}, "schedule.0.cron", "not 'jan-mar'"),
        ({"scale": "backend"}, "schedule.0.scale", "SERVICE=N"),
        ({"scale": "backend=-1"}, "schedule.0.scale", "SERVICE=N"),
        ({"name": "Off Peak"}, "schedule.0.name", "a string matching"),
        ({"when": "22:00"}, "schedule.0.when", "no such setting"),
    ],
)
def test_a_bad_entry_names_its_field(
    clean_env: Path, entry: dict[str, str], field: str, expected: str
) -> None:
    data = {"name": "x", "cron": "0 22 * * *", "scale": "backend=1", **entry}
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env, schedule=[data])
    assert info.value.field == field
    assert expected in str(info.value)


def test_names_alone_in_month_and_weekday_are_taken(clean_env: Path) -> None:
    s = Settings(
        repo_root=clean_env, schedule=[{"name": "x", "cron": "0 7 * dec MON", "scale": "backend=2"}]
    )
    assert s.schedule[0].cron == "0 7 * dec MON"


def test_two_entries_of_one_name_are_refused(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env, schedule=[OFF_PEAK.model_dump(), OFF_PEAK.model_dump()])
    assert info.value.field == "schedule" and "off-peak used twice" in str(info.value)


# --- when ------------------------------------------------------------------------------


def test_next_run_is_the_first_matching_minute_after_now_in_local_time() -> None:
    now = datetime(2026, 12, 7, 21, 59, 30, tzinfo=CET)  # a Monday
    assert next_run(OFF_PEAK, now) == datetime(2026, 12, 7, 22, 0, tzinfo=CET)
    # at the minute itself, the next day's
    assert next_run(OFF_PEAK, now.replace(hour=22, minute=0, second=5)) == datetime(
        2026, 12, 8, 22, 0, tzinfo=CET
    )
    friday_evening = datetime(2026, 12, 11, 8, 0, tzinfo=CET)
    assert next_run(PEAK, friday_evening) == datetime(2026, 12, 14, 7, 0, tzinfo=CET)
    assert next_run(OFF_PEAK.model_copy(update={"enabled": False}), now) is None


# --- the cron file ---------------------------------------------------------------------


def test_the_cron_file_has_one_line_per_enabled_entry_naming_the_stack() -> None:
    text = render_cron(
        [OFF_PEAK, PEAK.model_copy(update={"enabled": False})],
        stack="prod",
        command=["/srv/stack deck/scripts/stackdeck"],
        env={"STACK_NAME": "prod", "STACKDECK_CONFIG": "/etc/stackdeck/100%.toml"},
        cwd=Path("/srv/stack deck"),
        log=Path("/var/lib/stackdeck/prod/schedule.log"),
    )
    assert text.endswith("\n")
    jobs = [
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(jobs) == 1
    fields = jobs[0].split(" ", 6)
    CronSim(" ".join(fields[:5]), datetime.now(UTC))  # cron's five fields first
    assert fields[:6] == ["0", "22", "*", "*", "*", "root"]
    command = fields[6]
    assert command.startswith("cd '/srv/stack deck' && env ")
    assert (
        "STACK_NAME=prod" in command
        and "'/srv/stack deck/scripts/stackdeck' schedule run off-peak " in command
    )
    assert "/etc/stackdeck/100\\%.toml" in command  # an unescaped % would end cron's command
    assert command.endswith(">> /var/lib/stackdeck/prod/schedule.log 2>&1")
    assert any(line.startswith("PATH=") and "/usr/local/bin" in line for line in text.splitlines())


# --- the last runs ---------------------------------------------------------------------


def test_last_runs_are_kept_per_entry_and_a_torn_file_reads_as_none(tmp_path: Path) -> None:
    at = datetime(2026, 12, 7, 22, 0, 1, tzinfo=UTC)
    record_run(tmp_path, "off-peak", LastRun(at, "ok", "backend scaled to 1", "abc"))
    record_run(tmp_path, "peak", LastRun(at, "refused", "lock held by alice", None))
    record_run(tmp_path, "off-peak", LastRun(at + timedelta(days=1), "failed", "engine gone"))
    state = read_state(tmp_path)
    assert state["peak"] == LastRun(at, "refused", "lock held by alice", None)
    assert state["off-peak"].result == "failed" and state["off-peak"].at == at + timedelta(days=1)
    assert oct((tmp_path / "schedule.json").stat().st_mode & 0o777) == "0o640"
    (tmp_path / "schedule.json").write_text('{"off-peak": {"at": "2026-1')
    assert read_state(tmp_path) == {}


# --- what the console shows ------------------------------------------------------------


def _line(name: str, **kw: object) -> ScheduleLine:
    base: dict[str, object] = {
        "name": name,
        "scale": "backend=1",
        "when": "At 22:00",
        "installed": True,
    }
    return ScheduleLine.model_validate({**base, **kw})


NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_the_console_line_names_the_next_entry_and_its_last_run() -> None:
    lines = [
        _line("peak", scale="backend=3", next_run=NOW.replace(day=8, hour=7)),
        _line(
            "off-peak",
            next_run=NOW.replace(hour=22),
            last_at=NOW.replace(day=6, hour=22),
            last_result="ok",
        ),
    ]
    text = schedule_line(lines, NOW).plain  # type: ignore[union-attr]
    local = NOW.astimezone()
    want = NOW.replace(hour=22).astimezone(local.tzinfo).strftime("%H:%M")
    assert text.startswith(f"schedule · off-peak backend=1 next {want}")
    assert "last ✓" in text and "+1 more" in text
    assert schedule_line([], NOW) is None


def test_the_console_line_shows_a_failed_run_or_a_missing_install_first() -> None:
    failed = _line(
        "off-peak",
        next_run=NOW.replace(day=9),
        last_at=NOW,
        last_result="refused",
        last_message="lock held by alice",
    )
    soon = _line("peak", next_run=NOW.replace(hour=15))
    text = schedule_line([soon, failed], NOW).plain  # type: ignore[union-attr]
    assert "off-peak" in text and "✗ refused" in text and "lock held by alice" in text
    missing = _line("peak", next_run=NOW.replace(hour=15), installed=False)
    text = schedule_line([missing], NOW).plain  # type: ignore[union-attr]
    assert "not in cron: stackdeck schedule install" in text


def test_the_operations_source_publishes_the_schedule_when_it_changes(clean_env: Path) -> None:
    state = clean_env / "state"
    state.mkdir()
    clock = [datetime(2026, 12, 7, 21, 0, 10, tzinfo=UTC)]
    settings = Settings(repo_root=clean_env, state_dir=state, schedule=[OFF_PEAK.model_dump()])
    source = OperationsSource(
        settings, clock=lambda: clock[0], own_pid=os.getpid(), host=socket.gethostname()
    )
    first = source.scan()
    assert first is not None
    (line,) = first.schedule
    assert line.name == "off-peak" and line.last_result is None and line.installed is False
    assert line.next_run is not None and line.next_run > clock[0]
    clock[0] += timedelta(seconds=20)
    assert source.scan() is None  # nothing changed: no snapshot, no repaint
    record_run(state, "off-peak", LastRun(clock[0], "failed", "engine gone"))
    changed = source.scan()
    assert changed is not None and changed.schedule[0].last_result == "failed"
    assert changed.schedule[0].last_message == "engine gone"
