"""`make bench`: every performance figure, each beside a baseline measured in the same run.

One table on stdout (progress on stderr), one row per figure: what we measure, the
baseline measured on the same bytes in the same run, their ratio, the goal and
whether it is met. The figures (each in its own module here, `--only NAME` runs one):

- `restore`: restore throughput of a 1,000,000-record, 50-symbol state file
  (`restore_report`, best of 3) against a json-module restore of the same file
  (restore_throughput.py). Goal: >= 1.2 M records/s, or >= 8x the json module.
- `memory`: peak RSS of `crashkit inspect --json` on that file, against the file's
  size, with the interpreter floor (`crashkit --version`) shown (restore_memory.py).
  Goal: <= 64 MB (10^6 bytes) whatever the file's size.
- `append500`, `append1`: durable appends of 500 and 1 states per tick through the
  reference backend against raw `write` + `fsync` of the same bytes
  (append_throughput.py), median of alternating rounds. Goals: >= 0.5x and >= 0.9x raw.
- `explore`: crash states checked per second by the crash explorer on the default
  workload (explore_rate.py). Goal: >= 1,000 per core.
- `compact`: restore of a 10,000,000-record, 500-symbol history after `crashkit compact`,
  against the uncompacted restore of the same history (compaction.py). Goal: <= 20 ms.

The SQLite backend (`crashkit.orchestrator.store.sqlite:BACKEND`) beside the JSONL
reference on the same states, the reference the baseline, the ratio SQLite / JSONL, no
goals (sqlite_figures.py):

- `sqlite-ticks1`, `sqlite-ticks50`, `sqlite-ticks500`: durable ticks per second, one
  `append` of 1, 50 or 500 states per tick, both backends in the same folder, median of
  alternating rounds.
- `sqlite-restore`: `restore_report` of a database of 1,000,000 symbols' rows against
  that of a 1,000,000-record file of the same states, best of 3; a start timed once.
- `sqlite-history`: restore after the `compact` figure's history (10,000,000 records,
  500 symbols) upserted, against the JSONL file of it uncompacted and compacted.
- `real-explore`, `real-explore-sqlite`: crash states per second of `crashkit explore
  --real` (the recorded run a real process on a FUSE mount, included; each restart a
  warm worker forked from a server that imported crashkit once, several at once) on the
  reference and on the SQLite backend, best of 3, each beside the in-process explorer on
  the same workload and backend (real_mode.py and warm.py in the harness). Goal on the
  reference: >= 100 per second on 2 cores (a new interpreter per restart did about 15).
  "not measured" without FUSE.
- `sqlite-explore`: crash states checked per second by the explorer on the default
  workload with each backend, best of 3.

Inputs are seeded (the same bytes every run), temporary folders are removed.
`--quick` shrinks every size for a smoke run; `--json FILE` also writes the figures.
Meeting or missing a goal never changes the exit code: this reports, it does not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import append_throughput
import compaction
import explore_rate
import restore_memory
import restore_throughput
import sqlite_figures
from rich.console import Console
from rich.table import Table

from crashkit.harness.explore import Workload

FIGURES = (
    "restore",
    "memory",
    "append500",
    "append1",
    "explore",
    "compact",
    "sqlite-ticks1",
    "sqlite-ticks50",
    "sqlite-ticks500",
    "sqlite-restore",
    "sqlite-history",
    "sqlite-explore",
    "real-explore",
    "real-explore-sqlite",
)
SQLITE_TICKS = {"sqlite-ticks1": 1, "sqlite-ticks50": 50, "sqlite-ticks500": 500}
MB = 1_000_000

# Goals (also in README.md's "Benchmarks" section).
RESTORE_GOAL_RATE = 1.2e6  # records/s
RESTORE_GOAL_RATIO = 8.0  # x the json-module restore
MEMORY_GOAL_BYTES = 64 * MB
APPEND500_GOAL_RATIO = 0.5  # x raw write + fsync
APPEND1_GOAL_RATIO = 0.9
EXPLORE_GOAL_RATE = 1_000.0  # crash states/s, per core
COMPACT_GOAL_SECONDS = 0.020  # restore after compaction
REAL_EXPLORE_GOAL_RATE = 100.0  # crash states/s of `explore --real` on the reference, 2 cores

_STARTED = time.perf_counter()


def note(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table (and one entry of `--json`)."""

    key: str
    figure: str
    detail: str  # the sizes, shown under the figure's name
    unit: str
    ours: float
    ours_text: str
    baseline: float | None
    baseline_text: str
    ratio: float | None
    ratio_text: str
    goal: str
    met: bool | None
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "figure": self.figure,
            "detail": self.detail,
            "unit": self.unit,
            "ours": self.ours,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met,
            **self.extra,
        }


