"""How each driver runs a broken variant: the kit's self-test and the project's tests use
the same wiring, so "caught in the self-test" means caught by the driver a user runs.

A variant that breaks a backend runs in the store-level machine; one that breaks the
runtime in the orchestrator-level machine, both with the variant's own fsync-failure
model and, when its workload names one, its own fault family.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis.stateful import RuleBasedStateMachine

from crashkit.faults import FsyncModel
from crashkit.harness.kit.variants import ALL_VARIANTS, Variant
from crashkit.harness.machines import orchestrator_machine, store_machine
from crashkit.harness.machines.common import FAULT_FAMILIES
from crashkit.harness.scenarios.export import backend_spec


@dataclass(frozen=True, slots=True)
class Target:
    """How a machine runs one variant: what it plugs in and how a scenario names it."""

    variant: Variant
    level: str  # "store" | "orchestrator"
    fsync_model: FsyncModel
    fault_families: frozenset[str]

    @property
    def backend_spec(self) -> str | None:
        return None if self.variant.backend is None else backend_spec(self.variant.backend)

    @property
    def runtime_spec(self) -> str | None:
        return self.variant.runtime_spec


def _families(variant: Variant) -> frozenset[str]:
    """The catalogue's own fault (fsync / write) when it names one, else every family."""
    ops = {rule.op for rule in variant.workload.plan.rules}
    return frozenset(ops) if ops else frozenset(FAULT_FAMILIES)


def target(variant: Variant) -> Target:
    level = "store" if variant.backend is not None else "orchestrator"
    return Target(variant, level, variant.workload.model, _families(variant))


#: The variants a state machine must catch.
TARGETS: tuple[Target, ...] = tuple(target(v) for v in ALL_VARIANTS if "machine" in v.caught_by)


def machine_for(target: Target, name: str | None = None) -> type[RuleBasedStateMachine]:
    """The machine class that runs one variant."""
    name = name or "Broken_" + target.variant.name.replace("-", "_")
    if target.level == "store":
        return store_machine(
            name,
            backend=target.variant.backend,
            fsync_model=target.fsync_model,
            fault_families=target.fault_families,
        )
    return orchestrator_machine(
        name,
        runtime_class=target.variant.runtime_class,
        runtime_spec=target.runtime_spec,
        fsync_model=target.fsync_model,
        fault_families=target.fault_families,
    )
