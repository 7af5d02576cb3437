"""What both state machines share: the reused CrashFS, violations that carry their
scenario, the crash-state choice, and running a machine with regression export."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from crashkit.faults import CrashFS, CrashState, FaultRule, OpKind
from crashkit.harness.judge.invariants import Violation
from crashkit.harness.judge.paths import STATE_FILE_GLOB
from crashkit.harness.scenarios import export

#: One CrashFS per process, reused by every example (it keeps its pyfakefs Patcher
#: parked between runs: a new Patcher per example would rebuild the module cache).
_FS: CrashFS | None = None

#: Health checks that misfire on I/O-heavy stateful examples.
SUPPRESSED = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much)


def crash_fs() -> CrashFS:
    """The process's shared CrashFS (record=True: crash points need the op snapshots)."""
    global _FS
    if _FS is None:
        _FS = CrashFS(record=True)
    return _FS


class MachineViolation(AssertionError):
    """An invariant broken by a machine run, with the run as an exportable scenario.

    Subclassed per invariant (`violation_type`) so hypothesis treats each
    invariant as a distinct bug and shrinks each on its own.
    """

    invariant: str = ""

    def __init__(self, violations: Sequence[Violation], body: dict[str, Any], steps: int) -> None:
        lines = [f"{v.invariant}: {v.message}" for v in violations]
        super().__init__(f"after {steps} step(s): " + "; ".join(lines))
        self.violations = tuple(violations)
        self.body = body
        self.steps = steps

    def export(self, directory: Path | str) -> Path:
        """Write the minimal case as `<invariant>-<sha>.yaml` under `directory`."""
        return export.write_scenario(self.invariant, self.body, directory)

    @property
    def first(self) -> Violation:
        return self.violations[0]


_TYPES: dict[str, type[MachineViolation]] = {}


def violation_type(invariant: str) -> type[MachineViolation]:
    """The MachineViolation subclass for one invariant (created once, then reused)."""
    found = _TYPES.get(invariant)
    if found is None:
        slug = "".join(c if c.isalnum() else "_" for c in invariant)
        found = type(f"Violation_{slug}", (MachineViolation,), {"invariant": invariant})
        _TYPES[invariant] = found
    return found


def raise_violations(
    violations: Sequence[Violation], body: Callable[[], dict[str, Any]], steps: int
) -> None:
    """Raise for the first violated invariant (the others of the same check ride along)."""
    if not violations:
        return
    invariant = violations[0].invariant
    same = [v for v in violations if v.invariant == invariant]
    raise violation_type(invariant)(same, body(), steps)


@dataclass(frozen=True, slots=True)
class CrashChoice:
    """A crash point (None = now) with all its crash states and the one drawn."""

    point: int | None
    states: tuple[CrashState, ...]
    index: int

    @property
    def state(self) -> CrashState:
        return self.states[self.index]

    def step(self, index: int | None = None) -> dict[str, Any]:
        """The scenario step that crashes into state `index` (default: the drawn one):
        named by its exact cut text, or by its index when two states share a text."""
        i = self.index if index is None else index
        text = self.states[i].cut
        cut: Any = text if sum(1 for s in self.states if s.cut == text) == 1 else i
        step: dict[str, Any] = {"point": "last" if self.point is None else self.point, "cut": cut}
        if isinstance(cut, str) and cut not in ("first", "last"):
            step["unreachable"] = "last"  # on fixed code the bad state may not exist
        return {"crash": step}

    def others(self) -> list[int]:
        """Indices of the states not drawn (probed: restored and judged, then left)."""
        return [i for i in range(len(self.states)) if i != self.index]


def draw_crash(
    data: st.DataObject, fs: CrashFS, points: Sequence[int], profile: str = "prefix"
) -> CrashChoice:
    """Pick a crash point (None = now, preferred by the shrinker; then the latest ops
    first) and one of its states under the file-system `profile`."""
    # Counted back from now, so deleting earlier steps does not shift the choice.
    at = data.draw(index_below(len(points) + 1), label="crash point (0 = now, 1 = last op)")
    point = None if at == 0 else points[-at]
    states = tuple(fs.crash_states(point, profile=profile))
    index = data.draw(index_below(len(states)), label="crash state")
    return CrashChoice(point, states, index)


@functools.lru_cache(maxsize=256)
def index_below(n: int) -> st.SearchStrategy[int]:
    """`integers(0, n - 1)`, built once per n: building strategies inside a rule
    costs more than drawing from them."""
    return st.integers(0, n - 1)


@dataclass(frozen=True, slots=True)
class Budget:
    """How much one pytest item runs: examples and steps per example."""

    examples: int
    steps: int


