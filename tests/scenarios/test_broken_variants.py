"""The library has teeth: run with each deliberately broken backend or runtime of
crashkit.harness.kit.variants, it fails, and under the invariant that variant breaks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crashkit.harness.kit.variants import VARIANTS, Variant
from crashkit.harness.scenarios import LoadedScenario, load_scenario, run_loaded
from tests.scenarios.conftest import library_files


def _library() -> list[LoadedScenario]:
    """The in-process files: a real-mode file is four times the rest of the library's
    time per variant (its broken variants are tests/scenarios/test_real_scenarios.py's)."""
    return [sc for sc in (load_scenario(p) for p in library_files()) if sc.spec.mode != "real"]


LIBRARY = [v for v in VARIANTS if "scenarios" in v.caught_by]


@pytest.mark.parametrize("variant", LIBRARY, ids=[v.name for v in LIBRARY])
def test_library_catches_the_variant_under_its_invariant(variant: Variant) -> None:
    caught: list[str] = []
    for scenario in _library():
        broken = replace(scenario, runtime_class=variant.runtime_class)
        if variant.backend is not None:
            broken = replace(broken, backend=variant.backend)
        result = run_loaded(broken)
        if any(c.name == f"invariant {variant.invariant}" for c in result.failures):
            caught.append(scenario.name)
    assert caught, f"no library scenario reports {variant.invariant} for {variant.name}"
