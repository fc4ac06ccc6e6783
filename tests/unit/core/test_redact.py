"""Secrets never reach an error message or a log line."""

from __future__ import annotations

from pathlib import Path

from console.core.config import Settings
from console.core.errors import MASK, SourceError, StackdeckError, redact, register_secret


def test_registered_secret_is_masked_anywhere() -> None:
    register_secret("s3cr3t-value-xyz")
    assert redact("failed with s3cr3t-value-xyz in it") == f"failed with {MASK} in it"


def test_explicit_secrets_and_short_values() -> None:
    assert redact("token abcdef", secrets=["abcdef"]) == f"token {MASK}"
    assert redact("a 1 b", secrets=["1"]) == "a 1 b"  # too short to mask by value


def test_url_passwords_are_masked() -> None:
    text = "could not connect to postgresql://postgres:hunter2hunter2@db:5432/investment_db"
    assert (
        redact(text) == f"could not connect to postgresql://postgres:{MASK}@db:5432/investment_db"
    )
    assert redact("redis://:pw-123456@redis:6379/0") == f"redis://:{MASK}@redis:6379/0"
    assert redact("http://example:80/path") == "http://example:80/path"


def test_key_value_and_bearer() -> None:
    out = redact(
        "unix:///run/x/redis.sock?password=abc123def&db=0 Authorization: Bearer eyJhbGciOi.x.y"
    )
    assert "abc123def" not in out and "eyJhbGciOi" not in out
    assert "db=0" in out
    assert redact("password: 'zzz-top'") == f"password: '{MASK}'"


def test_settings_secrets_are_registered(clean_env: Path) -> None:
    (clean_env / ".env").write_text("REDIS_PASSWORD=only-in-dotenv-9876\n")
    s = Settings.for_stack(clean_env, pg_dsn="postgresql://u:dsn-pass-5555@h/db")
    assert s.redact("auth failed for only-in-dotenv-9876") == f"auth failed for {MASK}"
    assert "dsn-pass-5555" not in redact("password authentication failed: dsn-pass-5555")


def test_errors_are_masked_at_construction() -> None:
    register_secret("error-secret-4242")
    err = SourceError("redis", "AUTH error-secret-4242 rejected")
    assert isinstance(err, StackdeckError)
    assert "error-secret-4242" not in str(err)
    assert str(err).startswith("redis: ")


def test_a_truncated_or_upper_cased_token_is_still_masked() -> None:
    token = "f5aa48420dfb26b780533225a1b9ee164a88fd4fabcdef01"
    assert redact(f"unknown service '{token[:40]}'", [token]) == "unknown service '***'"
    assert token.upper()[5:30] not in redact(f"x {token.upper()[5:30]} y", [token])
    # Ordinary text that merely shares short pieces is left alone.
    assert redact("service f5aa48 restarted", [token]) == "service f5aa48 restarted"
