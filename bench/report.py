"""The dated results file (Markdown) from the raw results (JSON)."""

from __future__ import annotations

from typing import Any


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
        "",
        'Ratios read "more than 1 = stackdeck better" (peer time / stackdeck time, peer cost / stackdeck cost).',
        "",
        "## Summary",
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


def summary_markdown(results: dict[str, Any]) -> str:
    """The summary table for docs/PERFORMANCE.md: every row, its section's
    load average, target and verdict (``python3 -m bench.report <json>``)."""
    lines = [
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
