"""The write side of stackdeck: deploy, rollback, backup, maintenance.

- :mod:`console.core.ops.table`: the table of operations and their typed
  parameters (light: the TUI and ``--help`` read it);
- :mod:`console.core.ops.engine`: :func:`run_op`, the one way to run one
  (read-only mode, validation, the deploy lock, the audit log);
- one module per operation (``deploy``, ``rollback``, ``vacuum`` ...).

The names below are loaded on first use, so importing the table does not
import the engine and its client libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.core.ops.context import OpContext, Operator
    from console.core.ops.engine import IMPLEMENTATIONS, result_code, run_op
    from console.core.ops.errors import BadInput, LockBusy, OpError, OpFailed, ReadOnly, exit_code
    from console.core.ops.table import OPERATIONS, OpParams, OpSpec

__all__ = [
    "IMPLEMENTATIONS",
    "OPERATIONS",
    "BadInput",
    "LockBusy",
    "OpContext",
    "OpError",
    "OpFailed",
    "OpParams",
    "OpSpec",
    "Operator",
    "ReadOnly",
    "exit_code",
    "result_code",
    "run_op",
]

_FROM = {
    "IMPLEMENTATIONS": "engine",
    "run_op": "engine",
    "result_code": "engine",
    "OPERATIONS": "table",
    "OpParams": "table",
    "OpSpec": "table",
    "OpContext": "context",
    "Operator": "context",
    "BadInput": "errors",
    "LockBusy": "errors",
    "OpError": "errors",
    "OpFailed": "errors",
    "ReadOnly": "errors",
    "exit_code": "errors",
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
