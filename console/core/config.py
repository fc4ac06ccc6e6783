"""Settings of the console: where the stack is, how to reach it, what to alert on.

Values come from, highest priority first:

1. keyword arguments (``Settings(project="x")``, ``Settings.for_stack(root)``);
2. environment variables with the prefix ``STACKDECK_``, nested with ``__``
   (``STACKDECK_ALERTS__CPU__THRESHOLD=90``, ``STACKDECK_REFRESH__STATS=2``);
3. the TOML file named by ``STACKDECK_CONFIG``, else
   ``~/.config/stackdeck/config.toml`` (missing file: skipped);
4. the bundled stack's own variables: ``STACK_NAME``, ``HTTP_PORT``,
   ``RUN_DIR``, ``REDIS_PASSWORD``, ... from the process environment, then from
   the stack's ``.env`` at the repository root (the same variables
   ``scripts/compose.sh`` feeds to compose, so the console follows the stack
   it sits beside);
5. the defaults below (the default ``investment`` stack).

Anything invalid raises :class:`~console.core.errors.ConfigError` naming the
field, the file or variable it came from, and what was expected. Secrets are
:class:`~pydantic.SecretStr` and are registered with
:func:`~console.core.errors.redact` as soon as they are loaded.

Example ``config.toml``::

    project = "investment"
    base_url = "http://127.0.0.1:8080"
    read_only = true

    [alerts.cpu]
    threshold = 90
    for_seconds = "10m"

    [refresh]
    stats = 2
"""

from __future__ import annotations

import contextvars
import io
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv.parser import parse_stream
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from console.core.errors import ConfigError, redact, register_secret
from console.core.stack import DEFAULT_IMAGE_PREFIX, DEFAULT_STACK, StackNames, is_secret_key

__all__ = [
    "AlertRuleSettings",
    "AlertSettings",
    "ConfigError",
    "RefreshSettings",
    "ScheduleEntry",
    "Settings",
    "default_config_path",
    "find_repo_root",
    "parse_duration",
    "read_env_file",
    "redact",
    "swarm_api_socket",
    "swarm_monitoring",
    "swarm_state_dir",
]

ENV_PREFIX = "STACKDECK_"
DEFAULT_PROJECT = DEFAULT_STACK

# --- durations ---------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``"300"``, ``"5m"``, ``"2m30s"``, ``"1.5h"``.

    Raises ``ValueError`` (turned into a :class:`ConfigError` by the settings)
    for anything else, including negative values.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '5m' or '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if text[pos : match.start()].strip():
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(
                    f"expected a duration such as 30, '30s', '5m' or '1h', got {value!r}"
                ) from None
    else:
        raise ValueError(f"expected a duration such as 30, '30s', '5m' or '1h', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; TOML and env accept ``"5m"``-style strings too."""

PositiveDuration = Annotated[Duration, Field(gt=0)]

# --- nested sections ---------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class AlertRuleSettings(_Section):
    """One alert rule: the condition must hold ``for_seconds`` before it fires."""

    threshold: float
    """Fire when the observed value is above this (percent, seconds or USD/day)."""
    for_seconds: Duration
    """How long the condition must hold before pending turns into firing."""
    enabled: bool = True
    """Set to false to never evaluate this rule."""


class CpuRuleSettings(AlertRuleSettings):
    """HighCPUUsage: percent of the CPUs a container may use (or the host total)."""

    threshold: float = 80.0
    """Percent."""
    for_seconds: Duration = 300.0
    """Five minutes, as in the runbook."""


class MemoryRuleSettings(AlertRuleSettings):
    """HighMemoryUsage: memory without page cache against the limit (or host total)."""

    threshold: float = 85.0
    """Percent."""
    for_seconds: Duration = 300.0
    """Five minutes, as in the runbook."""


class LatencyRuleSettings(AlertRuleSettings):
    """HighAPIResponseTime: p95 of ``http_request_duration_seconds``."""

    threshold: float = 2.0
    """Seconds."""
    for_seconds: Duration = 120.0
    """Two minutes, as in the runbook."""


class CostRuleSettings(AlertRuleSettings):
    """CostBudgetExceeded: the daily cost projection."""

    threshold: float = 1.67
    """USD per day ($50 a month)."""
    for_seconds: Duration = 60.0
    """One minute, as in the runbook."""


class AlertSettings(_Section):
    """The runbook's four alert rules (Prometheus ``for`` semantics)."""

    cpu: CpuRuleSettings = CpuRuleSettings()
    """HighCPUUsage: CPU > 80 % for 5 m by default."""
    memory: MemoryRuleSettings = MemoryRuleSettings()
    """HighMemoryUsage: memory > 85 % for 5 m by default."""
    p95: LatencyRuleSettings = LatencyRuleSettings()
    """HighAPIResponseTime: p95 > 2 s for 2 m by default."""
    cost: CostRuleSettings = CostRuleSettings()
    """CostBudgetExceeded: daily projection > $1.67 for 1 m by default."""
    stale_after: Duration = 300.0
    """Drop a pending or firing alert whose input has not been seen for this
    long (its source is down): an alert must not fire on frozen data."""


_CRON_NAMES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset(),
    frozenset(),
    frozenset("jan feb mar apr may jun jul aug sep oct nov dec".split()),
    frozenset("sun mon tue wed thu fri sat".split()),
)


