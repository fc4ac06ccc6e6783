"""The layers hold (docs/ARCHITECTURE.md), checked in a fresh interpreter:
``console.core`` imports no textual, the UI no client library, the sources
and the monitor no ops and no UI, the ops engine no UI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

MODULES = [
    "console.core",
    "console.core.config",
    "console.core.errors",
    "console.core.models",
    "console.core.alerts",
    "console.core.monitor",
    "console.core.sources",
    "console.core.sources.base",
    "console.core.sources.docker",
    "console.core.sources.docker.containers",
    "console.core.sources.docker.events",
    "console.core.sources.docker.handle",
    "console.core.sources.docker.inspect",
    "console.core.sources.docker.logs",
    "console.core.sources.docker.stats",
    "console.core.sources.docker.stream",
    "console.core.sources.health",
    "console.core.sources.postgres",
    "console.core.sources.redis_quota",
    "console.core.sources.cost",
]


def _all_core_modules() -> list[str]:
    core = REPO / "console" / "core"
    names = set(MODULES)
    for path in core.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return sorted(names)


def test_console_core_does_not_import_textual() -> None:
    modules = _all_core_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    s = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "    if s:\n"
        "        print('LEAK', name, s[:3]); sys.exit(1)\n"
        "print('OK', len(sys.argv))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")


def test_the_check_can_fail() -> None:
    """The same probe sees textual when something does import it."""
    code = "import sys, textual\nprint('textual' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "True"


def test_the_console_starts_without_importing_the_ops_engine() -> None:
    """``stackdeck`` (the TUI) builds its settings and app without the ops
    engine (0.6 s of imports); it reads only the table of operations (the
    CLI's commands, the TUI's bindings). The engine loads with the first
    operation."""
    code = (
        "import sys\n"
        "from console.cli import _settings, build_parser\n"
        "import console.ui.app\n"
        "_settings(build_parser().parse_args([]))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('console.core.ops')\n"
        "                or m.split('.')[0] in ('docker', 'httpx', 'asyncpg', 'redis'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    table = (
        "console.core.ops,console.core.ops.errors,console.core.ops.table,console.core.ops.versions"
    )
    assert out == table, f"the TUI's start-up imports more than the table of operations: {out}"


def _loaded_after(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    """Modules starting with ``prefixes`` loaded, in a fresh interpreter, by ``imports``."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"{imports}\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def _every(package: str) -> str:
    return (
        f"import {package} as p\n"
        f"for m in pkgutil.walk_packages(p.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)"
    )


def test_the_ui_imports_no_client_library() -> None:
    """The UI talks to the stack only through the monitor's sink and run_op:
    no Docker, PostgreSQL, Redis or HTTP client of its own."""
    loaded = _loaded_after(_every("console.ui"), ("docker", "asyncpg", "redis", "httpx"))
    assert loaded == [], loaded


def test_sources_and_the_monitor_import_no_ops_and_no_ui() -> None:
    loaded = _loaded_after(
        _every("console.core.sources") + "\nimport console.core.monitor",
        ("console.core.ops", "console.ui", "textual"),
    )
    assert loaded == [], loaded


def test_the_ops_engine_imports_no_ui() -> None:
    loaded = _loaded_after(_every("console.core.ops"), ("console.ui", "textual"))
    assert loaded == [], loaded
