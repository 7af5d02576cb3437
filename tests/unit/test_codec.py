"""Record codec: canonical bytes (golden vectors) and strict decoding (contract §2)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crashkit.regime_engine.codec import (
    RECORD_KEYS,
    RecordError,
    decode_record,
    encode_state,
    encode_states,
    record_to_state,
    state_to_record,
)
from crashkit.regime_engine.contracts import HysteresisConfig, Regime
from tests.conftest import make_state

GOLDEN = [
    (
        make_state("BTC", 1_700_000_000_000, Regime.CHOP_BALANCED, Regime.SQUEEZE_UP, 2, None),
        b'{"anchor_regime":"CHOP_BALANCED","candidate_regime":"SQUEEZE_UP",'
        b'"engine_timestamp_ms":1700000000000,"last_commit_timestamp_ms":null,'
        b'"progress_current":2,"schema":"hysteresis_store_record","schema_version":"1",'
        b'"symbol":"BTC"}\n',
    ),
    (
        make_state("ETH-PERP", 0, Regime.TREND_EXHAUSTION, None, 0, 1_699_999_999_999),
        b'{"anchor_regime":"TREND_EXHAUSTION","candidate_regime":null,'
        b'"engine_timestamp_ms":0,"last_commit_timestamp_ms":1699999999999,'
        b'"progress_current":0,"schema":"hysteresis_store_record","schema_version":"1",'
        b'"symbol":"ETH-PERP"}\n',
    ),
    (  # non-ASCII is \u-escaped (json.dumps ensure_ascii default), quotes escaped
        make_state('\u20ac"X', 5, Regime.LIQUIDATION_DOWN, Regime.CHOP_STOPHUNT, 1, None),
        b'{"anchor_regime":"LIQUIDATION_DOWN","candidate_regime":"CHOP_STOPHUNT",'
        b'"engine_timestamp_ms":5,"last_commit_timestamp_ms":null,"progress_current":1,'
        b'"schema":"hysteresis_store_record","schema_version":"1","symbol":"\\u20ac\\"X"}\n',
    ),
]


@pytest.mark.parametrize(("state", "golden"), GOLDEN)
def test_canonical_encoding_is_byte_exact(state: object, golden: bytes) -> None:
    assert encode_state(state) == golden  # type: ignore[arg-type]


@pytest.mark.parametrize(("state", "golden"), GOLDEN)
def test_a_tick_encodes_to_the_golden_bytes(state: object, golden: bytes) -> None:
    """The writer's one-call encoding of a tick (`encode_states`), alone and mixed."""
    assert encode_states([state]) == golden  # type: ignore[list-item]
    assert encode_states([s for s, _ in GOLDEN]) == b"".join(g for _, g in GOLDEN)  # type: ignore[misc]
    plain = [s for s, g in GOLDEN if b"\\" not in g]
    assert encode_states(plain * 3) == b"".join(encode_state(s) for s in plain * 3)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=6) | st.sampled_from(["BTC", "SYM000", "a b", "x~"]),
            st.integers(0, 2**63),
            st.sampled_from(list(Regime)),
            st.none() | st.sampled_from(list(Regime)),
            st.none() | st.integers(0, 2**53),
        ),
        max_size=8,
    )
)
def test_a_tick_encodes_exactly_as_each_state_alone(
    rows: list[tuple[str, int, Regime, Regime | None, int | None]],
) -> None:
    states = [
        make_state(symbol, ts, anchor, candidate, 0 if candidate is None else 1, last)
        for symbol, ts, anchor, candidate, last in rows
        if candidate != anchor
    ]
    assert encode_states(states) == b"".join(encode_state(s) for s in states)


@pytest.mark.parametrize(("state", "golden"), GOLDEN)
def test_encoding_equals_contract_definition(state: object, golden: bytes) -> None:
    obj = json.loads(golden)
    assert sorted(obj) == list(RECORD_KEYS)
    assert (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode() == golden


@pytest.mark.parametrize(("state", "golden"), GOLDEN)
def test_round_trip(state: object, golden: bytes) -> None:
    record = decode_record(golden[:-1])
    assert record == state_to_record(state)  # type: ignore[arg-type]


def test_restore_mapping_uses_active_config_and_drops_diagnostics() -> None:
    state = make_state(candidate=Regime.SQUEEZE_UP, progress=2, required=3)
    restored = record_to_state(state_to_record(state), HysteresisConfig(window_updates=7))
    assert restored.progress_required == 7
    assert restored.reason_codes == ()
    assert restored.debug is None
    assert restored.persisted_fields() == state.persisted_fields()
    assert (restored.schema, restored.schema_version) == ("hysteresis_state", "1")


VALID = json.loads(GOLDEN[0][1])


def _line(**changes: object) -> bytes:
    obj = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            del obj[key]
        else:
            obj[key] = value
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


_DROP = object()


@pytest.mark.parametrize(
    ("line", "category"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"symbol":"\xff"}', "not_utf8"),
        (b"not json", "not_json"),
        (b'{"anchor_regime":"CHOP', "not_json"),
        (GOLDEN[0][1][:-1] + b"garbage", "not_json"),
        (b"[1,2]", "not_object"),
        (b'"text"', "not_object"),
        (b"42", "not_object"),
        (_line(extra=1), "schema"),
        (_line(symbol=_DROP), "schema"),
        (_line(last_commit_timestamp_ms=_DROP), "schema"),
        (_line(schema="other"), "schema"),
        (_line(schema_version="2"), "schema"),
        (_line(schema_version=1), "schema"),
        (_line(symbol=""), "schema"),
        (_line(symbol=7), "schema"),
        (_line(engine_timestamp_ms=True), "schema"),
        (_line(engine_timestamp_ms=1.0), "schema"),
        (_line(engine_timestamp_ms="1"), "schema"),
        (_line(engine_timestamp_ms=-1), "schema"),
        (_line(progress_current=-1), "schema"),
        (_line(progress_current=2.5), "schema"),
        (_line(last_commit_timestamp_ms=-5), "schema"),
        (_line(last_commit_timestamp_ms=False), "schema"),
        (_line(anchor_regime="BULL"), "schema"),
        (_line(anchor_regime=None), "schema"),
        (_line(candidate_regime="chop_balanced"), "schema"),
        (_line(candidate_regime=None), "inconsistent_candidate"),  # progress 2, no candidate
        (_line(progress_current=0), "inconsistent_candidate"),  # candidate, progress 0
        (_line(candidate_regime="CHOP_BALANCED"), "inconsistent_candidate"),  # == anchor
        (_line()[:-1] + b',"symbol":"ETH"}', "duplicate_key"),
        (_line()[:-1] + b',"symb\\u006fl":"ETH"}', "duplicate_key"),
    ],
)
def test_invalid_lines_are_rejected_with_a_reason(line: bytes, category: str) -> None:
    with pytest.raises(RecordError) as info:
        decode_record(line)
    assert info.value.reason.split(":")[0] == category


def test_whitespace_around_the_object_is_still_a_record() -> None:
    record = decode_record(b"  " + GOLDEN[0][1][:-1] + b" \r")
    assert record.symbol == "BTC"


def test_unicode_escape_without_duplicates_is_valid() -> None:
    line = _line()[:-1].replace(b'"symbol":"BTC"', b'"symbol":"\\u0042TC"') + b"}"
    assert decode_record(line).symbol == "BTC"


def test_large_integers_are_integers() -> None:
    assert decode_record(_line(engine_timestamp_ms=2**70)).engine_timestamp_ms == 2**70