def _check_cron(value: Any) -> str:
    """A five-field cron expression (the host's cron daemon runs it), checked
    with the same parser the console uses for "next run"."""
    from cronsim import CronSim, CronSimError

    text = " ".join(str(value).split())
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError("five cron fields: minute hour day month weekday (e.g. '0 22 * * *')")
    for i, field in enumerate(fields):
        # Debian's cron takes numbers, * , - / and names of months and days;
        # one line it cannot read (L, W, #, ?) silences the stack's whole file
        names = _CRON_NAMES[i]
        words = re.findall(r"[A-Za-z]+", field)
        # (its crontab(5): "ranges or lists of names are not allowed")
        named = bool(words) and field.lower() in names
        if re.search(r"[^0-9*,/-]", field) and not named:
            raise ValueError(
                f"a cron expression Debian's cron reads (numbers, * , - / or, alone in the month "
                f"or weekday field, a name such as jan or mon; not {field!r})"
            )
    try:
        CronSim(text, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"a valid cron expression ({str(exc).lower()})") from None
    return text


CronExpression = Annotated[str, BeforeValidator(_check_cron)]


def _check_scale(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[a-z][a-z0-9_]*=[0-9]{1,3}", text):
        raise ValueError("SERVICE=N as `stackdeck scale` takes it (e.g. 'backend=1')")
    return text


class ScheduleEntry(_Section):
    """One scheduled operation: ``scale`` at the times of ``cron``, run by the
    host's cron daemon (``stackdeck schedule install``) whether or not a
    console is open, with the lock and the audit log of any operation."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    """Its name in the console, the audit log and ``stackdeck schedule run NAME``."""
    cron: CronExpression
    """When: five cron fields in the host's local time (``0 22 * * *``: 22:00 daily)."""
    scale: Annotated[str, BeforeValidator(_check_scale)]
    """What: ``SERVICE=N`` as ``stackdeck scale`` takes it (``backend=1``)."""
    enabled: bool = True
    """False keeps the entry in the file but out of cron."""


class RefreshSettings(_Section):
    """Seconds between two refreshes of each source (the stats stream is
    continuous; ``stats`` is how often a snapshot of it is published)."""

    containers: PositiveDuration = 3.0
    """Container list, health, restarts; engine events also trigger a refresh."""
    stats: PositiveDuration = 1.0
    """Publishing interval of the streamed docker stats."""
    health: PositiveDuration = 5.0
    """Health endpoints through nginx (every path) and each colour's
    ``/api/health``."""
    health_slow: PositiveDuration = 15.0
    """The rest of the health checks, at most this far apart: each colour's
    deep paths and frontend asked directly (nginx asks the serving colour's
    every ``health`` interval) and the /metrics scrape for the p95. Sooner
    when a check of the faster set changed. The default is the health
    panel's staleness at the default interval (3 × 5 s)."""
    database: PositiveDuration = 5.0
    """pg_stat_statements, pg_stat_activity, sizes, dead tuples."""
    quotas: PositiveDuration = 5.0
    """Provider quota ledger in Redis."""
    cost: PositiveDuration = 30.0
    """``/api/metrics/cost`` and ``/api/metrics/cache``."""
    events: PositiveDuration = 5.0
    """Liveness check of the engine event stream (events themselves are pushed)."""


# --- the settings ------------------------------------------------------------

_origins: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "stackdeck_settings_origins", default=None
)
"""Per load: what the TOML file and the stack .env provided, for error messages."""

