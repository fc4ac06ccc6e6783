"""The engine's event buffer in the integration tests: what it still replays,
and how to make it forget (it keeps only its last 256 events)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def engine_replays(container: str, since: float) -> set[str]:
    """The actions of ``container`` the engine still returns for ``since``
    (its own answer: ``docker events --since .. --until now``)."""
    out = _docker(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{time.time():.3f}",
        "--filter",
        f"container={container}",
        "--format",
        "{{.Action}}",
    )
    return set(out.split())


def forget_in_the_engine(api: Any, container: str, since: float) -> None:
    """Push ``container``'s die and start since ``since`` out of the engine's
    256-event buffer, until the engine itself no longer returns them: image
    tag/untag events are cheap and touch no container (health probes do the
    same, slower). Bounded: 20 rounds of 128 events. ``api``: docker-py's
    low-level client."""
    image = json.loads(_docker("inspect", container))[0]["Image"]
    noise = f"stackdeck-events-noise-{uuid.uuid4().hex[:8]}"
    try:
        for _ in range(20):
            if not engine_replays(container, since) & {"die", "start"}:
                break
            for i in range(64):
                api.tag(image, noise, f"n{i}")
                api.remove_image(f"{noise}:n{i}")
        assert not engine_replays(container, since) & {"die", "start"}, "the engine still has it"
    finally:
        for tag in _docker("images", "--format", "{{.Repository}}:{{.Tag}}", noise).split():
            _docker("rmi", tag)
