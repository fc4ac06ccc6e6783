"""One statement of how a stack is named (console/core/stack.facts), read by
the console and by scripts/lib.sh alike: they agree, and nothing else in the
tree restates it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from console.core.config import Settings
from console.core.ops.context import SERVICES, OpContext
from console.core.stack import FACTS_FILE, StackNames, is_secret_key, published_ports

REPO = Path(__file__).resolve().parents[3]


def _lib_sh(stack: str, script: str) -> str:
    r = subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh; {script}"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "STACK_NAME": stack, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("service", SERVICES)
def test_the_scripts_and_the_console_name_every_container_alike(service: str) -> None:
    names = StackNames("sdfacts")
    assert _lib_sh("sdfacts", f"container_of {service}") == names.container(service)


def test_the_scripts_and_the_console_put_a_stack_in_the_same_folders() -> None:
    out = _lib_sh("sdfacts", 'echo "$RUN_DIR"; echo "$STACKDECK_STATE_DIR"').splitlines()
    names = StackNames("sdfacts")
    assert out == [str(names.run_dir), str(names.state_dir)]


def test_settings_and_the_ops_context_use_the_same_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    # the stack variables of the shell (test.sh exports the test stack's) win
    # over the project's defaults: out of the way here
    for key in list(os.environ):
        if key.startswith("STACKDECK_") or key in (
            "STACK_NAME",
            "HTTP_PORT",
            "RUN_DIR",
            "IMAGE_PREFIX",
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    settings = Settings(repo_root=tmp_path, project="sdfacts")
    ctx = OpContext.from_settings(settings)
    names = StackNames("sdfacts")
    assert settings.run_dir == ctx.run_dir == names.run_dir
    assert settings.state_dir == ctx.state_dir == names.state_dir
    for service in SERVICES:
        assert settings.container_name(service) == ctx.container(service)
    assert names.container("redis") == "sdfacts_cache_prod"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("POSTGRES_PASSWORD", True),
        ("JWT_SECRET", True),
        ("ADMIN_TOKEN", True),
        ("FINNHUB_API_KEY", True),
        ("ALPHAVANTAGE_APIKEY", True),
        ("POLYGON_KEY", True),
        ("DATABASE_DSN", True),
        ("STACK_NAME", False),
        ("HTTP_PORT", False),
        ("MONTHLY_BUDGET", False),
    ],
)
def test_one_secret_key_rule(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_nothing_else_restates_the_naming_rule() -> None:
    """The container suffix, the folders and the secret pattern are written
    in stack.facts only (compose's YAML names containers for compose itself)."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.sh"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    rules = {
        "container suffix": re.compile(r"\}_\w*prod\b"),
        "run folder": re.compile(r"""["']/run/\{"""),
        "state folder": re.compile(r"/var/lib/stackdeck/[{$]"),
        "secret pattern": re.compile(r"PASSWORD\|SECRET"),
    }
    # test_stack.py checks the built stack against the runbook's own names:
    # an expectation written out, not a second rule
    expectations = {"tests/integration/test_stack.py"}
    found = []
    for rel in tracked:
        path = REPO / rel
        if path == Path(__file__) or rel in expectations or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for what, rule in rules.items():
            for m in rule.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{rel}:{line}: {what}")
    assert not found, f"restated outside {FACTS_FILE.name}: {found}"


def test_the_scripts_and_the_console_derive_the_same_monitoring_ports() -> None:
    from console.core.config import read_env_file

    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "HTTP_PORT": "18555"}
    env["PROMETHEUS_PORT"] = "19999"  # given: kept
    r = subprocess.run(
        [
            "bash",
            "-c",
            'source scripts/lib.sh; echo "$PROMETHEUS_PORT $ALERTMANAGER_PORT $ALERT_SINK_PORT $HTTPS_PORT"',
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    dotenv = read_env_file(REPO / ".env") if (REPO / ".env").exists() else {}
    ports = published_ports({**dotenv, **env}, 18555)
    assert r.stdout.split() == [str(p) for p in ports.values()]
    if not dotenv.get("HTTPS_PORT"):
        assert ports["HTTPS_PORT"] == 18555 + 363  # 80 -> 443
    assert ports["PROMETHEUS_PORT"] == 19999
    if not dotenv.get("ALERTMANAGER_PORT"):
        assert ports["ALERTMANAGER_PORT"] == 18555 + 12000  # derived from HTTP_PORT


def test_the_test_stacks_derived_ports_are_below_the_ephemeral_range() -> None:
    """A port in the kernel's ephemeral range may be held by any outgoing
    connection (the load loops make thousands) when a container asks for it:
    "address already in use" failed a CI run's set-up of the stack on 18090."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for http_port in (80, 18080, 18090, 18099):  # the default; test.sh's; the fresh machine's
        ports = published_ports({}, http_port)
        assert max(ports.values()) < low, (http_port, ports, low)
