"""Record a swarm stack's services, tasks and nodes for the unit tests.

    DOCKER_HOST=tcp://127.0.0.1:PORT python3 tests/unit/core/data/record_swarm.py STACK OUT.json

Writes what the swarm source reads (``GET /info``'s ``Swarm`` (without the
cluster's CA) and ``ServerVersion``, ``/services?status=true`` of the stack, their ``/tasks``,
``/nodes``) as ``{"stack", "info", "services", "tasks", "nodes"}``, the shape
``tests/unit/core/test_swarm_parse.py`` loads. Point DOCKER_HOST at a
manager's engine (``scripts/swarm.sh env``), never at an engine that matters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import docker

STACK_LABEL = "com.docker.stack.namespace"
INFO_KEYS = (
    "NodeID",
    "NodeAddr",
    "LocalNodeState",
    "ControlAvailable",
    "Error",
    "Nodes",
    "Managers",
)
"""What is kept of ``docker info``'s Swarm section (not the cluster's CA)."""


def main(stack: str, out: Path) -> None:
    api = docker.from_env(timeout=10).api
    info = api.info()
    services = api.services(filters={"label": f"{STACK_LABEL}={stack}"}, status=True)
    tasks = api.tasks(filters={"service": [s["ID"] for s in services]}) if services else []
    data = {
        "stack": stack,
        "info": {
            "ServerVersion": info.get("ServerVersion"),
            "Swarm": {k: v for k, v in (info.get("Swarm") or {}).items() if k in INFO_KEYS},
        },
        "services": services,
        "tasks": tasks,
        "nodes": [
            {k: v for k, v in n.items() if k != "Description"}
            | {"Description": {k: v for k, v in n["Description"].items() if k != "TLSInfo"}}
            for n in api.nodes()
        ],
    }
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(services)} services, {len(tasks)} tasks, {len(data['nodes'])} nodes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], Path(sys.argv[2]))
