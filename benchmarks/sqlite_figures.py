"""The SQLite backend's figures, each beside the JSONL reference's, measured in the same run.

The second backend (`crashkit.orchestrator.store.sqlite:BACKEND`) pays differently
for the same contract: a tick is a transaction (the journal written, the database
written, the journal deleted: five syncs with the folder's) where the reference pays one
`write` and one `fsync`, and restore reads one row per symbol where the reference reads
the whole history. These figures show both sides against the reference (`jsonl:BACKEND`) on the
same states, so the ratio is SQLite / JSONL:

- ticks: durable ticks per second, one `append` of S states per tick, through both
  backends' `BACKEND.open` in the same folder, in alternating rounds (the order flips
  every round; median of rounds, as append_throughput.py does, since `fsync` latency
  swings). The first tick of each is not timed (SQLite's creates the table). Both
  stores must then restore the same states.
- restore: `restore_report` (the read-only restore `crashkit inspect` and the
  explorer's extra checks use) of a database of N distinct symbols' rows against
  `jsonl.restore_report` of an N-record file of the same states, best of R,
  alternating; a start (`BACKEND.open`, which also builds the engine's store) is timed
  once for each beside it. Both must select the same records.
- history: restore after the `compact` figure's history (compaction.py's
  `write_history`, tick-major, S symbols): SQLite after every record of it upserted,
  against the JSONL file of it uncompacted (once) and after compaction (best of R).
- explore: crash states checked per second by the crash explorer on a workload with
  each backend, best of R fresh explorers, alternating (explore_rate.py for one).

The databases are built directly with apsw in a few big transactions, not by the
backend's `append` (10 M upserts in one-tick transactions would be minutes of syncs),
with the backend's own statements (`SCHEMA`, `UPSERT`), row encoding
(`SqliteStateBackend.rows`), VFS (`vfs_for(SAFE)`) and pragmas. `check_build` shows
that this leaves what the backend would: byte for byte the file its appends of the
same batches leave, and, for a history, the file of one-tick appends but for the
header's change counter. Inputs are seeded. Part of `make bench`
(`benchmarks/suite.py --only sqlite-ticks1`, ...).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import apsw
import msgspec
from compaction import write_history
from explore_rate import ExploreResult
from restore_throughput import orchestrator_state

from crashkit.harness.explore import Explorer, Workload
from crashkit.orchestrator.store import jsonl, sqlite
from crashkit.orchestrator.store.compact import COMPACT_NOW
from crashkit.orchestrator.store.protocol import Backend
from crashkit.orchestrator.store.report import RestoreReport
from crashkit.regime_engine.codec import StoreRecord, encode_states
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState

Upsert = tuple[str, int, bytes]  # (symbol, engine_timestamp_ms, record): one row

#: the tick every state of the restore figure's database is taken at (one tick of N
#: symbols: every record has a commit timestamp, two in three a candidate, as in a long run)
RESTORE_TICK = 1_000
#: states per transaction when building the restore figure's database
RESTORE_BATCH = 100_000
#: bytes of the history file per transaction when building the history's database
HISTORY_CHUNK = 64 << 20
#: the header bytes a history built in big transactions may differ in from one built
#: tick by tick: the file change counter (24..28) and its version-valid-for copy (92..96)
_CHANGE_COUNTER = (range(24, 28), range(92, 96))


def _winners(report: RestoreReport) -> dict[str, StoreRecord]:
    assert report.outcome == "ok", (report.path, report.outcome, report.reason)
    return {symbol: record for symbol, (_, record) in report.winners.items()}


def _unlink_database(path: str) -> None:
    for name in (path, f"{path}-journal"):
        if os.path.exists(name):
            os.unlink(name)


# -- building a database as the backend would -----------------------------------------------


def build_database(path: str, transactions: Iterable[Sequence[Upsert]]) -> tuple[int, int]:
    """Upsert each batch of rows in one transaction, through the backend's VFS and with its
    pragmas, statements and first-transaction schema. Returns (upserts, transactions)."""
    connection = apsw.Connection(
        path,
        flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
        vfs=sqlite.vfs_for(sqlite.SAFE).vfs_name,
    )
    upserts = count = 0
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA locking_mode = NORMAL")
        cursor.execute(f"PRAGMA journal_mode = {sqlite.SAFE.journal_mode}")
        cursor.execute(f"PRAGMA synchronous = {sqlite.SAFE.synchronous}")
        cursor.execute("PRAGMA temp_store = MEMORY")
        cursor.execute("PRAGMA cell_size_check = ON")
        for rows in transactions:
            cursor.execute("BEGIN IMMEDIATE")
            if count == 0:
                cursor.execute(sqlite.SCHEMA)
            cursor.executemany(sqlite.UPSERT, rows)
            cursor.execute("COMMIT")
            upserts += len(rows)
            count += 1
    finally:
        connection.close(True)
    return upserts, count


def _through_backend(path: str, ticks: Iterable[Sequence[HysteresisState]]) -> None:
    opened = sqlite.BACKEND.open(path, HysteresisConfig())
    try:
        for states in ticks:
            opened.backend.append(states)
    finally:
        opened.backend.close()


def _contents(path: str, *, mask_change_counter: bool = False) -> bytes:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if mask_change_counter:
        for span in _CHANGE_COUNTER:
            data[span.start : span.stop] = bytes(len(span))
    return bytes(data)


def check_build(folder: str) -> None:
    """`build_database` leaves the backend's file (AssertionError if not): the same batches
    give the same bytes; a history in one transaction gives the bytes of one-tick appends
    but for the header's change counter."""
    batches = [[orchestrator_state(RESTORE_TICK, s) for s in range(b, b + 300)] for b in (0, 300)]
    ticks = [[orchestrator_state(tick, s) for s in range(10)] for tick in range(30)]
    ours, theirs = os.path.join(folder, "built.db"), os.path.join(folder, "appended.db")
    try:
        build_database(ours, [sqlite.SqliteStateBackend.rows(b) for b in batches])
        _through_backend(theirs, batches)
        assert _contents(ours) == _contents(theirs), "the built database differs"
        _unlink_database(ours)
        _unlink_database(theirs)
        build_database(ours, [sqlite.SqliteStateBackend.rows([s for t in ticks for s in t])])
        _through_backend(theirs, ticks)
        assert _contents(ours, mask_change_counter=True) == _contents(
            theirs, mask_change_counter=True
        ), "the built history differs beyond the header's change counter"
    finally:
        _unlink_database(ours)
        _unlink_database(theirs)


