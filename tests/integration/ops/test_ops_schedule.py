"""The configured schedule against the real stack and the host's real cron:
installed by the project's own script (which installs and starts Debian's
cron on a host that has none), fired by cron at a time the test sets, with
the lock and the audit log of any operation; a bad entry is refused with
nothing installed."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console.core.schedule import cron_file
from tests.integration.ops.ops_helpers import REPO, cli_env, run_cli

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

FIRE_BOUND_S = 150
"""cron wakes once a minute: the entry's minute, plus the scale itself."""


INSTALL_MARGIN_S = 12
"""Seconds before the entry's minute that leave schedule.sh time to write
the cron file (was 20; an install that takes longer is retried, below)."""

READ_MARGIN_S = 6
"""Left before the entry's minute once the file is written: cron reads
changed files when it wakes at the top of each minute, and the listing
below (no last run yet) runs before the entry does."""


def _entry_minute(now: datetime) -> datetime:
    """The next minute that leaves schedule.sh time to install the file first."""
    at = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return at if (at - now).total_seconds() >= INSTALL_MARGIN_S else at + timedelta(minutes=1)


def _config(path: Path, entries: list[dict[str, str]]) -> Path:
    text = "".join(
        "[[schedule]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items()) + "\n" for e in entries
    )
    path.write_text(text, encoding="utf-8")
    return path


def _replicas(stack: Any) -> list[str]:
    """The backend's replica containers beyond each colour's own (running or not)."""
    return subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={stack.name}",
            "--filter",
            "label=com.investment.slot=replica",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


@pytest.fixture
def schedule_env(stack: Any, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A configuration file of the test's own; afterwards the stack's cron
    file is removed and the backend is back to one container."""
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    env = cli_env(stack, STACKDECK_CONFIG=str(config))
    yield config, env
    cron_file(stack.name).unlink(missing_ok=True)
    if _replicas(stack):
        run_cli(stack, "scale", "backend=1", timeout=400)


def _schedule_sh(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "schedule.sh")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.destructive
def test_the_off_peak_entry_fires_from_cron_at_its_time_and_is_audited(
    stack: Any, schedule_env: tuple[Path, dict[str, str]]
) -> None:
    config, env = schedule_env
    # the peak: two backend containers serve
    r = run_cli(stack, "scale", "backend=2", timeout=400, env=env)
    assert r.rc == 0 and len(_replicas(stack)) == 1, r.text()
    audit_before = (stack.state_dir / "audit.log").read_text().count("\n")
    while True:
        # A name of its own: no last run from an earlier test run, nor from an
        # attempt below that cron may still have read in time.
        name = f"off-peak-{secrets.token_hex(3)}"
        at = _entry_minute(datetime.now().astimezone())
        _config(
            config,
            [{"name": name, "cron": f"{at.minute} {at.hour} * * *", "scale": "backend=1"}],
        )
        r = _schedule_sh(env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"installed {name}" in r.stdout
        # a slow install (a loaded machine) too close to the minute: the next
        # minute, under a new name
        if (at - datetime.now().astimezone()).total_seconds() >= READ_MARGIN_S:
            break
    line = cron_file(stack.name).read_text()
    assert f"{at.minute} {at.hour} * * * root " in line and f"schedule run {name} " in line
    assert subprocess.run(["pgrep", "-x", "cron"], capture_output=True).returncode == 0

    listed = run_cli(stack, "schedule", env=env)
    row = json.loads(listed.stdout.splitlines()[0])
    assert row["installed"] is True and row["last_run"] is None
    assert datetime.fromisoformat(row["next_run"]) == at

    # cron, not this test, runs it: wait for its outcome (nothing runs it here)
    deadline = time.monotonic() + FIRE_BOUND_S
    state = stack.state_dir / "schedule.json"
    while time.monotonic() < deadline:
        if state.exists() and name in json.loads(state.read_text()):
            break
        time.sleep(1)
    log = (
        (stack.state_dir / "schedule.log").read_text()
        if (stack.state_dir / "schedule.log").exists()
        else ""
    )
    assert state.exists(), f"cron did not run the entry by {FIRE_BOUND_S} s; log:\n{log}"
    last = json.loads(state.read_text())[name]
    assert last["result"] == "ok", (last, log)
    fired = datetime.fromisoformat(last["at"])
    assert at <= fired < at + timedelta(seconds=30), (fired, at)
    assert _replicas(stack) == []  # off-peak: the serving colour's own container alone
    assert "BACKEND_REPLICAS=1" in (stack.state_dir / "deploy.env").read_text()

    # audited like any operation, naming the schedule as the way it came
    records = [
        json.loads(x)
        for x in (stack.state_dir / "audit.log").read_text().splitlines()[audit_before:]
    ]
    mine = [x for x in records if x.get("via") == f"schedule {name}"]
    assert [x["event"] for x in mine] == ["start", "end"], records
    assert mine[-1]["op"] == "scale" and mine[-1]["result"] == "ok"
    assert mine[-1]["params"]["count"] == 1 and mine[-1]["params"]["service"] == "backend"
    assert any(x.get("op") == "schedule-install" and x.get("result") == "ok" for x in records)

    # the list shows the last run
    row = json.loads(run_cli(stack, "schedule", env=env).stdout.splitlines()[0])
    assert row["last_run"]["result"] == "ok" and row["last_run"]["op_id"] == mine[-1]["op_id"]


def test_an_entry_the_scale_rules_refuse_installs_nothing(
    stack: Any, schedule_env: tuple[Path, dict[str, str]]
) -> None:
    config, env = schedule_env
    good = {"name": "keep", "cron": "0 3 * * *", "scale": "backend=2"}
    _config(config, [good])
    r = _schedule_sh(env)
    assert r.returncode == 0, r.stdout + r.stderr
    before = cron_file(stack.name).read_text()

    for bad, reason in (
        ("backend=0", "at least 1 container must serve"),  # what the health checks need
        ("backend=9", "at most 4 containers"),
        ("db=2", "db does not scale"),
        ("nosuch=1", "unknown service 'nosuch'"),
    ):
        _config(config, [good, {"name": "bad", "cron": "0 22 * * *", "scale": bad}])
        r = _schedule_sh(env)
        assert r.returncode != 0, (bad, r.stdout)
        assert "schedule entry 'bad'" in r.stderr and reason in r.stderr, (bad, r.stderr)
        assert "nothing was installed" in r.stderr and "Traceback" not in r.stderr
        assert cron_file(stack.name).read_text() == before  # nothing changed

    # an entry the configuration itself rejects: the file and field are named
    config.write_text('[[schedule]]\nname = "x"\ncron = "0 25 * * *"\nscale = "backend=1"\n')
    r = _schedule_sh(env)
    assert r.returncode != 0 and "schedule.0.cron" in r.stderr and str(config) in r.stderr, r.stderr
    assert "bad hour" in r.stderr and "Traceback" not in r.stderr
    assert cron_file(stack.name).read_text() == before

    # nothing enabled: the file goes
    _config(config, [{**good, "enabled": "false"}])
    config.write_text(config.read_text().replace('enabled = "false"', "enabled = false"))
    r = run_cli(stack, "schedule", "install", env=env)
    assert r.rc == 0, r.stderr
    assert not cron_file(stack.name).exists()
