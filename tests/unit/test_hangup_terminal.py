"""After SIGHUP the console tells a closed terminal (its other side gone: an
SSH drop) from one still open (a SIGHUP sent by hand), and with the
terminal closed no write can block on a writer thread that ended."""

from __future__ import annotations

import os
import threading
from queue import Queue

import pytest

from console.ui.app import _draining, _terminal_closed, _terminal_gone


def test_a_pty_whose_other_side_closed_is_told_from_an_open_one() -> None:
    master, slave = os.openpty()
    try:
        assert not _terminal_closed(slave)
        os.close(master)
        master = -1
        assert _terminal_closed(slave)
    finally:
        os.close(slave)
        if master >= 0:
            os.close(master)


class _DeadWriter(threading.Thread):
    """Textual's writer thread after a write failed: ended, its queue full."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._queue: Queue[str | None] = Queue(3)

    def run(self) -> None:
        return  # ended at once, as after an EIO


def test_writes_after_the_writer_ended_do_not_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "dup2", lambda *a: None)  # the test's own stdout stays
    writer = _DeadWriter()
    writer.start()
    writer.join()
    _terminal_gone(writer)
    assert _draining(writer)
    done = threading.Event()

    def frames() -> None:
        for _ in range(50):  # far more than the queue holds
            writer._queue.put("frame", timeout=5)
        writer._queue.put(None, timeout=5)  # the driver's stop()
        done.set()

    threading.Thread(target=frames, daemon=True).start()
    assert done.wait(10), "a write blocked on the ended writer's queue"
