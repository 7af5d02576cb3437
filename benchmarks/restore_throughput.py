"""Restore throughput: how many records per second `restore_report` validates and selects.

Writes a state file of N canonical records shaped like the orchestrator's output
(S symbols per tick, one timestamp per tick), then times the full restore path the orchestrator uses
at startup (read, strict decode of every line, selection, report) and prints the
best of R runs. Rerun: `make bench` or
`.venv/bin/python benchmarks/restore_throughput.py --records 1000000`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from crashkit.orchestrator.store.jsonl import restore_report
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import ALL_REGIMES, HysteresisState


def write_file(path: str, records: int, symbols: int) -> int:
    """A file shaped like the orchestrator's: tick-major, every symbol once per tick, all
    sharing the tick's timestamp; candidates and commit timestamps vary like a real run."""
    chunks: list[bytes] = []
    for i in range(records):
        tick, symbol = divmod(i, symbols)
        ts = 1_700_000_000_000 + tick * 60_000
        regime = ALL_REGIMES[(tick // 7 + symbol) % len(ALL_REGIMES)]
        progress = (tick + symbol) % 3
        candidate = ALL_REGIMES[(tick // 7 + symbol + 1) % len(ALL_REGIMES)] if progress else None
        last_commit = None if tick < 7 else ts - (tick % 7) * 60_000
        state = HysteresisState(f"SYM{symbol:03d}", ts, regime, candidate, progress, 3, last_commit)
        chunks.append(encode_state(state))
    data = b"".join(chunks)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.jsonl")
        size = write_file(path, args.records, args.symbols)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = restore_report(path)
            best = min(best, time.perf_counter() - start)
        assert report.outcome == "ok" and report.valid == args.records, report
        assert len(report.winners) == min(args.symbols, args.records)
    print(
        f"restore: {args.records:,} records ({size / 1e6:.1f} MB, {args.symbols} symbols) "
        f"in {best:.3f} s best of {args.repeat} = {args.records / best / 1e6:.2f} M records/s"
    )


if __name__ == "__main__":
    main()
