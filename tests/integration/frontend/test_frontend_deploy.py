"""The web frontend deployed with the backend (issue 13): blue-green of both
with one switch, rolling (backend first, then the frontend start-first),
rollback of both, a failed frontend undone with the backend, and a version
without a frontend image refused. Deploys run under three loops at once:

- page loads in a real headless Chromium through nginx over HTTPS (the
  browser is a client that is not the host: ``https://nginx/``), each a
  full navigation whose document, script and stylesheet must answer 200
  and whose script must have asked ``/api/health`` and shown it healthy;
- page loads over plain HTTP from the host (the host keeps plain HTTP; a
  client that is not the host is redirected to HTTPS): ``/``, its script,
  its stylesheet and ``/version.json``, through :class:`tests.load.LoadLoop`;
- the API load of every deploy test (``/api/health``, tests/load.py).

None may fail. The page loads are paced under nginx's per-client limit
(10 requests/s, burst 20: the browser is not exempt), so a load loop never
meets a 429 of its own making. Figures (loads, failures, the deploy's
duration) go to the ops figures file; they are reported, not asserted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import Stack
from tests.integration.frontend.cdp import CdpError, Page, open_page
from tests.integration.frontend.conftest import SITE
from tests.integration.ops.ops_helpers import (
    deploy_load,
    read_events_until,
    record_figure,
    run_cli,
    start_cli,
)
from tests.load import LoadLoop

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

PAGE_PATHS = ("/", "/app.js", "/style.css", "/version.json")
"""A page load over plain HTTP, request by request."""

LOAD_JS = """(async () => {
  const nav = performance.getEntriesByType('navigation')[0];
  const assets = performance.getEntriesByType('resource')
    .filter(r => /\\/(app\\.js|style\\.css)$/.test(new URL(r.name).pathname))
    .map(r => [new URL(r.name).pathname, r.responseStatus]);
  const v = await fetch('/version.json', {cache: 'no-store'});
  return {status: nav ? nav.responseStatus : null, assets,
          version: v.ok ? (await v.json()).version : 'HTTP ' + v.status,
          health: document.getElementById('health').dataset.status,
          login: !!document.getElementById('login-form')};
})()"""
"""What one page load produced: the document's status, its script's and
stylesheet's, the page's health line (set by its script from /api/health),
and which frontend version served it."""


@dataclass
class PageLoop:
    """Page loads in the browser, one after another (paced), in a thread."""

    page: Page
    pause: float = 0.8
    max_loads: int = 300
    max_seconds: float = 300.0
    loads: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _one(self) -> dict[str, Any]:
        t = time.monotonic()
        try:
            self.page.navigate(SITE, bound_s=15)
            self.page.wait_for(
                "document.getElementById('health').dataset.status !== 'unknown'",
                "the page's health line",
                bound_s=10,
            )
            info: dict[str, Any] = self.page.evaluate(LOAD_JS, timeout=15)
        except CdpError as exc:
            return {"t": t, "ok": False, "error": str(exc)[:300]}
        ok = (
            info.get("status") == 200
            and info.get("login") is True
            and info.get("health") == "healthy"
            and len(info.get("assets") or []) == 2
            and all(status == 200 for _path, status in info["assets"])
            and str(info.get("version", "")).startswith("v")
        )
        return {"t": t, "ok": ok, **info}

    def _run(self) -> None:
        started = time.monotonic()
        while (
            not self._stop.is_set()
            and len(self.loads) < self.max_loads
            and time.monotonic() - started < self.max_seconds
        ):
            self.loads.append(self._one())
            self._stop.wait(self.pause)

    def start(self) -> PageLoop:
        self._thread = threading.Thread(target=self._run, name="page-loads", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.loads and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop_after(self, version: str, count: int = 3, bound_s: float = 30) -> None:
        """Stop once ``count`` loads in a row were served ``version`` (bounded)."""
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            tail = self.loads[-count:]
            if len(tail) == count and all(x.get("version") == version for x in tail):
                break
            time.sleep(0.1)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [x for x in self.loads if not x["ok"]]


@pytest.fixture
def fe_page(browser: str) -> Iterator[Page]:
    with open_page(browser) as p:
        yield p


def _env(stack: Stack) -> dict[str, str]:
    return stack.deploy_env()


def _active_conf(stack: Stack) -> str:
    return subprocess.run(
        ["docker", "exec", stack.container("nginx"), "cat", "/etc/nginx/upstream/active.conf"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def _served(stack: Stack) -> tuple[str, str, str, str]:
    """(API version, API upstream, page version, page upstream) through nginx."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        api = http.get("/api/health")
        page = http.get("/version.json")
    return (
        api.json()["version"],
        api.headers["x-upstream-colour"],
        page.json()["version"],
        page.headers["x-upstream"],
    )


