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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from console.core.opfiles import holder_alive, read_journal
from console.core.ops.context import other_colour
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "explanation": self.explanation,
            "traffic": self.traffic,
            "stop": self.stop,
            "restore_slot": list(self.restore_slot) if self.restore_slot else None,
            "rewrite_nginx": self.rewrite_nginx,
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
) -> Recovery:
    """Decide what to do about a journal, given the colour nginx serves now.

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
    target = f"to {to}" if to else f"in place on {frm or serving}"
    head = (
        f"{op} of {version} {target} was interrupted at step '{step}'{_age_text(journal, now)} "
        f"(pid {journal.get('pid')} of {journal.get('user')} is gone)"
    )
    if journal.get("strategy") == "rolling":
        return Recovery(
            "abort",
            f"{head}. A rolling deploy recreates one service at a time in place; each service runs "
            f"what deploy.env names ({journal.get('service') or 'none'} was being recreated). "
            "Nothing to switch back: re-run the deploy, or roll back.",
            traffic=serving,
        )
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


def explain_journal(journal: dict[str, Any] | None, serving: str | None) -> dict[str, Any] | None:
    """For ``stackdeck status``: the last journal and, when interrupted, its plan."""
    if not journal:
        return None
    plan = plan_recovery(journal, serving=serving)
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
