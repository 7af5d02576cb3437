"""The in-process explorer names each broken variant's defect as vulnerabilities: the
classes pinned per variant (largest group first), so a change of the grouping is made
on purpose. Each planted defect is one vulnerability, of the class its docstring implies,
for every one of the 41 explored variants (an acknowledgement made before several
writes were durable is one, listing them; a program that never syncs a file is one,
listing what it lost). None is `unexplained`: a state only several losses refuse
is the ordering pair of the first one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.harness.explore import Explorer
from crashkit.harness.judge.vulnerabilities import VulnClass
from crashkit.harness.kit.report import KitReport
from crashkit.harness.kit.variants import VARIANTS, Variant
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios.export import export_findings
from tests.kit.test_plugin import LAZY  # an outside backend that forgets to fsync

A, OR, D = VulnClass.ATOMICITY, VulnClass.ORDERING, VulnClass.DURABILITY
B, E = VulnClass.BEHAVIOUR, VulnClass.ERROR_HANDLING

EXPECTED: dict[str, list[VulnClass]] = {
    "no-fsync": [D],
    "no-dir-fsync-on-create": [D],  # the three folders of the path, folded into one
    "torn-tail-not-cut": [A],
    "restore-by-file-order": [B],
    "tie-break-to-first": [B],
    "torn-tail-fatal": [A],
    "one-invalid-line-fatal": [B],
    "all-invalid-restores-empty": [B],
    "fsync-error-swallowed": [E],
    "fsync-retried-and-carried-on": [E],
    "publish-before-persist": [B],
    "scheduling-continues-after-failure": [E],
    "duplicate-reapplied-after-restart": [B],
    "duplicate-unreported": [B],
    "late-snapshot-dropped": [B],
    "writer-not-poisoned": [E],
    "compaction-temp-not-fsynced": [OR],
    "compaction-folder-not-fsynced": [D],
    "compaction-replaced-before-written": [D],
    "compaction-temp-in-another-folder": [B],
    # nothing lost: the restart keeps the temp the crash left (the recovery's bug)
    "compaction-stale-temp-kept": [B],
    "no-writer-lock": [B],
    "missing-file-refuses": [B],
    "close-raises": [B],
    "special-file-restores-empty": [B],
    "open-error-restores-empty": [E],
    "invalid-lines-salvaged": [B],
    # a compaction that selects wrongly misreads the history: no crash needed
    "compaction-keeps-first-of-tie": [B],
    "compaction-drops-idle-symbol": [B],
    # the seeded torn tail copied: the run's first append glued to it and lost, no crash
    # needed (the seeded start judged as a restart); the crash states that show it again
    # are that behaviour too
    "compaction-copies-torn-tail": [B],
    # a second writer let in, no crash needed
    "compaction-unlocked": [B],
    "unlocked-on-poison": [B],
    "sqlite-closed-on-poison": [B],
    "poisoned-per-symbol": [E],  # the failed write, then another symbol's append acknowledged
    # no file is ever synced: one cause, listing what the database, the journal and the
    # folder (their creations) lost
    "sqlite-synchronous-off": [D],
    "sqlite-synchronous-full": [D],  # the journal's unlink, its folder never synced
    # no journal: a transaction's page writes are not atomic (a page torn, the state
    # between two page writes unreadable: one atomicity)
    "sqlite-journal-off": [A],
    "sqlite-journal-memory": [A],
    # the VFS drops the file syncs (the folder's still made): no file is ever synced
    "sqlite-vfs-sync-does-nothing": [D],
    "sqlite-vfs-ignores-dirsync-on-delete": [D],
    # one vulnerability: acknowledged before the journal, the database and the unlink
    "sqlite-last-commit-after-ack": [D],
}

EXPLORED = [v for v in VARIANTS if "explorer" in v.caught_by]


def test_every_explored_variant_is_pinned() -> None:
    assert sorted(EXPECTED) == sorted(v.name for v in EXPLORED)


def _spec(variant: Variant) -> dict[str, str]:
    """The scenario keys that name the variant's broken code."""
    spec: dict[str, str] = {}
    if variant.backend is not None:
        assert variant.backend.spec is not None  # (every shipped variant is declared named)
        spec["backend"] = variant.backend.spec
    if variant.runtime_spec is not None:
        spec["runtime"] = variant.runtime_spec
    return spec