def _next_version(stack: Stack, *candidates: str) -> str:
    """The first candidate neither the API nor the page serves now."""
    api, _u, page, _p = _served(stack)
    return next(v for v in candidates if v not in (api, page))


def _under_load(
    stack: Stack, page: Page, version: str, *args: str
) -> tuple[Any, PageLoop, Any, Any]:
    """``stackdeck deploy ARGS`` while the three loops run; their results."""
    http_pages = LoadLoop(
        stack.base_url, PAGE_PATHS, workers=1, pause=0.05, max_requests=20_000, max_seconds=600
    )
    with deploy_load(stack) as api_load, http_pages:
        loop = PageLoop(page).start()
        try:
            r = run_cli(stack, "deploy", "--version", version, *args)
        finally:
            loop.stop_after(version)
        http_pages.wait_for_version(version, since=time.monotonic())
    return r, loop, api_load.result(), http_pages.result()


def _check_clean(name: str, r: Any, loop: PageLoop, api: Any, pages: Any) -> None:
    record_figure(
        name,
        {
            "deploy_s": round(r.seconds, 1),
            "browser_https_page_loads": len(loop.loads),
            "browser_https_failed_loads": len(loop.failed),
            "http_page_requests": pages.total,
            "http_page_failed": len(pages.failed()),
            "api_requests": api.total,
            "api_failed": len(api.failed()),
        },
    )
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert loop.failed == [], loop.failed[:5]
    assert len(loop.loads) >= 5, f"only {len(loop.loads)} page loads during the deploy"
    assert pages.failed() == [], pages.failed()[:5]
    assert api.failed() == [], api.failed()[:5]


@pytest.fixture(autouse=True)
def _no_interrupted_deploy(stack: Stack) -> None:
    """No stale lock and no interrupted deploy left by a test killed halfway."""
    r = run_cli(stack, "status")
    st = json.loads(r.stdout)
    if st["lock"]["stale"]:
        assert run_cli(stack, "lock", "break").rc == 0
    if (st.get("deploy") or {}).get("interrupted"):
        rb = run_cli(stack, "rollback", "--force")
        assert rb.rc == 0, rb.text()[-2000:]


def test_backend_and_frontend_blue_green_one_switch_under_page_and_api_load(
    stack: Stack, fe_page: Page
) -> None:
    before = _env(stack)
    frm, ffrm = before["ACTIVE_COLOUR"], before.get("FRONTEND_COLOUR", before["ACTIVE_COLOUR"])
    version = _next_version(stack, "v2.3.0-fe", "v2.3.1-fe")
    r, loop, api, pages = _under_load(
        stack,
        fe_page,
        version,
        "--services",
        "backend frontend",
        "--build",
        "--bake-seconds",
        "5",
    )
    _check_clean("frontend_deploy_blue_green", r, loop, api, pages)
    to, fto = ("green" if frm == "blue" else "blue"), ("green" if ffrm == "blue" else "blue")
    # one switch: one switch step moved both lines of active.conf
    switches = [e for e in r.events if e.get("step") == "switch" and e.get("status") == "ok"]
    assert len(switches) == 1 and switches[0]["data"]["frontend_colour"] == fto, switches
    conf = _active_conf(stack)
    assert f"set $active_backend backend_{to};" in conf
    assert f"set $active_frontend frontend_{fto};" in conf
    assert _served(stack) == (version, f"backend_{to}", version, f"frontend_{fto}")
    assert loop.loads[-1]["version"] == version  # the browser got the new page
    assert pages.versions(since=0).get(version, 0) >= 3
    env = _env(stack)
    assert env["FRONTEND_VERSION"] == version and env["FRONTEND_COLOUR"] == fto
    assert env[f"FRONTEND_{fto.upper()}_VERSION"] == version
    last = json.loads((stack.state_dir / "history.jsonl").read_text().splitlines()[-1])
    assert (last["frontend_version"], last["frontend_from_version"]) == (
        version,
        before.get(f"FRONTEND_{ffrm.upper()}_VERSION", before.get("FRONTEND_VERSION")),
    )

    # rollback: both back on the colours they left, in one switch
    old_api, old_page = (
        before[f"{frm.upper()}_VERSION"],
        before.get(f"FRONTEND_{ffrm.upper()}_VERSION", before.get("FRONTEND_VERSION")),
    )
    rb = run_cli(stack, "rollback")
    assert rb.rc == 0, rb.stdout[-3000:] + rb.stderr[-2000:]
    if ffrm == frm:  # the page went with the API: both return together
        assert _served(stack) == (old_api, f"backend_{frm}", old_page, f"frontend_{frm}")
    else:  # deployed apart before: only the API's colour moves back
        assert _served(stack)[:2] == (old_api, f"backend_{frm}")