_STACK_VARS: dict[str, str] = {
    # stack variable -> settings field
    "STACK_NAME": "project",
    "IMAGE_PREFIX": "image_prefix",
    "RUN_DIR": "run_dir",
    "STACKDECK_STATE_DIR": "state_dir",
    "POSTGRES_PASSWORD": "pg_password",
    "REDIS_PASSWORD": "redis_password",
    "ADMIN_TOKEN": "admin_token",
    "MONTHLY_BUDGET": "monthly_budget",
    "NEWSAPI_DAILY_LIMIT": "newsapi_daily_limit",
    "MONITORING_USER": "monitoring_user",
    "MONITORING_PASSWORD": "monitoring_password",
}
"""Variables of the bundled stack (``.env`` and compose.sh's environment) the
console understands. ``HTTP_PORT`` is handled apart: it becomes ``base_url``."""


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$STACKDECK_CONFIG``, else ``$XDG_CONFIG_HOME/stackdeck/config.toml``
    (``~/.config/stackdeck/config.toml``)."""
    env = os.environ if environ is None else environ
    explicit = env.get("STACKDECK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stackdeck" / "config.toml"


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder holding ``compose/docker-compose.yml``, looking up from
    ``start`` (default: the working directory), then from this package's
    checkout. None when stackdeck runs outside the repository."""
    candidates = [Path.cwd() if start is None else Path(start)]
    candidates.append(Path(__file__).resolve().parent)
    for base in candidates:
        for folder in (base, *base.resolve().parents):
            if (folder / "compose" / "docker-compose.yml").is_file():
                return folder
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a compose-style ``.env``: ``KEY=value`` lines, ``#`` comments,
    optional ``export``, single or double quotes (python-dotenv's parser).
    Missing file: empty; a line that is not ``KEY=value``: ConfigError with
    its line number."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror or exc}",
            source=str(path),
            expected="a readable .env file",
        ) from None
    # python-dotenv's parser (compose's rules: ``export``, quotes, escapes,
    # `` #`` comments); wrapped for the line number of a bad line
    for binding in parse_stream(io.StringIO(text)):
        key, value, lineno = binding.key, binding.value, binding.original.line
        if (
            binding.error
            or (key is not None and value is None)
            or (key is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key))
        ):
            raise ConfigError(
                f"{path}:{lineno}: not a KEY=value line",
                source=f"{path}:{lineno}",
                expected="KEY=value",
            )
        if key is not None and value is not None:
            values[key] = value
    return values


