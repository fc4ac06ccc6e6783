"""Memory of the idle stack (``docker stats --no-stream``: usage without page
cache, as docker computes it) against the seed's 4 GB minimum server, and the
sum of the production memory limits."""

from __future__ import annotations

import json
import re
from typing import Any

from bench.common import Stack, load_average, log, rnd, row, run

SEED_MIN_BYTES = 4 * 1024**3
_UNITS = {
    "B": 1,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_size(text: str) -> int:
    m = re.match(r"\s*([\d.]+)\s*([A-Za-z]+)", text)
    if not m:
        return 0
    return int(float(m.group(1)) * _UNITS.get(m.group(2).upper(), 1))


def bench(stack: Stack, *, quick: bool = False) -> dict[str, Any]:
    load_before = load_average()
    names = [n for n in stack.project_containers() if "_benchidle_" not in n]
    log(f"footprint: docker stats --no-stream of {len(names)} containers")
    out = run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", *names], timeout=120
    ).stdout
    per: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        item = json.loads(line)
        usage, _, limit = item["MemUsage"].partition("/")
        per[item["Name"]] = {
            "mem_bytes": parse_size(usage),
            "limit_bytes": parse_size(limit),
            "cpu_percent": float(item["CPUPerc"].rstrip("%") or 0),
            "pids": int(item.get("PIDs") or 0),
        }
    total = sum(v["mem_bytes"] for v in per.values())
    limits = 0
    inspect = json.loads(run(["docker", "inspect", *names]).stdout)
    for c in inspect:
        limits += int(c["HostConfig"].get("Memory") or 0)
    share = total / SEED_MIN_BYTES * 100
    rows = [
        row(
            f"idle stack memory ({len(names)} containers)",
            rnd(total / 2**20, 0),
            "MiB",
            peer=4096,
            peer_name="seed minimum server (4 GB)",
            ratio=SEED_MIN_BYTES / total if total else None,
            ratio_label="× headroom",
            target="fits in 4 GB with room for the host",
            met=total < SEED_MIN_BYTES * 0.75,
            note=f"{share:.1f} % of 4 GiB; sum of production limits {limits / 2**20:.0f} MiB",
        ),
        row(
            "idle stack CPU",
            rnd(sum(v["cpu_percent"] for v in per.values()), 1),
            "% of one core",
            note="sum of docker stats CPU % (one sample)",
        ),
    ]
    raw = {
        "containers": {
            k: {**v, "mem_mib": round(v["mem_bytes"] / 2**20, 1)} for k, v in sorted(per.items())
        },
        "total_bytes": total,
        "limits_bytes": limits,
    }
    return {
        "title": "Stack footprint",
        "rows": rows,
        "raw": raw,
        "load_before": load_before,
        "load_after": load_average(),
    }