# -- ticks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicksResult:
    symbols: int  # states per tick (per append)
    ticks: int  # timed appends per backend, over all rounds
    rounds: int
    sqlite_rates: tuple[float, ...]  # ticks/s, per round
    jsonl_rates: tuple[float, ...]

    @property
    def sqlite_rate(self) -> float:
        return statistics.median(self.sqlite_rates)

    @property
    def jsonl_rate(self) -> float:
        return statistics.median(self.jsonl_rates)

    @property
    def ratio(self) -> float:
        """Median over rounds of sqlite/jsonl within the round (the two ran back to back)."""
        return statistics.median(
            s / j for s, j in zip(self.sqlite_rates, self.jsonl_rates, strict=True)
        )


def _ticks_per_second(
    append: Callable[[Sequence[HysteresisState]], None], ticks: Sequence[Sequence[HysteresisState]]
) -> float:
    start = time.perf_counter()
    for states in ticks:
        append(states)
    return len(ticks) / (time.perf_counter() - start)


def measure_ticks(folder: str, symbols: int, ticks: int, rounds: int) -> TicksResult:
    """`ticks` durable ticks of `symbols` states through each backend in `folder`, split
    into `rounds` alternating rounds, after one untimed first tick each."""
    rounds = max(1, min(rounds, ticks))
    per_round = max(1, ticks // rounds)
    ticks = per_round * rounds
    states = [[orchestrator_state(t, s) for s in range(symbols)] for t in range(ticks + 1)]
    db_path = os.path.join(folder, "ticks.db")
    jsonl_path = os.path.join(folder, "ticks.jsonl")
    ours = sqlite.BACKEND.open(db_path, HysteresisConfig()).backend
    reference = jsonl.BACKEND.open(jsonl_path, HysteresisConfig()).backend
    sqlite_rates: list[float] = []
    jsonl_rates: list[float] = []
    try:
        ours.append(states[0])
        reference.append(states[0])
        for r in range(rounds):
            chunk = states[1 + r * per_round : 1 + (r + 1) * per_round]
            if r % 2 == 0:
                sqlite_rates.append(_ticks_per_second(ours.append, chunk))
                jsonl_rates.append(_ticks_per_second(reference.append, chunk))
            else:
                jsonl_rates.append(_ticks_per_second(reference.append, chunk))
                sqlite_rates.append(_ticks_per_second(ours.append, chunk))
    finally:
        ours.close()
        reference.close()
    restored = _winners(sqlite.restore_report(db_path))
    assert restored == _winners(jsonl.restore_report(jsonl_path)), "the two stores differ"
    assert len(restored) == symbols
    _unlink_database(db_path)
    os.unlink(jsonl_path)
    return TicksResult(symbols, ticks, rounds, tuple(sqlite_rates), tuple(jsonl_rates))


# -- restore --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreResult:
    records: int  # rows of the database, records of the file: one per symbol
    transactions: int  # the database was built in
    repeat: int
    sqlite_bytes: int
    jsonl_bytes: int
    sqlite_seconds: float  # best of `repeat` `sqlite.restore_report`
    jsonl_seconds: float  # best of `repeat` `jsonl.restore_report`
    sqlite_open_seconds: float  # one `sqlite.BACKEND.open` (a start) and close
    jsonl_open_seconds: float  # one `jsonl.BACKEND.open` and close

    @property
    def sqlite_rate(self) -> float:
        return self.records / self.sqlite_seconds

    @property
    def jsonl_rate(self) -> float:
        return self.records / self.jsonl_seconds


def _restore_batches(records: int) -> Iterator[list[HysteresisState]]:
    for first in range(0, records, RESTORE_BATCH):
        last = min(records, first + RESTORE_BATCH)
        yield [orchestrator_state(RESTORE_TICK, s) for s in range(first, last)]


def _opened_seconds(backend: Backend, path: str, records: int) -> float:
    start = time.perf_counter()
    opened = backend.open(path, HysteresisConfig())
    opened.backend.close()
    seconds = time.perf_counter() - start
    assert opened.report.outcome == "ok" and len(opened.store.states) == records
    return seconds


def _timed(restore: Callable[[str], RestoreReport], path: str) -> tuple[RestoreReport, float]:
    """One restore of `path` and its wall time."""
    start = time.perf_counter()
    report = restore(path)
    return report, time.perf_counter() - start


def measure_restore(folder: str, records: int, repeat: int) -> RestoreResult:
    """A database of `records` symbols' rows and the JSONL file of the same states (written
    a batch at a time: each batch once encoded for each); both restored, alternating."""
    db_path = os.path.join(folder, "restore.db")
    jsonl_path = os.path.join(folder, "restore.jsonl")
    batches = _restore_batches(records)
    with open(jsonl_path, "wb") as f:

        def transactions() -> Iterator[list[Upsert]]:
            for states in batches:
                f.write(encode_states(states))
                yield sqlite.SqliteStateBackend.rows(states)

        upserts, count = build_database(db_path, transactions())
    assert upserts == records
    best_sqlite = best_jsonl = float("inf")
    for _ in range(repeat):
        gc.collect()
        ours, seconds = _timed(sqlite.restore_report, db_path)
        best_sqlite = min(best_sqlite, seconds)
        assert ours.outcome == "ok" and ours.valid == records, ours.reason
        del ours
        gc.collect()
        reference, seconds = _timed(jsonl.restore_report, jsonl_path)
        best_jsonl = min(best_jsonl, seconds)
        assert reference.outcome == "ok" and reference.valid == records, reference.reason
        del reference
    assert _winners(sqlite.restore_report(db_path)) == _winners(jsonl.restore_report(jsonl_path))
    gc.collect()
    sqlite_open = _opened_seconds(sqlite.BACKEND, db_path, records)
    gc.collect()
    jsonl_open = _opened_seconds(jsonl.BACKEND, jsonl_path, records)
    result = RestoreResult(
        records,
        count,
        repeat,
        os.path.getsize(db_path),
        os.path.getsize(jsonl_path),
        best_sqlite,
        best_jsonl,
        sqlite_open,
        jsonl_open,
    )
    _unlink_database(db_path)
    os.unlink(jsonl_path)
    return result


# -- history --------------------------------------------------------------------------------


class _Key(msgspec.Struct, gc=False):
    """The two columns a row keys on, read from a canonical line (other keys ignored)."""

    symbol: str
    engine_timestamp_ms: int


_KEYS = msgspec.json.Decoder(_Key)


def _history_rows(path: str) -> Iterator[list[Upsert]]:
    """The history file's records as upserts, about `HISTORY_CHUNK` bytes of it at a time:
    the record is the line without its newline, as `SqliteStateBackend.rows` encodes it."""
    with open(path, "rb") as f:
        rest = b""
        while chunk := f.read(HISTORY_CHUNK):
            chunk = rest + chunk
            end = chunk.rfind(b"\n") + 1
            rest, chunk = chunk[end:], chunk[:end]
            lines = chunk.split(b"\n")
            lines.pop()
            keys = _KEYS.decode_lines(chunk)
            yield [
                (k.symbol, k.engine_timestamp_ms, line) for k, line in zip(keys, lines, strict=True)
            ]
        assert not rest, "the history ends in a torn line"


@dataclass(frozen=True, slots=True)
class HistoryResult:
    records: int  # of the history: upserts applied to the database, lines of the file
    symbols: int
    transactions: int  # the database was built in
    repeat: int
    sqlite_bytes: int
    jsonl_bytes: int  # the history file, uncompacted
    compacted_bytes: int
    sqlite_seconds: float  # best of `repeat` `sqlite.restore_report`
    uncompacted_seconds: float  # one `jsonl.restore_report` of the whole history
    compacted_seconds: float  # best of `repeat`, after compaction
    build_seconds: float  # of the database, from the history file


def measure_history(folder: str, records: int, symbols: int, repeat: int) -> HistoryResult:
    """The compact figure's history as a JSONL file and as the database its records upserted
    leave; restored: the database, the file once, then the file compacted, best of R."""
    db_path = os.path.join(folder, "history.db")
    jsonl_path = os.path.join(folder, "history.jsonl")
    size = write_history(jsonl_path, records, symbols)
    first: list[Upsert] = []
    last: list[Upsert] = []

    def transactions() -> Iterator[list[Upsert]]:
        nonlocal last
        for rows in _history_rows(jsonl_path):
            if not first:
                first.extend(rows[:symbols])
            last = (last + rows[-symbols:])[-symbols:]
            yield rows

    start = time.perf_counter()
    upserts, count = build_database(db_path, transactions())
    build = time.perf_counter() - start
    ticks = records // symbols
    assert ticks >= 1, "a history of at least one tick"
    for tick, rows in ((0, first), (ticks - 1, last)):
        expected = sqlite.SqliteStateBackend.rows(
            [orchestrator_state(tick, s) for s in range(symbols)]
        )
        assert rows == expected, f"tick {tick}: the upserts are not the backend's rows"
    before, uncompacted = _timed(jsonl.restore_report, jsonl_path)
    assert before.valid == upserts == ticks * symbols
    selected = _winners(before)
    del before
    jsonl.open_jsonl_store(jsonl_path, HysteresisConfig(), policy=COMPACT_NOW).backend.close()
    best_sqlite = best_compacted = float("inf")
    for _ in range(repeat):
        ours, seconds = _timed(sqlite.restore_report, db_path)
        best_sqlite = min(best_sqlite, seconds)
        after, seconds = _timed(jsonl.restore_report, jsonl_path)
        best_compacted = min(best_compacted, seconds)
        assert ours.lines == after.lines == symbols
        assert _winners(ours) == selected == _winners(after), "the restores select differently"
    result = HistoryResult(
        upserts,
        symbols,
        count,
        repeat,
        os.path.getsize(db_path),
        size,
        os.path.getsize(jsonl_path),
        best_sqlite,
        uncompacted,
        best_compacted,
        build,
    )
    _unlink_database(db_path)
    os.unlink(jsonl_path)
    return result


# -- explore --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExplorePair:
    sqlite: ExploreResult
    jsonl: ExploreResult

    @property
    def ratio(self) -> float:
        return self.sqlite.rate / self.jsonl.rate


def measure_explore(workload: Workload, repeat: int) -> ExplorePair:
    """Best of `repeat` fresh explorers per backend, alternating; any violation is an error."""
    backends: Mapping[str, Backend] = {"sqlite": sqlite.BACKEND, "jsonl": jsonl.BACKEND}
    best: dict[str, tuple[float, int]] = {}
    for r in range(repeat):
        for name in list(backends) if r % 2 == 0 else list(backends)[::-1]:
            gc.collect()
            summary = Explorer(backends[name]).run(workload)
            assert summary.violations == 0, f"{summary.violations} violation(s) with {name}"
            assert summary.states_checked > 0 and summary.seconds > 0
            seconds, states = best.get(name, (float("inf"), 0))
            if summary.states_checked / summary.seconds > states / seconds:
                best[name] = (summary.seconds, summary.states_checked)
    results = {
        name: ExploreResult(workload, states, seconds, repeat)
        for name, (seconds, states) in best.items()
    }
    return ExplorePair(results["sqlite"], results["jsonl"])
