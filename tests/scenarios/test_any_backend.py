"""The library runs on any backend: what a scenario needs is stated or inferred, a scenario
that does not apply says why, and `expect.reference` is judged for the reference only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from crashkit.harness.cli import main
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.library import library_files
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import Capabilities

#: The reference's code, declared as a backend that keeps its own format: the harness may
#: not read its file, so line-level scenarios do not apply and nothing else changes (the
#: files it keeps, its compaction and that compaction's temp file are still declared).
OPAQUE = replace(
    jsonl.BACKEND,
    name="opaque",
    capabilities=replace(jsonl.BACKEND.capabilities, line_format=False),
    spec="tests.scenarios.test_any_backend:OPAQUE",
)


def test_requirements_are_inferred_from_the_file(tmp_path: Path) -> None:
    """Seeded lines need `records` (any backend is seeded with their valid records, not
    `line_format`); an in-process `corrupt` step needs nothing (another backend gets the
    line's record damaged in its files), in real mode it needs `line_format`; a `compact`
    step needs `compact`; a mid-stream replay still reads the file's lines (docs/backends.md,
    "Seeding and damage hooks" and the capability table)."""
    by_name = {p.stem: load_scenario(p) for p in library_files()}
    assert by_name["tie-later-line-wins"].requires == {
        "records": "initial_state holds state-file lines"
    }
    assert by_name["corrupt-middle-line-garbage"].requires == {}  # corrupt, in process
    assert by_name["compaction-keeps-tie-idle-symbol-and-cuts-torn-tail"].requires == {
        "records": "initial_state holds state-file lines",
        "compact": "steps[2] compacts the state offline",
    }
    assert by_name["replay-mid-stream"].requires == {
        "line_format": "steps[1] replays from the state file's records"
    }
    assert "reference" in by_name["crash-torn-mid-line"].requires  # a named cut
    assert by_name["fsync-eio-drop"].requires == {}  # its reference details are in a block
    assert by_name["restart-every-tick"].requires == {}
    real = tmp_path / "real-corrupt.yaml"
    real.write_text(REAL_CORRUPT)
    assert load_scenario(real).requires == {
        "line_format": "steps[1] corrupts a line of the state file"
    }


def test_on_a_backend_of_its_own_format_line_scenarios_do_not_apply_and_the_rest_pass() -> None:
    """Seeded scenarios run on it, seeded with their lines' valid records (the later of a
    tie too, `scenarios.seeding`), and so does the compaction one (it declares the
    reference's compaction and temp file); what stays n/a is what reads line bytes (a
    mid-stream replay), a seed with no valid record, and the reference's own trace."""
    results = {p.stem: run_loaded(load_scenario(p), backend=OPAQUE) for p in library_files()}
    skipped = {name for name, r in results.items() if r.not_applicable is not None}
    failed = {name: r.first_failure for name, r in results.items() if r.failed}
    assert not failed, failed
    for seeded in ("tie-later-line-wins", "compaction-keeps-tie-idle-symbol-and-cuts-torn-tail"):
        assert results[seeded].passed and seeded not in skipped, seeded
    assert {"replay-mid-stream", "all-invalid-fatal", "crash-torn-mid-line"} <= skipped
    replay = results["replay-mid-stream"].first_failure
    assert "needs line_format (steps[1] replays from the state file's records)" in replay
    assert "opaque does not declare line_format" in replay
    invalid = results["all-invalid-fatal"].first_failure
    assert "initial_state holds state-file lines, and none is a valid record" in invalid
    assert "opaque keeps its own format" in invalid
    assert "opaque is not the backend it was written for" in (
        results["crash-torn-mid-line"].first_failure
    )
    # a corrupt step damaged the record in the store and judged the run on the invariants
    garbage = results["corrupt-middle-line-garbage"]
    assert garbage.passed and any(
        "line 3's record damaged in the store" in n for n in garbage.notes
    )
    ran = [r for r in results.values() if r.not_applicable is None]
    assert len(ran) >= 50
    # no `reference.*` check was judged on it
    assert not any(c.name.startswith("reference.") for r in ran for c in r.checks)


def test_a_compaction_scenario_needs_a_declared_compaction_and_its_temp_file() -> None:
    """A `compact` step on a backend that declares no `Backend.compact` is n/a and says
    so; one that compacts through a temp file it does not declare is a P-backend-protocol
    finding naming the file (the harness would fault and check it nowhere); declared
    whole, the scenario passes."""
    path = next(
        p
        for p in library_files()
        if p.stem == "compaction-keeps-tie-idle-symbol-and-cuts-torn-tail"
    )
    loaded = load_scenario(path)
    declared = run_loaded(loaded, backend=OPAQUE)
    assert declared.passed, declared.first_failure
    judged = {c.name for c in declared.checks}
    assert {"final_states", "restore_report.winners", "invariant P-backend-protocol"} <= judged
    none = run_loaded(loaded, backend=replace(OPAQUE, name="no-compact", compact=None))
    assert none.not_applicable == (
        "needs compact (steps[2] compacts the state offline); no-compact declares no "
        "offline compaction (Backend.compact)"
    )
    undeclared = replace(
        OPAQUE, name="no-temp", capabilities=Capabilities(line_format=False, single_writer=True)
    )
    caught = run_loaded(loaded, backend=undeclared)
    assert caught.failed and caught.not_applicable is None
    assert [c.name for c in caught.failures] == ["invariant P-backend-protocol"]
    assert "created /crashkit/state/hysteresis.jsonl.compacting" in caught.first_failure
    assert "declare neither as files nor as temp_files" in caught.first_failure


