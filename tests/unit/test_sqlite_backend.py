"""The SQLite backend (`store.sqlite`, over the `store.sqlite_vfs` VFS) on real files:
restore (contract §4), selection (C4.10, C4.11), append and poisoning (§5), one
writer (C5.9), read-only inspection (C4.13), crash recovery and determinism.

Tests marked BUG in their docstring show a defect found while writing this file; they
fail until the backend is fixed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import apsw
import pytest

from crashkit.faults import CrashFS, FaultPlan, FaultRule
from crashkit.orchestrator.errors import (
    PersistenceError,
    RestoreFatal,
    StartupRefused,
    WriterLocked,
)
from crashkit.orchestrator.store import sqlite, sqlite_vfs
from crashkit.orchestrator.store.protocol import OpenedStore
from crashkit.orchestrator.store.report import RestoreReport
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime
from tests.conftest import make_state

CONFIG = HysteresisConfig()
A1 = make_state("A", 100)
B1 = make_state("B", 100, Regime.SQUEEZE_UP)
A2 = make_state("A", 200, Regime.CHOP_BALANCED, Regime.TREND_BUILD_UP, 1)
B2 = make_state("B", 300, Regime.SQUEEZE_UP, Regime.SQUEEZE_DOWN, 2, last_commit=50)


def db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


def write(path: str, *batches: Sequence[HysteresisState]) -> None:
    """Open the store at `path`, append each batch as one tick, close."""
    opened = sqlite.BACKEND(path, CONFIG)
    for batch in batches:
        opened.backend.append(batch)
    opened.backend.close()


def reopen(path: str, config: HysteresisConfig = CONFIG) -> dict[str, HysteresisState]:
    """What a start restores from `path` (the writer is closed again)."""
    opened = sqlite.BACKEND(path, config)
    opened.backend.close()
    return opened.store.states


def timestamps(states: dict[str, HysteresisState]) -> dict[str, int]:
    return {symbol: state.engine_timestamp_ms for symbol, state in states.items()}


def report_timestamps(report: RestoreReport) -> dict[str, int]:
    return {symbol: record.engine_timestamp_ms for symbol, (_, record) in report.winners.items()}


def table(path: str) -> list[tuple[Any, ...]]:
    """Every row of the closed database's state table, read with SQLite's own unix VFS."""
    connection = apsw.Connection(path, vfs="unix", flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return list(connection.execute("SELECT * FROM crashkit_state ORDER BY symbol"))
    finally:
        connection.close()


def sql(path: str, statement: str, *bindings: object) -> None:
    """Change the closed database directly (SQLite's unix VFS, not the backend)."""
    connection = apsw.Connection(path, vfs="unix")
    try:
        connection.execute(statement, bindings)
    finally:
        connection.close()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def refused(path: str) -> str:
    """The reason a start refuses `path` with (RestoreFatal); fails if it starts."""
    with pytest.raises(RestoreFatal) as caught:
        sqlite.BACKEND(path, CONFIG)
    assert caught.value.path == path
    return caught.value.reason


def _target(args: tuple[Any, ...]) -> str:
    """The file an `os` call is about: its path, or what its descriptor is open on."""
    if not args:
        return ""
    if isinstance(args[0], int):
        try:
            return os.readlink(f"/proc/self/fd/{args[0]}")
        except OSError:
            return f"fd {args[0]}"
    return str(args[0])


class OsSpy:
    """The `os` module as `sqlite_vfs` sees it: each call recorded as (name, file), and
    one chosen call on one chosen file failing once with EIO after `fail`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._failure: tuple[str, str] | None = None
        self.failed_at: int | None = None  # len(calls) when the failure was injected

    def fail(self, name: str, suffix: str) -> None:
        self._failure = (name, suffix)

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            target = _target(args)
            self.calls.append((name, target))
            failure = self._failure
            if (
                failure is not None
                and self.failed_at is None
                and name == failure[0]
                and target.endswith(failure[1])
            ):
                self.failed_at = len(self.calls)
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real(*args, **kwargs)

        return call

    def after_failure(self) -> list[tuple[str, str]]:
        assert self.failed_at is not None, "the failure was never injected"
        return self.calls[self.failed_at :]


#: What a writer may still do once poisoned: read, look at sizes, close (C5.7).
HARMLESS = {"pread", "fstat", "close", "getcwd", "access", "readlink"}


def _in_fifo_open(native_id: int) -> bool:
    try:
        with open(f"/proc/self/task/{native_id}/wchan") as wchan:
            return wchan.read().strip() in ("wait_for_partner", "fifo_open")
    except OSError:
        return False


def run_unless_blocked(
    call: Callable[[], object], fifo: str, seconds: float = 5.0
) -> tuple[bool, object]:
    """Run `call` in a thread: (whether it blocked opening `fifo`, what it returned or
    raised). A blocked call is let go on by opening the FIFO's other end."""
    box: list[object] = []
    native: list[int] = []

    def target() -> None:
        native.append(threading.get_native_id())
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    blocked = False
    while thread.is_alive() and time.monotonic() < deadline:
        if native and _in_fifo_open(native[0]):
            break
        thread.join(0.01)
    if thread.is_alive():
        blocked = True
        with contextlib.suppress(OSError):  # (ENXIO: it was not blocked in the open)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # wakes a blocked reader
        thread.join(seconds)
    result = box[0] if box else None
    if isinstance(result, OpenedStore):
        result.backend.close()
    return blocked, result


# -- 1, 2: bootstrap and round trip -------------------------------------------------------


def test_missing_file_bootstraps_creates_folders_and_leaves_only_the_database(
    tmp_path: Path,
) -> None:
    """C4.2 and row 2 of the restore table: no file, no folder is a fresh start; the
    writer makes the folders, and a commit leaves no journal behind (its deletion is
    the commit point)."""
    path = str(tmp_path / "a" / "b" / "state.db")
    opened = sqlite.BACKEND(path, CONFIG)
    assert opened.report.outcome == "bootstrap" and opened.report.reason is None
    assert opened.store.states == {}
    assert (tmp_path / "a" / "b").is_dir()
    opened.backend.append([A1])
    opened.backend.close()
    assert listing(tmp_path / "a" / "b") == ["state.db"]


def test_open_and_close_without_append_leaves_an_empty_file_that_bootstraps(
    tmp_path: Path,
) -> None:
    """A start that decides nothing leaves a 0-byte database, which the next start takes
    as a fresh start (C4.8), not as damage."""
    path = db(tmp_path)
    sqlite.BACKEND(path, CONFIG).backend.close()
    assert listing(tmp_path) == ["state.db"] and os.path.getsize(path) == 0
    again = sqlite.BACKEND(path, CONFIG)
    again.backend.close()
    assert again.report.outcome == "bootstrap" and again.store.states == {}


def test_reopen_restores_every_persisted_field_with_the_active_window(tmp_path: Path) -> None:
    """C1: the six persisted fields come back as appended; progress_required is the
    window of the config the restart runs with (here 5, the states said 3)."""
    a = make_state("A", 100, Regime.SQUEEZE_UP, Regime.SQUEEZE_DOWN, 2, last_commit=40)
    b = make_state("B", 150, Regime.TREND_BUILD_UP)
    path = db(tmp_path)
    write(path, [a, b])
    opened = sqlite.BACKEND(path, HysteresisConfig(window_updates=5))
    opened.backend.close()
    assert opened.report.outcome == "ok"
    assert opened.store.states == {
        "A": replace(a, progress_required=5),
        "B": replace(b, progress_required=5),
    }
    assert isinstance(opened.report, RestoreReport)
    assert (opened.report.lines, opened.report.valid) == (2, 2)


# -- 3: selection ---------------------------------------------------------------------------


def test_a_later_lower_timestamp_does_not_replace_the_stored_state(tmp_path: Path) -> None:
    """C4.10: the highest engine_timestamp_ms wins, whatever the order of the ticks."""
    older = make_state("A", 150, Regime.TREND_EXHAUSTION)
    path = db(tmp_path)
    write(path, [A2], [older])
    assert reopen(path) == {"A": A2}
    assert [row[:2] for row in table(path)] == [("A", 200)]


def test_a_later_equal_timestamp_replaces_the_stored_state(tmp_path: Path) -> None:
    """C4.11: on a tie the later write wins, across ticks."""
    tie = make_state("A", 200, Regime.TREND_EXHAUSTION)
    path = db(tmp_path)
    write(path, [A2], [tie])
    assert reopen(path) == {"A": tie}


def test_within_one_append_lower_keeps_and_equal_replaces(tmp_path: Path) -> None:
    """C4.10, C4.11 inside one transaction: for A the lower second state loses, for B
    the equal second state wins."""
    lower_a = make_state("A", 150, Regime.TREND_EXHAUSTION)
    tie_b = make_state("B", 300, Regime.LIQUIDATION_UP)
    path = db(tmp_path)
    write(path, [A2, B2, lower_a, tie_b])
    assert reopen(path) == {"A": A2, "B": tie_b}


def test_many_appends_keep_one_row_per_symbol(tmp_path: Path) -> None:
    """Restore reads one row per symbol, so its time does not grow with history: 30
    ticks of the same three symbols leave three rows and the database at its size after
    the first tick (two pages)."""
    path = db(tmp_path)
    opened = sqlite.BACKEND(path, CONFIG)
    opened.backend.append([make_state(s, 1) for s in "ABC"])
    size_after_first = os.path.getsize(path)
    for ts in range(2, 31):
        opened.backend.append([make_state(s, ts) for s in "ABC"])
    opened.backend.close()
    assert [row[:2] for row in table(path)] == [("A", 30), ("B", 30), ("C", 30)]
    assert os.path.getsize(path) == size_after_first == 2 * 4096
    assert timestamps(reopen(path)) == {"A": 30, "B": 30, "C": 30}


# -- 5, 6: what is not a state database -------------------------------------------------------


def test_directory_is_refused(tmp_path: Path) -> None:
    """C4.3, row 3: a directory at the state path is fatal, for a start and a report."""
    assert "a directory, not a regular file" in refused(str(tmp_path))
    report = sqlite.restore_report(str(tmp_path))
    assert report.outcome == "fatal" and "a directory" in (report.reason or "")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """C4.3, row 3: a FIFO is refused, and never opened for reading (which would wait
    for a writer forever); nothing is created beside it."""
    fifo = str(tmp_path / "state.db")
    os.mkfifo(fifo)
    blocked, result = run_unless_blocked(lambda: sqlite.BACKEND(fifo, CONFIG), fifo)
    assert not blocked
    assert isinstance(result, RestoreFatal) and "a FIFO" in result.reason
    blocked, report = run_unless_blocked(lambda: sqlite.restore_report(fifo), fifo)
    assert not blocked and isinstance(report, RestoreReport)
    assert report.outcome == "fatal" and "a FIFO" in (report.reason or "")
    assert listing(tmp_path) == ["state.db"]


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A JSON Lines state file named as the database is not restored as empty, and the
    refused start writes nothing (no journal, the same bytes)."""
    path = db(tmp_path)
    line = b'{"anchor_regime":"CHOP_BALANCED","symbol":"A"}\n'
    Path(path).write_bytes(line)
    assert "not an SQLite database" in refused(path)
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal" and "not an SQLite database" in (report.reason or "")
    assert Path(path).read_bytes() == line and listing(tmp_path) == ["state.db"]


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    """A valid SQLite database that is not crashkit's (another table, application_id 0)
    is fatal: it is someone else's file, not an empty state."""
    path = db(tmp_path)
    sql(path, "CREATE TABLE t (x)")
    reason = refused(path)
    assert "not a crashkit state database" in reason and "tables t" in reason
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal" and report.reason == reason


def test_an_empty_file_bootstraps_and_takes_appends(tmp_path: Path) -> None:
    """C4.8, row 6: 0 bytes is what a crash before the first commit leaves."""
    path = db(tmp_path)
    Path(path).write_bytes(b"")
    assert sqlite.restore_report(path).outcome == "bootstrap"
    opened = sqlite.BACKEND(path, CONFIG)
    assert opened.report.outcome == "bootstrap" and opened.store.states == {}
    opened.backend.append([A1])
    opened.backend.close()
    assert reopen(path) == {"A": A1}


# -- 7: damage --------------------------------------------------------------------------------


def test_an_invalid_record_blob_is_fatal_naming_the_row(tmp_path: Path) -> None:
    """One row per symbol: an invalid row is damage, never skipped (skipping would reset
    that symbol's hysteresis)."""
    path = db(tmp_path)
    write(path, [A1, B1])
    sql(path, "UPDATE crashkit_state SET record = ? WHERE symbol = 'B'", b'{"schema": ')
    reason = refused(path)
    assert "row 2 (symbol 'B') is invalid: not_json" in reason
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal" and report.reason == reason


def test_a_row_whose_key_differs_from_its_record_is_fatal(tmp_path: Path) -> None:
    """The key columns and the record must agree: a row keyed at 999 that holds the
    record of 100 would win selection with a timestamp it does not carry."""
    path = db(tmp_path)
    write(path, [A1])
    sql(path, "UPDATE crashkit_state SET engine_timestamp_ms = 999")
    reason = refused(path)
    assert "row 1 (symbol 'A') is invalid" in reason and "differs from its record" in reason


def test_random_bytes_over_the_second_page_are_fatal(tmp_path: Path) -> None:
    """The table's page overwritten with garbage is refused, never restored as empty."""
    path = db(tmp_path)
    write(path, [A1, B1])
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(random.Random(7).randbytes(4096))
    assert "malformed" in refused(path)
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal" and "malformed" in (report.reason or "")


def test_a_database_cut_to_its_first_page_is_fatal(tmp_path: Path) -> None:
    """A lost last page (the header says two) is damage, not an empty state."""
    path = db(tmp_path)
    write(path, [A1, B1])
    os.truncate(path, 4096)
    assert "malformed" in refused(path)
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal" and "malformed" in (report.reason or "")


# -- 8, 9: one writer; the read-only report -----------------------------------------------------


def test_a_second_writer_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """C5.9: a second open while the first holds the path is WriterLocked; the first
    writes on undisturbed, and once it closes a new start works."""
    path = db(tmp_path)
    first = sqlite.BACKEND(path, CONFIG)
    first.backend.append([A1])
    with pytest.raises(WriterLocked) as caught:
        sqlite.BACKEND(path, CONFIG)
    assert caught.value.path == path and "only one orchestrator" in caught.value.reason
    first.backend.append([A2])
    first.backend.close()
    assert reopen(path) == {"A": A2}


def test_restore_report_refuses_a_live_database_and_never_writes(tmp_path: Path) -> None:
    """C4.13: the report of a database a writer has open is fatal with that reason; of a
    closed one it restores what a start restores, without writing a byte (same bytes,
    same mtime, no journal)."""
    path = db(tmp_path)
    write(path, [A1, B2], [A2])
    writer = sqlite.BACKEND(path, CONFIG)
    live = sqlite.restore_report(path)
    writer.backend.close()
    assert live.outcome == "fatal" and live.winners == {}
    assert "a writer has this state database open" in (live.reason or "")
    before = (Path(path).read_bytes(), os.stat(path).st_mtime_ns)
    report = sqlite.restore_report(path)
    assert isinstance(writer.report, RestoreReport)
    assert report.outcome == "ok" and report.winners == writer.report.winners
    assert report_timestamps(report) == {"A": 200, "B": 300}
    assert sqlite.restore_only(path, CONFIG).states == writer.store.states
    assert (Path(path).read_bytes(), os.stat(path).st_mtime_ns) == before
    assert listing(tmp_path) == ["state.db"]


# -- 10: a crash mid-commit ---------------------------------------------------------------------


def test_a_hot_journal_is_rolled_back_by_the_report_and_by_a_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the second tick's pages reached the database but before its journal
    was deleted (the commit point): the copies taken at the database's sync are that
    disk. Both restores roll back to the first tick; the report leaves the journal as it
    was, a start removes it (SQLite's recovery). Without the journal the same database
    reads as the second tick, so the rollback is what restores the first."""
    live, crashed, alone = (tmp_path / n for n in ("live", "crashed", "alone"))
    for folder in (live, crashed, alone):
        folder.mkdir()
    path = str(live / "state.db")
    opened = sqlite.BACKEND(path, CONFIG)
    opened.backend.append([A1, B1])
    original = sqlite_vfs.OsFile.xSync

    def copy_at_database_sync(self: sqlite_vfs.OsFile, flags: int) -> None:
        if self.main and not listing(crashed):
            shutil.copyfile(path, crashed / "state.db")
            shutil.copyfile(f"{path}-journal", crashed / "state.db-journal")
        original(self, flags)

    with monkeypatch.context() as patch:
        patch.setattr(sqlite_vfs.OsFile, "xSync", copy_at_database_sync)
        opened.backend.append([A2, make_state("C", 50)])
    opened.backend.close()
    assert listing(crashed) == ["state.db", "state.db-journal"]
    shutil.copyfile(crashed / "state.db", alone / "state.db")
    assert report_timestamps(sqlite.restore_report(str(alone / "state.db"))) == {
        "A": 200,
        "B": 100,
        "C": 50,
    }

    target = str(crashed / "state.db")
    journal = crashed / "state.db-journal"
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in (Path(target), journal)}
    report = sqlite.restore_report(target)
    assert report.outcome == "ok" and report_timestamps(report) == {"A": 100, "B": 100}
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in before} == before

    started = sqlite.BACKEND(target, CONFIG)
    assert listing(crashed) == ["state.db"]  # rolled back and removed at the start
    started.backend.close()
    assert started.store.states == {"A": A1, "B": B1}
    assert reopen(target) == {"A": A1, "B": B1}


# -- 11: a failed append poisons ------------------------------------------------------------------


def test_a_failed_journal_sync_poisons_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C5.5-C5.8: EIO from the journal's fsync raises PersistenceError carrying EIO
    and poisons; the next append is refused before any OS call, nothing is written or
    synced after the failure (not even SQLite's rollback), close does not raise, and a
    restart restores the tick committed before."""
    spy = OsSpy()
    path = db(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_vfs, "os", spy)  # before the open: each OsFile keeps its `os`
        opened = sqlite.BACKEND(path, CONFIG)
        opened.backend.append([A1, B1])
        spy.fail("fsync", "state.db-journal")
        with pytest.raises(PersistenceError) as caught:
            opened.backend.append([A2])
        assert caught.value.errno == errno.EIO and "(errno EIO)" in str(caught.value)
        assert "state.db-journal" in str(caught.value)
        assert opened.backend.poisoned
        calls = len(spy.calls)
        with pytest.raises(PersistenceError, match="poisoned"):
            opened.backend.append([B2])
        assert len(spy.calls) == calls
        opened.backend.close()
        opened.backend.close()
    assert {name for name, _ in spy.after_failure()} <= HARMLESS
    assert reopen(path) == {"A": A1, "B": B1}


def test_a_failed_database_sync_leaves_a_hot_journal_the_next_start_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D.17 for SQLite: the database's fsync fails after the tick's pages were
    written. The poisoned writer neither rolls back nor deletes the journal, so the next
    start finds it hot and restores the tick before; it then appends normally."""
    spy = OsSpy()
    path = db(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_vfs, "os", spy)
        opened = sqlite.BACKEND(path, CONFIG)
        opened.backend.append([A1, B1])
        spy.fail("fsync", "/state.db")
        with pytest.raises(PersistenceError) as caught:
            opened.backend.append([A2, B2])
        opened.backend.close()
    assert caught.value.errno == errno.EIO
    assert {name for name, _ in spy.after_failure()} <= HARMLESS
    assert listing(tmp_path) == ["state.db", "state.db-journal"]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(path, alone / "state.db")  # the failed tick's pages are in the file
    assert report_timestamps(sqlite.restore_report(str(alone / "state.db"))) == {
        "A": 200,
        "B": 300,
    }
    restarted = sqlite.BACKEND(path, CONFIG)
    assert restarted.store.states == {"A": A1, "B": B1}
    assert listing(tmp_path) == ["alone", "state.db"]
    restarted.backend.append([B2])
    restarted.backend.close()
    assert reopen(path) == {"A": A1, "B": B2}


# -- 12, 13: determinism; the VFS ------------------------------------------------------------------

DETERMINISM = """
import hashlib, sys
import apsw
from crashkit.orchestrator.store import sqlite, sqlite_vfs
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

if sys.argv[2] == "noise":
    apsw.randomness(64)  # draw from SQLite's generator before the backend opens
digest, writes = hashlib.sha256(), []
original = sqlite_vfs.OsFile.xWrite

def spy(self, data, offset):
    if self.path.endswith("-journal"):
        writes.append(len(data))
        digest.update(offset.to_bytes(8, "big") + bytes(data))
    original(self, data, offset)

sqlite_vfs.OsFile.xWrite = spy
opened = sqlite.BACKEND(sys.argv[1], HysteresisConfig())
for ts in range(100, 600, 100):
    opened.backend.append(
        [HysteresisState(s, ts, Regime.CHOP_BALANCED, None, 0, 3, None) for s in "ABC"]
    )
opened.backend.close()
print(len(writes), digest.hexdigest())
"""


def test_two_processes_write_identical_databases_and_journals(tmp_path: Path) -> None:
    """The same ticks write the same bytes in every run, journal nonces included, so
    crash states replay on any machine: the backend reseeds SQLite's generator from its
    deterministic VFS at each open (`OsVfs.reseed`). The first process draws SQLite
    randomness before it opens; the reseed makes that irrelevant."""
    outputs, databases = [], []
    for mode in ("noise", "quiet"):
        folder = tmp_path / mode
        folder.mkdir()
        path = str(folder / "state.db")
        result = subprocess.run(
            [sys.executable, "-c", DETERMINISM, path, mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout.split())
        databases.append(Path(path).read_bytes())
    assert int(outputs[0][0]) > 0  # the journals were written, and hashed
    assert outputs[0] == outputs[1]
    assert databases[0] == databases[1]


def test_osfile_xclose_never_raises_on_a_closed_descriptor(tmp_path: Path) -> None:
    """SQLite can do nothing with a failed close: xClose keeps the error (EBADF here)
    and returns; a second xClose is a no-op."""
    vfs = sqlite.vfs_for(sqlite.SAFE)
    path = str(tmp_path / "x.db-journal")
    flags = [
        apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_MAIN_JOURNAL,
        0,
    ]
    file = sqlite_vfs.OsFile(vfs, path, flags)
    fd = file.fd
    assert fd is not None
    os.close(fd)
    file.xClose()
    file.xClose()
    assert file.fd is None
    assert file.state.last_error is not None
    what, error = file.state.last_error
    assert what == f"close {path}" and error is not None and error.errno == errno.EBADF


# -- defects found while writing this file -----------------------------------------------------


def test_a_refused_second_open_leaves_the_first_writers_errors_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG: `open_sqlite_store` calls `vfs.attach(path)` before it knows the lock is
    free, so a refused second open (as the kit's W5 check makes, in-process) replaces
    the first writer's ConnectionState in the VFS. The first writer's later journal files
    then record their errors in the refused opener's state, and a journal EIO reaches
    the caller as "commit failed on ...: IOError" with errno None, where it should carry
    EIO as it does without the refused open."""
    spy = OsSpy()
    monkeypatch.setattr(sqlite_vfs, "os", spy)
    path = db(tmp_path)
    first = sqlite.BACKEND(path, CONFIG)
    first.backend.append([A1])
    with pytest.raises(WriterLocked):
        sqlite.BACKEND(path, CONFIG)
    spy.fail("fsync", "state.db-journal")
    with pytest.raises(PersistenceError) as caught:
        first.backend.append([A2])
    first.backend.close()
    assert first.backend.poisoned
    assert caught.value.errno == errno.EIO, str(caught.value)
    assert "(errno EIO)" in str(caught.value)


def test_a_crashkit_database_with_no_rows_takes_appends(tmp_path: Path) -> None:
    """BUG: a database with crashkit's header and table but no row restores as
    bootstrap, and the writer then takes it as new (`fresh`) and runs CREATE TABLE in
    its first append, which fails ("table crashkit_state already exists"): the start
    succeeds and every tick halts. Either the start should refuse it or the append
    should work; restore and writer should agree on what the database is."""
    path = db(tmp_path)
    sql(path, sqlite.SCHEMA)
    opened = sqlite.BACKEND(path, CONFIG)
    assert opened.report.outcome == "bootstrap"
    try:
        opened.backend.append([A1])
    finally:
        opened.backend.close()
    assert reopen(path) == {"A": A1}


def test_a_symlinked_path_restores_alike_in_the_report_and_a_start(tmp_path: Path) -> None:
    """BUG: the VFS opens the database with O_NOFOLLOW, `restore_report` without it: for
    a state path that is a symlink to a crashkit database the report (and `restore_only`,
    which the harness takes as "restore exactly as the factory would") restores its
    states while a start refuses with ELOOP. (The reference JSONL backend follows the
    link.) The two must agree."""
    real = str(tmp_path / "real.db")
    write(real, [A1, B1])
    link = str(tmp_path / "state.db")
    os.symlink(real, link)
    report = sqlite.restore_report(link)
    try:
        started: tuple[str, dict[str, int]] = ("ok", timestamps(reopen(link)))
    except StartupRefused as exc:
        started = ("fatal", {})
        assert report.outcome == "fatal", f"the report restored; the start refused: {exc.reason}"
    assert (report.outcome, report_timestamps(report)) == started
    if started[0] == "ok":
        assert started[1] == {"A": 100, "B": 100}


def test_a_fifo_journal_never_blocks_a_start_or_a_report(tmp_path: Path) -> None:
    """BUG: a FIFO where the journal goes (`{path}-journal`, one of the files the backend
    declares) blocks a start forever (the VFS opens the journal O_RDONLY to see whether
    it is hot) and `restore_report` too (`_read_files` opens it O_RDONLY without
    O_NONBLOCK). A FIFO state path is refused at once (row 3); a FIFO journal should be
    refused the same way, and never wait for a writer."""
    path = db(tmp_path)
    write(path, [A1])
    journal = f"{path}-journal"
    os.mkfifo(journal)
    start_blocked, started = run_unless_blocked(lambda: sqlite.BACKEND(path, CONFIG), journal)
    report_blocked, report = run_unless_blocked(lambda: sqlite.restore_report(path), journal)
    assert (start_blocked, report_blocked) == (False, False), (started, report)
    assert isinstance(started, StartupRefused)
    assert isinstance(report, RestoreReport) and report.outcome == "fatal"


def test_a_path_under_a_regular_file_is_refused_by_the_report_as_by_a_start(
    tmp_path: Path,
) -> None:
    """BUG: for `file/state.db` (a folder on the path is a regular file) `_check_path`
    takes ENOTDIR as "nothing there", so `restore_report` (and `restore_only`) say
    bootstrap while a start refuses with ENOTDIR. The reference JSONL backend reports
    fatal in both; a report must say what a start would do."""
    (tmp_path / "file").write_bytes(b"")
    path = str(tmp_path / "file" / "state.db")
    assert "Not a directory" in refused(path)
    report = sqlite.restore_report(path)
    assert report.outcome == "fatal", report


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"progress_current":2', b'"progress_current":true'),
        (b'"schema_version":"1"', b'"schema_version":1'),
        (b'"last_commit_timestamp_ms":50', b'"last_commit_timestamp_ms":false'),
    ],
    ids=["true-for-an-integer", "number-for-a-string", "false-for-an-integer"],
)
def test_a_row_with_a_value_of_the_wrong_json_type_is_fatal(
    tmp_path: Path, old: bytes, new: bytes
) -> None:
    """C2.4 in a row: its record decodes as strictly as a line, so `true` is not 2 and the
    number 1 not the string "1"; with one row per symbol, an invalid row refuses."""
    path = db(tmp_path)
    write(path, [A1, B2])
    (record,) = [r[2] for r in table(path) if r[0] == "B"]
    assert old in record
    sql(path, "UPDATE crashkit_state SET record = ? WHERE symbol = 'B'", record.replace(old, new))
    reason = refused(path)
    assert "row 2 (symbol 'B') is invalid: schema" in reason