def _rate(value: float) -> str:
    return f"{value:,.0f} rec/s"


def _times(ratio: float) -> str:
    """A ratio of times: a fraction when small (as the compact row shows it)."""
    return f"1/{1 / ratio:,.0f}" if ratio < 0.1 else f"{ratio:.2f}x"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value:.3f} s"


def _transactions(count: int) -> str:
    return f"{count:,} transaction" + ("" if count == 1 else "s")


# The SQLite figures have no goal (none was set): shown as the rows without one are.
NO_GOAL = "—"


# -- the figures ----------------------------------------------------------------------------


def restore_rows(path: str, args: argparse.Namespace, file_bytes: int) -> list[Row]:
    note(f"restore: restore_report vs json-module restore, best of {args.repeat}")
    r = restore_throughput.measure(path, args.records, args.symbols, file_bytes, args.repeat)
    ratio = r.ours_rate / r.baseline_rate
    return [
        Row(
            key="restore",
            figure="Restore throughput",
            detail=f"{r.records:,} records, {r.symbols} symbols, {file_bytes / MB:.1f} MB, "
            f"best of {r.repeat}",
            unit="records/s",
            ours=r.ours_rate,
            ours_text=f"{r.ours_rate / 1e6:.2f} M rec/s",
            baseline=r.baseline_rate,
            baseline_text=f"{r.baseline_rate / 1e6:.2f} M rec/s\n(json-module restore)",
            ratio=ratio,
            ratio_text=f"{ratio:.1f}x",
            goal=f">= {RESTORE_GOAL_RATE / 1e6:.1f} M rec/s or >= {RESTORE_GOAL_RATIO:.0f}x",
            met=r.ours_rate >= RESTORE_GOAL_RATE or ratio >= RESTORE_GOAL_RATIO,
            extra={
                "records": r.records,
                "file_bytes": file_bytes,
                "ours_seconds": r.ours_seconds,
                "baseline_seconds": r.baseline_seconds,
            },
        )
    ]


def memory_rows(path: str, args: argparse.Namespace, file_bytes: int, scratch: str) -> list[Row]:
    note("memory: peak RSS of `crashkit inspect --json FILE` and of `crashkit --version`")
    m = restore_memory.measure(path, args.records, file_bytes, scratch)
    ratio = m.restore_peak_bytes / m.file_bytes
    return [
        Row(
            key="memory",
            figure="Restore peak memory",
            detail=f"crashkit inspect --json, {args.records:,} records",
            unit="bytes",
            ours=m.restore_peak_bytes,
            ours_text=f"{m.restore_peak_bytes / MB:.1f} MB",
            baseline=m.file_bytes,
            baseline_text=f"{m.file_bytes / MB:.1f} MB\n(file size)",
            ratio=ratio,
            ratio_text=f"{ratio:.2f}x file",
            goal=f"<= {MEMORY_GOAL_BYTES / MB:.0f} MB",
            met=m.restore_peak_bytes <= MEMORY_GOAL_BYTES,
            extra={"floor_bytes": m.floor_peak_bytes},
        ),
        Row(
            key="memory_floor",
            figure="Interpreter floor",
            detail="crashkit --version (for reference)",
            unit="bytes",
            ours=m.floor_peak_bytes,
            ours_text=f"{m.floor_peak_bytes / MB:.1f} MB",
            baseline=None,
            baseline_text="—",
            ratio=None,
            ratio_text="—",
            goal="—",
            met=None,
        ),
    ]


