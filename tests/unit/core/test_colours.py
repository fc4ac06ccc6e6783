"""Which colour serves and what the other one is for (console/core/colours.py),
and the health source leaving a stopped standby colour alone."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from console.core.colours import colour_roles, frontend_roles, not_running, serving_colour
from console.core.config import Settings
from console.core.models import (
    ContainerInfo,
    ContainersSnapshot,
    EndpointResult,
    HealthSnapshot,
)
from console.core.monitor import Monitor
from console.core.sources.health import FRONTEND_PATH, HEALTH_PATHS, HealthSource
from console.core.stack import StackNames

NOW = datetime(2025, 3, 14, 14, 2, 11, tzinfo=UTC)
WAIT = 10.0  # upper bound for a condition to come true (not a timed assert)


def backend(colour: str, state: str, version: str, health: str | None = None) -> ContainerInfo:
    return ContainerInfo(
        id=colour,
        name=StackNames("investment").container(f"backend_{colour}"),
        service=f"backend_{colour}",
        colour=colour,  # type: ignore[arg-type]
        image="investment-backend",
        tag=version,
        state=state,
        health=health,
        version=version,
    )


def containers(serving: str | None, **states: str) -> ContainersSnapshot:
    """``containers("blue", blue="running", green="exited")``; a colour not
    named has no container."""
    versions = {"blue": "v1.2.2", "green": "v1.2.3"}
    infos = [backend(c, s, versions[c]) for c, s in states.items()]
    return ContainersSnapshot(
        taken_at=NOW,
        project="investment",
        containers=infos,
        serving_colour=serving,  # type: ignore[arg-type]
    )


def roles(snapshot: ContainersSnapshot | None, health: HealthSnapshot | None = None) -> dict:
    return {c: s.role for c, s in colour_roles(snapshot, health).items()}


# --- the classification --------------------------------------------------------------


def test_after_a_rollback_the_stopped_colour_is_standby() -> None:
    # green was rolled back from: exited (with the engine's stale "unhealthy").
    snap = containers("blue", blue="running", green="exited")
    got = colour_roles(snap, None)
    assert got["blue"].role == "serving"
    assert got["green"].role == "standby"
    assert got["green"].version == "v1.2.3" and got["green"].state == "exited"
    assert got["green"].is_standby and not got["blue"].is_standby


def test_the_previous_colour_kept_running_is_standby_running() -> None:
    assert roles(containers("green", blue="running", green="running")) == {
        "blue": "standby-running",
        "green": "serving",
    }


def test_a_crash_looping_rollback_target_is_not_called_stopped() -> None:
    # restarting: it tries to run; it is no outage, but not a quiet standby.
    assert roles(containers("green", blue="restarting", green="running"))["blue"] == (
        "standby-running"
    )


@pytest.mark.parametrize("state", ["exited", "dead", "created"])
def test_the_serving_colour_not_running_is_down(state: str) -> None:
    got = roles(containers("green", blue="running", green=state))
    assert got == {"blue": "standby-running", "green": "down"}


def test_the_serving_colour_without_a_container_is_down() -> None:
    assert roles(containers("green", blue="exited")) == {"blue": "standby", "green": "down"}


def test_a_colour_without_a_container_is_absent() -> None:
    assert roles(containers("blue", blue="running")) == {"blue": "serving", "green": "absent"}


def test_without_a_serving_colour_nothing_is_interpreted() -> None:
    # nginx unreadable: which stopped colour is on purpose is not known.
    assert roles(containers(None, blue="running", green="exited")) == {
        "blue": "unknown",
        "green": "unknown",
    }


def _health(nginx_colour: str | None, **direct: int | None) -> HealthSnapshot:
    results = [
        EndpointResult(
            path="/api/health", target="nginx", status=200, version="v1", colour=nginx_colour
        )
    ]
    for colour, status in direct.items():
        version = "v1" if status == 200 else None
        results.append(
            EndpointResult(path="/api/health", target=colour, status=status, version=version)  # type: ignore[arg-type]
        )
    return HealthSnapshot(taken_at=NOW, results=results)


def test_without_a_container_list_the_health_answers_decide() -> None:
    # The engine does not answer: serving from nginx's answer, running from
    # each colour's own /api/health (a 502 of nginx's: not running).
    health = _health("blue", blue=200, green=502)
    assert serving_colour(None, health) == "blue"
    assert roles(None, health) == {"blue": "serving", "green": "standby"}
    assert roles(None, _health("blue", blue=200, green=200))["green"] == "standby-running"
    assert roles(None, _health("green", blue=200, green=None))["green"] == "down"


def test_the_container_list_names_the_serving_colour_before_the_health() -> None:
    # nginx's active file (read from the container) wins over an old answer.
    snap = containers("green", blue="running", green="running")
    assert serving_colour(snap, _health("blue")) == "green"


def test_the_health_source_skips_only_stopped_colours_that_do_not_serve() -> None:
    assert not_running(containers("blue", blue="running", green="exited")) == {"green"}
    assert not_running(containers("blue", blue="running")) == {"green"}  # no container
    assert not_running(containers("green", blue="running", green="exited")) == set()  # down: asked
    assert not_running(containers("green", blue="running", green="running")) == set()
    assert not_running(containers(None, blue="running", green="exited")) == set()


# --- the health source: a stopped standby colour is not asked ----------------------


class CountingNginx:
    """nginx in front of blue (serving, up) and green (stopped: 502 from nginx
    itself). Counts every request by URL path."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.asked[path] = self.asked[path] + 1
        if path.startswith("/direct/green/"):
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return httpx.Response(200, json={"status": "ok", "version": "v1.2.2", "colour": "blue"})

    def green(self) -> int:
        return sum(n for p, n in self.asked.items() if p.startswith("/direct/green/"))


