"""The nginx switch's shell script (one ``docker exec``), run with ``sh``
against files of the test's own and a stand-in ``nginx`` that records its
arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from console.core.ops.nginx import SWITCH_SCRIPT, parse_active, render_active


def _switch(
    tmp_path: Path, colour: str, *, test_rc: int = 0, tmp_name: str = ".new"
) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "nginx.log"
    fake = bin_dir / "nginx"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" = -t ] && exit {test_rc}\nexit 0\n')
    fake.chmod(0o755)
    conf = tmp_path / "active.conf"
    r = subprocess.run(
        ["sh", "-c", SWITCH_SCRIPT, "switch", str(conf), str(tmp_path / tmp_name)],
        input=render_active(colour),
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=30,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return r.returncode, r.stdout, calls


def test_switch_writes_tests_and_reloads(tmp_path: Path) -> None:
    (tmp_path / "active.conf").write_text(render_active("blue"))
    rc, out, calls = _switch(tmp_path, "green")
    assert rc == 0
    assert parse_active(out) == "blue"  # the colour served before
    assert (tmp_path / "active.conf").read_text() == render_active("green")
    assert calls == ["-t -q", "-s reload"]
    assert not (tmp_path / ".new").exists()


def test_rejected_configuration_is_put_back_and_not_reloaded(tmp_path: Path) -> None:
    (tmp_path / "active.conf").write_text(render_active("blue"))
    rc, _out, calls = _switch(tmp_path, "green", test_rc=1)
    assert rc == 3
    assert (tmp_path / "active.conf").read_text() == render_active("blue")
    assert calls == ["-t -q"]


def test_no_previous_file(tmp_path: Path) -> None:
    rc, out, calls = _switch(tmp_path, "green")
    assert rc == 0 and parse_active(out) is None
    assert (tmp_path / "active.conf").read_text() == render_active("green")
    assert calls == ["-t -q", "-s reload"]


def test_unwritable_temp_file_changes_nothing(tmp_path: Path) -> None:
    # a "folder" that is a regular file: no one, root included, can create in it
    (tmp_path / "active.conf").write_text(render_active("blue"))
    (tmp_path / "ro").write_text("not a folder")
    rc, _out, calls = _switch(tmp_path, "green", tmp_name="ro/.new")
    assert rc == 2 and calls == []
    assert (tmp_path / "active.conf").read_text() == render_active("blue")


def test_temp_file_in_a_missing_folder_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "active.conf").write_text(render_active("blue"))
    rc, _out, calls = _switch(tmp_path, "green", tmp_name="missing/.new")
    assert rc == 2 and calls == []
    assert (tmp_path / "active.conf").read_text() == render_active("blue")
