"""The machines catch every broken variant of crashkit.harness.kit.variants, shrink it to a
handful of rules, and export the minimal case as a scenario (into a tmp dir, never
into the repository's scenarios/regressions)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

from crashkit.harness.kit.selftest import TARGETS, Target, machine_for
from crashkit.harness.machines import Budget, MachineViolation, machine_settings, run_machine
from crashkit.harness.scenarios import load_scenario, run_loaded
from tests.machines.replay import replay_orchestrator, replay_store

MAX_STEPS = 6
VARIANT_EXAMPLES = 300
VARIANT_STEPS = 15
STEP_KINDS = {
    "store": {"append", "crash", "restart", "corrupt", "fault"},
    "orchestrator": {"run", "fault", "crash", "restart"},
}
SCHEMA_ORDER = (
    "name",
    "description",
    "backend",
    "runtime",
    "fsync_model",
    "config",
    "input",
    "initial_state",
    "steps",
    "expect",
)


def check_exported(target: Target, violation: MachineViolation, folder: Path) -> None:
    """The scenario file is there, named by invariant and content, in the schema, and
    replaying it breaks the same invariant on the variant and nothing on the reference."""
    files = sorted(folder.glob(f"{violation.invariant}-*.yaml"))
    assert files, f"no scenario exported for {violation.invariant}"
    path = violation.export(folder)  # idempotent: same content, same name
    assert path in files
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["name"] == path.stem
    assert list(data) == [k for k in SCHEMA_ORDER if k in data]
    assert data.get("backend") == target.backend_spec
    assert data.get("runtime") == target.runtime_spec
    assert data["fsync_model"] == target.fsync_model.value
    assert data["expect"] == {"invariants": ["all"]}
    kinds = {next(iter(step)) for step in data["steps"]}
    assert kinds <= STEP_KINDS[target.level], kinds
    replay = replay_store if target.level == "store" else replay_orchestrator
    assert violation.invariant in replay(data), path.read_text()
    reference = {k: v for k, v in data.items() if k not in ("backend", "runtime")}
    assert replay(reference) == set(), path.read_text()
    # And the product's scenario runner agrees: it fails on the variant, under that
    # invariant, and passes on the reference.
    on_variant = run_loaded(load_scenario(path))
    assert not on_variant.passed, path.read_text()
    assert any(
        violation.invariant in c.name or violation.invariant in c.message
        for c in on_variant.failures
    ), [(c.name, c.message) for c in on_variant.failures]
    ref_path = folder / "reference" / path.name
    ref_path.parent.mkdir(exist_ok=True)
    ref_path.write_text(yaml.safe_dump(reference, sort_keys=False), encoding="utf-8")
    on_reference = run_loaded(load_scenario(ref_path))
    # Exported crash steps say `unreachable: last`: a state the fixed code cannot leave
    # is replaced by the last one (noted), so the scenario passes outright.
    assert on_reference.passed, [(c.name, c.message) for c in on_reference.failures]


def _run(
    target: Target, folder: Path, settings_: settings, seed: int | None
) -> list[MachineViolation]:
    return run_machine(machine_for(target), settings_=settings_, export_to=folder, seed_=seed)


@pytest.mark.crash
@pytest.mark.parametrize("target", TARGETS, ids=[t.variant.name for t in TARGETS])
def test_variant_is_caught_shrunk_and_exported(
    target: Target, tmp_path: Path, item_seed: int | None
) -> None:
    # At least the ci budget (catching is what is tested); short runs, so the shrinker
    # gets to a handful of steps; every distinct bug is shrunk on its own (some
    # variants break two rules).
    budget = Budget(max(settings().max_examples, VARIANT_EXAMPLES), VARIANT_STEPS)
    found = _run(target, tmp_path, machine_settings(budget, report_multiple_bugs=True), item_seed)
    caught = {v.invariant: v.steps for v in found}
    assert target.variant.invariant in caught, (target.variant.name, caught)
    assert caught[target.variant.invariant] <= MAX_STEPS, (target.variant.name, caught)
    for v in found:
        check_exported(target, v, tmp_path)


SMOKE = ("no-fsync", "publish-before-persist")


@pytest.mark.parametrize("target", [t for t in TARGETS if t.variant.name in SMOKE], ids=list(SMOKE))
def test_variant_smoke(target: Target, tmp_path: Path) -> None:
    # The export path end to end, in `make test`: a pinned seed under every profile
    # (the search power is what the crash items test).
    seed = zlib.crc32(target.variant.name.encode())
    found = _run(
        target, tmp_path, machine_settings(Budget(50, 15), report_multiple_bugs=False), seed
    )
    assert found, target.variant.name
    assert all(v.steps <= MAX_STEPS for v in found)
    for v in found:
        check_exported(target, v, tmp_path)
