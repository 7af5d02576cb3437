"""What one kit item does, outside pytest: run one part of the work against a backend and
say what was judged, what broke, and how to reproduce each finding.

Every function returns a `KitResult` (plain data, JSON round-trip), which the pytest
items record and the plugin adds up into the final table; `--crashkit-json` writes the
sum, and `crashkit merge` adds up the files of several machines.
"""

from __future__ import annotations

import functools
import shlex
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import Phase
from hypothesis.stateful import RuleBasedStateMachine

from crashkit.harness.explore.explorer import Explorer, NotApplicable
from crashkit.harness.explore.suite import applicable_jobs, run_jobs
from crashkit.harness.explore.summary import Summary, minimal_findings
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.kit import checks
from crashkit.harness.kit.selftest import machine_for, target
from crashkit.harness.kit.suites import KitSuite, MachineItem
from crashkit.harness.kit.variants import Variant
from crashkit.harness.machines import (
    machine_settings,
    orchestrator_machine,
    run_machine,
    store_machine,
)
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios.export import backend_spec, export_findings
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import Backend

#: The table row of a scenario's expectations that did not hold (not an invariant).
EXPECTATIONS = "scenario expectations"

#: Invariants each kind of check judges (what the table's "checked" column counts).
ROW_INVARIANTS = (
    Invariant.RESTORE_TABLE,
    Invariant.DURABILITY,
    Invariant.NO_INVALID_RESTORED,
    Invariant.ENGINE,
    Invariant.PROTOCOL,
)
MACHINE_INVARIANTS = tuple(i for i in Invariant if i is not Invariant.SINGLE_WRITER)


@dataclass(slots=True)
class KitResult:
    """What one item judged and found."""

    check: str
    item: str
    checked: Counter[str] = field(default_factory=Counter)
    violated: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    not_applicable: str | None = None
    seconds: float = 0.0
    explored: dict[str, Any] | None = None  # the explorer's summary, without findings

    def judged(self, invariants: Iterable[Invariant], times: int = 1) -> None:
        for i in invariants:
            self.checked[i.value] += times

    def found(
        self, violations: Iterable[Violation], reproduce: str, file: Path | None = None
    ) -> None:
        for v in violations:
            self.violated[v.invariant.value] += 1
            self.findings.append(
                {
                    "invariant": v.invariant.value,
                    "message": v.message,
                    "file": None if file is None else shown(file),
                    "replay": reproduce,
                }
            )

    @property
    def failed(self) -> bool:
        return bool(self.violated)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "item": self.item,
            "checked": dict(self.checked),
            "violated": dict(self.violated),
            "findings": self.findings,
            "not_applicable": self.not_applicable,
            "seconds": round(self.seconds, 3),
            "explored": self.explored,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KitResult:
        return cls(
            check=data["check"],
            item=data["item"],
            checked=Counter(data.get("checked", {})),
            violated=Counter(data.get("violated", {})),
            findings=list(data.get("findings", [])),
            not_applicable=data.get("not_applicable"),
            seconds=float(data.get("seconds", 0.0)),
            explored=data.get("explored"),
        )

    def message(self) -> str:
        """The failure text of the item: each invariant's first finding and its replay."""
        lines = [f"{self.check} {self.item}: {sum(self.violated.values())} violation(s)"]
        seen: set[str] = set()
        for f in self.findings:
            if f["invariant"] in seen:
                continue
            seen.add(f["invariant"])
            lines.append(f"  {f['invariant'] or EXPECTATIONS}: {f['message']}")
            if f.get("file"):
                lines.append(f"    scenario: {f['file']}")
            lines.append(f"    replay:   {f['replay']}")
        return "\n".join(lines)


def _spec(backend: Backend) -> str:
    return backend.spec or backend.name


def pytest_replay(backend: Backend, item: str) -> str:
    return f"pytest --crashkit-backend={shlex.quote(_spec(backend))} -k {shlex.quote(item)}"


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def scenario_replay(path: Path) -> str:
    return f"crashkit scenarios run {shlex.quote(shown(path))} --trace"


