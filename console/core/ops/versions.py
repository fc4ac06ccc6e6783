"""Version tags of the backend image: ``v1``, ``v1.2``, ``v1.2.3``, ``v1.2.3-rc.1``."""

from __future__ import annotations

import re
from functools import total_ordering

from console.core.ops.errors import BadInput

__all__ = ["VERSION_RE", "Version", "image_ref", "parse_version", "validate_version"]

VERSION_RE = re.compile(r"^v[0-9]+(\.[0-9]+){0,2}(-[0-9A-Za-z.]+)?$", re.ASCII)
"""Accepted tags. Also what a docker tag may hold, so a valid version is
always a valid image reference."""

_MAX_LEN = 64


def _printable(text: str) -> str:
    """The input as the operator can read it back (control characters escaped)."""
    return text.encode("unicode_escape").decode("ascii")[:80]


def validate_version(value: object, field: str = "version") -> str:
    """The version if well-formed, else :class:`BadInput` saying what is expected."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"{field} is required: a tag such as v1.2.3", field=field)
    if len(value) > _MAX_LEN or not VERSION_RE.fullmatch(value):
        raise BadInput(
            f"malformed {field} '{_printable(value)}': expected v<major>[.<minor>[.<patch>]][-<suffix>], "
            "e.g. v1.2.3 or v1.3.0-rc.1",
            field=field,
        )
    return value


@total_ordering
class Version:
    """A parsed tag, ordered like semver (a pre-release sorts before its release)."""

    __slots__ = ("parts", "suffix", "tag")

    def __init__(self, tag: str):
        validate_version(tag)
        self.tag = tag
        core, _, suffix = tag[1:].partition("-")
        nums = [int(p) for p in core.split(".")]
        while len(nums) < 3:
            nums.append(0)
        self.parts = tuple(nums)
        self.suffix = suffix or None

    def _key(self) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
        if self.suffix is None:
            return self.parts, 1, ()
        ids: list[tuple[int, int | str]] = []
        for piece in self.suffix.split("."):
            ids.append((0, int(piece)) if piece.isdigit() else (1, piece))
        return self.parts, 0, tuple(ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Version({self.tag!r})"

    def __str__(self) -> str:
        return self.tag


def parse_version(tag: str) -> Version:
    return Version(tag)


def image_ref(repo: str, version: str) -> str:
    """``investment-backend:v1.2.3``."""
    return f"{repo}:{validate_version(version)}"