def test_rolling_backend_first_then_the_frontend_start_first(stack: Stack, fe_page: Page) -> None:
    version = _next_version(stack, "v2.4.0-fe", "v2.4.1-fe")
    ffrm = _env(stack).get("FRONTEND_COLOUR", _env(stack)["ACTIVE_COLOUR"])
    r, loop, api, pages = _under_load(
        stack,
        fe_page,
        version,
        "--strategy",
        "rolling",
        "--services",
        "backend frontend",
        "--build",
    )
    _check_clean("frontend_deploy_rolling", r, loop, api, pages)
    steps = [e["step"] for e in r.events if e.get("status") == "ok"]
    # Method 2's order: the backend verified (home again) before the frontend starts
    assert (
        steps.index("switch-home") < steps.index("start-frontend") < steps.index("switch-frontend")
    )
    fto = "green" if ffrm == "blue" else "blue"
    assert _served(stack)[2:] == (version, f"frontend_{fto}")
    old = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", stack.container(f"frontend_{ffrm}")],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert old == "exited"  # start-first, then the old container stopped (kept)


def test_a_frontend_that_is_not_the_version_is_undone_with_the_backend(stack: Stack) -> None:
    """The frontend image of a version that reports another one (a mislabelled
    build): caught on the idle colour before any switch; both new colours
    stopped, both slots back, traffic never moved."""
    env = _env(stack)
    ffrm = env.get("FRONTEND_COLOUR", env["ACTIVE_COLOUR"])
    fto = "green" if ffrm == "blue" else "blue"
    bad = "v0.9.9-mislabelled"
    serving_page = _served(stack)[2]
    subprocess.run(
        [
            "docker",
            "tag",
            f"{stack.image_prefix}-frontend:{serving_page}",
            f"{stack.image_prefix}-frontend:{bad}",
        ],
        check=True,
        timeout=30,
    )
    before = _served(stack)
    fto_prev = env.get(f"FRONTEND_{fto.upper()}_VERSION")
    r = run_cli(stack, "deploy", "--version", bad, "--services", "backend frontend", "--build")
    assert r.rc != 0, r.stdout[-2000:]
    assert "frontend-healthy" in r.steps("fail"), r.text()[-3000:]
    assert f"says {serving_page}, not {bad}" in r.message, r.text()[-3000:]
    undo = [e["message"] for e in r.events if e["step"] == "rollback"]
    assert any(f"stopped frontend_{fto}" in m for m in undo), undo
    assert _served(stack) == before
    after = _env(stack)
    assert after.get(f"FRONTEND_{fto.upper()}_VERSION") == fto_prev
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", stack.container(f"frontend_{fto}")],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert state in ("exited", "created"), state


def test_a_frontend_version_without_an_image_is_refused(stack: Stack) -> None:
    before = (_active_conf(stack), _env(stack))
    r = run_cli(stack, "deploy", "--version", "v0.0.0-nofrontend", "--services", "frontend")
    assert r.rc == 2, r.stdout + r.stderr
    assert f"no image {stack.image_prefix}-frontend:v0.0.0-nofrontend" in r.message, r.text()
    assert "add --build" in r.message and "Traceback" not in r.stdout + r.stderr
    assert (_active_conf(stack), _env(stack)) == before


def test_a_deploy_killed_after_the_switch_is_recovered_page_and_api_back(stack: Stack) -> None:
    """``kill -9`` during the bake of a deploy of both: the next operation
    (here ``stackdeck rollback``) finds the journal, puts ``/api/`` and ``/``
    back on the colours they left (the new version was never verified) and
    stops both new colours."""
    before = _served(stack)
    env = _env(stack)
    ffrm = env.get("FRONTEND_COLOUR", env["ACTIVE_COLOUR"])
    fto = "green" if ffrm == "blue" else "blue"
    version = _next_version(stack, "v2.5.0-fe", "v2.5.1-fe")
    proc = start_cli(
        stack,
        "deploy",
        "--version",
        version,
        "--services",
        "backend frontend",
        "--build",
        "--bake-seconds",
        "60",
    )
    try:
        read_events_until(proc, lambda e: e["step"] == "switch" and e["status"] == "ok")
        assert _served(stack)[2:] == (version, f"frontend_{fto}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert run_cli(stack, "lock", "break").rc == 0
    r = run_cli(stack, "rollback", "--force")
    assert r.rc == 0, r.text()[-3000:]
    recover = [e["message"] for e in r.events if e["step"] == "recover"]
    assert any(f"the page is on frontend_{ffrm}" in m for m in recover), recover
    assert _served(stack) == before
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}}", stack.container(f"frontend_{fto}")],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert state in ("exited", "created"), state  # created: its slot put back to its version
