"""Secrets never reach the operator's screen, the log view, the CLI's output
or the audit log.

The secrets are the stack's real ones (.env: database and Redis passwords,
JWT key, admin token, user passwords) plus a live JWT. The tests search the
rendered screens of the real app against the real stack, and the files and
command output, for any 12-character piece of each value; a message names
the secret, never shows it.

Two misbehaving clients plant secrets where an operator would look: a
request with the admin token in its query string (nginx logs it) and CLI
commands with secrets typed into their text fields (the audit log records
the parameters).
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._cli import audit_lines, stackdeck
from tests.reliability._harness import (
    Figure,
    app_wait,
    console_settings,
    docker,
    find_secrets,
    mask,
    record,
    screen_text,
    secret_values,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

PLANT = "reliability_plant"
"""Marks the requests that carry a secret on purpose."""


@pytest.fixture(scope="module")
def secrets(stack: Stack) -> dict[str, str]:
    values = secret_values(stack)
    assert len(values) >= 5, f"stack .env has too few secrets: {sorted(values)}"
    r = httpx.post(
        f"{stack.base_url}/api/auth/login",
        json={
            "username": stack.env.get("TEST_USERNAME", "test"),
            "password": stack.env["TEST_PASSWORD"],
        },
        timeout=15,
    )
    assert r.status_code == 200, r.text[:200]
    values["a live JWT"] = r.json().get("access_token") or r.json()["token"]
    return values


def test_containers_do_not_log_secrets(stack: Stack, secrets: dict[str, str]) -> None:
    """The platform itself never writes a secret to its logs (planted lines excluded)."""
    leaks = {}
    for service in (
        "nginx",
        "backend_blue",
        "backend_green",
        "worker",
        "db",
        "redis",
        "market-sim",
    ):
        proc = docker("logs", "--tail", "5000", stack.container(service), check=False, timeout=60)
        text = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if PLANT not in ln)
        hits = find_secrets(text, secrets)
        if hits:
            leaks[service] = hits
    assert not leaks, f"secrets in container logs: {leaks}"


async def test_no_secret_on_any_screen_or_log_view(stack: Stack, secrets: dict[str, str]) -> None:
    from console.ui.app import create_app

    app = create_app(console_settings(stack))
    screens: dict[str, str] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        await app_wait(
            pilot,
            lambda: (
                app.dashboard.containers is not None
                and app.dashboard.health is not None
                and app.dashboard.database is not None
                and app.dashboard.quotas is not None
            ),
            within=60,
            what="panels filled",
        )
        screens["dashboard 160×48"] = screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        screens["help"] = screen_text(app)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        screens["command palette"] = screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.2)
        # every container's log view
        for info in list(app.dashboard.containers.containers):
            if info.service == "nginx":
                # a client that puts secrets in a URL: nginx's access log has them now
                async with httpx.AsyncClient(base_url=stack.base_url, timeout=15) as client:
                    await client.get(
                        "/api/health", params={PLANT: "1", "api_key": secrets["ADMIN_TOKEN"]}
                    )
                    await client.get(f"/api/health?{PLANT}=1&{secrets['JWT_SECRET']}")
            app.dashboard.selected_container = info.name
            await pilot.press("l")
            await app_wait(pilot, lambda: type(app.screen).__name__ == "LogsScreen", within=10)
            log = app.screen.query_one("#logs-view")
            if info.service == "nginx":
                # the tail arrives line by line: wait for the planted lines
                await app_wait(
                    pilot,
                    lambda log=log: sum(PLANT in s.text for s in log.lines) >= 2,
                    within=90,
                    what="planted lines in the nginx log view",
                )
            else:
                await app_wait(
                    pilot,
                    lambda log=log: len(log.lines) > 0,
                    within=30,
                    what=f"{info.service} log lines",
                )
                await pilot.pause(1.0)
            screens[f"log view {info.service}"] = screen_text(app)
            screens[f"log buffer {info.service}"] = "\n".join(s.text for s in log.lines)
            await pilot.press("escape")
            await pilot.pause(0.2)
        # an operation's log: VACUUM through the key and its confirmation
        await pilot.press("v")
        await app_wait(
            pilot,
            lambda: type(app.screen).__name__ == "ConfirmScreen",
            within=10,
            what="vacuum confirm",
        )
        await pilot.press("y")
        await app_wait(
            pilot, lambda: app.dashboard.op_running is None, within=120, what="vacuum ends"
        )
        await pilot.press("8")
        await pilot.pause(0.3)
        screens["operations"] = screen_text(app)
        # the compact layout shows other text (tabs): look at every tab too
        await pilot.resize_terminal(80, 24)
        for key in "12345678":
            await pilot.press(key)
            await pilot.pause(0.2)
            screens[f"80×24 tab {key}"] = screen_text(app)
    leaks = {
        where: hits for where, text in screens.items() if (hits := find_secrets(text, secrets))
    }
    planted = [ln for ln in screens.get("log buffer nginx", "").splitlines() if PLANT in ln]
    # the planted lines must be on screen far enough to show where the secret was
    planted_shown = any("api_key=" in ln for ln in planted)
    record(
        Figure(
            fault="secrets on screen",
            operator_saw=f"{len(screens)} screens searched",
            notes=f"leaks: {sorted(leaks)}" if leaks else "none",
            extra={"passed": planted_shown and not leaks},
        )
    )
    assert planted_shown, (
        "the planted request is not in the nginx log view (the search proves nothing)"
    )
    assert not leaks, f"secrets rendered on screen (where: which secret): {leaks}"


def test_no_secret_in_cli_output_or_audit_log(stack: Stack, secrets: dict[str, str]) -> None:
    """Secrets typed into every text field of the CLI: refused, and neither the
    output nor the audit log repeats them."""
    n = len(audit_lines(stack))
    # Only what this test makes stackdeck write is judged: the audit log is
    # append-only, so a line an older build leaked stays there for good.
    state_files = ("audit.log", "history.jsonl", "deployment.log")
    sizes = {
        name: (stack.state_dir / name).stat().st_size if (stack.state_dir / name).exists() else 0
        for name in state_files
    }
    s = secrets
    runs = [
        ["deploy", "--version", s["JWT_SECRET"]],
        ["restart", s["ADMIN_TOKEN"]],
        ["restore", s["POSTGRES_PASSWORD"], "--confirm", s["REDIS_PASSWORD"]],
        ["cache", "flush", "--all", "--confirm", s["REDIS_PASSWORD"]],
        ["vacuum", s["ADMIN_PASSWORD"]],
        ["cache", "warm", "--symbols", s["TEST_PASSWORD"]],
        ["scale", f"worker={s['ADMIN_TOKEN']}"],
    ]
    outputs = {}
    for i, argv in enumerate(runs):
        proc = stackdeck(stack, "--json", *argv)
        outputs[f"{argv[0]} (case {i})"] = proc.stdout + proc.stderr
    new_lines = len(audit_lines(stack)) - n
    for cmd in (["status", "--json"], ["audit", "-n", str(max(new_lines, 1))], ["lock", "show"]):
        proc = stackdeck(stack, *cmd)
        outputs[" ".join(cmd)] = proc.stdout + proc.stderr
    leaks = {cmd: hits for cmd, out in outputs.items() if (hits := find_secrets(out, secrets))}
    examples = {cmd: mask(outputs[cmd], secrets)[-300:] for cmd in leaks}
    assert not leaks, f"secrets in CLI output (which command: which secret): {leaks}\n{examples}"
    new_audit = "\n".join(str(a) for a in audit_lines(stack)[n:])
    audited = bool(new_audit)
    assert audited, "the refusals were not audited"
    audit_hits = find_secrets(new_audit, secrets)
    assert not audit_hits, f"secrets in the audit log: {audit_hits}"
    for name in state_files:
        path = stack.state_dir / name
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(sizes[name])
                appended = fh.read().decode("utf-8", errors="replace")
            hits = find_secrets(appended, secrets)
            assert not hits, f"secrets in what was appended to {name}: {hits}"


def test_audit_log_is_append_only_with_operator_identity(
    stack: Stack, secrets: dict[str, str]
) -> None:
    """Every line carries who (user, SSH client, host, pid); the file only grows,
    each line is written whole (O_APPEND) and stackdeck never rewrites it."""
    path = stack.state_dir / "audit.log"
    before = path.read_bytes() if path.exists() else b""
    proc = stackdeck(
        stack, "restart", "no-such-service", SSH_CLIENT="203.0.113.9 50000 22", SUDO_USER="alice"
    )
    assert proc.returncode == 2
    after = path.read_bytes()
    appended = after.startswith(before)
    assert appended, "the audit log was rewritten, not appended to"
    new = [ln for ln in after[len(before) :].decode().splitlines() if ln.strip()]
    assert new, "nothing appended"
    last = audit_lines(stack)[-1]
    assert last["user"] == "alice" and last["ssh_client"] == "203.0.113.9", mask(str(last), secrets)
    assert last.get("host") and last.get("pid"), mask(str(last), secrets)
    for rec in audit_lines(stack):
        complete = bool(rec.get("user")) and "at" in rec and "op" in rec
        assert complete, mask(str(rec), secrets)
    mode = path.stat().st_mode & 0o777
    assert not mode & 0o002, f"audit.log is world-writable ({oct(mode)})"
