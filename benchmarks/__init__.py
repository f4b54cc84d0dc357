"""`make bench`: measurements anyone can reproduce on a laptop (ARCHITECTURE.md §8 budgets).

Each `benchmarks/bench_*.py` module has `run() -> list[dict[str, object]]`; a row is
`{"benchmark": str, "metric": str, "value": number | str, "unit": str}` with optional `"budget"` (what the
value must stay within) and `"ok"` (bool: False fails `make bench`). `python -m benchmarks` runs them all
(`-k name` for a subset), prints one table and writes `benchmarks/results/latest.json`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Row = dict[str, object]


def row(
    benchmark: str,
    metric: str,
    value: float | int | str,
    unit: str = "",
    *,
    budget: float | int | str | None = None,
    ok: bool | None = None,
) -> Row:
    """One result row; `budget` and `ok` only when the metric has a budget to meet."""
    built: Row = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit}
    if budget is not None:
        built["budget"] = budget
    if ok is not None:
        built["ok"] = ok
    return built


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
