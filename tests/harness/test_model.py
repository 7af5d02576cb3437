"""`harness/judge/model.py::model_restore` against the backend's `parse_state_bytes` (R4-restore-table).

Each crafted file states its expected outcome, the line each symbol's winner
must come from and the invalid lines (with their reason category). Both readers
must agree with that table and so with each other: the report gives lines
directly, and the model's chosen state must be the one decoded from that line
(cases with several candidate lines make them differ in some persisted field, so
the state identifies the line).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.orchestrator.events import MemorySink
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.report import RestoreReport, parse_state_bytes, store_from_report
from crashkit.regime_engine.codec import decode_record, encode_state, record_to_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime
from crashkit.regime_engine.synthetic import generate
from tests.conftest import make_state

CB = Regime.CHOP_BALANCED
SU = Regime.SQUEEZE_UP
SD = Regime.SQUEEZE_DOWN
TU = Regime.TREND_BUILD_UP

A1 = encode_state(make_state("A", 100, CB))
A2 = encode_state(make_state("A", 200, SU, SD, 1))
A3 = encode_state(make_state("A", 300, SD, None, 0, last_commit=300))
B1 = encode_state(make_state("B", 150, TU))
B2 = encode_state(make_state("B", 250, TU, CB, 2))
A2_TIE = encode_state(make_state("A", 200, SU, SD, 1, last_commit=7))  # same run, other bytes
A2_TIE2 = encode_state(make_state("A", 200, SU, SD, 2))
E1 = encode_state(make_state("é", 50, CB))  # non-ASCII: canonical form escapes it
E1_RAW = '{"anchor_regime":"CHOP_BALANCED","candidate_regime":null,"engine_timestamp_ms":60,"last_commit_timestamp_ms":null,"progress_current":0,"schema":"hysteresis_store_record","schema_version":"1","symbol":"é"}\n'.encode()
A4_SPACED = (
    b'{ "symbol" : "A", "schema":"hysteresis_store_record", "schema_version":"1",'
    b' "engine_timestamp_ms":400, "anchor_regime":"TREND_BUILD_UP", "candidate_regime":null,'
    b' "progress_current":0, "last_commit_timestamp_ms":null }\n'
)
DUP_KEY = A1.replace(b"}\n", b',"progress_current":0}\n')
DUP_KEY_ESCAPED = A3.replace(b'"symbol"', b'"\\u0073ymbol":"Z","symbol"')
INCONSISTENT = encode_state(make_state("A", 500, CB, None, 2))  # candidate null, progress 2
CANDIDATE_IS_ANCHOR = encode_state(make_state("A", 500, CB, CB, 1))
NOT_UTF8_VALUE = A1.replace(b'"A"', b'"\xe9"')
NOT_OBJECT = b"[1, 2]\n"
NOT_JSON = b"garbage\n"
SCHEMA = b'{"a": 1}\n'


def torn(line: bytes, keep: int | None = None) -> bytes:
    """A torn tail: the line without its `\\n`, optionally cut to `keep` bytes."""
    body = line.rstrip(b"\n")
    return body if keep is None else body[:keep]


@dataclass(frozen=True)
class Case:
    data: bytes
    outcome: str
    winners: dict[str, int] = field(default_factory=dict)  # symbol -> 1-based line
    invalid: dict[int, str] = field(default_factory=dict)  # line -> reason category


CASES: dict[str, Case] = {
    # clean canonical files (the report's fast path)
    "clean-monotone": Case(A1 + B1 + A2 + B2 + A3, "ok", {"A": 5, "B": 4}),
    "clean-out-of-order": Case(A3 + B2 + A1 + B1 + A2, "ok", {"A": 1, "B": 2}),
    "clean-one-record": Case(B1, "ok", {"B": 1}),
    # ties: the later line wins, in every path
    "tie-monotone": Case(A1 + B1 + A2 + A2_TIE, "ok", {"A": 4, "B": 2}),
    "tie-out-of-order": Case(A2 + A3 + A1 + A2_TIE + B1 + A2_TIE2, "ok", {"A": 2, "B": 5}),
    "tie-at-top-out-of-order": Case(A2 + A1 + A2_TIE + A1 + A2_TIE2, "ok", {"A": 5}),
    "tie-slow-path": Case(A2 + b"\n" + A1 + A2_TIE, "ok", {"A": 4}),
    "tie-beaten-later": Case(A2 + A2_TIE + A3, "ok", {"A": 3}),
    # out-of-order timestamps through the slow path (a blank line forces it)
    "out-of-order-slow": Case(A3 + b"\n" + A1 + B2 + B1, "ok", {"A": 1, "B": 4}),
    # empty store: no complete line
    "empty": Case(b"", "bootstrap"),
    "only-blank": Case(b"\n  \n\t\r\n\x0b\x0c\n", "bootstrap"),
    "only-torn": Case(torn(A2), "bootstrap"),
    "only-torn-partial": Case(torn(A2, 9), "bootstrap"),
    "blank-then-torn": Case(b"\n\n" + torn(A1), "bootstrap"),
    "whitespace-only-torn": Case(b"   ", "bootstrap"),
    # blank lines are skipped but counted in line numbers
    "blank-lines-among-records": Case(
        b"\n" + A1 + b"   \n" + B1 + b"\r\n" + A2, "ok", {"A": 6, "B": 4}
    ),
    "crlf-records": Case(A1.replace(b"\n", b"\r\n") + A2.replace(b"\n", b"\r\n"), "ok", {"A": 2}),
    # torn tails are never restored, even when they would parse
    "torn-parseable": Case(A1 + B1 + torn(A3), "ok", {"A": 1, "B": 2}),
    "torn-partial": Case(A1 + B1 + torn(A3, 40), "ok", {"A": 1, "B": 2}),
    "torn-new-symbol": Case(A1 + torn(B2), "ok", {"A": 1}),
    "whitespace-tail": Case(A1 + b" \t ", "ok", {"A": 1}),
    # invalid lines are skipped; only invalid (no valid record) is fatal
    "invalid-middle": Case(A1 + NOT_JSON + B1, "ok", {"A": 1, "B": 3}, {2: "not_json"}),
    "invalid-first-and-last": Case(
        NOT_OBJECT + A2 + B1 + SCHEMA, "ok", {"A": 2, "B": 3}, {1: "not_object", 4: "schema"}
    ),
    "invalid-would-win": Case(
        A1 + A3.replace(b"SQUEEZE_DOWN", b"squeeze_down"), "ok", {"A": 1}, {2: "schema"}
    ),
    "all-invalid": Case(NOT_JSON + SCHEMA, "fatal", {}, {1: "not_json", 2: "schema"}),
    "all-invalid-with-blank": Case(b"\n" + NOT_OBJECT + b"  \n", "fatal", {}, {2: "not_object"}),
    "all-invalid-plus-valid-torn-tail": Case(NOT_JSON + torn(A1), "fatal", {}, {1: "not_json"}),
    "inconsistent-only": Case(
        INCONSISTENT + CANDIDATE_IS_ANCHOR,
        "fatal",
        {},
        {1: "inconsistent_candidate", 2: "inconsistent_candidate"},
    ),
    "inconsistent-would-win": Case(
        A2 + INCONSISTENT, "ok", {"A": 1}, {2: "inconsistent_candidate"}
    ),
    # duplicate keys (D.6), also spelled with a \u escape
    "duplicate-key": Case(DUP_KEY + A2, "ok", {"A": 2}, {1: "duplicate_key"}),
    "duplicate-key-would-win": Case(A1 + DUP_KEY_ESCAPED, "ok", {"A": 1}, {2: "duplicate_key"}),
    "duplicate-key-only": Case(DUP_KEY, "fatal", {}, {1: "duplicate_key"}),
    # non-UTF-8 bytes, as a whole line or inside a string value
    "not-utf8-line": Case(b"\xff\xfe\n" + A1, "ok", {"A": 2}, {1: "not_utf8"}),
    "not-utf8-value": Case(B1 + NOT_UTF8_VALUE, "ok", {"B": 1}, {2: "not_utf8"}),
    "not-utf8-only": Case(NOT_UTF8_VALUE, "fatal", {}, {1: "not_utf8"}),
    # non-canonical but valid spellings (D.5), non-ASCII symbols
    "non-canonical-valid": Case(A3 + A4_SPACED, "ok", {"A": 2}),
    "non-ascii-symbol": Case(E1 + E1_RAW + A1, "ok", {"é": 2, "A": 3}),
    "non-ascii-raw-only": Case(E1_RAW, "ok", {"é": 1}),
}


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def state_at(data: bytes, line: int, config: HysteresisConfig) -> HysteresisState:
    return record_to_state(decode_record(lines_of(data)[line - 1]), config)


def assert_agree(
    data: bytes, model: ModelRestore, report: RestoreReport, config: HysteresisConfig
) -> None:
    """The model and the report give the same outcome, store, records and invalid lines."""
    assert model.outcome == report.outcome
    assert model.invalid_lines == tuple(bad.line for bad in report.invalid)
    if report.outcome == "fatal":
        assert model.states == {}
        assert model.records == ()
        return
    assert model.states == store_from_report(report, config).states
    for symbol, (line, _) in report.winners.items():
        assert model.states[symbol] == state_at(data, line, config)
    invalid = set(model.invalid_lines)
    valid_lines = [
        n for n, raw in enumerate(lines_of(data), start=1) if raw.strip() and n not in invalid
    ]
    assert model.records == tuple(state_at(data, n, config) for n in valid_lines)
    assert len(model.records) == report.valid


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_model_and_report_agree_with_the_restore_table(case: Case) -> None:
    config = HysteresisConfig()
    model = model_restore(case.data, config)
    report = parse_state_bytes(case.data)

    assert report.outcome == case.outcome, report.reason
    assert model.outcome == case.outcome
    assert {s: line for s, (line, _) in report.winners.items()} == case.winners
    assert model.states == {s: state_at(case.data, n, config) for s, n in case.winners.items()}
    assert {bad.line: bad.reason.split(":", 1)[0] for bad in report.invalid} == case.invalid
    assert model.invalid_lines == tuple(sorted(case.invalid))
    assert_agree(case.data, model, report, config)
    if case.outcome == "fatal":
        assert report.reason is not None and f"{len(case.invalid)} invalid line(s)" in report.reason


def test_cases_with_several_candidates_are_distinguishable() -> None:
    """Guard for the table: competing records of one symbol differ in some persisted field,
    so equal states really prove the model chose the same line as the report."""
    config = HysteresisConfig()
    for name, case in CASES.items():
        if case.outcome == "fatal":
            continue
        model = model_restore(case.data, config)
        for symbol, line in case.winners.items():
            winner = state_at(case.data, line, config).persisted_fields()
            others = [
                s.persisted_fields()
                for n, s in enumerate(model.records)
                if s.symbol == symbol and s.persisted_fields() == winner
            ]
            assert len(others) == 1, (name, symbol)


def test_missing_file_is_bootstrap_like_the_backend(tmp_path: Path) -> None:
    model = model_restore(None)
    report = restore_report(str(tmp_path / "absent.jsonl"))
    assert (model.outcome, model.states, model.records, model.invalid_lines) == (
        "bootstrap",
        {},
        (),
        (),
    )
    assert report.outcome == "bootstrap" and report.winners == {}


def test_progress_required_comes_from_the_active_config() -> None:
    data = A1 + A2 + B2
    config = HysteresisConfig(window_updates=7)
    model = model_restore(data, config)
    assert_agree(data, model, parse_state_bytes(data), config)
    assert {s.progress_required for s in model.records} == {7}
    assert model_restore(data).states["A"].progress_required == HysteresisConfig().window_updates


def test_every_crash_cut_of_a_real_state_file_agrees(tmp_path: Path) -> None:
    """The file a real run writes, cut at every byte (every torn tail a crash can leave)."""
    path = tmp_path / "hysteresis.jsonl"
    runtime = HysteresisRuntime(
        config=HysteresisConfig(),
        state_path=str(path),
        sink=MemorySink(),
        backend_factory=open_jsonl_store,
        clock=engine_commit_clock,
    )
    runtime.start()
    runtime.run(generate(2, 10, seed=3))
    runtime.close()
    data = path.read_bytes()
    config = HysteresisConfig()
    for cut in range(len(data) + 1):
        prefix = data[:cut]
        model = model_restore(prefix, config)
        report = parse_state_bytes(prefix)
        assert model.outcome != "fatal"
        assert_agree(prefix, model, report, config)
    restored = model_restore(data, config).states
    assert {s: st.persisted_fields() for s, st in restored.items()} == {
        s: st.persisted_fields() for s, st in runtime.states.items()
    }


FRAGMENTS = [
    A1,
    A2,
    A3,
    B1,
    B2,
    A2_TIE,
    A2_TIE2,
    E1,
    E1_RAW,
    A4_SPACED,
    DUP_KEY,
    DUP_KEY_ESCAPED,
    INCONSISTENT,
    CANDIDATE_IS_ANCHOR,
    NOT_UTF8_VALUE,
    NOT_OBJECT,
    NOT_JSON,
    SCHEMA,
    b"\n",
    b" \t\n",
    b"\r\n",
    A1.replace(b"\n", b"\r\n"),
]


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    body=st.lists(st.sampled_from(FRAGMENTS), max_size=8),
    tail=st.sampled_from([b"", torn(A1), torn(B2, 30), b"  ", b"\xff"]),
    window=st.integers(min_value=1, max_value=5),
)
def test_model_and_report_agree_on_any_mix(body: list[bytes], tail: bytes, window: int) -> None:
    data = b"".join(body) + tail
    config = HysteresisConfig(window_updates=window)
    assert_agree(data, model_restore(data, config), parse_state_bytes(data), config)


def test_state_at_reads_the_line_it_is_asked_for() -> None:
    """The helper every assertion above leans on."""
    config = HysteresisConfig()
    data = b"\n" + A2 + A1
    assert state_at(data, 2, config) == dataclasses.replace(
        make_state("A", 200, SU, SD, 1), progress_required=3
    )
    assert state_at(data, 3, config).engine_timestamp_ms == 100