class _TomlSource(PydanticBaseSettingsSource):
    """The user's TOML file; a syntax error becomes a ConfigError naming the file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.data: dict[str, Any] = {}
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    self.data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(
                    f"{path} is not valid TOML: {exc}", source=str(path), expected="TOML"
                ) from None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {path}: {exc.strerror or exc}", source=str(path)
                ) from None
        elif os.environ.get("STACKDECK_CONFIG"):
            raise ConfigError(
                f"STACKDECK_CONFIG names {path}, which does not exist",
                field="STACKDECK_CONFIG",
                source="environment variable STACKDECK_CONFIG",
                expected="the path of an existing TOML file",
            )
        origins = _origins.get()
        if origins is not None:
            origins["toml"] = {"path": str(path), "data": self.data}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class SwarmMonitoring:
    """Where a swarm stack's monitoring answers on the host, and its credential."""

    prometheus_url: str | None
    alertmanager_url: str | None
    password: str | None
    """The secret's content; None when it could not be read (``error`` says why)."""
    password_file: Path
    error: str | None = None


def swarm_state_dir(env: Mapping[str, str], stack: str | None = None) -> Path:
    """The state folder scripts/swarm.sh keeps a swarm's secrets and engine
    socket in: ``SWARM_STATE_DIR``, else that of ``SWARM_NAME`` (default
    ``<stack>-swarm``). ``env``: the stack's variables; the process's
    ``SWARM_*`` win."""
    env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("SWARM_")}}
    stack = stack or str(env.get("STACK_NAME") or DEFAULT_STACK)
    folder = env.get("SWARM_STATE_DIR") or str(
        StackNames(env.get("SWARM_NAME") or f"{stack}-swarm").state_dir
    )
    return Path(folder)


def swarm_api_socket(env: Mapping[str, str], stack: str | None = None) -> Path:
    """The manager's engine API of the swarm scripts/swarm.sh runs: a unix
    socket in a root-only folder of its state folder (``swarm.sh env``)."""
    return swarm_state_dir(env, stack) / "api" / "docker.sock"


def swarm_monitoring(env: Mapping[str, str], stack: str | None = None) -> SwarmMonitoring:
    """A swarm stack's Prometheus and Alertmanager (scripts/swarm.sh):
    ``127.0.0.1:SWARM_PROMETHEUS_PORT`` (default 9090) and
    ``127.0.0.1:SWARM_ALERTMANAGER_PORT`` (default 9093), their credential the
    secret ``monitoring_password`` in the swarm's state folder
    (``SWARM_STATE_DIR``, else that of ``SWARM_NAME``, default
    ``<stack>-swarm``). ``env``: the stack's variables; the process's
    ``SWARM_*`` win. Used by the settings and by the operations' notices."""
    env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("SWARM_")}}

    def url(var: str, default: str) -> str | None:
        port = env.get(var) or default
        return f"http://127.0.0.1:{port}" if port.isdigit() else None

    path = swarm_state_dir(env, stack) / "secrets" / "monitoring_password"
    password: str | None = None
    error: str | None = None
    try:
        password = path.read_text().strip() or None
        if password is None:
            error = f"{path} is empty"
    except OSError as exc:
        error = f"cannot read {path} ({exc.strerror or exc})"
    return SwarmMonitoring(
        prometheus_url=url("SWARM_PROMETHEUS_PORT", "9090"),
        alertmanager_url=url("SWARM_ALERTMANAGER_PORT", "9093"),
        password=password,
        password_file=path,
        error=error,
    )


def _at_swarm_manager(env: Mapping[str, str], docker_host: object) -> bool:
    """``mode = "auto"`` pointed at the manager of the swarm scripts/swarm.sh
    runs (``DOCKER_HOST=unix://<its state folder>/api/docker.sock``, what
    ``swarm.sh env`` prints; the folder exists): the swarm's monitoring, not
    the compose stack's Prometheus (on one host both answer, and the compose
    one's nodes and containers would be shown as the swarm's)."""
    host = str(docker_host or os.environ.get("DOCKER_HOST") or "")
    if not host.startswith("unix://"):
        return False
    socket = swarm_api_socket(env)
    if Path(host.removeprefix("unix://")) != socket:
        return False
    try:
        return socket.parent.parent.is_dir()
    except OSError:  # a folder this user may not enter (root's state)
        return False


