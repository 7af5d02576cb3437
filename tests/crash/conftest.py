"""Adds up the shards' summaries and prints one table at the end of `make crash`."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from rich.console import Console

from crashkit.harness.explore import Summary, summary_table

_TOTAL = Summary()
_SHARDS: list[int] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name != "crash_summary":
            continue
        data = json.loads(str(value))
        part = Summary(
            workloads=data["workloads"],
            crash_points=data["crash_points"],
            states_checked=data["states_checked"],
            sweep_runs=data["sweep_runs"],
            outcomes=Counter(data["outcomes"]),
            seconds=data["seconds"],
        )
        _TOTAL.merge(part)
        _SHARDS.append(1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SHARDS:
        return
    console = Console(file=terminalreporter._tw._file, force_terminal=False, width=100)
    console.print(
        summary_table(
            _TOTAL,
            f"crash-consistency suite: {len(_SHARDS)} shards "
            "(seconds and states/s are per core, summed over shards)",
        )
    )
