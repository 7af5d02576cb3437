"""The state machines on the reference backend and runtime, briefly: no invariant may break.

These smoke items run in `make test`. The full runs (split per fsync-failure model,
fault family and seed range) are the kit's `test_state_machine` items, which
`make crash` runs on the reference (`--crashkit-backend`).
"""

from __future__ import annotations

import zlib
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
from crashkit.orchestrator.store import jsonl

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


def test_store_machine_on_a_compacting_backend_judges_damage_by_records(tmp_path: Path) -> None:
    """A start that compacts renumbers the file: a `corrupt` step then damages whatever
    record now sits at its line. The machine judges what the damaged file still holds
    (its winners), not its own ledger minus one line. On the kit's quick seed this used
    to report a false 1-durability (line 2 was the only copy of a record acknowledged
    four times)."""
    found = run_machine(
        store_machine("CompactingStore", backend=jsonl.COMPACTING_BACKEND),
        settings_=machine_settings(
            Budget(30, 15), derandomize=True, database=None, print_blob=False
        ),
        export_to=tmp_path,
        seed_=zlib.crc32(b"quick:store-any-model-any-fault-seeds0"),
    )
    assert not found, _fail_message(found, tmp_path)
