"""Every container of the compose project, and the colour nginx serves."""

from __future__ import annotations

import io
import re
import tarfile
from typing import Any

from console.core.config import Settings
from console.core.errors import SourceError
from console.core.models import ContainerInfo, ContainersSnapshot
from console.core.sources.base import Clock, Source, utcnow
from console.core.sources.docker.handle import DockerHandle, describe_docker_error
from console.core.sources.docker.inspect import PROJECT_LABEL, container_info

__all__ = [
    "ACTIVE_CONF",
    "ContainersSource",
    "parse_active_colour",
    "parse_frontend_colour",
    "read_tar_member",
]

ACTIVE_CONF = "/etc/nginx/upstream/active.conf"

_COLOUR_RE = re.compile(r"\$active_backend\s+backend_(blue|green)(?:_surge)?\s*;")


def parse_active_colour(text: str) -> str | None:
    """Colour from nginx's ``set $active_backend backend_green;`` (None if absent).
    ``backend_green_surge`` (a rolling deploy's surge container serving for
    green) is green too."""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        match = _COLOUR_RE.search(line)
        if match:
            return match.group(1)
    return None


_FRONTEND_RE = re.compile(r"^\s*set\s+\$active_frontend\s+frontend_(blue|green)\s*;", re.MULTILINE)


def parse_frontend_colour(text: str) -> str | None:
    """The web frontend's colour from ``set $active_frontend frontend_blue;``;
    a file without that line (written before the frontend had colours) means
    the backend's colour, which is what nginx then serves."""
    match = _FRONTEND_RE.search(text)
    return match.group(1) if match else parse_active_colour(text)


def read_tar_member(data: bytes) -> str:
    """Text of the first regular file in a tar archive (``get_archive`` output)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    return fh.read().decode("utf-8", "replace")
    return ""


class ContainersSource(Source):
    """Every container of the compose project, and the colour nginx serves."""

    name = "engine"
    kind = "containers"

    def __init__(self, settings: Settings, handle: DockerHandle, *, clock: Clock = utcnow) -> None:
        super().__init__(settings, clock=clock)
        self.handle = handle
        self._inspected: dict[str, tuple[tuple[Any, ...], ContainerInfo]] = {}
        """Container id -> (what the list said of it, its info): a container
        whose list entry did not change is not inspected again."""

    @property
    def interval(self) -> float:
        return self.settings.refresh.containers

    @staticmethod
    def _list_key(item: dict[str, Any]) -> tuple[Any, ...]:
        # Status ("Up 13 minutes (healthy)") changes with the state, the health,
        # a restart (the uptime starts over) and once a minute anyway. Names:
        # compose recreates a container by renaming the old one to
        # <id>_<name> first; its cached info would still carry the name the
        # new container now has (two rows of one name: the TUI's table refused it).
        return (
            item.get("State"),
            item.get("Status"),
            item.get("Image"),
            item.get("Created"),
            tuple(item.get("Names") or ()),
        )

    def _info(self, api: Any, item: dict[str, Any]) -> ContainerInfo | None:
        container_id = str(item["Id"])
        key = self._list_key(item)
        cached = self._inspected.get(container_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            inspect = api.inspect_container(container_id)
        except Exception as exc:  # removed between list and inspect
            if getattr(exc, "status_code", None) == 404:
                return None
            raise
        info = container_info(inspect)
        self._inspected[container_id] = (key, info)
        return info

    def _collect(self) -> ContainersSnapshot:
        api = self.handle.api
        try:
            version = self.handle.version().get("Version")
        except Exception:
            self.handle.forget_cache()
            raise
        listed = api.containers(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.settings.project}"}
        )
        infos: list[ContainerInfo] = []
        nginx_id: str | None = None
        for item in listed:
            info = self._info(api, item)
            if info is None:
                continue
            infos.append(info)
            if info.service == "nginx" and info.state == "running":
                nginx_id = str(item["Id"])
        listed_ids = {str(item["Id"]) for item in listed}
        for gone in set(self._inspected) - listed_ids:
            del self._inspected[gone]
        active = self._active_conf(api, nginx_id) if nginx_id else None
        serving = parse_active_colour(active) if active is not None else None
        frontend = parse_frontend_colour(active) if active is not None else None
        infos.sort(key=lambda c: (_SERVICE_ORDER.get(c.service, 99), c.service, c.name))
        return ContainersSnapshot(
            taken_at=self.clock(),
            project=self.settings.project,
            containers=infos,
            serving_colour=serving,  # type: ignore[arg-type]
            serving_frontend=frontend,  # type: ignore[arg-type]
            engine_version=version,
        )

    @staticmethod
    def _active_conf(api: Any, nginx_id: str) -> str | None:
        """Read active.conf out of the nginx container (get_archive: no exec,
        no process in the container)."""
        try:
            stream, _stat = api.get_archive(nginx_id, ACTIVE_CONF)
            data = b"".join(stream)
        except Exception:
            return None
        return read_tar_member(data)

    async def poll(self) -> ContainersSnapshot:
        try:
            return await self.handle.call(
                self._collect, deadline=self.poll_timeout, what="list containers"
            )
        except Exception as exc:
            raise SourceError("engine", describe_docker_error(exc)) from None


_SERVICE_ORDER = {
    "nginx": 0,
    "backend_blue": 1,
    "backend_green": 2,
    "frontend_blue": 3,
    "frontend_green": 3,
    "worker": 4,
    "worker_replica": 4,
    "db": 5,
    "redis": 6,
    "market-sim": 7,
}
