"""docs/RUNBOOK.md gives every command of the runbook a home: each one of
its ``bash`` blocks is in the document's ``runbook says`` column, nothing
else is, and each line says honestly what kind it is (no stack needed; the
integration test runs the ``run on this stack`` column)."""

from __future__ import annotations

import re

import pytest

from tests.runbook_doc import DEFAULT_NAMES, DOCUMENT, REPO, parse, runbook_commands


def test_the_extraction_finds_the_runbook_commands() -> None:
    commands = runbook_commands()
    # continuation lines joined, comments and blank lines dropped
    assert (
        './scripts/deployment/blue_green_deploy.sh --version v1.2.3 --environment production --services "backend frontend"'
        in commands
    )
    assert not any(c.startswith("#") or not c.strip() or c.endswith("\\") for c in commands)
    assert len(commands) == 50, commands


def test_every_runbook_command_has_a_line_and_every_line_a_runbook_command() -> None:
    lines = parse()
    says = [line.says for line in lines]
    commands = runbook_commands()
    missing = [c for c in commands if c not in says]
    assert not missing, f"runbook commands with no line in {DOCUMENT.name}: {missing}"
    invented = [s for s in says if s not in commands]
    assert not invented, f"lines in {DOCUMENT.name} the runbook does not have: {invented}"
    # a command the runbook repeats (docker stats) has a line per occurrence
    for c in set(commands):
        assert says.count(c) == commands.count(c), c


def test_each_line_is_the_kind_it_claims() -> None:
    for line in parse():
        if line.kind == "verbatim":
            assert line.run == line.says, line.id
        elif line.kind == "names":
            assert line.run is not None
            got = line.run
            for ours, theirs in DEFAULT_NAMES.items():
                got = got.replace(ours, theirs)
            assert got == line.says, f"{line.id}: not the same command with names: {line.run}"
        elif line.kind in ("mapped", "bounded"):
            assert line.run and line.run != line.says, line.id
            assert len(re.sub(r"\*\*\w+\*\*:?", "", line.why).strip()) > 10, f"{line.id}: say why"
        else:
            assert line.run is None and len(line.why) > 10, line.id


def test_lines_not_run_here_are_few() -> None:
    """Pending (being built elsewhere) and not-runnable lines stay exceptions."""
    idle = [line for line in parse() if line.run is None]
    assert len(idle) <= 4, [line.id for line in idle]


def test_the_scripts_the_document_names_exist() -> None:
    for line in parse():
        for script in re.findall(r"(?:^|\s)\.?/?(scripts/[\w/.-]+)", line.run or ""):
            assert (REPO / script).exists(), f"{line.id}: no {script}"


def test_a_malformed_row_is_refused() -> None:
    head = "| runbook says | run on this stack | why |\n|---|---|---|\n"
    with pytest.raises(ValueError, match="not a code span"):
        parse(head + "| `ls` | ls | **verbatim** |\n")
    with pytest.raises(ValueError, match="must start with"):
        parse(head + "| `ls` | `ls` | same |\n")
    with pytest.raises(ValueError, match="without a reason"):
        parse(head + "| `ls` | **pending:** | |\n")
    (line,) = parse(
        head + "| `a \\| b` | `a \\| c` (exit 0 or 1) *changes the stack* | **mapped**: x |\n"
    )
    assert (line.says, line.run, line.exits, line.writes) == ("a | b", "a | c", (0, 1), True)
