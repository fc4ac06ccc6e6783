"""Deploy and rollback under load: a bounded load loop on nginx
(127.0.0.1 only, 4 keep-alive clients back to back, GET /api/health; the suite's one load loop, tests/load.py)
runs during each operation and a few seconds after it; every non-200 or
connection error counts as a failed request.

1. blue-green: ``stackdeck --json deploy --version <next>`` (image built
   beforehand, outside the timed window; default bake window unless quick);
2. rollback to the previous colour: ``stackdeck --json rollback --force``;
3. the peer, measured the same way: ``docker compose up -d --force-recreate
   --no-deps backend_<serving colour>`` (through scripts/compose.sh), the
   load loop running until the API answers 200 five times in a row.

The stack ends where it started: the serving colour and its version are
back after the rollback (the deployed version stays on the idle colour,
stopped, as after any rollback). The deploy keeps the previous colour
running (``keep_previous_colour``), so the rollback's traffic switch does not
wait for a start; the worker moves after it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime
from typing import Any

from tests.load import HEALTH, LoadLoop, LoadResult

from bench.common import REPO, Stack, load_average, log, rnd, row, safe_ratio

ROLLBACK_TARGET_S = 5.0


def _cli(
    stack: Stack, *args: str, timeout: float = 900
) -> tuple[float, int, list[dict[str, Any]], str]:
    cmd = stack.cli_argv(*args)
    t = time.monotonic()
    p = subprocess.run(
        cmd,
        cwd=REPO,
        env=stack.proc_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - t
    events = []
    for line in p.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return elapsed, p.returncode, events, (p.stderr or "")[-2000:]


def _steps(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds from the first event to each step's start and end."""
    if not events:
        return {}
    at = [datetime.fromisoformat(e["at"]) for e in events]
    t0 = at[0]
    out: dict[str, dict[str, float]] = {}
    for e, t in zip(events, at, strict=True):
        rel = (t - t0).total_seconds()
        step = out.setdefault(e["step"], {})
        if e["status"] == "start" and "start" not in step:
            step["start"] = round(rel, 2)
        if e["status"] in ("ok", "done", "fail"):
            step["end"] = round(rel, 2)
    return out


def _next_version(current: str) -> str:
    m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", current)
    if not m:
        return "v1.0.1"
    major, minor, patch = map(int, m.groups())
    return f"v{major}.{minor}.{patch + 1}"


def _wait_recovered(url: str, timeout: float = 120.0, in_a_row: int = 5) -> float | None:
    import httpx

    t = time.monotonic()
    ok = 0
    while time.monotonic() - t < timeout:
        try:
            ok = ok + 1 if httpx.get(url, timeout=2).status_code == 200 else 0
        except httpx.HTTPError:
            ok = 0
        if ok >= in_a_row:
            return time.monotonic() - t
        time.sleep(0.1)
    return None


def _load(stack: Stack, max_seconds: float) -> LoadLoop:
    """The suite's one load loop (tests/load.py: keep-alive, one retry of a
    GET closed unanswered on a reused connection, counted): four
    connections, back to back."""
    return LoadLoop(
        stack.base_url,
        HEALTH,
        workers=4,
        pause=0.0,
        max_requests=40_000,
        max_seconds=max_seconds,
        timeout=5.0,
    )


def _summary(r: LoadResult) -> dict[str, Any]:
    failed = r.failed()
    errors: dict[str, int] = {}
    for x in failed:
        key = f"HTTP {x.status}" if x.status is not None else str(x.error).split(":")[0]
        errors[key] = errors.get(key, 0) + 1
    return {
        "requests": r.total,
        "failures": len(failed),
        "retried": r.retries,
        "seconds": rnd(r.seconds, 2),
        "errors": errors,
        "failure_window_s": rnd(failed[-1].t - failed[0].t, 2) if failed else None,
        "colours": r.colours(),
        "colour_changes": [(rnd(t, 2), c) for t, c in r.colour_changes()],
        "p95_ms": rnd(r.latency_ms(95), 1),
        "max_ms": rnd(r.latency_ms(100), 1),
    }