def append_row(folder: str, symbols: int, ticks: int, rounds: int, goal_ratio: float) -> Row:
    note(f"append: {ticks:,} ticks of {symbols} state(s), {rounds} alternating rounds")
    a = append_throughput.measure(folder, symbols, ticks, rounds)
    ratio = a.ratio
    plural = "symbol" if symbols == 1 else "symbols"
    return Row(
        key=f"append{symbols}",
        figure=f"Durable append, {symbols} {plural}/tick",
        detail=f"{a.ticks:,} ticks, median of {a.rounds} paired rounds",
        unit="records/s",
        ours=a.ours_rate,
        ours_text=_rate(a.ours_rate),
        baseline=a.raw_rate,
        baseline_text=f"{_rate(a.raw_rate)}\n(write + fsync)",
        ratio=ratio,
        ratio_text=f"{ratio:.2f}x",
        goal=f">= {goal_ratio}x raw",
        met=ratio >= goal_ratio,
        extra={
            "ticks": a.ticks,
            "states_per_tick": a.symbols,
            "ours_rounds": list(a.ours_rates),
            "raw_rounds": list(a.raw_rates),
            "best_ours": max(a.ours_rates),
            "best_raw": max(a.raw_rates),
        },
    )


def explore_row(args: argparse.Namespace) -> Row:
    workload = Workload(symbols=args.explore_symbols, ticks=args.explore_ticks)
    note(f"explore: {workload.symbols} symbols x {workload.ticks} ticks, best of {args.repeat}")
    e = explore_rate.measure(workload, args.repeat)
    return Row(
        key="explore",
        figure="Crash states per second",
        detail=f"Workload({workload.symbols} symbols x {workload.ticks} ticks): "
        f"{e.states_checked:,} states, best of {e.repeat}, one core",
        unit="states/s",
        ours=e.rate,
        ours_text=f"{e.rate:,.0f} states/s",
        baseline=None,
        baseline_text="—",
        ratio=None,
        ratio_text="—",
        goal=f">= {EXPLORE_GOAL_RATE:,.0f}/s per core",
        met=e.rate >= EXPLORE_GOAL_RATE,
        extra={"states_checked": e.states_checked, "seconds": e.seconds},
    )


def compact_row(folder: str, args: argparse.Namespace) -> Row:
    records, symbols = args.compact_records, args.compact_symbols
    note(f"compact: a {records:,}-record history of {symbols} symbols, compacted, restored")
    c = compaction.measure(folder, records, symbols, args.repeat)
    ratio = c.restore_seconds / c.uncompacted_seconds
    return Row(
        key="compact",
        figure="Restore after compaction",
        detail=f"{c.records:,}-record history, {c.symbols} symbols, "
        f"{c.file_bytes / MB:,.0f} MB -> {c.compacted_bytes / 1000:,.0f} kB, best of {c.repeat}",
        unit="seconds",
        ours=c.restore_seconds,
        ours_text=f"{c.restore_seconds * 1000:.1f} ms",
        baseline=c.uncompacted_seconds,
        baseline_text=f"{c.uncompacted_seconds:.2f} s\n(uncompacted restore)",
        ratio=ratio,
        ratio_text=f"1/{1 / ratio:,.0f}",
        goal=f"<= {COMPACT_GOAL_SECONDS * 1000:.0f} ms",
        met=c.restore_seconds <= COMPACT_GOAL_SECONDS,
        extra={"compact_seconds": c.compact_seconds, "file_bytes": c.file_bytes},
    )


