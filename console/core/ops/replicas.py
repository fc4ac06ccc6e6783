"""Backend replicas: N containers of a colour behind nginx (the runbook's
``--scale backend=N``, ``stackdeck scale backend=N``).

Design, and why:

* **The colour's own container stays replica 1.** ``backend_<colour>`` keeps
  its fixed name (``<stack>_backend_blue_prod``: the name on-call engineers
  know, and the one the console, the scripts, ``/direct/<colour>/``, deploy,
  rollback and the rolling deploy's surge all address). Replicas 2..N are a
  second compose service per colour, ``backend_<colour>_replica`` (profile
  ``replica``, no ``container_name``), which compose scales:
  ``<stack>-backend_blue_replica-1``, ``-2``... Nothing that addressed the
  single backend changes; the replicas carry the colour's labels, so every
  list by label (status, the containers panel) shows each one.
* **Explicit upstream membership, not DNS round-robin.** nginx resolves
  ``$active_backend`` through Docker's DNS per request (``valid=2s``). A
  scaled service's DNS name lists a container as soon as it *starts* (before
  uvicorn listens: refused connections, retried by ``proxy_next_upstream``
  for some requests, not all) and, depending on nginx's and the embedded
  DNS's caches, for a while after it stops. So when a colour has more than
  one container, the console writes ``/etc/nginx/upstream/pool.conf``
  (``upstream backend_<colour>_pool`` with one ``server <address>:8000`` per
  *healthy* container) and ``pool.map`` (``backend_<colour>
  backend_<colour>_pool;``, read by a ``map`` in site.conf that turns
  ``$active_backend`` into ``$active_upstream``), then ``nginx -t`` and a
  graceful reload. Membership changes exactly at a reload, which nginx makes
  graceful. With one container there is no pool: ``$active_upstream`` is
  ``backend_<colour>:8000`` through DNS, as before. Addresses rather than
  container names: a name nginx cannot resolve at a reload fails ``nginx -t``
  and would block every later switch (a deploy's, a rollback's); a stale
  address only fails over (``proxy_next_upstream error timeout``, nginx's
  default) to the other members.
* **Scale up**: start the replicas (``compose up --scale``), wait until each
  is healthy on the colour's version, *then* write the pool with them and
  reload; confirmed through nginx (``X-Upstream-Addr``: every member
  answered). **Scale down**: the pool without the leaving replicas first
  (reload), then wait until no request from nginx is in flight on them
  (:mod:`console.core.ops.steps.drain`), then ``docker stop`` (uvicorn
  finishes what it has, ``--timeout-graceful-shutdown``) and remove.
* **The count persists** in deploy.env as ``BACKEND_REPLICAS``: a blue-green
  deploy starts the new colour with as many replicas and waits for all of
  them before the switch (:func:`ensure_colour_replicas`); afterwards the
  previous colour keeps its own container (the instant rollback target) and
  its replicas are removed.
* **A rolling deploy with N containers** (``console/core/ops/deploy.py``,
  ``_roll_pool``) goes through the pool one container at a time: the surge
  (new version, healthy, smoke-tested) joins the pool, then each old
  container leaves it (reload), is drained, and is replaced by a new-version
  one that joins the pool once healthy (:func:`start_replicas`,
  :func:`route_pool`, :func:`drain_and_remove`); last the surge leaves. The
  pool never has fewer than N members, nor one that is not healthy.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from console.core.ops.context import OpContext, backend_service
from console.core.ops.errors import OpFailed
from console.core.ops.http import client
from console.core.ops.proc import compose, docker, docker_exec, inspect_container
from console.core.ops.progress import Progress
from console.core.ops.statefiles import read_deploy_env, update_deploy_env
from console.core.ops.steps.drain import BACKEND_PORT, addresses_of, connections_from
from console.core.sources.docker.inspect import container_health, container_version, last_health_log

__all__ = [
    "POOL_CONF",
    "POOL_MAP",
    "REPLICA",
    "REPLICAS_VAR",
    "Member",
    "colour_members",
    "drain_and_remove",
    "ensure_colour_replicas",
    "list_replicas",
    "list_service",
    "member_of",
    "pool_target",
    "read_pool_map",
    "remove_colour_replicas",
    "render_pool",
    "replica_service",
    "replicas_wanted",
    "route_pool",
    "scale_colour",
    "set_replicas_wanted",
    "start_replicas",
    "write_pool",
]

REPLICA = "replica"
"""The slot of a colour's extra containers: compose service
``backend_<colour>_replica``."""
REPLICAS_VAR = "BACKEND_REPLICAS"
"""deploy.env: how many containers the serving colour runs (1 when absent)."""
POOL_CONF = "/etc/nginx/upstream/pool.conf"
POOL_MAP = "/etc/nginx/upstream/pool.map"
_MAP_LINE = re.compile(r"^\s*(backend_(?:blue|green))\s+(backend_(?:blue|green)_pool)\s*;", re.M)


def replica_service(colour: str) -> str:
    return backend_service(colour, REPLICA)


def pool_target(colour: str) -> str:
    """The nginx upstream holding a colour's containers when it has several."""
    return f"{backend_service(colour)}_pool"


