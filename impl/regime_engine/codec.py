"""The persisted record of a `HysteresisState`: `hysteresis_store_record` v1.

The engine owns this schema (it owns the state), but knows nothing of files:
this module only maps states to canonical bytes and strictly decodes one line.
Storage backends call it; they never build records by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Final, Literal

import msgspec

from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

RECORD_SCHEMA: Final = "hysteresis_store_record"
RECORD_SCHEMA_VERSION: Final = "1"
RECORD_KEYS: tuple[str, ...] = (
    "anchor_regime",
    "candidate_regime",
    "engine_timestamp_ms",
    "last_commit_timestamp_ms",
    "progress_current",
    "schema",
    "schema_version",
    "symbol",
)

_NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
_Symbol = Annotated[str, msgspec.Meta(min_length=1)]


class StoreRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One decoded, type-checked record line (contract §2).

    `gc=False`: records hold only strings, ints and enums (no cycles), and keeping a
    million of them out of the cycle collector makes restore ~4x faster.
    """

    # Fields in sorted key order, so msgspec's compact encoding of a record is its
    # canonical line for plain symbols (`encode_states` relies on it).
    anchor_regime: Regime
    candidate_regime: Regime | None
    engine_timestamp_ms: _NonNegInt
    last_commit_timestamp_ms: _NonNegInt | None
    progress_current: _NonNegInt
    schema: Literal["hysteresis_store_record"]
    schema_version: Literal["1"]
    symbol: _Symbol


class RecordError(ValueError):
    """A line is not a valid record; `reason` is a short stable category plus detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_DECODER = msgspec.json.Decoder(StoreRecord)
_LINE_ENCODER = msgspec.json.Encoder()


def state_to_record(state: HysteresisState) -> StoreRecord:
    return StoreRecord(
        schema=RECORD_SCHEMA,
        schema_version=RECORD_SCHEMA_VERSION,
        symbol=state.symbol,
        engine_timestamp_ms=state.engine_timestamp_ms,
        anchor_regime=state.anchor_regime,
        candidate_regime=state.candidate_regime,
        progress_current=state.progress_current,
        last_commit_timestamp_ms=state.last_commit_timestamp_ms,
    )


def record_to_state(record: StoreRecord, config: HysteresisConfig) -> HysteresisState:
    """Restore mapping: `progress_required` from the *active* config, no reasons, no debug."""
    return HysteresisState(
        symbol=record.symbol,
        engine_timestamp_ms=record.engine_timestamp_ms,
        anchor_regime=record.anchor_regime,
        candidate_regime=record.candidate_regime,
        progress_current=record.progress_current,
        progress_required=config.window_updates,
        last_commit_timestamp_ms=record.last_commit_timestamp_ms,
        reason_codes=(),
        debug=None,
    )


def record_fields(record: StoreRecord) -> dict[str, object]:
    """The record as a plain JSON-ready dict with all eight keys."""
    return {
        "anchor_regime": record.anchor_regime.value,
        "candidate_regime": None
        if record.candidate_regime is None
        else record.candidate_regime.value,
        "engine_timestamp_ms": record.engine_timestamp_ms,
        "last_commit_timestamp_ms": record.last_commit_timestamp_ms,
        "progress_current": record.progress_current,
        "schema": record.schema,
        "schema_version": record.schema_version,
        "symbol": record.symbol,
    }


def encode_record(record: StoreRecord) -> bytes:
    """Canonical bytes: `json.dumps(sort_keys=True, separators=(",", ":"))` + `\\n` (contract §2)."""
    return (json.dumps(record_fields(record), sort_keys=True, separators=(",", ":")) + "\n").encode(
        "utf-8"
    )


def encode_state(state: HysteresisState) -> bytes:
    return encode_record(state_to_record(state))


def _plain(text: str) -> bool:
    """Printable ASCII without `"` or `\\`: encoded alike by json.dumps and msgspec."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def encode_states(states: Sequence[HysteresisState]) -> bytes:
    """The canonical lines of a tick's states, byte for byte `encode_state` of each.

    One C-level encode of the records when every symbol is plain text (the same bytes:
    the fields are declared in key order, enums encode as their values); otherwise,
    `json.dumps` per record, which the contract defines the bytes by."""
    symbols = "".join([state.symbol for state in states])
    if not _plain(symbols):
        return b"".join([encode_state(state) for state in states])
    return _LINE_ENCODER.encode_lines(
        [
            StoreRecord(
                state.anchor_regime,
                state.candidate_regime,
                state.engine_timestamp_ms,
                state.last_commit_timestamp_ms,
                state.progress_current,
                RECORD_SCHEMA,
                RECORD_SCHEMA_VERSION,
                state.symbol,
            )
            for state in states
        ]
    )


def _has_duplicate_keys(line: bytes) -> bool:
    """Exact slow check: parse with a pairs hook and look for a repeated top-level key."""
    seen: list[list[str]] = []

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen.append([key for key, _ in pairs])
        return dict(pairs)

    json.loads(line, object_pairs_hook=hook)
    top = seen[-1]
    return len(set(top)) != len(top)


def check_record(record: StoreRecord, line: bytes) -> None:
    """Checks msgspec cannot express; raises RecordError.

    - duplicate keys (msgspec keeps the last one; the contract wants exactly
      eight keys). Without `\\u` escapes every `"` in a valid record is a key or
      string-value delimiter or an escaped quote of the symbol, so the count is
      exact; lines with `\\u` escapes take the exact (slow) path.
    - the engine invariant: no candidate exactly when progress is 0, and the
      candidate differs from the anchor (restoring such a record would break
      contract §9.7).
    """
    expected = 24 + record.symbol.count('"') + (0 if record.candidate_regime is None else 2)
    if b"\\u" in line:
        if _has_duplicate_keys(line):
            raise RecordError("duplicate_key: a key appears more than once")
    elif line.count(b'"') != expected:
        raise RecordError("duplicate_key: a key appears more than once")
    if (record.candidate_regime is None) != (record.progress_current == 0):
        raise RecordError(
            "inconsistent_candidate: candidate_regime must be null exactly when progress_current is 0"
        )
    if record.candidate_regime is not None and record.candidate_regime == record.anchor_regime:
        raise RecordError("inconsistent_candidate: candidate_regime equals anchor_regime")


def decode_record(line: bytes) -> StoreRecord:
    """Strictly decode one line (without its `\\n`); raises RecordError with a reason."""
    try:
        record = _DECODER.decode(line)
    except UnicodeDecodeError as exc:
        raise RecordError(f"not_utf8: {exc.reason} at byte {exc.start}") from None
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Expected `object`"):
            raise RecordError(f"not_object: {message}") from None
        raise RecordError(f"schema: {message}") from None
    except msgspec.DecodeError as exc:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise RecordError(f"not_utf8: {uexc.reason} at byte {uexc.start}") from None
        raise RecordError(f"not_json: {exc}") from None
    check_record(record, line)
    return record


def decode_lines_fast(body: bytes) -> list[StoreRecord] | None:
    """Decode a whole block of `\\n`-terminated lines in one call, or None if any line fails.

    The restore fast path: one C call for the common all-valid file. Callers fall
    back to `decode_record` per line to find and report the bad ones.
    """
    try:
        return _DECODER.decode_lines(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