# -- C5.3 by the backend itself: the new database's folder synced at its creation ------------


def test_a_new_database_has_its_folder_synced_before_anything_is_written() -> None:
    """SQLite syncs the folder only when it deletes a journal: the backend syncs it itself
    right after SQLite created the file, whatever the journal mode (with no journal the
    entry would never be durable: the variant `sqlite-journal-off` showed it)."""
    path = "/var/lib/crashkit/state.db"
    crash = CrashFS()
    try:
        crash.start()
        no_journal = replace(sqlite.SAFE, journal_mode="OFF")
        opened = sqlite.open_sqlite_store(path, CONFIG, settings=no_journal)
        opened.backend.append([A1])
        opened.backend.close()
        trace = [(op.op, op.path) for op in crash.trace if op.error is None]
    finally:
        crash.stop()
    created = trace.index(("open", path))
    synced = trace.index(("dirfsync", "/var/lib/crashkit"), created)
    assert not any(op == "write" for op, _ in trace[created:synced])


def test_a_failed_folder_sync_at_creation_refuses_the_start() -> None:
    path = "/var/lib/crashkit/state.db"
    plan = FaultPlan((FaultRule("dirfsync", "/var/lib/crashkit", 1, "EIO"),))
    crash = CrashFS(plan=plan)
    try:
        crash.start()
        with pytest.raises(StartupRefused, match="cannot make the new database durable"):
            sqlite.BACKEND(path, CONFIG)
    finally:
        crash.stop()
