"""What an exploration found: findings with their reproduction, and the summary of a run.

Plain data (`to_dict` is the stable `crashkit explore --json` shape), plus the pieces
every reader of a summary shares: each invariant's smallest finding and the table.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table

from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge.invariants import INVARIANTS, Violation


@dataclass(frozen=True, slots=True)
class Finding:
    """A violation with its minimal reproduction, as plain data for the scenario runner."""

    violation: Violation
    workload: Workload
    crash_point: int | None
    cut: str | None
    op: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.violation.to_dict(),
            "reproduction": {
                "workload": self.workload.to_dict(),
                "crash_point": self.crash_point,
                "crash_after_op": self.op,
                "cut": self.cut,
            },
        }


@dataclass(slots=True)
class Summary:
    workloads: int = 0
    crash_points: int = 0
    states_checked: int = 0
    sweep_runs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: Summary) -> None:
        self.workloads += other.workloads
        self.crash_points += other.crash_points
        self.states_checked += other.states_checked
        self.sweep_runs += other.sweep_runs
        self.outcomes.update(other.outcomes)
        self.findings.extend(other.findings)
        self.seconds += other.seconds

    def violations_by_invariant(self) -> dict[str, int]:
        counts = Counter(f.violation.invariant for f in self.findings)
        return {name: counts.get(name, 0) for name in INVARIANTS}

    def to_dict(self) -> dict[str, object]:
        return {
            "workloads": self.workloads,
            "crash_points": self.crash_points,
            "states_checked": self.states_checked,
            "sweep_runs": self.sweep_runs,
            "outcomes": dict(sorted(self.outcomes.items())),
            "violations": len(self.findings),
            "violations_by_invariant": self.violations_by_invariant(),
            "states_per_second": round(self.states_checked / self.seconds, 1)
            if self.seconds
            else None,
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for f in self.findings],
        }


def finding_key(finding: Finding) -> str:
    blob = json.dumps(finding.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def minimal_findings(findings: Sequence[Finding]) -> list[tuple[Finding, int]]:
    """Per invariant, the finding with the earliest crash point (the smallest reproduction),
    with how many findings share that invariant."""
    best: dict[str, Finding] = {}
    counts: dict[str, int] = {}
    for f in findings:
        name = f.violation.invariant
        counts[name] = counts.get(name, 0) + 1
        key = (f.crash_point if f.crash_point is not None else -1, len(f.workload.plan.rules))
        current = best.get(name)
        if current is None or key < (
            current.crash_point if current.crash_point is not None else -1,
            len(current.workload.plan.rules),
        ):
            best[name] = f
    return [(best[name], counts[name]) for name in sorted(best)]


def summary_table(summary: Summary, title: str) -> Table:
    data = summary.to_dict()
    table = Table(title=title, show_header=False)
    table.add_row("recorded runs (workloads + fault runs)", str(data["workloads"]))
    table.add_row("  of which fault runs (sweep, fsync models)", str(data["sweep_runs"]))
    table.add_row("crash points", str(data["crash_points"]))
    table.add_row("crash states checked", f"{summary.states_checked:,}")
    outcomes = data["outcomes"]
    assert isinstance(outcomes, dict)
    for name, count in outcomes.items():
        table.add_row(f"outcome: {name}", f"{count:,}")
    by_invariant = summary.violations_by_invariant()
    for name in INVARIANTS:
        table.add_row(f"violations {name}", str(by_invariant[name]))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    rate = data["states_per_second"]
    table.add_row("states/s", "-" if rate is None else f"{rate:,.0f}")
    return table
