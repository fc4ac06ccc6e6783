"""The benchmarks' pure logic for issue 15: verdicts, ratios and the goals
table built from a results file (no stack, no terminal)."""

from __future__ import annotations

from typing import Any

from bench.b_fresh import flat, per_container_ms
from bench.b_idle import STATS_INTERVAL_S, cpu_target, ratio_rows
from bench.b_stall import verdict
from bench.report import goals_table, issue15_goals, judge
from bench.screen import BACKFILL, missing_live_data
from bench.tools.slowsock import tcp_address


def test_judge_says_met_and_how_far_under_or_how_many_times_over() -> None:
    assert judge(0.4, 0.5) == (True, "met, 20 % under")
    met, by = judge(4.5, 1.0, " %")
    assert met is False and "4.5× the target" in by and "+3.5 % over" in by
    assert judge(None, 1.0)[0] is None
    assert judge(1.0, 1.0)[0] is False  # "under" is strict


def test_idle_targets_follow_the_issue() -> None:
    assert cpu_target(7, 7) == 1.0
    assert cpu_target(17, 17) == 1.0
    assert cpu_target(50, 17) == 2.0


def test_glances_runs_at_the_consoles_stats_interval() -> None:
    from console.core.config import RefreshSettings

    assert RefreshSettings().stats == STATS_INTERVAL_S


def _console(cpu: float, rss: float = 100.0) -> dict[str, Any]:
    return {"cpu_median": cpu, "rss_max_mib": rss, "cpu_windows": [cpu]}


def test_ratio_rows_divide_stackdeck_by_each_peer_and_flag_a_missing_one() -> None:
    rows = ratio_rows(
        17,
        _console(4.0, 110.0),
        {
            "glances": _console(8.0, 55.0),
            "docker stats": _console(1.0, 27.5),
            "pg_activity": {"missing": "pg_activity is not installed"},
        },
    )
    by = {r["metric"].split(" beside ")[1].split(",")[0]: r for r in rows}
    assert by["glances"]["ratio"] == 0.5 and by["glances"]["met"] is True
    assert "RSS 2.0" in by["glances"]["note"]
    assert by["docker stats"]["ratio"] == 4.0 and by["docker stats"]["met"] is None
    assert "PEER NOT MEASURED" in by["pg_activity"]["note"]
    # a glances that could not be measured is not a win
    missing = ratio_rows(7, _console(1.0), {"glances": {"no_data": "never showed"}})
    assert missing[0]["met"] is False


def test_a_stall_run_counts_only_under_the_target_and_when_it_bit() -> None:
    runs = [
        {"max_ms": 20.0, "sick_source_seen": None},
        {"max_ms": 30.0, "sick_source_seen": True},
        {"max_ms": 30.0, "sick_source_seen": False},  # did not bite
        {"max_ms": 60.0, "sick_source_seen": True},
        {"error": "probe wrote nothing"},
    ]
    assert verdict(runs) == (2, 5)


def test_per_container_cpu_and_flatness() -> None:
    assert per_container_ms(0.17, 17, 10.0) == 1.0
    assert per_container_ms(0.1, 0, 10.0) is None
    assert flat({7: 0.3, 20: 0.32, 50: 0.4}) == (True, 0.4 / 0.3)
    ok, ratio = flat({7: 0.2, 50: 0.5})
    assert ok is False and ratio == 2.5
    assert flat({7: 0.2}) == (None, None)
    assert flat({7: None, 50: 0.5}) == (None, None)


def test_the_full_screen_waits_for_the_back_fill_only_when_history_exists() -> None:
    screen = "stackdeck · Containers · 1/1 running db 200 12.5% cpu · last 3 samples"
    assert missing_live_data(screen, ["db"]) == []
    assert missing_live_data(screen, ["db"], history=True) == ["chart back-fill"]
    filled = screen.replace("last 3 samples", f"last 1h {BACKFILL}")
    assert missing_live_data(filled, ["db"], history=True) == []


def test_slowsock_addresses() -> None:
    assert tcp_address("tcp:127.0.0.1:9090") == ("127.0.0.1", 9090)
    assert tcp_address("/run/x/.s.PGSQL.5432") is None


