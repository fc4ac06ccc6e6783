"""Errors of stackdeck, and the one place that keeps secrets out of messages.

Every error stackdeck raises on purpose derives from :class:`StackdeckError`,
so the CLI and the TUI can catch the family in one place and show the
operator a message instead of a traceback. Subclasses carry the facts the
operator needs to act (which field, which file, which source), docker-py
style.

:func:`redact` masks secrets in any text before it is shown or logged. The
settings register their secret values here when they are loaded
(:func:`register_secret`), and the function also masks the password part of
URLs and ``password=`` pairs it does not know about, so an error message from
asyncpg or redis-py that echoes a DSN cannot leak it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "SourceError",
    "SourceTimeout",
    "StackdeckError",
    "redact",
    "register_secret",
]

MASK = "***"
"""What a secret is replaced with."""

_MIN_SECRET_LEN = 4
"""Shorter values are not masked by value: masking ``1`` or ``ab`` everywhere
would garble messages without protecting anything."""

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)"
)
# password=xyz, passwd: xyz, token=..., secret=..., api_key=...  (query strings, DSNs, logs)
_KV_SECRET = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|token|secret|api_?key|apikey|auth)\b\s*[=:]\s*)"
    r"(?P<q>['\"]?)(?P<val>[^\s&'\";,]+)(?P=q)",
    re.IGNORECASE,
)
# Authorization: Bearer xyz
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<val>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)


def register_secret(*values: str | None) -> None:
    """Remember secret values so :func:`redact` masks them wherever they appear."""
    with _secrets_lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN:
                _secrets.add(value)


def redact(text: object, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` as a string with every secret masked.

    Masks, in this order: the values registered with :func:`register_secret`
    and the ``secrets`` given here (longest first, so a secret that contains
    another is masked whole), the password of ``scheme://user:password@host``
    URLs, ``password=...``/``token=...`` pairs and bearer tokens.
    """
    out = str(text)
    with _secrets_lock:
        known = set(_secrets)
    known.update(s for s in secrets if s and len(s) >= _MIN_SECRET_LEN)
    for value in sorted(known, key=len, reverse=True):
        if value in out:
            out = out.replace(value, MASK)
    out = _mask_fragments(out, known)
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, out)
    out = _KV_SECRET.sub(lambda m: m.group("key") + m.group("q") + MASK + m.group("q"), out)
    out = _BEARER.sub(lambda m: m.group("key") + MASK, out)
    return out


_FRAGMENT = 12
"""A piece of a long secret this long is masked too: a value cut by a message's
truncation or a panel's edge, or upper-cased, still leaks."""


_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-+=]+")


def _mask_fragments(text: str, secrets: Iterable[str]) -> str:
    # Only token-like values (random keys, passwords): a URL or DSN shares
    # harmless pieces ("postgresql://postgres") with ordinary text.
    long_ones = [s.lower() for s in secrets if len(s) >= 2 * _FRAGMENT and _TOKEN_LIKE.fullmatch(s)]
    if not long_ones or len(text) < _FRAGMENT:
        return text
    low = text.lower()
    hit = bytearray(len(text))
    for value in long_ones:
        for i in range(len(value) - _FRAGMENT + 1):
            piece = value[i : i + _FRAGMENT]
            start = low.find(piece)
            while start != -1:
                hit[start : start + _FRAGMENT] = b"\x01" * _FRAGMENT
                start = low.find(piece, start + 1)
    if not any(hit):
        return text
    out, i = [], 0
    while i < len(text):
        if hit[i]:
            while i < len(text) and hit[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class StackdeckError(Exception):
    """Root of every error stackdeck raises on purpose.

    ``str(err)`` is an operator-readable sentence with secrets already masked.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        """The masked message (same as ``str(err)``)."""
        return str(self.args[0]) if self.args else ""


class ConfigError(StackdeckError):
    """The configuration cannot be used.

    Says which setting is wrong (``field``, dotted: ``alerts.cpu.threshold``),
    where the bad value came from (``source``: a file path, an environment
    variable, an argument) and what was expected.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        source: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.field = field
        self.source = source
        self.expected = expected
        super().__init__(message)


class SourceError(StackdeckError):
    """A read-side source (engine, stats, health, postgres, redis, cost) failed.

    The monitor turns it into a stale marker and retries; it never reaches the
    operator as a crash.
    """

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class SourceTimeout(SourceError):
    """A source did not answer within its timeout."""

    def __init__(self, source: str, seconds: float, what: str = "poll") -> None:
        self.seconds = seconds
        super().__init__(source, f"{what} timed out after {seconds:g} s")
