"""Which colour nginx serves, and switching it.

The active colour is one line in ``/etc/nginx/upstream/active.conf`` (named
volume ``nginx_upstream``): ``set $active_backend backend_blue;``. nginx
resolves that name per request through Docker's DNS (compose's service
name), so the line names a *target*: a colour, or a slot of a colour
(``backend_blue_surge``: the rolling deploy's surge container, which serves
for the colour while the colour's own container is recreated). Whatever
slot serves, the serving colour is the colour. A second line names the web
frontend's colour (``set $active_frontend frontend_blue;``): nginx sends ``/``
there, so one write and one reload move ``/api/`` and ``/`` together (a
deploy of "backend frontend"). A file with the backend line only (written
before the frontend had colours) means the frontend of the backend's colour,
to nginx (site.conf's map) and here (:func:`parse_frontend`). A switch
writes the whole file to a temporary name and renames it over the old one
(so nginx never reads half a file), runs ``nginx -t``, and only then
``nginx -s reload`` (graceful: old workers finish their requests). When the
test fails, the previous content is put back and nothing is reloaded. A
switch names the lines it changes; the file's other lines are kept (a
backend switch leaves the frontend where it is, and the other way round).
"""

from __future__ import annotations

import re

from console.core.ops.context import COLOURS, SURGE, OpContext, backend_service, frontend_service
from console.core.ops.errors import OpFailed
from console.core.ops.proc import docker_exec

__all__ = [
    "ACTIVE_CONF",
    "parse_active",
    "parse_frontend",
    "parse_target",
    "read_active",
    "read_frontend",
    "read_target",
    "reload_nginx",
    "render_active",
    "switch_to",
]

ACTIVE_CONF = "/etc/nginx/upstream/active.conf"
_TMP = "/etc/nginx/upstream/.active.conf.new"
SLOTS = (SURGE,)
"""The slots a colour may have beside its own container."""
_ACTIVE_RE = re.compile(
    r"^\s*set\s+\$active_backend\s+backend_(blue|green)(?:_(" + "|".join(SLOTS) + r"))?\s*;\s*$",
    re.MULTILINE,
)

_FRONTEND_RE = re.compile(
    r"^\s*set\s+\$active_frontend\s+frontend_(blue|green)\s*;\s*$", re.MULTILINE
)

Target = tuple[str, str | None]
"""``(colour, slot)``: ``("blue", None)`` is the colour's own container."""


def render_active(
    colour: str | None, slot: str | None = None, *, frontend: str | None = None
) -> str:
    """The lines of active.conf for the backend's ``colour`` (its ``slot``,
    if given) and the ``frontend``'s colour, if given; either may be None
    (that line is not written: a switch keeps the file's)."""
    if colour is None and frontend is None:
        raise ValueError("nothing to render: give a backend colour, a frontend colour or both")
    lines = []
    if colour is not None:
        if colour not in COLOURS:
            raise ValueError(f"colour must be blue or green, not {colour!r}")
        if slot is not None and slot not in SLOTS:
            raise ValueError(f"slot must be one of {', '.join(SLOTS)} or none, not {slot!r}")
        lines.append(f"set $active_backend {backend_service(colour, slot)};\n")
    if frontend is not None:
        if frontend not in COLOURS:
            raise ValueError(f"frontend colour must be blue or green, not {frontend!r}")
        lines.append(f"set $active_frontend {frontend_service(frontend)};\n")
    return "".join(lines)


def parse_target(text: str) -> Target | None:
    """The target named by an active.conf, None when it names none or is ambiguous."""
    found = {(colour, slot or None) for colour, slot in _ACTIVE_RE.findall(text)}
    if len(found) != 1:
        return None
    return found.pop()


def parse_active(text: str) -> str | None:
    """The colour named by an active.conf (whichever of its slots), None when
    it names none or is ambiguous."""
    target = parse_target(text)
    return None if target is None else target[0]


def parse_frontend(text: str) -> str | None:
    """The frontend colour an active.conf names: its ``$active_frontend``
    line; without one (a file from before the frontend had colours), the
    backend's colour, which is what nginx then serves (site.conf's map).
    None when it names neither, or names two frontend colours."""
    found = set(_FRONTEND_RE.findall(text))
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    return parse_active(text)


async def read_frontend(ctx: OpContext) -> str | None:
    """The frontend colour nginx's config names right now (None: nginx down
    or file unreadable)."""
    r = await docker_exec(
        ctx, ctx.container("nginx"), "cat", ACTIVE_CONF, check=False, timeout_s=15
    )
    return parse_frontend(r.stdout) if r.ok else None


