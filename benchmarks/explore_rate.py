"""Crash states per second: how fast the crash explorer restarts and judges crash states.

`make run` and `make crash` spend their time here: for every crash state the
explorer rebuilds the disk, restarts the orchestrator on it and checks every
invariant. The figure is `states_checked / seconds` of `Explorer.run` on a workload
(default: `Workload()`, what a bare `crashkit explore` runs) against the reference
backend, best of R fresh explorers. The explorer is single-threaded, so this is a
per-core figure; there is no baseline. Part of `make bench`
(`benchmarks/suite.py --only explore`).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

from crashkit.harness.explore import Explorer, Workload
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, load_backend


@dataclass(frozen=True, slots=True)
class ExploreResult:
    workload: Workload
    states_checked: int
    seconds: float  # of the best run
    repeat: int

    @property
    def rate(self) -> float:
        return self.states_checked / self.seconds


def measure(workload: Workload, repeat: int) -> ExploreResult:
    """Best of `repeat` runs of a fresh `Explorer` on `workload`; any violation is an error."""
    backend = load_backend(DEFAULT_BACKEND)
    best: tuple[float, int] | None = None
    for _ in range(repeat):
        gc.collect()
        summary = Explorer(backend).run(workload)
        assert summary.violations == 0, f"{summary.violations} violation(s) on the reference"
        assert summary.states_checked > 0 and summary.seconds > 0
        rate = summary.states_checked / summary.seconds
        if best is None or rate > best[1] / best[0]:
            best = (summary.seconds, summary.states_checked)
    assert best is not None
    return ExploreResult(workload, best[1], best[0], repeat)
