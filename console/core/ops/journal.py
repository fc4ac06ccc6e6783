"""The deploy journal: what a deploy or rollback has done so far, on disk.

``$STATE/deploy-journal.json`` is rewritten whole (atomically) before and
after every step that changes the stack. When the process dies in the middle
(SIGKILL, power cut, lost SSH session without nohup), the journal still says
which colour was being started, whether nginx had been switched and whether
the bake window had passed. :func:`plan_recovery` turns that, plus what nginx
serves now, into the one safe next action; ``stackdeck status`` shows it and
the next deploy or rollback carries it out before doing anything else.

The rule it encodes: traffic ends on a colour that was *verified* for it.
Before the bake window passed, that is the colour that served before the
deploy; after it passed (or for a rollback, whose target is the operator's
explicit choice), the new one.

A rolling deploy stays on one colour and ends on that colour's own
container, never on its surge: before the colour's container was being
recreated, on the version it ran; after, on the new version (which its
surge container, healthy and smoke-tested, was already serving).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.opfiles import holder_alive, read_journal
from console.core.ops.context import SURGE, backend_service, other_colour
from console.core.ops.lock import describe_holder, format_age
from console.core.ops.statefiles import atomic_write

__all__ = ["Journal", "Recovery", "explain_journal", "plan_recovery"]


class Journal:
    """The journal of one running deploy or rollback (written on every change)."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    @classmethod
    def begin(cls, path: Path, **fields: Any) -> Journal:
        now = datetime.now(UTC).isoformat()
        data = {
            "status": "running",
            "step": "prepare",
            "steps": [],
            "switch_started": False,
            "switched": False,
            "bake_passed": False,
            "started": now,
            "updated": now,
            **fields,
        }
        j = cls(path, data)
        j.save()
        return j

    @staticmethod
    def load(path: Path) -> dict[str, Any] | None:
        return read_journal(path)

    def save(self) -> None:
        import json

        self.data["updated"] = datetime.now(UTC).isoformat()
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")

    def step(self, name: str, **fields: Any) -> None:
        self.data["step"] = name
        self.data["steps"].append({"step": name, "at": datetime.now(UTC).isoformat()})
        self.data.update(fields)
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, status: str, **fields: Any) -> None:
        self.data["status"] = status
        self.data["finished"] = datetime.now(UTC).isoformat()
        self.data.update(fields)
        self.save()


