"""Every scenario file of the library is one pytest item (`make test` runs them under xdist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.judge.invariants import INVARIANTS
from crashkit.harness.scenarios import load_scenario, run_loaded
from tests.scenarios.conftest import LIBRARY, library_files

FILES = library_files()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    loaded = load_scenario(path)
    result = run_loaded(loaded)
    if loaded.spec.mode == "real" and fuse_unavailable() is not None:
        assert result.not_applicable is not None  # never a pass without real processes
        pytest.skip(result.not_applicable)
    problems = [f"{c.name}: {c.message}" for c in result.failures]
    if result.error:
        problems.insert(0, result.error)
    assert result.passed, f"{path.relative_to(LIBRARY)}:\n" + "\n".join(problems)


def test_the_library_is_broad_and_well_formed() -> None:
    """At least 30 scenarios, unique names, each with its one-line reason, and every
    invariant checked by at least one of them."""
    loaded = [load_scenario(p) for p in FILES]
    names = [s.name for s in loaded]
    assert len(loaded) >= 30
    assert len(set(names)) == len(names)
    assert all(s.spec.description.strip() and "\n" not in s.spec.description for s in loaded)
    assert (LIBRARY / "regressions" / ".gitkeep").exists()
    checked: set[str] = set()
    for s in loaded:
        invariants = s.spec.expect.invariants
        checked.update(
            INVARIANTS
            if invariants in (["all"],) or not isinstance(invariants, list)
            else invariants
        )
    assert checked == set(INVARIANTS)
