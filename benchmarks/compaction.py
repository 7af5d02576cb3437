"""Restore after compaction: a long history compacts, and the next restore no longer
depends on it.

Writes a history shaped like the orchestrator's (S symbols per tick, tick-major, as
`restore_throughput.write_file` does, streamed a tick at a time), restores it once
uncompacted (the baseline, same run, same bytes), compacts it with the reference
(`crashkit compact`'s path: the writer lock, temp file, fsync, replace, folder fsync),
then times the restore of the compacted file, best of R. The two restores must select
the same winners. Part of `make bench` (`benchmarks/suite.py --only compact`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from restore_throughput import orchestrator_state

from crashkit.orchestrator.store.compact import COMPACT_NOW
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.regime_engine.codec import encode_states
from crashkit.regime_engine.contracts import HysteresisConfig


@dataclass(frozen=True, slots=True)
class Compaction:
    records: int
    symbols: int
    file_bytes: int
    compacted_bytes: int
    uncompacted_seconds: float  # one restore of the whole history
    compact_seconds: float
    restore_seconds: float  # best of `repeat` restores of the compacted file
    repeat: int


def write_history(path: str, records: int, symbols: int) -> int:
    """`records` records, `symbols` per tick, one write per tick. Returns the size."""
    with open(path, "wb") as f:
        for tick in range(records // symbols):
            f.write(encode_states([orchestrator_state(tick, s) for s in range(symbols)]))
    return os.path.getsize(path)


def measure(folder: str, records: int, symbols: int, repeat: int) -> Compaction:
    path = os.path.join(folder, "history.jsonl")
    size = write_history(path, records, symbols)
    started = time.perf_counter()
    before = restore_report(path)
    uncompacted = time.perf_counter() - started
    started = time.perf_counter()
    opened = open_jsonl_store(path, HysteresisConfig(), policy=COMPACT_NOW)
    opened.backend.close()
    compact = time.perf_counter() - started
    best = float("inf")
    after = before
    for _ in range(repeat):
        started = time.perf_counter()
        after = restore_report(path)
        best = min(best, time.perf_counter() - started)
    same = {s: r for s, (_, r) in after.winners.items()} == {
        s: r for s, (_, r) in before.winners.items()
    }
    assert same and after.lines == symbols, "compaction changed what restore selects"
    return Compaction(
        before.valid,
        symbols,
        size,
        os.path.getsize(path),
        uncompacted,
        compact,
        best,
        repeat,
    )
