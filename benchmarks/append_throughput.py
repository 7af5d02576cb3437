"""Durable append throughput: records per second through the reference backend's `append`.

The orchestrator persists each tick with one `backend.append(states)` (encode every
state, one `write`, one `fsync`) before publishing it, so this is the write path's
cost. The figure opens a real store in a temporary folder with `open_jsonl_store`
and appends T ticks of S states each (shaped as the restore benchmark's file,
distinct timestamps per tick). The baseline, on exactly the same bytes, is the
floor any durable append pays: `os.write` of the pre-encoded tick plus `os.fsync`
on an `O_APPEND` file in the same folder. The two run in alternating rounds (the
order flips every round) so load drift and the disk's moods hit both; the figure is
the median over rounds (the ratio: the median of each round's ours/raw, two
measurements taken back to back), since `fsync` latency on a shared disk swings by an
order of magnitude from one second to the next and one lucky round would otherwise
decide a best-of. Both files must end up byte-identical. Part of `make bench`
(`benchmarks/suite.py --only append500` and `--only append1`).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from restore_throughput import orchestrator_state

from crashkit.orchestrator.store.jsonl import open_jsonl_store
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState


@dataclass(frozen=True, slots=True)
class AppendResult:
    symbols: int  # states per tick (per append)
    ticks: int  # appends per side, over all rounds
    rounds: int
    ours_rates: tuple[float, ...]  # records/s of `backend.append`, per round
    raw_rates: tuple[float, ...]  # records/s of write + fsync, per round

    @property
    def ours_rate(self) -> float:
        """Median round of `backend.append`, records/s."""
        return statistics.median(self.ours_rates)

    @property
    def raw_rate(self) -> float:
        """Median round of raw write + fsync, records/s."""
        return statistics.median(self.raw_rates)

    @property
    def ratio(self) -> float:
        """Median over rounds of ours/raw within the round (the two ran back to back)."""
        return statistics.median(
            o / r for o, r in zip(self.ours_rates, self.raw_rates, strict=True)
        )


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(folder: str, symbols: int, ticks: int, rounds: int) -> AppendResult:
    """Append `ticks` ticks of `symbols` states (split into `rounds` rounds) through a real
    store in `folder` and, alternating, the same bytes by raw write + fsync."""
    rounds = max(1, min(rounds, ticks))
    per_round = max(1, ticks // rounds)
    ticks = per_round * rounds
    states: list[list[HysteresisState]] = [
        [orchestrator_state(tick, symbol) for symbol in range(symbols)] for tick in range(ticks)
    ]
    payloads = [b"".join([encode_state(state) for state in tick]) for tick in states]
    ours_path = os.path.join(folder, "ours.jsonl")
    raw_path = os.path.join(folder, "raw.jsonl")
    backend = open_jsonl_store(ours_path, HysteresisConfig()).backend
    raw_fd = os.open(raw_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    ours_rates: list[float] = []
    raw_rates: list[float] = []
    try:
        for r in range(rounds):
            chunk = range(r * per_round, (r + 1) * per_round)

            def ours(chunk: range = chunk) -> None:
                append = backend.append
                for tick in chunk:
                    append(states[tick])

            def raw(chunk: range = chunk) -> None:
                write, fsync = os.write, os.fsync
                for tick in chunk:
                    data = payloads[tick]
                    if write(raw_fd, data) != len(data):
                        raise OSError("short write")
                    fsync(raw_fd)

            records = per_round * symbols
            if r % 2 == 0:
                ours_rates.append(records / _timed(ours))
                raw_rates.append(records / _timed(raw))
            else:
                raw_rates.append(records / _timed(raw))
                ours_rates.append(records / _timed(ours))
    finally:
        backend.close()
        os.close(raw_fd)
    with open(ours_path, "rb") as a, open(raw_path, "rb") as b:
        assert a.read() == b.read(), "the store and the raw writes wrote different bytes"
    os.unlink(ours_path)
    os.unlink(raw_path)
    return AppendResult(symbols, ticks, rounds, tuple(ours_rates), tuple(raw_rates))