def _swarm_monitoring(
    merged: Mapping[str, str], out: dict[str, Any], provided: dict[str, str]
) -> None:
    """The swarm's monitoring (:func:`swarm_monitoring`) into the settings,
    the password when this user can read it. STACKDECK_* settings still win
    (an earlier source)."""
    found = swarm_monitoring(merged)
    if found.prometheus_url:
        out["prometheus_url"] = found.prometheus_url
        provided["prometheus_url"] = "SWARM_PROMETHEUS_PORT (swarm mode)"
    if found.alertmanager_url:
        out["alertmanager_url"] = found.alertmanager_url
        provided["alertmanager_url"] = "SWARM_ALERTMANAGER_PORT (swarm mode)"
    if found.password:
        out["monitoring_password"] = found.password
        provided["monitoring_password"] = str(found.password_file)


class _StackEnvSource(PydanticBaseSettingsSource):
    """The bundled stack's variables: process environment over ``<repo>/.env``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        state = self.current_state
        root_value = state.get("repo_root")
        root = Path(root_value).expanduser() if root_value else find_repo_root()
        env_path = root / ".env" if root else None
        file_values = read_env_file(env_path) if env_path else {}
        merged = {
            **file_values,
            **{k: v for k, v in os.environ.items() if k in _STACK_VARS or k == "HTTP_PORT"},
        }
        out: dict[str, Any] = {}
        provided: dict[str, str] = {}
        for var, field_name in _STACK_VARS.items():
            if var in merged and merged[var] != "":
                out[field_name] = merged[var]
                where = "environment" if var in os.environ else str(env_path)
                provided[field_name] = f"{var} in {where}"
        port = merged.get("HTTP_PORT")
        if port:
            out["base_url"] = f"http://127.0.0.1:{port}"
            where = "environment" if "HTTP_PORT" in os.environ else str(env_path)
            provided["base_url"] = f"HTTP_PORT in {where}"
        if (port and str(port).isdigit()) or merged.get("PROMETHEUS_PORT"):
            from console.core.stack import monitoring_ports

            env_ports = {**merged, **{k: v for k, v in os.environ.items() if k.endswith("_PORT")}}
            ports = monitoring_ports(env_ports, int(str(port)) if str(port).isdigit() else 80)
            out["prometheus_url"] = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
            out["alertmanager_url"] = f"http://127.0.0.1:{ports['ALERTMANAGER_PORT']}"
            provided["prometheus_url"] = f"PROMETHEUS_PORT/HTTP_PORT in {env_path}"
            provided["alertmanager_url"] = f"ALERTMANAGER_PORT/HTTP_PORT in {env_path}"
        if state.get("mode") == "swarm" or (
            state.get("mode", "auto") == "auto"
            and _at_swarm_manager(merged, state.get("docker_host"))
        ):
            _swarm_monitoring(merged, out, provided)
        if root and "repo_root" not in state:
            out["repo_root"] = str(root)
        origins = _origins.get()
        if origins is not None:
            origins["stack"] = provided
        return out


_SECRET_FIELDS = (
    "pg_dsn",
    "pg_password",
    "redis_url",
    "redis_password",
    "admin_token",
    "monitoring_password",
)


class Settings(BaseSettings):
    """Everything the console needs to watch and operate one stack."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
        use_attribute_docstrings=True,
    )

    project: str = Field(DEFAULT_PROJECT, min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """Compose project name; also the container-name prefix
    (``<project>_db_prod``). Stack variable: ``STACK_NAME``."""
    image_prefix: str = Field(
        DEFAULT_IMAGE_PREFIX, min_length=1, pattern=r"^[a-z0-9][a-z0-9._/-]*$"
    )
    """The stack's image names: ``<prefix>-backend:<version>``, ``<prefix>-db``,
    ... Stack variable: ``IMAGE_PREFIX``. The test command builds under a
    prefix of its own, so a stack on the same engine keeps its images."""
    repo_root: Path | None = None
    """Repository root of the bundled stack (holds ``compose/``, ``scripts/``
    and ``.env``). Default: found by looking up from the working directory."""
    docker_host: str | None = None
    """Docker engine URL (``unix:///var/run/docker.sock``). Default: the
    ``DOCKER_HOST`` environment variable, else the local socket."""
    mode: Literal["auto", "compose", "swarm"] = "auto"
    """How the stack runs: ``compose`` (a compose project on this engine),
    ``swarm`` (a swarm stack named ``project``, read from a manager's engine),
    or ``auto``: swarm when the engine is a swarm manager with services
    labelled ``com.docker.stack.namespace=<project>``, else compose
    (``STACKDECK_MODE``)."""
    base_url: str = "http://127.0.0.1:80"
    """nginx of the stack, ``http://127.0.0.1:{HTTP_PORT}``; health, metrics
    and cost are read through it."""
    run_dir: Path = StackNames().run_dir
    """Host folder with the stack's unix sockets. Default ``/run/<project>``."""
    state_dir: Path = StackNames().state_dir
    """deploy.env, lock, audit log, history, backups. Default
    ``/var/lib/stackdeck/<project>``."""
    tls_cert_file: Path = StackNames().state_dir / "tls" / "cert.pem"
    """nginx's certificate (PEM), whose expiry preflight checks and the Health
    panel shows. Default ``<state_dir>/tls/cert.pem``, where scripts/tls.sh
    installs ``.env``'s ``TLS_CERT_FILE`` or a self-signed one."""
    pg_dsn: SecretStr = SecretStr(
        "postgresql://postgres@/investment_db?host=/run/investment/postgresql"
    )
    """PostgreSQL DSN. Default: the stack's unix socket
    ``postgresql://postgres@/investment_db?host=<run_dir>/postgresql``."""
    pg_password: SecretStr | None = None
    """Password for the DSN when it has none (stack: ``POSTGRES_PASSWORD``)."""
    redis_url: SecretStr = SecretStr("unix:///run/investment/redis/redis.sock")
    """Redis URL. Default: the stack's socket ``unix://<run_dir>/redis/redis.sock``."""
    redis_password: SecretStr | None = None
    """Redis password when the URL has none (stack: ``REDIS_PASSWORD``)."""
    admin_token: SecretStr | None = None
    """Bearer token for admin API endpoints, when they need one (stack: ``ADMIN_TOKEN``)."""
    prometheus_url: str | None = "http://127.0.0.1:10080"
    """The stack's Prometheus on 127.0.0.1 (stack: ``PROMETHEUS_PORT``, else
    ``HTTP_PORT`` + 10000). None or empty: no history, alerts evaluated locally."""
    alertmanager_url: str | None = "http://127.0.0.1:12080"
    """The stack's Alertmanager (stack: ``ALERTMANAGER_PORT``, else ``HTTP_PORT`` + 12000)."""
    monitoring_user: str = "stackdeck"
    """User of the monitoring UIs' basic auth (stack: ``MONITORING_USER``)."""
    monitoring_password: SecretStr | None = None
    """Password of the monitoring UIs (stack: ``MONITORING_PASSWORD``). Without
    it the console does not ask Prometheus (the history is marked missing)."""
    monthly_budget: float = Field(50.0, gt=0)
    """Monthly budget in USD (stack: ``MONTHLY_BUDGET``)."""
    daily_target: float = Field(1.67, gt=0)
    """Daily cost target in USD; the cost panel compares the projection with it."""
    newsapi_daily_limit: int | None = Field(None, ge=0)
    """NewsAPI's daily quota (stack: ``NEWSAPI_DAILY_LIMIT``; default: the
    platform's, 100). The other providers' limits are fixed by the platform."""
    alerts: AlertSettings = AlertSettings()
    """Alert thresholds and their ``for`` durations."""
    refresh: RefreshSettings = RefreshSettings()
    """Refresh interval of each source, in seconds."""
    request_timeout: PositiveDuration = 5.0
    """Upper bound of one request to any source (HTTP, SQL, Redis, Docker)."""
    backoff_cap: PositiveDuration = 30.0
    """Longest wait between two retries of a failing source."""
    stats_history: int = Field(120, ge=2, le=10_000)
    """Samples kept per container for sparklines and charts."""
    events_max: int = Field(200, ge=1, le=100_000)
    """Engine events kept for the timeline."""
    slow_queries: int = Field(10, ge=1, le=1000)
    """How many statements the slow-query list shows."""
    metrics_path: str = "/metrics"
    """Prometheus endpoint of a backend, scraped per colour via ``/direct/<colour>``."""
    read_only: bool = False
    """When true every operation that changes the stack is refused."""
    schedule: list[ScheduleEntry] = []
    """Scheduled operations (``[[schedule]]`` tables): the runbook's off-peak
    scale-down "automated via cron". ``stackdeck schedule`` lists them."""
    keep_previous_colour: bool = True
    """After a successful blue-green deploy, leave the previous colour running,
    out of nginx's upstream, as the instant rollback target (a rollback then
    only checks its health and switches nginx). False stops it after the bake
    (less memory; a rollback then starts it and waits for its health check)."""

    @model_validator(mode="before")
    @classmethod
    def _derive_defaults(cls, data: Any) -> Any:
        """Fill the per-project defaults (run dir, state dir, DSN, Redis URL)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        project = data.get("project") or DEFAULT_PROJECT
        if not isinstance(project, str):
            return data
        if not data.get("run_dir"):
            data["run_dir"] = str(StackNames(project).run_dir)
        if not data.get("state_dir"):
            data["state_dir"] = str(StackNames(project).state_dir)
        if not data.get("tls_cert_file"):
            data["tls_cert_file"] = str(Path(str(data["state_dir"])) / "tls" / "cert.pem")
        run_dir = str(data["run_dir"])
        if not data.get("pg_dsn"):
            data["pg_dsn"] = f"postgresql://postgres@/investment_db?host={run_dir}/postgresql"
        if not data.get("redis_url"):
            data["redis_url"] = f"unix://{run_dir}/redis/redis.sock"
        return data

    @field_validator("schedule")
    @classmethod
    def _unique_schedule_names(cls, entries: list[ScheduleEntry]) -> list[ScheduleEntry]:
        names = [entry.name for entry in entries]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"entries with different names ({', '.join(twice)} used twice)")
        return entries

    @model_validator(mode="after")
    def _register_secrets(self) -> Settings:
        for name in _SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                register_secret(secret)
                # a password embedded in a URL/DSN
                match = re.search(r"://[^:/@\s]*:([^@\s/]+)@", secret)
                if match:
                    register_secret(match.group(1))
        self.base_url = self.base_url.rstrip("/")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _TomlSource(settings_cls, default_config_path()),
            _StackEnvSource(settings_cls),
        )

    def __init__(self, **values: Any) -> None:
        origins: dict[str, dict[str, Any]] = {"init": dict(values)}
        token = _origins.set(origins)
        try:
            super().__init__(**values)
        except PydanticValidationError as exc:
            raise _config_error(exc, origins) from None
        except SettingsError as exc:
            raise ConfigError(
                f"invalid configuration: {exc}",
                source="environment (STACKDECK_*)",
                expected="valid JSON for a nested setting, or use __ nesting",
            ) from None
        finally:
            _origins.reset(token)

    # --- helpers ---------------------------------------------------------------

    @classmethod
    def for_stack(cls, repo_root: str | os.PathLike[str], **overrides: Any) -> Settings:
        """Settings for the bundled stack at ``repo_root``: its ``.env`` (and the
        stack variables in the environment: ``STACK_NAME``, ``HTTP_PORT``, ...)
        fill project, base URL, sockets, passwords and budget. Keyword
        arguments override everything."""
        return cls(repo_root=Path(repo_root), **overrides)

    @property
    def compose_dir(self) -> Path | None:
        """``<repo_root>/compose``, or None when the repository is unknown."""
        return self.repo_root / "compose" if self.repo_root else None

    @property
    def env_file(self) -> Path | None:
        """The stack's ``.env``, or None when the repository is unknown."""
        return self.repo_root / ".env" if self.repo_root else None

    def container_name(self, service: str) -> str:
        """Container name of a compose service in this stack
        (``backend_blue`` -> ``investment_backend_blue_prod``; ``redis`` is ``cache``)."""
        return StackNames(self.project).container(service)

    def secret_values(self) -> list[str]:
        """Every secret value held (for :func:`redact` callers that need them)."""
        out = []
        for name in _SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        # The stack's own secrets (.env): JWT secret, admin token, passwords, keys.
        # They can surface in container logs or echoed input, never on screen.
        if self.env_file is not None:
            try:
                env = read_env_file(self.env_file)
            except ConfigError:
                env = {}
            out.extend(v for k, v in env.items() if v and len(v) >= 8 and is_secret_key(k))
        return out

    def redact(self, text: object) -> str:
        """:func:`~console.core.errors.redact` with this configuration's secrets."""
        return redact(text, self.secret_values())


# --- error mapping ---------------------------------------------------------------


def _describe_expected(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    table = {
        "float_parsing": "a number",
        "float_type": "a number",
        "int_parsing": "a whole number",
        "int_type": "a whole number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a string",
        "path_type": "a path",
        "extra_forbidden": "no such setting (check the spelling)",
        "missing": "a value",
        "dict_type": "a table/section",
        "model_type": "a table/section",
    }
    if kind in table:
        return table[kind]
    if kind == "greater_than":
        return f"a number greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"a number of at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"a number of at most {ctx.get('le')}"
    if kind == "string_pattern_mismatch":
        return f"a string matching {ctx.get('pattern')}"
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "value_error":
        # Validators phrase their own message ("expected X, got Y"): keep one "expected".
        return str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("expected ")
    return str(err.get("msg", "a valid value"))


def _lookup(data: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    cur: Any = data
    for part in loc:
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return False
    return True


def _origin(loc: tuple[Any, ...], origins: Mapping[str, Mapping[str, Any]]) -> str:
    """Where the value at ``loc`` came from, in words."""
    if not loc:
        return "settings"
    top = str(loc[0])
    if _lookup(origins.get("init", {}), loc) or top in origins.get("init", {}):
        return "argument"
    env_name = ENV_PREFIX + "__".join(str(p).upper() for p in loc)
    upper_env = {k.upper() for k in os.environ}
    if env_name in upper_env:
        return f"environment variable {env_name}"
    top_env = ENV_PREFIX + top.upper()
    if top_env in upper_env:
        return f"environment variable {top_env}"
    if any(k.startswith(top_env + "__") for k in upper_env):
        return f"environment variables {top_env}__*"
    toml = origins.get("toml") or {}
    if toml and (_lookup(toml.get("data", {}), loc) or top in toml.get("data", {})):
        return str(toml.get("path"))
    stack = origins.get("stack") or {}
    if top in stack:
        return str(stack[top])
    return "default"


def _config_error(
    exc: PydanticValidationError, origins: Mapping[str, Mapping[str, Any]]
) -> ConfigError:
    lines = []
    first: tuple[str, str, str] | None = None
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        field = ".".join(str(p) for p in loc) or "settings"
        source = _origin(loc, origins)
        expected = _describe_expected(err)
        got = ""
        if (
            ", got " not in expected
            and err.get("type") not in ("missing", "extra_forbidden")
            and not any(str(p) in _SECRET_FIELDS for p in loc)
        ):
            value = repr(err.get("input"))
            got = f", got {value[:60]}"
        lines.append(f"setting {field} (from {source}): expected {expected}{got}")
        if first is None:
            first = (field, source, expected)
    assert first is not None
    message = "invalid configuration: " + "; ".join(lines)
    return ConfigError(message, field=first[0], source=first[1], expected=first[2])
