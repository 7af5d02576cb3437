"""A loose reading of a record: how a plausible hand-written decoder gets C2.4 wrong.

Python's `isinstance(value, int)` is true of `True` and `False`, and `str(value)` turns
the number `1` into the string "1". A decoder written with those tests accepts a value
of the wrong JSON type (C2.7: the line is invalid) and restores it: a boolean as the
integer 1 or 0, a number where a string belongs as its text. Everything else it checks
as strictly as the contract (keys, ranges, regimes, the engine invariant), so it is
wrong in exactly that one way. The self-test's broken variants plug it into one
decoding path at a time (`crashkit.harness.kit.variants`, `sqlite_variants`).
"""

from __future__ import annotations

import json

import msgspec

from crashkit.regime_engine.codec import RECORD_KEYS, RecordError, StoreRecord

_INTEGERS = ("engine_timestamp_ms", "progress_current", "last_commit_timestamp_ms")
_TEXTS = ("anchor_regime", "candidate_regime", "schema", "schema_version", "symbol")
_NULLABLE = frozenset({"candidate_regime", "last_commit_timestamp_ms"})


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise RecordError("duplicate_key: a key appears more than once")
    return obj


def loose_record(line: bytes) -> StoreRecord:
    """One line read with `isinstance(v, int)` for integers and `str(v)` for text."""
    try:
        obj = json.loads(line, object_pairs_hook=_unique)
    except ValueError as exc:  # (UnicodeDecodeError too)
        raise RecordError(f"not_json: {exc}") from None
    if not isinstance(obj, dict):
        raise RecordError("not_object: not a JSON object")
    if set(obj) != set(RECORD_KEYS):
        raise RecordError(f"schema: keys {sorted(obj)}")
    for key in _INTEGERS:
        value = obj[key]
        if value is None and key in _NULLABLE:
            continue
        if not isinstance(value, int):  # the bug: True and False are ints to Python
            raise RecordError(f"schema: {key} is not an integer")
        obj[key] = int(value)
    for key in _TEXTS:
        value = obj[key]
        if value is None and key in _NULLABLE:
            continue
        if isinstance(value, int | float):  # the bug: a number read as its text
            obj[key] = str(value)
    try:
        record = msgspec.convert(obj, StoreRecord)
    except msgspec.ValidationError as exc:
        raise RecordError(f"schema: {exc}") from None
    if (record.candidate_regime is None) != (record.progress_current == 0) or (
        record.candidate_regime is not None and record.candidate_regime == record.anchor_regime
    ):
        raise RecordError("inconsistent_candidate: breaks the engine invariant")
    return record


def loose_block(block: bytes, lines: int) -> list[StoreRecord] | None:
    """Every line of a block of complete lines read by `loose_record`, or None (then the
    caller judges each line on its own path): a fast path looser than its slow one."""
    records: list[StoreRecord] = []
    for line in block.split(b"\n")[:lines]:
        try:
            records.append(loose_record(line))
        except RecordError:
            return None
    return records
