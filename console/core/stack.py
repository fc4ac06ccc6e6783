"""One place that resolves a stack: its container names, its folders on the
host, which ``.env`` keys hold secrets.

The facts themselves are in ``stack.facts`` beside this module, which
``scripts/lib.sh`` reads too, so the console, its tests, the bench and the
scripts cannot drift apart. Everything that needs a container name or a
stack folder asks :class:`StackNames`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "DEFAULT_IMAGE_PREFIX",
    "DEFAULT_STACK",
    "FACTS_FILE",
    "StackNames",
    "facts",
    "is_secret_key",
    "monitoring_ports",
    "published_ports",
]

FACTS_FILE = Path(__file__).with_name("stack.facts")


@cache
def facts() -> dict[str, str]:
    """``stack.facts`` as a dict (KEY=VALUE lines; ``#`` starts a comment line)."""
    out: dict[str, str] = {}
    for line in FACTS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{FACTS_FILE}: not KEY=VALUE: {line!r}")
            out[key.strip()] = value.strip()
    return out


DEFAULT_STACK = facts()["DEFAULT_STACK"]
DEFAULT_IMAGE_PREFIX = facts()["DEFAULT_IMAGE_PREFIX"]
_WORDS = dict(pair.split("=", 1) for pair in facts()["CONTAINER_WORDS"].split(",") if pair)
_SECRET_KEYS = re.compile(facts()["SECRET_KEYS"], re.IGNORECASE)


def monitoring_ports(env: Mapping[str, str], http_port: int) -> dict[str, int]:
    """``PROMETHEUS_PORT``, ``ALERTMANAGER_PORT``, ``ALERT_SINK_PORT``: from
    ``env`` (the environment, then .env), else ``http_port`` plus their offset."""
    out: dict[str, int] = {}
    for pair in facts()["MONITORING_PORT_OFFSETS"].split(","):
        name, offset = pair.split("=", 1)
        given = str(env.get(name) or "").strip()
        out[name] = int(given) if given.isdigit() else http_port + int(offset)
    return out


def published_ports(env: Mapping[str, str], http_port: int) -> dict[str, int]:
    """Every derived 127.0.0.1 port: the monitoring ones and nginx's
    ``HTTPS_PORT`` (``EDGE_PORT_OFFSETS``: 80 -> 443), from ``env`` else
    ``http_port`` plus their offset."""
    out = monitoring_ports(env, http_port)
    for pair in facts()["EDGE_PORT_OFFSETS"].split(","):
        name, offset = pair.split("=", 1)
        given = str(env.get(name) or "").strip()
        out[name] = int(given) if given.isdigit() else http_port + int(offset)
    return out


def is_secret_key(key: str) -> bool:
    """Whether an ``.env`` key names a secret (its value is redacted everywhere)."""
    return bool(_SECRET_KEYS.search(key))


@dataclass(frozen=True)
class StackNames:
    """The names and folders of the stack called ``name``."""

    name: str = DEFAULT_STACK

    def container(self, service: str) -> str:
        """``backend_blue`` -> ``<stack>_backend_blue_prod``; ``redis`` -> ``<stack>_cache_prod``."""
        word = _WORDS.get(service, service)
        return facts()["CONTAINER_NAME"].format(stack=self.name, service=word)

    @property
    def run_dir(self) -> Path:
        """The host folder with the stack's unix sockets (``postgresql/``, ``redis/``)."""
        return Path(facts()["RUN_DIR"].format(stack=self.name))

    @property
    def state_dir(self) -> Path:
        """deploy.env, the lock, the audit log, the history, the backups."""
        return Path(facts()["STATE_DIR"].format(stack=self.name))
