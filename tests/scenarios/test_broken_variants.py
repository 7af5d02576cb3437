"""The library has teeth: run with each deliberately broken backend or runtime of
crashkit.harness.kit.variants, it fails, and under the invariant that variant breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashkit.harness.kit.runs import selftest
from crashkit.harness.kit.suites import KIT_SUITES
from crashkit.harness.kit.variants import VARIANTS, Variant
from crashkit.harness.scenarios import load_scenario
from tests.scenarios.conftest import library_files


def _library() -> list[Path]:
    """The in-process files: a real-mode file is four times the rest of the library's
    time per variant (its broken variants are tests/scenarios/test_real_scenarios.py's)."""
    return [p for p in library_files() if load_scenario(p).spec.mode != "real"]


LIBRARY = [v for v in VARIANTS if "scenarios" in v.caught_by]


@pytest.mark.parametrize("variant", LIBRARY, ids=[v.name for v in LIBRARY])
def test_library_catches_the_variant_under_its_invariant(variant: Variant) -> None:
    """The kit's self-test driver (`runs.selftest`, what `make crash` runs for every
    variant), on the in-process files: it stops at the first file that names the
    invariant."""
    caught = selftest(variant, "scenarios", KIT_SUITES["quick"], _library())
    assert caught.caught, (
        f"no library scenario reports {variant.invariant} for {variant.name}: {caught.found}"
    )
