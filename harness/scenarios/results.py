"""What a scenario run produced: one `Check` per expectation, the `Observed` run, the result.

Shared by the runner (which fills them), the expectation compare and `--update`
(which read them) and the JUnit writer, so none of those imports another.
"""

from __future__ import annotations

from dataclasses import dataclass

from crashkit.orchestrator.events import Event

#: How check names begin: a step that checks itself (`steps[3]...`) and an invariant
#: (`invariant 1-durability`). Neither is an expectation `--update` may rewrite.
STEP_CHECK = "steps["
INVARIANT_CHECK = "invariant "


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation (or self-checking step) and whether it held."""

    name: str
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class Observed:
    """What the run did, in the shape of the `expect` block."""

    startup: dict[str, object] | None
    halted_tick: int | None
    exit_code: int | None
    events: tuple[Event, ...]
    final_states: dict[str, dict[str, object]]
    restore_report: dict[str, object]
    violations: dict[str, tuple[str, ...]]  # invariant -> messages (every id present)
    applicable: tuple[str, ...]  # invariants checked when `expect.invariants` is absent


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    path: str
    checks: tuple[Check, ...]
    observed: Observed | None
    seconds: float
    error: str | None = None  # the runner itself failed (an exception in the code under test)
    traces: tuple[tuple[str, ...], ...] = ()  # the op trace of each boot of the fake disk
    notes: tuple[str, ...] = ()  # what the crash steps chose, for the reader
    #: Why the scenario does not apply to the backend it was asked to run on (not run).
    not_applicable: str | None = None

    @property
    def passed(self) -> bool:
        """Ran and every check held (a scenario that does not apply did not pass)."""
        return self.not_applicable is None and self.error is None and all(c.ok for c in self.checks)

    @property
    def failed(self) -> bool:
        return self.not_applicable is None and not self.passed

    @property
    def status(self) -> str:
        """pass | FAIL | ERROR | n/a"""
        if self.not_applicable is not None:
            return "n/a"
        if self.error is not None:
            return "ERROR"
        return "pass" if self.passed else "FAIL"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def stuck(self) -> bool:
        """Failed in a way `--update` cannot rewrite: a runner error, a failed step, a
        violated invariant (the file describes a bug to fix, not a value to record)."""
        return self.not_applicable is None and (
            self.error is not None
            or any(c.name.startswith((STEP_CHECK, INVARIANT_CHECK)) for c in self.failures)
        )

    @property
    def first_failure(self) -> str:
        if self.not_applicable is not None:
            return f"not applicable: {self.not_applicable}"
        if self.error is not None:
            return self.error.splitlines()[0]
        bad = self.failures
        return f"{bad[0].name}: {bad[0].message}" if bad else ""
