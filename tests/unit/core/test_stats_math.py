"""CPU % and memory maths of the stats source, on recorded cgroup v1 and v2 samples."""

from __future__ import annotations

from typing import Any

import pytest

from console.core.sources.docker.inspect import cpu_limit_of
from console.core.sources.docker.stats import (
    blkio_totals,
    cpu_percent,
    derive_stats,
    memory_limit,
    memory_usage,
    net_totals,
    per_second,
    sample_from_raw,
)


def test_cpu_percent_cgroup_v1_recorded(v1_samples: list[dict[str, Any]]) -> None:
    s = v1_samples[0]
    # (2192498755 - 1691297818) / (1347490000000 - 1345460000000) * 2 cpus * 100
    expected = 501_200_937 / 2_030_000_000 * 2 * 100
    assert cpu_percent(s["cpu_stats"], s["precpu_stats"]) == pytest.approx(expected)
    # the container was limited to half a core and busy-looping
    assert 45.0 < expected < 55.0


def test_cpu_percent_cgroup_v2(v2_samples: list[dict[str, Any]]) -> None:
    first, second = v2_samples
    # 0.25 s of CPU in 4 s of system time over 4 CPUs -> 25 % of one core
    assert cpu_percent(first["cpu_stats"], first["precpu_stats"]) == pytest.approx(25.0)
    assert cpu_percent(second["cpu_stats"], second["precpu_stats"]) == pytest.approx(50.0)


def test_cpu_percent_uses_percpu_length_when_online_cpus_missing(
    v1_samples: list[dict[str, Any]],
) -> None:
    s = v1_samples[0]
    cur = {k: v for k, v in s["cpu_stats"].items() if k != "online_cpus"}
    assert cpu_percent(cur, s["precpu_stats"]) == pytest.approx(
        cpu_percent(s["cpu_stats"], s["precpu_stats"])
    )


def test_cpu_percent_first_message_of_a_stream_is_unknown(v1_samples: list[dict[str, Any]]) -> None:
    # The daemon sends an empty precpu_stats with the first message.
    empty = {"cpu_usage": {"total_usage": 0}, "throttling_data": {}}
    assert cpu_percent(v1_samples[0]["cpu_stats"], empty) is None


def test_cpu_percent_counter_reset_and_no_time() -> None:
    cur = {"cpu_usage": {"total_usage": 10}, "system_cpu_usage": 2000, "online_cpus": 2}
    pre = {"cpu_usage": {"total_usage": 50}, "system_cpu_usage": 1000, "online_cpus": 2}
    assert cpu_percent(cur, pre) is None  # restart: cpu went backwards
    same = {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 2000}
    assert cpu_percent(cur, same) is None  # system time did not move


def test_memory_cgroup_v1_excludes_total_inactive_file(v1_samples: list[dict[str, Any]]) -> None:
    mem = v1_samples[0]["memory_stats"]
    # what the docker CLI subtracts on cgroup v1 (total_inactive_file), not
    # total_cache (4 KiB more here: active page cache counts as used)
    assert memory_usage(mem) == 22_077_440 - 20_971_520
    # not the raw usage, which counts the 20 MiB file written to /tmp
    assert memory_usage(mem) < mem["usage"] // 10


def test_memory_cgroup_v1_ignores_cache_like_the_cli() -> None:
    mem = {"usage": 1000, "stats": {"cache": 300, "total_cache": 300, "total_inactive_file": 200}}
    assert memory_usage(mem) == 800


def test_memory_cgroup_v2_excludes_inactive_file(v2_samples: list[dict[str, Any]]) -> None:
    mem = v2_samples[0]["memory_stats"]
    assert memory_usage(mem) == 104_857_600 - 41_943_040


def test_memory_cache_above_usage_leaves_usage() -> None:
    assert memory_usage({"usage": 100, "stats": {"inactive_file": 500}}) == 100
    assert memory_usage({"usage": 100}) == 100
    assert memory_usage({}) == 0


def test_memory_limit_unlimited_is_host_memory() -> None:
    huge = 9_223_372_036_854_771_712  # what cgroup v1 reports without a limit
    assert memory_limit({"limit": huge}, host_mem_total=8 * 2**30) == 8 * 2**30
    assert memory_limit({"limit": 2**30}, host_mem_total=8 * 2**30) == 2**30
    assert memory_limit({"limit": 2**30}) == 2**30


def test_net_and_block_totals(
    v2_samples: list[dict[str, Any]], v1_samples: list[dict[str, Any]]
) -> None:
    assert net_totals(v2_samples[0]) == (1000, 500)
    assert blkio_totals(v2_samples[0]) == (1_048_576, 4096)
    # the recorded v1 container had no network and an empty blkio list
    assert net_totals(v1_samples[0]) == (0, 0)
    assert blkio_totals(v1_samples[0]) == (0, 0)
    v1_style = {
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"op": "Read", "value": 10},
                {"op": "Write", "value": 20},
                {"op": "Sync", "value": 5},
                {"op": "Total", "value": 30},
            ]
        }
    }
    assert blkio_totals(v1_style) == (10, 20)
    assert blkio_totals({"blkio_stats": {"io_service_bytes_recursive": None}}) == (0, 0)


def test_rates_between_successive_samples(v2_samples: list[dict[str, Any]]) -> None:
    first, second = (sample_from_raw(s, host_mem_total=16 * 2**30) for s in v2_samples)
    stats = derive_stats("investment_backend_blue_prod", "backend_blue", second, first)
    assert stats.cpu_percent == pytest.approx(50.0)
    assert stats.net_rx_rate == pytest.approx(2048.0)
    assert stats.net_tx_rate == pytest.approx(1024.0)
    assert stats.blk_read_rate == pytest.approx(1_048_576.0)
    assert stats.blk_write_rate == pytest.approx(4096.0)
    assert stats.mem_usage == 106_954_752 - 41_943_040
    assert stats.mem_limit == 2**30
    assert stats.mem_percent == pytest.approx((106_954_752 - 41_943_040) / 2**30 * 100, abs=0.01)
    assert stats.pids == 12


def test_rates_without_previous_sample_are_zero(v2_samples: list[dict[str, Any]]) -> None:
    only = sample_from_raw(v2_samples[0])
    stats = derive_stats("c", "svc", only, None)
    assert (stats.net_rx_rate, stats.blk_write_rate) == (0.0, 0.0)


def test_cpu_from_previous_message_when_precpu_empty(v2_samples: list[dict[str, Any]]) -> None:
    first, second = v2_samples
    second = {**second, "precpu_stats": {"cpu_usage": {"total_usage": 0}}}
    sample = sample_from_raw(second, previous_cpu_stats=first["cpu_stats"])
    assert sample.cpu_percent == pytest.approx(50.0)


def test_per_second_handles_reset_and_zero_time() -> None:
    assert per_second(100, 300, 2.0) == 100.0
    assert per_second(300, 100, 2.0) == 0.0
    assert per_second(100, 300, 0.0) == 0.0


def test_cpu_limit_from_host_config() -> None:
    assert cpu_limit_of({"HostConfig": {"NanoCpus": 1_500_000_000}}) == 1.5
    assert cpu_limit_of({"HostConfig": {"CpuQuota": 50_000, "CpuPeriod": 100_000}}) == 0.5
    assert cpu_limit_of({"HostConfig": {}}) is None
