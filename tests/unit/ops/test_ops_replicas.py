"""The nginx pool files of backend replicas (console/core/ops/replicas.py)."""

from __future__ import annotations

from console.core.ops.replicas import (
    Member,
    parse_pool_map,
    render_pool,
    replicas_wanted,
)


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
