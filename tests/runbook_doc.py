"""docs/RUNBOOK.md, read as data: every command of the runbook
(docs/production-deployment-guide.md, a verbatim copy of the seed) with what
to run on this stack. The tests parse the document itself, so the commands
exist in one place only.

The document's tables have three columns, ``runbook says | run on this
stack | why``:

- ``runbook says``: the runbook's command as a code span (continuation
  lines joined with one space);
- ``run on this stack``: the command as a code span, optionally followed by
  ``(exit 0 or 1)`` (the statuses that count as success; default 0) and
  ``changes the stack`` (the line writes: it runs in the destructive group);
  or ``**pending:** what is missing`` / ``**not runnable:** why``;
- ``why``: starts with the kind in bold: ``**verbatim**`` (the same
  command), ``**names**`` (the same command with this stack's names:
  ``${STACK_NAME}`` for ``investment``, ``127.0.0.1:${HTTP_PORT}`` for
  ``localhost``), ``**mapped**`` (another command; the rest says why) or
  ``**bounded**`` (a bounded form of a command that never ends by itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = REPO / "docs" / "production-deployment-guide.md"
DOCUMENT = REPO / "docs" / "RUNBOOK.md"
HEADER = ("runbook says", "run on this stack", "why")
KINDS = ("verbatim", "names", "mapped", "bounded", "pending", "not runnable")
DEFAULT_NAMES = {"${STACK_NAME}": "investment", "127.0.0.1:${HTTP_PORT}": "localhost"}
"""What ``names`` rows substitute: the stack's names for the runbook's."""


@dataclass(frozen=True)
class Line:
    section: str
    says: str
    run: str | None
    """The command to run; None for pending and not-runnable lines."""
    kind: str
    why: str
    exits: tuple[int, ...] = (0,)
    writes: bool = False

    @property
    def id(self) -> str:
        return f"{self.section}: {self.says}"


def runbook_commands(text: str | None = None) -> list[str]:
    """The commands of the runbook's ```bash blocks: comments and blank lines
    dropped, continuation lines joined with one space."""
    text = RUNBOOK.read_text() if text is None else text
    out: list[str] = []
    for block in re.findall(r"^\s*```bash\n(.*?)^\s*```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            out.append(pending + line)
            pending = ""
        if pending:
            out.append(pending.strip())
    return out


def _cells(row: str) -> list[str]:
    """A table row's cells: split on ``|`` not escaped as ``\\|``."""
    inner = row.strip()
    inner = inner[1:-1] if inner.startswith("|") and inner.endswith("|") else inner
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _code(cell: str) -> str | None:
    """The cell's leading code span (the commands hold no backtick)."""
    m = re.match(r"`([^`]+)`", cell)
    return m.group(1) if m else None


def parse(text: str | None = None) -> list[Line]:
    """The document's lines, in order. A malformed row raises ValueError
    naming it, so the document cannot half-parse."""
    text = DOCUMENT.read_text() if text is None else text
    lines: list[Line] = []
    section = ""
    in_table = False
    for n, row in enumerate(text.splitlines(), 1):
        if row.startswith("#"):
            section = row.lstrip("#").strip()
            in_table = False
            continue
        if not row.startswith("|"):
            in_table = False
            continue
        cells = _cells(row)
        if tuple(c.lower() for c in cells) == HEADER:
            in_table = True
            continue
        if not in_table or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != 3:
            raise ValueError(f"RUNBOOK.md:{n}: {len(cells)} cells, want 3: {row}")
        says_cell, run_cell, why = cells
        says = _code(says_cell)
        if says is None:
            raise ValueError(f"RUNBOOK.md:{n}: 'runbook says' is not a code span: {says_cell}")
        m = re.match(r"\*\*(pending|not runnable):\*\*\s*(.*)", run_cell)
        if m:
            if not m.group(2).strip():
                raise ValueError(f"RUNBOOK.md:{n}: {m.group(1)} without a reason")
            lines.append(Line(section, says, None, m.group(1), m.group(2).strip()))
            continue
        run = _code(run_cell)
        if run is None:
            raise ValueError(f"RUNBOOK.md:{n}: 'run on this stack' is not a code span: {run_cell}")
        kind = re.match(r"\*\*(\w[\w ]*)\*\*", why)
        if not kind or kind.group(1) not in KINDS[:4]:
            raise ValueError(f"RUNBOOK.md:{n}: 'why' must start with one of {KINDS[:4]}: {why}")
        rest = run_cell[run_cell.index(run) + len(run) :]
        exits = re.search(r"\(exit (\d+(?:(?: or |, )\d+)*)\)", rest)
        lines.append(
            Line(
                section,
                says,
                run,
                kind.group(1),
                why,
                tuple(int(x) for x in re.findall(r"\d+", exits.group(1))) if exits else (0,),
                "changes the stack" in rest,
            )
        )
    return lines
