"""The kit's own checks: the reference passes every one, and each variant made for them is
caught under its invariant (every check has a bug it must find)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from crashkit.harness.explore.explorer import NotApplicable
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.kit import checks
from crashkit.harness.kit.variants import VARIANTS, Variant
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import Backend, Capabilities


def _run(check: Callable[[], checks.Outcome]) -> checks.Outcome:
    try:
        return check()
    except NotApplicable as exc:  # (a backend that cannot even be prepared)
        return checks.Outcome(notes=[str(exc)])


def all_checks(backend: Backend) -> dict[str, checks.Outcome]:
    out = {name: _run(partial(row, backend)) for name, row in checks.NEUTRAL_ROWS.items()}
    for row in checks.TABLE_ROWS:
        out[f"table {row}"] = _run(partial(checks.check_table_row, backend, row))
    out["single writer"] = _run(lambda: checks.check_single_writer(backend))
    return out


def test_the_reference_passes_every_check() -> None:
    results = all_checks(jsonl.BACKEND)
    assert {name: r.violations for name, r in results.items() if r.violations} == {}
    assert all(r.restores > 0 for r in results.values())
    # the crash row really restarts on many disks
    assert results["crash-damage-never-fatal"].restores > 20


KIT = [v for v in VARIANTS if "kit" in v.caught_by]


@pytest.mark.parametrize("variant", KIT, ids=[v.name for v in KIT])
def test_each_kit_variant_is_caught_under_its_invariant(variant: Variant) -> None:
    assert variant.backend is not None
    found = {
        name: {v.invariant for v in r.violations} for name, r in all_checks(variant.backend).items()
    }
    caught = [name for name, invariants in found.items() if variant.invariant in invariants]
    assert caught, (variant.name, {k: v for k, v in found.items() if v})


#: Each neutral row and variants it catches under their invariants (a row that catches
#: none would check nothing): what running every row on every variant found, less the
#: SQLite variants the crash row catches too (a quarter of a second each)
CAUGHT_BY_ROW: dict[str, tuple[str, ...]] = {
    "empty-folder-bootstraps": ("missing-file-refuses", "close-raises"),
    "missing-folder-bootstraps": ("missing-file-refuses", "close-raises"),
    "directory-at-path-refused": ("special-file-restores-empty",),
    "fifo-at-path-refused": ("special-file-restores-empty",),
    "open-error-refused": ("open-error-restores-empty",),
    "read-error-refused": ("open-error-restores-empty",),
    "damaged-store-never-empty": ("all-invalid-restores-empty",),
    "damaged-store-nothing-invented": ("close-raises",),
    "declared-damage": ("close-raises",),
    "wrong-json-types-never-restored": ("close-raises", "invalid-lines-salvaged"),
    "compaction-keeps-the-winners": (
        "torn-tail-not-cut",
        "tie-break-to-first",
        "compaction-keeps-first-of-tie",
        "compaction-drops-idle-symbol",
        "compaction-copies-torn-tail",
    ),
    "poisoned-writer-refuses-every-symbol": ("writer-not-poisoned", "poisoned-per-symbol"),
    "crash-damage-never-fatal": (
        "no-fsync",
        "no-dir-fsync-on-create",
        "torn-tail-fatal",
        "sqlite-journal-off",
    ),
}


def test_every_neutral_row_catches_its_variants() -> None:
    assert sorted(CAUGHT_BY_ROW) == sorted(checks.NEUTRAL_ROWS)
    by_name = {v.name: v for v in VARIANTS}
    missed: dict[str, list[str]] = {}
    for name, caught in CAUGHT_BY_ROW.items():
        for variant in (by_name[n] for n in caught):
            assert variant.backend is not None
            outcome = _run(partial(checks.NEUTRAL_ROWS[name], variant.backend))
            if not any(v.invariant is variant.invariant for v in outcome.violations):
                missed.setdefault(name, []).append(variant.name)
    assert missed == {}


def test_checks_that_need_a_capability_say_so() -> None:
    """Only the table rows with no valid record need `line_format`: another format is
    seeded with a row's valid records (through its own appends here, no `Backend.seed`)
    and restores them as the contract selects (docs/backends.md, "Seeding and damage
    hooks"); a row of invalid lines only has no form there and says so."""
    opaque = Backend("opaque", jsonl.open_jsonl_store, capabilities=Capabilities())
    with pytest.raises(NotApplicable, match="does not declare single_writer"):
        checks.check_single_writer(opaque)
    with pytest.raises(NotApplicable, match=r"row 12-only-invalid-lines holds no valid record"):
        checks.check_table_row(opaque, "12-only-invalid-lines")
    for row in ("6-zero-bytes", "9-records-with-blank-lines", "11-records-and-invalid-lines"):
        seeded = checks.check_table_row(opaque, row)
        assert seeded.violations == [] and seeded.restores > 0, row
    # the neutral rows need nothing: they run on it, and it passes them
    assert all(not row(opaque).violations for row in checks.NEUTRAL_ROWS.values())


def test_a_damaged_store_check_names_the_contract_rule() -> None:
    from crashkit.harness.kit.variants import all_invalid_restores_empty

    out = checks.row_damaged_whole(all_invalid_restores_empty)
    assert [v.invariant for v in out.violations] == [Invariant.RESTORE_TABLE]
    assert "C4.7" in out.violations[0].message
