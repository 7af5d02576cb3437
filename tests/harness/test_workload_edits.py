"""Workloads whose input is edited: ticks delivered twice (C6.6) and late snapshots (C6.5).

The explorer crashes them like any workload; across each crash and restart the
decisions, duplicates and hard-failed symbols must be those of the uninterrupted run
(C6.8). A finding on such a workload exports with its snapshots spelled out, and the
exported scenario fails on the broken code and passes on the reference.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from crashkit.harness.explore import Explorer, Workload
from crashkit.harness.kit.variants import PublishBeforePersist
from crashkit.harness.scenarios import export, load_scenario, run_loaded
from crashkit.orchestrator.sources import ticks

EDITED = Workload(3, 8, seed=4, duplicates=(1, 5), late=(3,), name="edited")


def test_the_edits_are_where_the_workload_says() -> None:
    plain = Workload(3, 8, seed=4).snapshots()
    edited = EDITED.snapshots()
    groups = list(ticks(plain))
    assert len(edited) == len(plain) + 2 * 3 + 1
    # tick 1 delivered twice in a row; after tick 3 the snapshot of tick 2 of symbol 3 % 3
    at = 3 + 3
    assert edited[3:at] == groups[1] and edited[at : at + 3] == groups[1]
    late = edited[5 * 3]  # after ticks 0, 1, 1 again, 2 and 3
    assert (late.symbol, late.engine_timestamp_ms) == (
        groups[2][0].symbol,
        groups[2][0].engine_timestamp_ms,
    )
    assert Workload.from_dict(EDITED.to_dict()) == EDITED


def test_the_reference_passes_an_edited_workload_at_every_crash_point() -> None:
    summary = Explorer().run(EDITED)
    assert summary.states_checked > 100
    assert summary.violations == 0, [f.violation for f in summary.findings]


def test_a_finding_on_an_edited_workload_exports_its_snapshots(tmp_path: Path) -> None:
    summary = Explorer(runtime_class=PublishBeforePersist).run(EDITED)
    assert summary.findings
    paths = export.export_findings(
        summary.findings, tmp_path, runtime="crashkit.harness.kit.variants:PublishBeforePersist"
    )
    assert paths
    for path in paths:
        data = yaml.safe_load(path.read_text())
        assert len(data["input"]["snapshots"]) == len(EDITED.snapshots())
        assert run_loaded(load_scenario(path)).failures
        data.pop("runtime")
        fixed = tmp_path / "fixed" / path.name
        fixed.parent.mkdir(exist_ok=True)
        fixed.write_text(yaml.safe_dump(data, sort_keys=False))
        clean = run_loaded(load_scenario(fixed))
        assert clean.passed, clean.failures