def sqlite_ticks_row(folder: str, key: str, args: argparse.Namespace) -> Row:
    symbols = SQLITE_TICKS[key]
    note(f"{key}: {args.sqlite_ticks:,} ticks of {symbols} state(s), SQLite vs JSONL")
    t = sqlite_figures.measure_ticks(folder, symbols, args.sqlite_ticks, args.rounds)
    plural = "symbol" if symbols == 1 else "symbols"
    return Row(
        key=key,
        figure=f"SQLite durable ticks, {symbols} {plural}/tick",
        detail=f"{t.ticks:,} ticks, median of {t.rounds} paired rounds",
        unit="ticks/s",
        ours=t.sqlite_rate,
        ours_text=f"{t.sqlite_rate:,.0f} ticks/s",
        baseline=t.jsonl_rate,
        baseline_text=f"{t.jsonl_rate:,.0f} ticks/s\n(JSONL reference)",
        ratio=t.ratio,
        ratio_text=f"{t.ratio:.2f}x",
        goal=NO_GOAL,
        met=None,
        extra={
            "ticks": t.ticks,
            "states_per_tick": t.symbols,
            "sqlite_rounds": list(t.sqlite_rates),
            "jsonl_rounds": list(t.jsonl_rates),
            "sqlite_records_per_second": t.sqlite_rate * t.symbols,
            "jsonl_records_per_second": t.jsonl_rate * t.symbols,
        },
    )


def sqlite_restore_row(folder: str, args: argparse.Namespace) -> Row:
    note(f"sqlite-restore: {args.sqlite_records:,} symbols' rows, best of {args.repeat}")
    r = sqlite_figures.measure_restore(folder, args.sqlite_records, args.repeat)
    ratio = r.sqlite_seconds / r.jsonl_seconds
    return Row(
        key="sqlite-restore",
        figure="SQLite restore, one row per symbol",
        detail=f"{r.records:,} symbols: {r.sqlite_bytes / MB:,.1f} MB database, "
        f"{r.jsonl_bytes / MB:,.1f} MB file;\nrestore_report, best of {r.repeat}; "
        f"a start (BACKEND.open):\n{_seconds(r.sqlite_open_seconds)} vs "
        f"{_seconds(r.jsonl_open_seconds)}, once. Database built by apsw\n"
        f"in {_transactions(r.transactions)} as the backend does (checked)",
        unit="seconds",
        ours=r.sqlite_seconds,
        ours_text=f"{_seconds(r.sqlite_seconds)}\n({_rate(r.sqlite_rate)})",
        baseline=r.jsonl_seconds,
        baseline_text=f"{_seconds(r.jsonl_seconds)}\n({_rate(r.jsonl_rate)}, JSONL)",
        ratio=ratio,
        ratio_text=_times(ratio),
        goal=NO_GOAL,
        met=None,
        extra={
            "records": r.records,
            "transactions": r.transactions,
            "sqlite_bytes": r.sqlite_bytes,
            "jsonl_bytes": r.jsonl_bytes,
            "sqlite_records_per_second": r.sqlite_rate,
            "jsonl_records_per_second": r.jsonl_rate,
            "sqlite_open_seconds": r.sqlite_open_seconds,
            "jsonl_open_seconds": r.jsonl_open_seconds,
        },
    )


def sqlite_history_rows(folder: str, args: argparse.Namespace) -> list[Row]:
    records, symbols = args.compact_records, args.compact_symbols
    note(f"sqlite-history: a {records:,}-record history of {symbols} symbols, both ways")
    h = sqlite_figures.measure_history(folder, records, symbols, args.repeat)
    built = (
        f"{h.records:,} upserts, {h.symbols} symbols: a {h.sqlite_bytes / 1000:,.0f} kB database\n"
        f"(built by apsw in {_transactions(h.transactions)}, as the backend: checked)\n"
    )
    extra: dict[str, object] = {
        "records": h.records,
        "symbols": h.symbols,
        "transactions": h.transactions,
        "sqlite_bytes": h.sqlite_bytes,
        "build_seconds": h.build_seconds,
    }
    uncompacted = h.sqlite_seconds / h.uncompacted_seconds
    compacted = h.sqlite_seconds / h.compacted_seconds
    return [
        Row(
            key="sqlite-history",
            figure="SQLite restore after a history",
            detail=f"{built}vs the {h.jsonl_bytes / MB:,.0f} MB file uncompacted; "
            f"best of {h.repeat} (the file: once)",
            unit="seconds",
            ours=h.sqlite_seconds,
            ours_text=f"{h.sqlite_seconds * 1000:.2f} ms",
            baseline=h.uncompacted_seconds,
            baseline_text=f"{h.uncompacted_seconds * 1000:,.0f} ms\n(JSONL uncompacted)",
            ratio=uncompacted,
            ratio_text=_times(uncompacted),
            goal=NO_GOAL,
            met=None,
            extra={**extra, "jsonl_bytes": h.jsonl_bytes},
        ),
        Row(
            key="sqlite-history-compacted",
            figure="SQLite restore after a history, vs compacted",
            detail=f"the same database vs the file compacted to "
            f"{h.compacted_bytes / 1000:,.0f} kB;\nbest of {h.repeat}",
            unit="seconds",
            ours=h.sqlite_seconds,
            ours_text=f"{h.sqlite_seconds * 1000:.2f} ms",
            baseline=h.compacted_seconds,
            baseline_text=f"{h.compacted_seconds * 1000:.2f} ms\n(JSONL compacted)",
            ratio=compacted,
            ratio_text=_times(compacted),
            goal=NO_GOAL,
            met=None,
            extra={**extra, "jsonl_bytes": h.compacted_bytes},
        ),
    ]


