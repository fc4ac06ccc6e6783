"""Kill the real TUI (``python -m console``, no sub-command: operations run
inside its own process, not in a subprocess) in the middle of a deploy's
bake window and of a VACUUM, and hang up its session while a confirmation
dialog is open.

The TUI runs in a real terminal (a pane of a private tmux server, 120x40),
in its own session and process group, and is driven with real key presses.
When the operation has reached the point of interest is read from the stack
(the deploy journal, pg_stat_activity), never from the screen; the screen is
only read to know which dialog is up before the next key.

Two ways to lose the TUI: SIGKILL to its process group (a power cut of the
operator's side) and SIGHUP to its session (what the kernel sends when an SSH
connection drops).

* After SIGKILL nothing of the TUI runs: what must hold is what holds after
  the CLI is killed (test_fault_console_kill.py, the model): one colour
  served, the stale lock and the interrupted operation explained, the next
  operation refused until ``lock break``, then recovered.
* SIGHUP is handled (``StackdeckApp._watch_hangup``), as the CLI handles it:
  the running operation is cancelled and undoes itself (the deploy switches
  traffic back and stops the new colour, the VACUUM is cancelled on the
  server), the lock is released, the history says why, then the TUI exits.
  Nothing is left for the operator to recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack, default_signals
from tests.load import HEALTH, LoadLoop
from tests.reliability._cli import (
    active_conf,
    assert_dead_deploy_explained_then_recovered,
    assert_one_colour_served,
    audit_lines,
    cli_env,
    fingerprint,
    stackdeck,
    whole_conf_colour,
)
from tests.reliability._harness import (
    REPO,
    NotReached,
    docker,
    figure,
    hold_table,
    last_vacuum,
    pg_query,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

VERSION = "v1.0.1"
SIGHUP_IGNORED = (
    "SIGHUP is ignored in the TUI process (by how it was started, or by the TUI itself)"
)
KILLS = [
    pytest.param(signal.SIGKILL, id="sigkill-group"),
    pytest.param(signal.SIGHUP, id="sighup-session"),
]


# --- the real TUI in a real terminal ---------------------------------------------


class Tui:
    """The TUI in a pane of a private tmux server (``-L``: nobody else's tmux
    is touched). The pane runs ``exec python -m console ...``, so the pane's
    pid is the TUI's, and tmux made it the leader of its own session and
    process group: signals to that group reach the TUI and its children only."""

    def __init__(self, stack: Stack, width: int = 120, height: int = 40) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed (apt-get install tmux): it is the TUI's terminal")
        self.stack = stack
        self.server = f"sdrel-tui-{stack.name}-{os.getpid()}"
        self.width, self.height = width, height
        self.pid: int | None = None

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> int:
        cmd = (
            f"cd {REPO} && exec {sys.executable} -m console "
            f"--stack {self.stack.name} --http-port {self.stack.http_port}"
        )
        # the server's environment becomes the pane's: the CLI tests' env
        env = cli_env(self.stack, TEXTUAL_ANIMATIONS="none", COLORTERM="truecolor")
        subprocess.run(
            [
                *("tmux", "-L", self.server, "-f", "/dev/null", "new-session", "-d", "-s", "tui"),
                *("-x", str(self.width), "-y", str(self.height), "sh", "-c", cmd),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,  # SIGHUP at its default in the server, so in the pane
        )
        self._tmux("set-option", "-t", "tui", "remain-on-exit", "on", check=False)
        self.pid = int(self._tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").stdout)
        return self.pid

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "tui", check=False).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "tui", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "tui", "-l", text)

    def shows(self, text: str, line_with: str = "") -> bool:
        return any(text in line and line_with in line for line in self.screen().splitlines())

    def wait_screen(self, text: str, *, line_with: str = "", timeout: float = 60) -> None:
        try:
            wait_until(
                lambda: self.shows(text, line_with) or not self.alive(),
                timeout=timeout,
                what=f"the TUI shows {text!r}",
            )
        except NotReached as exc:
            raise NotReached(f"{exc}\n--- screen ---\n{self.screen()}") from None
        assert self.alive(), f"the TUI exited while waiting for {text!r}:\n{self.screen()}"

    def wait_dashboard(self, timeout: float = 90) -> None:
        """Painted, with the stack's containers listed (the monitor is live)."""

        def ready() -> bool:
            s = self.screen()
            return (
                f"stackdeck · {self.stack.name} @" in s
                and re.search(r"Containers · [1-9]\d*/\d+ running", s) is not None
                and "d Deploy" in s
            ) or not self.alive()

        try:
            wait_until(ready, timeout=timeout, what="the TUI's dashboard with the containers")
        except NotReached as exc:
            raise NotReached(f"{exc}\n--- screen ---\n{self.screen()}") from None
        assert self.alive(), f"the TUI exited at start:\n{self.screen()}"

    def clock(self) -> int | None:
        """The header's clock (ticks once a second on the TUI's event loop), in seconds."""
        lines = self.screen().splitlines()
        m = re.search(r"(\d\d):(\d\d):(\d\d)\s*$", lines[0]) if lines else None
        return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])

    def wait_ticks(self, seconds: int, timeout: float = 30) -> None:
        """Until the TUI's own clock has advanced ``seconds``: its event loop
        kept running (it would have started anything it was going to)."""
        c0 = self.clock()
        assert c0 is not None, self.screen()
        wait_until(
            lambda: ((self.clock() or c0) - c0) % 86400 >= seconds or not self.alive(),
            timeout=timeout,
            what=f"the TUI's clock advances {seconds} s",
        )
        assert self.alive(), self.screen()

    def alive(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def group_alive(self) -> bool:
        """Some process of the TUI's group still runs. Zombies do not count:
        a killed child of the TUI is reparented to PID 1, which may reap it
        late, and a zombie holds no connection, lock or file."""
        if self.pid is None:
            return False
        return bool(_group_members(self.pid))

    def sighup_not_ignored(self) -> bool:
        """The TUI's SIGHUP disposition is not SIG_IGN (else the test proves nothing)."""
        assert self.pid is not None
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return not (int(line.split()[1], 16) >> (signal.SIGHUP - 1)) & 1
        return False

    def signal_group(self, sig: int) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def close(self) -> None:
        if self.pid is not None and self.group_alive():
            self.signal_group(signal.SIGKILL)  # only our pane's group
        self._tmux("kill-server", check=False)
        base = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        with contextlib.suppress(OSError):
            (base / self.server).unlink()


def _group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # after the command: state, ppid, pgrp
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def tui(stack: Stack) -> Iterator[Tui]:
    t = Tui(stack)
    try:
        t.start()
        yield t
    finally:
        t.close()


def _kill(t: Tui, sig: int, timeout: float = 30) -> float:
    """Send ``sig`` to the TUI's process group; seconds until the whole group is gone."""
    t0 = time.monotonic()
    t.signal_group(sig)
    wait_until(
        lambda: not t.group_alive(),
        timeout=timeout,
        interval=0.05,
        what=f"the TUI's process group gone after {signal.Signals(sig).name}",
    )
    return time.monotonic() - t0


# --- the stack ----------------------------------------------------------------------


def _journal(stack: Stack) -> dict[str, Any]:
    try:
        data = json.loads((stack.state_dir / "deploy-journal.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _history(stack: Stack) -> list[str]:
    path = stack.state_dir / "history.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _status(stack: Stack) -> dict[str, Any]:
    r = stackdeck(stack, "status", "--json")
    assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-1000:]
    return dict(json.loads(r.stdout))


def _ensure_version_image(stack: Stack, version: str) -> None:
    """The TUI's deploy form has no --build: the version's image must exist.
    Built (if missing) from the stack's v1.0.0 image with only the version
    changed, the way tests/fault_versions.py derives its versions."""
    ref = f"{stack.backend_image}:{version}"
    if docker("image", "inspect", ref, check=False).returncode == 0:
        return
    dockerfile = (
        f"FROM {stack.backend_image}:v1.0.0\n"
        f"ENV APP_VERSION={version}\n"
        f"LABEL com.investment.version={version} org.opencontainers.image.version={version}\n"
    )
    with tempfile.TemporaryDirectory(prefix="stackdeck-tui-") as tmp:
        Path(tmp, "Dockerfile").write_text(dockerfile)
        r = subprocess.run(
            ["docker", "build", "-q", "-t", ref, tmp],
            capture_output=True,
            text=True,
            timeout=300,
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
    assert r.returncode == 0, f"building {ref} failed: {r.stderr[-1500:]}"


def _calm(stack: Stack) -> dict[str, Any]:
    """The stack is free to operate on: no lock, no interrupted deploy."""
    st = _status(stack)
    assert not st["lock"]["held"] and not st["lock"]["stale"], (
        f"the stack is locked before the test: {st['lock']}"
    )
    assert not (st.get("deploy") or {}).get("interrupted"), st.get("deploy")
    return st


def _open_deploy_confirmation(t: Tui, version: str) -> None:
    t.keys("d")
    t.wait_screen("Deploy a version of the backend")
    t.type(version)
    t.wait_screen(version, line_with="▊")  # in the version field, not the "idle:" line
    t.keys("Enter")
    t.wait_screen(f"Deploy {version}?")


def _open_vacuum_confirmation(t: Tui) -> None:
    t.keys("v")
    t.wait_screen("VACUUM (ANALYZE) all tables?")


# --- 1. killed in a deploy's bake window -------------------------------------------


@pytest.mark.parametrize("sig", KILLS)
def test_kill_tui_during_deploy_bake(stack: Stack, sig: signal.Signals) -> None:
    how = signal.Signals(sig).name
    _ensure_version_image(stack, VERSION)
    st0 = _calm(stack)
    before_colour = st0["serving_colour"]
    assert st0["colours"][before_colour]["version"] != VERSION, (
        f"{before_colour} already serves {VERSION}: the deploy would do nothing"
    )
    load = LoadLoop(stack.base_url, HEALTH, max_requests=6000, max_seconds=400)
    with figure(f"kill the TUI ({how}) during a blue-green deploy (bake window)") as fig:
        load.start()
        try:
            with tui(stack) as t:
                t.wait_dashboard()
                if sig == signal.SIGHUP:
                    assert t.sighup_not_ignored(), SIGHUP_IGNORED
                _open_deploy_confirmation(t, VERSION)
                t.keys("y")
                # the stack says when the bake started (not the screen)
                wait_until(
                    lambda: (
                        (
                            _journal(stack).get("step") == "bake"
                            and _journal(stack).get("status") == "running"
                        )
                        or not t.alive()
                    ),
                    timeout=400,
                    what="the TUI's deploy reaches its bake window (deploy journal)",
                )
                assert t.alive(), f"the TUI exited before the bake:\n{t.screen()}"
                journal = _journal(stack)
                assert journal.get("version") == VERSION, journal
                pid = t.pid
                time.sleep(2)  # into the bake (30 s: the TUI's default bake window)
                assert _journal(stack).get("step") == "bake", _journal(stack)
                t_kill = time.monotonic()
                # SIGHUP: the TUI undoes the deploy before it exits (bounded)
                gone_s = _kill(t, sig, timeout=30 if sig == signal.SIGKILL else 300)
        except BaseException:
            load.stop()
            raise
        if sig == signal.SIGHUP:
            _assert_deploy_cancelled(stack, load, fig, before_colour, pid, gone_s)
            return
        # --- right after the kill: one colour, valid config, still serving
        serving = assert_one_colour_served(stack, load, t_kill)
        # --- the next console explains, refuses, recovers
        recover_s = assert_dead_deploy_explained_then_recovered(
            stack, pid=pid, version=VERSION, before_colour=before_colour
        )
        time.sleep(2)
        result = load.stop()
        last = result.colours(since=time.monotonic() - 1.5)
        assert set(last) == {before_colour}, last
        fig.operator_saw = (
            f"TUI {how}ed in bake (group gone in {gone_s:.2f} s, no cleanup ran) with nginx on "
            f"{serving}; status: stale lock (deploy, pid {pid} gone), deploy interrupted at bake; "
            f"new deploy refused exit 3; lock break + rollback -> {before_colour}"
        )
        fig.recover_s = round(recover_s, 1)
        fig.load(result)
        fig.extra = {"colours": result.colours(), "signal": how, "group_gone_s": round(gone_s, 2)}
        # two reloads: the deploy's switch, the rollback's switch back
        result.assert_clean(reloads=2)


def _assert_deploy_cancelled(
    stack: Stack, load: LoadLoop, fig: Any, before_colour: str, pid: int | None, gone_s: float
) -> None:
    """After SIGHUP: switched back, lock released, history 'rolled-back: cancelled'."""
    t_gone = time.monotonic()
    conf = active_conf(stack)
    assert whole_conf_colour(conf) == before_colour, conf
    st = _status(stack)
    assert not st["lock"]["held"] and not st["lock"]["stale"], st["lock"]
    deploy = st["deploy"] or {}
    assert not deploy.get("interrupted") and deploy.get("status") == "rolled-back", deploy
    last = json.loads(_history(stack)[-1])
    assert last["version"] == VERSION and last["result"] == "rolled-back", last
    assert "cancelled" in last["reason"], last
    wait_until(
        lambda: len(load.result().after(t_gone)) >= 20,
        timeout=30,
        what="answers after the TUI exited",
    )
    result = load.stop()
    assert set(result.colours(since=t_gone)) == {before_colour}, result.colours(since=t_gone)
    fig.operator_saw = (
        f"SIGHUP in the bake: the TUI (pid {pid}) cancelled its deploy, switched traffic back "
        f"to {before_colour}, released the lock and exited in {gone_s:.1f} s; history: "
        f"rolled-back ({last['reason']}); nothing to recover"
    )
    fig.recover_s = round(gone_s, 1)
    fig.load(result)
    fig.extra = {"colours": result.colours(), "signal": "SIGHUP", "group_gone_s": round(gone_s, 2)}
    # two reloads: the deploy's switch, the undo's switch back
    result.assert_clean(reloads=2)


# --- 2. killed in a VACUUM ------------------------------------------------------------

TABLE = "reliability_acks"


def _vacuum_sessions(dsn: str) -> list[dict[str, Any]]:
    """Client sessions running a VACUUM (the TUI's is ``VACUUM (ANALYZE)`` of
    every table; autovacuum workers are not client backends)."""
    rows = pg_query(
        dsn,
        "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND query ILIKE 'vacuum%' "
        "AND pid <> pg_backend_pid()",
    )
    return [dict(r) for r in rows]


@pytest.mark.parametrize("sig", KILLS)
async def test_kill_tui_during_vacuum(stack: Stack, sig: signal.Signals) -> None:
    how = signal.Signals(sig).name
    await asyncio.to_thread(_calm, stack)
    with figure(f"kill the TUI ({how}) during VACUUM") as fig:
        # hold the table so the VACUUM is caught in the middle, deterministically
        blocker, tx, before = await hold_table(stack.pg_dsn, TABLE)
        try:
            with tui(stack) as t:
                await asyncio.to_thread(t.wait_dashboard)
                if sig == signal.SIGHUP:
                    assert t.sighup_not_ignored(), SIGHUP_IGNORED
                await asyncio.to_thread(_open_vacuum_confirmation, t)
                await asyncio.to_thread(t.keys, "y")
                await asyncio.to_thread(
                    wait_until,
                    lambda: (
                        any(s["wait_event_type"] == "Lock" for s in _vacuum_sessions(stack.pg_dsn))
                        or not t.alive()
                    ),
                    timeout=180,
                    what="the TUI's VACUUM waiting on our lock on the server",
                )
                assert t.alive(), f"the TUI exited before its VACUUM blocked:\n{t.screen()}"
                pid = t.pid
                t_kill = time.monotonic()
                gone_s = await asyncio.to_thread(
                    _kill, t, sig, 30 if sig == signal.SIGKILL else 120
                )
            if sig == signal.SIGHUP:
                # cancelled by the TUI itself: no session left, lock released
                orphans = await asyncio.to_thread(_vacuum_sessions, stack.pg_dsn)
                assert not orphans, f"the cancelled VACUUM is still on the server: {orphans}"
                status = await asyncio.to_thread(_status, stack)
                assert not status["lock"]["held"] and not status["lock"]["stale"], status["lock"]
                await tx.rollback()
                fig.operator_saw = (
                    f"SIGHUP with the VACUUM waiting on a lock: the TUI (pid {pid}) cancelled it "
                    f"on the server, released the lock and exited in {gone_s:.2f} s"
                )
                fig.recover_s = round(gone_s, 1)
                fig.extra = {"signal": how, "group_gone_s": round(gone_s, 2)}
                return
            # the server must not keep an orphaned VACUUM queued behind the lock
            # (client_connection_check_interval ends it; at the latest after
            # the dead holder's lock is broken): bounded wait, then assert
            orphan_s = None
            with contextlib.suppress(NotReached):
                await asyncio.to_thread(
                    wait_until,
                    lambda: not _vacuum_sessions(stack.pg_dsn),
                    timeout=20,
                    what="the dead TUI's VACUUM gone from the server",
                )
                orphan_s = time.monotonic() - t_kill
            status = await asyncio.to_thread(_status, stack)
            lock = status["lock"]
            assert lock["stale"] is True and lock["holder"]["op"] == "vacuum", lock
            assert lock["alive"] is False and lock["holder"]["pid"] == pid, lock
            refused = await asyncio.to_thread(stackdeck, stack, "vacuum", TABLE)
            said = (refused.stdout + refused.stderr).lower()
            assert refused.returncode == 3 and "stale" in said and "vacuum" in said, said
            assert str(pid) in said, said
            broke = await asyncio.to_thread(stackdeck, stack, "lock", "break")
            assert broke.returncode == 0, broke.stdout + broke.stderr
            with contextlib.suppress(NotReached):
                await asyncio.to_thread(
                    wait_until,
                    lambda: not _vacuum_sessions(stack.pg_dsn),
                    timeout=10,
                    what="no VACUUM session of the dead TUI after `lock break`",
                )
            orphans = await asyncio.to_thread(_vacuum_sessions, stack.pg_dsn)
            await tx.rollback()
        finally:
            await blocker.close()
        assert not orphans, (
            f"{len(orphans)} VACUUM session(s) of the dead TUI still on the server after "
            f"`lock break`: {orphans}"
        )
        t0 = time.monotonic()
        again = await asyncio.to_thread(stackdeck, stack, "vacuum", TABLE, timeout=300)
        recover_s = time.monotonic() - t0
        assert again.returncode == 0, again.stdout[-1500:] + again.stderr[-500:]
        after = await asyncio.to_thread(last_vacuum, stack.pg_dsn, TABLE)
        assert after is not None and (before is None or after > before)
        st2 = await asyncio.to_thread(_status, stack)
        assert not st2["lock"]["held"] and not st2["lock"]["stale"], st2["lock"]
        fig.operator_saw = (
            f"TUI {how}ed with its VACUUM waiting on a lock (group gone in {gone_s:.2f} s); "
            f"status: stale lock (vacuum, pid {pid} gone); new vacuum refused exit 3; "
            + (
                f"orphaned server-side VACUUM gone {orphan_s:.1f} s after the kill"
                if orphan_s is not None
                else "orphaned server-side VACUUM still there 20 s after the kill"
            )
            + "; lock break, next VACUUM ok"
        )
        fig.recover_s = round(recover_s, 1)
        fig.extra = {
            "signal": how,
            "group_gone_s": round(gone_s, 2),
            "orphan_gone_s": None if orphan_s is None else round(orphan_s, 1),
        }


# --- 3. SSH disconnect with a confirmation dialog open ---------------------------------


@pytest.mark.parametrize("dialog", ["deploy", "vacuum"])
def test_sighup_with_confirmation_open_runs_nothing(stack: Stack, dialog: str) -> None:
    if dialog == "deploy":
        _ensure_version_image(stack, VERSION)
    _calm(stack)
    with figure(f"SIGHUP to the TUI's session with the {dialog} confirmation open") as fig:
        before = fingerprint(stack)
        history0 = _history(stack)
        audit0 = audit_lines(stack)
        with tui(stack) as t:
            t.wait_dashboard()
            assert t.sighup_not_ignored(), SIGHUP_IGNORED
            if dialog == "deploy":
                _open_deploy_confirmation(t, VERSION)
            else:
                _open_vacuum_confirmation(t)
            # the dialog stays open while the TUI's event loop runs on (its
            # clock ticks 3 s): an operation started before "y" would have
            # taken the lock and written its audit line by then
            t.wait_ticks(3)
            last_screen = t.screen()
            pid = t.pid
            # bounded: the whole process group has exited (nothing can start after that)
            gone_s = _kill(t, signal.SIGHUP)
        after = fingerprint(stack)
        assert after == before, {
            k: (before[k], after[k]) for k in before if before[k] != after.get(k)
        }
        new_history = _history(stack)[len(history0) :]
        assert not new_history, f"history grew though nothing was confirmed: {new_history}"
        new_audit = audit_lines(stack)[len(audit0) :]
        assert not new_audit, f"audit log grew though nothing was confirmed: {new_audit}"
        vac = pg_query(
            stack.pg_dsn,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND query ILIKE 'vacuum%' AND pid <> pg_backend_pid()",
        )[0]["n"]
        assert vac == 0, f"{vac} VACUUM session(s) on the server though nothing was confirmed"
        assert "no operations yet" in last_screen, last_screen
        fig.operator_saw = (
            f"{dialog} confirmation open, SIGHUP: TUI (pid {pid}) and its group gone in "
            f"{gone_s:.2f} s; no lock, no history or audit line, containers and active.conf unchanged"
        )
        fig.extra = {"dialog": dialog, "group_gone_s": round(gone_s, 2)}


# --- 4. the terminal itself gone (an SSH drop closes the pty) -----------------------


def test_the_tui_exits_when_its_terminal_closes(stack: Stack) -> None:
    """The tmux server killed: the pty's other side closes and the kernel sends
    SIGHUP, as when an SSH session drops. A write to the closed terminal used
    to end Textual's writer thread, after which the console blocked for ever
    on its full queue (the signal tests above keep the pane, so they never saw
    it): the whole group must be gone, bounded."""
    with figure("the TUI's terminal closed (tmux server killed)") as fig:
        with tui(stack) as t:
            t.wait_dashboard()
            assert t.sighup_not_ignored(), SIGHUP_IGNORED
            t.wait_ticks(2)
            pid = t.pid
            t0 = time.monotonic()
            t._tmux("kill-server", check=False)
            wait_until(
                lambda: not t.group_alive(),
                timeout=30,
                interval=0.1,
                what="the TUI's process group gone after its terminal closed",
            )
            gone_s = time.monotonic() - t0
        fig.operator_saw = f"terminal closed: TUI (pid {pid}) and its group gone in {gone_s:.2f} s"
        fig.extra = {"group_gone_s": round(gone_s, 2)}