def test_a_backend_that_rewrites_its_file_is_held_to_records_not_line_numbers() -> None:
    """The reference with compaction at every start rewrites the file the scenario damaged:
    its line numbers and counts are not judged there, its winners are (and a wrong one
    fails)."""
    path = next(p for p in library_files() if p.stem == "invalid-lines-skipped")
    loaded = load_scenario(path)
    on_compacting = run_loaded(loaded, backend=jsonl.COMPACTING_BACKEND)
    assert on_compacting.passed, on_compacting.first_failure
    judged = {c.name for c in on_compacting.checks}
    assert {"restore_report.outcome", "restore_report.winners"} <= judged
    assert not judged & {"restore_report.lines", "restore_report.invalid"}
    as_written = {c.name for c in run_loaded(loaded).checks}
    assert {"restore_report.lines", "restore_report.invalid"} <= as_written
    report = loaded.spec.expect.restore_report
    assert isinstance(report, s.RestoreReportExpect) and isinstance(report.winners, dict)
    wrong = {k: msgspec.structs.replace(v, progress_current=9) for k, v in report.winners.items()}
    expect = msgspec.structs.replace(
        loaded.spec.expect, restore_report=msgspec.structs.replace(report, winners=wrong)
    )
    failed = run_loaded(
        replace(loaded, spec=msgspec.structs.replace(loaded.spec, expect=expect)),
        backend=jsonl.COMPACTING_BACKEND,
    )
    assert [c.name for c in failed.failures] == ["restore_report.winners"]


def test_the_reference_block_is_judged_for_the_reference() -> None:
    result = run_loaded(load_scenario(next(p for p in library_files() if p.stem == "short-write")))
    assert result.passed
    judged = [c.name for c in result.checks if c.name.startswith("reference.")]
    assert "reference.halted_tick" in judged and "reference.events.by_type" in judged


def test_cli_runs_the_library_on_another_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two files of the library (the whole of it on this backend: the test above), one that
    applies and one that does not, through `crashkit scenarios run --backend`."""
    files = [
        str(p) for p in library_files() if p.stem in ("tie-later-line-wins", "replay-mid-stream")
    ]
    runner = CliRunner()
    done = runner.invoke(
        main, ["scenarios", "run", "--backend", "tests.scenarios.test_any_backend:OPAQUE", *files]
    )
    assert done.exit_code == 0, done.output
    assert "n/a" in done.output and "1 passed, 0 failed, 1 not applicable" in done.output


def test_update_with_another_backend_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        main,
        ["scenarios", "run", "--update", "--backend", "tests.scenarios.test_any_backend:OPAQUE"],
    )
    assert done.exit_code == 2
    assert "without --backend" in done.output


def test_a_bad_backend_spec_is_a_usage_error() -> None:
    done = CliRunner().invoke(main, ["scenarios", "run", "--backend", "nomodule"])
    assert done.exit_code == 2
    assert "module:attribute" in done.output


REAL_CORRUPT = """
name: real-corrupt
description: "a corrupt step in real mode"
mode: real
input:
  synthetic: {symbols: 2, ticks: 3, seed: 5}
steps:
  - run: {ticks: 2}
  - corrupt: {line: 1, with: garbage}
  - restart: {}
  - run: {ticks: all}
expect:
  invariants: [all]
"""


UNFIRED = """
name: unfired
description: "faults the fsync of a file no backend writes"
input:
  synthetic: {symbols: 2, ticks: 3, seed: 5}
steps:
  - fault: {op: fsync, path: "*/no-such-file", nth: 1, errno: EIO}
  - run: {ticks: all}
expect:
  invariants: [all]
"""


def test_a_fault_that_never_fires_is_not_applicable_elsewhere_and_a_failure_as_written(
    tmp_path: Path,
) -> None:
    """A run whose fault never fired tests nothing the file names: on another backend (a
    call it never makes) the file does not apply; on its own backend the file is wrong."""
    path = tmp_path / "unfired.yaml"
    path.write_text(UNFIRED)
    elsewhere = run_loaded(load_scenario(path), backend=OPAQUE)
    assert elsewhere.not_applicable is not None
    assert "steps[0] (fsync" in elsewhere.not_applicable
    assert "never fired on this backend" in elsewhere.not_applicable
    written = run_loaded(load_scenario(path))
    assert written.failed
    assert [c.name for c in written.failures] == ["steps (fault)"]
    # (the library's own faults all fire on the reference: a file whose fault did not would
    # fail so, and tests/scenarios/test_cli.py runs the whole library: 0 failed)