def sqlite_explore_row(args: argparse.Namespace) -> Row:
    workload = Workload(symbols=args.explore_symbols, ticks=args.explore_ticks)
    note(f"sqlite-explore: {workload.symbols} symbols x {workload.ticks} ticks, both backends")
    e = sqlite_figures.measure_explore(workload, args.repeat)
    return Row(
        key="sqlite-explore",
        figure="SQLite crash states per second",
        detail=f"Workload({workload.symbols} symbols x {workload.ticks} ticks), best of "
        f"{args.repeat}, one core:\n{e.sqlite.states_checked:,} states in "
        f"{e.sqlite.seconds:.2f} s vs {e.jsonl.states_checked:,} in {e.jsonl.seconds:.2f} s",
        unit="states/s",
        ours=e.sqlite.rate,
        ours_text=f"{e.sqlite.rate:,.0f} states/s",
        baseline=e.jsonl.rate,
        baseline_text=f"{e.jsonl.rate:,.0f} states/s\n(JSONL reference)",
        ratio=e.ratio,
        ratio_text=f"{e.ratio:.2f}x",
        goal=NO_GOAL,
        met=None,
        extra={
            "sqlite_states_checked": e.sqlite.states_checked,
            "sqlite_seconds": e.sqlite.seconds,
            "jsonl_states_checked": e.jsonl.states_checked,
            "jsonl_seconds": e.jsonl.seconds,
        },
    )