def replicas_wanted(env: Mapping[str, str]) -> int:
    """``BACKEND_REPLICAS`` from deploy.env; 1 when absent or not a positive number."""
    text = str(env.get(REPLICAS_VAR) or "").strip()
    return int(text) if text.isdigit() and int(text) >= 1 else 1


@dataclass(frozen=True)
class Member:
    """One container of a colour as the pool names it."""

    container: str
    address: str
    number: int = 0
    """Compose's replica number (0: the colour's own container)."""


def render_pool(pools: Mapping[str, list[Member]]) -> tuple[str, str]:
    """``(pool.conf, pool.map)`` for ``{colour: members}``; a colour with fewer
    than two members gets no pool (its DNS name serves it)."""
    conf = ["# written by stackdeck (console/core/ops/replicas.py): do not edit\n"]
    mapping = ["# written by stackdeck (console/core/ops/replicas.py): do not edit\n"]
    for colour in sorted(pools):
        members = pools[colour]
        if len(members) < 2:
            continue
        conf.append(f"upstream {pool_target(colour)} {{\n")
        for m in members:
            conf.append(f"    server {m.address}:{BACKEND_PORT};  # {m.container}\n")
        conf.append("}\n")
        mapping.append(f"{backend_service(colour)} {pool_target(colour)};\n")
    return "".join(conf), "".join(mapping)


def parse_pool_map(text: str) -> set[str]:
    """The colours pool.map routes to a pool."""
    return {m.group(1).removeprefix("backend_") for m in _MAP_LINE.finditer(text)}


async def read_pool_map(ctx: OpContext) -> set[str]:
    """The colours nginx's config sends to a pool right now (empty: none, or
    no pool.map yet). A read that fails otherwise (nginx down or too slow to
    answer) raises: pools rewritten from an unknown read would drop the
    serving colour's."""
    r = await docker_exec(ctx, ctx.container("nginx"), "cat", POOL_MAP, check=False, timeout_s=15)
    if r.ok:
        return parse_pool_map(r.stdout)
    if "No such file" in r.stderr:
        return set()
    raise OpFailed(
        f"could not read nginx's {POOL_MAP} (which colours it sends to a pool of replicas): "
        f"{r.tail()}; the pools were left as they are. Check nginx (`stackdeck status`), then run it again"
    )


