"""The harness's own reading of a JSONL state file (contract §4), kept apart from the backend's.

Deliberately simple and slow: it exists to disagree with a broken restore.
Line validity reuses the engine's strict record decoder (the schema is the
engine's); selection and outcome are re-derived here from the contract text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from crashkit.regime_engine.codec import RecordError, decode_record, record_to_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState


@dataclass(frozen=True, slots=True)
class ModelRestore:
    outcome: Literal["ok", "bootstrap", "fatal"]
    states: dict[str, HysteresisState]
    records: tuple[HysteresisState, ...]  # every valid committed record, in file order
    invalid_lines: tuple[int, ...]


def model_restore(data: bytes | None, config: HysteresisConfig | None = None) -> ModelRestore:
    """None means the file does not exist."""
    config = config or HysteresisConfig()
    if data is None:
        return ModelRestore("bootstrap", {}, (), ())
    complete = data.split(b"\n")[:-1]  # the piece after the last "\n" is a torn tail
    records: list[HysteresisState] = []
    invalid: list[int] = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(record_to_state(decode_record(line), config))
        except RecordError:
            invalid.append(number)
    if invalid and not records:
        return ModelRestore("fatal", {}, (), tuple(invalid))
    states: dict[str, HysteresisState] = {}
    for state in records:
        best = states.get(state.symbol)
        if best is None or state.engine_timestamp_ms >= best.engine_timestamp_ms:
            states[state.symbol] = state
    return ModelRestore("ok" if records else "bootstrap", states, tuple(records), tuple(invalid))
