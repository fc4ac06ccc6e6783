"""Secrets as files (Docker secrets on Swarm): platform_services.settings
reads /run/secrets/<field> and puts the database and cache passwords into
URLs that name none."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_services.settings import Settings, with_password


def test_with_password_fills_only_a_url_without_one() -> None:
    assert (
        with_password("postgresql://postgres@db:5432/investment_db", "postgres", "p@ss/w:rd")
        == "postgresql://postgres:p%40ss%2Fw%3Ard@db:5432/investment_db"
    )
    # no user in the URL: the default user
    assert with_password("postgresql://db/x", "postgres", "pw") == "postgresql://postgres:pw@db/x"
    # Redis: no user, password only
    assert with_password("redis://redis:6379/0", "", "pw") == "redis://:pw@redis:6379/0"
    # a URL that has a password keeps it; no password, nothing changes
    assert with_password("redis://:old@redis:6379/0", "", "new") == "redis://:old@redis:6379/0"
    assert with_password("redis://redis:6379/0", "", "") == "redis://redis:6379/0"


def test_secrets_dir_files_feed_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@db:5432/investment_db")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    (tmp_path / "postgres_password").write_text("pg-secret\n")
    (tmp_path / "redis_password").write_text("redis-secret")
    (tmp_path / "jwt_secret").write_text("a-jwt-secret-of-32-characters-xx")
    s = Settings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert s.database_url == "postgresql://postgres:pg-secret@db:5432/investment_db"
    assert s.redis_url == "redis://:redis-secret@redis:6379/0"
    assert s.jwt_secret.get_secret_value() == "a-jwt-secret-of-32-characters-xx"
    # the environment still wins over a file
    monkeypatch.setenv("JWT_SECRET", "from-the-environment-0123456789")
    again = Settings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert again.jwt_secret.get_secret_value() == "from-the-environment-0123456789"
    # and a secret never shows in a repr
    assert "pg-secret" not in repr(s.postgres_password)
