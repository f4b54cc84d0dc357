"""Runs every benchmarks/bench_*.py module (or those matching `-k`), prints one table, writes the JSON.

    python -m benchmarks                 # everything (make bench)
    python -m benchmarks -k cold -k cost # only the modules whose name contains "cold" or "cost"

Exit status 1 when a row says `"ok": false` or a benchmark raised (its row then carries the error).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import Row, row

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
REQUIRED = {"benchmark": str, "metric": str, "unit": str}


def discover(selectors: list[str] | None = None) -> list[str]:
    """The benchmark modules' names (`bench_cold_start`…), sorted; with selectors, those containing one."""
    names = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if selectors:
        names = [name for name in names if any(selector in name for selector in selectors)]
    return names


def check_row(module: str, item: Any) -> Row:
    """A row as the table and the JSON need it; a malformed one becomes a failed row saying why."""
    problems = []
    if not isinstance(item, dict):
        return row(module, "malformed row", repr(item)[:200], ok=False)
    for key, kind in REQUIRED.items():
        if not isinstance(item.get(key), kind):
            problems.append(f"{key} must be a {kind.__name__}")
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append("value must be a number or a string")
    if "ok" in item and not isinstance(item["ok"], bool):
        problems.append("ok must be a bool")
    if problems:
        return row(module, "malformed row", "; ".join(problems) + f": {item!r}"[:300], ok=False)
    return dict(item)


def run_module(name: str) -> tuple[list[Row], float]:
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        produced = module.run()
        rows = [check_row(name, item) for item in produced]
    except Exception as failure:
        traceback.print_exc()
        rows = [row(name, "error", f"{type(failure).__name__}: {failure}"[:300], ok=False)]
    return rows, time.perf_counter() - started


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}".replace(",", " ")
    return str(value)


def _verdict(ok: object) -> str:
    return "ok" if ok is True else "FAIL" if ok is False else ""


def table(rows: list[Row]) -> str:
    """A plain-text table: benchmark, metric, value with unit, budget, verdict."""
    header = ("benchmark", "metric", "value", "budget", "ok")
    lines = [
        (
            str(item["benchmark"]),
            str(item["metric"]),
            f"{_shown(item['value'])} {item['unit']}".strip(),
            _shown(item["budget"]) if "budget" in item else "",
            _verdict(item.get("ok")),
        )
        for item in rows
    ]
    widths = [max(len(cells[index]) for cells in [header, *lines]) for index in range(len(header))]

    def format_line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([format_line(header), rule, *(format_line(cells) for cells in lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("-k", action="append", dest="selectors", metavar="NAME", help="run modules containing NAME")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    names = discover(args.selectors)
    if not names:
        print(f"aucun benchmark ne correspond / no benchmark matches {args.selectors}", file=sys.stderr)
        return 2
    rows: list[Row] = []
    durations: dict[str, float] = {}
    for name in names:
        print(f"… {name}", file=sys.stderr, flush=True)
        produced, seconds = run_module(name)
        rows.extend(produced)
        durations[name] = round(seconds, 2)
    print(table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "durations_s": durations,
        "rows": rows,
    }
    args.output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    failed = [item for item in rows if item.get("ok") is False]
    print(f"\n{len(rows)} rows, {len(failed)} over budget or failed; JSON: {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
