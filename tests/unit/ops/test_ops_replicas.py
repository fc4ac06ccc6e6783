"""The nginx pool files of backend replicas (console/core/ops/replicas.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core.ops import replicas
from console.core.ops.context import OpContext, Operator
from console.core.ops.errors import OpFailed
from console.core.ops.proc import Result
from console.core.ops.replicas import (
    Member,
    parse_pool_map,
    render_pool,
    replicas_wanted,
)

REPO = Path(__file__).resolve().parents[3]


def test_a_colour_with_several_containers_gets_a_pool_and_a_map_line() -> None:
    conf, mapping = render_pool(
        {
            "blue": [
                Member("s_backend_blue_prod", "172.19.0.7"),
                Member("s-backend_blue_replica-1", "172.19.0.13", 1),
            ],
            "green": [Member("s_backend_green_prod", "172.19.0.8")],
        }
    )
    assert "upstream backend_blue_pool {\n" in conf
    assert "    server 172.19.0.7:8000;  # s_backend_blue_prod\n" in conf
    assert "    server 172.19.0.13:8000;  # s-backend_blue_replica-1\n" in conf
    # one container: no pool, nginx keeps reaching it by its DNS name
    assert "green" not in conf
    assert parse_pool_map(mapping) == {"blue"}
    assert "backend_blue backend_blue_pool;\n" in mapping


def test_no_pool_at_all_leaves_only_comments() -> None:
    conf, mapping = render_pool({})
    assert all(line.startswith("#") for line in (conf + mapping).splitlines())
    assert parse_pool_map(mapping) == set()


def test_replicas_wanted_defaults_to_one() -> None:
    assert replicas_wanted({}) == 1
    assert replicas_wanted({"BACKEND_REPLICAS": "3"}) == 3
    assert replicas_wanted({"BACKEND_REPLICAS": "0"}) == 1
    assert replicas_wanted({"BACKEND_REPLICAS": "x"}) == 1


def _ctx(tmp_path: Path) -> OpContext:
    op = Operator(user="unit", ssh_client="192.0.2.1", host="h", pid=4242, pid_start=7)
    return OpContext(
        stack="unitr",
        repo=REPO,
        state_dir=tmp_path / "state",
        run_dir=tmp_path / "run",
        base_url="http://127.0.0.1:9",
        env={},
        operator=op,
    )


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "expect"),
    [
        (0, "backend_blue backend_blue_pool;\n", "", {"blue"}),
        (1, "", "cat: /etc/nginx/conf.d/pool.map: No such file or directory", set()),
        (1, "", "Error response from daemon: container is not running", None),
        (-1, "", "timed out after 15 s", None),
    ],
)
async def test_a_pool_map_that_cannot_be_read_is_an_error_not_no_pools(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rc: int,
    stdout: str,
    stderr: str,
    expect: set[str] | None,
) -> None:
    """Only a missing file means "no pools"; any other failed read raises, so
    the pools are never rewritten from a read that did not happen (it would
    drop the serving colour's pool)."""

    async def fake_exec(ctx: OpContext, container: str, *argv: str, **kw: object) -> Result:
        return Result(("docker", "exec", container, *argv), rc, stdout, stderr)

    monkeypatch.setattr(replicas, "docker_exec", fake_exec)
    if expect is not None:
        assert await replicas.read_pool_map(_ctx(tmp_path)) == expect
    else:
        with pytest.raises(OpFailed, match=r"could not read nginx's .*left as they are"):
            await replicas.read_pool_map(_ctx(tmp_path))
