"""Restore throughput: how many records per second `restore_report` validates and selects.

Writes a state file of N canonical records shaped like the orchestrator's output
(S symbols per tick, one timestamp per tick), then times the full restore path the
orchestrator uses at startup (read, strict decode of every line, selection, report),
best of R runs, against a baseline measured on the same bytes in the same run: a
plain `json`-module restore that reads the same file, validates every line to the
same rules (the eight keys, their types, the schema literals, the candidate/progress
invariant) and applies the same selection rule. The two must pick the same winners.

`write_file` and `orchestrator_state` are the file generator other benchmarks and
tools reuse (this module imports nothing from its siblings, so it can be imported as
`benchmarks.restore_throughput` too). Part of `make bench` (`benchmarks/suite.py
--only restore`); standalone: `.venv/bin/python benchmarks/restore_throughput.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field

from crashkit.orchestrator.store.jsonl import restore_report
from crashkit.regime_engine.codec import (
    RECORD_KEYS,
    RECORD_SCHEMA,
    RECORD_SCHEMA_VERSION,
    encode_state,
    record_fields,
)
from crashkit.regime_engine.contracts import ALL_REGIMES, HysteresisState, Regime

TS0 = 1_700_000_000_000
STEP_MS = 60_000


def orchestrator_state(tick: int, symbol: int) -> HysteresisState:
    """Symbol `symbol`'s state at tick `tick`, as the orchestrator would persist it: every
    symbol shares the tick's timestamp; candidates and commit timestamps vary like a real run."""
    ts = TS0 + tick * STEP_MS
    regime = ALL_REGIMES[(tick // 7 + symbol) % len(ALL_REGIMES)]
    progress = (tick + symbol) % 3
    candidate = ALL_REGIMES[(tick // 7 + symbol + 1) % len(ALL_REGIMES)] if progress else None
    last_commit = None if tick < 7 else ts - (tick % 7) * STEP_MS
    return HysteresisState(f"SYM{symbol:03d}", ts, regime, candidate, progress, 3, last_commit)


def write_file(path: str, records: int, symbols: int) -> int:
    """A file shaped like the orchestrator's: tick-major, every symbol once per tick, all
    sharing the tick's timestamp; candidates and commit timestamps vary like a real run.
    Returns its size in bytes."""
    chunks: list[bytes] = []
    for i in range(records):
        tick, symbol = divmod(i, symbols)
        chunks.append(encode_state(orchestrator_state(tick, symbol)))
    data = b"".join(chunks)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# -- the baseline: a json-module restore ---------------------------------------------------

_KEYS = frozenset(RECORD_KEYS)
_REGIMES = frozenset(regime.value for regime in Regime)


@dataclass(slots=True)
class JsonRestore:
    """What the json-module restore saw: counts, and per symbol (1-based line, record)."""

    lines: int = 0
    valid: int = 0
    invalid: int = 0
    blank: int = 0
    ties: int = 0
    winners: dict[str, tuple[int, dict[str, object]]] = field(default_factory=dict)


def _nonneg_int(value: object) -> bool:
    return type(value) is int and value >= 0  # `type(...) is int` refuses bools


def _valid_record(obj: object) -> bool:
    """Contract §2 on one parsed line: exactly the eight keys, their types and literals,
    and the engine invariant (no candidate exactly when progress is 0; candidate != anchor)."""
    if type(obj) is not dict or len(obj) != len(_KEYS) or obj.keys() != _KEYS:
        return False
    symbol = obj["symbol"]
    anchor = obj["anchor_regime"]
    candidate = obj["candidate_regime"]
    progress = obj["progress_current"]
    last_commit = obj["last_commit_timestamp_ms"]
    return (
        type(symbol) is str
        and symbol != ""
        and _nonneg_int(obj["engine_timestamp_ms"])
        and _nonneg_int(progress)
        and (last_commit is None or _nonneg_int(last_commit))
        and type(anchor) is str
        and anchor in _REGIMES
        and (candidate is None or (type(candidate) is str and candidate in _REGIMES))
        and obj["schema"] == RECORD_SCHEMA
        and obj["schema_version"] == RECORD_SCHEMA_VERSION
        and (candidate is None) == (progress == 0)
        and candidate != anchor
    )


def json_restore(path: str) -> JsonRestore:
    """Restore a state file with the `json` module: read it, `json.loads` every complete
    line, validate it, and select per symbol the highest `engine_timestamp_ms` (a tie goes
    to the later line, and is counted). A torn tail (bytes after the last newline) and
    blank lines are skipped, as restore does."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    out = JsonRestore()
    best_ts: dict[str, int] = {}
    winners = out.winners
    loads = json.loads
    valid = invalid = blank = ties = 0
    lines = data[:end].split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            obj = loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            invalid += 1
            continue
        if not _valid_record(obj):
            invalid += 1
            continue
        valid += 1
        symbol: str = obj["symbol"]
        ts: int = obj["engine_timestamp_ms"]
        best = best_ts.get(symbol)
        if best is None or ts > best:
            best_ts[symbol] = ts
            winners[symbol] = (number, obj)
        elif ts == best:
            winners[symbol] = (number, obj)
            ties += 1
    out.lines, out.valid, out.invalid, out.blank, out.ties = len(lines), valid, invalid, blank, ties
    return out


# -- the figure -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreResult:
    records: int
    symbols: int
    file_bytes: int
    repeat: int
    ours_seconds: float  # best of `repeat`
    baseline_seconds: float  # best of `repeat`

    @property
    def ours_rate(self) -> float:
        """Records per second of `restore_report`."""
        return self.records / self.ours_seconds

    @property
    def baseline_rate(self) -> float:
        """Records per second of the json-module restore."""
        return self.records / self.baseline_seconds


def check_same_winners(path: str, baseline: JsonRestore) -> None:
    """`restore_report` and the json-module restore agree on the file (AssertionError if not)."""
    report = restore_report(path)
    assert report.outcome == "ok", report.reason
    assert (report.lines, report.valid, report.blank, report.ties) == (
        baseline.lines,
        baseline.valid,
        baseline.blank,
        baseline.ties,
    ), (report.lines, report.valid, report.blank, report.ties, baseline)
    assert len(report.invalid) == baseline.invalid
    ours = {symbol: (line, record_fields(rec)) for symbol, (line, rec) in report.winners.items()}
    assert ours == baseline.winners, "restore_report and the json-module restore disagree"


def measure(path: str, records: int, symbols: int, file_bytes: int, repeat: int) -> RestoreResult:
    """Time `restore_report(path)` and `json_restore(path)`, alternating, best of `repeat`."""
    ours = baseline = float("inf")
    last: JsonRestore | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        report = restore_report(path)
        ours = min(ours, time.perf_counter() - start)
        assert report.outcome == "ok" and report.valid == records, report.reason
        assert len(report.winners) == min(symbols, records)
        del report
        start = time.perf_counter()
        last = json_restore(path)
        baseline = min(baseline, time.perf_counter() - start)
    assert last is not None
    check_same_winners(path, last)
    return RestoreResult(records, symbols, file_bytes, repeat, ours, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.jsonl")
        size = write_file(path, args.records, args.symbols)
        result = measure(path, args.records, args.symbols, size, args.repeat)
    print(
        f"restore: {args.records:,} records ({size / 1e6:.1f} MB, {args.symbols} symbols) "
        f"in {result.ours_seconds:.3f} s best of {args.repeat} = "
        f"{result.ours_rate / 1e6:.2f} M records/s; json-module restore "
        f"{result.baseline_rate / 1e6:.2f} M records/s "
        f"({result.ours_rate / result.baseline_rate:.1f}x)"
    )


if __name__ == "__main__":
    main()
