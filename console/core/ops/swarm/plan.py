"""The pure rules of the Swarm operations: what may be scaled or drained,
which image a version is, and what an update's status means.

Everything here works on the engine's JSON (``GET /services``, ``/nodes``,
``/tasks``: what the docker SDK's ``attrs`` hold) and raises
:class:`~console.core.ops.errors.BadInput` with the one line the operator
needs, before anything is changed. :mod:`console.core.ops.swarm.ops` calls
the engine; this module never does, so it is unit-tested with recorded JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from console.core.models import SwarmNode
from console.core.ops.errors import BadInput
from console.core.ops.services import ALIASES
from console.core.sources.docker.swarm import parse_node, service_image, short_service_name

__all__ = [
    "MAX_BACKEND_PER_NODE",
    "SINGLETONS",
    "DrainCheck",
    "UpdateOutcome",
    "check_drain",
    "check_no_update",
    "check_scale",
    "constraints_of",
    "drain_check",
    "find_node",
    "image_for_version",
    "node_satisfies",
    "parse_swarm_scale",
    "rollback_candidates",
    "rollback_target",
    "rolled_back_since",
    "update_outcome",
    "version_of",
]

Attrs = Mapping[str, Any]

SINGLETONS = {"worker": 1, "prometheus": 1, "alertmanager": 1}
"""Services that run at most this many tasks whatever their placement: the
worker ingests alone (a second would double the provider calls of a cycle
the lock does not span across a reschedule), Prometheus keeps its data on
one node's volume. ``worker=0`` stays allowed: the runbook's emergency stop
of ingestion (``docker-compose scale celery_worker=0``)."""
MAX_BACKEND_PER_NODE = 4
"""Backend tasks per schedulable node at most (as compose's MAX_BACKEND on
one machine: 384 MiB each on the runbook's 4 GB server)."""


def _shown(value: object, limit: int = 60) -> str:
    return str(value).encode("unicode_escape").decode("ascii")[:limit]


def _get(attrs: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(attrs, Mapping):
            return None
        attrs = attrs.get(key)
    return attrs


# --- images and versions -------------------------------------------------------------


def version_of(image: str) -> str:
    """The tag of a service's or a task's image (``...-backend:v1.2.3@sha256:…`` -> ``v1.2.3``)."""
    return service_image(image)[1]


def image_for_version(current: str, version: str) -> str:
    """The image a service runs for ``version``: the current image's
    repository (registry and name, as the nodes pull it) with that tag, no
    digest: ``reg:5000/investment-backend:v1@sha256:…`` -> ``reg:5000/investment-backend:v2``."""
    named = current.split("@", 1)[0]
    head, _, last = named.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}:{version}" if head else f"{name}:{version}"


def repository_path(image: str) -> tuple[str | None, str]:
    """(registry host, repository path) of an image reference:
    ``reg:5000/investment-backend:v1`` -> ``("reg:5000", "investment-backend")``."""
    named = image.split("@", 1)[0]
    parts = named.split("/")
    registry = None
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts[0]
        parts = parts[1:]
    path = "/".join(parts)
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path = path[: len(path) - len(last)] + last.split(":", 1)[0]
    return registry, path


# --- nodes and placement -------------------------------------------------------------------

_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(.*?)\s*$")


def constraints_of(service: Attrs) -> list[str]:
    """The placement constraints of a service's spec."""
    found = _get(service, "Spec", "TaskTemplate", "Placement", "Constraints") or []
    return [str(c) for c in found]


def node_satisfies(node: Attrs, constraints: Iterable[str]) -> bool:
    """Whether ``node`` (``GET /nodes`` JSON) meets every constraint Swarm
    would check: ``node.labels.<k>``, ``node.role``, ``node.hostname``,
    ``node.id`` with ``==`` / ``!=``. A constraint on anything else (engine
    labels, the platform) is taken as met: this is for refusing what Swarm
    could not place, never for placing."""
    labels = _get(node, "Spec", "Labels") or {}
    facts = {
        "node.role": str(_get(node, "Spec", "Role") or ""),
        "node.hostname": str(_get(node, "Description", "Hostname") or ""),
        "node.id": str(node.get("ID") or ""),
    }
    for constraint in constraints:
        m = _CONSTRAINT_RE.match(constraint)
        if not m:
            continue
        key, op, want = m.groups()
        if key.startswith("node.labels."):
            label = key.removeprefix("node.labels.")
            have: str | None = str(labels[label]) if label in labels else None
        elif key in facts:
            have = facts[key]
        else:
            continue
        if (have == want) != (op == "=="):
            return False
    return True


def _schedulable(node: Attrs) -> bool:
    return (
        _get(node, "Spec", "Availability") == "active" and _get(node, "Status", "State") == "ready"
    )


def find_node(nodes: Iterable[Attrs], name: str) -> Attrs:
    """The node called ``name`` (its hostname, its id or an id prefix of 6+
    characters), or BadInput listing the nodes that exist."""
    wanted = str(name or "").strip()
    listed = list(nodes)
    for node in listed:
        if _get(node, "Description", "Hostname") == wanted:
            return node
    if len(wanted) >= 6:
        matches = [n for n in listed if str(n.get("ID") or "").startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
    names = ", ".join(sorted(parse_node(n).hostname for n in listed)) or "none"
    raise BadInput(f"no node '{_shown(wanted)}' in this swarm; its nodes: {names}", field="node")


STATEFUL = ("db", "redis")
"""Services whose data lives on their node's volume: named first in a refusal."""


def _state_first(entry: str) -> tuple[int, str]:
    name = entry.split(" ", 1)[0]
    return (STATEFUL.index(name) if name in STATEFUL else len(STATEFUL), entry)


def check_drain(nodes: Iterable[Attrs], node: Attrs, services: Iterable[Attrs], stack: str) -> None:
    """Refuse to drain ``node`` when a pinned service of the stack (a
    placement constraint: the database, Redis, the edge) could then run on
    no schedulable node: its state or its published port would be gone, and
    Swarm would leave it pending. Names each such service and the
    constraint."""
    node_id = node.get("ID")
    others = [n for n in nodes if n.get("ID") != node_id and _schedulable(n)]
    stranded: list[str] = []
    for service in services:
        constraints = constraints_of(service)
        if not constraints or not node_satisfies(node, constraints):
            continue
        if not any(node_satisfies(n, constraints) for n in others):
            short = short_service_name(str(_get(service, "Spec", "Name") or ""), stack)
            stranded.append(f"{short} ({' and '.join(constraints)})")
    if stranded:
        hostname = parse_node(node).hostname
        raise BadInput(
            f"refusing to drain {hostname}: it is the last schedulable node that can run "
            f"{', '.join(sorted(stranded, key=_state_first))}; label another node first "
            "(docker node update --label-add), or the service stays down until it is active again",
            field="node",
        )


IN_FLIGHT = ("updating", "rollback_started")
"""Update states in which Swarm still replaces tasks and watches them."""


def check_no_update(services: Iterable[Attrs], stack: str) -> None:
    """Refuse a drain while a service of the stack is being updated or
    rolled back: the drain would stop a task of that update, and Swarm's
    ``failure_action: rollback`` would undo the update (a scale too: its
    replicas go back)."""
    busy = []
    for svc in services:
        state = str(_get(svc, "UpdateStatus", "State") or "")
        if state in IN_FLIGHT:
            short = short_service_name(str(_get(svc, "Spec", "Name") or ""), stack)
            since = str(_get(svc, "UpdateStatus", "StartedAt") or "?")[:19]
            busy.append(f"{short} ({state} since {since})")
    if busy:
        raise BadInput(
            f"refusing to drain while Swarm updates {', '.join(busy)}: the drain would stop "
            "a task of that update and Swarm would roll it back; wait until docker service "
            "inspect shows it completed, then drain",
            field="node",
        )


def rolled_back_since(
    services: Iterable[Attrs], started: Mapping[str, str], stack: str
) -> list[str]:
    """Services Swarm began rolling back after ``started`` (service id ->
    its ``UpdateStatus.StartedAt`` then), with Swarm's message."""
    out = []
    for svc in services:
        status = _get(svc, "UpdateStatus") or {}
        state = str(status.get("State") or "")
        at = str(status.get("StartedAt") or "")
        if state.startswith("rollback") and at and at != started.get(str(svc.get("ID")), ""):
            short = short_service_name(str(_get(svc, "Spec", "Name") or ""), stack)
            out.append(f"{short} ({state}: {_shown(status.get('Message') or state, 200)})")
    return out


# --- scaling ------------------------------------------------------------------------------


def parse_swarm_scale(spec: object, count: object = None) -> tuple[str, int]:
    """``"backend=3"`` (or service and count apart) -> ``("backend", 3)``;
    runbook aliases accepted (``celery_worker``)."""
    if count is None:
        m = re.fullmatch(
            r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(-?[0-9]+)\s*", str(spec or ""), re.ASCII
        )
        if not m:
            raise BadInput(
                f"expected SERVICE=N (e.g. backend=3), not '{_shown(spec)}'", field="scale"
            )
        spec, count = m.group(1), m.group(2)
    name = str(spec).strip()
    try:
        n = int(str(count))
    except ValueError:
        raise BadInput(
            f"replica count must be a whole number, not '{_shown(count)}'", field="scale"
        ) from None
    return ALIASES.get(name, name), n


def check_scale(
    service: Attrs | None,
    short: str,
    n: int,
    nodes: Iterable[Attrs],
    stack: str,
    known: Iterable[str] = (),
) -> None:
    """Refuse a scale Swarm should not do, before anything changes: an
    unknown service (the stack's are listed), a global one, a pinned one (a
    placement constraint: its data or its port is on one node), a
    singleton above its count, the backend outside 1..4 per schedulable node."""
    if service is None:
        names = ", ".join(sorted(known)) or "none"
        raise BadInput(
            f"the swarm stack {stack} has no service '{_shown(short)}'; its services: {names}",
            field="scale",
        )
    if "Global" in (_get(service, "Spec", "Mode") or {}):
        raise BadInput(
            f"{short} is a global service (one task per node): it follows the nodes and does not scale",
            field="scale",
        )
    constraints = constraints_of(service)
    if constraints:
        raise BadInput(
            f"{short} is pinned ({' and '.join(constraints)}): its data or its published port "
            "lives on that node, so it runs once and does not scale; nothing was changed",
            field="scale",
        )
    if n < 0:
        raise BadInput(f"replica count must be 0 or more, not {n}", field="scale")
    most = SINGLETONS.get(short)
    if most is not None and n > most:
        raise BadInput(
            f"{short} is a singleton on Swarm (at most {most} task): "
            + (
                "one worker ingests per cycle; worker=0 stops ingestion, worker=1 starts it again"
                if short == "worker"
                else "its data is on one node's volume"
            ),
            field="scale",
        )
    if short == "backend":
        schedulable = sum(1 for node in nodes if _schedulable(node))
        top = MAX_BACKEND_PER_NODE * max(1, schedulable)
        if n < 1:
            raise BadInput(
                "backend cannot scale to 0: at least 1 task must serve (nginx's and the console's "
                "health checks go through it); to stop the API, remove the stack",
                field="scale",
            )
        if n > top:
            raise BadInput(
                f"backend scales to at most {top} tasks ({MAX_BACKEND_PER_NODE} per schedulable "
                f"node, {schedulable} schedulable), not {n}",
                field="scale",
            )


# --- an update's outcome ------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateOutcome:
    """What a service's ``UpdateStatus`` says about the update (or rollback) in flight."""

    state: str
    """``updating``, ``completed``, ``paused``, ``rollback_started``,
    ``rollback_completed``, ``rollback_paused``, or ``none``."""
    finished: bool
    """Nothing more will happen without the operator."""
    ok: bool
    """The update completed (for a rollback that we asked for: it completed)."""
    rolled_back: bool
    """Swarm rolled (or is rolling) the service back by itself."""
    reason: str
    """The operator's sentence: Swarm's message, plus the failed task's error."""


def update_outcome(
    status: Attrs | None,
    tasks: Iterable[Attrs] = (),
    image: str | None = None,
    *,
    rollback: bool = False,
) -> UpdateOutcome:
    """The meaning of ``UpdateStatus`` (``rollback``: we asked for the
    rollback, so its completion is the success). ``tasks`` and ``image``
    (the new version's image) add the error of the newest failed task of
    that image: Swarm's own message only names the task
    (``update rolled back due to failure or early termination of task …``)."""
    state = str(_get(status, "State") or "none")
    message = str(_get(status, "Message") or "").strip()
    why = _task_error(tasks, image) if image else None
    reason = message or state
    if why and why not in reason:
        reason = f"{reason}: {why}"
    if state == "completed":
        return UpdateOutcome(state, True, not rollback, False, reason)
    if state == "rollback_completed":
        return UpdateOutcome(state, True, rollback, not rollback, reason)
    if state == "paused":
        return UpdateOutcome(state, True, False, False, reason)
    if state == "rollback_paused":
        # Swarm rolled back by itself and its rollback stopped: nothing
        # more happens, and a second rollback would be refused
        return UpdateOutcome(state, True, False, not rollback, reason)
    if state.startswith("rollback_"):  # rollback_started, and any state to come
        return UpdateOutcome(state, False, False, not rollback, reason)
    return UpdateOutcome(state, False, False, False, reason)


def _task_error(tasks: Iterable[Attrs], image: str | None) -> str | None:
    """The error of the newest failed or rejected task running ``image``."""
    want = (image or "").split("@", 1)[0]
    failed = [
        t
        for t in tasks
        if _get(t, "Status", "State") in ("failed", "rejected")
        and str(_get(t, "Spec", "ContainerSpec", "Image") or "").split("@", 1)[0] == want
    ]
    if not failed:
        return None
    newest = max(failed, key=lambda t: str(_get(t, "Status", "Timestamp") or ""))
    err = _get(newest, "Status", "Err") or _get(newest, "Status", "Message")
    return f"task {str(newest.get('ID') or '')[:12]}: {err}" if err else None


def tasks_on(tasks: Iterable[Attrs], node_id: str) -> list[Attrs]:
    """The tasks meant to run on ``node_id``."""
    return [t for t in tasks if t.get("NodeID") == node_id and t.get("DesiredState") == "running"]


def running_of(tasks: Iterable[Attrs], image: str | None = None) -> list[Attrs]:
    """Tasks that run and are meant to (of ``image`` when given)."""
    want = (image or "").split("@", 1)[0]
    out = []
    for t in tasks:
        if _get(t, "Status", "State") != "running" or t.get("DesiredState") != "running":
            continue
        have = str(_get(t, "Spec", "ContainerSpec", "Image") or "").split("@", 1)[0]
        if image is None or have == want:
            out.append(t)
    return out


NOT_YET_RUNNING = frozenset(
    {"new", "pending", "assigned", "accepted", "ready", "preparing", "starting"}
)
"""Task states on the way to ``running`` (a replacement Swarm still starts)."""


@dataclass(frozen=True)
class DrainCheck:
    """One look at the stack while a node drains: what still keeps it from
    being done. Done only when nothing is listed (and, in the operation,
    when that holds over consecutive looks)."""

    left: list[Attrs]
    """Tasks of replicated services still meant to run on the drained node."""
    short: list[str]
    """Replicated services with fewer tasks running on active, ready nodes
    than their replicas."""
    starting: dict[str, str]
    """Task id -> ``backend.2 preparing on node-1``: tasks meant to run that
    do not run yet."""
    unplaced: dict[str, str]
    """Task id -> ``backend.1: no suitable node (…)``: tasks Swarm left
    pending with its reason (the scheduler found no node for them)."""

    @property
    def done(self) -> bool:
        return not (self.left or self.short or self.starting or self.unplaced)

    def describe(self, node: str) -> str:
        parts = [f"{len(self.left)} task(s) still on {node}"]
        parts.append(f"short: {', '.join(self.short) or 'none'}")
        if self.starting:
            parts.append(f"starting: {', '.join(sorted(self.starting.values()))}")
        if self.unplaced:
            parts.append(f"not placed: {'; '.join(sorted(self.unplaced.values()))}")
        return "; ".join(parts)


def _usable(node: Attrs) -> bool:
    """A node Swarm places tasks on and hears from: active and ready."""
    return (
        str(_get(node, "Spec", "Availability") or "active") == "active"
        and str(_get(node, "Status", "State") or "ready") == "ready"
    )


def drain_check(
    services: Iterable[Attrs],
    tasks: Iterable[Attrs],
    nodes: Iterable[Attrs],
    node_id: str,
    stack: str,
) -> DrainCheck:
    """What keeps the drain of ``node_id`` from being done, from one read of
    the services, their tasks and the nodes. A task counts as moved only
    when it runs on a node that is active and ready: a task that is still
    starting, one Swarm could not place (pending, with the scheduler's
    reason) and one on a node that is down do not (a rejoined node's stale
    task reads ``running`` until its engine reports it gone)."""
    nodes = list(nodes)
    tasks = list(tasks)
    usable = {str(n.get("ID")) for n in nodes if _usable(n)}
    left: list[Attrs] = []
    short: list[str] = []
    starting: dict[str, str] = {}
    unplaced: dict[str, str] = {}
    for svc in services:
        want = _get(svc, "Spec", "Mode", "Replicated", "Replicas")
        if not isinstance(want, int):
            continue  # global services follow the nodes by themselves
        name = short_service_name(str(_get(svc, "Spec", "Name")), stack)
        own = [t for t in tasks if t.get("ServiceID") == svc.get("ID")]
        left += tasks_on(own, node_id)
        placed = [t for t in running_of(own) if str(t.get("NodeID")) in usable]
        if len(placed) < want:
            short.append(name)
        for t in own:
            state = str(_get(t, "Status", "State") or "")
            if t.get("DesiredState") != "running" or state not in NOT_YET_RUNNING:
                continue
            label = f"{name}.{t.get('Slot') or '?'}"
            why = _get(t, "Status", "Err") or ""
            if state == "pending" and why:
                unplaced[str(t.get("ID"))] = f"{label}: {_shown(why, 200)}"
            else:
                where = node_name(nodes, t.get("NodeID")) if t.get("NodeID") else "no node yet"
                starting[str(t.get("ID"))] = f"{label} {state} on {where}"
    return DrainCheck(left, sorted(short), starting, unplaced)


def node_name(nodes: Iterable[Attrs], node_id: str | None) -> str:
    """A node's hostname from its id (the id's start when unknown)."""
    for node in nodes:
        if node.get("ID") == node_id:
            return parse_node(node).hostname
    return str(node_id or "?")[:12]


def describe_node(node: Attrs) -> SwarmNode:
    return parse_node(node)


def _failed_from(current: str, history: Iterable[Mapping[str, Any]]) -> set[str]:
    """The versions a deploy from ``current`` failed at (or rolled back from)."""
    return {
        str(rec.get("version"))
        for rec in history
        if rec.get("op") == "deploy"
        and rec.get("result") in ("failed", "rolled-back")
        and rec.get("from_version") == current
        and rec.get("version")
    }


def rollback_target(
    current: str, previous: str | None, history: Iterable[Mapping[str, Any]]
) -> tuple[str, str] | None:
    """Where a rollback without a version goes, and how: ``(version,
    "previous-spec")`` for ``service rollback``, ``(version, "update")`` for
    a rolling update to it, or None when there is nowhere to go.

    The last successful deploy that brought ``current`` names the version
    it replaced: that is the target. Swarm's previous spec alone is not
    enough: after a rollback (Swarm's own or stackdeck's, of a failed bake)
    it is the version that failed. Without such a deploy in the history
    (the stack file deployed it), the previous spec, unless it is the
    current version or one a deploy from the current version failed at."""
    records = list(history)
    for rec in reversed(records):
        if rec.get("op") != "deploy" or rec.get("result") != "ok":
            continue
        if rec.get("version") == current and rec.get("from_version") not in (None, current):
            target = str(rec["from_version"])
            return (target, "previous-spec" if previous == target else "update")
        break
    if previous and previous != current and previous not in _failed_from(current, records):
        return previous, "previous-spec"
    return None


def rollback_candidates(
    current: str, history: Iterable[Mapping[str, Any]], limit: int = 5
) -> list[str]:
    """Versions the history saw serving (a successful deploy's or rollback's
    version, the version a deploy replaced), newest first, without
    ``current`` and without those a deploy from it failed at: what the
    operator may name when :func:`rollback_target` has nothing."""
    records = list(history)
    failed = _failed_from(current, records)
    out: list[str] = []
    for rec in reversed(records):
        if rec.get("op") not in ("deploy", "rollback"):
            continue
        seen = [rec.get("version")] if rec.get("result") == "ok" else []
        seen.append(rec.get("from_version"))
        for version in seen:
            if version and version != current and version not in failed and version not in out:
                out.append(str(version))
    return out[:limit]