@pytest.mark.parametrize("variant", EXPLORED, ids=[v.name for v in EXPLORED])
def test_variant_vulnerabilities(variant: Variant, tmp_path: Path) -> None:
    """Caught under its invariant, named as the pinned vulnerabilities, and what the
    explorer exports for it replays as a failure of the same invariant (the scenario tells
    the truth about the bug it came from): one explorer run for the three."""
    explorer = Explorer(variant.backend, runtime_class=variant.runtime_class)
    summary = explorer.run(variant.workload, points=variant.points)
    # caught under its invariant (the run tests/harness/test_broken_variants.py relies on)
    found = {f.violation.invariant for f in summary.findings}
    assert variant.invariant in found, (variant.name, summary.to_dict()["violations_by_invariant"])
    vulns = summary.vulnerabilities
    assert [v.kind for v in vulns] == EXPECTED[variant.name], [v.line() for v in vulns]
    refused = sum(v.states for v in vulns)
    assert refused >= 1 and all(v.hint for v in vulns)
    if variant.name == "no-writer-lock":
        return  # (a second writer's finding: no single-process scenario reproduces it)
    paths = export_findings(summary.findings, tmp_path, explorer=explorer, **_spec(variant))
    exported = [p for p in paths if p.stem.startswith(variant.invariant)]
    assert exported, [p.name for p in paths]
    result = run_loaded(load_scenario(exported[0]))
    assert f"invariant {variant.invariant}" in [c.name for c in result.failures], (
        exported[0].read_text()[:3000],
        [c.name for c in result.failures],
    )


def test_the_kit_report_adds_up_the_vulnerabilities_of_its_explorer_items() -> None:
    """Two explorer items of a backend without fsync: one vulnerability, its states
    summed, in the JSON and in the lines under the table; a JSON round trip keeps it."""
    variant = next(v for v in EXPLORED if v.name == "no-fsync")
    summary = Explorer(variant.backend).run(variant.workload)
    explored = summary.to_dict()
    report = KitReport()
    for item in ("a", "b"):
        report.add({"check": "explorer (crash)", "item": item, "explored": explored})
    (vuln,) = report.vulnerabilities
    assert vuln.states == 2 * summary.vulnerabilities[0].states
    assert report.to_json()["vulnerabilities"][0]["class"] == "durability"
    lines = report.vulnerability_lines()
    assert lines[0] == (
        f"1 vulnerability explains the {vuln.states:,} refused states of the explorer items:"
    )
    assert lines[1].startswith("V1 durability: write /crashkit/state/hysteresis.jsonl not durable")
    again = KitReport()
    again.merge(report.to_json())
    assert [v.to_dict() for v in again.vulnerabilities] == report.to_json()["vulnerabilities"]


CLI = (sys.executable, "-m", "crashkit.harness")
SMALL = ("--symbols", "2", "--ticks", "3")


def test_the_cli_prints_each_vulnerability_and_writes_its_example_as_a_scenario(
    tmp_path: Path,
) -> None:
    (tmp_path / "lazystore.py").write_text(LAZY)
    out = tmp_path / "found"
    done = subprocess.run(
        [*CLI, "explore", "--backend", "lazystore:BACKEND", *SMALL, "--export-dir", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    head = next(i for i, line in enumerate(lines) if "vulnerability explains" in line)
    assert lines[head + 1].startswith(
        "V1 durability: write /crashkit/state/hysteresis.jsonl not durable"
    )
    assert lines[head + 1].endswith(
        "fsync `/crashkit/state/hysteresis.jsonl` before acknowledging it"
    )
    (written,) = [line for line in lines if line.startswith("V1's example as a scenario: ")]
    scenario = Path(written.split(": ", 1)[1].split("  ", 1)[0])
    assert scenario.parent == out and scenario.exists()
    replay = subprocess.run(
        [*CLI, "scenarios", "run", str(scenario), "--backend", "lazystore:BACKEND"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    # the scenario reproduces the bug: replayed on the same backend, the invariant breaks
    assert replay.returncode == 1 and "invariant 1-durability" in replay.stdout, replay.stderr
