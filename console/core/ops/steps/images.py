"""The backend image of a version: selected when it exists, else built
(from the git tag of that name, or with ``--build`` from this checkout)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from console.core.ops.context import OpContext
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.proc import docker, image_info
from console.core.ops.proc import run as run_command
from console.core.ops.progress import Progress
from console.core.ops.versions import VERSION_RE, Version, image_ref
from console.core.sources.docker.inspect import image_id, labels_of, short_image_id

__all__ = [
    "BASE_IMAGE_LABEL",
    "deployable_versions",
    "ensure_image",
    "git_tag_exists",
    "known_versions",
    "newest_versions",
    "stack_base_image",
]

BASE_IMAGE_LABEL = "com.investment.base-image"
"""Label scripts/images.sh puts on every image: the base it was built from."""


async def known_versions(ctx: OpContext, repo: str | None = None) -> list[str]:
    """The tags of ``repo`` (default: the backend's image repository)."""
    r = await docker(
        ctx,
        "image",
        "ls",
        repo or ctx.image_repo,
        "--format",
        "{{.Tag}}",
        timeout_s=30,
        check=False,
    )
    return sorted({t for t in r.stdout.split() if t and t != "<none>"})


def newest_versions(tags: list[str], limit: int = 5) -> str:
    """The newest ``limit`` version tags, newest first (semver order), and how
    many older ones there are: what a refusal names, kept to one short line
    so the reason before it stays on screen; "none" when there are none."""
    ordered = sorted((t for t in set(tags) if VERSION_RE.fullmatch(t)), key=Version, reverse=True)
    if not ordered:
        return "none"
    more = len(ordered) - limit
    return ", ".join(ordered[:limit]) + (f" (+{more} older)" if more > 0 else "")


async def stack_base_image(ctx: OpContext) -> str | None:
    """The base the stack's backend images were built from (their label), so
    a version built by the engine shares the base of the ones images.sh made;
    None when no image carries the label of a base the engine still has (the
    Dockerfile's default applies). A label naming a base that is gone (an
    old image, built from a base removed since) is passed over: building
    from it would ask a registry for it."""
    checked: dict[str, bool] = {}
    for tag in reversed(await known_versions(ctx)):
        info = await image_info(ctx, image_ref(ctx.image_repo, tag))
        base = str(labels_of(info).get(BASE_IMAGE_LABEL) or "") if info else ""
        if not base:
            continue
        if base not in checked:
            checked[base] = await image_info(ctx, base) is not None
        if checked[base]:
            return base
    return None


async def git_tag_exists(ctx: OpContext, version: str) -> bool:
    if not (ctx.repo / ".git").exists():
        return False
    r = await run_command(
        ["git", "-C", str(ctx.repo), "rev-parse", "-q", "--verify", f"refs/tags/{version}"],
        check=False,
        timeout_s=15,
    )
    return r.ok


async def git_version_tags(ctx: OpContext) -> list[str]:
    """The repository's tags that are versions (``v1.2.3``), to build from."""
    if not (ctx.repo / ".git").exists():
        return []
    r = await run_command(
        ["git", "-C", str(ctx.repo), "tag", "--list", "v*"], check=False, timeout_s=15
    )
    return [t for t in r.stdout.split() if VERSION_RE.fullmatch(t)] if r.ok else []


async def deployable_versions(ctx: OpContext) -> list[str]:
    """Versions a deploy can take without --build: an image, or a git tag to
    build it from; oldest first (semver order), what the deploy form offers."""
    names = set(await known_versions(ctx)) | set(await git_version_tags(ctx))
    return sorted((n for n in names if VERSION_RE.fullmatch(n)), key=Version)


async def ensure_image(
    ctx: OpContext,
    version: str,
    build: bool,
    progress: Progress,
    *,
    repo: str | None = None,
    dockerfile: str = "compose/images/backend/Dockerfile",
) -> dict[str, Any]:
    """Select or build the image (the backend's; the frontend's with its
    ``repo`` and ``dockerfile``); returns its inspect data."""
    ref = image_ref(repo or ctx.image_repo, version)
    info = await image_info(ctx, ref)
    if info is not None:
        progress.ok(
            "image",
            f"using {ref} ({short_image_id(info)})",
            image=ref,
            digest=image_id(info),
        )
        return info
    common = [
        "build",
        "--network",
        "host",
        "-q",
        "--build-arg",
        f"APP_VERSION={version}",
        "--label",
        "com.investment.built-by=stackdeck",
        "-t",
        ref,
    ]
    base = await stack_base_image(ctx)
    if base:
        common += ["--build-arg", f"BASE_IMAGE={base}", "--label", f"{BASE_IMAGE_LABEL}={base}"]
    env = {"DOCKER_BUILDKIT": "0"}
    if await git_tag_exists(ctx, version):
        progress.start("image", f"building {ref} from git tag {version}")
        with tempfile.TemporaryDirectory(prefix="stackdeck-build-") as tmp:
            tar = Path(tmp) / "context.tar"
            await run_command(
                ["git", "-C", str(ctx.repo), "archive", "--format=tar", "-o", str(tar), version],
                timeout_s=120,
                what="git archive",
            )
            await docker(
                ctx,
                *common,
                "-f",
                dockerfile,
                "-",
                stdin_path=tar,
                timeout_s=1800,
                env_extra=env,
                what=f"docker build {ref}",
            )
    elif build:
        progress.start("image", f"building {ref} from this checkout ({ctx.repo})")
        await docker(
            ctx,
            *common,
            "-f",
            str(ctx.repo / dockerfile),
            str(ctx.repo),
            timeout_s=1800,
            env_extra=env,
            what=f"docker build {ref}",
        )
    else:
        raise BadInput(
            f"unknown version {version}: no image {ref}; add --build to build it", field="version"
        )
    info = await image_info(ctx, ref)
    if info is None:
        raise OpFailed(f"docker build reported success but {ref} does not exist", step="image")
    progress.ok("image", f"built {ref} ({short_image_id(info)})", image=ref, digest=image_id(info))
    return info
