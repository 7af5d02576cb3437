"""The state machines on the reference backend and runtime, briefly: no invariant may break.

These smoke items run in `make test`. The full runs (split per fsync-failure model,
fault family and seed range) are the kit's `test_state_machine` items, which
`make crash` runs on the reference (`--crashkit-backend`).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings

from crashkit.faults import FsyncModel
from crashkit.harness.machines import (
    Budget,
    MachineViolation,
    machine_settings,
    orchestrator_machine,
    run_machine,
    store_machine,
)

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