POOL_SCRIPT = """\
conf=$1 map=$2
old_conf=$(cat "$conf" 2>/dev/null || true)
old_map=$(cat "$map" 2>/dev/null || true)
new=$(cat)
printf '%s\\n' "${new%%@@MAP@@*}" > "$conf.new" && printf '%s\\n' "${new#*@@MAP@@}" > "$map.new" \\
  && mv -f "$conf.new" "$conf" && mv -f "$map.new" "$map" || { echo "cannot write $conf" >&2; exit 2; }
if ! nginx -t -q; then
  printf '%s\\n' "$old_conf" > "$conf.new" && mv -f "$conf.new" "$conf"
  printf '%s\\n' "$old_map" > "$map.new" && mv -f "$map.new" "$map"
  exit 3
fi
exec nginx -s reload
"""
"""One ``docker exec``: keep the old files, write both new ones whole (temp
file + rename), ``nginx -t``; on failure put the old ones back and exit 3
(nothing reloaded), else a graceful ``nginx -s reload``. stdin: pool.conf,
the marker ``@@MAP@@``, pool.map."""


async def write_pool(ctx: OpContext, pools: Mapping[str, list[Member]]) -> None:
    """nginx's pools become ``pools`` (validated, graceful reload); on a failed
    ``nginx -t`` the previous files are put back and :class:`OpFailed` raised."""
    conf, mapping = render_pool(pools)
    r = await docker_exec(
        ctx,
        ctx.container("nginx"),
        "sh",
        "-c",
        POOL_SCRIPT,
        "pool",
        POOL_CONF,
        POOL_MAP,
        input=f"{conf}@@MAP@@{mapping}".encode(),
        check=False,
        timeout_s=45,
        what="nginx pool",
    )
    if r.returncode == 3:
        raise OpFailed(
            f"nginx -t rejected the replica pool; the previous one was put back and nothing was "
            f"reloaded: {r.tail()}",
            step="pool",
        )
    if not r.ok:
        raise OpFailed(
            ctx.redact(f"writing nginx's replica pool failed (exit {r.returncode}): {r.tail()}"),
            step="pool",
        )


async def list_replicas(ctx: OpContext, colour: str) -> list[dict]:
    """``docker inspect`` of every replica container of ``colour`` (any state),
    by compose number."""
    return await list_service(ctx, replica_service(colour))


async def list_service(ctx: OpContext, service: str) -> list[dict]:
    """``docker inspect`` of every container of the compose ``service`` (any
    state), by compose number."""
    r = await docker(
        ctx,
        "ps",
        "-a",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={ctx.stack}",
        "--filter",
        f"label=com.docker.compose.service={service}",
        timeout_s=20,
    )
    ids = r.stdout.split()
    if not ids:
        return []
    out = await docker(ctx, "inspect", *ids, timeout_s=20)
    infos = json.loads(out.stdout or "[]")
    return sorted(infos, key=_number)


def _number(info: dict) -> int:
    labels = (info.get("Config") or {}).get("Labels") or {}
    text = str(labels.get("com.docker.compose.container-number", "0"))
    return int(text) if text.isdigit() else 0


def _name(info: dict) -> str:
    return str(info.get("Name", "")).lstrip("/")


def _address(ctx: OpContext, info: dict | None) -> str | None:
    """The container's address on the network nginx shares with it."""
    networks = ((info or {}).get("NetworkSettings") or {}).get("Networks") or {}
    net = networks.get(f"{ctx.stack}_default") or {}
    return str(net.get("IPAddress") or "") or None


def member_of(ctx: OpContext, info: dict | None, number: int = 0) -> Member | None:
    """The container as a pool member, when it runs healthy (or has no health
    check) with an address on the stack's network; else None."""
    state, health = container_health(info)
    address = _address(ctx, info)
    if info and state == "running" and health in ("healthy", None) and address:
        return Member(_name(info), address, number)
    return None


async def colour_members(ctx: OpContext, colour: str) -> list[Member]:
    """The colour's running, healthy containers (its own first), by address."""
    own = await inspect_container(ctx, ctx.container(backend_service(colour)))
    members: list[Member] = []
    for info, number in [(own, 0)] + [(i, _number(i)) for i in await list_replicas(ctx, colour)]:
        member = member_of(ctx, info, number)
        if member is not None:
            members.append(member)
    return members


