"""stackdeck's own operations on a swarm stack, through its CLI (the same
``stackdeck deploy / rollback / scale / node`` the runbook scripts call),
against the real swarm of scripts/swarm.sh: the mode is detected (auto),
the writes go through the manager's engine API.

In order, each leaving the backend at one task for the next:

* deploy v1 -> v2 under load: Swarm's rolling update, then the bake; no
  failed request; history, audit;
* deploy of a version that answers 500 to a share of the requests: Swarm's
  health checks pass it, the bake fails, stackdeck rolls the service back
  and says why (the bake's figures);
* rollback (no version): back to the version before v2, under load, no
  failed request; its notice reaches the swarm's alert sink, through the
  swarm's Alertmanager published on the host;
* scale backend 1 -> 2 -> 1 under load, no failed request;
* bad input (a node that does not exist, draining the last node that can
  run the database, scaling a pinned service): one line, exit 2, nothing
  changed in the swarm.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fault_versions import Fault, build_fault_version
from tests.load import MIXED, LoadLoop
from tests.stack import REPO
from tests.swarm.conftest import BASE_VERSION, record_figure
from tests.swarm.swarm import Swarm

pytestmark = pytest.mark.swarm

V2 = "v2.0.0-swops"
V3_ERRORS = "v3.0.0-swops.errors"
BAKE_S = "10"


class Ops:
    """``stackdeck`` on the host, pointed at the swarm (a state folder of its own)."""

    def __init__(self, swarm: Swarm, state: Path):
        self.swarm = swarm
        self.state = state

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("STACKDECK_") and k not in ("DOCKER_HOST", "HTTP_PORT")
        }
        env.update(
            DOCKER_HOST=self.swarm.docker_host,
            STACK_NAME=self.swarm.stack,
            IMAGE_PREFIX=self.swarm.image_prefix,
            STACKDECK_STATE_DIR=str(self.state),
            SWARM_REGISTRY_PORT=os.environ.get("SWARM_REGISTRY_PORT", "5000"),
            NO_COLOR="1",
        )
        return env

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "stackdeck"),
                *args,
                "--http-port",
                str(self.swarm.http_port),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )

    def history(self) -> list[dict[str, Any]]:
        path = self.state / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def audit(self) -> list[dict[str, Any]]:
        path = self.state / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _load(swarm: Swarm) -> LoadLoop:
    return LoadLoop(
        swarm.base_url, MIXED, workers=2, pause=0.05, max_requests=8000, max_seconds=300
    )


def _served(swarm: Swarm) -> str:
    return str(httpx.get(f"{swarm.base_url}/api/health", timeout=10).json()["version"])


def _push(swarm: Swarm, base: str, version: str, fault: Fault) -> None:
    image = f"{swarm.image_prefix}-backend"
    build_fault_version(image, base, version, fault)
    r = swarm.script("push", f"{image}:{version}", timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def _one_backend_on(swarm: Swarm, version: str) -> None:
    assert swarm.image_of("backend").endswith(f":{version}"), swarm.image_of("backend")
    swarm.wait("one running backend task", lambda: len(swarm.running_tasks("backend")) == 1)


@pytest.fixture(scope="module")
def ops(swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    """The backend as the stack file has it (an earlier module may have
    rolled or scaled it), the two versions pushed."""
    if not (
        swarm.image_of("backend").endswith(f":{BASE_VERSION}")
        and swarm.inspect("backend")["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
    ):
        r = swarm.script("deploy", env={"BACKEND_VERSION": BASE_VERSION})
        assert r.returncode == 0, r.stderr[-2000:]
    _push(swarm, BASE_VERSION, V2, Fault())
    _push(swarm, BASE_VERSION, V3_ERRORS, Fault(error_every=4))
    _one_backend_on(swarm, BASE_VERSION)
    yield Ops(swarm, tmp_path_factory.mktemp("swarm-ops-state"))
    # the versions built for this module leave the host engine (the
    # registry's copies go with the swarm)
    subprocess.run(
        ["docker", "rmi", *(f"{swarm.image_prefix}-backend:{v}" for v in (V2, V3_ERRORS))],
        capture_output=True,
        check=False,
    )


def test_deploy_v1_to_v2_under_load_without_failed_requests(swarm: Swarm, ops: Ops) -> None:
    t0 = time.monotonic()
    with _load(swarm) as load:
        r = ops.run("deploy", "--version", V2, "--bake-seconds", BAKE_S)
        took = time.monotonic() - t0
        time.sleep(1)  # traffic on v2 after the operation ended
    result = load.result()
    record_figure(
        "swarm_ops_deploy_v1_v2",
        {
            "nodes": len(swarm.client.nodes.list()),
            "seconds": round(took, 1),
            "load": result.summary(),
        },
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Swarm completed the update" in r.stdout
    assert "bake passed" in r.stdout
    assert _served(swarm) == V2
    _one_backend_on(swarm, V2)
    assert result.versions().get(V2, 0) > 0, result.summary()
    result.assert_clean(reloads=0)
    last = ops.history()[-1]
    assert (last["op"], last["result"], last["mode"], last["version"], last["from_version"]) == (
        "deploy",
        "ok",
        "swarm",
        V2,
        BASE_VERSION,
    )
    assert [(a["event"], a["op"]) for a in ops.audit()][-2:] == [
        ("start", "deploy"),
        ("end", "deploy"),
    ]


def test_deploy_whose_bake_fails_is_rolled_back_with_the_reason(swarm: Swarm, ops: Ops) -> None:
    t0 = time.monotonic()
    r = ops.run("deploy", "--version", V3_ERRORS, "--bake-seconds", BAKE_S)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"deploy of {V3_ERRORS} failed at bake: bake window failed: error rate" in line[0]
    assert f"back to {V2}" in line[0]
    assert "docker service rollback" in r.stdout
    record_figure("swarm_ops_bake_rollback", {"seconds": round(took, 1), "reason": line[0]})
    assert _served(swarm) == V2
    _one_backend_on(swarm, V2)
    last = ops.history()[-1]
    assert (last["result"], last["failed_step"], last["version"]) == (
        "rolled-back",
        "bake",
        V3_ERRORS,
    )
    assert last["bake"]["errors"] > 0


def test_rollback_goes_to_the_version_before_v2_under_load(swarm: Swarm, ops: Ops) -> None:
    """Swarm's previous spec is now the failed version (it rolled back from
    it); stackdeck's rollback goes to what v2 replaced."""
    with _load(swarm) as load:
        r = ops.run("rollback", "--reason", "swarm ops test")
        time.sleep(1)
    result = load.result()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert _served(swarm) == BASE_VERSION
    _one_backend_on(swarm, BASE_VERSION)
    assert V3_ERRORS not in result.versions(), result.versions()
    result.assert_clean(reloads=0)
    assert ops.history()[-1]["op"] == "rollback"
    # its notice, as on compose (tests/integration/ops/test_ops_notify.py):
    # posted to the swarm's Alertmanager (published on the host, the swarm's
    # secret), delivered to the team's webhook after the group wait
    op_id = ops.audit()[-1]["op_id"]

    def delivered() -> list[dict[str, Any]]:
        hooks = swarm.sink_messages().get("webhooks") or []
        return [
            a
            for w in hooks
            if w["channel"] == "generic"
            for a in w["body"].get("alerts", [])
            if a["labels"].get("op_id") == op_id
        ]

    at_sink = swarm.wait("the rollback's notice at the sink", delivered, timeout=120, every=2)
    notice = delivered()[0]
    assert (notice["labels"]["alertname"], notice["labels"]["op"]) == ("StackOperation", "rollback")
    assert (notice["labels"]["result"], notice["labels"]["severity"]) == ("ok", "info")
    assert "reason: swarm ops test" in notice["annotations"]["summary"], notice
    record_figure(
        "swarm_ops_rollback", {"load": result.summary(), "notice_at_sink_s": round(at_sink, 1)}
    )


