"""Which colour nginx serves, and switching it.

The active colour is one line in ``/etc/nginx/upstream/active.conf`` (named
volume ``nginx_upstream``): ``set $active_backend backend_blue;``. A switch
writes the whole file to a temporary name and renames it over the old one
(so nginx never reads half a file), runs ``nginx -t``, and only then
``nginx -s reload`` (graceful: old workers finish their requests). When the
test fails, the previous content is put back and nothing is reloaded.
"""

from __future__ import annotations

import re

from console.core.ops.context import COLOURS, OpContext
from console.core.ops.errors import OpFailed
from console.core.ops.proc import docker_exec

__all__ = [
    "ACTIVE_CONF",
    "parse_active",
    "read_active",
    "render_active",
    "switch_to",
    "write_active",
]

ACTIVE_CONF = "/etc/nginx/upstream/active.conf"
_TMP = "/etc/nginx/upstream/.active.conf.new"
_ACTIVE_RE = re.compile(r"^\s*set\s+\$active_backend\s+backend_(blue|green)\s*;\s*$", re.MULTILINE)


def render_active(colour: str) -> str:
    """The whole content of active.conf for ``colour``."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be blue or green, not {colour!r}")
    return f"set $active_backend backend_{colour};\n"


def parse_active(text: str) -> str | None:
    """The colour named by an active.conf, None when it names none or is ambiguous."""
    found = set(_ACTIVE_RE.findall(text))
    if len(found) != 1:
        return None
    return found.pop()


async def read_active(ctx: OpContext) -> str | None:
    """The colour nginx's config names right now (None: nginx down or file unreadable)."""
    r = await docker_exec(
        ctx, ctx.container("nginx"), "cat", ACTIVE_CONF, check=False, timeout_s=15
    )
    if not r.ok:
        return None
    return parse_active(r.stdout)


async def write_active(ctx: OpContext, colour: str) -> None:
    """Write active.conf whole (temp file + rename in the same folder)."""
    content = render_active(colour)
    await docker_exec(
        ctx,
        ctx.container("nginx"),
        "sh",
        "-c",
        f"cat > {_TMP} && mv -f {_TMP} {ACTIVE_CONF}",
        input=content.encode(),
        timeout_s=15,
        what="writing nginx active.conf",
    )


SWITCH_SCRIPT = """\
conf=$1 tmp=$2
before=$(cat "$conf" 2>/dev/null)
printf '%s\\n' "$before"
if ! { cat > "$tmp" && mv -f "$tmp" "$conf"; }; then
  echo "cannot write $conf" >&2
  exit 2
fi
if ! nginx -t -q; then
  if [ -n "$before" ]; then
    printf '%s\\n' "$before" > "$tmp" && mv -f "$tmp" "$conf"
  fi
  exit 3
fi
exec nginx -s reload
"""
"""One ``docker exec`` for the whole switch (each exec costs 0.1-0.5 s on a
busy host): print the old file, write the new one whole (temp file +
rename), ``nginx -t``; when it fails put the old file back and exit 3
(nothing reloaded), else ``nginx -s reload``. Arguments: the file, the temp
file; the new content on stdin."""


async def switch_to(ctx: OpContext, colour: str) -> str | None:
    """Point nginx at ``colour``: write, ``nginx -t``, ``nginx -s reload``
    (:data:`SWITCH_SCRIPT`, in one ``docker exec``).

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
        input=render_active(colour).encode(),
        check=False,
        timeout_s=45,
        what="nginx switch",
    )
    if r.returncode == 3:
        raise OpFailed(
            f"nginx -t rejected the configuration for {colour}; the previous file was put back "
            f"and nothing was reloaded: {r.tail()}",
            step="switch",
        )
    if not r.ok:
        # 2: active.conf could not be written (unchanged); else `nginx -s
        # reload` failed, or docker exec itself (nginx container down)
        raise OpFailed(
            ctx.redact(f"switching nginx to {colour} failed (exit {r.returncode}): {r.tail()}"),
            step="switch",
        )
    return parse_active(r.stdout)
