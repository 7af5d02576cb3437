"""`--update` rewrites the expect block and nothing else, and only when asked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from crashkit.harness.cli import main
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios.update import rewrite_expect
from tests.scenarios.conftest import write

HEAD = """\
# A hand-written scenario: the comments, quoting and key order here must survive.
name: upd
description: "why: keep me exactly as written"   # trailing comment
input:
  synthetic: {symbols: 2, ticks: 3, seed: 5}
steps:
  - run: {ticks: all}   # all three ticks
"""
TAIL = """
# a comment that belongs to the key after the block
fsync_model: keep-dirty
"""


def _lines_outside_expect(text: str) -> list[str]:
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("expect:"):
            inside = True
            continue
        if inside and line and not line[0].isspace():
            inside = False
        if not inside:
            out.append(line)
    return out


def test_update_rewrites_only_the_expect_block(tmp_path: Path) -> None:
    text = HEAD + "expect:\n  exit_code: 3   # wrong on purpose\n  final_states: {}\n" + TAIL
    path = write(tmp_path, "upd", text)
    assert not run_loaded(load_scenario(path)).passed

    result = CliRunner().invoke(main, ["scenarios", "run", str(path), "--update"])
    assert result.exit_code == 0, result.output
    new = path.read_text()
    assert _lines_outside_expect(new) == _lines_outside_expect(text)
    assert new.startswith(HEAD) and new.endswith(TAIL)
    assert "exit_code: 0" in new and "SYM000:" in new
    assert "halted_tick" not in new  # keys the author did not pin stay unpinned
    assert run_loaded(load_scenario(path)).passed

    again = CliRunner().invoke(main, ["scenarios", "run", str(path), "--update"])
    assert again.exit_code == 0 and path.read_text() == new  # idempotent
    assert "updated" not in again.output


def test_without_update_the_file_is_never_touched(tmp_path: Path) -> None:
    text = HEAD + "expect:\n  exit_code: 3\n"
    path = write(tmp_path, "upd", text)
    result = CliRunner().invoke(main, ["scenarios", "run", str(path)])
    assert result.exit_code == 1
    assert path.read_text() == text


def test_update_adds_a_full_block_when_there_is_none(tmp_path: Path) -> None:
    path = write(tmp_path, "upd", HEAD.rstrip("\n"))  # no final newline either
    CliRunner().invoke(main, ["scenarios", "run", str(path), "--update"])
    new = path.read_text()
    assert new.startswith(HEAD)
    for key in (
        "startup:",
        "halted_tick:",
        "exit_code:",
        "events:",
        "final_states:",
        "restore_report:",
        "invariants: [all]",
    ):
        assert key in new
    assert run_loaded(load_scenario(path)).passed


def test_update_keeps_the_authors_forms(tmp_path: Path) -> None:
    """`contains` keeps the items that still hold, sub-keys stay as chosen."""
    text = HEAD + (
        "expect:\n"
        "  restore_report: {lines: 1}\n"
        "  events:\n"
        "    contains:\n"
        "      - {event_type: hysteresis_decision_published, symbol: SYM001}\n"
        "      - {event_type: scheduling_halted}\n"
    )
    path = write(tmp_path, "upd", text)
    CliRunner().invoke(main, ["scenarios", "run", str(path), "--update"])
    new = path.read_text()
    assert "restore_report: {lines: 6}" in new
    assert "symbol: SYM001" in new and "scheduling_halted" not in new
    assert "by_type" not in new


def test_rewrite_expect_on_text() -> None:
    text = "name: a\nexpect:\n  exit_code: 1\n\n# next\nsteps: []\n"
    assert rewrite_expect(text, {"exit_code": 0}) == (
        "name: a\nexpect:\n  exit_code: 0\n\n# next\nsteps: []\n"
    )
