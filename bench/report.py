"""The dated results file (Markdown) from the raw results (JSON), with
issue 15's goals in one table (:func:`issue15_goals`): each goal's figure,
target, met or by how much, and the peer measured beside it with the ratio
stackdeck ÷ peer."""

from __future__ import annotations

import statistics
from typing import Any

GOAL_NOT_MEASURED = "not measured in this run"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 100:
            return f"{int(value)}"
        return f"{value:g}"
    return str(value)


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[value]


def _ratio(r: dict[str, Any]) -> str:
    if r.get("ratio") is None:
        return "–"
    label = r.get("ratio_label") or "×"
    return f"{r['ratio']:g}{label if label.startswith('×') else ' ' + label}"


def calm_reasons(results: dict[str, Any]) -> list[str]:
    """Why a run is not of record (empty: it is). A calm machine is one that
    runs nothing but what is measured: no other project's container on the
    engine, and a 1-minute load of at most half the cores when the
    measurements began (after set-up; ``--wait-calm`` waits for it). The
    load inside the run is the bench's own (the stack, the peers beside the
    console, the idle containers of the 50-container level, a load test) and
    is printed beside each section, not judged: on 2 cores it passes 1 by
    itself."""
    cores = float(results.get("machine", {}).get("cores") or 1)
    first = results.get("load_measuring") or results.get("load_start")
    reasons = []
    if not first:
        reasons.append("no load average at the start")
    elif first[0] > cores / 2:
        reasons.append(
            f"a 1-minute load of {first[0]:g} when the measurements began, above {cores / 2:g} (half the cores)"
        )
    others = results.get("other_containers") or []
    if others:
        reasons.append(
            f"{len(others)} container(s) of other projects running ({', '.join(others[:5])})"
        )
    return reasons


def calm(results: dict[str, Any]) -> bool:
    """A run of record needs a calm machine (:func:`calm_reasons`)."""
    return not calm_reasons(results)


def table(rows: list[dict[str, Any]], with_notes: bool = True) -> list[str]:
    head = "| metric | stackdeck | peer | ratio | target | met |" + (
        " note |" if with_notes else ""
    )
    sep = "|---|---|---|---|---|---|" + ("---|" if with_notes else "")
    out = [head, sep]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") and r.get("value") is not None else ""
        peer = "–"
        if r.get("peer") is not None:
            punit = f" {r['unit']}" if r.get("unit") else ""
            peer = f"{_fmt(r['peer'])}{punit} ({r.get('peer_name') or 'peer'})"
        line = (
            f"| {r['metric']} | {_fmt(r.get('value'))}{unit} | {peer} | {_ratio(r)} | "
            f"{r.get('target') or '–'} | {_met(r.get('met'))} |"
        )
        if with_notes:
            line += f" {r.get('note') or ''} |"
        out.append(line)
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# stackdeck benchmarks — {results['date']}",
        "",
        f"Run `{results['command']}` on stack `{results['stack']}` (port {results['http_port']}), "
        f"{results['started']} → {results['finished']} ({results['elapsed_s']:.0f} s)"
        + (", **quick mode** (fewer repetitions, shorter windows)" if results.get("quick") else "")
        + ".",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_total_gib']} GiB, {m['os']}, kernel {m['kernel']}, "
        f"cgroup {m['cgroup']}; Docker {m['docker']}, Compose {m['compose']}; Python {m['python']}, Textual {m['textual']}.",
        f"Load average (1/5/15 min) at start {results['load_start']}, at end {results['load_end']}. "
        "The machine is shared: compare the ratios, which hold better than the absolute figures.",
        ""
        if calm(results)
        else f"**Not calm** ({'; '.join(calm_reasons(results))}): not a run of record.",
        "",
        "## Issue 15: every goal",
        "",
        "Here a ratio is stackdeck ÷ peer (below 1: stackdeck costs less or is faster); "
        "the peers ran in the same windows, at the same terminal size and interval.",
        "",
        *goals_table(results),
        "",
        "## Summary",
        "",
        "In this table a ratio is labelled: `stackdeck ÷ peer` (below 1: stackdeck costs less), "
        "or peer ÷ stackdeck where it says so (more than 1: stackdeck better).",
        "",
    ]
    summary_rows = []
    for key, section in results["sections"].items():
        for r in section.get("rows", []):
            summary_rows.append({**r, "metric": f"{section.get('title', key)}: {r['metric']}"})
    lines += table(summary_rows, with_notes=False)
    for key, section in results["sections"].items():
        lines += ["", f"## {section.get('title', key)}", ""]
        if section.get("error"):
            lines += [f"**Failed:** `{section['error']}`", ""]
        for warning in section.get("warnings") or []:
            lines += [f"**Warning:** {warning}", ""]
        lines.append(
            f"Load average before {section.get('load_before')}, after {section.get('load_after')}; "
            f"{section.get('elapsed_s', 0):.0f} s."
        )
        lines.append("")
        if section.get("rows"):
            lines += table(section["rows"])
        if section.get("doc"):
            lines += ["", section["doc"].strip()]
    lines += ["", f"Raw figures: `{results['json_name']}` beside this file.", ""]
    return "\n".join(lines)