@pytest.fixture
def settings(clean_env: Path) -> Settings:
    return Settings(repo_root=clean_env, backoff_cap=0.05)


def _source(settings: Settings, nginx: CountingNginx) -> HealthSource:
    client = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(nginx))
    return HealthSource(settings, clock=lambda: NOW, client=client)


async def test_a_stopped_standby_colour_is_not_probed_every_poll(settings: Settings) -> None:
    nginx = CountingNginx()
    source = _source(settings, nginx)
    assert source.note_containers(containers("blue", blue="running", green="exited"))
    for _ in range(5):
        snap = await source.poll()
    assert nginx.green() == 0
    assert not [r for r in snap.results if r.target == "green" and r.path in HEALTH_PATHS]
    # blue (serving) is still asked: four paths through nginx every poll, its
    # /api/health directly every poll, its deep paths directly at the slower
    # cadence (the clock stands still here: the first poll only)
    assert all(nginx.asked[p] == 5 for p in HEALTH_PATHS)
    assert nginx.asked["/direct/blue/api/health"] == 5
    assert all(nginx.asked[f"/direct/blue{p}"] == 1 for p in HEALTH_PATHS[1:])
    assert source.skipped == {"green"}


async def test_a_colour_started_again_is_probed_again(settings: Settings) -> None:
    nginx = CountingNginx()
    source = _source(settings, nginx)
    source.note_containers(containers("blue", blue="running", green="exited"))
    await source.poll()
    assert nginx.green() == 0
    assert source.note_containers(containers("blue", blue="running", green="running"))
    assert not source.note_containers(containers("blue", blue="running", green="running"))
    snap = await source.poll()
    assert nginx.asked["/direct/green/api/health"] == 1
    assert next(r.status for r in snap.results if r.target == "green") == 502


async def test_the_serving_colour_is_probed_even_when_stopped(settings: Settings) -> None:
    # nginx routes to green and green is stopped: an outage, it stays asked
    # (its /api/health each poll) so the console sees it come back.
    nginx = CountingNginx()
    source = _source(settings, nginx)
    assert not source.note_containers(containers("green", blue="running", green="exited"))
    for _ in range(3):
        await source.poll()
    assert nginx.asked["/direct/green/api/health"] == 3


