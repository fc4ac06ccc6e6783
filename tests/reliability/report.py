"""Print the RELIABILITY.md table from the figures the suite measured.

    python3 -m tests.reliability.report [--run RUN_ID[,RUN_ID...]] [--since ISO-TIME]

Reads var/reliability/figures.jsonl (one line per fault per run, written by
the tests), keeps the latest figure of each fault (of one run, or since a
time), and prints a Markdown table plus the machine it ran on. Nothing here
is typed in by hand: the table is what the tests measured.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tests.machine import machine_info
from tests.reliability._harness import FIGURES


def load(run: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
    rows = []
    if FIGURES.exists():
        for line in FIGURES.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    if run:
        runs = set(run.split(","))
        rows = [r for r in rows if r.get("run") in runs]
    if since:
        rows = [r for r in rows if str(r.get("at", "")) >= since]
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        latest[r["fault"]] = r
    return list(latest.values())


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| fault / input | result | what the operator saw | recover (s) | requests failed / sent (keep-alive retries) | rows lost / acked |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.get("test", "")):
        passed = (r.get("extra") or {}).get("passed")
        result = "pass" if passed else ("FAIL" if passed is False else "–")
        saw = r.get("operator_saw") or ""
        if r.get("notes"):
            saw = f"{saw}; {r['notes']}" if saw else r["notes"]
        req = (
            f"{r.get('requests_failed', 0)} / {r.get('requests', 0)} ({r.get('requests_retried', 0)})"
            if r.get("requests")
            else "–"
        )
        rows_ = (
            f"{r.get('rows_lost')} / {r.get('rows_acked')}"
            if r.get("rows_acked") is not None
            else "–"
        )
        out.append(
            f"| {_cell(r['fault'])} | {result} | {_cell(saw)} | {_cell(r.get('recover_s'))} | {req} | {rows_} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", help="run id(s), comma-separated (STACKDECK_RELIABILITY_RUN)")
    p.add_argument("--since")
    args = p.parse_args()
    rows = load(args.run, args.since)
    m = machine_info()
    print(
        f"Measured {min((r['at'] for r in rows), default='?')} – {max((r['at'] for r in rows), default='?')} "
        f"on {m['os']}, {m['cores']} CPUs, {m['mem_total_gib']} GiB, Docker {m['docker']}, "
        f"Compose {m['compose']}, Python {m['python']}.\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
