"""``stackdeck schedule install`` run by a user who cannot write the cron
file or the state folder: a clear error and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from console import cli
from console.core.ops import schedule as ops_schedule


def test_a_cron_file_it_cannot_write_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def denied(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied", "/etc/cron.d/stackdeck-unit")

    monkeypatch.setattr(ops_schedule, "install_schedule", denied)
    monkeypatch.setenv("STACKDECK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STACK_NAME", "unit")
    assert cli.main(["schedule", "install"]) == 2
    err = capsys.readouterr().err
    assert "cannot write /etc/cron.d/stackdeck-unit: Permission denied" in err, err
    assert "as root" in err and "Traceback" not in err
