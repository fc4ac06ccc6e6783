"""Docker and compose from asyncio: every call is an asyncio subprocess, so
the TUI's event loop never blocks on the engine.

The docker CLI rather than the SDK: compose has no SDK, ``docker exec`` with
stdin/stdout streaming (pg_dump, pg_restore) is simplest through the CLI, and
one mechanism for everything keeps timeouts and cancellation uniform.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.core.ops.context import OpContext
from console.core.ops.errors import OpFailed

# The parsers of inspect output live with the sources (one reading of
# ``docker inspect`` for the whole console); re-exported here, outside
# __all__, only for deploy.py, which still imports them from proc.

__all__ = [
    "Result",
    "compose",
    "docker",
    "docker_exec",
    "image_info",
    "inspect_container",
    "run",
]


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 8) -> str:
        """The last lines of stderr (else stdout): what to show when it failed."""
        text = (self.stderr or self.stdout).strip().splitlines()
        return "\n".join(text[-lines:])


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            proc.terminate()
        except ProcessLookupError:
            return
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        await proc.wait()


async def run(
    argv: Sequence[str],
    *,
    ctx: OpContext | None = None,
    input: bytes | None = None,
    stdin_path: Path | None = None,
    stdout_path: Path | None = None,
    timeout_s: float | None = 120.0,
    check: bool = True,
    what: str | None = None,
    cwd: Path | None = None,
    env_extra: dict[str, str] | None = None,
) -> Result:
    """Run a command; raise :class:`OpFailed` (stderr tail, secrets masked)
    when it fails and ``check`` is set, or when it times out.

    ``stdout_path`` streams stdout into a file (pg_dump), ``stdin_path``
    streams a file into stdin (pg_restore). The child runs in its own process
    group, so a timeout or a cancel ends it and its children.
    """
    env = ctx.subprocess_env() if ctx else None
    if env_extra:
        env = {**(env if env is not None else os.environ), **env_extra}
    stdin_f = open(stdin_path, "rb") if stdin_path else None  # noqa: ASYNC230
    stdout_f = open(stdout_path, "wb") if stdout_path else None  # noqa: ASYNC230
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin_f
            if stdin_f
            else (asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL),
            stdout=stdout_f if stdout_f else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(cwd) if cwd else (str(ctx.repo) if ctx else None),
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout_s)
        except TimeoutError:
            await _kill(proc)
            label = what or " ".join(argv[:4])
            raise OpFailed(f"{label}: no answer after {timeout_s:g} s (stopped)") from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
    finally:
        if stdin_f:
            stdin_f.close()
        if stdout_f:
            stdout_f.close()
    result = Result(
        tuple(argv),
        proc.returncode if proc.returncode is not None else -1,
        (out or b"").decode("utf-8", "replace"),
        (err or b"").decode("utf-8", "replace"),
    )
    if check and not result.ok:
        label = what or " ".join(argv[:4])
        detail = result.tail()
        message = f"{label} failed (exit {result.returncode})" + (f": {detail}" if detail else "")
        raise OpFailed(ctx.redact(message) if ctx else message)
    return result


async def docker(ctx: OpContext, *args: str, **kw: Any) -> Result:
    return await run([ctx.docker, *args], ctx=ctx, **kw)


async def compose(ctx: OpContext, *args: str, **kw: Any) -> Result:
    """``docker compose`` with the stack's project, files and env files."""
    if not ctx.deploy_env_path.exists():
        raise OpFailed(
            f"{ctx.deploy_env_path} is missing: the stack was never set up here "
            f"(STACK_NAME={ctx.stack} bash scripts/setup.sh)"
        )
    kw.setdefault("what", f"docker compose {' '.join(args[:3])}")
    # The compose files name images ${IMAGE_PREFIX}-...: the one this context uses.
    kw["env_extra"] = {
        "IMAGE_PREFIX": ctx.image_repo.removesuffix("-backend"),
        **(kw.get("env_extra") or {}),
    }
    return await run(ctx.compose_argv(*args), ctx=ctx, **kw)


async def docker_exec(
    ctx: OpContext,
    container: str,
    *cmd: str,
    user: str | None = None,
    interactive: bool = False,
    **kw: Any,
) -> Result:
    args = ["exec"]
    if interactive or kw.get("input") is not None or kw.get("stdin_path") is not None:
        args.append("-i")
    if user:
        args += ["-u", user]
    args.append(container)
    kw.setdefault("what", f"docker exec {container} {' '.join(cmd[:2])}")
    return await docker(ctx, *args, *cmd, **kw)


async def inspect_container(ctx: OpContext, name: str) -> dict[str, Any] | None:
    """``docker inspect`` of a container, None when it does not exist."""
    r = await docker(ctx, "container", "inspect", name, check=False, timeout_s=30)
    if not r.ok:
        if "No such" in r.stderr or "no such" in r.stderr:
            return None
        raise OpFailed(f"docker inspect {name} failed: {r.tail()}")
    data = json.loads(r.stdout)
    return data[0] if data else None


async def image_info(ctx: OpContext, ref: str) -> dict[str, Any] | None:
    """``docker image inspect``, None when the image does not exist."""
    r = await docker(ctx, "image", "inspect", ref, check=False, timeout_s=30)
    if not r.ok:
        return None
    data = json.loads(r.stdout)
    return data[0] if data else None
