"""Draining a backend container nginx no longer routes to: until no request
from nginx is in flight on it, before it is stopped.

After a switch, nginx's reload is graceful: workers of the old
configuration finish the requests they have, and those requests are still
open on the container traffic left. Each is one TCP connection from nginx
to the backend's port (nginx keeps no idle connections to a backend: there
is no ``keepalive`` upstream pool in ``compose/nginx/conf/site.conf``), so
the container is drained when its ``/proc/net/tcp`` lists no established
connection from nginx's address. Connections from anyone else (Prometheus
keeps its scrape connection open) are not requests of users and are not
waited for.

A price stream (``/api/ws/prices``) is such a connection too, but one that
never ends by itself: before waiting, the container is asked to hand its
streams off (``POST /direct/<slot>/api/streams/hand-off``, the admin token):
it closes them with 1012 and their clients reconnect through nginx to the
container that serves now. A version without that endpoint answers 404 and
its streams end when it stops, after the wait below.

Stopping after that is belt and braces: uvicorn, on SIGTERM, also finishes
what it has before it exits (``--timeout-graceful-shutdown``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from console.core.ops.context import OpContext
from console.core.ops.http import client, probe
from console.core.ops.proc import docker_exec, inspect_container
from console.core.ops.progress import Progress

__all__ = [
    "BACKEND_PORT",
    "addresses_of",
    "ask_hand_off_inside",
    "connections_from",
    "hand_off_streams",
    "hand_off_streams_inside",
    "wait_drained",
]

BACKEND_PORT = 8000
"""The port every backend container listens on (docs/CONTRACT.md)."""

_ESTABLISHED = "01"


def _ipv4(hex_addr: str) -> str | None:
    """``0100007F`` (``/proc/net/tcp``: little-endian) -> ``127.0.0.1``."""
    if len(hex_addr) != 8:
        return None
    try:
        raw = bytes.fromhex(hex_addr)
    except ValueError:
        return None
    return ".".join(str(b) for b in reversed(raw))


def _ipv6_mapped(hex_addr: str) -> str | None:
    """An IPv4-mapped ``/proc/net/tcp6`` address -> its IPv4 (else None).

    ``::ffff:a.b.c.d`` is four little-endian 32-bit words: ``0000000000000000
    FFFF0000`` then the IPv4 word as ``/proc/net/tcp`` writes it."""
    if len(hex_addr) != 32 or hex_addr[:24].upper() != "0000000000000000FFFF0000":
        return None
    return _ipv4(hex_addr[24:])


def connections_from(proc_net_tcp: str, peers: Iterable[str], port: int = BACKEND_PORT) -> int:
    """Established connections to local ``port`` whose remote address is one
    of ``peers`` (IPv4), in the text of ``/proc/net/tcp`` and/or
    ``/proc/net/tcp6`` (headers and other lines are skipped)."""
    wanted = set(peers)
    count = 0
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != _ESTABLISHED:
            continue
        local, remote = fields[1], fields[2]
        _, _, local_port = local.rpartition(":")
        remote_addr, _, _ = remote.rpartition(":")
        try:
            if int(local_port, 16) != port:
                continue
        except ValueError:
            continue
        ip = _ipv4(remote_addr) if len(remote_addr) == 8 else _ipv6_mapped(remote_addr)
        if ip is not None and ip in wanted:
            count += 1
    return count


def addresses_of(info: dict[str, object] | None) -> set[str]:
    """Every IPv4 address a container has on its networks (``docker inspect``)."""
    settings = (info or {}).get("NetworkSettings") or {}
    networks = settings.get("Networks") if isinstance(settings, dict) else None
    out: set[str] = set()
    for net in (networks or {}).values() if isinstance(networks, dict) else ():
        if isinstance(net, dict) and net.get("IPAddress"):
            out.add(str(net["IPAddress"]))
    return out


async def hand_off_streams(ctx: OpContext, service: str, progress: Progress, *, step: str) -> None:
    """Ask ``service`` (``backend_<colour>`` or ``backend_<colour>_surge``) to
    close its price streams so their clients reconnect to what serves now.
    Never fails the deploy: without it the streams end when it stops."""
    token = ctx.env.get("ADMIN_TOKEN", "")
    path = f"/direct/{service.removeprefix('backend_')}/api/streams/hand-off"
    if not token:
        progress.info(
            step, f"no ADMIN_TOKEN in .env: {service}'s price streams stay until it stops"
        )
        return
    async with client(ctx) as http:
        p = await probe(http, path, method="POST", headers={"Authorization": f"Bearer {token}"})
    told = p.body.get("handed_off") if p.ok and isinstance(p.body, dict) else None
    if isinstance(told, int):
        progress.info(
            step,
            f"{service}: {told} price stream(s) asked to reconnect to what serves now",
            streams=told,
        )
    elif p.status == 404:
        progress.info(
            step, f"{service}'s version cannot hand its price streams off: they end when it stops"
        )
    elif p.status in (401, 403):  # the stack's ADMIN_TOKEN and .env disagree
        progress.warn(step, f"{service} refused the price streams' hand-off ({p.describe()})")
    else:  # down or going: its streams, if any, end with it
        progress.info(step, f"{service} did not take the price streams' hand-off ({p.describe()})")


HAND_OFF_INSIDE = (
    'curl -sS -m 5 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" '
    f"http://127.0.0.1:{BACKEND_PORT}/api/streams/hand-off"
)
"""The hand-off asked from inside a container: its own ``ADMIN_TOKEN``
(compose gives every backend container the stack's), expanded by the
container's shell, so the token is on no command line."""


async def ask_hand_off_inside(ctx: OpContext, name: str) -> int | None:
    """The price streams container ``name`` was asked to hand off, from
    inside it (:data:`HAND_OFF_INSIDE`); None when it did not take it."""
    r = await docker_exec(ctx, name, "sh", "-c", HAND_OFF_INSIDE, check=False, timeout_s=15)
    try:
        told = json.loads(r.stdout).get("handed_off") if r.ok else None
    except (ValueError, AttributeError):
        return None
    return told if isinstance(told, int) else None


async def hand_off_streams_inside(
    ctx: OpContext, name: str, progress: Progress, *, step: str
) -> None:
    """:func:`hand_off_streams` for a container nginx has no ``/direct/``
    route to (a replica): asked from inside it. Never fails the operation:
    without it the streams end (reset) when it stops."""
    told = await ask_hand_off_inside(ctx, name)
    if told is not None:
        if told:
            progress.info(
                step, f"{name}: {told} price stream(s) asked to reconnect to what serves now"
            )
    else:
        progress.info(
            step, f"{name} did not take the price streams' hand-off: they end when it stops"
        )


async def wait_drained(
    ctx: OpContext,
    service: str,
    progress: Progress,
    *,
    step: str,
    timeout_s: float = 20.0,
) -> bool:
    """Until ``service``'s container has no request from nginx in flight
    (True), or ``timeout_s`` passed (False, with a warning: it is stopped
    gracefully anyway). A container that is gone is drained."""
    name = ctx.container(service)
    started = time.monotonic()
    progress.start(step, f"draining {service}: waiting for nginx's requests in flight to end")
    nginx = addresses_of(await inspect_container(ctx, ctx.container("nginx")))
    await hand_off_streams(ctx, service, progress, step=step)
    last = 0
    while True:
        r = await docker_exec(
            ctx,
            name,
            "cat",
            "/proc/net/tcp",
            "/proc/net/tcp6",
            check=False,
            timeout_s=15,
            what=f"reading {name}'s connections",
        )
        # exit 1 with output: tcp6 missing (no IPv6), tcp read
        if not r.stdout.strip():
            progress.ok(step, f"{service} drained (not running)")
            return True
        last = connections_from(r.stdout, nginx)
        elapsed = time.monotonic() - started
        if last == 0:
            progress.ok(
                step,
                f"{service} drained: no request from nginx in flight ({elapsed:.1f} s)",
                seconds=round(elapsed, 1),
            )
            return True
        if elapsed > timeout_s:
            progress.warn(
                step,
                f"{service}: {last} request(s) from nginx still in flight after {timeout_s:g} s; "
                "stopping it gracefully (requests in flight get up to its stop grace period)",
                in_flight=last,
            )
            return False
        await asyncio.sleep(0.2)