def machine_settings(budget: Budget | None = None, **overrides: Any) -> settings:
    """The loaded profile (dev/ci/nightly), with the machine's must-haves: no deadline
    (a whole run is one test call), slow-example health checks off."""
    base = settings()
    kwargs: dict[str, Any] = {
        "deadline": None,
        # "explain" replays every shrunk step variation: minutes on I/O-heavy machines
        "phases": [p for p in base.phases if p is not Phase.explain],
        "suppress_health_check": [*base.suppress_health_check, *SUPPRESSED],
    }
    if budget is not None:
        kwargs["max_examples"] = budget.examples
        kwargs["stateful_step_count"] = budget.steps
    kwargs.update(overrides)
    return settings(base, **kwargs)


def violations_in(exc: BaseException) -> list[MachineViolation]:
    """Every MachineViolation in an exception (hypothesis groups distinct bugs)."""
    if isinstance(exc, MachineViolation):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [v for inner in exc.exceptions for v in violations_in(inner)]
    return []


def run_machine(
    machine: type[RuleBasedStateMachine],
    *,
    settings_: settings | None = None,
    export_to: Path | str | None = None,
    seed_: int | None = None,
) -> list[MachineViolation]:
    """Run a machine as a hypothesis test; return the (shrunk) violations it raised,
    each exported under `export_to` if given. Any other failure propagates.

    `seed_` pins the random stream (used when the profile is derandomised, so that
    items of one machine explore different examples, deterministically).
    """
    target: type[RuleBasedStateMachine] = machine
    if seed_ is not None:
        target = seed(seed_)(type(machine.__name__, (machine,), {}))
    try:
        run_state_machine_as_test(target, settings=settings_ or machine_settings())
    except BaseException as exc:
        found = violations_in(exc)
        if not found:
            raise
        if export_to is not None:
            for v in found:
                v.export(export_to)
        return found
    return []


def regressions_dir(default: Path | str | None) -> Path | None:
    """`CRASHKIT_REGRESSIONS` if set (empty = do not export), else `default`."""
    value = os.environ.get("CRASHKIT_REGRESSIONS")
    if value is not None:
        return Path(value) if value else None
    return None if default is None else Path(default)


#: Fault families a machine may inject into the state file (item split: one family each).
FAULT_FAMILIES: tuple[str, ...] = (OpKind.WRITE.value, "short_write", OpKind.FSYNC.value)
#: The syncs of a file (not of a directory): what the mark-clean model can lose.
FILE_SYNCS = frozenset({OpKind.FSYNC, OpKind.FDATASYNC})


_ARM = st.integers(0, 4)
_NTH = st.integers(1, 2)
_KEPT = st.integers(0, 80)
_ERRNOS = st.sampled_from(("EIO", "ENOSPC", "EDQUOT"))


def optional_fault(
    data: st.DataObject, families: Sequence[str], path: str = STATE_FILE_GLOB
) -> FaultRule | None:
    """A fault to arm before this append or tick, one time in five (a fired fault poisons
    the writer until the next restart, so more would mostly test refusals).

    What is drawn depends only on earlier draws, never on the machine's state, so the
    shrinker can delete earlier steps without shifting the later ones' choices."""
    if not families or data.draw(_ARM, label="arm a fault first") != 4:
        return None
    return draw_fault(data, families, path)


def draw_fault(
    data: st.DataObject, families: Sequence[str], path: str = STATE_FILE_GLOB
) -> FaultRule:
    """One rule on the backend's files (`path`, a pattern): a failing write, a short write
    or a failing fsync."""
    ordered = sorted(families)
    family = ordered[data.draw(index_below(len(ordered)), label="fault family")]
    nth = data.draw(_NTH, label="nth")
    persistent = data.draw(st.booleans(), label="persistent")
    if family == "short_write":
        kept = data.draw(_KEPT, label="bytes kept")
        return FaultRule(OpKind.WRITE, path, nth, "EIO", persistent, short_write=kept)
    errno = data.draw(_ERRNOS, label="errno")
    return FaultRule(family, path, nth, errno, persistent)


def folder_empty(fs: CrashFS, path: str) -> bool:
    """Whether the folder `path` is missing or holds no file (read off the tree directly)."""
    node: Any = fs.filesystem.root
    for name in path.split("/")[1:]:
        entries = getattr(node, "entries", None)
        if entries is None or name not in entries:
            return True
        node = entries[name]
    return not getattr(node, "entries", None)


def visible_bytes(fs: CrashFS, path: str) -> bytes | None:
    """What a reader of `path` sees now, read off the fake file system's tree directly
    (no intercepted call, no trace entry, none of `visible_image`'s path handling)."""
    node: Any = fs.filesystem.root
    for name in path.split("/")[1:]:
        entries = getattr(node, "entries", None)
        if entries is None or name not in entries:
            return None
        node = entries[name]
    data = getattr(node, "byte_contents", None)
    return data if isinstance(data, bytes) else None
