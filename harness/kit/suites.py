"""How much the kit runs: `quick` (about a minute), `ci` (what `make crash` runs on the
reference), `nightly` (ten times more), and how the work splits into pytest items.

A suite is plain data so that every process of a run (pytest-xdist workers, machines of
a CI matrix given `--crashkit-shard i/n`) derives the same items in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crashkit.faults import FsyncModel
from crashkit.harness.explore.suite import SUITES, Job
from crashkit.harness.machines.common import FAULT_FAMILIES, Budget


@dataclass(frozen=True, slots=True)
class MachineItem:
    """One state-machine item: which machine, under which fsync model and fault family
    (None: drawn per example / every family), and which seed range."""

    level: str  # "store" | "orchestrator"
    model: FsyncModel | None
    family: str | None
    part: int

    @property
    def id(self) -> str:
        model = self.model.value if self.model else "any-model"
        family = self.family or "any-fault"
        return f"{self.level}-{model}-{family}-seeds{self.part}"


@dataclass(frozen=True, slots=True)
class KitSuite:
    name: str
    jobs: Callable[[], tuple[Job, ...]]  # the explorer's jobs (crash, sweep, models)
    parts: int  # items each kind of explorer job is split into
    machines: tuple[MachineItem, ...]
    budget: Budget  # examples and steps per machine item
    derandomize: bool  # same examples on every run (quick, ci) or new ones (nightly)
    variant_budget: Budget  # per machine item of the self-test


def _machines(parts: int) -> tuple[MachineItem, ...]:
    return tuple(
        MachineItem(level, model, family, part)
        for level in ("store", "orchestrator")
        for model in FsyncModel
        for family in FAULT_FAMILIES
        for part in range(parts)
    )


KIT_SUITES: dict[str, KitSuite] = {
    "quick": KitSuite(
        "quick",
        SUITES["quick"],
        parts=2,
        machines=(
            MachineItem("store", None, None, 0),
            MachineItem("orchestrator", None, None, 0),
        ),
        budget=Budget(30, 15),
        derandomize=True,
        variant_budget=Budget(150, 15),
    ),
    "ci": KitSuite(
        "ci",
        SUITES["ci"],
        parts=8,
        machines=_machines(2),
        # (100 examples per item, 3,600 in all: what the machines found only after minutes,
        # poison scope and a second writer beside a halted one, the kit's own checks and the
        # explorer now find on every suite, so the machines' budget buys breadth here)
        budget=Budget(100, 30),
        derandomize=True,
        variant_budget=Budget(300, 15),
    ),
    "nightly": KitSuite(
        "nightly",
        SUITES["nightly"],
        parts=32,
        machines=_machines(4),
        budget=Budget(1000, 40),
        derandomize=False,
        variant_budget=Budget(1000, 15),
    ),
}

#: The explorer job kinds, each its own test function.
JOB_KINDS = ("crash", "sweep", "models")