# --- issue 15: every goal in one table ------------------------------------------


def judge(value: float | None, target: float, unit: str = "") -> tuple[bool | None, str]:
    """A "below the target" goal: (met, by how much). Not met: how many
    times the target; met: how far under it."""
    if value is None:
        return None, GOAL_NOT_MEASURED
    if value < target:
        return True, f"met, {100 * (1 - value / target):.0f} % under"
    over = value - target
    shown = f"{over:+.0f}" if abs(over) >= 100 else f"{over:+.3g}"
    return False, f"**{value / target:.1f}× the target** ({shown}{unit} over)"


def _goal(
    goal: str,
    value: Any,
    target: str,
    met: bool | None,
    by: str,
    peer: str = "–",
    ratio: str = "–",
    load: str = "–",
) -> dict[str, Any]:
    return {
        "goal": goal,
        "figure": "–" if value is None else str(value),
        "target": target,
        "met": met,
        "by": by,
        "peer": peer,
        "ratio": ratio,
        "load": load,
    }


def _load(section: dict[str, Any] | None) -> str:
    if not section:
        return "–"
    a, b = section.get("load_before"), section.get("load_after")
    return f"{a[0]:g} → {b[0]:g}" if a and b else "–"


def _pct(value: float | None) -> str:
    return "not measured" if value is None else f"{value} %"


