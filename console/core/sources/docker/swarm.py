"""The stack as a swarm runs it: services, their tasks, the nodes.

Whether the stack is a compose project or a swarm stack is found here too
(:func:`stack_mode`): the engine's ``docker info`` says whether it is an
active swarm manager, and the stack's services carry
``com.docker.stack.namespace=<stack>``. ``Settings.mode`` overrides it.

The parsers are pure functions over the engine's JSON (``GET /services``,
``/tasks``, ``/nodes``, ``/info``: what the SDK's ``api.services()``,
``api.tasks()``, ``api.nodes()`` and ``api.info()`` return, and what
``docker service inspect`` prints), unit-tested with output recorded from a
real swarm (``tests/unit/core/data/swarm_*.json``).

:class:`SwarmSource` reads them on the shared :class:`DockerHandle` (three
list calls a poll, each bounded) and publishes a :class:`SwarmSnapshot`. In
``auto`` mode on an engine that is no swarm manager it only re-checks, every
:data:`DETECT_INTERVAL` seconds, and publishes when the answer changes: a
compose stack costs one ``docker info`` now and then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.models import (
    EngineEvent,
    StackMode,
    SwarmNode,
    SwarmService,
    SwarmSnapshot,
    SwarmTask,
)
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.docker.handle import DockerHandle, describe_docker_error
from console.core.sources.docker.inspect import parse_docker_time, split_image

__all__ = [
    "DETECT_INTERVAL",
    "STACK_LABEL",
    "SwarmSource",
    "parse_node",
    "parse_service",
    "parse_task",
    "service_image",
    "stack_mode",
    "swarm_changes",
    "swarm_snapshot",
]

STACK_LABEL = "com.docker.stack.namespace"
"""The label ``docker stack deploy`` puts on a stack's services (and their
containers, networks, secrets): its value is the stack's name."""

DETECT_INTERVAL = 15.0
"""Seconds between two checks for a swarm stack while the stack is a compose
project (auto mode)."""

Attrs = Mapping[str, Any]