def test_scale_backend_1_2_1_under_load(swarm: Swarm, ops: Ops) -> None:
    figures: dict[str, Any] = {}
    with _load(swarm) as load:
        for n in (2, 1):
            t0 = time.monotonic()
            r = ops.run("scale", f"backend={n}")
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
            assert len(swarm.running_tasks("backend")) == n
            figures[f"to_{n}_s"] = round(time.monotonic() - t0, 1)
    result = load.result()
    figures["load"] = result.summary()
    record_figure("swarm_ops_scale_1_2_1", figures)
    result.assert_clean(reloads=0)


def _fingerprint(swarm: Swarm) -> dict[str, Any]:
    """Every service's and node's spec version: any write moves one."""
    out = {s.name: s.attrs["Version"]["Index"] for s in swarm.client.services.list()}
    out.update(
        {
            n.id: (n.attrs["Version"]["Index"], n.attrs["Spec"]["Availability"])
            for n in swarm.client.nodes.list()
        }
    )
    return out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("node", "drain", "no-such-node"), "no node 'no-such-node' in this swarm; its nodes: "),
        (
            ("node", "drain", "{manager}"),
            # every stranded service is named (sorted: the edge's monitoring
            # services come before the database)
            ("last schedulable node that can run ", "db (node.labels.db == true)"),
        ),
        (("scale", "db=2"), "db is pinned (node.labels.db == true)"),
        (("scale", "redis=3"), "redis is pinned"),
        (("deploy", "--version", "v9.9.9"), "unknown version v9.9.9: the registry has no "),
    ],
)
def test_bad_input_is_refused_with_one_line_and_changes_nothing(
    swarm: Swarm, ops: Ops, args: tuple[str, ...], words: str | tuple[str, ...]
) -> None:
    before = _fingerprint(swarm)
    r = ops.run(*(a.format(manager=swarm.manager) for a in args), timeout=60)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr
    for part in (words,) if isinstance(words, str) else words:
        assert part in lines[0], lines[0]
    assert _fingerprint(swarm) == before
    assert ops.audit()[-1]["event"] == "refused"
