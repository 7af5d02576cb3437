"""`crashkit scenarios run`: folders and files, the summary, exit codes 0/1/2, JUnit XML."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.cli import main
from crashkit.harness.scenarios import load_scenario
from crashkit.harness.scenarios.library import library_files
from tests.scenarios.conftest import LIBRARY, write

PASSING = """\
name: {name}
description: a small run that passes
input:
  synthetic: {{symbols: 1, ticks: 2, seed: 1}}
steps:
  - run: {{ticks: all}}
expect:
  exit_code: 0
"""


def _not_applicable_here() -> int:
    """How many library files do not apply on this machine: the real-mode ones, without FUSE."""
    if fuse_unavailable() is None:
        return 0
    return sum(load_scenario(p).spec.mode == "real" for p in library_files())


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["scenarios", "run", *args])
    return result.exit_code, result.output


def test_failure_exits_1_with_the_first_failure_in_the_table(tmp_path: Path) -> None:
    write(tmp_path, "good", PASSING.format(name="good"))
    write(tmp_path, "bad", PASSING.format(name="bad").replace("exit_code: 0", "exit_code: 4"))
    junit = tmp_path / "out.xml"
    code, output = run(str(tmp_path), "--junit-xml", str(junit))
    assert code == 1
    assert "exit_code: want 4, got 0" in output
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert len(failures) == 1 and failures[0].get("message") == "exit_code: want 4, got 0"


def test_bad_file_exits_2_even_when_others_fail(tmp_path: Path) -> None:
    write(tmp_path, "bad", PASSING.format(name="bad").replace("exit_code: 0", "exit_code: 4"))
    write(tmp_path, "broken", "name: broken\ndescription: x\nsteps: [\n")
    junit = tmp_path / "out.xml"
    code, output = run(str(tmp_path), "--junit-xml", str(junit))
    assert code == 2
    assert "BAD FILE" in output and f"{tmp_path / 'broken.yaml'}:4: YAML:" in output
    errors = ET.parse(junit).getroot().findall("testcase/error")
    assert len(errors) == 1


def test_duplicate_names_and_missing_paths_are_bad(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", "same", PASSING.format(name="same"))
    write(tmp_path / "b", "same", PASSING.format(name="same"))
    code, output = run(str(tmp_path))
    assert code == 2 and "already used by" in output
    code, output = run(str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or folder" in output


def test_default_path_is_the_shipped_library_which_passes_and_junit_lists_every_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No path: the shipped library (a folder of that name in the current one is not it);
    every file passes or is n/a, each a test case of the JUnit file (one library run)."""
    (tmp_path / "scenarios").mkdir()
    write(tmp_path / "scenarios", "good", PASSING.format(name="good"))
    monkeypatch.chdir(tmp_path)
    junit = tmp_path / "out.xml"
    code, output = run("--junit-xml", str(junit))
    assert code == 0 and "good" not in output, output
    skipped = _not_applicable_here()
    assert f"{len(library_files()) - skipped} passed, 0 failed" in output
    assert f"passed, 0 failed, {skipped} not applicable, 0 bad file(s)" in output
    assert os.getcwd() == str(tmp_path)
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    assert suite.get("errors") == "0"
    assert suite.get("failures") == "0"
    assert suite.get("skipped") == str(skipped)  # (not applicable: <skipped>, never passed)
    assert len(suite.findall("testcase/skipped")) == skipped
    assert len(cases) == len(list(LIBRARY.rglob("*.yaml"))) == int(suite.get("tests", "0"))
    # (each case's folder, dotted: whole here, the library being outside the working folder)
    folders = {str(c.get("classname")) for c in cases}
    assert {
        f"{LIBRARY.as_posix().strip('/').replace('/', '.')}.{k}" for k in ("fsync", "restore")
    } <= folders


def test_trace_lists_the_ops_and_the_crash_cut(tmp_path: Path) -> None:
    text = (
        PASSING.format(name="t")
        .replace(
            "  - run: {ticks: all}\n",
            "  - run: {ticks: all}\n  - crash: {point: last, cut: first}\n",
        )
        .replace("  exit_code: 0\n", "  exit_code: null\n")
    )
    path = write(tmp_path, "t", text)
    code, output = run(str(path), "--trace")
    assert code == 0, output
    assert "#0 open /crashkit/state/hysteresis.jsonl" in output
    assert "steps[1]: crash after the last op: cut 'nothing unsynced'" in output


def test_a_missing_crash_cut_is_a_failure_not_a_bad_file(tmp_path: Path) -> None:
    """Whether a crash state exists depends on the code under test, not on the file."""
    text = PASSING.format(name="t").replace(
        "  - run: {ticks: all}\n",
        "  - run: {ticks: all}\n  - crash: {point: last, cut: 'no such cut'}\n",
    )
    code, output = run(str(write(tmp_path, "t", text)))
    assert code == 1
    assert "steps[1].crash.cut: no crash state with cut 'no such cut'" in output
