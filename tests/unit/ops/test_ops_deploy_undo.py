"""The deploy's automatic undo: which parts run when one of them fails, and
what the record says, on fakes of the steps (the real steps run in the
integration tier)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from console.core.ops import deploy
from console.core.ops.errors import OpFailed
from console.core.ops.journal import Journal


def test_the_api_goes_back_even_when_the_page_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deploy of "backend frontend" failed after its one switch: the page's
    undo fails (its old colour died); the backend's undo still runs, and the
    page's failure is what the caller hears."""
    ran: list[str] = []

    async def page(*_a: Any) -> None:
        ran.append("page")
        raise OpFailed("frontend_blue does not answer", step="rollback")

    async def api(*_a: Any) -> None:
        ran.append("api")

    monkeypatch.setattr(deploy, "_undo_frontend", page)
    monkeypatch.setattr(deploy, "_undo_blue_green", api)
    journal = Journal(tmp_path / "j", {"frontend": {"from_colour": "blue"}, "switch_started": True})
    with pytest.raises(OpFailed, match="frontend_blue does not answer"):
        asyncio.run(deploy._undo_blue_green_with_frontend(None, journal, []))  # type: ignore[arg-type]
    assert ran == ["page", "api"]


class _Record:
    def __init__(self) -> None:
        self.result: str | None = None

    def fail(self, result: str, *_a: Any, **_k: Any) -> None:
        self.result = result


class _Progress:
    def fail(self, *_a: Any, **_k: Any) -> None: ...
    def start(self, *_a: Any, **_k: Any) -> None: ...
    def make(self, *_a: Any, **_k: Any) -> None: ...


class _Ctx:
    @staticmethod
    def redact(text: object) -> str:
        return str(text)


@pytest.mark.parametrize(
    ("key", "switched", "result"),
    [("switch_started", True, "rolled-back"), ("frontend_switch_started", False, "failed")],
)
def test_the_page_s_own_switch_decides_rolled_back(
    tmp_path: Path, key: str, switched: bool, result: str
) -> None:
    """A rolling "backend frontend" deploy switched the API, then the page
    failed before its own switch: the page never left its colour, so the
    record says failed (the API stays on the new version), not rolled-back."""

    async def undo(*_a: Any) -> None:
        return None

    journal = Journal(tmp_path / "j", {"switch_started": True})
    record = _Record()
    _reason, got, error = asyncio.run(
        deploy._undo_after_failure(
            _Ctx(),  # type: ignore[arg-type]
            _Progress(),  # type: ignore[arg-type]
            record,  # type: ignore[arg-type]
            journal,
            [],
            undo,
            step="start-frontend",
            exc=RuntimeError("no image"),
            switched_key=key,
        )
    )
    assert (got, record.result, error) == (switched, result, None)
