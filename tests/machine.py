"""The machine a measurement ran on, one description for the benchmark
results (``bench/results/*.json``, key ``machine``, read by bench/report.py)
and the reliability report (tests/reliability/report.py)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    """Host, CPU, memory, kernel, OS, Python, Textual, Docker and Compose.

    Keys (the committed results carry them): ``hostname``, ``cpu``,
    ``cores``, ``mem_total_gib``, ``kernel``, ``os``, ``python``,
    ``textual``, ``docker`` (``<version> (API <api>)``), ``compose``,
    ``cgroup``. What cannot be read is ``"?"`` (or 0 GiB)."""
    # /proc/meminfo the way the pre-deployment checks read it (imported
    # here: the ops package is heavy, and only this needs it)
    from console.core.ops.preflight import parse_meminfo

    mem = 0
    with contextlib.suppress(OSError):
        mem = parse_meminfo(Path("/proc/meminfo").read_text(encoding="ascii")).get("MemTotal", 0)
    try:
        textual = version("textual")
    except PackageNotFoundError:
        textual = "?"
    return {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "mem_total_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "textual": textual,
        "docker": _output(
            "docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"
        ),
        "compose": _output("docker", "compose", "version", "--short"),
        "cgroup": "v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "v1",
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME") or platform.platform()
    except OSError:
        return platform.platform()


def _output(*argv: str) -> str:
    """A command's first line of output, ``"?"`` when it fails or hangs."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = r.stdout.strip()
    return out if r.returncode == 0 and out else "?"