def _get(attrs: Any, *path: str) -> Any:
    """``attrs[a][b]...``, None where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(attrs, Mapping):
            return None
        attrs = attrs.get(key)
    return attrs


def _short(value: Any, length: int = 12) -> str:
    return str(value or "")[:length]


def service_image(image: str) -> tuple[str, str]:
    """The image of a service spec or a task as (name, tag): ``docker stack
    deploy`` pins it to a digest (``investment-backend:v1.2.3@sha256:…``),
    where the tag is what an operator recognises; a bare digest gives its
    first 12 characters (:func:`split_image`)."""
    if "@" in image:
        named, _, digest = image.partition("@")
        name, tag = split_image(named)
        if ":" in named.rsplit("/", 1)[-1]:
            return name, tag
        return named, digest.split(":")[-1][:12]
    return split_image(image)


def short_service_name(name: str, stack: str) -> str:
    """``investment_backend`` -> ``backend`` (the name in the compose file)."""
    return name.removeprefix(f"{stack}_") if stack else name


def parse_node(attrs: Attrs) -> SwarmNode:
    """One entry of ``GET /nodes``."""
    spec = _get(attrs, "Spec") or {}
    status = _get(attrs, "Status") or {}
    manager = _get(attrs, "ManagerStatus") or {}
    labels = spec.get("Labels") or {}
    return SwarmNode(
        id=_short(attrs.get("ID"), 25),
        hostname=str(_get(attrs, "Description", "Hostname") or _short(attrs.get("ID"))),
        role=str(spec.get("Role") or "worker"),
        availability=str(spec.get("Availability") or "active"),
        state=str(status.get("State") or "unknown"),
        addr=status.get("Addr") or None,
        message=str(status.get("Message") or ""),
        leader=bool(manager.get("Leader")),
        reachability=manager.get("Reachability") or None,
        engine_version=_get(attrs, "Description", "Engine", "EngineVersion") or None,
        labels={str(k): str(v) for k, v in labels.items()},
    )


def parse_task(
    attrs: Attrs, service: str, nodes: Mapping[str, SwarmNode] | None = None
) -> SwarmTask:
    """One entry of ``GET /tasks``; ``service`` is its service's short name,
    ``nodes`` node id -> node (from :func:`parse_node`: hostname, state)."""
    status = _get(attrs, "Status") or {}
    node_id = attrs.get("NodeID") or None
    image, tag = service_image(str(_get(attrs, "Spec", "ContainerSpec", "Image") or ""))
    slot = attrs.get("Slot")
    exit_code = _get(status, "ContainerStatus", "ExitCode")
    container = _get(status, "ContainerStatus", "ContainerID")
    node = (nodes or {}).get(node_id) if node_id else None
    return SwarmTask(
        id=_short(attrs.get("ID")),
        service=service,
        slot=int(slot) if isinstance(slot, int) and slot > 0 else None,
        node_id=node_id,
        node=node.hostname if node else None,
        node_state=node.state if node else None,
        state=str(status.get("State") or "unknown"),
        desired_state=str(attrs.get("DesiredState") or "unknown"),
        since=parse_docker_time(status.get("Timestamp")),
        message=str(status.get("Message") or ""),
        error=status.get("Err") or None,
        image=image,
        tag=tag,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        container_id=_short(container) or None,
    )


def _mode_of(spec: Mapping[str, Any]) -> str:
    mode = spec.get("Mode") or {}
    for key, name in (
        ("Replicated", "replicated"),
        ("Global", "global"),
        ("ReplicatedJob", "replicated-job"),
        ("GlobalJob", "global-job"),
    ):
        if key in mode:
            return name
    return "replicated"


def _ports_of(attrs: Attrs) -> list[str]:
    """Published ports, ``8080->80/tcp`` (``ingress``: the routing mesh) or
    ``8080->80/tcp host`` (``mode: host``: on each node running a task)."""
    ports = _get(attrs, "Endpoint", "Ports") or _get(attrs, "Spec", "EndpointSpec", "Ports") or []
    out: list[str] = []
    for port in ports:
        if not isinstance(port, Mapping) or not port.get("PublishedPort"):
            continue
        text = f"{port['PublishedPort']}->{port.get('TargetPort')}/{port.get('Protocol') or 'tcp'}"
        if port.get("PublishMode") == "host":
            text += " host"
        out.append(text)
    return out


def _task_order(task: SwarmTask) -> tuple[Any, ...]:
    since = task.since.timestamp() if task.since else 0.0
    return (task.slot if task.slot is not None else 0, task.node or task.node_id or "", -since)


def parse_service(attrs: Attrs, stack: str, tasks: Iterable[SwarmTask] = ()) -> SwarmService:
    """One entry of ``GET /services`` (with ``status=true``: its desired
    count) and its tasks. Running: the tasks that run, are meant to, on a
    node that is ready (:attr:`SwarmTask.running`). Desired: the engine's
    ``DesiredTasks``; without it (API < 1.41), for a replicated service its
    replica count, else the tasks meant to run."""
    spec = _get(attrs, "Spec") or {}
    name = str(spec.get("Name") or _short(attrs.get("ID")))
    own = sorted(tasks, key=_task_order)
    mode = _mode_of(spec)
    counts = _get(attrs, "ServiceStatus") or {}
    # not the engine's RunningTasks: it counts a task on a node that went
    # down (its last state) and one an update is stopping (3/2)
    running = sum(1 for t in own if t.running)
    desired = counts.get("DesiredTasks")
    if not isinstance(desired, int):
        replicas = _get(spec, "Mode", "Replicated", "Replicas")
        if mode == "replicated" and isinstance(replicas, int):
            desired = replicas
        else:
            desired = sum(1 for t in own if t.desired_state == "running")
    image, tag = service_image(str(_get(spec, "TaskTemplate", "ContainerSpec", "Image") or ""))
    update = _get(attrs, "UpdateStatus") or {}
    return SwarmService(
        id=_short(attrs.get("ID"), 25),
        name=name,
        service=short_service_name(name, stack),
        mode=mode,
        desired=desired,
        running=running,
        image=image,
        tag=tag,
        update_state=update.get("State") or None,
        update_message=update.get("Message") or None,
        ports=_ports_of(attrs),
        tasks=own,
    )


def stack_mode(
    info: Mapping[str, Any] | None,
    stack: str,
    *,
    has_services: bool | None,
) -> tuple[StackMode, str]:
    """The stack's mode from ``docker info`` and whether services labelled
    ``com.docker.stack.namespace=<stack>`` exist (None: not asked, because
    the engine is no manager), with the reason in words."""
    swarm = _get(info, "Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state != "active":
        return "compose", f"the engine is not part of a swarm (swarm state: {state})"
    if not swarm.get("ControlAvailable"):
        return "compose", (
            f"the engine is a swarm worker (node {_short(swarm.get('NodeID'))}): services are "
            "read on a manager; point DOCKER_HOST at a manager's engine"
        )
    if not has_services:
        return "compose", f"no swarm service labelled {STACK_LABEL}={stack}"
    return "swarm", f"swarm stack {stack!r} on this manager"


def swarm_snapshot(
    *,
    taken_at: Any,
    stack: str,
    info: Mapping[str, Any] | None,
    services: Iterable[Attrs],
    tasks: Iterable[Attrs],
    nodes: Iterable[Attrs],
    mode: StackMode = "swarm",
    reason: str | None = None,
    engine_version: str | None = None,
) -> SwarmSnapshot:
    """The snapshot from the three lists (and ``docker info``): tasks matched
    to their services by id and to their nodes (hostname, state); services in
    stack order (edge, backend, worker, data), nodes managers first."""
    parsed_nodes = [parse_node(n) for n in nodes]
    by_id = {n.id: n for n in parsed_nodes}
    service_list = list(services)
    short = {
        str(s.get("ID")): short_service_name(str(_get(s, "Spec", "Name") or ""), stack)
        for s in service_list
    }
    by_service: dict[str, list[SwarmTask]] = {sid: [] for sid in short}
    for task in tasks:
        sid = str(task.get("ServiceID"))
        if sid in by_service:
            by_service[sid].append(parse_task(task, short[sid], by_id))
    parsed = [parse_service(s, stack, by_service.get(str(s.get("ID")), [])) for s in service_list]
    parsed.sort(key=lambda s: (_SERVICE_ORDER.get(s.service, 99), s.service))
    parsed_nodes.sort(key=lambda n: (n.role != "manager", not n.leader, n.hostname))
    return SwarmSnapshot(
        taken_at=taken_at,
        stack=stack,
        mode=mode,
        reason=reason,
        node_id=_get(info, "Swarm", "NodeID") or None,
        engine_version=engine_version or (info or {}).get("ServerVersion"),
        services=parsed,
        nodes=parsed_nodes,
    )


_UPDATE_WORDS = {
    "updating": "update started",
    "paused": "update paused",
    "completed": "update completed",
    "rollback_started": "rollback started",
    "rollback_paused": "rollback paused",
    "rollback_completed": "rollback completed",
}


def swarm_changes(before: SwarmSnapshot | None, after: SwarmSnapshot) -> list[EngineEvent]:
    """What changed between two swarm snapshots, as timeline events (origin
    ``swarm``, at ``after.taken_at``): a node's state or availability, a node
    joining or leaving; a service's update state and desired count; a task
    placed on another node than its slot's previous one (rescheduled), a
    task that failed or was rejected, a task lost with its node. The engine's
    event stream has the service and node changes too, but only on a manager
    and without the tasks: comparing snapshots gives both, from any poll.
    Nothing before there are two swarm snapshots (the start is no change)."""
    if before is None or before.mode != "swarm" or after.mode != "swarm":
        return []
    at = after.taken_at
    out: list[EngineEvent] = []

    def event(subject: str, action: str, detail: str | None, service: str | None = None) -> None:
        out.append(
            EngineEvent(
                at=at,
                container=subject,
                service=service,
                action=action,
                detail=detail,
                origin="swarm",
            )
        )

    old_nodes = {n.id: n for n in before.nodes}
    new_nodes = {n.id: n for n in after.nodes}
    for node in after.nodes:
        was = old_nodes.get(node.id)
        if was is None:
            event(node.hostname, "node joined", f"{node.role}, {node.state}")
            continue
        if was.state != node.state:
            why = f" ({node.message})" if node.message else ""
            event(node.hostname, f"node {node.state}", f"was {was.state}{why}")
        if was.availability != node.availability:
            event(node.hostname, f"node {node.availability}", f"was {was.availability}")
    for gone in old_nodes.keys() - new_nodes.keys():
        event(old_nodes[gone].hostname, "node removed", None)

    old_services = {s.id: s for s in before.services}
    for service in after.services:
        was_service = old_services.get(service.id)
        if was_service is None:
            event(service.name, "service created", f"{service.desired} tasks", service.service)
            continue
        if was_service.update_state != service.update_state and service.update_state:
            words = _UPDATE_WORDS.get(service.update_state, service.update_state)
            event(service.name, words, service.update_message, service.service)
        if was_service.desired != service.desired:
            event(
                service.name,
                "scaled",
                f"{was_service.desired} -> {service.desired} tasks",
                service.service,
            )
        old_tasks = {t.id: t for t in was_service.tasks}
        placed = {t.slot: t for t in was_service.tasks if t.slot is not None and t.node and t.live}
        for task in service.tasks:
            prior = old_tasks.get(task.id)
            if prior is None:
                previous = placed.get(task.slot) if task.slot is not None else None
                if task.live and previous is not None and previous.node != task.node:
                    event(
                        task.name,
                        "rescheduled",
                        f"{previous.node} -> {task.node or '(not placed yet)'}",
                        task.name,
                    )
                elif task.state in ("failed", "rejected"):
                    event(task.name, f"task {task.state}", task.error, task.name)
                continue
            if task.state in ("failed", "rejected") and prior.state != task.state:
                event(task.name, f"task {task.state}", task.error or task.message, task.name)
            elif task.lost and not prior.lost:
                event(task.name, "task lost", f"node {task.node} {task.node_state}", task.name)
    for gone in old_services.keys() - {s.id for s in after.services}:
        was_service = old_services[gone]
        event(was_service.name, "service removed", None, was_service.service)
    return out


_SERVICE_ORDER = {
    "nginx": 0,
    "backend": 1,
    "frontend": 2,
    "worker": 3,
    "db": 4,
    "redis": 5,
    "market-sim": 6,
}


class SwarmSource(Source):
    """The stack's services, tasks and nodes (kind ``swarm``), and the mode.

    ``Settings.mode``: ``swarm`` reads the swarm on every poll and fails
    loudly when the engine is no manager; ``auto`` publishes a compose
    verdict (with its reason) when the engine has no such stack, then only
    re-checks now and then, publishing again when the verdict changes. While
    the verdict is compose an unreachable engine is the containers source's
    news, not this one's: nothing is published and no failure reported.
    """

    name = "swarm"
    kind = "swarm"

    def __init__(self, settings: Settings, handle: DockerHandle, *, clock: Clock = utcnow) -> None:
        super().__init__(settings, clock=clock)
        self.handle = handle
        self.forced = settings.mode == "swarm"
        self.mode: StackMode | None = "swarm" if self.forced else None
        """The last verdict (None: not known yet)."""
        self._verdict: tuple[StackMode, str] | None = None

    @property
    def interval(self) -> float:
        if self.mode == "swarm":
            return self.settings.refresh.containers
        return DETECT_INTERVAL

    def _services(self, api: Any) -> list[dict[str, Any]]:
        filters = {"label": f"{STACK_LABEL}={self.settings.project}"}
        try:
            return list(api.services(filters=filters, status=True))
        except Exception as exc:  # an API before 1.41 has no status counts
            if type(exc).__name__ != "InvalidVersion":
                raise
            return list(api.services(filters=filters))

    def _collect(self) -> SwarmSnapshot | None:
        stack = self.settings.project
        api = self.handle.api
        info = self.handle.info(refresh=True)
        swarm = info.get("Swarm") or {}
        manager = swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))
        services = self._services(api) if manager else []
        mode, reason = stack_mode(info, stack, has_services=bool(services) if manager else None)
        if self.forced and mode != "swarm":
            raise SourceError("swarm", f"{reason} (STACKDECK_MODE=swarm)")
        if mode == "compose":
            verdict = (mode, reason)
            changed = verdict != self._verdict
            self.mode, self._verdict = mode, verdict
            if not changed:
                return None
            return SwarmSnapshot(
                taken_at=self.clock(),
                stack=stack,
                mode="compose",
                reason=reason,
                node_id=swarm.get("NodeID") or None,
                engine_version=info.get("ServerVersion"),
            )
        ids = [str(s["ID"]) for s in services]
        tasks = list(api.tasks(filters={"service": ids}))
        nodes = list(api.nodes())
        self.mode, self._verdict = "swarm", (mode, reason)
        if self.forced:
            reason = f"{reason} (STACKDECK_MODE=swarm)"
        return swarm_snapshot(
            taken_at=self.clock(),
            stack=stack,
            info=info,
            services=services,
            tasks=tasks,
            nodes=nodes,
            mode="swarm",
            reason=reason,
        )

    async def poll(self) -> SwarmSnapshot | None:
        try:
            return await self.handle.call(
                self._collect, deadline=self.poll_timeout, what="list swarm services"
            )
        except Exception as exc:
            self.handle.forget_cache()
            if self.mode != "swarm":
                return None  # a compose stack: the engine source reports the engine
            raise SourceError("swarm", describe_docker_error(exc)) from None
