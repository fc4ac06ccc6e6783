"""The table of operations: every operation once, with its typed parameters.

This module is the single source for what an operation is called, what it
takes and how it is reached:

- the CLI builds its sub-commands and their arguments from :data:`OPERATIONS`
  (``console.cli``: :func:`add_arguments`, :func:`params_from_args`);
- the TUI builds its key bindings, command palette, help screen and forms from
  it (``console.ui.operations``), and gates keys on :attr:`OpSpec.writes`;
- the engine (``console.core.ops.engine.run_op``) validates the parameters
  with the same model, checks read-only mode and takes the lock by it, and
  the audit log names the operation by :attr:`OpSpec.name`.

Each operation's parameters are a pydantic model (:class:`OpParams`): the
static rules (types, choices, ranges, patterns) live on the model, so the
CLI, a TUI form and a direct ``run_op`` call refuse the same input with the
same sentence; what needs the stack (an image that exists, a table that
exists, a typed confirmation matching the container's name) is checked by
the operation's own ``validate`` in the engine.

It imports no client library (no docker, httpx, asyncpg, redis), so the TUI
and ``stackdeck --help`` read it without paying for the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from console.core.ops.errors import BadInput
from console.core.ops.versions import validate_version
from platform_services.providers import keys

__all__ = [
    "OPERATIONS",
    "Arg",
    "BackupParams",
    "CacheFlushParams",
    "CacheWarmParams",
    "DeployParams",
    "EmergencyLimitParams",
    "Key",
    "MigrateParams",
    "NoParams",
    "NodeParams",
    "OpParams",
    "OpSpec",
    "RestartParams",
    "RestoreParams",
    "RollbackParams",
    "ScaleParams",
    "SilenceExpireParams",
    "SilenceParams",
    "SinceDeployParams",
    "VacuumParams",
    "VerifyParams",
    "arg_of",
    "parse_params",
]


# --- how a field appears on the command line ---------------------------------


@dataclass(frozen=True)
class Arg:
    """CLI metadata of one parameter (``Annotated[..., Arg(...)]``).

    Without it a field is ``--field-name`` (``store_true`` for a bool), with
    its choices from a ``Literal`` and its help from the field's description.
    """

    flag: str | None = None
    """The option (default ``--field-name``); ignored when ``positional``."""
    positional: bool = False
    nargs: str | None = None
    metavar: str | None = None
    negate: bool = False
    """A ``True``-by-default bool given as ``--no-...`` (``store_false``)."""
    cli: bool = True
    """False: an internal parameter the CLI does not offer."""
    form: bool = True
    """False: the TUI's form does not ask for it (a typed confirmation fills
    ``confirm``; ``force`` skips a prompt the TUI always shows)."""
    required: bool | None = None
    """Required on the command line even where the model has a default (the
    TUI may give the value another way)."""


def arg_of(model: type[BaseModel], name: str) -> Arg:
    """The :class:`Arg` of field ``name`` (the default one when none is declared)."""
    info = model.model_fields[name]
    for meta in info.metadata:
        if isinstance(meta, Arg):
            return meta
    return Arg()


def literal_choices(annotation: Any) -> tuple[str, ...] | None:
    """The choices of a ``Literal[...]`` (or ``Literal[...] | None``) annotation."""
    if get_origin(annotation) is Literal:
        return tuple(str(a) for a in get_args(annotation))
    for part in get_args(annotation):
        if get_origin(part) is Literal:
            return tuple(str(a) for a in get_args(part))
    return None


# --- the parameter models ------------------------------------------------------


TypedTarget = Literal["database", "redis"]
"""Whose name a typed confirmation asks for."""


class OpParams(BaseModel):
    """Base of every operation's parameters: immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def destructive(self) -> bool:
        """Whether the TUI styles the confirmation as dangerous (focus on Cancel).
        The operation's default (:attr:`OpSpec.destructive`) unless these
        parameters make it more or less so."""
        return False

    def typed_confirmation(self) -> TypedTarget | None:
        """What these parameters need typed to confirm: the database's name,
        the Redis container's name, or nothing. The operation's validation
        checks the ``confirm`` field against it."""
        return None


