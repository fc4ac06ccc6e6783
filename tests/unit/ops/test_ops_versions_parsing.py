"""Pure parsing and validation of operation inputs."""

from __future__ import annotations

import pytest

from console.core.ops.deploy import parse_services
from console.core.ops.errors import BadInput, exit_code
from console.core.ops.migrate import parse_revisions
from console.core.ops.preflight import env_problems, parse_meminfo, version_at_least
from console.core.ops.services import parse_scale, resolve_service
from console.core.ops.versions import Version, image_ref, validate_version


@pytest.mark.parametrize(
    "tag", ["v1", "v1.2", "v1.2.3", "v10.0.1-rc.1", "v2.0.0-opstest", "v0.0.0-a.b.c"]
)
def test_valid_versions(tag: str) -> None:
    assert validate_version(tag) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "1.2.3",
        "v1.2.3.4",
        "V1.2.3",
        "v1.2.3-",
        "v1..2",
        "latest",
        "v1.2.3; rm -rf /",
        "v1.2.3\n",
        "v1.2.3\x1b[31m",
        "v\uff11.2.3",  # fullwidth digit one
        "v1.2.\uff13",  # fullwidth digit three, in the patch
        "v1.2.3-rc.\uff11",  # fullwidth digit in the suffix
        "v\u0661.2.3",  # Arabic-Indic digit one
        "v1.\u0968.3",  # Devanagari digit two
        "v1.2.3-ü",
        "v1.2.3-" + "a" * 80,
        None,
        123,
    ],
)
def test_malformed_versions_are_refused_with_the_expected_form(tag: object) -> None:
    with pytest.raises(BadInput) as info:
        validate_version(tag)
    assert info.value.code == "bad-input"
    assert info.value.field == "version"
    assert "v1.2.3" in str(info.value)  # says what is expected
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


def test_version_ordering_follows_semver() -> None:
    tags = ["v1.10.0", "v1.2.3", "v1.2.3-rc.1", "v1", "v1.2.3-rc.10", "v1.2.3-rc.2", "v2"]
    ordered = [str(v) for v in sorted(Version(t) for t in tags)]
    assert ordered == [
        "v1",
        "v1.2.3-rc.1",
        "v1.2.3-rc.2",
        "v1.2.3-rc.10",
        "v1.2.3",
        "v1.10.0",
        "v2",
    ]
    assert Version("v1") == Version("v1.0.0")


def test_image_ref_validates() -> None:
    assert image_ref("investment-backend", "v1.2.3") == "investment-backend:v1.2.3"
    with pytest.raises(BadInput):
        image_ref("investment-backend", "v1.2.3 --rm")


def test_services_accept_the_seed_flags() -> None:
    assert parse_services("backend frontend") == ["backend", "frontend"]
    assert parse_services("backend,worker") == ["backend", "worker"]
    assert parse_services(None) == ["backend", "worker"]
    assert parse_services(["worker"]) == ["worker"]
    with pytest.raises(BadInput, match="unknown service 'databse'"):
        parse_services("backend databse")
    # the web frontend deploys on its own too (its colours, since issue 13)
    assert parse_services("frontend") == ["frontend"]
    with pytest.raises(BadInput, match="nothing this stack can deploy"):
        parse_services(" , ")


