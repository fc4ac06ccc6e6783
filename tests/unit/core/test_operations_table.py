"""The table of operations holds the design: every operation is reachable
from the CLI and the TUI, has help and an audit name, and its typed
parameters refuse what the command line refuses."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from console.cli import build_parser, params_from_args
from console.core.ops.engine import IMPLEMENTATIONS
from console.core.ops.errors import BadInput
from console.core.ops.table import (
    OPERATIONS,
    DeployParams,
    EmergencyLimitParams,
    OpSpec,
    arg_of,
    literal_choices,
    parse_params,
)
from console.ui.screens.dashboard import DashboardScreen, op_bindings

REQUIRED = {
    "deploy": ["--version", "v1.2.3"],
    "restore": ["20261201T000000Z"],
    "emergency-limit": ["on"],
    "scale": ["worker=1"],
    "restart": ["worker"],
    "silence": ["ContainerHighCPU", "--comment", "load test"],
    "silence-expire": ["0b8d5c3e-6a3f-4a8e-9d0e-2f6f1f0a9b11"],
    "node-drain": ["investment-swarm-node-2"],
    "node-activate": ["investment-swarm-node-2"],
}
"""The least each command needs to parse."""


def _argv(spec: OpSpec, *extra: str) -> list[str]:
    return [*spec.cli, *REQUIRED.get(spec.name, []), *extra]


def _parse(argv: list[str]) -> Any:
    """The parsed arguments, or the exit status argparse refused them with."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return build_parser().parse_args(argv)
        except SystemExit as exc:
            return int(exc.code or 0)


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_operation_has_a_command_help_an_entry_and_an_engine(name: str) -> None:
    spec = OPERATIONS[name]
    args = _parse(_argv(spec))
    assert not isinstance(args, int), f"{spec.cli} does not parse"
    assert args.op == name
    params = parse_params(spec, params_from_args(args, spec.params))
    assert isinstance(params, spec.params)
    assert spec.help and spec.title
    assert name in IMPLEMENTATIONS  # what the audit log names it: the table's name
    # in the TUI: a key, or the palette (which lists every operation of the table)
    keyed = {b.action for b in op_bindings()}
    assert spec.key is None or f"op('{name}')" in keyed


def test_the_dashboard_binds_every_keyed_operation_and_nothing_else() -> None:
    bound = [
        b.action for b in DashboardScreen.BINDINGS if getattr(b, "action", "").startswith("op(")
    ]  # type: ignore[union-attr]
    assert bound == [f"op('{s.name}')" for s in OPERATIONS.values() if s.key is not None]
    keys = [s.key.key for s in OPERATIONS.values() if s.key is not None]
    assert len(keys) == len(set(keys)), "two operations on one key"


def _bad_values(spec: OpSpec) -> list[tuple[str, list[str], dict[str, Any]]]:
    """(field, CLI arguments, model input) for values the CLI's parser refuses."""
    cases = []
    for name, info in spec.params.model_fields.items():
        arg = arg_of(spec.params, name)
        if not arg.cli or arg.positional:
            continue
        flag = arg.flag or "--" + name.replace("_", "-")
        if literal_choices(info.annotation):
            cases.append((name, [flag, "sideways"], {name: "sideways"}))
        elif info.annotation in (float, int) or str(info.annotation) in (
            "float | None",
            "int | None",
        ):
            cases.append((name, [flag, "lots"], {name: "lots"}))
    return cases


CASES = [(spec.name, *case) for spec in OPERATIONS.values() for case in _bad_values(spec)]


@pytest.mark.parametrize(("op", "field", "argv", "raw"), CASES)
def test_the_model_refuses_what_the_command_line_refuses(
    op: str, field: str, argv: list[str], raw: dict[str, Any]
) -> None:
    spec = OPERATIONS[op]
    assert _parse(_argv(spec, *argv)) == 2
    base = params_from_args(_parse(_argv(spec)), spec.params)
    with pytest.raises(BadInput) as refused:
        parse_params(spec, {**base, **raw})
    assert refused.value.field == field
    assert field in str(refused.value)


def test_there_are_cases_for_choices_and_numbers() -> None:
    kinds = {(op, field) for op, field, *_ in CASES}
    assert ("deploy", "strategy") in kinds and ("deploy", "bake_seconds") in kinds
    assert ("verify", "level") in kinds and ("emergency-limit", "ttl") in kinds
    assert len(CASES) >= 9


def test_required_parameters_are_required_in_both() -> None:
    assert _parse(["deploy"]) == 2
    with pytest.raises(BadInput, match="version is required"):
        parse_params(OPERATIONS["deploy"], {})
    assert _parse(["emergency-limit"]) == 2
    with pytest.raises(BadInput, match="state is required"):
        parse_params(OPERATIONS["emergency-limit"], {})


def test_the_models_own_rules_read_as_the_engine_wrote_them() -> None:
    with pytest.raises(BadInput, match="bake_seconds must be between 0 and 3600, not -5"):
        DeployParams(version="v1", bake_seconds=-5)
    with pytest.raises(BadInput, match="malformed version"):
        DeployParams(version="1.2")
    with pytest.raises(BadInput, match="ttl must be between 1 s and 7 days"):
        EmergencyLimitParams(state="on", ttl=0)
    assert EmergencyLimitParams(state="ON").state == "on"
    with pytest.raises(BadInput, match="unknown parameter 'colour'"):
        parse_params(OPERATIONS["rollback"], {"colour": "blue"})


def test_destructive_and_typed_confirmations_follow_the_parameters() -> None:
    emergency = OPERATIONS["emergency-limit"]
    assert emergency.is_destructive(EmergencyLimitParams(state="on"))
    assert not emergency.is_destructive(EmergencyLimitParams(state="off"))
    flush = OPERATIONS["cache-flush"]
    assert parse_params(flush, {"all": True}).typed_confirmation() == "redis"
    assert parse_params(flush, {}).typed_confirmation() is None
    rollback = OPERATIONS["rollback"]
    assert parse_params(rollback, {"restore_db": True}).typed_confirmation() == "database"
    assert not OPERATIONS["deploy"].is_destructive(
        parse_params(OPERATIONS["deploy"], {"version": "v1"})
    )