async def read_target(ctx: OpContext) -> Target | None:
    """The target nginx's config names right now (None: nginx down or file unreadable)."""
    r = await docker_exec(
        ctx, ctx.container("nginx"), "cat", ACTIVE_CONF, check=False, timeout_s=15
    )
    if not r.ok:
        return None
    return parse_target(r.stdout)


async def read_active(ctx: OpContext) -> str | None:
    """The colour nginx's config names right now (None: nginx down or file unreadable)."""
    target = await read_target(ctx)
    return None if target is None else target[0]


SWITCH_SCRIPT = """\
conf=$1 tmp=$2
before=$(cat "$conf" 2>/dev/null)
printf '%s\\n' "$before"
new=$(cat)
if ! {
  {
    printf '%s\\n' "$new"
    printf '%s\\n' "$before" | while IFS= read -r line; do
      var=$(printf '%s\\n' "$line" | sed -n 's/^[[:space:]]*set[[:space:]][[:space:]]*\\$\\([A-Za-z_]*\\).*/\\1/p')
      [ -n "$var" ] || continue
      case "$new" in *"\\$$var "*) continue ;; esac
      printf '%s\\n' "$line"
    done
  } > "$tmp" && mv -f "$tmp" "$conf"
}; then
  echo "cannot write $conf" >&2
  exit 2
fi
put_back() {
  [ -n "$before" ] || return 1
  printf '%s\\n' "$before" > "$tmp" && mv -f "$tmp" "$conf"
}
if ! nginx -t -q; then
  put_back || exit 5
  exit 3
fi
if ! nginx -s reload; then
  put_back
  exit 4
fi
"""
"""One ``docker exec`` for the whole switch (each exec costs 0.1-0.5 s on a
busy host): print the old file, write the new one whole (temp file +
rename): the lines given on stdin, then the old file's ``set`` lines of the
variables they do not set; ``nginx -t``; when it fails put the old file
back and exit 3 (nothing reloaded; 5: there was no old file to put back),
else ``nginx -s reload``; when that fails, the old file back too and exit 4
(the file always names what nginx serves). Arguments: the file, the temp
file; the new lines on stdin."""


async def switch_to(
    ctx: OpContext, colour: str | None, slot: str | None = None, *, frontend: str | None = None
) -> str | None:
    """Point nginx at ``colour`` (its ``slot``, if given) and, when given,
    the frontend at ``frontend``, in one write: write, ``nginx -t``,
    ``nginx -s reload`` (:data:`SWITCH_SCRIPT`, in one ``docker exec``).
    ``colour`` None moves the frontend only. A line not given is kept.

    Returns the colour it served before (None when unknown). On a failed
    ``nginx -t`` the old file is restored and :class:`OpFailed` raised; traffic
    is unchanged.
    """
    r = await docker_exec(
        ctx,
        ctx.container("nginx"),
        "sh",
        "-c",
        SWITCH_SCRIPT,
        "switch",
        ACTIVE_CONF,
        _TMP,
        input=render_active(colour, slot, frontend=frontend).encode(),
        check=False,
        timeout_s=45,
        what="nginx switch",
    )
    name = " and ".join(
        ([backend_service(colour, slot)] if colour else [])
        + ([frontend_service(frontend)] if frontend else [])
    )
    if r.returncode in (3, 5):
        put_back = (
            "the previous file was put back"
            if r.returncode == 3
            else f"there was no previous {ACTIVE_CONF} to put back"
        )
        raise OpFailed(
            f"nginx -t rejected the configuration for {name}; {put_back} "
            f"and nothing was reloaded: {r.tail()}",
            step="switch",
        )
    if r.returncode == 4:
        raise OpFailed(
            ctx.redact(
                f"nginx -s reload failed switching to {name}; the previous file was put back, "
                f"so nginx serves what it served: {r.tail()}"
            ),
            step="switch",
        )
    if not r.ok:
        # 2: active.conf could not be written (unchanged); else `nginx -s
        # reload` failed, or docker exec itself (nginx container down)
        raise OpFailed(
            ctx.redact(f"switching nginx to {name} failed (exit {r.returncode}): {r.tail()}"),
            step="switch",
        )
    return parse_active(r.stdout)


async def reload_nginx(ctx: OpContext) -> None:
    """``nginx -t`` then ``nginx -s reload`` (graceful), active.conf unchanged:
    picks up an edited site.conf. Nothing is reloaded when the test fails."""
    r = await docker_exec(
        ctx,
        ctx.container("nginx"),
        "sh",
        "-c",
        "nginx -t -q && exec nginx -s reload",
        check=False,
        timeout_s=45,
        what="nginx reload",
    )
    if not r.ok:
        raise OpFailed(
            ctx.redact(f"nginx -t or reload failed (exit {r.returncode}): {r.tail()}"),
            step="prepare",
        )