def _results() -> dict[str, Any]:
    level = lambda cpu, g: {  # noqa: E731
        "console": _console(cpu, 90.0),
        "peers": {
            "glances": _console(g, 60.0),
            "docker stats": _console(0.5),
            "pg_activity": _console(0.1),
        },
    }
    return {
        "sections": {
            "idle": {
                "raw": {"warm_s": 8, "7": level(0.8, 2.0), "50": level(2.5, 2.0)},
                "load_before": [1.0, 1, 1],
                "load_after": [1.5, 1, 1],
            },
            "startup": {
                "raw": {
                    "runs_paint_s": [0.4] * 10,
                    "runs_data_s": [1.2] * 10,
                    "peer_docker_stats_s": [1.6],
                    "history": True,
                }
            },
            "stall": {
                "raw": {
                    "healthy": {"max_ms": 20.0, "sick_source_seen": None},
                    "Prometheus down": {"max_ms": 70.0, "sick_source_seen": True},
                    "verdict": {"under_target": 1, "runs": 2},
                }
            },
            "fresh": {
                "raw": {
                    "7": {"ages": [[1, 0.9, 0.9, 7], [2, 1.1, 1.1, 7]]},
                    "50": {"ages": [[1, 1.2, 1.2, 50]]},
                    "per_container_ms": {"7": 0.3, "50": 0.33},
                }
            },
            "api": {
                "raw": {
                    "ab /api/stocks/prices (cached) c50": {"p95_ms": 80.0, "rps": 400.0},
                    "ab /api/health c50": {"p95_ms": 40.0, "rps": 800.0},
                }
            },
        }
    }


def test_every_goal_of_issue_15_is_in_the_table_with_its_verdict() -> None:
    goals = {g["goal"].split(" (")[0]: g for g in issue15_goals(_results())}
    assert goals["idle CPU, the stack alone"]["met"] is True
    assert goals["idle CPU, the stack alone"]["ratio"] == "0.40×"
    assert goals["idle CPU, 50 containers"]["met"] is False
    assert goals["idle CPU lower than glances in every run"]["met"] is False
    assert "50 (2.5 vs 2.0 %)" in goals["idle CPU lower than glances in every run"]["by"]
    assert goals["idle RSS"]["met"] is True
    assert goals["start → first paint"]["met"] is True
    assert goals["start → full live screen, chart back-filled"]["met"] is True
    assert goals["no loop stall over 50 ms"]["met"] is False
    assert goals["no loop stall over 50 ms"]["figure"] == "1 of 2"
    assert goals["oldest stats sample on screen stays under 1.5 s"]["met"] is True
    assert goals["stats path CPU per container per second, flat in N"]["met"] is True
    api = goals["/api/stocks/prices"]
    assert api["met"] is True and api["ratio"] == "0.50× health's req/s"
    assert goals["idle CPU beside docker stats"]["ratio"] == "7: 1.60×, 50: 5.00×"
    assert len(goals_table(_results())) == 2 + len(goals)


def test_a_section_not_run_is_said_so_not_passed() -> None:
    goals = issue15_goals({"sections": {}})
    assert goals and all(g["met"] is None for g in goals)
    assert any("not measured" in g["by"] for g in goals)


def test_a_run_is_calm_when_it_began_at_half_the_cores_with_nothing_else_running() -> None:
    from bench.report import calm, calm_reasons

    run = {
        "machine": {"cores": 2},
        "load_start": [3.0, 0, 0],  # set-up's own aftermath
        "load_measuring": [0.9, 0, 0],
        "other_containers": [],
        # the bench's own load inside a section is printed, not judged
        "sections": {"idle": {"load_before": [1.0, 0, 0], "load_after": [3.3, 0, 0]}},
    }
    assert calm(run)
    run["load_measuring"] = [1.1, 0, 0]
    assert calm_reasons(run) == [
        "a 1-minute load of 1.1 when the measurements began, above 1 (half the cores)"
    ]
    run["load_measuring"] = [0.5, 0, 0]
    run["other_containers"] = ["sdtest_db_prod"]
    assert not calm(run) and "sdtest_db_prod" in calm_reasons(run)[0]
    del run["load_measuring"]  # a run from before the key: its start load
    run["other_containers"] = []
    assert not calm(run)


def test_docker_stats_is_ready_on_a_figure_even_when_its_header_scrolled_off() -> None:
    from bench.b_idle import _shows_figure

    assert _shows_figure("1dcf4512a44a   sdh1_worker_prod   0.01%   41.56MiB / 256MiB", []) == []
    assert _shows_figure("CONTAINER ID   NAME   CPU %", []) == ["a CPU figure"]