def test_scale_bounds_and_services() -> None:
    assert parse_scale("worker=0") == ("worker", 0)
    assert parse_scale("celery_worker=3") == ("worker", 3)  # the runbook's name
    assert parse_scale(" worker = 2 ") == ("worker", 2)
    assert parse_scale("worker", "1") == ("worker", 1)
    for bad, needle in [
        ("worker=-1", "worker scales to 0..3, not -1"),
        ("worker=4", "worker scales to 0..3, not 4: one worker ingests per interval"),
        ("worker=11", "worker scales to 0..3"),
        ("worker=99999999999999999999", "worker scales to 0..3"),
        ("worker=two", "SERVICE=N"),
        ("worker", "SERVICE=N"),
        ("frobnicator=1", "unknown service"),
        ("db=2", "does not scale"),
        ("backend_blue=2", "does not scale"),
        ("nginx=2", "does not scale"),
        ("frontend=2", "does not scale"),
        ("backend=0", "at least 1 container must serve"),
        ("backend=-1", "at least 1 container must serve"),
        ("backend=5", "at most 4 containers"),
        ("backend=abc", "SERVICE=N"),
    ]:
        with pytest.raises(BadInput, match=needle):
            parse_scale(bad)
    assert parse_scale("backend=1") == ("backend", 1)
    assert parse_scale("backend", "4") == ("backend", 4)


def test_service_names_and_seed_aliases() -> None:
    assert resolve_service("postgres") == "db"
    assert resolve_service("cache") == "redis"
    assert resolve_service("market-sim") == "market-sim"
    with pytest.raises(BadInput, match="unknown service"):
        resolve_service("web\x00")
    with pytest.raises(BadInput):
        resolve_service("")


def test_alembic_output_parsing() -> None:
    out = "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n0002_prices (head)\n"
    assert parse_revisions(out) == {"0002_prices"}
    assert parse_revisions("") == set()
    assert parse_revisions("a1b2 (head)\nc3d4 (head)\n") == {"a1b2", "c3d4"}


def test_env_problems_and_resources() -> None:
    example = {
        "POSTGRES_PASSWORD": "change-me",
        "ADMIN_USERNAME": "admin",
        "NEWSAPI_KEY": "offline-sim",
    }
    missing, weak = env_problems({"POSTGRES_PASSWORD": "short", "ADMIN_USERNAME": "a"}, example)
    assert missing == ["NEWSAPI_KEY"] and weak == ["POSTGRES_PASSWORD"]
    missing, _ = env_problems({"POSTGRES_PASSWORD": "change-me"}, example)
    assert "POSTGRES_PASSWORD (still change-me)" in missing
    # a key the example leaves empty is optional (an SMTP login, test overrides)
    optional = {**example, "ALERT_SMTP_PASSWORD": ""}
    full = {"POSTGRES_PASSWORD": "x" * 20, "ADMIN_USERNAME": "a", "NEWSAPI_KEY": "k"}
    assert env_problems(full, optional) == ([], [])
    assert version_at_least("20.10.24+dfsg1", (20, 10))
    assert not version_at_least("19.03.1", (20, 10))
    assert version_at_least("2.40.3", (2, 0))
    assert not version_at_least("garbage", (2, 0))
    mem = parse_meminfo("MemTotal:       24576000 kB\nMemAvailable:   1000 kB\n")
    assert mem["MemTotal"] == 24576000 * 1024


def test_exit_codes() -> None:
    assert exit_code(None) == 0
    assert exit_code("failed") == 1
    assert exit_code("bad-input") == 2
    assert exit_code("read-only") == 2
    assert exit_code("lock-busy") == 3


def test_version_pattern_is_ascii_only() -> None:
    import re

    from console.core.ops.versions import VERSION_RE

    assert VERSION_RE.flags & re.ASCII
    assert VERSION_RE.fullmatch("v1.2.3")
    assert VERSION_RE.fullmatch("v\uff11.2.3") is None  # str.isdigit() would say yes


def test_a_refusal_names_the_newest_versions_and_counts_the_rest() -> None:
    from console.core.ops.steps.images import newest_versions

    tags = ["v1.0.0", "v2.10.0", "v2.9.0", "latest", "v2.4.0-fe", "v1.0.0", "v0.9.9"]
    assert newest_versions(tags, limit=3) == "v2.10.0, v2.9.0, v2.4.0-fe (+2 older)"
    assert newest_versions(tags) == "v2.10.0, v2.9.0, v2.4.0-fe, v1.0.0, v0.9.9"
    assert newest_versions(["latest"]) == "none"
