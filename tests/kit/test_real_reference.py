"""The real-process mode's other half of the self-test: the backend each shipped variant
breaks (the reference, or the SQLite backend) passes, as a real process, every workload
a variant is caught on in real mode (the kit's `--crashkit-selftest --crashkit-real`
items are the first half). Part of `make crash`; skipped, with the reason, without FUSE."""

from __future__ import annotations

import pytest

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.explore.real_mode import explore_real
from crashkit.harness.explore.workload import Workload
from crashkit.harness.kit.variants import VARIANTS
from crashkit.orchestrator.store import jsonl

UNAVAILABLE = fuse_unavailable()


def _pairs() -> list[tuple[str, Workload, str]]:
    """(reference spec, workload, points) once each, over the variants real mode runs."""
    seen: dict[tuple[str, Workload, str], None] = {}
    for v in VARIANTS:
        if v.real_invariant is None:
            continue
        spec = (v.reference or jsonl.BACKEND).spec
        assert spec is not None
        seen[(spec, v.real_workload or v.workload, v.points)] = None
    return list(seen)


PAIRS = _pairs()


@pytest.mark.crash
@pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")
@pytest.mark.parametrize(
    ("spec", "workload", "points"),
    PAIRS,
    ids=[f"{s.split(':')[0].rsplit('.', 1)[-1]}-{w.name}" for s, w, _ in PAIRS],
)
def test_reference_passes_the_variant_workload_in_real_mode(
    spec: str, workload: Workload, points: str
) -> None:
    summary = explore_real(spec, workload, points=points, max_findings=3)
    assert summary.violations == 0, [f.to_dict() for f in summary.findings]
    # a fatal seeded disk is refused before any write: then the recorded run is all
    assert summary.states > 0 or summary.recording.returncode == 3