class NoParams(OpParams):
    """An operation without parameters."""


def _number_field(name: str, value: float | None, lo: float, hi: float) -> float | None:
    if value is not None and not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo:g} and {hi:g}, not {value:g}", field=name)
    return value


class DeployParams(OpParams):
    version: Annotated[str, Arg(), Field(description="image tag, e.g. v1.2.3")]
    strategy: Literal["blue-green", "rolling"] = "blue-green"
    environment: Annotated[
        str, Field(description="the runbook's flag; this host runs production")
    ] = "production"
    services: Annotated[
        str | list[str] | None,
        Field(
            description='backend, worker, frontend: e.g. "backend worker" (default), the '
            'runbook\'s "backend frontend" (one switch for / and /api/), "frontend"'
        ),
    ] = None
    build: Annotated[
        bool, Field(description="build the image from this checkout if it does not exist")
    ] = False
    force: Annotated[bool, Field(description="redeploy even if that version already serves")] = (
        False
    )
    backup: Annotated[
        Literal["auto", "always", "never"],
        Field(description="database backup before migrating (auto: when migrations are pending)"),
    ] = "auto"
    bake_seconds: Annotated[
        float | None, Field(description="verification window through nginx (default 30)")
    ] = None
    max_p95_ms: Annotated[
        float | None, Field(description="bake: p95 latency threshold (default 2000)")
    ] = None
    max_error_rate: Annotated[
        float | None, Field(description="bake: error rate threshold, 0..1 (default 0.01)")
    ] = None
    health_timeout: Annotated[
        float | None, Field(description="seconds a new colour may take to become healthy")
    ] = None

    _RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "bake_seconds": (0, 3600),
        "max_p95_ms": (0.001, 600_000),
        "max_error_rate": (0, 1),
        "health_timeout": (1, 3600),
    }

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str:
        return validate_version(value)

    @field_validator("bake_seconds", "max_p95_ms", "max_error_rate", "health_timeout")
    @classmethod
    def _ranges(cls, value: float | None, info: Any) -> float | None:
        lo, hi = cls._RANGES[info.field_name]
        return _number_field(info.field_name, value, lo, hi)


class RollbackParams(OpParams):
    version: Annotated[
        str | None,
        Field(description="roll back to this version (default: the previous colour)"),
    ] = None
    services: Annotated[
        str | list[str] | None,
        Field(
            description='backend, frontend: what moves back, e.g. "frontend" (the page alone) or '
            '"backend frontend" (default: the services of the last deploy)'
        ),
    ] = None
    restore_db: Annotated[bool, Field(description="also restore the database")] = False
    backup_path: Annotated[
        str | None,
        Field(description="backup to restore (default: the one taken before the deploy)"),
    ] = None
    confirm: Annotated[
        str | None,
        Arg(metavar="DBNAME", form=False),
        Field(description="the database name, typed, to confirm --restore-db"),
    ] = None
    force: Annotated[bool, Arg(form=False), Field(description="skip the confirmation prompt")] = (
        False
    )
    reason: Annotated[
        str | None,
        Field(description="why (told to the team with the rollback, kept in the audit log)"),
    ] = None
    verify_seconds: Annotated[float, Arg(cli=False)] = 3.0

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str | None:
        return None if value in (None, "") else validate_version(value)

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: object) -> str | None:
        text = " ".join(str(value).split()) if value is not None else ""
        if len(text) > 300:
            raise BadInput("reason must be at most 300 characters", field="reason")
        return text or None

    def destructive(self) -> bool:
        return True

    def typed_confirmation(self) -> TypedTarget | None:
        return "database" if self.restore_db else None


