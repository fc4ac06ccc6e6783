#!/usr/bin/env python3
"""Render the Swarm stack from ``docker compose ... config --format json``.

Reads the merged compose model (docker-compose.yml + .production.yml +
.swarm.yml, see the header of compose/docker-compose.swarm.yml) on stdin and
writes OUT_DIR/stack.json (JSON is YAML: `docker stack deploy -c` reads it)
and OUT_DIR/configs/<name> (the config files, beside the stack, since the
stack is deployed on the manager node, not on the host). Standard library
only: scripts/swarm.sh runs it with the system python3.

What it does to the model:

* keeps the service keys `docker stack deploy` takes; compose-only ones
  (container_name, depends_on, restart, a port's host_ip...) are dropped,
  so the deploy prints no "Ignoring unsupported options" noise;
* names each config after its content (``<stack>_<key>_<sha12>``): a Swarm
  config is immutable, so an edited file becomes a new config and the
  services that mount it are updated;
* refuses (exit 1, one line) a stack in which a secret still shows
  anywhere but in a secret: scripts/swarm.sh renders with a placeholder for
  every secret the compose files require, and none may survive, neither in
  an environment nor in a label, a command, a health check, a logging or a
  driver option (every value of the rendered stack is searched).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

SERVICE_KEYS = {
    "image",
    "command",
    "entrypoint",
    "environment",
    "healthcheck",
    "deploy",
    "networks",
    "ports",
    "volumes",
    "secrets",
    "configs",
    "labels",
    "user",
    "working_dir",
    "stop_grace_period",
    "stop_signal",
    "hostname",
    "logging",
    "init",
    "cap_add",
    "cap_drop",
    "sysctls",
    "ulimits",
    "read_only",
}
"""Service keys the Swarm stack keeps (docker stack deploy's compose schema)."""

PORT_KEYS = {"target", "published", "protocol", "mode"}


class RenderError(Exception):
    """The model cannot become a Swarm stack: said in one line."""


def _octal(mode: Any) -> Any:
    # compose writes a file mode as the string "0444"; the stack schema wants a number
    return int(mode, 8) if isinstance(mode, str) else mode


def leaks(value: Any, placeholder: str, path: str = "") -> list[str]:
    """The paths (``services.backend.labels.x``) of every key or value that
    holds the placeholder, anywhere in ``value``."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if placeholder in str(k):
                found.append(where)
            found += leaks(v, placeholder, where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += leaks(v, placeholder, f"{path}[{i}]")
    elif value is not None and placeholder in str(value):
        found.append(path)
    return found


def _service(name: str, svc: dict[str, Any], placeholder: str) -> dict[str, Any]:
    out = {k: v for k, v in svc.items() if k in SERVICE_KEYS and v is not None}
    leaked = leaks(out, placeholder)
    if leaked:
        raise RenderError(
            f"service {name}: {', '.join(leaked)} would carry a secret outside a secret; "
            "reset it in compose/docker-compose.swarm.yml and give the service the Docker secret"
        )
    if "ports" in out:
        out["ports"] = [{k: v for k, v in p.items() if k in PORT_KEYS} for p in out["ports"]]
        for p in out["ports"]:
            if "published" in p:
                p["published"] = int(p["published"])
            if p.get("mode") != "host":
                raise RenderError(
                    f"service {name}: port {p.get('target')} must be published with mode: host "
                    "(no routing mesh without IPVS: DESIGN.md)"
                )
    for vol in out.get("volumes", []):
        size = vol.get("tmpfs", {}).get("size") if isinstance(vol, dict) else None
        if isinstance(size, str) and size.isdigit():
            vol["tmpfs"]["size"] = int(size)  # compose writes bytes as a string
        if isinstance(vol, dict):
            vol.pop("bind", None) if vol.get("type") != "bind" else None
    for key in ("secrets", "configs"):
        for ref in out.get(key, []):
            if "mode" in ref:
                ref["mode"] = _octal(ref["mode"])
    deploy = out.get("deploy")
    if deploy is not None:
        if deploy.get("placement") == {}:
            del deploy["placement"]
        limits = deploy.get("resources", {}).get("limits", {})
        if "cpus" in limits:
            limits["cpus"] = str(limits["cpus"])
    return out


def render(model: dict[str, Any], out_dir: Path, placeholder: str) -> dict[str, Any]:
    stack_name = model.get("name", "investment")
    stack: dict[str, Any] = {"version": "3.8", "services": {}}
    for name, svc in sorted(model.get("services", {}).items()):
        stack["services"][name] = _service(name, svc, placeholder)
    networks = {}
    for name, net in model.get("networks", {}).items():
        networks[name] = {
            k: v
            for k, v in net.items()
            if k in {"driver", "internal", "attachable", "driver_opts", "external", "name"}
            and v not in (None, {})
        }
    stack["networks"] = networks
    stack["volumes"] = {
        name: {
            k: v
            for k, v in (vol or {}).items()
            if k in {"driver", "driver_opts", "external", "name"}
        }
        for name, vol in model.get("volumes", {}).items()
    }
    stack["secrets"] = {
        name: {"external": True, "name": sec["name"]}
        for name, sec in model.get("secrets", {}).items()
        if sec.get("external")
    }
    if len(stack["secrets"]) != len(model.get("secrets", {})):
        raise RenderError(
            "every secret of the Swarm stack must be external (scripts/swarm.sh creates them)"
        )
    configs = {}
    (out_dir / "configs").mkdir(parents=True, exist_ok=True)
    for name, cfg in sorted(model.get("configs", {}).items()):
        path = Path(cfg.get("file", ""))
        if not path.is_file():
            raise RenderError(f"config {name}: file {path} does not exist")
        data = path.read_bytes()
        (out_dir / "configs" / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()[:12]
        configs[name] = {"file": f"./configs/{name}", "name": f"{stack_name}_{name}_{digest}"}
    stack["configs"] = configs
    leaked = leaks({k: v for k, v in stack.items() if k != "services"}, placeholder)
    if leaked:
        raise RenderError(f"{', '.join(leaked)} would carry a secret outside a secret")
    return stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where stack.json and configs/ are written")
    parser.add_argument(
        "--placeholder", required=True, help="the value every secret was rendered with"
    )
    args = parser.parse_args(argv)
    try:
        model = json.load(sys.stdin)
    except json.JSONDecodeError as exc:
        print(f"swarm_stack: the compose model on stdin is not JSON: {exc}", file=sys.stderr)
        return 1
    try:
        stack = render(model, args.out_dir, args.placeholder)
    except RenderError as exc:
        print(f"swarm_stack: {exc}", file=sys.stderr)
        return 1
    (args.out_dir / "stack.json").write_text(json.dumps(stack, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
