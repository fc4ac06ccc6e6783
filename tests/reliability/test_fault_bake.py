"""The new colour goes bad after traffic was switched to it, during the bake:
the deploy must switch back by itself, name the reason, and record it.

Two faults, each a real version of the backend (``tests/fault_versions.py``:
the real app with one fault around it) armed inside the new colour's
container the moment the deploy reports its bake window started:

* it turns **unhealthy** (``/api/health`` answers 503, so its container's
  health check fails too);
* it answers **5xx for a share** (every 4th request nginx sends it: 25 %),
  while its own health check stays green: only the error rate tells.

What must hold: the deploy exits 1 with the reason, traffic is back on the
colour that served before, the history says rolled-back with the reason, and
under load no request fails once traffic is back. The requests that failed
between the fault and the switch back (the detection window) are counted and
timed: they are the figure.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Stack
from tests.fault_versions import Fault, arm_fault, build_fault_version
from tests.integration.ops.ops_helpers import (
    health,
    read_events_until,
    start_cli,
    wait_healthy,
)
from tests.load import HEALTH, LoadLoop
from tests.reliability._cli import stackdeck
from tests.reliability._harness import figure

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

BASE = "v1.0.0"
CASES = {
    "unhealthy": (
        "v5.0.0-sick",
        Fault(unhealthy=True, armed_by_file=True),
        ("unhealthy", "error rate"),
    ),
    "errors": ("v5.0.1-errors", Fault(error_every=4, armed_by_file=True), ("error rate",)),
}


def _history(stack: Stack) -> list[dict[str, Any]]:
    path = stack.state_dir / "history.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _ready(stack: Stack) -> dict[str, Any]:
    """A stack with nothing interrupted and nothing locked, serving."""
    st = json.loads(stackdeck(stack, "status", "--json").stdout)
    if st["lock"]["stale"] or (st.get("deploy") or {}).get("interrupted"):
        assert stackdeck(stack, "lock", "break").returncode == 0
        rb = stackdeck(stack, "rollback", "--force", timeout=400)
        assert rb.returncode == 0, rb.stdout[-1500:] + rb.stderr[-500:]
    return wait_healthy(stack)


@pytest.mark.parametrize("case", list(CASES))
def test_new_colour_goes_bad_during_the_bake(stack: Stack, case: str) -> None:
    version, fault, reasons = CASES[case]
    build_fault_version(stack.backend_image, BASE, version, fault)
    before = _ready(stack)
    serving = before["colour"]
    new = "green" if serving == "blue" else "blue"
    with figure(f"new colour {case} during the bake (after the switch)") as fig:
        with LoadLoop(stack.base_url, HEALTH, max_requests=6000, max_seconds=300) as load:
            proc = start_cli(
                stack,
                "deploy",
                "--version",
                version,
                "--services",
                "backend",
                "--bake-seconds",
                "60",
            )
            try:
                read_events_until(proc, lambda e: e["step"] == "bake" and e["status"] == "start")
                t_arm = time.monotonic()
                arm_fault(stack.container(f"backend_{new}"))
                out, err = proc.communicate(timeout=300)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            t_done = time.monotonic()
            # traffic after the switch back, for a moment: all from the old colour
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and load.running:
                time.sleep(0.1)
        result = load.result()
        fig.load(result)
        events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        final = events[-1] if events else {}
        assert proc.returncode == 1, out[-3000:] + err[-1000:]
        bake_fail = [e for e in events if e["step"] == "bake" and e["status"] == "fail"]
        assert bake_fail, out[-3000:]
        said = bake_fail[-1]["message"]
        assert any(r in said for r in reasons), said
        assert "switched back" in final["message"].lower(), final
        back = [
            e
            for e in events
            if e["step"] == "rollback" and "traffic switched back to" in e["message"]
        ]
        assert back and back[-1]["status"] == "ok", out[-3000:]
        # switched back during the bake, not at the end of its 60 s window
        assert t_done - t_arm < 55, f"the deploy ended {t_done - t_arm:.0f} s after the fault"
        now = health(stack)
        assert now["colour"] == serving and now["version"] == before["version"], now
        last = _history(stack)[-1]
        assert last["version"] == version and last["result"] == "rolled-back", last
        assert last["failed_step"] == "bake" and any(r in last["reason"] for r in reasons), last
        # the detection window: from the fault to the first answer of the old
        # colour after it (traffic back); nothing may fail after it
        t_back = next((s.t for s in result.after(t_arm) if s.ok and s.colour == serving), None)
        assert t_back is not None, result.summary()
        in_window = result.failed(t_arm, t_back)
        after_back = result.failed(t_back)
        fig.recover_s = round(t_back - t_arm, 1)
        fig.operator_saw = (
            f"deploy exit 1: {said[:120]}; traffic switched back to {serving} "
            f"{t_back - t_arm:.1f} s after the fault"
        )
        fig.extra = {
            "failed_in_detection_window": len(in_window),
            "detection_window_s": round(t_back - t_arm, 2),
            "failed_after_switch_back": len(after_back),
            "deploy_after_fault_s": round(t_done - t_arm, 1),
            "outcomes": result.outcomes(),
        }
        print(f"[figure] {case}: {json.dumps(fig.extra)}")
        assert not after_back, (
            f"{len(after_back)} requests failed after traffic was back on {serving}: "
            f"{after_back[:5]}"
        )
        # keep-alive retries: the switch to the new colour, the switch back
        assert result.retries <= 2 * result.workers, result.summary()
