"""The broken variants of tests/harness/broken.py under importable names.

An exported scenario names its backend as `module:factory` and its runtime as
`module:Class`; most broken factories are closures, so this module gives each one
a module-level name (`tests.machines.variants:<name>`), and says which machine
(store level for a broken backend, orchestrator level for a broken runtime)
exercises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis.stateful import RuleBasedStateMachine

from crashkit.faults import FsyncModel
from crashkit.harness.machines import orchestrator_machine, store_machine
from crashkit.harness.machines.common import FAULT_FAMILIES
from crashkit.orchestrator.runtime import RuntimeClass
from crashkit.orchestrator.store.protocol import BackendFactory
from tests.harness.broken import VARIANTS, Variant

BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}


def _factory(name: str) -> BackendFactory:
    factory = BY_NAME[name].factory
    assert factory is not None
    return factory


no_fsync = _factory("no-fsync")
no_dir_fsync_on_create = _factory("no-dir-fsync-on-create")
torn_tail_not_cut = _factory("torn-tail-not-cut")
restore_by_file_order = _factory("restore-by-file-order")
tie_break_to_first = _factory("tie-break-to-first")
torn_tail_fatal = _factory("torn-tail-fatal")
one_invalid_line_fatal = _factory("one-invalid-line-fatal")
all_invalid_restores_empty = _factory("all-invalid-restores-empty")
fsync_error_swallowed = _factory("fsync-error-swallowed")
fsync_retried_and_carried_on = _factory("fsync-retried-and-carried-on")


@dataclass(frozen=True, slots=True)
class Target:
    """How a machine runs one variant: what it plugs in and how a scenario names it."""

    variant: Variant
    level: str  # "store" | "orchestrator"
    backend_spec: str | None
    runtime_spec: str | None
    fsync_model: FsyncModel
    fault_families: frozenset[str]

    @property
    def factory(self) -> BackendFactory | None:
        return self.variant.factory

    @property
    def runtime_class(self) -> RuntimeClass:
        return self.variant.runtime_class


def _families(variant: Variant) -> frozenset[str]:
    """The catalogue's own fault (fsync / write) when it names one, else every family."""
    ops = {rule.op for rule in variant.workload.plan.rules}
    return frozenset(ops) if ops else frozenset(FAULT_FAMILIES)


def _target(variant: Variant) -> Target:
    attr = variant.name.replace("-", "_")
    model, families = variant.workload.model, _families(variant)
    if variant.factory is not None:
        assert globals()[attr] is variant.factory, attr
        return Target(variant, "store", f"{__name__}:{attr}", None, model, families)
    runtime = variant.runtime_class
    spec = f"{runtime.__module__}:{runtime.__qualname__}"
    return Target(variant, "orchestrator", None, spec, model, families)


TARGETS: tuple[Target, ...] = tuple(_target(v) for v in VARIANTS)


def machine_for(target: Target, name: str | None = None) -> type[RuleBasedStateMachine]:
    """The machine class that runs one variant."""
    name = name or "Broken_" + target.variant.name.replace("-", "_")
    if target.level == "store":
        return store_machine(
            name,
            factory=target.factory,
            backend_spec=target.backend_spec,
            fsync_model=target.fsync_model,
            fault_families=target.fault_families,
        )
    return orchestrator_machine(
        name,
        runtime_class=target.runtime_class,
        runtime_spec=target.runtime_spec,
        fsync_model=target.fsync_model,
        fault_families=target.fault_families,
    )
