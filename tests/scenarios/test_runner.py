"""What the steps mean, pinned: processes and their input, faults, crashes, corruption,
replays, store-level appends, and the oracles the runner applies on the way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from crashkit.harness.kit import variants
from crashkit.harness.scenarios import load_scenario, run_loaded
from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.corrupt import CORRUPTIONS
from crashkit.harness.scenarios.corrupt import corrupt_line as machine_corrupt_line
from crashkit.harness.scenarios.results import ScenarioResult
from crashkit.harness.scenarios.runner import corrupt_line
from tests.scenarios.conftest import write

HEAD = """\
name: t
description: a probe of the runner's semantics
input:
  synthetic: {{symbols: 2, ticks: 4, seed: {seed}}}
"""


def run_text(tmp_path: Path, body: str, seed: int = 5) -> ScenarioResult:
    return run_loaded(load_scenario(write(tmp_path, "t", HEAD.format(seed=seed) + body)))


def failed(result: ScenarioResult) -> list[str]:
    return [c.name for c in result.failures]


def test_each_process_reads_the_input_from_its_start(tmp_path: Path) -> None:
    """`run` feeds the running process its own next ticks: after a restart, `run: {ticks: 2}`
    re-reads ticks 0-1 (skipped as already applied) and decides nothing new."""
    result = run_text(
        tmp_path,
        "steps:\n  - run: {ticks: 2}\n  - restart: {}\n  - run: {ticks: 2}\n"
        "expect:\n  events: {by_type: {hysteresis_decision_published: 4, "
        "hysteresis_state_restored: 2}}\n",
    )
    assert result.passed, result.failures
    result = run_text(tmp_path, "steps:\n  - run: {ticks: 3}\n  - run: {ticks: 2}\n")
    assert failed(result) == ["steps[1].run.ticks"]
    assert "only 1 left" in result.failures[0].message


def test_a_fault_replaces_the_armed_one_and_a_restart_disarms(tmp_path: Path) -> None:
    body = (
        "steps:\n"
        "  - fault: {op: fsync, path: '*/hysteresis.jsonl', nth: 1, errno: EIO}\n"
        "  - fault: {op: fsync, path: '*/hysteresis.jsonl', nth: 2, errno: ENOSPC}\n"
        "  - run: {ticks: all}\n"
        "  - restart: {}\n"
        "  - run: {ticks: all}\n"
        "expect:\n  halted_tick: 1700000060000\n  exit_code: 0\n"
        "  events: {contains: [{event_type: scheduling_halted, payload: {errno: ENOSPC}}]}\n"
    )
    result = run_text(tmp_path, body)
    assert result.passed, result.failures


def test_crash_point_indexes_the_trace_and_hides_what_came_after(tmp_path: Path) -> None:
    """A power cut after op 7 (the first append's fsync): the second tick never happened,
    and the restart decides it again."""
    body = (
        "steps:\n  - run: {ticks: 2}\n  - crash: {point: 7, cut: first}\n  - restart: {}\n"
        "  - run: {ticks: all}\n"
        "expect:\n  events: {by_type: {hysteresis_decision_published: 8, "
        "hysteresis_state_restored: 2}}\n  invariants: [all]\n"
    )
    result = run_text(tmp_path, body)
    assert result.passed, result.failures
    assert result.traces[0][7].startswith("#7 fsync /crashkit/state/hysteresis.jsonl")
    result = run_text(tmp_path, "steps:\n  - run: {ticks: 1}\n  - crash: {point: 99}\n")
    assert failed(result) == ["steps[1].crash.point"]


def test_corrupt_writes_the_state_machines_bytes() -> None:
    line = b'{"a":1}'
    for kind in CORRUPTIONS:
        assert corrupt_line(line, kind) == machine_corrupt_line(line, kind)  # type: ignore[arg-type]
    assert corrupt_line(line, s.RawHex(raw_hex="00ff")) == b"\x00\xff"


def test_a_restart_after_a_deliberate_corruption_is_judged_from_the_damaged_disk(
    tmp_path: Path,
) -> None:
    """Damage is not a crash: losing the damaged record is no durability violation, and
    continuity (which the damage makes unpredictable) is not checked by default."""
    body = (
        "steps:\n  - run: {ticks: 2}\n  - corrupt: {line: 4, with: garbage}\n"
        "  - restart: {}\n  - run: {ticks: all}\n"
        "expect:\n  restore_report: {invalid: [{line: 4, reason_prefix: not_json}]}\n"
    )
    result = run_text(tmp_path, body)
    assert result.passed, result.failures
    assert result.observed is not None and "5-continuity" not in result.observed.applicable


def test_replay_step_checks_itself(tmp_path: Path) -> None:
    """A live run on a broken runtime decides differently from the (reference) replay."""
    body = (
        "runtime: crashkit.harness.kit.variants:DuplicateReapplied\n"
        "steps:\n  - run: {ticks: 2}\n  - restart: {}\n  - run: {ticks: all}\n"
        "  - replay: {at: null}\n"
        "expect:\n  invariants: []\n"
    )
    result = run_text(tmp_path, body, seed=3)  # a seed where re-applying changes a state
    assert failed(result) == ["steps[3].replay"]
    assert result.failures[0].message.startswith("full replay: ")
    reference = run_text(
        tmp_path,
        body.replace("runtime: crashkit.harness.kit.variants:DuplicateReapplied\n", ""),
        seed=3,
    )
    assert reference.passed
    assert "decisions equal the live run's" in reference.checks[0].message


def test_store_level_append_and_poisoning(tmp_path: Path) -> None:
    """`append` goes to the backend directly; a failed append poisons it for good, and
    what it acknowledged before survives the power cut."""
    record = "{{symbol: X, engine_timestamp_ms: {}, anchor_regime: SQUEEZE_UP}}"
    body = (
        "steps:\n"
        f"  - append: {{records: [{record.format(5)}]}}\n"
        "  - fault: {op: fsync, path: '*/hysteresis.jsonl', nth: 1, errno: EIO}\n"
        f"  - append: {{records: [{record.format(6)}]}}\n"
        f"  - append: {{records: [{record.format(7)}]}}\n"
        "  - crash: {point: last, cut: first}\n"
        "  - restart: {}\n"
        "expect:\n  final_states: {X: {engine_timestamp_ms: 5}}\n"
    )
    result = run_text(tmp_path, body)
    assert result.passed, result.failures


def test_refusing_a_torn_tail_is_caught_with_or_without_a_crash(tmp_path: Path) -> None:
    """A torn tail seeded in the file: R4 (the contract's table says ok); a torn tail left
    by a power cut: 4-crash-damage-not-fatal."""
    seeded = (
        "initial_state:\n  lines:\n"
        "    - {record: {symbol: SYM000, engine_timestamp_ms: 1700000000000, "
        "anchor_regime: SQUEEZE_UP}}\n    - {raw_hex: 7b}\n"
        "steps:\n  - run: {ticks: all}\n"
    )
    crashed = (
        "steps:\n  - fault: {op: fsync, path: '*/hysteresis.jsonl', nth: 2, errno: EIO}\n"
        "  - run: {ticks: 2}\n  - crash: {point: last, cut: 1}\n  - restart: {}\n"
    )
    torn_fatal = variants.torn_tail_fatal
    for body, invariant in ((seeded, "R4-restore-table"), (crashed, "4-crash-damage-not-fatal")):
        loaded = load_scenario(write(tmp_path, "t", HEAD.format(seed=5) + body))
        assert run_loaded(loaded).passed
        result = run_loaded(replace(loaded, backend=torn_fatal))
        assert f"invariant {invariant}" in failed(result), result.failures