# -- the explorer -----------------------------------------------------------------------


def explore(
    backend: Backend,
    suite: KitSuite,
    kind: str,
    part: int,
    parts: int,
    *,
    findings_dir: Path,
    max_findings: int,
    profile: str = "prefix",
) -> KitResult:
    """One part of the suite's explorer jobs of one kind (crash, sweep, models), under the
    file-system `profile`."""
    started = time.perf_counter()
    result = KitResult(f"explorer ({kind})", f"part{part}of{parts}")
    jobs, _ = applicable_jobs([j for j in suite.jobs() if j.kind == kind], backend)
    if not jobs:
        result.not_applicable = f"the {suite.name} suite has no {kind} job for this backend"
        return result
    explorer = Explorer(backend, shard=(part, parts), max_findings=max_findings, profile=profile)
    summary: Summary = run_jobs(explorer, jobs)
    if kind != "crash" and not summary.sweep_runs and part == 0:
        result.not_applicable = (
            "the backend made no fsync, fdatasync or directory fsync in its clean run: there "
            "is none to fail (and nothing it acknowledges is durable)"
            if kind == "models"
            else "the backend made no file-system call the sweep could fail"
        )
        return result
    for name, count in summary.checked.items():
        result.checked[name] += count
    folder = findings_dir / f"explorer-{kind}-part{part}of{parts}"
    exported: dict[str, Path] = {}
    if summary.findings:
        for written in export_findings(
            summary.findings, folder, backend=backend_spec(backend), explorer=explorer
        ):
            exported[written.name.rsplit("-", 1)[0]] = written
    for f, _ in minimal_findings(summary.findings):
        name = f.violation.invariant.value
        path = exported.get(name)
        replay = scenario_replay(path) if path else pytest_replay(backend, result.item)
        result.findings.append(
            {
                "invariant": name,
                "message": f.violation.message,
                "file": shown(path) if path else None,
                "replay": replay,
            }
        )
    result.violated.update(summary.violated)
    data = summary.to_dict()
    data.pop("findings")
    result.explored = data
    result.seconds = time.perf_counter() - started
    return result


# -- the state machines --------------------------------------------------------------------


def machine(
    backend: Backend,
    suite: KitSuite,
    item: MachineItem,
    *,
    findings_dir: Path,
    profile: str = "prefix",
) -> KitResult:
    """One state-machine item against the backend, crashing under `profile`."""
    started = time.perf_counter()
    result = KitResult(f"{item.level} machine", item.id)
    families = None if item.family is None else frozenset({item.family})
    name = f"Kit_{item.id.replace('-', '_')}"
    cls: type[RuleBasedStateMachine]
    if item.level == "store":
        cls = store_machine(
            name, backend=backend, fsync_model=item.model, fault_families=families, profile=profile
        )
    else:
        cls = orchestrator_machine(
            name,
            backend=backend,
            fsync_model=item.model,
            fault_families=families,
            profile=profile,
        )
    settings_ = machine_settings(
        suite.budget, derandomize=suite.derandomize, database=None, print_blob=False
    )
    seed = zlib.crc32(f"{suite.name}:{item.id}".encode()) if suite.derandomize else None
    folder = findings_dir / f"machine-{item.id}"
    found = run_machine(cls, settings_=settings_, export_to=folder, seed_=seed)
    result.judged(MACHINE_INVARIANTS, suite.budget.examples)
    for v in found:
        path = next(iter(sorted(folder.glob(f"{v.invariant}-*.yaml"))), None)
        result.found(
            v.violations[:1],
            scenario_replay(path) if path else pytest_replay(backend, item.id),
            path,
        )
        result.violated[v.invariant] += len(v.violations) - 1
    result.seconds = time.perf_counter() - started
    return result


# -- the kit's own checks ------------------------------------------------------------------


