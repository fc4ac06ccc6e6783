"""Operations panel: the step events of operations, streamed as they happen.

It renders an :class:`~console.core.models.OpsLog` like every other panel
renders its snapshot: the dashboard replaces the log with one event more for
each :class:`~console.core.models.OpEvent` of the running operation, and the
panel writes the new lines, so a deploy's progress
(``healthy ✓ · migrated ✓ · switched ✓ · baking…``) is visible line by line.

While an operation that reports progress runs (a VACUUM: its
``pg_stat_progress_vacuum`` samples, about one a second), a live line above
the log shows where it stands and, when it can be cancelled, the key that
does it (``VACUUM (ANALYZE) public.prices · scanning heap 1,234/5,678 blocks
(22 %) · c cancel``); the log itself gets one line per phase, not one per
sample. :func:`running_op` reads that state from the log; the dashboard's
cancel key uses it too (the op id for the audit, the session).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var
from textual.widgets import RichLog

from console.core.models import OpEvent, OpsLog, OtherOpsSnapshot, ScheduleLine, VacuumProgress
from console.core.ops.table import OPERATIONS
from console.ui.format import fmt_time
from console.ui.palette import Palette
from console.ui.panels.base import EPOCH, Panel
from console.ui.widgets.text import LiveText

__all__ = [
    "OperationsPanel",
    "RunningOp",
    "format_op_event",
    "live_line",
    "running_op",
    "schedule_line",
]

_MARKS = {
    "start": ("▶", "accent"),
    "ok": ("✓", "ok"),
    "fail": ("✗", "err"),
    "info": ("·", "muted"),
    "warn": ("!", "warn"),
    "done": ("✔", "ok"),
}


def format_op_event(event: OpEvent, palette: Palette, now: datetime) -> Text:
    """``14:01:02 deploy ✓ wait-healthy  green healthy, reports v1.2.3``."""
    mark, tone = _MARKS.get(event.status, ("·", "muted"))
    style = getattr(palette, tone)
    line = Text(no_wrap=False)
    line.append(fmt_time(event.at, now), style=palette.muted)
    line.append(f" {event.op} ", style="bold")
    line.append(f"{mark} ", style=f"bold {style}" if tone in ("err", "ok") else style)
    line.append(event.step, style=style if event.status in ("fail", "warn", "done") else "")
    if event.message:
        line.append(
            f"  {event.message}", style=f"bold {palette.err}" if event.status == "fail" else ""
        )
    by = event.data.get("by")
    if by and event.step != "begin":  # another operator's (its begin line names them)
        line.append(f"  · {by}", style=palette.muted)
    return line


@dataclass(frozen=True)
class RunningOp:
    """What the log says of the operation in progress."""

    op: str
    op_id: str | None = None
    """From its ``begin`` event (what the audit log calls it)."""
    target: str | None = None
    """What it works on now (a VACUUM's table)."""
    session_pid: int | None = None
    """The database session doing the work (a VACUUM's backend pid)."""
    progress: VacuumProgress | None = None
    """The latest progress sample, when it reports one."""


def running_op(log: OpsLog | None, name: str | None) -> RunningOp | None:
    """The state of running operation ``name`` from its events since its
    last ``begin`` (None when nothing runs)."""
    if not name:
        return None
    op_id = target = session_pid = progress = None
    events = log.events if log is not None else ()
    for event in reversed(events):
        if event.op != name:
            continue
        data = event.data
        if progress is None and event.step == "progress" and isinstance(data.get("progress"), dict):
            progress = VacuumProgress.model_validate(data["progress"])
        if event.status == "start" and event.step != "begin" and target is None:
            if data.get("table"):
                target = str(data["table"])
            if isinstance(data.get("pid"), int):
                session_pid = data["pid"]
        if event.step == "begin" and event.status == "start":
            op_id = str(data["op_id"]) if data.get("op_id") else None
            break
    return RunningOp(name, op_id, target, session_pid, progress)


def live_line(state: RunningOp, cancel_key: str | None) -> Content | None:
    """``VACUUM (ANALYZE) public.prices › _hyper_1_1_chunk · scanning heap
    1,234/5,678 blocks (22 %) · c cancel``, or None when the operation says
    nothing live (no target, no progress)."""
    spec = OPERATIONS.get(state.op)
    progress = state.progress
    if progress is None and state.target is None:
        return None
    title = spec.title if spec is not None else state.op
    what = state.target or ""
    relation = progress.relation if progress is not None else None
    if relation and relation.rsplit(".", 1)[-1] != what.rsplit(".", 1)[-1]:
        # a hypertable is vacuumed chunk by chunk: name the chunk, not its schema
        short = relation.rsplit(".", 1)[-1]
        what = f"{what} › {short}" if what else relation
    if progress is None:
        where = f"starting (session {state.session_pid})" if state.session_pid else "starting"
    else:
        where = progress.describe()
    tone = "$warning" if progress is not None and progress.waiting else "$accent"
    parts: list[tuple[str, str] | str] = [
        (f"{title} {what}".strip(), "bold"),
        " · ",
        (where, tone),
    ]
    if cancel_key and spec is not None and spec.cancellable:
        parts += [" · ", (cancel_key, "bold"), " cancel"]
    return Content.assemble(*parts)


def _when(moment: datetime, now: datetime) -> str:
    """``22:00`` today, ``12-08 07:00`` another day (in ``now``'s zone)."""
    local = moment.astimezone(now.tzinfo)
    return local.strftime("%H:%M" if local.date() == now.date() else "%m-%d %H:%M")


def schedule_line(lines: list[ScheduleLine], now: datetime) -> Content | None:
    """One line for the configured schedule: the entry that runs next and
    how its last run went, or first an entry whose last run did not succeed
    or that cron does not have (``schedule · off-peak backend=1 next 22:00 ·
    last ✓ 12-06 22:00``). Absolute times: the line changes when the
    schedule does, not every minute. None when nothing is scheduled."""
    if not lines:
        return None
    local = now.astimezone()
    trouble = [
        line
        for line in lines
        if (line.next_run is not None and not line.installed)
        or line.last_result not in (None, "ok")
    ]
    timed = sorted((line for line in lines if line.next_run is not None), key=lambda x: x.next_run)  # type: ignore[arg-type, return-value]
    shown = (trouble or timed or lines)[0]
    parts: list[tuple[str, str] | str] = [("schedule", "bold"), " · ", (shown.name, "bold")]
    parts.append(f" {shown.scale}")
    if shown.next_run is not None and not shown.installed:
        parts += [" · ", ("not in cron", "$warning bold"), ": stackdeck schedule install"]
    elif shown.next_run is not None:
        parts.append(f" next {_when(shown.next_run, local)}")
    else:
        parts += [" · ", ("disabled", "dim")]
    if shown.last_at is not None:
        if shown.last_result == "ok":
            parts += [" · last ", ("✓", "$success"), f" {_when(shown.last_at, local)}"]
        else:
            parts += [
                " · last ",
                (f"✗ {shown.last_result}", "$error bold"),
                f" {_when(shown.last_at, local)}",
            ]
            if shown.last_message:
                parts.append(f": {shown.last_message}")
    if len(lines) > 1:
        parts.append((f" · +{len(lines) - 1} more (stackdeck schedule)", "dim"))
    return Content.assemble(*parts)


class OperationsPanel(Panel):
    """Live log of operations started from this console, and of other
    operators' (another console, the CLI, a script) as their lock, audit
    lines and journal steps appear."""

    PANEL_ID = "operations"
    TITLE = "Operations"
    SHORT = "Ops"
    NUMBER = 8
    SOURCES = ()

    snapshot: var[OpsLog | None] = var(None, init=False)
    """The operations' events (bound to the dashboard)."""
    running: var[str | None] = var(None, init=False)
    """Name of the operation in progress (bound to the dashboard)."""
    read_only: var[bool] = var(False, init=False)
    """Read-only mode (bound to the dashboard): the idle text says why ops are off."""
    others: var[OtherOpsSnapshot | None] = var(None, init=False)
    """Other operators' operations (bound to the dashboard): the title names
    the one that holds the deploy lock."""
    swarm: var[bool] = var(False, init=False)
    """A swarm stack (set by the dashboard): the idle text names the keys of
    the operations that run there, not the compose-only ones."""

    def __init__(self, *, cancel_key: str | None = None) -> None:
        super().__init__()
        self.cancel_key = cancel_key
        """The key shown in the live line of a cancellable operation (the
        dashboard's binding; the panel does not bind it)."""
        self._written: tuple[OpEvent, ...] = ()
        """The events already in the log widget."""
        self._last_stage: tuple[str, str | None, str] | None = None
        """(op, relation, phase) of the last progress sample written."""

    def _same_stage(self, event: OpEvent) -> bool:
        """True for a progress sample of the stage already in the log: the
        log gets one line per phase (a VACUUM samples once a second), the
        live line above it the rest."""
        sample = event.data.get("progress") if event.step == "progress" else None
        if not isinstance(sample, dict) or event.status != "info":
            if event.op == (self._last_stage or ("",))[0]:
                self._last_stage = None
            return False
        stage = (event.op, sample.get("relation"), str(sample.get("phase")))
        same = stage == self._last_stage
        self._last_stage = stage
        return same

    def compose_body(self) -> ComposeResult:
        yield LiveText(classes="idle")
        yield LiveText(classes="live")
        yield LiveText(classes="schedule")
        # min_width: RichLog wraps at 78 columns at least, one too many at 80x24
        # (a horizontal scrollbar under every long line)
        yield RichLog(
            max_lines=2000, wrap=True, markup=False, auto_scroll=True, min_width=20, id="ops-log"
        )

    def on_mount(self) -> None:
        self.remove_class("-empty")
        self._render_idle()
        self._render_schedule()

    def refresh_panel(self) -> None:
        """The body is always shown; the events not yet written are appended."""
        if not self.is_mounted:
            return
        events = self.snapshot.events if self.snapshot is not None else ()
        written = self._written
        log = self.query_one(RichLog)
        if events[: len(written)] != written or len(events) < len(written):
            # the log dropped its oldest events: write it anew
            log.clear()
            written = ()
            self._last_stage = None
        if len(events) > len(written):
            palette, now = Palette.from_app(self.app), self.now
            for event in events[len(written) :]:
                if self._same_stage(event):
                    continue  # the live line shows it
                log.write(format_op_event(event, palette, now))
        self._written = events
        self._render_idle()
        self._render_live()

    def watch_running(self) -> None:
        self._render_idle()
        self._render_live()

    def _render_live(self) -> None:
        if not self.is_mounted:
            return
        live = self.query_one(".live", LiveText)
        state = running_op(self.snapshot, self.running)
        line = None
        if state is not None:
            line = live_line(state, self.cancel_key)
        live.display = line is not None
        if line is not None:
            live.update(line)

    def watch_read_only(self) -> None:
        self._render_idle()

    def watch_swarm(self) -> None:
        self._render_idle()

    def watch_others(self) -> None:
        self._render_idle()
        self._render_schedule()

    def _render_schedule(self) -> None:
        if not self.is_mounted:
            return
        widget = self.query_one(".schedule", LiveText)
        lines = self.others.schedule if self.others is not None else []
        line = schedule_line(lines, self.now if self.now != EPOCH else datetime.now().astimezone())
        widget.display = line is not None
        if line is not None:
            widget.update(line)

    def _render_idle(self) -> None:
        if not self.is_mounted:
            return
        lock = self.others.lock if self.others is not None else None
        if self.running:
            self.set_title(f"{self.TITLE} · {self.running} running…")
        elif lock is not None and not lock.stale:
            pid = f", pid {lock.holder.pid}" if lock.holder.pid is not None else ""
            self.set_title(f"{self.TITLE} · {lock.op} by {lock.holder.who}{pid} running…")
        else:
            self.set_title(self.TITLE)
        idle = self.query_one(".idle", LiveText)
        if self._written:
            idle.display = False
            return
        idle.display = True
        if self.read_only:
            idle.update(
                Content.assemble(
                    ("read-only mode", "$warning bold"),
                    ": operations are disabled (started with --read-only)",
                )
            )
        else:
            keys = [
                f"{spec.key.key} {spec.key.words}"
                for spec in OPERATIONS.values()
                if spec.key and (spec.on_swarm if self.swarm else not spec.swarm_only)
            ]
            idle.update(Content.styled(" · ".join(["no operations yet", *keys]), "dim"))

    @property
    def lines(self) -> list[str]:
        """Plain text of the log (for tests and the CLI-like export)."""
        return [strip.text for strip in self.query_one(RichLog).lines]