class BackupParams(OpParams):
    reason: str = "manual"


class RestoreParams(OpParams):
    path: Annotated[
        str, Arg(positional=True), Field(description="backup id or path inside the backup folder")
    ]
    confirm: Annotated[
        str | None,
        Arg(metavar="DBNAME", form=False),
        Field(description="the database name, typed, to confirm"),
    ] = None

    def destructive(self) -> bool:
        return True

    def typed_confirmation(self) -> TypedTarget | None:
        return "database"


class MigrateParams(OpParams):
    backup: Annotated[bool, Arg(flag="--no-backup", negate=True)] = True


TABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
"""A table, optionally schema-qualified (PostgreSQL's 63-byte names)."""


class VacuumParams(OpParams):
    tables: Annotated[list[str], Arg(positional=True, nargs="*")] = []
    long_tx_seconds: Annotated[
        float, Field(description="warn about transactions older than this")
    ] = 300.0

    @field_validator("tables", mode="before")
    @classmethod
    def _tables(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [t for t in re.split(r"[\s,]+", value) if t]
        tables = [str(t) for t in value] if isinstance(value, list | tuple) else [str(value)]
        for t in tables:
            if not TABLE_NAME_RE.fullmatch(t):
                shown = t.encode("unicode_escape").decode("ascii")[:80]
                raise BadInput(f"not a table name: '{shown}'", field="tables")
        return tables


CACHE_PREFIX = keys.CACHE_PREFIX


class CacheFlushParams(OpParams):
    prefix: str = CACHE_PREFIX
    dry_run: Annotated[bool, Field(description="only count")] = False
    all: Annotated[bool, Field(description="FLUSHDB (needs --confirm <redis container>)")] = False
    confirm: Annotated[str | None, Arg(form=False)] = None

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> str:
        # An explicit empty prefix would mean "everything": refused, never defaulted.
        prefix = CACHE_PREFIX if value is None else value
        if not isinstance(prefix, str) or any(ord(c) < 32 or c in "*?[]\\" for c in prefix):
            raise BadInput(
                "prefix must be plain text without control or glob characters", field="prefix"
            )
        if not prefix.startswith(CACHE_PREFIX):
            raise BadInput(
                f"prefix {prefix!r} is outside the cache ({CACHE_PREFIX!r}): a flush by prefix only deletes "
                "cache keys, never quota counters or statistics",
                field="prefix",
            )
        return prefix

    def typed_confirmation(self) -> TypedTarget | None:
        return "redis" if self.all else None


class CacheWarmParams(OpParams):
    symbols: Annotated[
        str | list[str] | None, Field(description="comma-separated (default: WATCHLIST)")
    ] = None


class EmergencyLimitParams(OpParams):
    state: Annotated[str, Arg(positional=True), Field(description="on or off")]
    ttl: Annotated[int, Field(description="seconds (default 3600, as in the runbook)")] = 3600

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: object) -> str:
        state = str(value if value is not None else "").lower()
        if state not in ("on", "off"):
            raise BadInput(f"emergency-limit takes on or off, not {value!r}", field="state")
        return state

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> int:
        try:
            ttl = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise BadInput(f"ttl must be whole seconds, not {value!r}", field="ttl") from None
        if not 1 <= ttl <= 7 * 86400:
            raise BadInput(f"ttl must be between 1 s and 7 days, not {ttl}", field="ttl")
        return ttl

    def destructive(self) -> bool:
        # turning it on stops every outbound provider call
        return self.state == "on"


class ScaleParams(OpParams):
    spec: Annotated[
        str | None,
        Arg(positional=True, required=True),
        Field(description="SERVICE=N, e.g. worker=0 or backend=3"),
    ] = None
    service: Annotated[str | None, Arg(cli=False)] = None
    count: Annotated[int | str | None, Arg(cli=False)] = None


NODE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A swarm node's hostname or id."""


