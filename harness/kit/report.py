"""The kit's one table: per invariant, how often it was judged, how often it broke, the
smallest reproduction and the command that replays it; plus what did not apply and why.

`KitReport` adds up item results (`runs.KitResult`) in one process, or the JSON files of
several (`crashkit merge`, which also reads `crashkit explore --json` summaries).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from crashkit.harness.explore.coverage import LINE_RULES, RULES
from crashkit.harness.explore.summary import coverage_cell, not_applicable
from crashkit.harness.judge.invariants import INVARIANTS
from crashkit.harness.judge.limits import LIMITS
from crashkit.harness.judge.vulnerabilities import (
    Vulnerability,
    headline,
    merge_vulnerabilities,
    report_lines,
)

#: The `check` of the explorer's items (`runs.explore`): "explorer (crash)" and so on.
EXPLORER_CHECK = "explorer ("
#: The explorer counts a report carries over from `crashkit explore --json`.
EXPLORER_COUNTS = ("workloads", "crash_points", "states_checked", "sweep_runs")


@dataclass(slots=True)
class KitReport:
    checked: Counter[str] = field(default_factory=Counter)
    violated: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    not_applicable: list[tuple[str, str, str]] = field(default_factory=list)  # check, item, why
    explorer: Counter[str] = field(default_factory=Counter)
    items: int = 0
    seconds: float = 0.0
    #: contract rule -> crash states and runs of the suite's explorer items that
    #: exercised it (the self-test's runs of broken variants are not counted)
    coverage: Counter[str] = field(default_factory=Counter)
    #: known limits of the v1 format the explorer items met (`harness.judge.limits`)
    limits: Counter[str] = field(default_factory=Counter)
    #: every explorer item was of a line-format backend (else the line rules do not apply)
    line_format: bool = True
    #: the explorer items' refused states, grouped by cause (`harness.judge.vulnerabilities`)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    #: rule -> why the backend cannot reach it, from the explorer items' recorded runs
    #: (`Summary.unreachable`; None: none said)
    unreachable: dict[str, str] | None = None

    def _add_unreachable(self, data: Mapping[str, Any]) -> None:
        """An explorer summary's `coverage_not_applicable`: n/a only where no item reached it."""
        theirs = data.get("coverage_not_applicable")
        if theirs is None:
            return
        mine = {str(k): str(v) for k, v in theirs.items() if k not in LINE_RULES}
        if self.unreachable is not None:
            mine = {k: v for k, v in self.unreachable.items() if k in mine}
        self.unreachable = mine

    def _add_vulnerabilities(self, found: Iterable[Mapping[str, Any]]) -> None:
        more = [Vulnerability.from_dict(v) for v in found]
        if more:
            self.vulnerabilities = merge_vulnerabilities([*self.vulnerabilities, *more])

    def add(self, result: Mapping[str, Any]) -> None:
        """One item's `KitResult.to_json()`."""
        self.items += 1
        self.seconds += float(result.get("seconds", 0.0))
        if result.get("not_applicable"):
            self.not_applicable.append((result["check"], result["item"], result["not_applicable"]))
            return
        self.checked.update(result.get("checked", {}))
        self.violated.update(result.get("violated", {}))
        self.findings.extend(
            {**f, "check": result["check"], "item": result["item"]}
            for f in result.get("findings", [])
        )
        explored = result.get("explored") or {}
        self.explorer.update({k: int(explored.get(k, 0)) for k in EXPLORER_COUNTS})
        if str(result.get("check", "")).startswith(EXPLORER_CHECK):
            self.line_format = self.line_format and bool(explored.get("line_format", True))
            self.coverage.update({k: int(v) for k, v in explored.get("coverage", {}).items()})
            self._add_unreachable(explored)
            self.limits.update({k: int(v) for k, v in explored.get("known_limits", {}).items()})
            self._add_vulnerabilities(explored.get("vulnerabilities", []))

    def add_summary(self, summary: Mapping[str, Any]) -> None:
        """A `crashkit explore --json` summary (one shard)."""
        self.items += 1
        self.seconds += float(summary.get("seconds", 0.0))
        self.checked.update({k: int(v) for k, v in summary.get("checked_by_invariant", {}).items()})
        self.violated.update(
            {k: int(v) for k, v in summary.get("violations_by_invariant", {}).items()}
        )
        self.explorer.update({k: int(summary.get(k, 0)) for k in EXPLORER_COUNTS})
        self.coverage.update({k: int(v) for k, v in summary.get("coverage", {}).items()})
        self._add_unreachable(summary)
        self.line_format = self.line_format and bool(summary.get("line_format", True))
        self._add_vulnerabilities(summary.get("vulnerabilities", []))
        for f in summary.get("findings", []):
            self.findings.append(
                {
                    "invariant": f["invariant"],
                    "message": f["message"],
                    "file": None,
                    "replay": f"crashkit explore (reproduction {f.get('reproduction')})",
                    "check": "explorer",
                    "item": "",
                }
            )

    def merge(self, other: Mapping[str, Any]) -> None:
        """Another process's `to_json()` (a shard of the same run)."""
        self.items += int(other.get("items", 0))
        self.seconds += float(other.get("seconds", 0.0))
        self.checked.update(other.get("checked_by_invariant", {}))
        self.violated.update(other.get("violations_by_invariant", {}))
        self.findings.extend(other.get("findings", []))
        self.not_applicable.extend(
            (str(a), str(b), str(c)) for a, b, c in other.get("not_applicable", [])
        )
        self.explorer.update({k: int(other.get(k, 0)) for k in EXPLORER_COUNTS})
        self.coverage.update({k: int(v) for k, v in other.get("coverage", {}).items()})
        self._add_unreachable(other)
        self.limits.update({k: int(v) for k, v in other.get("known_limits", {}).items()})
        self.line_format = self.line_format and bool(other.get("line_format", True))
        self._add_vulnerabilities(other.get("vulnerabilities", []))

    def applicable_coverage(self) -> dict[str, int]:
        """Per rule that applies to the backend, the states and runs that exercised it."""
        na = self.coverage_not_applicable()
        return {rule: self.coverage.get(rule, 0) for rule in RULES if rule not in na}

    def coverage_not_applicable(self) -> dict[str, str]:
        """rule -> why the backend cannot reach it (`summary.not_applicable`)."""
        return not_applicable(self.coverage, self.line_format, self.unreachable)

    @property
    def violations(self) -> int:
        return sum(self.violated.values())

    def smallest(self) -> dict[str, dict[str, Any]]:
        """Per invariant, the finding to read first: one with a scenario file if any."""
        best: dict[str, dict[str, Any]] = {}
        for f in self.findings:
            name = f.get("invariant") or "scenario expectations"
            current = best.get(name)
            if current is None or (f.get("file") and not current.get("file")):
                best[name] = f
        return best

    def to_json(self, **header: Any) -> dict[str, Any]:
        names = [i.value for i in INVARIANTS]
        extra = sorted(k for k in self.violated if k not in names)
        return {
            **header,
            "items": self.items,
            "seconds": round(self.seconds, 3),
            "violations": self.violations,
            "checked_by_invariant": {k: self.checked.get(k, 0) for k in names},
            "violations_by_invariant": {k: self.violated.get(k, 0) for k in [*names, *extra]},
            **{k: self.explorer.get(k, 0) for k in EXPLORER_COUNTS},
            "coverage": self.applicable_coverage(),
            "coverage_not_applicable": self.coverage_not_applicable(),
            "line_format": self.line_format,
            "known_limits": dict(sorted(self.limits.items())),
            "findings": self.findings,
            "vulnerabilities": [v.to_dict() for v in self.vulnerabilities],
            "not_applicable": [list(x) for x in self.not_applicable],
        }

    def vulnerability_lines(self, cap: int | None = 20) -> list[str]:
        """The explorer items' refused states by cause, a line each (`report_lines`)."""
        if not self.vulnerabilities:
            return []
        states = sum(v.states for v in self.vulnerabilities)
        head = headline(self.vulnerabilities, f"{states:,} refused states of the explorer items")
        return [head, *report_lines(self.vulnerabilities, cap)]

    def table(self, title: str) -> Table:
        table = Table(title=escape(title))
        table.add_column("invariant")
        table.add_column("checked", justify="right")
        table.add_column("violated", justify="right")
        table.add_column("replay the smallest reproduction", overflow="fold")
        smallest = self.smallest()
        names = [i.value for i in INVARIANTS]
        for name in [*names, *(k for k in self.violated if k not in names)]:
            violated = self.violated.get(name, 0)
            cell = ""
            f = smallest.get(name)
            if f is not None:
                cell = escape(f["replay"])
            style = "[red]" if violated else ""
            table.add_row(
                escape(name),
                f"{self.checked.get(name, 0):,}",
                f"{style}{violated:,}{'[/]' if style else ''}",
                cell,
            )
        return table

    def coverage_table(self) -> Table:
        """Per contract rule the explorer can reach, the crash states and runs of the
        suite that exercised it, beside the crash states checked in all."""
        table = Table(
            title=f"contract rules exercised ({self.explorer.get('states_checked', 0):,} "
            "crash states checked)"
        )
        table.add_column("rule")
        table.add_column("situation counted")
        table.add_column("states + runs", justify="right")
        coverage = self.applicable_coverage()
        na = self.coverage_not_applicable()
        for rule, text in RULES.items():
            table.add_row(rule, text, coverage_cell(coverage.get(rule), na.get(rule), markup=True))
        return table

    def limit_lines(self) -> list[str]:
        """Each known limit of the v1 format met, with its count and reason (D.40)."""
        return [
            f"known limit {limit_id} ({LIMITS[limit_id].invariant}, {count:,} state(s)): "
            f"{LIMITS[limit_id].why}"
            for limit_id, count in sorted(self.limits.items())
        ]

    def not_applicable_lines(self) -> list[str]:
        """What did not run, grouped by check and reason."""
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for check, item, why in self.not_applicable:
            grouped[(check, _reason(why))].append(item)
        lines = []
        for (check, why), items in sorted(grouped.items()):
            shown = ", ".join(items[:4]) + (
                f", ... ({len(items)} in all)" if len(items) > 4 else ""
            )
            lines.append(f"{check} ({len(items)}): {why} [{shown}]")
        return lines


def _reason(why: str) -> str:
    """A reason with the per-item detail cut, so that items group: 'needs line_format'."""
    return why.split(" (", 1)[0] if why.startswith("needs ") else why


def merged(reports: Iterable[Mapping[str, Any]]) -> KitReport:
    """Kit reports and explorer summaries added up into one."""
    total = KitReport()
    for data in reports:
        if "checked_by_invariant" in data and "items" in data:
            total.merge(data)
        else:
            total.add_summary(data)
    return total
