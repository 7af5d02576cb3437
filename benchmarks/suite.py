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
from rich.console import Console
from rich.table import Table

from crashkit.harness.explore import Workload

FIGURES = ("restore", "memory", "append500", "append1", "explore", "compact")
MB = 1_000_000

# Goals (also in README.md's "Benchmarks" section).
RESTORE_GOAL_RATE = 1.2e6  # records/s
RESTORE_GOAL_RATIO = 8.0  # x the json-module restore
MEMORY_GOAL_BYTES = 64 * MB
APPEND500_GOAL_RATIO = 0.5  # x raw write + fsync
APPEND1_GOAL_RATIO = 0.9
EXPLORE_GOAL_RATE = 1_000.0  # crash states/s, per core
COMPACT_GOAL_SECONDS = 0.020  # restore after compaction

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
