"""Downstream events and the sinks that publish them.

Each event is one JSON line (`orchestrator_event` v1). Sinks receive a whole
tick's events at once, so a file sink writes and flushes once per tick. A sink that
cannot deliver raises `PublishError`: the tick is already persisted, and the runtime
stops there (contract D.39).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from crashkit.orchestrator.errors import PublishError
from crashkit.regime_engine.contracts import HysteresisState

EVENT_SCHEMA = "orchestrator_event"
EVENT_SCHEMA_VERSION = "1"

STATE_RESTORED = "hysteresis_state_restored"
DECISION_PUBLISHED = "hysteresis_decision_published"
DUPLICATE_SKIPPED = "duplicate_run_skipped"
SYMBOL_HALTED = "symbol_halted"
SCHEDULING_HALTED = "scheduling_halted"
ENGINE_RUN_COMPLETED = "engine_run_completed"


@dataclass(frozen=True, slots=True)
class Event:
    event_type: str
    symbol: str | None
    engine_timestamp_ms: int | None
    payload: Mapping[str, object] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        if self.symbol is None or self.engine_timestamp_ms is None:
            return None
        return f"{self.symbol}:{self.engine_timestamp_ms}"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": EVENT_SCHEMA,
            "schema_version": EVENT_SCHEMA_VERSION,
            "event_type": self.event_type,
            "symbol": self.symbol,
            "engine_timestamp_ms": self.engine_timestamp_ms,
            "run_id": self.run_id,
            "payload": dict(self.payload),
        }

    def encode(self) -> bytes:
        return (json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()


def state_payload(state: HysteresisState) -> dict[str, object]:
    """The six persisted fields plus `progress_required` and `reason_codes`."""
    return {
        "symbol": state.symbol,
        "engine_timestamp_ms": state.engine_timestamp_ms,
        "anchor_regime": state.anchor_regime.value,
        "candidate_regime": None
        if state.candidate_regime is None
        else state.candidate_regime.value,
        "progress_current": state.progress_current,
        "last_commit_timestamp_ms": state.last_commit_timestamp_ms,
        "progress_required": state.progress_required,
        "reason_codes": list(state.reason_codes),
    }


def state_event(event_type: str, state: HysteresisState) -> Event:
    return Event(
        event_type, state.symbol, state.engine_timestamp_ms, {"state": state_payload(state)}
    )


class EventSink(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Deliver one tick's events downstream, in order; raise PublishError if it cannot."""
        ...


class MemorySink:
    """Keeps every published event (tests and the harness read `events`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


class JsonlSink:
    """Appends a tick's events to a file (or stream) in one write, flushed per tick."""

    def __init__(self, stream: IO[bytes], name: str = "<stream>") -> None:
        self._stream = stream
        self.name = name  # what error messages call the output: its path, or "stdout"

    @classmethod
    def open(cls, path: str) -> JsonlSink:
        """Open (or create, with its folders) an events file for appending. Raises OSError."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        stream = open(path, "ab+")  # noqa: SIM115 - owned by the sink, closed in close()
        try:
            if stream.seek(0, os.SEEK_END) > 0:
                stream.seek(-1, os.SEEK_END)
                if stream.read(1) != b"\n":
                    stream.write(b"\n")  # a killed writer left a torn line: never glue onto it
                    stream.flush()
        except OSError:
            stream.close()
            raise
        return cls(stream, path)

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            self._stream.write(b"".join(event.encode() for event in events))
            self._stream.flush()
        except OSError as exc:  # ENOSPC, EFBIG, EPIPE, EIO: downstream did not get the tick
            raise PublishError(self.name, exc) from exc

    def close(self) -> None:
        """Close the file; a flush that fails here was already reported by publish."""
        with contextlib.suppress(OSError):
            self._stream.close()