class NodeParams(OpParams):
    node: Annotated[
        str,
        Arg(positional=True, metavar="NODE"),
        Field(description="the node's hostname (or id), as the Containers panel lists it"),
    ]
    force: Annotated[bool, Arg(form=False), Field(description="skip the confirmation prompt")] = (
        False
    )

    @field_validator("node", mode="before")
    @classmethod
    def _node(cls, value: object) -> str:
        text = str(value if value is not None else "").strip()
        if text.startswith("node:"):
            text = text.removeprefix("node:")  # a row key of the Containers panel
        if not NODE_NAME_RE.fullmatch(text):
            raise BadInput(
                f"not a node name: '{_shown(text)}' (stackdeck status or the Containers panel list them)",
                field="node",
            )
        return text


class RestartParams(OpParams):
    service: Annotated[str, Arg(positional=True)]

    def destructive(self) -> bool:
        return True


class VerifyParams(OpParams):
    level: Literal["smoke", "full"] = "full"
    expect_version: str | None = None


class SinceDeployParams(OpParams):
    window: Annotated[
        int, Field(description="longest window compared on each side, seconds (default 3600)")
    ] = 3600
    min_ratio: Annotated[
        float, Field(description="a statement is slower from this ratio of means on (default 1.5)")
    ] = 1.5
    min_calls: Annotated[
        int, Field(description="calls a statement needs on each side to be compared (default 3)")
    ] = 3

    _RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "window": (60, 7 * 86400),
        "min_ratio": (1.0, 1000.0),
        "min_calls": (1, 1_000_000),
    }

    @field_validator("window", "min_ratio", "min_calls")
    @classmethod
    def _ranges(cls, value: float, info: Any) -> float:
        lo, hi = cls._RANGES[info.field_name]
        _number_field(info.field_name, value, lo, hi)
        return value


ALERTNAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:]{0,127}$")
"""An alert rule's name (a Prometheus metric-style name)."""
LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""A Prometheus label name."""
SILENCE_MIN_S = 60.0
SILENCE_MAX_S = 7 * 86400.0
SILENCE_ID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
"""Alertmanager's silence ids (UUIDs)."""


def _shown(value: object, limit: int = 60) -> str:
    return str(value).encode("unicode_escape").decode("ascii")[:limit]


def _plain_text(value: str) -> bool:
    return not any(ord(c) < 32 or ord(c) == 127 for c in value)