def bench(stack: Stack, *, quick: bool = False) -> dict[str, Any]:
    load_before = load_average()
    url = f"{stack.base_url}/api/health"
    state = stack.deploy_env()
    active = state.get("ACTIVE_COLOUR", "blue")
    current = state.get(f"{active.upper()}_VERSION", "v1.0.0")
    target = _next_version(current)
    raw: dict[str, Any] = {
        "start_state": {k: v for k, v in state.items() if k.endswith(("VERSION", "COLOUR"))},
        "target": target,
    }
    rows = []

    log(f"deploy: building {stack.backend_image}:{target} (outside the timed window)")
    b = stack.script("images.sh", target, timeout=900, check=False)
    if b.returncode != 0:
        raise RuntimeError(f"images.sh {target} failed: {b.stderr[-500:]}")

    bake_args = ["--bake-seconds", "10"] if quick else []
    # 1. blue-green
    log(f"deploy: blue-green {current} → {target} under load")
    with _load(stack, 900) as load:
        time.sleep(2)
        took, rc, events, err = _cli(stack, "deploy", "--version", target, *bake_args)
        time.sleep(3)
    bg = _summary(load.result())
    steps = _steps(events)
    raw["blue_green"] = {
        "seconds": rnd(took, 2),
        "exit": rc,
        "load": bg,
        "steps": steps,
        "stderr": err if rc else "",
    }
    to_switch = steps.get("switch", {}).get("end")
    new_colour = [c for _t, c in bg["colour_changes"]][-1:] or ["?"]
    seen = [t for t, c in bg["colour_changes"] if c == new_colour[0]]
    switch_seen = rnd(seen[-1] - 2.0, 2) if seen else None
    switch_took = (
        rnd(steps["switch"]["end"] - steps["switch"].get("start", steps["switch"]["end"]), 2)
        if "switch" in steps
        else None
    )
    rows.append(
        row(
            "blue-green deploy: failed requests during the deploy",
            bg["failures"],
            "requests",
            target="0",
            met=bg["failures"] == 0 and rc == 0,
            note=f"{bg['requests']} requests in {bg['seconds']} s, p95 {bg['p95_ms']} ms, max {bg['max_ms']} ms; served by {bg['colours']}"
            + (f"; deploy exit {rc}" if rc else ""),
        )
    )
    rows.append(
        row(
            "blue-green deploy: duration",
            rnd(took, 1),
            "s",
            note=f"to switched: {to_switch} s (load loop saw {new_colour[0]} from {switch_seen} s); switch itself (nginx -t + reload + confirm): {switch_took} s; "
            f"bake {'10 s (quick)' if quick else 'default window'}; steps: "
            + ", ".join(f"{k} {v.get('start', '?')}→{v.get('end', '?')}" for k, v in steps.items()),
        )
    )

    # 2. rollback to the previous colour
    log("deploy: rollback to the previous colour under load")
    with _load(stack, 600) as load:
        time.sleep(2)
        rb_took, rb_rc, rb_events, rb_err = _cli(stack, "rollback", "--force")
        time.sleep(3)
    rb = _summary(load.result())
    rb_steps = _steps(rb_events)
    raw["rollback"] = {
        "seconds": rnd(rb_took, 2),
        "exit": rb_rc,
        "load": rb,
        "steps": rb_steps,
        "stderr": rb_err if rb_rc else "",
    }
    served_again = stack.deploy_env().get("ACTIVE_COLOUR")
    # when the load loop saw the previous colour serve for good, from the command's start (2 s in)
    back = [t for t, c in rb["colour_changes"] if c == served_again]
    back_at = rnd(back[-1] - 2.0, 2) if back else None
    rb_switch = rb_steps.get("switch", {}).get("end")
    rb_prepare = next((e for e in rb_events if e.get("step") == "prepare"), {})
    warm = bool((rb_prepare.get("data") or {}).get("warm"))
    worker_start = rb_steps.get("worker", {}).get("start")
    rows.append(
        row(
            "rollback: traffic back on the previous colour",
            back_at,
            "s",
            target="< 5 s",
            met=back_at is not None and back_at < ROLLBACK_TARGET_S and rb_rc == 0,
            note=f"seen by the load loop (switch step ended at {rb_switch} s of the op's events); "
            + (
                "the deploy kept the previous colour running: health checked directly, then the nginx switch"
                if warm
                else "the previous colour was not running, so the rollback started it and waited for its health check first"
            )
            + (f"; the worker moved after, from {worker_start} s" if worker_start else ""),
        )
    )
    rows.append(
        row(
            "rollback to the previous colour: duration",
            rnd(rb_took, 2),
            "s",
            note=f"whole command; {rb['failures']} failed of {rb['requests']} requests; serving {served_again} after; steps: "
            + ", ".join(
                f"{k} {v.get('start', '?')}→{v.get('end', '?')}" for k, v in rb_steps.items()
            )
            + (f"; exit {rb_rc}" if rb_rc else ""),
        )
    )

    # 3. the peer: recreate the serving backend with compose
    serving = stack.deploy_env().get("ACTIVE_COLOUR", active)
    service = f"backend_{serving}"
    log(f"deploy: peer: compose up -d --force-recreate --no-deps {service} under load")
    with _load(stack, 600) as load:
        time.sleep(2)
        t = time.monotonic()
        p = stack.compose(
            "up", "-d", "--force-recreate", "--no-deps", service, check=False, timeout=600
        )
        cmd_took = time.monotonic() - t
        recovered = _wait_recovered(url)
        total = time.monotonic() - t
        time.sleep(3)
    peer = _summary(load.result())
    raw["compose_force_recreate"] = {
        "service": service,
        "command_seconds": rnd(cmd_took, 2),
        "until_serving_again_s": rnd(total, 2),
        "recovered_after_command_s": rnd(recovered, 2),
        "exit": p.returncode,
        "load": peer,
    }
    rows.append(
        row(
            "failed requests: blue-green vs compose --force-recreate",
            bg["failures"],
            "requests",
            peer=peer["failures"],
            peer_name=f"compose up -d --force-recreate --no-deps {service}",
            note=(
                f"peer: {peer['requests']} requests, failures over {peer['failure_window_s']} s ({peer['errors']}); "
                f"compose returned after {rnd(cmd_took, 1)} s, API back after {rnd(total, 1)} s"
            ),
        )
    )
    rows.append(
        row(
            "duration: blue-green (whole deploy) vs compose --force-recreate (until serving again)",
            rnd(took, 1),
            "s",
            peer=rnd(total, 1),
            peer_name="compose --force-recreate",
            ratio=safe_ratio(total, took),
            ratio_label="× (peer / stackdeck)",
            note="blue-green includes health waits, smoke tests and the bake window; the recreate is faster and drops requests",
        )
    )
    # the compose recreate may leave deploy.env and the container in step; check we still serve
    raw["end_state"] = {
        k: v for k, v in stack.deploy_env().items() if k.endswith(("VERSION", "COLOUR"))
    }
    raw["healthy_at_end"] = stack.healthy()
    return {
        "title": "Deploy and rollback",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
