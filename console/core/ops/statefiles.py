"""Small state files written whole: deploy.env and helpers for atomic writes.

A file is written to a temporary sibling, flushed to disk, then renamed over
the old one, so a reader (compose, ``stackdeck status``, a second console)
sees either the old or the new content, never half of it, even when the
writer is killed in the middle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from console.core.opfiles import read_json

__all__ = ["atomic_write", "read_deploy_env", "read_json", "update_deploy_env"]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def atomic_write(path: Path, text: str, mode: int = 0o640) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def read_deploy_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            values[m.group(1)] = m.group(2).strip().strip('"').strip("'")
    return values


def update_deploy_env(path: Path, updates: Mapping[str, str]) -> dict[str, str]:
    """Set variables in deploy.env, keeping comments, order and other lines.

    Returns the values after the update.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["# Written by scripts/setup.sh once, then only by the stackdeck deploy engine."]
    pending = dict(updates)
    out = []
    for line in lines:
        m = _LINE.match(line)
        if m and not line.lstrip().startswith("#") and m.group(1) in pending:
            key = m.group(1)
            out.append(f"{key}={pending.pop(key)}")
        else:
            out.append(line)
    for key, value in pending.items():
        out.append(f"{key}={value}")
    atomic_write(path, "\n".join(out) + "\n", mode=0o640)
    return read_deploy_env(path)