class SilenceParams(OpParams):
    alertname: Annotated[
        str,
        Arg(positional=True),
        Field(description="the alert to silence, a rule's name (e.g. ContainerHighCPU)"),
    ]
    matchers: Annotated[
        list[str],
        Arg(positional=True, nargs="*", metavar="LABEL=VALUE"),
        Field(description="labels the alerts must also have, e.g. service=cpu_burn colour=green"),
    ] = []
    duration: Annotated[str, Field(description="how long, 1m .. 7d (e.g. 30m, 2h)")] = "2h"
    comment: Annotated[str, Field(description="why (required; Alertmanager and the team need it)")]

    @field_validator("alertname", mode="before")
    @classmethod
    def _alertname(cls, value: object) -> str:
        name = str(value if value is not None else "").strip()
        if not ALERTNAME_RE.fullmatch(name):
            raise BadInput(
                f"not an alert name: '{_shown(name)}' (a rule's name, e.g. ContainerHighCPU)",
                field="alertname",
            )
        return name

    @field_validator("matchers", mode="before")
    @classmethod
    def _matchers(cls, value: object) -> list[str]:
        if value is None or value == "":
            return []
        if isinstance(value, dict):
            items = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, str):
            items = [m for m in re.split(r"[\s,]+", value) if m]
        elif isinstance(value, list | tuple):
            items = [str(m).strip() for m in value if str(m).strip()]
        else:
            raise BadInput("matchers are LABEL=VALUE pairs", field="matchers")
        seen: dict[str, str] = {}
        for item in items:
            label, eq, val = item.partition("=")
            label, val = label.strip(), val.strip()
            if not eq or not LABEL_NAME_RE.fullmatch(label) or not val:
                raise BadInput(
                    f"not a LABEL=VALUE matcher: '{_shown(item)}' (e.g. service=cpu_burn)",
                    field="matchers",
                )
            if label == "alertname":
                raise BadInput(
                    "the alert name is given on its own, not as a matcher", field="matchers"
                )
            if label in seen:
                raise BadInput(f"label {label} is given twice", field="matchers")
            if not _plain_text(val) or len(val) > 200:
                raise BadInput(
                    f"the value of {label} must be plain text of at most 200 characters",
                    field="matchers",
                )
            seen[label] = val
        return [f"{k}={v}" for k, v in sorted(seen.items())]

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> str:
        from console.core.config import parse_duration

        text = str(value if value is not None else "").strip()
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise BadInput(
                f"duration must be like 30m, 2h or 1d, not '{_shown(text)}'", field="duration"
            ) from None
        if not SILENCE_MIN_S <= seconds <= SILENCE_MAX_S:
            raise BadInput(
                f"duration must be between 1 minute and 7 days, not {text}", field="duration"
            )
        return text

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, value: object) -> str:
        text = str(value if value is not None else "").strip()
        if not text:
            raise BadInput(
                "comment is required: say why (Alertmanager keeps it with the silence)",
                field="comment",
            )
        if not _plain_text(text) or len(text) > 500:
            raise BadInput(
                "comment must be one line of plain text, at most 500 characters", field="comment"
            )
        return text

    @property
    def seconds(self) -> float:
        from console.core.config import parse_duration

        return parse_duration(self.duration)

    def labels(self) -> dict[str, str]:
        """Every label the silenced alerts must have, the alert's name included."""
        out = {"alertname": self.alertname}
        for matcher in self.matchers:
            label, _, value = matcher.partition("=")
            out[label] = value
        return out


class SilenceExpireParams(OpParams):
    silence_id: Annotated[
        str, Arg(positional=True, metavar="ID"), Field(description="the silence's id")
    ]

    @field_validator("silence_id", mode="before")
    @classmethod
    def _id(cls, value: object) -> str:
        text = str(value if value is not None else "").strip()
        if not SILENCE_ID_RE.fullmatch(text):
            raise BadInput(
                f"not a silence id: '{_shown(text)}' (stackdeck silence list shows them)",
                field="silence_id",
            )
        return text.lower()


