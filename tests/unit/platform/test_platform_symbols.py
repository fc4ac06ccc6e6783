"""Strict validation of ?symbols= lists."""

from __future__ import annotations

import pytest

from platform_services.symbols import MAX_SYMBOLS, SymbolError, parse_symbols


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AAPL", ["AAPL"]),
        ("AAPL,MSFT", ["AAPL", "MSFT"]),
        ("BRK.B,RDS-A,V", ["BRK.B", "RDS-A", "V"]),
        ("AAPL,AAPL,MSFT", ["AAPL", "MSFT"]),
        ("A1234567.9", ["A1234567.9"]),
        (",".join(f"S{i}" for i in range(MAX_SYMBOLS)), [f"S{i}" for i in range(MAX_SYMBOLS)]),
    ],
)
def test_valid_lists(raw: str, expected: list[str]) -> None:
    assert parse_symbols(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "aapl",
        " AAPL",
        "AAPL ",
        "AAPL,",
        ",AAPL",
        "AAPL,,MSFT",
        "1AAPL",
        ".AAPL",
        "AAPLAAPLAAP",  # 11 characters
        "AAPL;DROP",
        "AAPL\n",
        "ÄAPL",
        "AAPL%00",
        "A" * 500,
        ",".join(f"S{i}" for i in range(MAX_SYMBOLS + 1)),
    ],
)
def test_malformed_lists_are_refused(raw: str | None) -> None:
    with pytest.raises(SymbolError):
        parse_symbols(raw)


def test_error_message_names_the_offending_item() -> None:
    with pytest.raises(SymbolError, match="msft"):
        parse_symbols("AAPL,msft")
    with pytest.raises(SymbolError, match="at most 10"):
        parse_symbols(",".join(f"S{i}" for i in range(11)))