def _ratio_text(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "–"
    return f"{a / b:.2f}×"


def _idle_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    levels = sorted(int(k) for k in (section or {}).get("raw", {}) if k.isdigit())
    load = _load(section)
    if not levels:
        for goal in (
            "idle CPU, the stack alone",
            "idle CPU, 50 containers",
            "idle CPU lower than glances in every run",
            "idle RSS",
        ):
            out.append(_goal(goal, None, "–", None, GOAL_NOT_MEASURED))
        return out
    raw = section["raw"]  # type: ignore[index]
    for n, limit, label in ((levels[0], 1.0, "the stack alone"), (levels[-1], 2.0, None)):
        if label is None and n < 50:
            out.append(_goal("idle CPU, 50 containers", None, "< 2 %", None, f"largest level {n}"))
            continue
        level = raw[str(n)]
        cpu = level["console"]["cpu_median"]
        met, by = judge(cpu, limit, " %")
        peers = level.get("peers", {})
        glances = peers.get("glances", {}).get("cpu_median")
        out.append(
            _goal(
                f"idle CPU, the stack alone ({n} containers)"
                if label
                else f"idle CPU, {n} containers",
                f"{cpu} %",
                f"< {limit:g} %",
                met,
                by,
                peer=f"glances {glances} %" if glances is not None else "glances not measured",
                ratio=_ratio_text(cpu, glances),
                load=load,
            )
        )
    wins = []
    for n in levels:
        level = raw[str(n)]
        cpu = level["console"]["cpu_median"]
        glances = level.get("peers", {}).get("glances", {}).get("cpu_median")
        wins.append((n, cpu, glances))
    measured = [(n, c, g) for n, c, g in wins if c is not None and g is not None]
    lower = [x for x in measured if x[1] < x[2]]
    met = (len(lower) == len(wins)) if measured else None
    out.append(
        _goal(
            "idle CPU lower than glances in every run",
            f"{len(lower)} of {len(wins)} levels",
            "every level",
            met,
            "met"
            if met
            else (
                GOAL_NOT_MEASURED
                if met is None
                else "**not in** "
                + ", ".join(f"{n} ({c} vs {g} %)" for n, c, g in measured if c >= g)
            ),
            peer="glances: " + ", ".join(f"{n}: {_pct(g)}" for n, _, g in wins),
            ratio=", ".join(f"{n}: {_ratio_text(c, g)}" for n, c, g in wins),
            load=load,
        )
    )
    for name in ("docker stats", "pg_activity"):
        parts = []
        for n in levels:
            level = raw[str(n)]
            peer = level.get("peers", {}).get(name, {})
            parts.append((n, level["console"]["cpu_median"], peer.get("cpu_median")))
        out.append(
            _goal(
                f"idle CPU beside {name} (its share: "
                + ("stats panel" if name == "docker stats" else "database panel")
                + ")",
                ", ".join(f"{n}: {c} %" for n, c, _ in parts),
                "ratio reported",
                None,
                "–",
                peer=f"{name}: " + ", ".join(f"{n}: {_pct(p)}" for n, _, p in parts),
                ratio=", ".join(f"{n}: {_ratio_text(c, p)}" for n, c, p in parts),
                load=load,
            )
        )
    rss = [raw[str(n)]["console"]["rss_max_mib"] for n in levels]
    rss_max = max((r for r in rss if r is not None), default=None)
    met, by = judge(rss_max * 2**20 / 1e6 if rss_max is not None else None, 100.0, " MB")
    glances_rss = [
        raw[str(n)].get("peers", {}).get("glances", {}).get("rss_max_mib") for n in levels
    ]
    g_rss = max((r for r in glances_rss if r is not None), default=None)
    out.append(
        _goal(
            "idle RSS (max over the levels)",
            f"{rss_max} MiB" if rss_max is not None else None,
            "< 100 MB (95.4 MiB)",
            met,
            by,
            peer=f"glances {g_rss} MiB" if g_rss is not None else "–",
            ratio=_ratio_text(rss_max, g_rss),
            load=load,
        )
    )
    return out


def _median(values: list[float] | None) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _startup_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = (section or {}).get("raw") or {}
    load = _load(section)
    paint = _median(raw.get("runs_paint_s"))
    data = _median(raw.get("runs_data_s"))
    peer = _median(raw.get("peer_docker_stats_s"))
    n_paint, n_data = len(raw.get("runs_paint_s") or []), len(raw.get("runs_data_s") or [])
    met_p, by_p = judge(paint, 0.5, " s")
    met_d, by_d = judge(data, 1.5, " s")
    history = raw.get("history")
    if data is not None and not history:
        by_d += "; NO HISTORY in Prometheus then: back-fill not included"
    return [
        _goal(
            f"start → first paint (median of {n_paint})",
            f"{paint} s" if paint is not None else None,
            "< 0.5 s (median of 10)",
            met_p,
            by_p,
            load=load,
        ),
        _goal(
            f"start → full live screen{', chart back-filled' if history else ''} (median of {n_data})",
            f"{data} s" if data is not None else None,
            "< 1.5 s",
            met_d,
            by_d,
            peer=f"docker stats, every container with a figure: {peer} s" if peer else "–",
            ratio=_ratio_text(data, peer),
            load=load,
        ),
    ]


def _stall_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = (section or {}).get("raw") or {}
    verdict = raw.get("verdict")
    if not verdict:
        return [_goal("no loop stall over 50 ms", None, "10 of 10", None, GOAL_NOT_MEASURED)]
    runs = {k: v for k, v in raw.items() if isinstance(v, dict) and ("max_ms" in v or "error" in v)}
    good, total = verdict["under_target"], verdict["runs"]
    worst = "; ".join(
        f"{k}: {v.get('max_ms', 'failed')} ms"
        + ("" if v.get("sick_source_seen") in (None, True) else " (did not bite)")
        for k, v in runs.items()
    )
    return [
        _goal(
            "no loop stall over 50 ms (healthy, db 5 s, db paused, docker hangs, "
            "all slow, Prometheus slow, Prometheus down)",
            f"{good} of {total}",
            f"{total} of {total} under 50 ms",
            good == total and total > 0,
            "met" if good == total else f"**{total - good} run(s) over** — {worst}",
            load=_load(section),
        )
    ]


def _fresh_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = (section or {}).get("raw") or {}
    levels = sorted(int(k) for k in raw if k.isdigit())
    load = _load(section)
    if not levels:
        return [
            _goal("oldest stats sample on screen", None, "< 1.5 s", None, GOAL_NOT_MEASURED),
            _goal(
                "stats path CPU per container per second",
                None,
                "flat in N",
                None,
                GOAL_NOT_MEASURED,
            ),
        ]
    worst = {}
    for n in levels:
        ages = raw[str(n)].get("ages") or []
        worst[n] = max((a[1] for a in ages), default=None)
    known = [v for v in worst.values() if v is not None]
    top = max(known) if known else None
    met, by = judge(top, 1.5, " s")
    per = raw.get("per_container_ms") or {}
    per_vals = {int(k): v for k, v in per.items() if v is not None}
    flat_ratio = (
        per_vals[max(per_vals)] / per_vals[min(per_vals)]
        if len(per_vals) >= 2 and per_vals[min(per_vals)]
        else None
    )
    return [
        _goal(
            "oldest stats sample on screen stays under 1.5 s",
            ", ".join(f"{n}: {worst[n]} s" for n in levels),
            "< 1.5 s at 7, 20, 50",
            met,
            by,
            load=load,
        ),
        _goal(
            "stats path CPU per container per second, flat in N",
            ", ".join(f"{n}: {round(v, 3)} ms" for n, v in sorted(per_vals.items())),
            "reported, flat (≤ 1.5× from the smallest to the largest N)",
            None if flat_ratio is None else flat_ratio <= 1.5,
            GOAL_NOT_MEASURED if flat_ratio is None else f"largest ÷ smallest N: {flat_ratio:.2f}×",
            load=load,
        ),
    ]


API_PRICES = (
    "wrk /api/stocks/prices (cached) c50 (keep-alive)",
    "ab /api/stocks/prices (cached) c50",
)
API_HEALTH = ("wrk /api/health c50 (keep-alive)", "ab /api/health c50")
"""b_api's raw keys for the goal (another helper's file: read, never written)."""


def _first(raw: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, dict[str, Any]]:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, dict) and value.get("p95_ms") is not None:
            return key, value
    return None, {}