def row(backend: Backend, name: str) -> KitResult:
    """One backend-neutral restore row."""
    return _check(backend, "restore row", name, lambda: checks.NEUTRAL_ROWS[name](backend))


def table_row(backend: Backend, name: str) -> KitResult:
    """One row of the restore table on a seeded file (line-format backends)."""
    return _check(backend, "restore table", name, lambda: checks.check_table_row(backend, name))


def single_writer(backend: Backend) -> KitResult:
    result = _check(
        backend, "single writer", "single-writer", lambda: checks.check_single_writer(backend)
    )
    if result.not_applicable is None:
        result.judged([Invariant.SINGLE_WRITER])
    return result


#: What the real-process mode judges (what an outside process shows: its exit, its
#: events, its calls; not its acknowledgements).
REAL_INVARIANTS = (
    Invariant.PUBLISH_IMPLIES_COMMITTED,
    Invariant.CRASH_NOT_FATAL,
    Invariant.CONTINUITY,
    Invariant.HALT,
    Invariant.RESTORE_TABLE,
    Invariant.SINGLE_WRITER,
    Invariant.PROTOCOL,
)


def real(backend: Backend, profile: str = "prefix") -> KitResult:
    """`crashkit run` on the backend as a real process on a FUSE mount (`crashkit explore
    --real --sweep`): restarted on every crash state, a second writer tried while it runs,
    and each of its calls on the state failed in turn (EIO). Not applicable where no
    mount can be made or the backend has no `module:attribute` name a child can load."""
    from crashkit.faults.real import fuse_unavailable
    from crashkit.harness.explore import real_mode

    started = time.perf_counter()
    result = KitResult("real process", "real")
    reason = fuse_unavailable()
    if reason is None and backend.spec is None:
        reason = "the backend has no module:attribute name for `crashkit run` to load"
    if reason is not None:
        result.not_applicable = reason
        return result
    assert backend.spec is not None
    workload = replace(real_mode.DEFAULT, profile=profile, second_writer=True)
    summary = real_mode.explore_real(backend.spec, workload)
    if not summary.stopped:
        summary.merge(
            real_mode.sweep_real(backend.spec, workload, summary.recording, max_findings=20)
        )
    result.judged(REAL_INVARIANTS, max(summary.states, 1))
    replay = f"crashkit explore --real --sweep --backend {backend.spec} --profile {profile}"
    result.found([f.violation for f in summary.findings], replay)
    result.seconds = time.perf_counter() - started
    return result


def real_selftest(variant: Variant) -> Caught:
    """One shipped broken variant in real mode: caught under `Variant.real_invariant`."""
    from crashkit.harness.explore.real_mode import explore_real

    want = variant.real_invariant
    assert want is not None
    backend = variant.backend or jsonl.BACKEND
    assert backend.spec is not None
    summary = explore_real(
        backend.spec,
        variant.real_workload or variant.workload,
        runtime=variant.runtime_spec,
        points=variant.points,
        max_findings=0,
        stop_on=frozenset({want.value}),
    )
    found = tuple(sorted(summary.violated))
    return Caught(want.value in found, found)


def _check(backend: Backend, check: str, item: str, run: Any) -> KitResult:
    started = time.perf_counter()
    result = KitResult(check, item)
    try:
        outcome: checks.Outcome = run()
    except NotApplicable as exc:
        result.not_applicable = str(exc)
        return result
    result.judged(ROW_INVARIANTS, max(outcome.restores, 1))
    if outcome.after_crash:
        result.judged((Invariant.CRASH_NOT_FATAL,), outcome.after_crash)
    result.found(outcome.violations, pytest_replay(backend, item))
    result.seconds = time.perf_counter() - started
    return result


# -- the scenario library ------------------------------------------------------------------


