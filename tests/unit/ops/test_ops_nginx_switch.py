"""The nginx switch's shell script (one ``docker exec``), run with ``sh``
against files of the test's own and a stand-in ``nginx`` that records its
arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from console.core.ops.nginx import (
    SWITCH_SCRIPT,
    parse_active,
    parse_frontend,
    parse_target,
    render_active,
)


def _switch(
    tmp_path: Path, colour: str, *, test_rc: int = 0, reload_rc: int = 0, tmp_name: str = ".new"
) -> tuple[int, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "nginx.log"
    fake = bin_dir / "nginx"
    fake.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" = -t ] && exit {test_rc}\nexit {reload_rc}\n'
    )
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


def test_a_failed_reload_puts_the_file_back(tmp_path: Path) -> None:
    # nginx -s reload failed: nginx still serves blue, and the file says so
    (tmp_path / "active.conf").write_text(render_active("blue"))
    rc, _out, calls = _switch(tmp_path, "green", reload_rc=1)
    assert rc == 4
    assert (tmp_path / "active.conf").read_text() == render_active("blue")
    assert calls == ["-t -q", "-s reload"]


def test_rejected_without_a_previous_file_says_so(tmp_path: Path) -> None:
    rc, _out, calls = _switch(tmp_path, "green", test_rc=1)
    assert rc == 5 and calls == ["-t -q"]


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


def _switch_lines(tmp_path: Path, lines: str) -> tuple[int, str]:
    """The switch script with ``lines`` on stdin (a stand-in nginx that passes)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nginx").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "nginx").chmod(0o755)
    r = subprocess.run(
        [
            "sh",
            "-c",
            SWITCH_SCRIPT,
            "switch",
            str(tmp_path / "active.conf"),
            str(tmp_path / ".new"),
        ],
        input=lines,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=30,
    )
    return r.returncode, r.stdout


def test_one_switch_moves_the_api_and_the_page(tmp_path: Path) -> None:
    conf = tmp_path / "active.conf"
    conf.write_text(render_active("blue", frontend="blue"))
    rc, out = _switch_lines(tmp_path, render_active("green", frontend="green"))
    assert rc == 0 and parse_active(out) == "blue" and parse_frontend(out) == "blue"
    text = conf.read_text()
    assert parse_active(text) == "green" and parse_frontend(text) == "green"
    assert text.count("$active_backend") == 1 and text.count("$active_frontend") == 1


def test_a_backend_switch_keeps_the_page_where_it_is(tmp_path: Path) -> None:
    conf = tmp_path / "active.conf"
    conf.write_text(render_active("blue", frontend="green"))
    assert _switch_lines(tmp_path, render_active("blue", "surge"))[0] == 0
    text = conf.read_text()
    assert parse_target(text) == ("blue", "surge") and parse_frontend(text) == "green"
    # and the page alone: the backend's line (its surge) is kept
    assert _switch_lines(tmp_path, render_active(None, frontend="blue"))[0] == 0
    text = conf.read_text()
    assert parse_target(text) == ("blue", "surge") and parse_frontend(text) == "blue"
    assert text.count("$active_backend") == 1 and text.count("$active_frontend") == 1


def test_an_old_file_gains_the_frontend_line(tmp_path: Path) -> None:
    """A file from before the frontend had colours (backend line only): the
    page follows the backend's colour until a switch names it."""
    conf = tmp_path / "active.conf"
    conf.write_text("set $active_backend backend_green;\n")
    assert parse_frontend(conf.read_text()) == "green"
    assert _switch_lines(tmp_path, render_active("blue"))[0] == 0
    assert parse_frontend(conf.read_text()) == "blue"  # still none named: the backend's
    assert _switch_lines(tmp_path, render_active(None, frontend="green"))[0] == 0
    text = conf.read_text()
    assert parse_active(text) == "blue" and parse_frontend(text) == "green"
