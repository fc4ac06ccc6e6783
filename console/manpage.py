"""The man page of ``stackdeck``, generated from its argument parser, so it
can never say what the parser does not do.

    python3 -m console.manpage > docs/stackdeck.1     # regenerate
    man -l docs/stackdeck.1

``docs/stackdeck.1`` is committed (a unit test fails when it is not what this
module generates); ``scripts/venv.sh`` installs it as
``.venv/share/man/man1/stackdeck.1``, a non-editable install as
``share/man/man1/stackdeck.1`` of the environment.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["render"]


def _esc(text: str) -> str:
    """roff-safe text: backslashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return ("\\&" + text) if text[:1] in (".", "'") else text


def _metavar(action: argparse.Action) -> str | None:
    metavar = action.metavar
    return " ".join(metavar) if isinstance(metavar, tuple) else metavar


def _options(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    for action in parser._actions:  # argparse has no public iterator of its actions
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if skip.intersection(action.option_strings):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                shown = _metavar(action) or (
                    "{" + ",".join(map(str, action.choices)) + "}"
                    if action.choices
                    else action.dest.upper()
                )
                names += " " + shown
        else:
            names = _metavar(action) or action.dest
        out += [".TP", f"\\fB{_esc(names)}\\fR", _esc(action.help or "")]
    return out


def _commands(parser: argparse.ArgumentParser, skip: frozenset[str], prefix: str = "") -> list[str]:
    """Each sub-command with its own options (``skip``: the global ones,
    accepted after every command too, listed once under OPTIONS)."""
    out: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix}{name}"
            out += [f".SS {_esc(f'stackdeck {full}')}", _esc(helps.get(name, ""))]
            out += _options(sub, skip)
            out += _commands(sub, skip, prefix=f"{full} ")
    return out


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The roff text of the man page (section 1)."""
    from console import __version__
    from console.cli import ENVIRONMENT, EXIT_CODES, build_parser

    p = parser or build_parser()
    skip = frozenset(o for a in p._actions for o in a.option_strings if o != "--version")
    lines = [
        f'.TH STACKDECK 1 "" "stackdeck {__version__}" "User Commands"',
        ".SH NAME",
        "stackdeck \\- terminal operations console for the Investment Analysis Platform",
        ".SH SYNOPSIS",
        "\\fBstackdeck\\fR [\\fIOPTIONS\\fR] [\\fICOMMAND\\fR [\\fIARGS\\fR]]",
        ".SH DESCRIPTION",
        _esc(p.description or ""),
        ".SH OPTIONS",
        *_options(p),
        ".SH COMMANDS",
        *_commands(p, skip),
        ".SH EXIT STATUS",
    ]
    for code, meaning in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _esc(meaning)]
    lines.append(".SH ENVIRONMENT")
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f"\\fB{_esc(name)}\\fR", _esc(meaning)]
    lines += [".SH SEE ALSO", "docs/CONTRACT.md, docs/ARCHITECTURE.md in the checkout"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
