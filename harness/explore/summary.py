"""What an exploration found: findings with their reproduction, and the summary of a run.

Plain data: `to_dict` is the stable `crashkit explore --json` shape and `from_dict`
reads it back, so shards run on other machines sum into one verdict (`crashkit merge`).
Also the pieces every reader of a summary shares: each invariant's smallest finding
and the summary table.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from crashkit.harness.explore.coverage import LINE_RULES, RULES
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge.invariants import INVARIANTS, Invariant, Violation
from crashkit.harness.judge.vulnerabilities import Vulnerability, merge_vulnerabilities


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        repro = data["reproduction"]
        return cls(
            Violation.from_dict(data),
            Workload.from_dict(repro["workload"]),
            repro.get("crash_point"),
            repro.get("cut"),
            repro.get("crash_after_op"),
        )


@dataclass(slots=True)
class Summary:
    """Counts over the runs and crash states checked, and the findings kept.

    `violated` counts every violation, `findings` keeps at most `findings_cap` of each
    invariant (None: all); `checked` counts, per invariant, the runs and crash states it
    was judged on; `states_skipped` the states not restarted because every invariant
    they could break had reached the cap."""

    workloads: int = 0
    crash_points: int = 0
    states_checked: int = 0
    sweep_runs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    violated: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    states_skipped: int = 0
    findings_cap: int | None = None
    #: contract rule id -> crash states and recorded runs that exercised it (`coverage`)
    covered: Counter[str] = field(default_factory=Counter)
    #: limit id (`harness.judge.limits.LIMITS`) -> violations it explains (not counted
    #: as violations: what the v1 format cannot hold under the profile explored)
    limits: Counter[str] = field(default_factory=Counter)
    #: crash states that exist at the explored points; more than the states derived
    #: when a point's combinations exceeded the cap (then a seeded sample was taken)
    states_possible: int = 0
    #: the backend keeps contract-v1 lines: the line rules of the coverage apply
    #: (`coverage.LINE_RULES`; otherwise they are not applicable)
    line_format: bool = True
    #: the refused states and runs grouped by cause (`harness.judge.vulnerabilities`)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    #: invariant -> the crash states and runs it was not judged on, once it had reached
    #: `findings_cap` (it may have more violations there: `--max-findings 0` judges all)
    unjudged: Counter[str] = field(default_factory=Counter)
    #: rule -> why the backend cannot reach it, from what its recorded runs did
    #: (`coverage.unreachable`); None: no run recorded yet. Shown as n/a when at 0.
    unreachable: dict[str, str] | None = None
    #: why the run stopped before the end ("interrupted": SIGINT or SIGTERM), or None
    stopped: str | None = None
    #: crash states found and left unchecked because the run stopped
    states_left: int = 0

    def merge(self, other: Summary) -> None:
        self.workloads += other.workloads
        self.crash_points += other.crash_points
        self.states_checked += other.states_checked
        self.sweep_runs += other.sweep_runs
        self.outcomes.update(other.outcomes)
        self.findings.extend(other.findings)
        self.seconds += other.seconds
        self.violated.update(other.violated)
        self.checked.update(other.checked)
        self.states_skipped += other.states_skipped
        self.covered.update(other.covered)
        self.limits.update(other.limits)
        self.states_possible += other.states_possible
        self.line_format = self.line_format and other.line_format
        self.vulnerabilities = merge_vulnerabilities(
            [*self.vulnerabilities, *other.vulnerabilities]
        )
        if other.findings_cap is not None:
            self.findings_cap = max(self.findings_cap or 0, other.findings_cap)
        self.unjudged.update(other.unjudged)
        if other.unreachable is not None:  # n/a only where no run could reach it
            self.unreachable = (
                dict(other.unreachable)
                if self.unreachable is None
                else {k: v for k, v in self.unreachable.items() if k in other.unreachable}
            )
        self.stopped = self.stopped or other.stopped
        self.states_left += other.states_left

    def judged(self, invariants: Iterable[Invariant]) -> None:
        self.checked.update(i.value for i in invariants)

    @property
    def violations(self) -> int:
        return sum(self.violated.values())

    def violations_by_invariant(self) -> dict[str, int]:
        return {name.value: self.violated.get(name.value, 0) for name in INVARIANTS}

    def checked_by_invariant(self) -> dict[str, int]:
        return {name.value: self.checked.get(name.value, 0) for name in INVARIANTS}

    def to_dict(self) -> dict[str, object]:
        return {
            "workloads": self.workloads,
            "crash_points": self.crash_points,
            "states_checked": self.states_checked,
            "states_skipped": self.states_skipped,
            "states_possible": self.states_possible,
            "sweep_runs": self.sweep_runs,
            "outcomes": dict(sorted(self.outcomes.items())),
            "violations": self.violations,
            "violations_by_invariant": self.violations_by_invariant(),
            "checked_by_invariant": self.checked_by_invariant(),
            "findings_cap": self.findings_cap,
            "unjudged_by_invariant": dict(sorted(self.unjudged.items())),
            "coverage": self.coverage(),
            "coverage_not_applicable": self.not_applicable(),
            "line_format": self.line_format,
            "known_limits": dict(sorted(self.limits.items())),
            "states_per_second": round(self.states_checked / self.seconds, 1)
            if self.seconds
            else None,
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for f in self.findings],
            "vulnerabilities": [v.to_dict() for v in self.vulnerabilities],
            "stopped": self.stopped,
            "states_left": self.states_left,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """Inverse of `to_dict` (what `--json` printed, read back)."""
        return cls(
            workloads=int(data["workloads"]),
            crash_points=int(data["crash_points"]),
            states_checked=int(data["states_checked"]),
            sweep_runs=int(data["sweep_runs"]),
            outcomes=Counter({str(k): int(v) for k, v in data["outcomes"].items()}),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            seconds=float(data["seconds"]),
            violated=Counter(
                {str(k): int(v) for k, v in data["violations_by_invariant"].items() if v}
            ),
            checked=Counter(
                {str(k): int(v) for k, v in data.get("checked_by_invariant", {}).items() if v}
            ),
            states_skipped=int(data.get("states_skipped", 0)),
            states_possible=int(data.get("states_possible", 0)),
            findings_cap=data.get("findings_cap"),
            covered=Counter({str(k): int(v) for k, v in data.get("coverage", {}).items() if v}),
            limits=Counter({str(k): int(v) for k, v in data.get("known_limits", {}).items()}),
            line_format=bool(data.get("line_format", True)),
            vulnerabilities=[Vulnerability.from_dict(v) for v in data.get("vulnerabilities", [])],
            unjudged=Counter(
                {str(k): int(v) for k, v in data.get("unjudged_by_invariant", {}).items()}
            ),
            unreachable=_unreachable_of(data),
            stopped=data.get("stopped"),
            states_left=int(data.get("states_left", 0)),
        )

    def coverage(self) -> dict[str, int]:
        """Every rule the explorer can reach, with the crash states and runs that
        exercised it (0: the explored workloads never did); the rules the backend cannot
        reach are left out (`not_applicable`)."""
        na = self.not_applicable()
        return {rule: self.covered.get(rule, 0) for rule in RULES if rule not in na}

    def not_applicable(self) -> dict[str, str]:
        """rule -> why the backend cannot reach it: the line rules without `line_format`,
        and what its recorded runs show it cannot reach (`coverage.unreachable`), when
        no crash state or run did."""
        return not_applicable(self.covered, self.line_format, self.unreachable)

    def uncovered(self) -> list[str]:
        return [rule for rule, count in self.coverage().items() if not count]


def _unreachable_of(data: Mapping[str, Any]) -> dict[str, str] | None:
    """`coverage_not_applicable` read back, less the line rules (`line_format` brings them)."""
    na = data.get("coverage_not_applicable")
    if na is None:
        return None
    return {str(k): str(v) for k, v in na.items() if k not in LINE_RULES}


def not_applicable(
    covered: Mapping[str, int], line_format: bool, unreachable: Mapping[str, str] | None
) -> dict[str, str]:
    """rule -> why it is n/a (one home for the explorer's summary and the kit's report)."""
    out = {} if line_format else dict.fromkeys(sorted(LINE_RULES), NOT_A_LINE_FILE_WHY)
    for rule, why in (unreachable or {}).items():
        if not covered.get(rule, 0):
            out.setdefault(rule, why)
    return {rule: out[rule] for rule in RULES if rule in out}


def finding_key(finding: Finding) -> str:
    blob = json.dumps(finding.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _size(f: Finding) -> tuple[int, int, int]:
    """Smaller is a smaller reproduction: earlier crash point, fewer faults, fewer ticks."""
    point = f.crash_point if f.crash_point is not None else -1
    return (point, len(f.workload.plan.rules), f.workload.ticks * f.workload.symbols)


def minimal_findings(findings: Sequence[Finding]) -> list[tuple[Finding, int]]:
    """Per invariant, the finding with the smallest reproduction (earliest crash point,
    fewest faults), with how many findings share that invariant."""
    best: dict[str, Finding] = {}
    counts: Counter[str] = Counter()
    for f in findings:
        name = f.violation.invariant.value
        counts[name] += 1
        current = best.get(name)
        if current is None or _size(f) < _size(current):
            best[name] = f
    return [(best[name], counts[name]) for name in sorted(best)]


def capped_lines(summary: Summary) -> list[str]:
    """Per invariant that reached the findings cap and then went unjudged: how many crash
    states and runs it was not judged on (so how many more violations there may be)."""
    cap = summary.findings_cap
    if not cap:
        return []
    kept = Counter(f.violation.invariant.value for f in summary.findings)
    return [
        f"... and {name}: not judged on {summary.unjudged[name]:,} more crash states and "
        f"runs once it had {kept[name]:,} findings (--max-findings {cap}); there may be more "
        "violations there (--max-findings 0 judges and shows all)"
        for name in INVARIANTS
        if kept[name] >= cap and summary.unjudged[name]
    ]


def summary_table(summary: Summary, title: str) -> Table:
    data = summary.to_dict()
    table = Table(title=title, show_header=False)
    table.add_row("recorded runs (workloads + fault runs)", str(data["workloads"]))
    table.add_row("  of which fault runs (sweep, fsync models)", str(data["sweep_runs"]))
    table.add_row("crash points", str(data["crash_points"]))
    table.add_row("crash states checked", f"{summary.states_checked:,}")
    table.add_row("crash states that exist (sampled above the cap)", f"{summary.states_possible:,}")
    if summary.states_skipped:
        table.add_row(
            "crash states skipped (every invariant capped)", f"{summary.states_skipped:,}"
        )
    outcomes = data["outcomes"]
    assert isinstance(outcomes, dict)
    for name, count in outcomes.items():
        table.add_row(f"outcome: {name}", f"{count:,}")
    by_invariant = summary.violations_by_invariant()
    for name in INVARIANTS:
        table.add_row(f"violations {name}", str(by_invariant[name]))
    for limit, count in sorted(summary.limits.items()):
        table.add_row(f"known limit of the v1 format: {limit}", f"{count:,}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    rate = data["states_per_second"]
    table.add_row("states/s", "-" if rate is None else f"{rate:,.0f}")
    return table


def coverage_table(summary: Summary, title: str = "contract rules exercised") -> Table:
    """Per rule the explorer can reach: what counts, and how many crash states and
    recorded runs showed it (a 0 is a rule the explored workloads never tested)."""
    table = Table(title=title)
    table.add_column("rule")
    table.add_column("situation counted")
    table.add_column("states + runs", justify="right")
    coverage = summary.coverage()
    na = summary.not_applicable()
    for rule, text in RULES.items():
        table.add_row(rule, text, coverage_cell(coverage.get(rule), na.get(rule), markup=False))
    return table


def coverage_cell(count: int | None, why: str | None = None, *, markup: bool) -> str:
    """A coverage count as a table shows it; a rule the backend cannot reach (count None)
    as n/a with why (not counted against it: it is not a 0)."""
    if count is None:
        return f"n/a ({why or NOT_A_LINE_FILE_WHY})"
    if count:
        return f"{count:,}"
    return "[red]0 (not exercised)[/]" if markup else "0 (not exercised)"


NOT_A_LINE_FILE_WHY = "not a line file"
