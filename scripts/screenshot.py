#!/usr/bin/env python3
"""Export the README screenshot (docs/screenshot.svg) from the app itself.

The app runs headless with the recorded fixtures of the UI tests
(tests/ui/fixtures), a fixed clock and a fake operations runner, so the
picture is the real UI and is reproducible: the same command always writes
the same file.

    python3 scripts/screenshot.py                       # alert scenario, deploy in progress
    python3 scripts/screenshot.py --scenario normal --no-deploy --size 80x24 -o /tmp/small.svg
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:  # the system python3 has no textual: run in the console's own .venv
    import textual  # noqa: F401
except ModuleNotFoundError:
    _venv = ROOT / ".venv"
    if (_venv / "bin" / "python").exists() and Path(sys.prefix).resolve() != _venv.resolve():
        os.execv(_venv / "bin" / "python", [str(_venv / "bin" / "python"), __file__, *sys.argv[1:]])
    sys.exit(f"screenshot.py needs the console's environment: bash {ROOT}/scripts/venv.sh first")
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


async def export(scenario: str, size: tuple[int, int], deploy: bool) -> str:
    from tests.ui.fakes import FakeOps, make_app

    ops = FakeOps()
    app = make_app(scenario, ops=ops)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        if deploy:
            await pilot.press("d", *"v1.2.4", "enter")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            await pilot.pause()
        svg = app.export_screenshot(title="stackdeck")
        ops.release.set()
        await app.workers.wait_for_complete()
    return svg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", default="alert", choices=["normal", "alert", "stale", "empty"]
    )
    parser.add_argument(
        "--size", default="160x48", type=_size, help="WIDTHxHEIGHT (default 160x48)"
    )
    parser.add_argument(
        "--no-deploy",
        dest="deploy",
        action="store_false",
        help="do not start a (fake) deploy for the operations log",
    )
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "screenshot.svg")
    args = parser.parse_args(argv)
    svg = asyncio.run(export(args.scenario, args.size, args.deploy))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(svg, encoding="utf-8")
    print(
        f"wrote {args.output} ({len(svg) // 1024} KiB, {args.size[0]}x{args.size[1]}, {args.scenario})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
