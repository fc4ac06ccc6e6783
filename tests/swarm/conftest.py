"""The Swarm tier: the stack on Docker Swarm in node containers
(scripts/swarm.sh). Marker ``swarm``: never part of the default run
(tests/conftest.py deselects it); ``bash scripts/swarm.sh test`` or
``pytest -m swarm tests/swarm`` runs it.

The ``swarm`` fixture uses a swarm that is up and deployed, or brings one up
(one node) and deploys the stack; one it brought up it removes again at the
end (``SWARM_KEEP=1`` keeps it). It fails, never skips, when that cannot be done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.swarm.swarm import Swarm

BASE_VERSION = "v1.0.0"
"""The backend version scripts/swarm.sh deploys (its BACKEND_VERSION default)."""
FIGURES = Path(os.environ.get("STACKDECK_SWARM_FIGURES", "/tmp/stackdeck-swarm-figures.json"))


def record_figure(name: str, value: Any) -> None:
    """Keep a measurement for docs/SCALE-OUT.md (not asserted: timings vary)."""
    data = {}
    if FIGURES.exists():
        try:
            data = json.loads(FIGURES.read_text())
        except ValueError:
            data = {}
    data[name] = value
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"[figure] {name}: {json.dumps(value, sort_keys=True)}")


def _answers(s: Swarm) -> bool:
    try:
        return httpx.get(f"{s.base_url}/api/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _as_deployed(s: Swarm) -> bool:
    """The backend as the stack file has it: the base version, one task, start-first."""
    spec = s.inspect("backend")["Spec"]
    return (
        s.image_of("backend").endswith(f"-backend:{BASE_VERSION}")
        and spec["Mode"]["Replicated"]["Replicas"] == 1
        and spec["UpdateConfig"]["Order"] == "start-first"
    )


@pytest.fixture(scope="session")
def swarm() -> Iterator[Swarm]:
    s = Swarm.from_environment()
    brought_up = False
    keep = os.environ.get("SWARM_KEEP") == "1"
    if not _answers(s):
        brought_up = True
        for args in (("up", "--nodes", "1"), ("deploy",)):
            r = s.script(*args)
            if r.returncode != 0:
                if not keep:  # nothing left behind (SWARM_KEEP=1 keeps it to look at)
                    s.script("down", "--yes")
                pytest.fail(f"scripts/swarm.sh {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    if not _answers(s):
        pytest.fail(f"the swarm stack does not answer on {s.base_url}/api/health")
    if not brought_up and not _as_deployed(s):
        # a kept swarm that an earlier run (or an operator) changed: the stack
        # file again, declaratively (backend v1.0.0, one task; named, since
        # a deploy without a version keeps the running one)
        r = s.script("deploy", env={"BACKEND_VERSION": BASE_VERSION})
        if r.returncode != 0 or not _as_deployed(s):
            pytest.fail(f"scripts/swarm.sh deploy did not restore the stack:\n{r.stderr[-3000:]}")
    yield s
    if brought_up and not keep:
        r = s.script("down", "--yes")
        assert r.returncode == 0, r.stderr[-2000:]
        assert not s.left_behind(), r.stderr[-2000:]
