"""Cut a container off the compose network (``docker network disconnect``)
while it keeps running: the partition a container-state view cannot see.

The operator must see it anyway, in the health panel (the container list
still says running and healthy, its health check is local); the API answers
with a 5xx instead of hanging; reconnecting brings everything back without
touching the console, and no acknowledged write is lost.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._harness import (
    AckedWriter,
    LoadLoop,
    MonitorWatch,
    console_settings,
    docker,
    figure,
    inspect,
    running_and_healthy,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

# which -> (the endpoint that must fail through nginx, what the console shows it on)
CASES = {
    "db": "/api/health/database",
    "redis": "/api/health/cache",
    "serving": "/api/health",
}


def _service(stack: Stack, which: str) -> str:
    return f"backend_{stack.env.get('ACTIVE_COLOUR', 'blue')}" if which == "serving" else which


def _status(stack: Stack, path: str) -> tuple[int | None, str]:
    try:
        r = httpx.get(stack.base_url + path, timeout=15)
        return r.status_code, ""
    except httpx.HTTPError as exc:
        return None, type(exc).__name__


@pytest.mark.parametrize("which", list(CASES))
async def test_network_disconnect(stack: Stack, which: str) -> None:
    stack.reload_env()
    name = stack.container(_service(stack, which))
    path = CASES[which]
    # The network that carries what the fault must cut: db and redis are on
    # `data` only (docs/RELIABILITY.md, defect 1); nginx reaches the backends on
    # `default`.
    network = f"{stack.name}_{'default' if which == 'serving' else 'data'}"
    networks = inspect(name)["NetworkSettings"]["Networks"]
    assert network in networks, f"{name} is not on {network}: {list(networks)}"
    short_id = inspect(name)["Id"][:12]
    aliases = [a for a in (networks[network].get("Aliases") or []) if a != short_id]
    wait_until(
        lambda: running_and_healthy(name), timeout=120, what=f"{name} healthy before the fault"
    )
    connected = True
    try:
        with figure(f"network disconnect {which} ({name})") as fig:
            async with MonitorWatch(console_settings(stack)) as watch:
                await watch.wait(
                    lambda: (h := watch.health(path, "nginx")) is not None and h.status == 200,
                    within=60,
                    what=f"console shows {path} 200 first",
                )
                # A request in flight at the cut gets nginx's 504 after its 10 s
                # read timeout (no RST comes from a vanished container): the
                # client waits longer than that, so a timeout means nginx never answered.
                with (
                    LoadLoop(stack.base_url, timeout=15) as load,
                    AckedWriter(stack.pg_dsn) as writer,
                ):
                    await watch.wait(
                        lambda: writer.acked_count > 10, within=30, what="writes flowing"
                    )
                    t_fault = time.monotonic()
                    docker("network", "disconnect", network, name)
                    connected = False
                    rank, seen_s = await watch.seen_in_refreshes(
                        "health",
                        lambda s: any(
                            r.path == path and r.target == "nginx" and (r.status or 599) >= 500
                            for r in s.results
                        ),
                        since=t_fault,
                        refreshes=6,
                        within=60,
                        what=f"console health shows {path} failing",
                    )
                    shown = watch.health(path, "nginx")
                    info = watch.container(name)
                    # the API: a status, not a hang
                    answers = []
                    for _ in range(3):
                        answers.append(await asyncio.to_thread(_status, stack, path))
                    hung = [a for a in answers if a[0] is None and "Timeout" in a[1]]
                    assert not hung, f"{path} hung while {which} was cut off: {answers}"
                    assert all(a[0] is not None and a[0] >= 500 for a in answers), answers
                    docker("network", "connect", *[f"--alias={a}" for a in aliases], network, name)
                    connected = True
                    t_back = time.monotonic()
                    recover_s = await watch.wait(
                        lambda: (
                            (h := watch.health(path, "nginx")) is not None
                            and h.status == 200
                            and watch.payloads("health", since=t_back)
                        ),
                        within=90,
                        what=f"console shows {path} 200 again",
                    )
                result = load.result()
            acked, found = writer.verify()
            fig.operator_saw = (
                f"{path} {shown.status or shown.error} at health refresh #{rank} ({seen_s:.1f} s) "
                f"while the container list said {info.state}/{info.health}"
            )
            fig.recover_s = round(recover_s, 1)
            fig.load(result)
            fig.rows_acked = acked
            fig.rows_lost = acked - found
            fig.extra = {"outcomes": result.outcomes(), "api_answers": answers}
            assert rank <= 6, f"{path} failure shown only at health refresh #{rank}"
            assert not result.timeouts, f"{len(result.timeouts)} requests hung"
            assert found == acked, f"{acked - found} acknowledged rows lost"
    finally:
        if not connected:
            docker(
                "network", "connect", *[f"--alias={a}" for a in aliases], network, name, check=False
            )
