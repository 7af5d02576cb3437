"""The library has teeth: run with each deliberately broken backend or runtime of
crashkit.harness.kit.variants, it fails, and under the invariant that variant breaks."""

from __future__ import annotations

import pytest

from crashkit.harness.kit.runs import selftest
from crashkit.harness.kit.suites import KIT_SUITES
from crashkit.harness.kit.variants import VARIANTS, Variant
from tests.scenarios.conftest import in_process_library_files

LIBRARY = [v for v in VARIANTS if "scenarios" in v.caught_by]


@pytest.mark.parametrize("variant", LIBRARY, ids=[v.name for v in LIBRARY])
def test_library_catches_the_variant_under_its_invariant(variant: Variant) -> None:
    """The kit's self-test driver (`runs.selftest`, what `make crash` runs for every
    variant), on the in-process files: it stops at the first file that names the
    invariant."""
    caught = selftest(variant, "scenarios", KIT_SUITES["quick"], in_process_library_files())
    assert caught.caught, (
        f"no library scenario reports {variant.invariant} for {variant.name}: {caught.found}"
    )
