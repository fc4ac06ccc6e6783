"""Bad configuration: startup says exactly what is wrong and where.

Invalid TOML, a wrong type, an unknown key, a missing config file, a broken
or missing ``.env``, a wrong DSN, an unreachable Redis, a compose project
that does not exist. The CLI exits 2 with one line naming the file (and
line) or the variable; the console's sources name the unreachable target and
never show a password.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Stack
from tests.reliability._cli import stackdeck
from tests.reliability._harness import REPO, MonitorWatch, console_settings

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


@pytest.mark.parametrize(
    "name,text,words",
    [
        ("syntax", 'project = "unterminated\n', ("not valid TOML", "line 1")),
        ("type", '[refresh]\nstats = "fast"\n', ("refresh.stats", "duration")),
        ("unknown key", 'projcet = "x"\n', ("projcet", "no such setting")),
        (
            "negative",
            "[alerts.cpu]\nthreshold = 80\nfor_seconds = -5\n",
            ("alerts.cpu.for_seconds", "negative"),
        ),
        ("bad project", 'project = "Bad Name!"\n', ("project",)),
        ("bad section", "refresh = 5\n", ("refresh",)),
    ],
)
def test_invalid_toml_is_named_with_file_and_field(
    stack: Stack, tmp_path: Path, name: str, text: str, words: tuple[str, ...]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    proc = stackdeck(stack, "status", STACKDECK_CONFIG=str(cfg))
    err = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stdout[-300:]} {err[-300:]}"
    assert str(cfg) in err, f"the file is not named: {err}"
    for w in words:
        assert w.lower() in err.lower(), f"{w!r} missing from: {err}"
    assert "Traceback" not in err
    assert "expected expected" not in err, f"garbled message: {err}"
    assert len(err.strip().splitlines()) <= 3, f"one clear message, not a dump: {err}"


def test_missing_config_file_named(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    proc = stackdeck(stack, "status", STACKDECK_CONFIG=str(missing))
    assert proc.returncode == 2
    assert "STACKDECK_CONFIG" in proc.stderr and str(missing) in proc.stderr, proc.stderr


def test_invalid_env_variable_named(stack: Stack) -> None:
    proc = stackdeck(stack, "status", STACKDECK_REFRESH__HEALTH="0")
    assert proc.returncode == 2
    assert "STACKDECK_REFRESH__HEALTH" in proc.stderr and "refresh.health" in proc.stderr, (
        proc.stderr
    )


def _repo_copy(tmp_path: Path, env_text: str | None) -> Path:
    """A repository with the real compose files and the given .env (None: no .env)."""
    root = tmp_path / "repo"
    (root / "compose").mkdir(parents=True)
    shutil.copy(REPO / "compose" / "docker-compose.yml", root / "compose" / "docker-compose.yml")
    shutil.copy(
        REPO / "compose" / "docker-compose.production.yml",
        root / "compose" / "docker-compose.production.yml",
    )
    if env_text is not None:
        (root / ".env").write_text(env_text, encoding="utf-8")
    return root


def test_broken_env_file_named_with_line(stack: Stack, tmp_path: Path) -> None:
    root = _repo_copy(tmp_path, "POSTGRES_PASSWORD=x\nthis line is not an assignment\n")
    proc = stackdeck(stack, "--repo", str(root), "status")
    assert proc.returncode == 2, proc.stdout[-300:] + proc.stderr[-300:]
    assert f"{root / '.env'}:2" in proc.stderr, proc.stderr


def test_invalid_value_in_env_file_named(stack: Stack, tmp_path: Path) -> None:
    root = _repo_copy(tmp_path, "MONTHLY_BUDGET=lots\n")
    proc = stackdeck(stack, "--repo", str(root), "status")
    assert proc.returncode == 2, proc.stdout[-300:] + proc.stderr[-300:]
    assert "monthly_budget" in proc.stderr.lower() and str(root / ".env") in proc.stderr, (
        proc.stderr
    )


def test_missing_env_file_is_said(stack: Stack, tmp_path: Path) -> None:
    """Without .env the console has no passwords: startup must say so and where
    it looked, not fail later with an authentication error from Redis."""
    root = _repo_copy(tmp_path, None)
    proc = stackdeck(stack, "--repo", str(root), "status")
    out = proc.stdout + proc.stderr
    assert ".env" in out and str(root) in out, f"missing .env not reported:\n{out[-800:]}"


def test_wrong_compose_project_is_said(stack: Stack) -> None:
    proc = stackdeck(stack, "--stack", "nosuchproject", "status")
    out = (proc.stdout + proc.stderr).lower()
    assert "nosuchproject" in out
    assert "no container" in out, (
        f"a project with no container is not reported as such:\n{out[-800:]}"
    )


async def test_wrong_dsn_and_unreachable_redis_named_without_secrets(
    stack: Stack, tmp_path: Path
) -> None:
    password = "wrong-Secret-9f3b1c"
    settings = console_settings(
        stack,
        pg_dsn=f"postgresql://postgres:{password}@127.0.0.1:1/nodb",
        redis_url=f"unix://{tmp_path}/no-redis.sock",
        redis_password=password + "-redis",
    )
    async with MonitorWatch(settings) as watch:
        await watch.wait(
            lambda: (
                (p := watch.source_state("postgres")) is not None
                and not p.ok
                and (r := watch.source_state("redis")) is not None
                and not r.ok
            ),
            within=30,
            what="postgres and redis sources report failure",
        )
        pg, rd = watch.source_state("postgres"), watch.source_state("redis")
        assert watch.source_state("engine") is None or watch.source_state("engine").ok
    assert "127.0.0.1" in pg.last_error and "1" in pg.last_error, pg.last_error
    assert str(tmp_path) in rd.last_error or "no-redis.sock" in rd.last_error, rd.last_error
    for state in (pg, rd):
        assert password not in state.last_error, "a password is shown in the source error"
