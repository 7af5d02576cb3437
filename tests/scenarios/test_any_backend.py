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
#: not read its file, so line-level scenarios do not apply and nothing else changes.
OPAQUE = replace(
    jsonl.BACKEND,
    name="opaque",
    capabilities=Capabilities(line_format=False, single_writer=True),
    spec="tests.scenarios.test_any_backend:OPAQUE",
)


def test_requirements_are_inferred_from_the_file() -> None:
    by_name = {p.stem: load_scenario(p) for p in library_files()}
    assert set(by_name["tie-later-line-wins"].requires) == {"line_format"}  # seeded lines
    assert set(by_name["corrupt-middle-line-garbage"].requires) == {"line_format"}  # corrupt
    assert "reference" in by_name["crash-torn-mid-line"].requires  # a named cut
    assert by_name["fsync-eio-drop"].requires == {}  # its reference details are in a block
    assert by_name["restart-every-tick"].requires == {}


def test_on_a_backend_of_its_own_format_line_scenarios_do_not_apply_and_the_rest_pass() -> None:
    results = {p.stem: run_loaded(load_scenario(p), backend=OPAQUE) for p in library_files()}
    skipped = {name for name, r in results.items() if r.not_applicable is not None}
    failed = {name: r.first_failure for name, r in results.items() if r.failed}
    assert not failed, failed
    assert "tie-later-line-wins" in skipped and "crash-torn-mid-line" in skipped
    assert "needs line_format" in results["tie-later-line-wins"].first_failure
    assert "opaque does not declare line_format" in results["tie-later-line-wins"].first_failure
    ran = [r for r in results.values() if r.not_applicable is None]
    assert len(ran) >= 25
    # no `reference.*` check was judged on it
    assert not any(c.name.startswith("reference.") for r in ran for c in r.checks)


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
    runner = CliRunner()
    done = runner.invoke(
        main, ["scenarios", "run", "--backend", "tests.scenarios.test_any_backend:OPAQUE"]
    )
    assert done.exit_code == 0, done.output
    assert "n/a" in done.output and "0 failed" in done.output
    assert " not applicable" in done.output


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
    # and the library's own faults all fire on the reference (none is n/a for that reason)
    for library_path in library_files():
        result = run_loaded(load_scenario(library_path))
        assert "never fired" not in result.first_failure, library_path.name