def _describe_error(error: Any) -> tuple[str, str]:
    """(field, sentence) for one pydantic error."""
    loc = error.get("loc") or ()
    name = str(loc[0]) if loc else "parameters"
    value = error.get("input")
    kind = error.get("type", "")
    if kind == "missing":
        return name, f"{name} is required"
    if kind == "extra_forbidden":
        return name, f"unknown parameter {name!r}"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        expected = expected.replace(" or ", ", ")
        return name, f"{name} must be one of {expected}, not {value!r}"
    if kind in ("float_parsing", "float_type"):
        return name, f"{name} must be a number, not {value!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return name, f"{name} must be a whole number, not {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return name, f"{name} must be true or false, not {value!r}"
    return name, f"{name}: {error.get('msg', 'invalid')}"


def parse_params(spec: OpSpec, raw: OpParams | dict[str, Any] | None = None) -> OpParams:
    """``raw`` as the operation's typed parameters, or :class:`BadInput` naming
    the first field that is wrong (nothing is changed before this passes)."""
    if isinstance(raw, spec.params):
        return raw
    if isinstance(raw, OpParams):
        raise BadInput(
            f"{spec.name} takes {spec.params.__name__}, not {type(raw).__name__}", field=None
        )
    try:
        return spec.params.model_validate(dict(raw or {}))
    except ValidationError as exc:
        name, sentence = _describe_error(exc.errors()[0])
        raise BadInput(sentence, field=name) from None


# --- the operations ----------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """The TUI key binding of an operation."""

    key: str
    """Textual key name (``d``, ``question_mark``)."""
    id: str
    """The binding's id (stable; what a keymap file refers to)."""
    label: str
    """The footer's word."""
    tooltip: str
    hint: str = ""
    """The words after the key in the Operations panel's hint (default: the label)."""

    @property
    def words(self) -> str:
        return self.hint or self.label.lower()


@dataclass(frozen=True)
class OpSpec:
    """One operation: its name, words, parameters and rules."""

    name: str
    """The engine's and the audit log's name (``cache-flush``)."""
    title: str
    """What the Operations panel, the palette and ``begin`` events call it."""
    help: str
    """One line: the CLI's help, the palette's description, the help screen's."""
    params: type[OpParams]
    writes: bool
    """Changes the stack: refused in read-only mode, takes the deploy lock,
    confirmed in the TUI, greyed while another operation runs."""
    cli: tuple[str, ...]
    """The CLI command that runs it (``("cache", "flush")``)."""
    destructive: bool = False
    """The TUI's confirmation is styled as dangerous (parameters may refine
    it: :meth:`OpParams.destructive`)."""
    key: Key | None = None
    """Its key on the dashboard; without one it is in the command palette only."""
    locks: bool | None = None
    """Takes the deploy lock (default: ``writes``)."""
    audited: bool = True
    on_swarm: bool = False
    """A writing operation that runs on a swarm stack too (its implementation
    in :mod:`console.core.ops.swarm`); the others act on a compose project
    and are refused on a swarm stack."""
    swarm_only: bool = False
    """Only a swarm stack has it (a node's availability): refused on a compose project."""
    cancellable: bool = False
    """The TUI's cancel key may stop it while it runs (confirmed, audited):
    only operations whose cancel leaves the stack as it was (a VACUUM is
    cancelled on the server); a deploy's undo is for quitting or SIGHUP."""

    @property
    def takes_lock(self) -> bool:
        return self.writes if self.locks is None else self.locks

    def is_destructive(self, params: OpParams) -> bool:
        return self.destructive or params.destructive()


def _spec_list() -> list[OpSpec]:
    return [
        OpSpec(
            "deploy",
            "Deploy",
            "deploy a version (blue-green by default)",
            DeployParams,
            writes=True,
            cli=("deploy",),
            key=Key(
                "d",
                "deploy",
                "Deploy",
                "Deploy a version: form (version, strategy), then confirmation",
            ),
            on_swarm=True,
        ),
        OpSpec(
            "rollback",
            "Rollback",
            "roll back what the last deploy moved (API, page) to its previous colour, or a version",
            RollbackParams,
            writes=True,
            cli=("rollback",),
            destructive=True,
            key=Key(
                "b", "rollback", "Rollback", "Roll back to the previous version (confirmation)"
            ),
            on_swarm=True,
        ),
        OpSpec(
            "backup",
            "Backup",
            "pg_dump the database into the backup folder",
            BackupParams,
            writes=True,
            cli=("backup",),
        ),
        OpSpec(
            "restore",
            "Restore database",
            "replace the database with a backup",
            RestoreParams,
            writes=True,
            cli=("restore",),
            destructive=True,
        ),
        OpSpec(
            "migrate",
            "Migrate",
            "alembic upgrade head (backup first)",
            MigrateParams,
            writes=True,
            cli=("migrate",),
        ),
        OpSpec(
            "vacuum",
            "VACUUM (ANALYZE)",
            "VACUUM (ANALYZE) tables (default: all)",
            VacuumParams,
            writes=True,
            cli=("vacuum",),
            key=Key("v", "vacuum", "Vacuum", "VACUUM (ANALYZE) the database (confirmation)"),
            cancellable=True,
        ),
        OpSpec(
            "cache-flush",
            "Flush cache",
            "delete cache keys by prefix (quota counters survive)",
            CacheFlushParams,
            writes=True,
            cli=("cache", "flush"),
            key=Key(
                "f",
                "flush_cache",
                "Flush",
                "Flush cache keys; FLUSHDB needs the target's name typed",
                hint="flush cache",
            ),
        ),
        OpSpec(
            "cache-warm",
            "Warm cache",
            "fetch the watchlist into the cache",
            CacheWarmParams,
            writes=True,
            cli=("cache", "warm"),
        ),
        OpSpec(
            "emergency-limit",
            "Emergency rate limit",
            "stop all outbound provider calls (on|off)",
            EmergencyLimitParams,
            writes=True,
            cli=("emergency-limit",),
            key=Key(
                "e",
                "emergency",
                "Emergency",
                "Turn the emergency rate limit on or off (confirmation)",
                hint="emergency limit",
            ),
        ),
        OpSpec(
            "scale",
            "Scale",
            "scale the workers (worker=0..3: one ingests, the others stand by) or the serving backend (backend=1..4)",
            ScaleParams,
            writes=True,
            cli=("scale",),
            destructive=True,
            on_swarm=True,
        ),
        OpSpec(
            "node-drain",
            "Drain node",
            "swarm: move every task off a node (docker node update --availability drain)",
            NodeParams,
            writes=True,
            cli=("node", "drain"),
            destructive=True,
            on_swarm=True,
            swarm_only=True,
        ),
        OpSpec(
            "node-activate",
            "Activate node",
            "swarm: let a drained node take tasks again (--availability active)",
            NodeParams,
            writes=True,
            cli=("node", "activate"),
            on_swarm=True,
            swarm_only=True,
        ),
        OpSpec(
            "restart",
            "Restart service",
            "restart one service",
            RestartParams,
            writes=True,
            cli=("restart",),
            destructive=True,
            key=Key("r", "restart", "Restart", "Restart the selected service (confirmation)"),
        ),
        OpSpec(
            "preflight",
            "Pre-deployment checks",
            "the runbook's pre-deployment checks",
            NoParams,
            writes=False,
            cli=("preflight",),
        ),
        OpSpec(
            "verify",
            "Post-deployment verification",
            "the runbook's post-deployment verification through nginx",
            VerifyParams,
            writes=False,
            cli=("verify",),
        ),
        OpSpec(
            "status",
            "Status",
            "containers, colours, lock, last and interrupted deploys (--json: one object)",
            NoParams,
            writes=False,
            cli=("status",),
            audited=False,
        ),
        OpSpec(
            "since-deploy",
            "Since the deploy",
            "the window before the last deploy against the window after it: endpoints, "
            "services, statements (--json: one object)",
            SinceDeployParams,
            writes=False,
            cli=("since-deploy",),
            audited=False,
        ),
        OpSpec(
            "silence",
            "Silence alert",
            "silence an alert in Alertmanager for a while, with why",
            SilenceParams,
            writes=True,
            cli=("silence", "add"),
            locks=False,
            on_swarm=True,
        ),
        OpSpec(
            "silence-expire",
            "Expire silence",
            "end a silence now",
            SilenceExpireParams,
            writes=True,
            cli=("silence", "expire"),
            locks=False,
            on_swarm=True,
        ),
        OpSpec(
            "silence-list",
            "Silences",
            "active and pending silences, the soonest to end first",
            NoParams,
            writes=False,
            cli=("silence", "list"),
            audited=False,
        ),
        OpSpec(
            "lock-break",
            "Break stale lock",
            "clear a deploy lock left by a dead process",
            NoParams,
            writes=True,
            cli=("lock", "break"),
            destructive=True,
            locks=False,
            on_swarm=True,
        ),
    ]


OPERATIONS: dict[str, OpSpec] = {s.name: s for s in _spec_list()}
"""Every operation by name, in the order the help and the palette list them."""
