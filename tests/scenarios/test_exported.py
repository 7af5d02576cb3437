"""Regression files written by `crashkit.harness.scenarios.export` replay in the runner: an explorer finding
exported as a scenario fails on the broken code it came from; on the reference code no
invariant fails (its crash state may no longer exist, which the runner says). (Every
variant the explorer catches exports a scenario that fails: tests/harness/
test_variant_vulnerabilities.py, on the explorer run that names its vulnerabilities.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crashkit.harness.explore import Explorer
from crashkit.harness.kit.variants import (
    VARIANTS,
    PublishBeforePersist,
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