async def test_the_monitor_hands_the_container_list_to_the_health_source(
    settings: Settings,
) -> None:
    """The wiring: a containers snapshot published by the monitor reaches the
    health source, which is polled again at once and leaves the stopped
    standby colour alone."""
    from console.core.sources.base import Source

    class OneList(Source):
        name = "engine"
        kind = "containers"

        async def poll(self) -> ContainersSnapshot:
            return containers("blue", blue="running", green="exited")

    nginx = CountingNginx()
    health = _source(settings, nginx)
    healths: list[HealthSnapshot] = []
    changed = asyncio.Event()

    def sink(kind: str, payload: object) -> None:
        if isinstance(payload, HealthSnapshot):
            healths.append(payload)
        changed.set()

    def green_left_alone() -> bool:
        # A full poll (blue asked directly; the early snapshot of a first
        # poll has nginx's answers only) without a green result.
        targets = [{r.target for r in h.results if r.path in HEALTH_PATHS} for h in healths]
        return health.skipped == {"green"} and any(
            "blue" in t and "green" not in t for t in targets
        )

    async with Monitor(settings, sink, sources=[OneList(settings), health], autostart=False):

        async def until() -> None:
            while not green_left_alone():
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(until(), timeout=WAIT)


def frontend(colour: str, state: str, version: str) -> ContainerInfo:
    return ContainerInfo(
        id=f"fe-{colour}",
        name=StackNames("investment").container(f"frontend_{colour}"),
        service=f"frontend_{colour}",
        colour=colour,  # type: ignore[arg-type]
        image="investment-frontend",
        tag=version,
        state=state,
        health="healthy" if state == "running" else None,
        version=version,
    )


def test_the_frontends_colours_have_roles_of_their_own() -> None:
    """The page's colour is not the API's: a running frontend_green does not
    make a stopped backend_green "running", and the page's standby colour is
    judged against the frontend's serving colour."""
    snap = ContainersSnapshot(
        taken_at=NOW,
        project="investment",
        containers=[
            backend("blue", "running", "v1.2.2"),
            backend("green", "exited", "v1.2.3"),
            frontend("blue", "exited", "v1.2.2"),
            frontend("green", "running", "v1.2.3"),
        ],
        serving_colour="blue",
        serving_frontend="green",
    )
    assert roles(snap) == {"blue": "serving", "green": "standby"}
    page = frontend_roles(snap)
    assert {c: s.role for c, s in page.items()} == {"blue": "standby", "green": "serving"}
    assert page["green"].version == "v1.2.3"
    down = snap.model_copy(update={"serving_frontend": "blue"})
    assert frontend_roles(down)["blue"].role == "down"


def test_a_replica_is_its_colour_s_container_under_its_own_name() -> None:
    """``stackdeck scale backend=N`` runs containers 2..N of a colour as
    compose's ``backend_<colour>_replica`` (compose/docker-compose.yml): the
    containers panel lists each under its own name, with its colour."""
    from console.core.sources.docker.inspect import container_info

    labels = {
        "com.docker.compose.project": "investment",
        "com.docker.compose.service": "backend_blue_replica",
        "com.docker.compose.container-number": "1",
        "com.investment.colour": "blue",
        "com.investment.version": "v1.2.2",
        "com.investment.slot": "replica",
    }
    replica = container_info(
        {
            "Id": "0123456789abcdef",
            "Name": "/investment-backend_blue_replica-1",
            "Config": {"Image": "investment-backend:v1.2.2", "Labels": labels, "Env": []},
            "State": {"Status": "running", "Health": {"Status": "healthy"}},
        }
    )
    assert replica.name == "investment-backend_blue_replica-1"
    assert (replica.service, replica.colour, replica.version) == (
        "backend_blue_replica",
        "blue",
        "v1.2.2",
    )
    snap = containers("blue", blue="running", green="exited")
    snap = snap.model_copy(update={"containers": [*snap.containers, replica]})
    assert roles(snap) == {"blue": "serving", "green": "standby"}
    assert len({c.name for c in snap.containers}) == 3  # one row each