def scenario(backend: Backend, path: Path) -> KitResult:
    """One scenario file of the library, run on the backend."""
    started = time.perf_counter()
    result = KitResult("scenario", path.stem)
    run = run_loaded(load_scenario(path), backend=backend)
    if run.not_applicable is not None:
        result.not_applicable = run.not_applicable
        return result
    replay = (
        f"crashkit scenarios run {shlex.quote(shown(path))} "
        f"--backend {shlex.quote(_spec(backend))} --trace"
    )
    invariants = [c for c in run.checks if c.name.startswith("invariant ")]
    for c in invariants:
        name = c.name.removeprefix("invariant ")
        result.checked[name] += 1
        if not c.ok:
            result.found([Violation(Invariant(name), c.message)], replay)
    others = [c for c in run.checks if not c.ok and not c.name.startswith("invariant ")]
    if run.error is not None:
        result.found(
            [Violation(Invariant.PROTOCOL, f"the run raised: {run.error.splitlines()[-1]}")], replay
        )
    for c in others:
        result.findings.append(
            {
                "invariant": None,
                "message": f"{c.name}: {c.message}",
                "file": str(path),
                "replay": replay,
            }
        )
    if others:
        result.violated[EXPECTATIONS] += len(others)
    result.seconds = time.perf_counter() - started
    return result


# -- the self-test ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caught:
    """Whether a driver caught a variant under its invariant, and what it found."""

    caught: bool
    found: tuple[str, ...]


def selftest(variant: Variant, driver: str, suite: KitSuite, library: list[Path]) -> Caught:
    """Run one shipped broken variant through one driver; it must be caught under its
    invariant."""
    found: set[str] = set()
    if driver == "explorer":
        summary = Explorer(variant.backend, runtime_class=variant.runtime_class).run(
            variant.workload, points=variant.points
        )
        found = {f.violation.invariant.value for f in summary.findings}
    elif driver == "scenarios":
        # A variant keeps the reference's call pattern, so a file's trace details apply:
        # it runs each file as written for it.
        for path in library:
            loaded = replace(load_scenario(path), runtime_class=variant.runtime_class)
            if variant.backend is not None:
                loaded = replace(loaded, backend=variant.backend)
            run = run_loaded(loaded)
            found |= {
                c.name.removeprefix("invariant ")
                for c in run.failures
                if c.name.startswith("invariant ")
            }
            if variant.invariant.value in found:
                break
    elif driver == "machine":
        # First without shrinking (the self-test asks whether the bug is found, not for its
        # smallest reproduction, which tests/machines checks; shrinking was most of its
        # time), then, if another invariant broke first, with it: hypothesis tells distinct
        # bugs apart while it shrinks
        seed = zlib.crc32(variant.name.encode())
        for phases in ((Phase.explicit, Phase.reuse, Phase.generate), None):
            settings_ = machine_settings(
                suite.variant_budget,
                derandomize=True,
                database=None,
                report_multiple_bugs=True,
                **({} if phases is None else {"phases": phases}),
            )
            found = {
                v.invariant
                for v in run_machine(machine_for(target(variant)), settings_=settings_, seed_=seed)
            }
            if variant.invariant.value in found:
                break
    elif driver == "real":
        return real_selftest(variant)
    elif driver == "kit":
        assert variant.backend is not None
        for outcome in _kit_outcomes(variant.backend):
            found |= {v.invariant.value for v in outcome.violations}
    return Caught(variant.invariant.value in found, tuple(sorted(found)))


def _kit_outcomes(backend: Backend) -> list[checks.Outcome]:
    """Every kit check on the backend (those that do not apply left out)."""
    runs: list[Callable[[], checks.Outcome]] = [
        functools.partial(row_check, backend) for row_check in checks.NEUTRAL_ROWS.values()
    ]
    runs += [functools.partial(checks.check_table_row, backend, n) for n in checks.TABLE_ROWS]
    runs.append(functools.partial(checks.check_single_writer, backend))
    out: list[checks.Outcome] = []
    for run in runs:
        try:
            out.append(run())
        except NotApplicable:
            continue
    return out
