"""The harness tests itself: every broken variant is caught under the right invariant,
and the backend each breaks (the reference, or the SQLite backend) passes the very same
workloads with zero violations."""

from __future__ import annotations

import pytest

from crashkit.harness.explore import Explorer
from crashkit.harness.explore.catalogue import EDGES
from crashkit.harness.explore.suite import SUITES
from crashkit.harness.explore.workload import Workload
from crashkit.harness.kit.runs import selftest
from crashkit.harness.kit.suites import KIT_SUITES
from crashkit.harness.kit.variants import EDGE_VARIANTS, VARIANTS, Variant
from crashkit.orchestrator.store import jsonl
from tests.scenarios.conftest import in_process_library_files

# Each explored variant caught under its invariant: tests/harness/test_variant_vulnerabilities.py
# (the same run, once, also pins its vulnerabilities); the kit's self-test in `make crash`.


def _once_per_reference_and_workload() -> list[Variant]:
    """The variants, one per (backend it breaks, workload, points): the same run once."""
    seen: dict[tuple[object, ...], Variant] = {}
    for v in VARIANTS + EDGE_VARIANTS:
        seen.setdefault((v.reference, v.workload, v.points), v)
    return list(seen.values())


PAIRS = _once_per_reference_and_workload()


@pytest.mark.parametrize("variant", PAIRS, ids=[v.name for v in PAIRS])
def test_reference_passes_the_same_workload(variant: Variant) -> None:
    summary = Explorer(variant.reference).run(variant.workload, points=variant.points)
    assert summary.findings == [], [f.to_dict() for f in summary.findings[:3]]
    assert summary.vulnerabilities == []  # nothing to group: no invented vulnerability
    # A fatal seeded file is refused before any write, so there is nothing to crash.
    assert summary.states_checked > 0 or summary.outcomes == {"refused": 1}


# -- the variants the ci suite's explorer cannot reach (variants.EDGE_VARIANTS) --------------

EDGE_DRIVEN = [(v, d) for v in EDGE_VARIANTS for d in sorted(v.caught_by)]


@pytest.mark.parametrize(
    ("variant", "driver"), EDGE_DRIVEN, ids=[f"{v.name}-{d}" for v, d in EDGE_DRIVEN]
)
def test_edge_variant_is_caught_by_each_of_its_drivers(variant: Variant, driver: str) -> None:
    """A bug only damage shows (a wrong JSON type, a damaged database): each driver that
    damages, or seeds, catches it under its invariant (the kit's self-test runs these)."""
    caught = selftest(variant, driver, KIT_SUITES["quick"], in_process_library_files())
    assert caught.caught, (variant.name, driver, caught.found)


def test_the_quick_suite_explores_every_edge_variant_workload() -> None:
    """The explorer catches the line-file edge variants on the quick suite's crafted
    workloads (`catalogue.EDGES`), where `pytest --crashkit-suite=quick` runs them."""
    quick = {job.workload for job in SUITES["quick"]() if job.kind == "crash"}
    explored = [v for v in EDGE_VARIANTS if "explorer" in v.caught_by]
    assert explored and all(v.workload in quick for v in explored)
    assert set(EDGES) <= quick


@pytest.mark.parametrize("workload", EDGES, ids=[w.name for w in EDGES])
def test_the_reference_passes_every_edge_workload(workload: Workload) -> None:
    for backend in (jsonl.BACKEND, jsonl.COMPACTING_BACKEND):
        summary = Explorer(backend).run(workload)
        assert summary.findings == [], [f.to_dict() for f in summary.findings[:3]]