def real_explore_row(args: argparse.Namespace, key: str) -> Row:
    """Crash states per second of `crashkit explore --real` (each restart a process, a
    warm worker), best of `--repeat`, beside the in-process explorer on the same workload
    and backend (the reference, or the SQLite backend for `real-explore-sqlite`)."""
    from crashkit.faults.real import fuse_unavailable
    from crashkit.harness.explore import Explorer
    from crashkit.harness.explore.real_mode import explore_real, restart_workers, warm_runner
    from crashkit.orchestrator.store import jsonl, sqlite

    backend = sqlite.BACKEND if key == "real-explore-sqlite" else jsonl.BACKEND
    name = "SQLite backend" if backend is sqlite.BACKEND else "JSONL reference"
    workload = Workload(symbols=2, ticks=args.real_ticks)
    shape = f"Workload({workload.symbols} symbols x {workload.ticks} ticks), {name}"
    title = "Real-process crash states per second"
    if backend is sqlite.BACKEND:
        title += ", SQLite"
    reason = fuse_unavailable()
    if reason is not None:
        return Row(
            key=key,
            figure=title,
            detail=f"not measured: {reason}",
            unit="states/s",
            ours=0.0,
            ours_text="—",
            baseline=None,
            baseline_text="—",
            ratio=None,
            ratio_text="—",
            goal=NO_GOAL,
            met=None,
            extra={"unavailable": reason},
        )
    note(f"{key}: {shape}, real processes on a FUSE mount vs in-process, best of {args.repeat}")
    assert backend.spec is not None
    best = None
    cold: str | None = None  # why the restarts were new processes
    for _ in range(max(1, args.repeat)):
        with warm_runner(backend.spec, None) as runner:
            real = explore_real(backend.spec, workload, max_findings=0, runner=runner)
            cold = runner.why_cold if runner.warm_runs == 0 else None
        if best is None or real.states / real.seconds > best.states / best.seconds:
            best = real
    assert best is not None
    real = best
    inside = Explorer(backend).run(workload)
    real_rate = real.states / real.seconds
    inside_rate = inside.states_checked / inside.seconds
    ratio = real_rate / inside_rate
    workers = restart_workers()
    how = f"{workers} warm restarts at once" if cold is None else f"new processes: {cold}"
    reference = backend is not sqlite.BACKEND
    return Row(
        key=key,
        figure=title,
        detail=f"{shape}: {real.states:,} states, {real.restarts} restarts in "
        f"{real.seconds:.2f} s\n(recording included; {how}; best of {args.repeat})\n"
        f"vs {inside.states_checked:,} states in-process in {inside.seconds:.2f} s",
        unit="states/s",
        ours=real_rate,
        ours_text=f"{real_rate:,.1f} states/s",
        baseline=inside_rate,
        baseline_text=f"{inside_rate:,.0f} states/s\n(in-process explorer)",
        ratio=ratio,
        ratio_text=f"1/{1 / ratio:,.0f}",
        goal=f">= {REAL_EXPLORE_GOAL_RATE:,.0f}/s on 2 cores" if reference else NO_GOAL,
        met=real_rate >= REAL_EXPLORE_GOAL_RATE if reference else None,
        extra={
            "real_states": real.states,
            "real_restarts": real.restarts,
            "real_seconds": real.seconds,
            "restarts_at_once": workers,
            "warm": cold is None,
            "inside_states": inside.states_checked,
            "inside_seconds": inside.seconds,
        },
    )


# -- the run --------------------------------------------------------------------------------


