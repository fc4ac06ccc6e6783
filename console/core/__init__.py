"""The console's core: everything that is not UI, usable without a terminal.

- :mod:`console.core.config`: :class:`~console.core.config.Settings`.
- :mod:`console.core.models`: the snapshots that cross to the UI and the CLI.
- :mod:`console.core.monitor`: :class:`~console.core.monitor.Monitor`, which
  runs the :mod:`console.core.sources` and feeds a sink.
- :mod:`console.core.alerts`: the alert rules with ``for`` durations.
- :mod:`console.core.ops`: operations (deploy, rollback, backup, ...).
- :mod:`console.core.errors`: :class:`~console.core.errors.StackdeckError`
  and :func:`~console.core.errors.redact`.

Nothing under this package imports ``textual`` (a test checks it in a
subprocess). Submodules are imported on demand; importing ``console.core``
itself is cheap.
"""
