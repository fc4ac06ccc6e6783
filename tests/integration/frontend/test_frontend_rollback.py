"""``stackdeck rollback --services frontend`` (issue 13 item 1): the page
alone back on its previous colour and version, one switch of nginx's ``/``,
under a real Chromium's page loads and plain-HTTP page loads from the host
(none may fail), the API untouched; a plain ``rollback`` after a
frontend-only deploy moves the page back (the last deploy's services
decide); nothing to roll back to is refused with nothing changed."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import Stack
from tests.integration.frontend.cdp import Page
from tests.integration.frontend.test_frontend_deploy import (
    PAGE_PATHS,
    PageLoop,
    _active_conf,
    _env,
    _next_version,
    _served,
    fe_page,  # noqa: F401  (the fixture)
)
from tests.integration.ops.ops_helpers import record_figure, run_cli
from tests.load import LoadLoop

pytestmark = [pytest.mark.stack, pytest.mark.destructive]


def _history(stack: Stack) -> list[dict[str, Any]]:
    path = stack.state_dir / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rollback_under_page_load(stack: Stack, page: Page, version: str, *args: str) -> Any:
    """``stackdeck rollback ARGS`` while a browser and the host load the page;
    both loops stop once ``version`` is served (bounded)."""
    http_pages = LoadLoop(
        stack.base_url, PAGE_PATHS, workers=1, pause=0.05, max_requests=5_000, max_seconds=180
    )
    with http_pages:
        loop = PageLoop(page, max_loads=120, max_seconds=180).start()
        try:
            r = run_cli(stack, "rollback", *args)
        finally:
            loop.stop_after(version)
        http_pages.wait_for_version(version, since=time.monotonic())
    pages = http_pages.result()
    return r, loop, pages


def _deploy_page(stack: Stack, version: str, *extra: str) -> None:
    r = run_cli(stack, "deploy", "--version", version, "--services", "frontend", "--build", *extra)
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_the_page_alone_rolls_back_under_page_load(stack: Stack, fe_page: Page) -> None:  # noqa: F811
    api, api_up, old_page, old_up = _served(stack)
    version = _next_version(stack, "v2.5.0-fe", "v2.5.1-fe")
    _deploy_page(stack, version)
    assert _served(stack)[2] == version
    new_up = _served(stack)[3]
    assert new_up != old_up
    before_lines = len(_history(stack))

    r, loop, pages = _rollback_under_page_load(stack, fe_page, old_page, "--services", "frontend")
    record_figure(
        "frontend_rollback_page_alone",
        {
            "rollback_s": round(r.seconds, 1),
            "browser_page_loads": len(loop.loads),
            "browser_failed_loads": len(loop.failed),
            "http_page_requests": pages.total,
            "http_page_failed": len(pages.failed()),
        },
    )
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert loop.failed == [], loop.failed[:5]
    assert len(loop.loads) >= 3, f"only {len(loop.loads)} page loads during the rollback"
    assert pages.failed() == [], pages.failed()[:5]
    assert loop.loads[-1]["version"] == old_page  # the browser got the old page back
    # the page is back on its colour and version; the API did not move
    assert _served(stack) == (api, api_up, old_page, old_up)
    colour = old_up.removeprefix("frontend_")
    assert f"set $active_frontend {old_up};" in _active_conf(stack)
    env = _env(stack)
    assert (env["FRONTEND_COLOUR"], env["FRONTEND_VERSION"]) == (colour, old_page)
    switches = [
        e for e in r.events if e.get("step") == "switch-frontend" and e.get("status") == "ok"
    ]
    assert len(switches) == 1, switches
    # history: one rollback line, the page's
    lines = _history(stack)[before_lines:]
    assert [(x["op"], x["result"]) for x in lines] == [("rollback", "ok")], lines
    assert lines[0]["services"] == ["frontend"]
    assert (lines[0]["frontend_version"], lines[0]["frontend_from_version"]) == (
        old_page,
        version,
    )

    # a plain rollback after a frontend-only deploy moves the page back too
    _deploy_page(stack, version)
    assert _served(stack) == (api, api_up, version, new_up)
    plain = run_cli(stack, "rollback")
    assert plain.rc == 0, plain.stdout[-3000:] + plain.stderr[-2000:]
    assert _served(stack) == (api, api_up, old_page, old_up)


def test_nothing_to_roll_the_page_back_to_is_refused(stack: Stack) -> None:
    # --force redeploys the serving version to the idle colour: both colours
    # and the history then hold one version only
    _deploy_page(stack, _served(stack)[2], "--force")
    served = _served(stack)
    conf, env, lines = _active_conf(stack), _env(stack), len(_history(stack))
    r = run_cli(stack, "rollback", "--services", "frontend")
    assert r.rc != 0
    out = r.stdout + r.stderr
    assert "nothing to roll the page back to" in out, out[-2000:]
    assert "Traceback" not in out
    assert (_active_conf(stack), _env(stack), len(_history(stack))) == (conf, env, lines)
    assert _served(stack)[2:] == served[2:]
    # a service rollback does not know is refused the same way
    bad = run_cli(stack, "rollback", "--services", "db")
    assert bad.rc != 0 and "unknown service 'db'" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


def _alias(stack: Stack, version: str, alias: str) -> None:
    """The backend image of ``version`` under a second tag (a new version
    without a build: what a rollback moves is containers, not code)."""
    repo = f"{stack.image_prefix}-backend"
    subprocess.run(["docker", "tag", f"{repo}:{version}", f"{repo}:{alias}"], check=True)


def test_a_plain_rollback_after_api_only_deploys_leaves_the_page(stack: Stack) -> None:
    """The API and the page deployed together, then the API alone twice (so
    the API serves from the page's colour again): a plain rollback takes the
    API one step back and leaves the page where it is; it must not put the
    page back on the older version its other colour still holds."""
    both = _next_version(stack, "v2.6.0-fe", "v2.6.1-fe")
    r = run_cli(
        stack, "deploy", "--version", both, "--services", "backend frontend", "--build",
        "--bake-seconds", "3",
    )  # fmt: skip
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    page = _served(stack)[2:]
    # the API alone, at least twice, until it serves from the page's colour
    # again (each blue-green deploy moves it to the other colour)
    api_steps: list[str] = []
    for n in (1, 2, 3):
        if len(api_steps) >= 2 and _served(stack)[1].removeprefix("backend_") == page[
            1
        ].removeprefix("frontend_"):
            break
        version = f"{both}.api{n}"
        _alias(stack, both, version)
        r = run_cli(
            stack, "deploy", "--version", version, "--services", "backend", "--bake-seconds", "3"
        )
        assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
        api_steps.append(version)
    api, api_up, *_ = _served(stack)
    assert api == api_steps[-1] and api_up.removeprefix("backend_") == page[1].removeprefix(
        "frontend_"
    ), (api_up, page)  # the API is back on the page's colour: the case that went wrong

    r = run_cli(stack, "rollback")
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert _served(stack)[0] == api_steps[-2]  # the API one step back
    assert _served(stack)[2:] == page  # the page did not move
    assert [e for e in r.events if "the page with it" in e.get("message", "")] == []
