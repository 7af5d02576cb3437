"""The harness tests itself: every broken variant is caught under the right invariant,
and the backend each breaks (the reference, or the SQLite backend) passes the very same
workloads with zero violations."""

from __future__ import annotations

import pytest

from crashkit.harness.explore import Explorer
from crashkit.harness.kit.variants import VARIANTS, Variant

EXPLORED = [v for v in VARIANTS if "explorer" in v.caught_by]


@pytest.mark.parametrize("variant", EXPLORED, ids=[v.name for v in EXPLORED])
def test_variant_is_caught_under_its_invariant(variant: Variant) -> None:
    explorer = Explorer(variant.backend, runtime_class=variant.runtime_class)
    summary = explorer.run(variant.workload, points=variant.points)
    found = {f.violation.invariant for f in summary.findings}
    assert variant.invariant in found, (variant.name, summary.to_dict()["violations_by_invariant"])


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_reference_passes_the_same_workload(variant: Variant) -> None:
    summary = Explorer(variant.reference).run(variant.workload, points=variant.points)
    assert summary.findings == [], [f.to_dict() for f in summary.findings[:3]]
    # A fatal seeded file is refused before any write, so there is nothing to crash.
    assert summary.states_checked > 0 or summary.outcomes == {"refused": 1}
