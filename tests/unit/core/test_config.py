"""Settings: sources and their precedence, derived defaults, errors that say
which field, which file and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.config import Settings, parse_duration, read_env_file
from console.core.errors import ConfigError, StackdeckError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_the_investment_stack(clean_env: Path) -> None:
    s = Settings(repo_root=clean_env)
    assert s.project == "investment"
    assert s.base_url == "http://127.0.0.1:80"
    assert (
        s.pg_dsn.get_secret_value()
        == "postgresql://postgres@/investment_db?host=/run/investment/postgresql"
    )
    assert s.redis_url.get_secret_value() == "unix:///run/investment/redis/redis.sock"
    assert s.state_dir == Path("/var/lib/stackdeck/investment")
    assert (s.monthly_budget, s.daily_target) == (50.0, 1.67)
    assert (s.alerts.cpu.threshold, s.alerts.cpu.for_seconds) == (80.0, 300.0)
    assert (s.alerts.memory.threshold, s.alerts.memory.for_seconds) == (85.0, 300.0)
    assert (s.alerts.p95.threshold, s.alerts.p95.for_seconds) == (2.0, 120.0)
    assert (s.alerts.cost.threshold, s.alerts.cost.for_seconds) == (1.67, 60.0)
    assert s.read_only is False


def test_every_field_has_a_docstring() -> None:
    from console.core.config import AlertSettings, RefreshSettings

    for model in (Settings, AlertSettings, RefreshSettings):
        missing = [name for name, f in model.model_fields.items() if not f.description]
        assert missing == [], f"{model.__name__}: {missing}"


def test_for_stack_reads_the_stack_env(clean_env: Path) -> None:
    write(
        clean_env / ".env",
        "# comment\nSTACK_NAME=coredev\nHTTP_PORT=18082\nREDIS_PASSWORD='r3dis-secret'\n"
        "POSTGRES_PASSWORD=pg-secret-value\nMONTHLY_BUDGET=60\nNEWSAPI_DAILY_LIMIT=250\n",
    )
    s = Settings.for_stack(clean_env)
    assert s.repo_root == clean_env
    assert s.project == "coredev"
    assert s.base_url == "http://127.0.0.1:18082"
    assert s.run_dir == Path("/run/coredev")
    assert s.state_dir == Path("/var/lib/stackdeck/coredev")
    assert s.pg_dsn.get_secret_value().endswith("host=/run/coredev/postgresql")
    assert s.redis_url.get_secret_value() == "unix:///run/coredev/redis/redis.sock"
    assert s.redis_password is not None and s.redis_password.get_secret_value() == "r3dis-secret"
    assert s.monthly_budget == 60.0
    assert s.newsapi_daily_limit == 250
    assert s.compose_dir == clean_env / "compose"
    assert s.container_name("redis") == "coredev_cache_prod"
    assert "r3dis-secret" not in repr(s)


def test_precedence_kwargs_env_toml_stack(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / ".env", "STACK_NAME=fromdotenv\nHTTP_PORT=1111\n")
    toml = write(
        clean_env / "c.toml",
        'project = "fromtoml"\nbase_url = "http://127.0.0.1:2222"\n[refresh]\nstats = "2s"\n',
    )
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    s = Settings(repo_root=clean_env)
    assert (s.project, s.base_url, s.refresh.stats) == ("fromtoml", "http://127.0.0.1:2222", 2.0)

    monkeypatch.setenv("STACKDECK_PROJECT", "fromenv")
    monkeypatch.setenv("STACKDECK_REFRESH__STATS", "3")
    s = Settings(repo_root=clean_env)
    assert (s.project, s.refresh.stats) == ("fromenv", 3.0)
    assert s.refresh.health == 5.0  # nested defaults survive a partial override

    s = Settings(repo_root=clean_env, project="fromkwargs")
    assert s.project == "fromkwargs"
    assert s.run_dir == Path("/run/fromkwargs")


def test_stack_variables_in_the_environment_beat_dotenv(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env / ".env", "STACK_NAME=fromdotenv\nHTTP_PORT=1111\n")
    monkeypatch.setenv("STACK_NAME", "fromshell")
    monkeypatch.setenv("HTTP_PORT", "18082")
    s = Settings.for_stack(clean_env)
    assert (s.project, s.base_url) == ("fromshell", "http://127.0.0.1:18082")


def test_bad_env_value_names_field_and_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKDECK_ALERTS__CPU__THRESHOLD", "lots")
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env)
    err = info.value
    assert isinstance(err, StackdeckError)
    assert err.field == "alerts.cpu.threshold"
    assert err.source == "environment variable STACKDECK_ALERTS__CPU__THRESHOLD"
    assert err.expected == "a number"
    assert "lots" in str(err)


def test_bad_toml_value_names_the_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = write(clean_env / "bad.toml", '[refresh]\nhealth = "soon"\n')
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env)
    err = info.value
    assert err.field == "refresh.health"
    assert err.source == str(toml)
    assert "duration" in (err.expected or "")
    assert str(toml) in str(err)


def test_negative_interval_and_unknown_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write(clean_env / "c.toml", "[refresh]\nstats = 0\n")
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env)
    assert info.value.field == "refresh.stats"
    assert "greater than 0" in (info.value.expected or "")

    write(toml, "refersh_interval = 3\n")
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env)
    assert info.value.field == "refersh_interval"
    assert "no such setting" in (info.value.expected or "")


def test_toml_syntax_error_names_the_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = write(clean_env / "broken.toml", "project = \n")
    monkeypatch.setenv("STACKDECK_CONFIG", str(toml))
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env)
    assert info.value.source == str(toml)
    assert info.value.expected == "TOML"


def test_missing_explicit_config_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKDECK_CONFIG", str(clean_env / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        Settings(repo_root=clean_env)


def test_default_config_file_is_read(clean_env: Path) -> None:
    write(clean_env / "config-home" / "stackdeck" / "config.toml", "read_only = true\n")
    assert Settings(repo_root=clean_env).read_only is True


def test_bad_dotenv_value_names_the_variable(clean_env: Path) -> None:
    write(clean_env / ".env", "MONTHLY_BUDGET=plenty\n")
    with pytest.raises(ConfigError) as info:
        Settings.for_stack(clean_env)
    assert info.value.field == "monthly_budget"
    assert info.value.source == f"MONTHLY_BUDGET in {clean_env / '.env'}"


def test_secret_values_never_in_errors(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(repo_root=clean_env, pg_dsn=12345678, project="Bad Name!")
    text = str(info.value)
    assert "project" in text
    assert "12345678" not in text


def test_malformed_dotenv_line(clean_env: Path) -> None:
    write(clean_env / ".env", "GOOD=1\nthis is not a pair\n")
    with pytest.raises(ConfigError) as info:
        read_env_file(clean_env / ".env")
    assert info.value.source == f"{clean_env / '.env'}:2"


def test_read_env_file_forms(clean_env: Path) -> None:
    path = write(clean_env / ".env", "export A=1\nB=\"two words\"\nC='x'\nD=plain # note\n\n# c\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "x", "D": "plain"}
    assert read_env_file(clean_env / "missing") == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("45", 45.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2m30s", 150.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "-3", "m5", True, None, "5m garbage"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_image_prefix_names_the_backend_images(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.core.ops.context import OpContext

    assert OpContext.from_settings(Settings(repo_root=clean_env)).image_repo == "investment-backend"
    write(clean_env / ".env", "IMAGE_PREFIX=fromdotenv\n")
    assert Settings.for_stack(clean_env).image_prefix == "fromdotenv"
    monkeypatch.setenv("IMAGE_PREFIX", "sdtest")
    ctx = OpContext.from_settings(Settings.for_stack(clean_env))
    assert ctx.image_repo == "sdtest-backend"
    with pytest.raises(ConfigError):
        Settings(repo_root=clean_env, image_prefix="Bad Prefix")