# --- the health source: the web frontend's page --------------------------------------


class FrontendNginx:
    """nginx in front of the frontend's colours: ``/version.json`` of the page
    from ``frontend_<serving>`` (``X-Upstream``), each colour's directly,
    a colour in ``stopped`` a 502 of nginx's own. The backend answers 200."""

    def __init__(self, serving: str, versions: dict[str, str], stopped: set[str]) -> None:
        self.serving, self.versions, self.stopped = serving, versions, stopped
        self.asked: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.asked[path] = self.asked[path] + 1
        if not path.endswith("/version.json"):
            return httpx.Response(200, json={"status": "ok", "version": "v1.2.2", "colour": "blue"})
        colour = self.serving
        if path.startswith("/direct/frontend_"):
            colour = path.removeprefix("/direct/frontend_").split("/")[0]
        if colour in self.stopped:
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return httpx.Response(
            200,
            json={"version": self.versions[colour]},
            headers={"X-Upstream": f"frontend_{colour}"},
        )


def _fe_source(settings: Settings, nginx: FrontendNginx) -> HealthSource:
    client = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(nginx))
    return HealthSource(settings, clock=lambda: NOW, client=client)


def _page(snap: HealthSnapshot) -> dict[str, EndpointResult]:
    return {r.target: r for r in snap.results if r.path == FRONTEND_PATH}


async def test_the_page_is_asked_through_nginx_and_per_frontend_colour(settings: Settings) -> None:
    nginx = FrontendNginx("green", {"blue": "v1.2.2", "green": "v1.2.3"}, stopped=set())
    source = _fe_source(settings, nginx)
    snap = await source.poll()
    page = _page(snap)
    assert set(page) == {"nginx", "blue", "green"}
    # through nginx: the page's serving colour from nginx's X-Upstream header
    assert (page["nginx"].status, page["nginx"].version, page["nginx"].colour) == (
        200,
        "v1.2.3",
        "green",
    )
    assert page["nginx"].latency_ms is not None
    assert (page["blue"].version, page["blue"].colour) == ("v1.2.2", "blue")
    assert (page["green"].version, page["green"].colour) == ("v1.2.3", "green")
    assert nginx.asked["/version.json"] == 1
    assert nginx.asked["/direct/frontend_blue/version.json"] == 1
    assert nginx.asked["/direct/frontend_green/version.json"] == 1
    # the page's rows come after the API's, and do not name the API's colour
    assert snap.results[-1].path == FRONTEND_PATH
    assert serving_colour(None, snap) == "blue"


async def test_a_stopped_frontend_colour_is_a_failure_unless_on_standby(
    settings: Settings,
) -> None:
    nginx = FrontendNginx("green", {"blue": "v1.2.2", "green": "v1.2.3"}, stopped={"blue"})
    source = _fe_source(settings, nginx)
    # no container list: blue is asked and its 502 is reported as nginx's
    blue = _page(await source.poll())["blue"]
    assert blue.status == 502 and blue.version is None and blue.error
    # the container list says frontend_blue is stopped on standby: not asked
    snap = ContainersSnapshot(
        taken_at=NOW,
        project="investment",
        containers=[
            backend("blue", "running", "v1.2.2"),
            frontend("blue", "exited", "v1.2.2"),
            frontend("green", "running", "v1.2.3"),
        ],
        serving_colour="blue",
        serving_frontend="green",
    )
    assert source.note_containers(snap)  # only the frontend's set changed
    assert source.frontend_skipped == {"blue"} and source.skipped == {"green"}
    before = nginx.asked["/direct/frontend_blue/version.json"]
    page = _page(await source.poll())
    assert set(page) == {"nginx", "green"}
    assert nginx.asked["/direct/frontend_blue/version.json"] == before
    # the serving frontend colour stopped is an outage: it stays asked
    down = snap.model_copy(update={"serving_frontend": "blue"})
    assert source.note_containers(down)
    assert source.frontend_skipped == set()
    await source.poll()
    assert nginx.asked["/direct/frontend_blue/version.json"] == before + 1