async def _wait_replicas(
    ctx: OpContext,
    colour: str,
    version: str | None,
    want: int,
    progress: Progress,
    *,
    step: str,
    timeout_s: float,
    image: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> list[dict]:
    """Until ``want`` replicas of ``colour`` run healthy on ``version`` (and
    ``image``, the image id of the colour's own container, when given);
    fails fast when one exits, fails its health check or runs another image.
    Replicas named in ``exclude`` (those that ran before) are not looked at."""
    started = time.monotonic()
    last_note = started
    while True:
        infos = [i for i in await list_replicas(ctx, colour) if _name(i) not in exclude]
        ready = []
        for info in infos:
            state, health = container_health(info)
            if state in ("exited", "dead") or health == "unhealthy":
                raise OpFailed(
                    f"{_name(info)} is {health or state}: {last_health_log(info) or ''}; "
                    f"see `docker logs {_name(info)}`".replace(":  ;", ";"),
                    step=step,
                )
            if image and info.get("Image") and info["Image"] != image:
                raise OpFailed(
                    f"{_name(info)} runs image {str(info['Image'])[:19]}, not the one of "
                    f"{ctx.container(backend_service(colour))} ({image[:19]}): is IMAGE_PREFIX "
                    f"set as for the stack? Remove it: docker rm -f {_name(info)}",
                    step=step,
                )
            if state == "running" and health == "healthy":
                got = container_version(info)
                if version and got != version:
                    raise OpFailed(
                        f"{_name(info)} runs {got}, not {version}: remove it "
                        f"(docker rm -f {_name(info)}) and scale again",
                        step=step,
                    )
                ready.append(info)
        elapsed = time.monotonic() - started
        if len(ready) >= want:
            progress.ok(
                step,
                f"{len(ready)} replica(s) of {colour} healthy ({elapsed:.1f} s)",
                replicas=[_name(i) for i in ready],
                seconds=round(elapsed, 1),
            )
            return ready
        if elapsed > timeout_s:
            raise OpFailed(
                f"{len(ready)} of {want} replica(s) of {colour} healthy after {timeout_s:g} s",
                step=step,
            )
        if time.monotonic() - last_note >= 5:
            last_note = time.monotonic()
            progress.info(
                step, f"{len(ready)} of {want} replica(s) of {colour} healthy ({elapsed:.0f} s)"
            )
        await asyncio.sleep(0.5)


async def _confirm_members(
    ctx: OpContext, colour: str, members: list[Member], progress: Progress, *, step: str
) -> None:
    """Through nginx, until every member has answered ``/api/health`` as
    ``colour`` (nginx's ``X-Upstream-Addr``) and the last ``3 x members``
    answers all came from members (none from a container that left), or 20 s
    passed. The reload is graceful: for a moment old workers still answer
    with the old pool."""
    want = {f"{m.address}:{BACKEND_PORT}" for m in members}
    needed = 3 * len(want)
    seen: set[str] = set()
    streak = 0
    last = ""
    deadline = time.monotonic() + 20
    async with client(ctx) as http:
        while time.monotonic() < deadline:
            try:
                r = await http.get("/api/health")
                addr = r.headers.get("x-upstream-addr", "")
                good = r.status_code == 200 and r.json().get("colour") == colour and addr in want
                last = f"{r.status_code} from {addr or 'an unknown address'}"
            except Exception as exc:
                good, addr, last = False, "", f"{type(exc).__name__}"
            if good:
                seen.add(addr)
                streak += 1
                if seen == want and streak >= needed:
                    progress.ok(
                        step,
                        f"nginx sends {colour}'s traffic to {len(want)} container(s), only them",
                    )
                    return
            else:
                streak = 0
            await asyncio.sleep(0.05)
    missing = sorted(m.container for m in members if f"{m.address}:{BACKEND_PORT}" not in seen)
    raise OpFailed(
        f"nginx does not send {colour}'s traffic to exactly {', '.join(m.container for m in members)} "
        f"20 s after the reload (not reached: {', '.join(missing) or 'none'}; last answer {last})",
        step=step,
    )


async def drain_and_remove(
    ctx: OpContext, infos: list[dict], progress: Progress, *, step: str, timeout_s: float = 20
) -> None:
    """Replicas nginx no longer routes to: until no request from nginx is in
    flight on them (:mod:`console.core.ops.steps.drain`), then stopped
    gracefully and removed."""
    nginx = addresses_of(await inspect_container(ctx, ctx.container("nginx")))
    for info in infos:
        name = _name(info)
        started = time.monotonic()
        quiet = 0
        while time.monotonic() - started < timeout_s:
            r = await docker_exec(
                ctx, name, "cat", "/proc/net/tcp", "/proc/net/tcp6", check=False, timeout_s=15
            )
            if not r.stdout.strip() or connections_from(r.stdout, nginx) == 0:
                quiet += 1
                if quiet >= 2:
                    break
            else:
                quiet = 0
            await asyncio.sleep(0.2)
        else:
            progress.warn(step, f"{name}: requests from nginx still in flight; stopping gracefully")
        await docker(ctx, "stop", "--time", "15", name, timeout_s=60, what=f"docker stop {name}")
        await docker(ctx, "rm", "-f", name, timeout_s=60, what=f"docker rm {name}")
        progress.ok(step, f"{name} drained, stopped and removed")


async def scale_colour(
    ctx: OpContext,
    colour: str,
    count: int,
    progress: Progress,
    *,
    version: str | None = None,
    timeout_s: float | None = None,
    route: bool = True,
) -> list[Member]:
    """``colour`` runs ``count`` containers: its own plus ``count - 1``
    replicas. Up: replicas started and healthy first, then in nginx's pool.
    Down: out of the pool first (reload), drained, then stopped and removed.
    ``route=False`` (a deploy's idle colour) writes the pool entry but the
    colour is not served yet, so nothing is confirmed through nginx.
    Returns the colour's members."""
    timeout_s = timeout_s or ctx.health_timeout
    version = version or read_deploy_env(ctx.deploy_env_path).get(f"{colour.upper()}_VERSION")
    service = replica_service(colour)
    current = await list_replicas(ctx, colour)
    want = count - 1
    if want > len(current):
        step = "start-replicas"
        progress.start(
            step,
            f"starting {want - len(current)} replica(s) of {colour} ({version}) beside "
            f"{ctx.container(backend_service(colour))}",
        )
        await compose(
            ctx,
            "up",
            "-d",
            "--no-deps",
            "--no-recreate",
            "--scale",
            f"{service}={want}",
            service,
            timeout_s=240,
        )
        own = await inspect_container(ctx, ctx.container(backend_service(colour)))
        await _wait_replicas(
            ctx,
            colour,
            version,
            want,
            progress,
            step="replicas-healthy",
            timeout_s=timeout_s,
            image=str((own or {}).get("Image") or "") or None,
        )
    members = await colour_members(ctx, colour)
    # scaling down: the highest-numbered replicas leave (compose's own order)
    leaving = current[max(want, 0) :]
    gone = {_name(i) for i in leaving}
    members = [m for m in members if m.container not in gone]
    if len(members) < count:
        raise OpFailed(
            f"{colour} has {len(members)} healthy container(s), not {count}: "
            + ", ".join(m.container for m in members),
            step="pool",
        )
    step = "pool"
    others = await _other_pools(ctx, colour)
    progress.start(
        step,
        f"nginx pool of {colour}: {', '.join(m.container for m in members)}"
        + (" (one container: no pool, its DNS name)" if len(members) < 2 else ""),
    )
    await write_pool(ctx, {**others, colour: members})
    progress.ok(
        step, "nginx -t passed, reloaded gracefully", members=[m.container for m in members]
    )
    if route:
        await _confirm_members(ctx, colour, members, progress, step="confirm")
    if leaving:
        await drain_and_remove(ctx, leaving, progress, step="drain")
    return members


async def _other_pools(ctx: OpContext, colour: str) -> dict[str, list[Member]]:
    """The pools nginx has for the other colours, rebuilt from what runs (so a
    rewrite of one colour's pool keeps theirs)."""
    out: dict[str, list[Member]] = {}
    for other in await read_pool_map(ctx):
        if other != colour:
            out[other] = await colour_members(ctx, other)
    return out


async def route_pool(
    ctx: OpContext, colour: str, members: list[Member], progress: Progress, *, step: str
) -> None:
    """nginx sends ``colour``'s traffic to exactly ``members`` (at least two:
    with fewer, the colour's DNS name would serve, its own container):
    pool.conf rewritten (the other colour's pool kept), ``nginx -t``, graceful
    reload, then confirmed through nginx (every member answers, no other)."""
    if len(members) < 2:
        raise OpFailed(
            f"nginx's pool of {colour} would have {len(members)} member(s): at least 2 are "
            "needed while its own container is replaced",
            step=step,
        )
    others = await _other_pools(ctx, colour)
    await write_pool(ctx, {**others, colour: members})
    await _confirm_members(ctx, colour, members, progress, step=step)


async def start_replicas(
    ctx: OpContext,
    colour: str,
    version: str,
    count: int,
    progress: Progress,
    *,
    step: str,
    timeout_s: float,
) -> list[Member]:
    """``count`` more replicas of ``colour`` running ``version`` (whatever
    deploy.env says: the compose variable is given on the command, so the
    colour's own container and the replicas already running are not
    touched: ``--no-recreate``), healthy; not in nginx's pool yet. Returns
    them as pool members."""
    before = await list_replicas(ctx, colour)
    service = replica_service(colour)
    await compose(
        ctx,
        "up",
        "-d",
        "--no-deps",
        "--no-recreate",
        "--scale",
        f"{service}={len(before) + count}",
        service,
        timeout_s=240,
        env_extra={f"{colour.upper()}_VERSION": version},
    )
    ready = await _wait_replicas(
        ctx,
        colour,
        version,
        count,
        progress,
        step=step,
        timeout_s=timeout_s,
        exclude=frozenset(_name(i) for i in before),
    )
    members = [member_of(ctx, i, _number(i)) for i in ready]
    return [m for m in members if m is not None]


async def ensure_colour_replicas(
    ctx: OpContext, colour: str, version: str, progress: Progress, *, timeout_s: float
) -> int:
    """A blue-green deploy's idle colour: as many containers as
    ``BACKEND_REPLICAS`` says, all healthy, in its pool (not served yet).
    Returns that count."""
    n = replicas_wanted(read_deploy_env(ctx.deploy_env_path))
    stale = [i for i in await list_replicas(ctx, colour) if container_version(i) != version]
    if stale:
        # an idle colour's replicas of another version (not served): replaced
        await remove_colour_replicas(ctx, colour)
    if n > 1 or await list_replicas(ctx, colour):
        await scale_colour(
            ctx, colour, n, progress, version=version, timeout_s=timeout_s, route=False
        )
    return n


async def remove_colour_replicas(ctx: OpContext, colour: str) -> list[str]:
    """A colour nginx does not serve: out of the pools, its replicas stopped
    (gracefully) and removed; its own container untouched. Reports nothing
    (a deploy's undo runs it); returns the containers removed."""
    infos = await list_replicas(ctx, colour)
    if colour in await read_pool_map(ctx):
        await write_pool(ctx, await _other_pools(ctx, colour))
    for info in infos:
        name = _name(info)
        await docker(ctx, "stop", "--time", "15", name, timeout_s=60, what=f"docker stop {name}")
        await docker(ctx, "rm", "-f", name, timeout_s=60, what=f"docker rm {name}")
    return [_name(i) for i in infos]


def set_replicas_wanted(ctx: OpContext, count: int) -> None:
    update_deploy_env(ctx.deploy_env_path, {REPLICAS_VAR: str(count)})
