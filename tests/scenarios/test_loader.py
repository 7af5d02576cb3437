"""A bad scenario file is refused with an error that names the file, the line, the key
path and what was expected, so it is fixed in one look."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashkit.harness.judge.paths import STATE_PATH
from crashkit.harness.scenarios import ScenarioError, load_scenario
from tests.scenarios.conftest import write

GOOD = """\
name: probe
description: why this scenario exists
input:
  synthetic: {symbols: 1, ticks: 2, seed: 1}
steps:
  - run: {ticks: all}
  - crash: {point: last, cut: last}
"""

ONE_SNAPSHOT = (
    "  snapshots:\n    - {symbol: A, engine_timestamp_ms: 1, return_window: .nan, "
    "volatility_z: 0, range_expansion: 0, oi_slope: 0, funding_z: 0, cvd_slope: 0, "
    "liquidation_intensity: 0}"
)
SYNTHETIC = "  synthetic: {symbols: 1, ticks: 2, seed: 1}"

# (case, the file's text, line, key path, words the message must hold)
CASES: list[tuple[str, str, int, str | None, tuple[str, ...]]] = [
    (
        "crash-point-word",
        GOOD.replace("point: last", "point: lst"),
        7,
        "steps[1].crash.point",
        ("'lst'", "int >= 0 or 'last'"),
    ),
    (
        "crash-point-negative",
        GOOD.replace("point: last", "point: -1"),
        7,
        "steps[1].crash.point",
        ("expected int >= 0",),
    ),
    (
        "unknown-key",
        GOOD.replace("crash: {point: last, cut: last}", "crash: {pt: 1}"),
        7,
        "steps[1].crash.pt",
        ("unknown key `pt`", "point, cut"),
    ),
    (
        "two-step-kinds",
        GOOD.replace("  - run: {ticks: all}", "  - {run: {ticks: 1}, restart: {}}"),
        6,
        "steps[0]",
        ("exactly one of", "got run, restart"),
    ),
    (
        "wrong-type",
        GOOD.replace("symbols: 1", "symbols: '1'"),
        4,
        "input.synthetic.symbols",
        ("expected int", "got str"),
    ),
    (
        "out-of-range",
        GOOD.replace("symbols: 1", "symbols: 0"),
        4,
        "input.synthetic.symbols",
        ("expected int >= 1",),
    ),
    (
        "missing-key",
        GOOD.replace("description: why this scenario exists\n", ""),
        1,
        "(top level)",
        ("missing required key `description`",),
    ),
    ("name-is-the-stem", GOOD.replace("name: probe", "name: other"), 1, "name", ("'probe'",)),
    (
        "two-inputs",
        GOOD.replace(SYNTHETIC, SYNTHETIC + "\n  file: x.jsonl"),
        3,
        "input",
        ("exactly one of synthetic, snapshots, file", "got synthetic, file"),
    ),
    (
        "dict-key-named",
        GOOD + "expect:\n  final_states:\n    SYM000: {anchor_regime: NOPE}\n",
        10,
        "expect.final_states.SYM000.anchor_regime",
        ("'NOPE'", "TREND_EXHAUSTION"),
    ),
    (
        "fault-op",
        GOOD.replace("  - run: {ticks: all}", "  - fault: {op: fsyncc}"),
        6,
        "steps[0].fault",
        ("unknown op 'fsyncc'", "fsync"),
    ),
    (
        "fault-errno",
        GOOD.replace("  - run: {ticks: all}", "  - fault: {op: fsync, errno: EFOO}"),
        6,
        "steps[0].fault",
        ("unknown errno 'EFOO'",),
    ),
    (
        "invariant-id",
        GOOD + "expect:\n  invariants: [durability]\n",
        9,
        "expect.invariants[0]",
        ("'durability'", "1-durability"),
    ),
    (
        "corruption-kind",
        GOOD.replace("  - run: {ticks: all}", "  - corrupt: {line: 1, with: fire}"),
        6,
        "steps[0].corrupt.with",
        ("'fire'", "'garbage'", "raw_hex"),
    ),
    (
        "raw-hex",
        GOOD + "initial_state:\n  lines: [ok, {raw_hex: zz}]\n",
        9,
        "initial_state.lines[1].raw_hex",
        ("not hex",),
    ),
    (
        "snapshot-contract",
        GOOD.replace(SYNTHETIC, ONE_SNAPSHOT),
        5,
        "input.snapshots[0]",
        ("return_window must be finite",),
    ),
    ("config", GOOD + "config: {window_updates: 0}\n", 8, "config", ("window_updates",)),
    ("backend", GOOD + "backend: nope\n", 8, "backend", ("module:attribute",)),
    (
        "runtime-class",
        GOOD + "runtime: crashkit.orchestrator.runtime:TruthRuntime\n",
        8,
        "runtime",
        ("not a HysteresisRuntime subclass",),
    ),
    (
        "events-form",
        GOOD + "expect:\n  events: {by_type: {}, exact: []}\n",
        9,
        "expect.events",
        ("by_type or exact",),
    ),
    ("yaml-syntax", GOOD.replace("steps:", "steps: ["), 6, None, ("YAML:",)),
    ("duplicate-key", GOOD + "steps: []\n", 8, None, ("duplicate key 'steps'",)),
    ("not-a-mapping", "- a\n", 1, None, ("must be a YAML mapping",)),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_file_names_file_line_key_and_expectation(
    tmp_path: Path, text: str, line: int, key: str | None, words: tuple[str, ...]
) -> None:
    path = write(tmp_path, "probe", text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    error = info.value
    assert error.file == str(path)
    assert error.line == line, str(error)
    assert error.key == key, str(error)
    text_of_error = str(error)
    assert text_of_error.startswith(f"{path}:{line}: ")
    for word in words:
        assert word in text_of_error, text_of_error


def test_good_file_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "probe", GOOD))
    assert loaded.name == "probe"
    assert loaded.seed.data is None and not loaded.seed.missing_dir
    assert loaded.config.window_updates == 3
    assert len(loaded.snapshots) == 2


def test_initial_lines_are_written_as_described(tmp_path: Path) -> None:
    """A string gets a newline, a record its canonical encoding, raw bytes stay exact."""
    text = GOOD + (
        "initial_state:\n  lines:\n    - hello\n"
        "    - {record: {symbol: A, engine_timestamp_ms: 5, anchor_regime: SQUEEZE_UP}}\n"
        "    - {raw_hex: 'ff 00'}\n"
    )
    loaded = load_scenario(write(tmp_path, "probe", text))
    assert loaded.seed.data == (
        b"hello\n"
        b'{"anchor_regime":"SQUEEZE_UP","candidate_regime":null,"engine_timestamp_ms":5,'
        b'"last_commit_timestamp_ms":null,"progress_current":0,"schema":"hysteresis_store_record",'
        b'"schema_version":"1","symbol":"A"}\n'
        b"\xff\x00"
    )
    assert STATE_PATH == "/crashkit/state/hysteresis.jsonl"


def test_input_file_is_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        '{"symbol":"A","engine_timestamp_ms":1,"return_window":0,"volatility_z":0,'
        '"range_expansion":1,"oi_slope":0,"funding_z":0,"cvd_slope":0,"liquidation_intensity":0}\n'
    )
    text = GOOD.replace(SYNTHETIC, "  file: in.jsonl")
    assert len(load_scenario(write(tmp_path, "probe", text)).snapshots) == 1
    (tmp_path / "in.jsonl").write_text("{not json}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "probe.yaml")
    assert info.value.key == "input.file" and "in.jsonl:1" in str(info.value)
