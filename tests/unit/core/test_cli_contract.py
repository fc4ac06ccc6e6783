"""The CLI's contract where an operator finds it: ``stackdeck --version``,
exit codes and environment in ``--help``, and a man page generated from the
parser that is what the checkout installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from console import __version__
from console.cli import ENVIRONMENT, EXIT_CODES, build_parser
from console.manpage import render

REPO = Path(__file__).resolve().parents[3]


def _stackdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_version_is_the_consoles_own() -> None:
    r = _stackdeck("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"stackdeck {__version__}"


def test_deploy_version_still_names_the_image_tag() -> None:
    args = build_parser().parse_args(["deploy", "--version", "v1.2.3"])
    assert args.command == "deploy" and args.version == "v1.2.3"


def test_help_lists_every_exit_code_and_variable() -> None:
    r = _stackdeck("--help")
    assert r.returncode == 0, r.stderr
    assert [c for c, _ in EXIT_CODES] == [0, 1, 2, 3, 130]
    for code, meaning in EXIT_CODES:
        assert f"  {code:<4} {meaning}" in r.stdout, code
    for name, _ in ENVIRONMENT:
        assert f"  {name} " in r.stdout, name


def test_the_committed_man_page_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "stackdeck.1").read_text(encoding="utf-8")
    assert committed == render(), "regenerate: python3 -m console.manpage > docs/stackdeck.1"


def test_the_man_page_names_every_command_and_option() -> None:
    page = render()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        assert f".SS stackdeck {name}".replace("-", "\\-") in page, name
        for action in cmd._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--json", "--read-only"):
                    assert opt.replace("-", "\\-") in page, (name, opt)
    for code, _ in EXIT_CODES:
        assert f"\\fB{code}\\fR" in page


def test_the_man_page_renders_and_venv_sh_installs_it() -> None:
    assert "install -D -m 0644" in (REPO / "scripts" / "venv.sh").read_text()
    man = shutil.which("man")
    if man is None:  # the roff itself is checked above; rendering needs man-db
        return
    r = subprocess.run(
        [man, "-l", str(REPO / "docs" / "stackdeck.1")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "MANWIDTH": "100", "LANG": "C.UTF-8"},
    )
    assert r.returncode == 0, r.stderr
    assert "EXIT STATUS" in r.stdout and "stackdeck deploy" in r.stdout
    assert "warning" not in r.stderr.lower(), r.stderr


def test_the_readme_states_the_same_exit_codes() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code, meaning in EXIT_CODES:
        assert (
            f"| {code} | {meaning.replace('(stackdeck lock show)', '(`stackdeck lock show`)')} |"
            in readme
        ), code
