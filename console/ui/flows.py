"""What happens between pressing an operation's key and the operation starting.

One flow per operation, each straight-line code: show a form, wait for it,
show the confirmation, wait for it, return the parameters (a typed model of
:mod:`console.core.ops.table`) or None when the operator backed out.
:func:`run_flow` runs the flow in a worker of the dashboard (so it may wait
on screens with ``push_screen_wait``) and hands the parameters to the app.

Operations without a flow of their own get :func:`generic`: a form built
from their parameter model when it has something to ask, then a confirmation
when they write, typed when the parameters say so
(:meth:`~console.core.ops.table.OpParams.typed_confirmation`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from textual.content import Content

from console.core.ops.table import (
    CACHE_PREFIX,
    CacheFlushParams,
    EmergencyLimitParams,
    NodeParams,
    OpParams,
    OpSpec,
    RestartParams,
    RollbackParams,
    VacuumParams,
)
from console.ui.panels.database import LONG_QUERY_S
from console.ui.screens.confirm import ConfirmScreen, FlushScreen, TypedConfirmScreen
from console.ui.screens.deploy import DeployScreen
from console.ui.screens.params import ParamsScreen, asks_for_input

if TYPE_CHECKING:
    from console.ui.screens.dashboard import DashboardScreen

__all__ = ["FLOWS", "confirm", "generic", "run_flow"]

Flow = Callable[["DashboardScreen", OpSpec], Awaitable[OpParams | None]]


async def run_flow(dash: DashboardScreen, spec: OpSpec) -> None:
    """Ask, then start the operation (the app refuses it if it became blocked meanwhile)."""
    params = await FLOWS.get(spec.name, generic)(dash, spec)
    if params is not None:
        dash.stack_app.start_operation(spec.name, params)


async def confirm(
    dash: DashboardScreen,
    spec: OpSpec,
    params: OpParams,
    title: str,
    body: str | Content,
    *,
    label: str | None = None,
    warning: str | None = None,
) -> OpParams | None:
    """The confirmation the parameters call for: typed (the target's name, put
    in ``confirm``), or yes/no, red when destructive. The parameters, or None."""
    target = params.typed_confirmation()
    if target is not None:
        expected = dash.redis_target() if target == "redis" else dash.stack_app.database_name()
        if not await dash.app.push_screen_wait(TypedConfirmScreen(title, body, expected=expected)):
            return None
        return params.model_copy(update={"confirm": expected})
    screen = ConfirmScreen(
        title,
        body,
        confirm_label=label or spec.title,
        destructive=spec.is_destructive(params),
        warning=warning,
    )
    return params if await dash.app.push_screen_wait(screen) else None


async def generic(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    """A form when the parameters need input, then a confirmation when it writes."""
    if asks_for_input(spec.params):
        params = await dash.app.push_screen_wait(ParamsScreen(spec))
        if params is None:
            return None
    else:
        params = spec.params()
    if not spec.writes:
        return params
    return await confirm(
        dash, spec, params, f"{spec.title}?", f"{spec.help[:1].upper()}{spec.help[1:]}."
    )


async def deploy(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    if dash.swarm_mode():
        return await swarm_deploy(dash, spec)
    serving, idle = dash.serving_and_idle()
    versions = await dash.stack_app.available_versions()
    params = await dash.app.push_screen_wait(
        DeployScreen(dash.stack_app.settings.project, serving, idle, versions)
    )
    if params is None:
        return None
    built = (
        " Built from this checkout first if there is no image of it."
        if params.build and params.version not in versions
        else ""
    )
    body = Content.assemble(
        "Deploy ",
        (params.version, "bold"),
        f" to {dash.stack_app.settings.project} with the ",
        (params.strategy, "bold"),
        f" strategy.{built}\n",
        (
            "The idle colour starts, is verified, then nginx switches to it; "
            "failures switch back automatically."
            if params.strategy == "blue-green"
            else "The new version starts beside the serving container, is verified, takes "
            "the traffic while that container is replaced, then hands it back; "
            "failures switch back automatically."
        ),
    )
    return await confirm(dash, spec, params, f"Deploy {params.version}?", body, label="Deploy")


async def swarm_deploy(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    """The deploy form (version), then what Swarm and stackdeck will do."""
    _, version = dash.swarm_backend()
    serving = f"backend {version}" if version else None
    versions = await dash.stack_app.available_versions()
    params = await dash.app.push_screen_wait(
        DeployScreen(dash.stack_app.settings.project, serving, None, versions)
    )
    if params is None:
        return None
    body = Content.assemble(
        "Deploy ",
        (params.version, "bold"),
        f" to the swarm stack {dash.stack_app.settings.project}.\n",
        "Swarm rolls the backend's tasks start-first, gated by their health checks, and "
        "rolls back by itself if they fail; then stackdeck bakes it through nginx (p95, "
        "error rate) and rolls the service back if the bake fails.",
    )
    return await confirm(dash, spec, params, f"Deploy {params.version}?", body, label="Deploy")


async def node(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    """Drain or activate the node under the cursor (else the form asks which)."""
    selected = dash.selected_node()
    if selected is None:
        return await generic(dash, spec)
    _, hostname = selected
    drain = spec.name == "node-drain"
    body = (
        f"Swarm stops every task on {hostname} and starts it on the other nodes; services "
        "with one task there are unavailable until it runs elsewhere. Refused when it is the "
        "last node a pinned service (the database) can run on."
        if drain
        else f"Swarm places new tasks on {hostname} again (running tasks are not moved back)."
    )
    return await confirm(
        dash,
        spec,
        NodeParams(node=hostname),
        f"{'Drain' if drain else 'Activate'} {hostname}?",
        body,
        label="Drain" if drain else "Activate",
    )


async def rollback(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    if dash.swarm_mode():
        _, version = dash.swarm_backend()
        return await confirm(
            dash,
            spec,
            RollbackParams(),
            "Roll back?",
            f"Swarm rolls the backend back from {version or 'its version'} to the version the "
            "last deploy replaced (service rollback, start-first).",
            label="Roll back",
        )
    serving, idle = dash.serving_and_idle()
    body = "Switch traffic back to the previous version"
    if serving and idle:
        body += f": {serving} → {idle}"
    body += ". Instant when the old colour still exists."
    return await confirm(dash, spec, RollbackParams(), "Roll back?", body, label="Roll back")


async def vacuum(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    warning = None
    if dash.database is not None:
        long = [s for s in dash.database.sessions if (s.duration_s or 0) >= LONG_QUERY_S]
        if long:
            oldest = max(long, key=lambda s: s.duration_s or 0)
            warning = (
                f"{len(long)} transaction(s) running for a long time (pid {oldest.pid}): "
                "VACUUM cannot remove tuples they may still see"
            )
    return await confirm(
        dash,
        spec,
        VacuumParams(),
        "VACUUM (ANALYZE) all tables?",
        "Runs outside a transaction; progress is shown in the Operations panel.",
        label="Vacuum",
        warning=warning,
    )


async def cache_flush(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    target = dash.redis_target()
    scope = await dash.app.push_screen_wait(FlushScreen(target, CACHE_PREFIX))
    if scope == "prefix":
        return await confirm(
            dash,
            spec,
            CacheFlushParams(),
            "Flush cache keys?",
            f"Removes the {CACHE_PREFIX}* keys of {target} (SCAN + UNLINK). "
            "Quota counters and the emergency flag are kept.",
            label="Flush",
        )
    if scope == "all":
        return await confirm(
            dash,
            spec,
            CacheFlushParams(all=True),
            "FLUSHDB: remove every key?",
            Content.assemble(
                "Every key of ",
                (target, "bold"),
                " is deleted with FLUSHDB. The quota counters and the emergency "
                "flag are saved first and restored right after.",
            ),
        )
    return None


async def emergency_limit(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    turn_on = not bool(dash.quotas and dash.quotas.emergency_limit)
    params = EmergencyLimitParams(state="on" if turn_on else "off")
    return await confirm(
        dash,
        spec,
        params,
        f"Turn the emergency rate limit {'ON' if turn_on else 'OFF'}?",
        f"No outbound provider calls for an hour (TTL {params.ttl} s), or until it is turned off."
        if turn_on
        else "Provider calls resume within their normal quotas.",
        label="Turn on" if turn_on else "Turn off",
    )


async def restart(dash: DashboardScreen, spec: OpSpec) -> OpParams | None:
    container, service = dash.selected_service()
    if service is None:
        dash.notify("select a container first (Containers panel, 1)", severity="warning")
        return None
    return await confirm(
        dash,
        spec,
        RestartParams(service=service),
        f"Restart {service}?",
        f"Restarts container {container}. Requests it serves fail while it restarts.",
        label="Restart",
    )


FLOWS: dict[str, Flow] = {
    "deploy": deploy,
    "rollback": rollback,
    "vacuum": vacuum,
    "cache-flush": cache_flush,
    "emergency-limit": emergency_limit,
    "restart": restart,
    "node-drain": node,
    "node-activate": node,
}
"""Operations with a flow of their own (the rest: :func:`generic`)."""