def _filesystem(path: str) -> str:
    """The file-system type `path` is on (from /proc/mounts; '?' elsewhere)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/suite.py", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--records", type=int, help="state-file records (1,000,000; quick 50,000)")
    parser.add_argument("--symbols", type=int, default=50, help="symbols in the state file")
    parser.add_argument("--repeat", type=int, default=3, help="restore and explore: best of N")
    parser.add_argument("--append-ticks", type=int, help="500-symbol ticks (200; quick 20)")
    parser.add_argument("--single-ticks", type=int, help="1-symbol ticks (2000; quick 200)")
    parser.add_argument("--rounds", type=int, default=7, help="append: alternating rounds")
    parser.add_argument("--explore-symbols", type=int, default=Workload().symbols)
    parser.add_argument("--explore-ticks", type=int, default=Workload().ticks)
    parser.add_argument("--compact-records", type=int, help="history (10,000,000; quick 50,000)")
    parser.add_argument("--compact-symbols", type=int, default=500, help="its symbols")
    parser.add_argument("--sqlite-ticks", type=int, help="sqlite-ticks*: ticks (500; quick 14)")
    parser.add_argument(
        "--sqlite-records", type=int, help="sqlite-restore: symbols (1,000,000; quick 2,000)"
    )
    parser.add_argument(
        "--real-ticks", type=int, help="real-explore: ticks of 2 symbols (4; quick 2)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these figures (repeat or comma-separate): {', '.join(FIGURES)}",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--dir", help="where the temporary folder goes (default: system temp)")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = 50_000 if args.quick else 1_000_000
    if args.append_ticks is None:
        args.append_ticks = 20 if args.quick else 200
    if args.single_ticks is None:
        args.single_ticks = 200 if args.quick else 2000
    if args.compact_records is None:
        args.compact_records = 50_000 if args.quick else 10_000_000
    if args.sqlite_ticks is None:
        args.sqlite_ticks = 14 if args.quick else 500
    if args.sqlite_records is None:
        args.sqlite_records = 2_000 if args.quick else 1_000_000
    if args.real_ticks is None:
        args.real_ticks = 2 if args.quick else 4
    only: list[str] = []
    for item in args.only or FIGURES:
        only += [name.strip() for name in item.split(",") if name.strip()]
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    args.only = [name for name in FIGURES if name in only]
    for name in (
        "records",
        "symbols",
        "repeat",
        "append_ticks",
        "single_ticks",
        "rounds",
        "compact_records",
        "compact_symbols",
        "sqlite_ticks",
        "sqlite_records",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="crashkit-bench-", dir=args.dir) as tmp:
        if "restore" in args.only or "memory" in args.only:
            path = os.path.join(tmp, "state.jsonl")
            note(f"writing {args.records:,} records ({args.symbols} symbols) to {path}")
            size = restore_throughput.write_file(path, args.records, args.symbols)
            if "restore" in args.only:
                rows += restore_rows(path, args, size)
            if "memory" in args.only:
                rows += memory_rows(path, args, size, tmp)
            os.unlink(path)
        if "append500" in args.only:
            rows.append(append_row(tmp, 500, args.append_ticks, args.rounds, APPEND500_GOAL_RATIO))
        if "append1" in args.only:
            rows.append(append_row(tmp, 1, args.single_ticks, args.rounds, APPEND1_GOAL_RATIO))
        if "explore" in args.only:
            rows.append(explore_row(args))
        if "compact" in args.only:
            rows.append(compact_row(tmp, args))
        for key in SQLITE_TICKS:
            if key in args.only:
                rows.append(sqlite_ticks_row(tmp, key, args))
        if "sqlite-restore" in args.only or "sqlite-history" in args.only:
            note("sqlite: checking that a database built with apsw is the backend's")
            sqlite_figures.check_build(tmp)
        if "sqlite-restore" in args.only:
            rows.append(sqlite_restore_row(tmp, args))
        if "sqlite-history" in args.only:
            rows += sqlite_history_rows(tmp, args)
        if "sqlite-explore" in args.only:
            rows.append(sqlite_explore_row(args))
        for key in ("real-explore", "real-explore-sqlite"):
            if key in args.only:
                rows.append(real_explore_row(args, key))
    return rows


def table(rows: Sequence[Row], caption: str) -> Table:
    out = Table(title="crashkit benchmarks", caption=caption, caption_justify="left")
    out.add_column("figure", no_wrap=True)
    out.add_column("ours", justify="right", no_wrap=True)
    out.add_column("baseline (same run)", justify="right", no_wrap=True)
    out.add_column("ratio", justify="right", no_wrap=True)
    out.add_column("goal", no_wrap=True)
    out.add_column("met", justify="center", no_wrap=True)
    for row in rows:
        met = "—" if row.met is None else ("[green]yes[/]" if row.met else "[red]no[/]")
        out.add_row(
            f"{row.figure}\n[dim]{row.detail}[/]",
            row.ours_text,
            row.baseline_text,
            row.ratio_text,
            row.goal,
            met,
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    folder = os.path.realpath(args.dir or tempfile.gettempdir())
    load_before = os.getloadavg()
    note(f"figures: {', '.join(args.only)}; load average {load_before[0]:.2f}")
    rows = run(args)
    load_after = os.getloadavg()
    cores = os.cpu_count() or 1
    caption = (
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{cores} cores; Python {platform.python_version()}; "
        f"temp folder {folder} ({_filesystem(folder)}); MB = 10^6 bytes"
    )
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=160)
    console.print(table(rows, caption))
    if args.json:
        document = {
            "machine": {
                "cores": cores,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "temp_folder": folder,
                "filesystem": _filesystem(folder),
            },
            "load_average": {"before": list(load_before), "after": list(load_after)},
            "options": {
                name: getattr(args, name)
                for name in (
                    "quick",
                    "records",
                    "symbols",
                    "repeat",
                    "append_ticks",
                    "single_ticks",
                    "rounds",
                    "explore_symbols",
                    "explore_ticks",
                    "compact_records",
                    "compact_symbols",
                    "sqlite_ticks",
                    "sqlite_records",
                    "only",
                )
            },
            "figures": {row.key: row.to_json() for row in rows},
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
            f.write("\n")
    note("done")


if __name__ == "__main__":
    main()