def _api_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = (section or {}).get("raw") or {}
    key, prices = _first(raw, API_PRICES)
    hkey, health = _first(raw, API_HEALTH)
    p95 = prices.get("p95_ms")
    met, by = judge(p95, 100.0, " ms")
    rps = prices.get("rps")
    hrps = health.get("rps")
    return [
        _goal(
            "/api/stocks/prices (cached) through nginx, c50: p95",
            f"{p95:.0f} ms, {rps:.0f} req/s ({key})" if p95 is not None and rps else None,
            "p95 < 100 ms; req/s beside /api/health",
            met,
            by,
            peer=f"/api/health {hrps:.0f} req/s, p95 {health.get('p95_ms'):.0f} ms ({hkey})"
            if hrps
            else "–",
            ratio=f"{rps / hrps:.2f}× health's req/s" if rps and hrps else "–",
            load=_load(section),
        )
    ]


def _profile_goals(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Not a goal: where the remaining idle time goes (py-spy, by thread and
    the console's heaviest functions, inclusive), beside the goals."""
    idle = ((section or {}).get("raw") or {}).get("idle") or {}
    if not idle:
        return [_goal("where the idle time goes (py-spy)", None, "–", None, GOAL_NOT_MEASURED)]
    threads = "; ".join(f"{n} {p} %" for n, _m, p in (idle.get("proc_threads") or [])[:4])
    heavy = [
        (f, p)
        for f, _c, p in (idle.get("inclusive_console") or [])
        if "console/cli.py" not in f  # the entry points hold every sample
    ]
    funcs = "; ".join(f"{f} {p} %" for f, p in heavy[:5])
    return [
        _goal(
            "where the idle time goes (py-spy, % of one core)",
            f"threads: {threads or '–'}; console functions (inclusive): {funcs or '–'}",
            "–",
            None,
            "see the profile section and its collapsed stacks",
            load=_load(section),
        )
    ]


def issue15_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of issue 15, from the sections that measure it."""
    sections = results.get("sections", {})
    return [
        *_idle_goals(sections.get("idle")),
        *_startup_goals(sections.get("startup")),
        *_stall_goals(sections.get("stall")),
        *_fresh_goals(sections.get("fresh")),
        *_api_goals(sections.get("api")),
        *_profile_goals(sections.get("profile")),
    ]


def goals_table(results: dict[str, Any]) -> list[str]:
    out = [
        "| goal (issue 15) | figure | target | met | by how much | peer, same run | stackdeck ÷ peer | load (1 min) before → after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in issue15_goals(results):
        out.append(
            f"| {g['goal']} | {g['figure']} | {g['target']} | {_met(g['met'])} | {g['by']} | "
            f"{g['peer']} | {g['ratio']} | {g['load']} |"
        )
    return out


def summary_markdown(results: dict[str, Any]) -> str:
    """The summary table for docs/PERFORMANCE.md: every row, its section's
    load average, target and verdict (``python3 -m bench.report <json>``)."""
    lines = [
        *goals_table(results),
        "",
        "| area | metric | stackdeck | peer | ratio | target | met | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, section in results["sections"].items():
        load = section.get("load_before")
        load1 = f"{load[0]:g}" if load else "–"
        for r in section.get("rows", []):
            unit = f" {r['unit']}" if r.get("unit") and r.get("value") is not None else ""
            peer = "–"
            if r.get("peer") is not None:
                punit = f" {r['unit']}" if r.get("unit") else ""
                peer = f"{_fmt(r['peer'])}{punit} ({r.get('peer_name') or 'peer'})"
            lines.append(
                f"| {section.get('title', key)} | {r['metric']} | {_fmt(r.get('value'))}{unit} | {peer} | "
                f"{_ratio(r)} | {r.get('target') or '–'} | {_met(r.get('met'))} | {load1} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as fh:
        print(summary_markdown(json.load(fh)))