@dataclass(frozen=True)
class Recovery:
    """The safe next action for what a journal left behind."""

    action: str
    """``none`` (nothing interrupted), ``running`` (its process still works),
    ``abort`` (traffic never moved: stop the half-started colour, restore its
    slot), ``switch-back`` (moved but not verified: back to the old colour),
    ``finalize`` (moved and verified, or a rollback: keep it, stop the other)."""
    explanation: str
    traffic: str | None = None
    """The colour that must serve once recovered."""
    stop: str | None = None
    """The colour to stop (kept for rollback)."""
    restore_slot: tuple[str, str] | None = None
    """``(colour, version)``: put that colour's slot back to the version it held."""
    rewrite_nginx: bool = False
    """nginx does not serve ``traffic`` now (or cannot be read): switch it."""
    start_version: str | None = None
    """Run this version in ``traffic``'s own container before the switch
    (a rolling deploy interrupted while it recreated that container)."""
    remove_surge: str | None = None
    """The colour whose surge container (rolling deploy) to remove, once
    traffic is off it."""
    pool_back: bool = False
    """A rolling deploy of N containers (nginx's pool) interrupted halfway:
    N containers of the version it ran put back in the pool, one by one
    start-first (:func:`console.core.ops.rolling_pool.undo_rolling_pool`)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "explanation": self.explanation,
            "traffic": self.traffic,
            "stop": self.stop,
            "restore_slot": list(self.restore_slot) if self.restore_slot else None,
            "rewrite_nginx": self.rewrite_nginx,
            "start_version": self.start_version,
            "remove_surge": self.remove_surge,
            "pool_back": self.pool_back,
        }


def _age_text(journal: dict[str, Any], now: datetime | None) -> str:
    try:
        updated = datetime.fromisoformat(str(journal.get("updated") or journal.get("started")))
    except ValueError:
        return ""
    return f" {format_age(((now or datetime.now(UTC)) - updated).total_seconds())} ago"


def plan_recovery(
    journal: dict[str, Any] | None,
    *,
    serving: str | None,
    alive: bool | None = None,
    now: datetime | None = None,
    serving_slot: str | None = None,
) -> Recovery:
    """Decide what to do about a journal, given the colour nginx serves now
    (``serving_slot``: which slot of it, ``surge`` during a rolling deploy).

    ``alive``: whether the journal's process still runs (None: unknown, e.g.
    another host; it is then treated as running, never touched).
    """
    if not journal or journal.get("status") != "running":
        return Recovery("none", "no interrupted deploy or rollback")
    if alive is None:
        alive = holder_alive(journal)
    who = describe_holder(
        {
            "op": journal.get("op"),
            "user": journal.get("user"),
            "ssh_client": journal.get("ssh_client"),
            "pid": journal.get("pid"),
            "host": journal.get("host"),
            "started": journal.get("started"),
        },
        now,
    )
    if alive is not False:
        return Recovery("running", f"{who} is still running (step {journal.get('step')})")

    op = journal.get("op", "deploy")
    version = journal.get("version")
    frm = journal.get("from_colour")
    to = journal.get("to_colour")
    step = journal.get("step")
    rolling = journal.get("strategy") == "rolling"
    target = f"to {to}" if to else f"on {frm or serving}"
    head = (
        f"{'rolling ' if rolling else ''}{op} of {version} {target} was interrupted at step '{step}'{_age_text(journal, now)} "
        f"(pid {journal.get('pid')} of {journal.get('user')} is gone)"
    )
    if rolling:
        return _plan_rolling(journal, head, serving, serving_slot)
    if to not in ("blue", "green"):
        return Recovery(
            "abort", head + "; it had not started a colour yet: nothing to undo", traffic=serving
        )
    if frm not in ("blue", "green"):
        frm = other_colour(to)
    prev = journal.get("to_prev_version")
    slot = (to, prev) if prev and prev != version else None

    if not journal.get("switch_started"):
        where = serving or "unknown (nginx does not answer)"
        if journal.get("to_was_running"):
            # a rollback to the warm previous colour: it was running, untouched
            return Recovery(
                "abort",
                f"{head}. Traffic never moved: nginx serves {where}; {to} ({version}) was already "
                "running before it and is left so.",
                traffic=frm,
                rewrite_nginx=serving != frm,
            )
        return Recovery(
            "abort",
            f"{head}. Traffic never moved: nginx serves {where}; {to} may be half-started with "
            f"{version}. Recovery stops {to}"
            + (f" and puts its slot back to {prev}" if slot else "")
            + ".",
            traffic=frm,
            stop=to,
            restore_slot=slot,
            rewrite_nginx=serving != frm,
        )
    keep_new = bool(journal.get("bake_passed")) or journal.get("after_switch") == "finalize"
    if keep_new:
        why = (
            "the bake window had passed"
            if journal.get("bake_passed")
            else "a rollback's target is the operator's choice"
        )
        # a deploy that keeps the previous colour warm (keep_previous_colour)
        # leaves it running as the rollback target; a rollback stops the
        # colour it left
        keep_old = op == "deploy" and bool(journal.get("keep_previous"))
        return Recovery(
            "finalize",
            f"{head}. nginx {'serves ' + serving if serving else 'cannot be read'}; {why}, so recovery "
            f"keeps traffic on {to} ({version}) and "
            + (
                f"leaves {frm} running as the instant rollback target."
                if keep_old
                else f"stops {frm} (kept for rollback)."
            ),
            traffic=to,
            stop=None if keep_old else frm,
            rewrite_nginx=serving != to,
        )
    return Recovery(
        "switch-back",
        f"{head}. The switch to {to} had started but the bake window had not passed, so {version} "
        f"was never verified: recovery puts traffic back on {frm}"
        + (f" (nginx serves {serving} now)" if serving else " (nginx cannot be read now)")
        + f", stops {to}"
        + (f" and puts its slot back to {prev}" if slot else "")
        + ".",
        traffic=frm,
        stop=to,
        restore_slot=slot,
        rewrite_nginx=serving != frm,
    )


def _plan_rolling(
    journal: dict[str, Any], head: str, serving: str | None, serving_slot: str | None
) -> Recovery:
    """An interrupted rolling deploy: traffic back on the colour's own
    container, the surge removed (see the module's docstring)."""
    colour = journal.get("from_colour") or serving
    version = journal.get("version")
    prev = journal.get("prev_version") or "the version it ran"
    if colour not in ("blue", "green"):
        return Recovery("abort", head + "; it had not chosen a colour yet: nothing to undo")
    own, surge = backend_service(colour), backend_service(colour, SURGE)
    rewrite = serving != colour or serving_slot is not None
    now = (
        f"nginx serves {serving}" + (f" ({serving_slot})" if serving_slot else "")
        if serving
        else "nginx cannot be read"
    )
    replicas = int(journal.get("replicas") or 1)
    if replicas > 1 and journal.get("switch_started") and not journal.get("home"):
        return Recovery(
            "switch-back",
            f"{head}. {colour}'s {replicas} containers were being replaced one at a time through "
            f"nginx's pool; {now}. Recovery puts {replicas} containers of {prev} back in the pool "
            f"(each healthy before it joins), then drains and removes the {version} ones and "
            f"{surge}.",
            traffic=colour,
            rewrite_nginx=rewrite,
            remove_surge=colour,
            pool_back=True,
        )
    if replicas > 1 and journal.get("home"):
        return Recovery(
            "finalize",
            f"{head}. {colour}'s {replicas} containers run {version} in nginx's pool; {now}. "
            f"Recovery removes {surge}.",
            traffic=colour,
            rewrite_nginx=rewrite,
            remove_surge=colour,
        )
    if journal.get("home") or journal.get("replace_started"):
        return Recovery(
            "finalize",
            f"{head}. {own} was being recreated with {version}, which {surge} (healthy, "
            f"smoke-tested) served; {now}. Recovery runs {version} in {own}, waits until it is "
            f"healthy, puts traffic on it and removes {surge}.",
            traffic=colour,
            rewrite_nginx=rewrite,
            start_version=version,
            remove_surge=colour,
        )
    if journal.get("switch_started"):
        return Recovery(
            "switch-back",
            f"{head}. The switch to {surge} ({version}) had started but {own} still runs "
            f"{prev}; {now}. Recovery puts traffic back on {own} and removes {surge}.",
            traffic=colour,
            rewrite_nginx=rewrite,
            remove_surge=colour,
        )
    return Recovery(
        "abort",
        f"{head}. Traffic never left {own} ({prev}); {now}. Recovery removes {surge} "
        "if it was started.",
        traffic=colour,
        rewrite_nginx=rewrite,
        remove_surge=colour,
    )


def explain_journal(
    journal: dict[str, Any] | None, serving: str | None, serving_slot: str | None = None
) -> dict[str, Any] | None:
    """For ``stackdeck status``: the last journal and, when interrupted, its plan."""
    if not journal:
        return None
    plan = plan_recovery(journal, serving=serving, serving_slot=serving_slot)
    out = {
        "op": journal.get("op"),
        "id": journal.get("id"),
        "status": journal.get("status"),
        "step": journal.get("step"),
        "version": journal.get("version"),
        "from_colour": journal.get("from_colour"),
        "to_colour": journal.get("to_colour"),
        "started": journal.get("started"),
        "updated": journal.get("updated"),
        "user": journal.get("user"),
        "pid": journal.get("pid"),
        "interrupted": plan.action in ("abort", "switch-back", "finalize"),
        "recovery": plan.as_dict(),
    }
    if journal.get("reason"):
        out["reason"] = journal["reason"]
    return out
