"""Which base a version built by the engine starts from: the label of the
stack's newest image whose base the engine still has (an image left by an
earlier run can name a base removed since: building from it would ask a
registry for it, and this machine has none)."""

from __future__ import annotations

from typing import Any

import pytest

from console.core.ops.steps import images
from console.core.ops.steps.images import BASE_IMAGE_LABEL, stack_base_image


def _fake_engine(
    monkeypatch: pytest.MonkeyPatch, tags: dict[str, str | None], bases: set[str]
) -> None:
    """``tags``: version -> its base label (None: no label); ``bases``: the images the engine has."""

    async def known_versions(ctx: Any) -> list[str]:
        return sorted(tags)

    async def image_info(ctx: Any, ref: str) -> dict[str, Any] | None:
        tag = ref.rpartition(":")[2]
        if ref.startswith("repo:") and tag in tags:
            label = tags[tag]
            return {"Config": {"Labels": {BASE_IMAGE_LABEL: label} if label else {}}}
        return {"Config": {"Labels": {}}} if ref in bases else None

    monkeypatch.setattr(images, "known_versions", known_versions)
    monkeypatch.setattr(images, "image_info", image_info)


class Ctx:
    image_repo = "repo"


async def test_a_base_that_is_gone_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_engine(
        monkeypatch,
        {"v1.0.0": "base:today", "v5.0.1-errors": "base:last-week", "v9.0.0": None},
        {"base:today"},
    )
    assert await stack_base_image(Ctx()) == "base:today"  # type: ignore[arg-type]


async def test_the_newest_image_with_a_present_base_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_engine(monkeypatch, {"v1.0.0": "base:a", "v2.0.0": "base:b"}, {"base:a", "base:b"})
    assert await stack_base_image(Ctx()) == "base:b"  # type: ignore[arg-type]


async def test_no_present_base_means_the_dockerfiles_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_engine(monkeypatch, {"v1.0.0": "base:gone", "v2.0.0": None}, set())
    assert await stack_base_image(Ctx()) is None  # type: ignore[arg-type]
