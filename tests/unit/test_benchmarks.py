"""`make bench`'s runner: rows are checked, a failed budget or a crashed benchmark fails the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks import percentile, row


def test_rows_carry_budget_and_verdict_only_when_given() -> None:
    assert row("b", "m", 1.5, "ms") == {"benchmark": "b", "metric": "m", "value": 1.5, "unit": "ms"}
    assert row("b", "m", 3, "calls", budget=2, ok=False)["ok"] is False


def test_percentile_is_nearest_rank() -> None:
    sample = [float(value) for value in range(1, 101)]
    assert percentile(sample, 0.5) == 50
    assert percentile(sample, 0.99) == 99
    assert percentile([7.0], 0.95) == 7
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)


def test_a_malformed_row_becomes_a_failed_row() -> None:
    assert runner.check_row("bench_x", {"benchmark": "x", "metric": "m", "value": 1, "unit": "s"})["value"] == 1
    assert runner.check_row("bench_x", {"benchmark": "x", "metric": "m", "value": None, "unit": "s"})["ok"] is False
    assert (
        runner.check_row("bench_x", {"benchmark": "x", "metric": "m", "value": 1, "unit": "s", "ok": 1})["ok"] is False
    )
    assert runner.check_row("bench_x", "not a dict")["ok"] is False


def test_selection_and_discovery() -> None:
    everything = runner.discover()
    assert everything == sorted(everything)
    assert all(name.startswith("bench_") for name in everything)
    assert runner.discover(["no-such-benchmark"]) == []


def test_a_benchmark_that_raises_is_reported_not_fatal() -> None:
    rows, _ = runner.run_module("bench_does_not_exist")
    assert rows[0]["ok"] is False
    assert "ModuleNotFoundError" in str(rows[0]["value"])


@pytest.mark.parametrize(
    ("rows", "status"),
    [([row("b", "m", 1, "s", budget=2, ok=True)], 0), ([row("b", "m", 3, "s", budget=2, ok=False)], 1)],
)
def test_main_writes_json_and_fails_over_budget(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[dict[str, object]],
    status: int,
) -> None:
    monkeypatch.setattr(runner, "discover", lambda selectors=None: ["bench_fake"])
    monkeypatch.setattr(runner, "run_module", lambda name: (rows, 0.01))
    output = tmp_path / "latest.json"
    assert runner.main(["--output", str(output)]) == status
    assert json.loads(output.read_text())["rows"] == rows
    printed = capsys.readouterr().out
    assert "benchmark" in printed
    assert ("FAIL" in printed) == (status == 1)
