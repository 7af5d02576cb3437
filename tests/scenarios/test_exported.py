"""Regression files written by `crashkit.harness.scenarios.export` replay in the runner: an explorer finding
exported as a scenario fails on the broken code it came from; on the reference code no
invariant fails (its crash state may no longer exist, which the runner says)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crashkit.harness.explore import Explorer
from crashkit.harness.kit.variants import (
    VARIANTS,
    PublishBeforePersist,
    Variant,
    no_dir_fsync_on_create,
)
from crashkit.harness.scenarios import load_scenario, run_loaded

export = pytest.importorskip("crashkit.harness.scenarios.export")
BY_NAME = {v.name: v for v in VARIANTS}

CASES = [
    ("no-dir-fsync-on-create", {"backend": "crashkit.harness.kit.variants:no_dir_fsync_on_create"}),
    ("publish-before-persist", {"runtime": "crashkit.harness.kit.variants:PublishBeforePersist"}),
]


@pytest.mark.parametrize(("name", "spec"), CASES, ids=[c[0] for c in CASES])
def test_an_exported_finding_fails_until_the_bug_is_gone(
    tmp_path: Path, name: str, spec: dict[str, str]
) -> None:
    variant = BY_NAME[name]
    explorer = (
        Explorer(no_dir_fsync_on_create)
        if "backend" in spec
        else Explorer(runtime_class=PublishBeforePersist)
    )
    summary = explorer.run(variant.workload)
    assert summary.findings
    paths = export.export_findings(summary.findings, tmp_path, **spec)
    exported = [p for p in paths if p.stem.startswith(variant.invariant)]
    assert exported, [p.name for p in paths]
    for path in exported:
        result = run_loaded(load_scenario(path))
        assert f"invariant {variant.invariant}" in [c.name for c in result.failures], (
            path.read_text(),
            result.failures,
        )
        # the same steps on the reference code pass
        data = yaml.safe_load(path.read_text())
        for key in spec:
            data.pop(key)
        fixed = tmp_path / "fixed" / path.name
        fixed.parent.mkdir(exist_ok=True)
        fixed.write_text(yaml.safe_dump(data, sort_keys=False))
        clean = run_loaded(load_scenario(fixed))
        # a crash state the fixed code cannot leave is replaced (`unreachable: last`)
        assert clean.passed, clean.failures


def _spec(variant: Variant) -> dict[str, str]:
    spec: dict[str, str] = {}
    if variant.backend is not None:
        assert variant.backend.spec is not None  # (every shipped variant is declared named)
        spec["backend"] = variant.backend.spec
    if variant.runtime_spec is not None:
        spec["runtime"] = variant.runtime_spec
    return spec


EXPORTED = [v for v in VARIANTS if "explorer" in v.caught_by and v.name != "no-writer-lock"]


@pytest.mark.parametrize("variant", EXPORTED, ids=[v.name for v in EXPORTED])
def test_every_variant_the_explorer_catches_exports_a_scenario_that_fails(
    tmp_path: Path, variant: Variant
) -> None:
    """What the explorer writes for each variant it catches replays as a failure of the
    same invariant: the scenario tells the truth about the bug it came from."""
    explorer = Explorer(variant.backend, runtime_class=variant.runtime_class)
    summary = explorer.run(variant.workload, points=variant.points)
    paths = export.export_findings(summary.findings, tmp_path, explorer=explorer, **_spec(variant))
    exported = [p for p in paths if p.stem.startswith(variant.invariant)]
    assert exported, [p.name for p in paths]
    result = run_loaded(load_scenario(exported[0]))
    assert f"invariant {variant.invariant}" in [c.name for c in result.failures], (
        exported[0].read_text()[:3000],
        [c.name for c in result.failures],
    )
