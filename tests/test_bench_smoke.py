"""`make bench` runs: the benchmark suite, at tiny sizes, prints every row and writes every figure.

A smoke test only. It asserts no time, rate or ratio (those depend on the machine and
its load; `make bench` reports them), only that each figure was measured and came out
as a positive number, with its baseline where it has one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROWS = (
    "Restore throughput",
    "Restore peak memory",
    "Interpreter floor",
    "Durable append, 500 symbols/tick",
    "Durable append, 1 symbol/tick",
    "Crash states per second",
    "Restore after compaction",
    "SQLite durable ticks, 1 symbol/tick",
    "SQLite durable ticks, 50 symbols/tick",
    "SQLite durable ticks, 500 symbols/tick",
    "SQLite restore, one row per symbol",
    "SQLite restore after a history",
    "SQLite restore after a history, vs compacted",
    "SQLite crash states per second",
    "Real-process crash states per second",
    "Real-process crash states per second, SQLite",
)
#: figure -> has a baseline measured in the same run
FIGURES = {
    "restore": True,
    "memory": True,
    "memory_floor": False,
    "append500": True,
    "append1": True,
    "explore": False,
    "compact": True,
    "sqlite-ticks1": True,
    "sqlite-ticks50": True,
    "sqlite-ticks500": True,
    "sqlite-restore": True,
    "sqlite-history": True,
    "sqlite-history-compacted": True,
    "sqlite-explore": True,
    "real-explore": True,
    "real-explore-sqlite": True,
}


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def test_the_suite_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "suite.py"),
            "--quick",
            "--records=2000",
            "--append-ticks=2",
            "--single-ticks=2",
            "--rounds=2",
            "--repeat=1",
            "--explore-ticks=2",
            "--compact-records=1000",
            "--compact-symbols=10",
            f"--dir={tmp_path}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ROWS:
        assert name in proc.stdout, (name, proc.stdout)
    assert "[bench" in proc.stderr  # progress goes to stderr, the table to stdout
    assert "[bench" not in proc.stdout

    document = json.loads(out.read_text(encoding="utf-8"))
    figures = document["figures"]
    assert set(figures) == set(FIGURES)
    for key, has_baseline in FIGURES.items():
        figure = figures[key]
        assert _positive(figure["ours"]), (key, figure)
        if has_baseline:
            assert _positive(figure["baseline"]), (key, figure)
            assert _positive(figure["ratio"]), (key, figure)
        else:
            assert figure["baseline"] is None and figure["ratio"] is None, (key, figure)
        assert isinstance(figure["goal"], str) and figure["goal"]
        assert figure["met"] in (True, False, None)
    assert figures["restore"]["records"] == 2000
    # The temporary folder is cleaned up: only the JSON is left in --dir.
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_only_runs_one_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "suite.py"),
            "--only=append1",
            "--single-ticks=2",
            "--rounds=1",
            f"--dir={tmp_path}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Durable append, 1 symbol/tick" in proc.stdout
    assert "Restore throughput" not in proc.stdout
    assert set(json.loads(out.read_text(encoding="utf-8"))["figures"]) == {"append1"}
