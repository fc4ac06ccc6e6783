"""Strict validation of ticker symbol lists (``?symbols=AAPL,MSFT``).

Pure standard library. A list is accepted only when every item is a symbol
as exchanges write them: an upper-case letter first, then up to nine
upper-case letters, digits, dots or dashes (``BRK.B``, ``RDS-A``). Nothing is
normalised: ``aapl``, `` AAPL`` and ``AAPL,`` are errors, so a client learns
about its bug instead of getting a different answer than it asked for.
Duplicates are dropped (first occurrence wins).
"""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}")
MAX_SYMBOLS = 10
MAX_RAW_LENGTH = 200
"""Longer query values are refused before they are split."""


class SymbolError(ValueError):
    """The symbol list is malformed; the message says how (safe to show)."""


def parse_symbols(raw: str | None, *, max_symbols: int = MAX_SYMBOLS) -> list[str]:
    """Split and validate a comma-separated symbol list; raise SymbolError."""
    if raw is None or raw == "":
        raise SymbolError("symbols is required: a comma-separated list such as AAPL,MSFT")
    if len(raw) > max(MAX_RAW_LENGTH, max_symbols * 11):
        raise SymbolError("symbols is too long")
    symbols: list[str] = []
    for index, item in enumerate(raw.split(",")):
        if item == "":
            raise SymbolError(f"empty symbol at position {index + 1}")
        if SYMBOL_RE.fullmatch(item) is None:
            shown = item if len(item) <= 12 and item.isprintable() else item[:12].encode()
            raise SymbolError(
                f"invalid symbol {shown!r}: expected 1-10 characters, A-Z first, "
                "then A-Z, 0-9, '.' or '-'"
            )
        if item not in symbols:
            symbols.append(item)
    if len(symbols) > max_symbols:
        raise SymbolError(f"at most {max_symbols} symbols per request (got {len(symbols)})")
    return symbols
