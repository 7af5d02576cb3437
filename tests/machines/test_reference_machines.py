"""The state machines on the reference backend and runtime: no invariant may break.

Heavy items (`-m crash`, run by `make crash`) are split per fsync-failure model,
fault family and seed range so xdist spreads them; their failures are exported as
regression scenarios into scenarios/regressions/ (or $CRASHKIT_REGRESSIONS). The
smoke items run in `make test`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from crashkit.faults import FsyncModel
from crashkit.harness.machines import (
    Budget,
    MachineViolation,
    machine_settings,
    orchestrator_machine,
    regressions_dir,
    run_machine,
    store_machine,
)
from crashkit.harness.machines.common import FAULT_FAMILIES
from tests.machines.conftest import REPO

MODELS = tuple(FsyncModel)
SEED_RANGES = 2


def _fail_message(found: list[MachineViolation], exported: Path | None) -> str:
    where = f" (scenarios in {exported})" if exported else ""
    return f"{len(found)} violation(s){where}: " + "; ".join(str(v) for v in found)


def _smoke() -> settings:
    base = settings()
    return machine_settings(Budget(min(base.max_examples, 25), min(base.stateful_step_count, 20)))


def test_store_machine_smoke(tmp_path: Path, item_seed: int | None) -> None:
    found = run_machine(
        store_machine("StoreSmoke"), settings_=_smoke(), export_to=tmp_path, seed_=item_seed
    )
    assert not found, _fail_message(found, tmp_path)


def test_orchestrator_machine_smoke(tmp_path: Path, item_seed: int | None) -> None:
    found = run_machine(
        orchestrator_machine("OrchestratorSmoke"),
        settings_=_smoke(),
        export_to=tmp_path,
        seed_=item_seed,
    )
    assert not found, _fail_message(found, tmp_path)


ITEMS = [
    pytest.param(model, family, part, id=f"{model.value}-{family}-seeds{part}")
    for model in MODELS
    for family in FAULT_FAMILIES
    for part in range(SEED_RANGES)
]


@pytest.mark.crash
@pytest.mark.parametrize(("model", "family", "part"), ITEMS)
def test_store_machine(model: FsyncModel, family: str, part: int, item_seed: int | None) -> None:
    machine = store_machine(
        f"Store_{model.name}_{family}", fsync_model=model, fault_families=frozenset({family})
    )
    exported = regressions_dir(REPO / "scenarios" / "regressions")
    found = run_machine(machine, export_to=exported, seed_=item_seed)
    assert not found, _fail_message(found, exported)


@pytest.mark.crash
@pytest.mark.parametrize(("model", "family", "part"), ITEMS)
def test_orchestrator_machine(
    model: FsyncModel, family: str, part: int, item_seed: int | None
) -> None:
    machine = orchestrator_machine(
        f"Orchestrator_{model.name}_{family}",
        fsync_model=model,
        fault_families=frozenset({family}),
    )
    exported = regressions_dir(REPO / "scenarios" / "regressions")
    found = run_machine(machine, export_to=exported, seed_=item_seed)
    assert not found, _fail_message(found, exported)
