"""Alembic migrations as the runbook runs them, the schema they build, and the
runbook's `schema_migrations` query."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO, Stack
from tests.integration.platform.pf_helpers import docker_exec, pg, pg_val

pytestmark = pytest.mark.stack

VERSIONS = REPO / "platform_services" / "db" / "migrations" / "versions"


def _revisions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for path in VERSIONS.glob("*.py"):
        values: dict[str, str | None] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.target.id in ("revision", "down_revision") and node.value is not None:
                    values[node.target.id] = ast.literal_eval(node.value)
        out[str(values["revision"])] = values.get("down_revision")
    return out


def head() -> str:
    revisions = _revisions()
    parents = {p for p in revisions.values() if p}
    heads = [r for r in revisions if r not in parents]
    assert len(heads) == 1, f"migrations must form one line, heads: {heads}"
    return heads[0]


def test_revisions_are_numbered_and_linear() -> None:
    revisions = _revisions()
    assert sorted(revisions) == [f"{i:04d}" for i in range(1, len(revisions) + 1)]
    for rev, parent in revisions.items():
        assert parent == (None if rev == "0001" else f"{int(rev) - 1:04d}")


def test_seed_schema_migrations_query_answers_the_head(stack: Stack) -> None:
    # Verbatim from the runbook's rollback verification.
    version = stack.psql("SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1;")
    assert version == head()


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_alembic_current_in_the_backend_container(stack: Stack, colour: str) -> None:
    proc = docker_exec(stack.container(f"backend_{colour}"), "python3", "-m", "alembic", "current")
    assert proc.returncode == 0, proc.stderr[-800:]
    assert f"{head()} (head)" in proc.stdout


def test_upgrade_head_again_is_a_no_op(stack: Stack) -> None:
    before = pg_val(stack, "SELECT version_num FROM alembic_version")
    proc = docker_exec(
        stack.container("backend_blue"), "python3", "-m", "alembic", "upgrade", "head"
    )
    assert proc.returncode == 0, proc.stderr[-800:]
    assert pg_val(stack, "SELECT version_num FROM alembic_version") == before == head()


def test_prices_is_a_timescale_hypertable(stack: Stack) -> None:
    rows = pg(stack, "SELECT hypertable_name FROM timescaledb_information.hypertables")
    assert "prices" in {r["hypertable_name"] for r in rows}


def test_extensions_and_tables(stack: Stack) -> None:
    extensions = {r["extname"] for r in pg(stack, "SELECT extname FROM pg_extension")}
    assert {"timescaledb", "pg_stat_statements"} <= extensions
    tables = {
        r["tablename"]
        for r in pg(stack, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"users", "prices", "api_calls", "alembic_version", "news_articles"} <= tables


def test_alembic_ini_is_where_the_seed_expects_it(stack: Stack) -> None:
    proc = docker_exec(
        stack.container("backend_blue"), "sh", "-c", "pwd && test -f alembic.ini && echo ok"
    )
    assert proc.stdout.split() == ["/app", "ok"]


def test_migrations_never_drop_anything_in_upgrade() -> None:
    """Expand-only: an upgrade adds; dropping is for downgrade() alone."""
    for path in VERSIONS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"):
            text = ast.unparse(fn).upper()
            for word in ("DROP ", "RENAME ", "DROP_COLUMN", "DROP_TABLE", "ALTER_COLUMN"):
                assert word not in text, f"{path.name}: upgrade() contains {word.strip()}"
