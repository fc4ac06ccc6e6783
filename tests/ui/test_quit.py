"""Quitting never waits for a slow call (issue 16, "quit lags under load").

The real ``stackdeck`` TUI (``python -m console``, the same entry point as the
command) runs in a pane of a private tmux server, against a Docker engine
that accepts every request and never answers: a call stuck in a blocking
read, as a call to a daemon busy under load is. Its client would give up
only after ``STACKDECK_REQUEST_TIMEOUT`` (60 s here). The operator presses
``q``: the process must be gone while that call is still unanswered, long
before its timeout. Before the fix it stayed until the call timed out: the
quit waited for the engine's thread pool, and the interpreter joined the
pool's threads at exit.

No stack is needed: PostgreSQL, Redis and nginx point at nothing (they fail
at once), the engine is the silent socket below.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import default_signals

CALL_TIMEOUT_S = 60.0
"""The console's request timeout in this test: how long the blocked call
would last if anyone waited for it."""
EXIT_BOUND_S = 25.0
"""How long after ``q`` the process may take to be gone: well inside the
blocked call's timeout (this only keeps a broken quit from hanging the
suite; how fast a quit is lives in bench/, not here)."""


class SilentEngine:
    """A Docker API on a unix socket: accepts, reads the request, never answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._lock = threading.Lock()
        self._asked: dict[int, float] = {}
        """Connection number -> when its first request bytes came (still open)."""
        self._closed: dict[int, float] = {}
        """Connection number -> when the client closed it (after asking)."""
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, name="silent-engine", daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            n += 1
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._hold, args=(n, conn), daemon=True).start()

    def _hold(self, n: int, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if not data:
                    if n in self._asked:
                        self._closed[n] = time.monotonic()
                        del self._asked[n]
                    return
                self._asked.setdefault(n, time.monotonic())

    def pending(self) -> dict[int, float]:
        """Requests asked and still waiting for an answer (connection still open)."""
        with self._lock:
            return dict(self._asked)

    def closed_by_client(self) -> dict[int, float]:
        with self._lock:
            return dict(self._closed)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for conn in self._conns:
                conn.close()
        self.path.unlink(missing_ok=True)


def poll(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``check`` until it is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (not within {timeout:g} s)")
        time.sleep(0.1)


class Pane:
    """The TUI in a pane of a private tmux server (``-L``: no one else's tmux)."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed (apt-get install tmux): it is the TUI's terminal")
        self.server = f"sdquit-{os.getpid()}"
        self.tmp = tmp

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        ).stdout

    def start(self, env: dict[str, str], *, then: str | None = None) -> None:
        """The console in the pane; with ``then``, a shell runs ``then`` after
        it in the same pane (on the same terminal) instead of the pane ending."""
        console = f"{sys.executable} -m console --stack sdquit --http-port 9"
        cmd = f"{console}; {then}" if then else f"exec {console}"
        subprocess.run(
            [
                *("tmux", "-L", self.server, "-f", "/dev/null", "new-session", "-d"),
                *("-s", "tui", "-x", "120", "-y", "40", "-c", str(self.tmp), "sh", "-c", cmd),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )
        self.tmux("set-option", "-t", "tui", "remain-on-exit", "on")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "tui")

    def flags(self) -> dict[str, str]:
        """What the terminal was left in: tmux's view of the pane's modes."""
        names = ("alternate_on", "cursor_flag", "mouse_any_flag", "mouse_sgr_flag")
        out = self.tmux("display-message", "-p", "-t", "tui", " ".join(f"#{{{n}}}" for n in names))
        return dict(zip(names, out.split(), strict=False))

    def exited(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "tui", "#{pane_dead}").strip() == "1"

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    p = Pane(tmp_path)
    try:
        yield p
    finally:
        p.kill()


def _console_env(tmp_path: Path, engine: SilentEngine) -> dict[str, str]:
    """The console's environment: the silent engine, no stack, no operator's files."""
    nothing = tmp_path / "run"  # no PostgreSQL or Redis socket there: they fail at once
    nothing.mkdir()
    config = tmp_path / "config.toml"  # empty: no operator's file is read
    config.write_text("")
    env = {
        **os.environ,
        "TEXTUAL_ANIMATIONS": "none",
        "DOCKER_HOST": f"unix://{engine.path}",
        "STACKDECK_DOCKER_HOST": f"unix://{engine.path}",
        "STACKDECK_REQUEST_TIMEOUT": str(CALL_TIMEOUT_S),
        "STACKDECK_CONFIG": str(config),
        "STACKDECK_STATE_DIR": str(tmp_path / "state"),
        "RUN_DIR": str(nothing),
        "HOME": str(tmp_path),
    }
    for leak in (
        "STACK_NAME",
        "HTTP_PORT",
        "IMAGE_PREFIX",
        "STACKDECK_PG_DSN",
        "STACKDECK_REDIS_URL",
    ):
        env.pop(leak, None)
    return env


def test_quit_leaves_without_waiting_for_a_call_the_engine_never_answers(
    tmp_path: Path, pane: Pane
) -> None:
    # a short path: a unix socket's path is limited to ~100 bytes
    engine = SilentEngine(tmp_path / "d.sock")
    env = _console_env(tmp_path, engine)
    try:
        pane.start(env)
        poll(
            lambda: "Containers" in pane.screen() or pane.exited(),
            timeout=60,
            what="the TUI did not paint its dashboard",
        )
        assert not pane.exited(), f"the TUI exited at start:\n{pane.screen()}"
        # a source's call is in flight: the engine has its request and holds it
        poll(engine.pending, timeout=60, what="the TUI never asked the engine anything")
        asked = engine.pending()

        pane.tmux("send-keys", "-t", "tui", "q")
        poll(
            pane.exited,
            timeout=EXIT_BOUND_S,
            what=(
                "the TUI is still running after q: it waits for a call the engine never "
                f"answers (that call would end only at its {CALL_TIMEOUT_S:g} s timeout)"
            ),
        )
        # It left while its requests were still unanswered: each connection
        # was closed by the process going away, before its call could time out.
        closed = poll(
            lambda: (c := engine.closed_by_client()).keys() >= asked.keys() and c,
            timeout=10,
            what="the TUI is gone but the engine's connections are still open",
        )
        for n, since in asked.items():
            assert closed[n] < since + CALL_TIMEOUT_S, f"request {n} was waited for"
    finally:
        engine.close()


def test_quit_gives_the_terminal_back_as_it_was(tmp_path: Path, pane: Pane) -> None:
    """After ``q`` the shell gets its terminal back: the main screen, the
    cursor, no mouse reporting, line editing and echo, and exit status 0;
    whichever way the console leaves (at once when nothing is left to
    finish), the terminal is restored before the process ends."""
    engine = SilentEngine(tmp_path / "d.sock")
    after = tmp_path / "after"
    try:
        # the shell after the console, on the same terminal: its exit status,
        # the terminal's line settings, then it waits (the pane stays alive)
        pane.start(
            _console_env(tmp_path, engine),
            then=f"echo $? > {after}.code; stty -a > {after}; exec sleep 120",
        )
        poll(
            lambda: "Containers" in pane.screen() or pane.exited(),
            timeout=60,
            what="the TUI did not paint its dashboard",
        )
        # what the console changed, seen the way the check below sees it
        taken = pane.flags()
        assert taken["alternate_on"] == "1" and taken["mouse_any_flag"] == "1", taken
        assert not after.exists()

        pane.tmux("send-keys", "-t", "tui", "q")
        poll(
            lambda: after.exists() and after.read_text().strip(),
            timeout=EXIT_BOUND_S,
            what="the shell after the console never ran: the console did not leave",
        )
        assert (tmp_path / "after.code").read_text().strip() == "0"
        settings = set(after.read_text().replace(";", " ").split())
        assert {"icanon", "echo", "isig"} <= settings, (
            f"line editing not restored:\n{after.read_text()}"
        )
        assert not {"-icanon", "-echo", "-isig"} & settings
        assert pane.flags() == {
            "alternate_on": "0",
            "cursor_flag": "1",
            "mouse_any_flag": "0",
            "mouse_sgr_flag": "0",
        }
        assert "Traceback" not in pane.screen()
    finally:
        engine.close()
