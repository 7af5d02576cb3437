"""A second backend: the state in an SQLite database, one row per symbol.

Why it exists: the protocol and the kit are only proven by a backend that is not the
line file, and SQLite is the hard case (pages overwritten in place, a rollback journal
beside the database, directory syncs when the journal comes and goes).

How it keeps the contract (docs/backends.md, "The SQLite backend", says why each
choice was made):

- Every byte goes through `sqlite_vfs.OsVfs`, plain `os` calls the fault layer sees.
- `journal_mode=DELETE`, `synchronous=EXTRA`, normal locking: a tick is one
  transaction, and its commit point is the journal's deletion, which EXTRA makes durable
  with a directory fsync before `append` returns. (FULL would leave the deletion in the
  page cache: a power cut brings the journal back and rolls an acknowledged tick back.
  WAL would need shared memory, or exclusive locking, which turns DELETE into PERSIST.)
- A table `crashkit_state(symbol PRIMARY KEY, engine_timestamp_ms, record)` holding each
  symbol's winner: an upsert keeps the row unless the new state's timestamp is lower,
  so a tie goes to the later write (C4.10, C4.11) and restore reads one row per symbol,
  in time independent of history. `record` is the canonical contract-v1 line (without
  its newline), decoded as strictly as a line of the reference's file.
- A database the start creates has its folder fsynced at once (C5.3 by the backend
  itself: SQLite syncs the folder only when it deletes a journal, so without a journal
  the new entry would never be made durable).
- The database says what it is in its header: `application_id` 0x636b7331 ("cks1") and
  `user_version` 1, written by the first append's transaction, with the table.
- Restore: SQLite rolls a hot journal back (its own crash recovery; the only write a
  start makes), then `PRAGMA quick_check`, then every row decoded. An empty database, or
  none, is bootstrap; a database SQLite cannot read, that fails its check, that is not
  crashkit's, or that holds an invalid row, is fatal: one row per symbol means an
  invalid row is damage, never a leftover of a crash, and skipping it would reset that
  symbol's hysteresis.
- One writer: the VFS holds `flock(LOCK_EX|LOCK_NB)` on the database while the writer is
  open; a second one gets `WriterLocked`.
- A failed append raises `PersistenceError` and poisons: the VFS refuses every later
  write, sync and delete (no rollback either), so the next start finds the hot journal
  and rolls back itself (C5.6, C5.7).

Declared as `BACKEND` (`crashkit.orchestrator.store.sqlite:BACKEND`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import apsw

from crashkit.orchestrator.errors import (
    PersistenceError,
    RestoreFatal,
    StartupRefused,
    WriterLocked,
)
from crashkit.orchestrator.store.jsonl import _fsync_dir, _kind, _make_parents
from crashkit.orchestrator.store.protocol import (
    Backend,
    Capabilities,
    Damage,
    DamageExpect,
    DamageOp,
    OpenedStore,
    Outcome,
)
from crashkit.orchestrator.store.report import RestoreReport, fast_records, store_from_report
from crashkit.orchestrator.store.sqlite_vfs import ConnectionState, OsVfs, OverlayVfs
from crashkit.regime_engine.codec import RecordError, StoreRecord, decode_record, encode_states
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, HysteresisStore

#: "cks1": what `PRAGMA application_id` holds in a crashkit state database.
APPLICATION_ID = 0x636B7331
#: The layout version (`PRAGMA user_version`): the two tables below.
LAYOUT_VERSION = 1
#: The first bytes of every SQLite database file (how `crashkit inspect` tells them apart).
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS crashkit_state ("
    " symbol TEXT PRIMARY KEY NOT NULL,"
    " engine_timestamp_ms INTEGER NOT NULL,"
    " record BLOB NOT NULL"
    ") WITHOUT ROWID;"
    f"PRAGMA application_id = {APPLICATION_ID};"
    f"PRAGMA user_version = {LAYOUT_VERSION};"
)
UPSERT = (
    "INSERT INTO crashkit_state (symbol, engine_timestamp_ms, record) VALUES (?, ?, ?) "
    "ON CONFLICT (symbol) DO UPDATE SET "
    "engine_timestamp_ms = excluded.engine_timestamp_ms, record = excluded.record "
    "WHERE excluded.engine_timestamp_ms >= crashkit_state.engine_timestamp_ms"
)


@dataclass(frozen=True, slots=True)
class Settings:
    """How the database is run. `SAFE` is the backend; the other values exist for the
    self-test's broken variants (each must be caught) and for experiments."""

    journal_mode: str = "DELETE"
    synchronous: str = "EXTRA"
    #: the VFS's fsync does something (False: it returns at once)
    sync: bool = True
    #: the VFS honours the directory sync SQLite asks for when it deletes a file
    dirsync_on_delete: bool = True
    #: how a row's record is decoded when the rows are judged one by one (strictly, C2.7)
    decode_row: Callable[[bytes], StoreRecord] = decode_record
    #: restore checks the database (`PRAGMA quick_check`) and refuses what it cannot read
    #: (False: no check, and whatever rows a scan reads before an error are served)
    check_integrity: bool = True
    #: an invalid row is skipped instead of refused (True: only for a broken variant)
    skip_invalid_rows: bool = False


SAFE = Settings()

_VFS: dict[tuple[bool, bool], OsVfs] = {}
_memory_names = itertools.count()


def vfs_for(settings: Settings) -> OsVfs:
    """The VFS of a setting, registered with SQLite on first use. The safe one comes
    first and is the process's default VFS, which SQLite seeds its random numbers from
    (`OsVfs.reseed`)."""
    if not _VFS:
        _VFS[True, True] = OsVfs("crashkit-os", makedefault=True)
    key = (settings.sync, settings.dirsync_on_delete)
    vfs = _VFS.get(key)
    if vfs is None:
        name = "crashkit-os" + ("" if settings.sync else "-nosync")
        name += "" if settings.dirsync_on_delete else "-nodirsync"
        vfs = _VFS[key] = OsVfs(
            name, sync=settings.sync, dirsync_on_delete=settings.dirsync_on_delete
        )
    return vfs


def _reseed() -> None:
    """The same random numbers for every connection: the same run, the same bytes."""
    _VFS[True, True].reseed()


def _error_text(state: ConnectionState | None, exc: BaseException) -> str:
    """SQLite's message, with the OS call and errno behind it when the VFS saw one."""
    text = str(exc).split(":", 1)[-1].strip() if ":" in str(exc) else str(exc)
    if state is not None and state.last_error is not None:
        what, os_error = state.last_error
        if os_error is not None:
            name = errno.errorcode.get(os_error.errno or 0, os_error.errno)
            return f"{what}: {os_error.strerror or os_error} (errno {name})"
        return what
    return text or type(exc).__name__


# -- restore ------------------------------------------------------------------------------


def _rows(
    connection: apsw.Connection, path: str, *, check: bool = True, skip_invalid: bool = False
) -> list[tuple[str, int, bytes]]:
    """The state rows, after checking the database is crashkit's and undamaged (`check`
    False: a broken variant's hook, no check, and the rows a scan reads: those before an
    error with `skip_invalid`, else all or an error)."""
    cursor = connection.cursor()
    app_id = cursor.execute("PRAGMA application_id").fetchall()[0][0]
    version = cursor.execute("PRAGMA user_version").fetchall()[0][0]
    tables = [r[0] for r in cursor.execute("SELECT name FROM sqlite_schema ORDER BY name")]
    if app_id == 0 and version == 0 and not tables:
        return []  # an empty database: what a crash before the first commit leaves
    if app_id != APPLICATION_ID or version != LAYOUT_VERSION or "crashkit_state" not in tables:
        raise RestoreFatal(
            path,
            f"not a crashkit state database (application_id {app_id:#x}, user_version "
            f"{version}, tables {', '.join(tables) or 'none'}; expected application_id "
            f"{APPLICATION_ID:#x}, user_version {LAYOUT_VERSION}, table crashkit_state)",
        )
    if not check:  # (broken variants: served as far as a scan reads, or if it reads)
        return _readable_rows(cursor) if skip_invalid else _scanned_rows(cursor)
    problems = [r[0] for r in cursor.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise RestoreFatal(
            path, f"damaged database (PRAGMA quick_check: {'; '.join(map(str, problems[:3]))})"
        )
    return [
        (symbol, ts, bytes(record) if isinstance(record, bytes | memoryview) else record)
        for symbol, ts, record in cursor.execute(
            "SELECT symbol, engine_timestamp_ms, record FROM crashkit_state ORDER BY symbol"
        )
    ]


def _scanned_rows(cursor: apsw.Cursor) -> list[tuple[str, int, bytes]]:
    """Every row of one scan, no integrity check (a broken variant's restore: a damaged
    page the scan does not read goes unseen)."""
    return [
        (symbol, ts, bytes(record) if isinstance(record, bytes) else record)
        for symbol, ts, record in cursor.execute(
            "SELECT symbol, engine_timestamp_ms, record FROM crashkit_state"
        )
    ]


def _readable_rows(cursor: apsw.Cursor) -> list[tuple[str, int, bytes]]:
    """The rows a scan reads before SQLite reports damage (a broken variant's restore)."""
    out: list[tuple[str, int, bytes]] = []
    with contextlib.suppress(apsw.Error):
        for symbol, ts, record in cursor.execute(
            "SELECT symbol, engine_timestamp_ms, record FROM crashkit_state"
        ):
            out.append((symbol, ts, bytes(record) if isinstance(record, bytes) else record))
    return out


def _judge_rows(
    rows: list[tuple[str, int, bytes]],
    path: str,
    file_bytes: int,
    decode: Callable[[bytes], StoreRecord] = decode_record,
    *,
    skip_invalid: bool = False,
) -> RestoreReport:
    """The rows as the report `crashkit inspect` shows for a line file: `lines` and `valid`
    count rows, a winner's `line` is its row number in symbol order. Any invalid row is
    fatal (module docstring). All rows are judged in one C-level decode when they are all
    valid (`report.fast_records`, which judges as `decode_record` does), else one by one
    to name the first invalid one."""
    winners: dict[str, tuple[int, StoreRecord]] = {}
    if all(isinstance(r[2], bytes) for r in rows):
        fast = fast_records(b"".join(r[2] + b"\n" for r in rows), len(rows)) if rows else []
        if fast is not None and all(
            d.symbol == r[0] and d.engine_timestamp_ms == r[1]
            for d, r in zip(fast, rows, strict=True)
        ):
            winners = {r[0]: (n, d) for n, (d, r) in enumerate(zip(fast, rows, strict=True), 1)}
            return _report(path, rows, file_bytes, winners)
    for number, (symbol, ts, record) in enumerate(rows, 1):
        try:
            if not isinstance(record, bytes):
                raise RecordError(f"schema: record is {type(record).__name__}, not a blob")
            decoded = decode(record)
            if decoded.symbol != symbol or decoded.engine_timestamp_ms != ts:
                raise RecordError(
                    f"schema: row key ({symbol!r}, {ts}) differs from its record "
                    f"({decoded.symbol!r}, {decoded.engine_timestamp_ms})"
                )
        except RecordError as exc:
            if skip_invalid:  # (a broken variant's hook: serve what it can read)
                continue
            raise RestoreFatal(
                path,
                f"row {number} (symbol {symbol!r}) is invalid: {exc}; a crashkit SQLite "
                "database holds one row per symbol, so an invalid row is damage",
            ) from exc
        winners[symbol] = (number, decoded)
    return _report(path, rows, file_bytes, winners)


def _report(
    path: str,
    rows: list[tuple[str, int, bytes]],
    file_bytes: int,
    winners: dict[str, tuple[int, StoreRecord]],
) -> RestoreReport:
    outcome: Outcome = "ok" if winners else "bootstrap"
    return RestoreReport(
        path=path,
        outcome=outcome,
        lines=len(rows),
        valid=len(rows),
        file_bytes=file_bytes,
        winners=winners,
    )


def _check_path(path: str) -> os.stat_result | None:
    """The state path's stat (None: nothing there); refuses anything but a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:  # (a path under a regular file is ENOTDIR: refused, as C4.3 says)
        raise RestoreFatal(
            path, f"cannot open state database: {exc.strerror} (errno {exc.errno})"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise RestoreFatal(
            path,
            f"state path is {_kind(info.st_mode)}, not a regular file; refusing to read or write it",
        )
    return info


@contextlib.contextmanager
def _reading(path: str, state: ConnectionState | None) -> Iterator[None]:
    """What SQLite raises while reading the database, as the refusal it means."""
    try:
        yield
    except apsw.NotADBError as exc:
        raise RestoreFatal(path, "not an SQLite database (its header is not SQLite's)") from exc
    except apsw.CorruptError as exc:
        raise RestoreFatal(path, f"damaged database: {exc}") from exc
    except apsw.Error as exc:
        raise RestoreFatal(path, f"cannot read state database: {_error_text(state, exc)}") from exc


def _restore(
    connection: apsw.Connection,
    state: ConnectionState | None,
    path: str,
    settings: Settings | None = None,
) -> RestoreReport:
    settings = settings or SAFE
    with _reading(path, state):
        rows = _rows(
            connection,
            path,
            check=settings.check_integrity,
            skip_invalid=settings.skip_invalid_rows,
        )
        size, page = (
            connection.cursor()
            .execute("SELECT page_count, page_size FROM pragma_page_count, pragma_page_size")
            .fetchall()[0]
        )
    pages, page_size = (v if isinstance(v, int) else 0 for v in (size, page))
    return _judge_rows(
        rows,
        path,
        pages * page_size,
        settings.decode_row,
        skip_invalid=settings.skip_invalid_rows,
    )


def _entry_durable(path: str) -> None:
    """The database SQLite just created: its folder fsynced, so that its entry is durable
    before the first append returns (C5.3). SQLite syncs the folder itself only when it
    deletes a journal (DELETE mode): a mode without one would leave the entry to chance."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        _fsync_dir(directory)
    except OSError as exc:
        raise RestoreFatal(
            path,
            f"cannot make the new database durable in {directory} (fsync of the folder): "
            f"{exc.strerror} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)})",
        ) from exc


def _connect(path: str, vfs: OsVfs, state: ConnectionState, flags: int) -> apsw.Connection:
    try:
        return apsw.Connection(path, flags=flags, vfs=vfs.vfs_name)
    except apsw.BusyError as exc:
        raise WriterLocked(
            path,
            "another process holds the writer lock on this state database; "
            "only one orchestrator may write it at a time",
        ) from exc
    except apsw.Error as exc:
        raise RestoreFatal(path, f"cannot open state database: {_error_text(state, exc)}") from exc


def _configure(
    connection: apsw.Connection, settings: Settings, path: str, state: ConnectionState
) -> None:
    """The pragmas the backend depends on, each checked (a mode SQLite refused is fatal)."""
    with _reading(path, state):
        cursor = connection.cursor()
        cursor.execute("PRAGMA locking_mode = NORMAL")
        mode = cursor.execute(f"PRAGMA journal_mode = {settings.journal_mode}").fetchall()[0][0]
        cursor.execute(f"PRAGMA synchronous = {settings.synchronous}")
        cursor.execute("PRAGMA temp_store = MEMORY")
        cursor.execute("PRAGMA cell_size_check = ON")
    if str(mode).upper() != settings.journal_mode.upper():
        raise RestoreFatal(
            path, f"SQLite kept journal_mode {mode} where {settings.journal_mode} was asked"
        )


# -- the writer -----------------------------------------------------------------------------


class SqliteStateBackend:
    """The writer side: one connection, one transaction per `append`.

    Variants (the self-test's broken backends) subclass it and pass it as `writer=` to
    `open_sqlite_store`: `connection`, `state` and `commit_states` are the hooks."""

    def __init__(
        self, path: str, connection: apsw.Connection, state: ConnectionState, fresh: bool
    ) -> None:
        self.path = path
        self.state = state
        self._connection: apsw.Connection | None = connection
        self._fresh = fresh  # no table yet: the first append creates it
        self._poisoned: str | None = None
        self.close_error: str | None = None

    @property
    def poisoned(self) -> bool:
        return self._poisoned is not None

    @property
    def connection(self) -> apsw.Connection:
        if self._connection is None:
            raise PersistenceError(f"writer for {self.path} is closed")
        return self._connection

    def _fail(self, what: str, exc: BaseException) -> PersistenceError:
        os_error = self.state.last_error[1] if self.state.last_error is not None else None
        reason = f"{what} failed on {self.path}: {_error_text(self.state, exc)}"
        self._poisoned = reason
        if self.state.poisoned is None:
            self.state.poisoned = reason  # no further I/O, whatever failed
        return PersistenceError(reason, os_error.errno if os_error is not None else None)

    @staticmethod
    def rows(states: Sequence[HysteresisState]) -> list[tuple[str, int, bytes]]:
        """(symbol, timestamp, canonical record without its newline) per state; encoded in
        one call (`encode_states`: the same bytes as `encode_record`, faster)."""
        lines = encode_states(states).split(b"\n")[:-1]  # (each line ends in one)
        return [
            (s.symbol, s.engine_timestamp_ms, line) for s, line in zip(states, lines, strict=True)
        ]

    def commit_states(self, states: Sequence[HysteresisState]) -> None:
        """One transaction: the table first if the database is new, then the upserts."""
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        if self._fresh:
            cursor.execute(SCHEMA)
        cursor.executemany(UPSERT, self.rows(states))
        cursor.execute("COMMIT")
        self._fresh = False

    def append(self, states: Sequence[HysteresisState]) -> None:
        """One transaction, committed durably (synchronous=EXTRA) before returning."""
        if self._poisoned is not None:
            raise PersistenceError(f"writer is poisoned after an earlier failure: {self._poisoned}")
        if self._connection is None:
            raise PersistenceError(f"writer for {self.path} is closed")
        if not states:
            return
        try:
            self.commit_states(states)
        except apsw.Error as exc:
            raise self._fail("commit", exc) from exc

    def abandon(self) -> None:
        """The harness cut the power: this process is gone. Close the connection with every
        file call refused and no descriptor closed (they belong to a machine that no longer
        runs): nothing is written, and nothing is left for a later garbage collection to
        write into whatever disk the harness booted next."""
        self.state.dead = True
        self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.close(True)
        except apsw.Error as exc:
            self.close_error = f"close failed on {self.path}: {_error_text(self.state, exc)}"
        finally:
            self.state.release()


def open_sqlite_store(
    path: str,
    config: HysteresisConfig,
    *,
    settings: Settings = SAFE,
    writer: type[SqliteStateBackend] = SqliteStateBackend,
) -> OpenedStore:
    """Lock, recover, check and restore the database at `path` (created empty if there
    is none); raise StartupRefused for anything the contract says must not start."""
    existing = _check_path(path)
    if existing is None:
        directory = os.path.dirname(os.path.abspath(path))
        try:
            _make_parents(directory, _fsync_dir)
        except OSError as exc:
            raise RestoreFatal(
                path,
                f"cannot create the state folder {exc.filename or directory}: {exc.strerror} "
                f"(errno {errno.errorcode.get(exc.errno or 0, exc.errno)})",
            ) from exc
    vfs = vfs_for(settings)
    state = vfs.attach(path, writer=True)
    _reseed()
    try:
        connection = _connect(
            path, vfs, state, apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        )
        try:
            if existing is None:  # C5.3 by the backend itself, whatever the journal mode
                _entry_durable(path)
            _configure(connection, settings, path, state)
            report = _restore(connection, state, path, settings)
        except BaseException:
            connection.close(True)
            raise
    except BaseException:
        state.release()
        raise
    fresh = report.outcome == "bootstrap"
    backend = writer(path, connection, state, fresh)
    return OpenedStore(backend=backend, store=store_from_report(report, config), report=report)


# -- read-only --------------------------------------------------------------------------------


def _open_regular(path: str) -> int | None:
    """A read-only descriptor on the regular file at `path` (None: there is none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RestoreFatal(path, f"{path} is not a regular file; refusing to read it")
    return fd


def restore_report(path: str) -> RestoreReport:
    """Restore as a start would, without writing a byte: SQLite reads the database and
    its journal through `OverlayVfs`, which keeps what a hot journal's recovery rewrites
    in memory (so memory does not grow with the database). Under a shared lock on the
    database: a writer holds it exclusively, so a live database is never read half-way
    through a commit, and is reported as fatal with that reason. Never raises for
    content."""
    try:
        if _check_path(path) is None:
            return RestoreReport(path=path, outcome="bootstrap")
        full = os.path.realpath(path)  # (as SQLite names it: the VFS's xFullPathname)
        descriptors: dict[str, int] = {}
        try:
            fd = _open_regular(full)
            if fd is None:
                return RestoreReport(path=path, outcome="bootstrap")
            descriptors[full] = fd
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise WriterLocked(
                    path, "a writer has this state database open; inspect it once it has stopped"
                ) from exc
            journal = _open_regular(f"{full}-journal")
            if journal is not None:
                descriptors[f"{full}-journal"] = journal
            overlay = OverlayVfs(f"crashkit-overlay-{next(_memory_names)}", descriptors)
        except OSError as exc:
            for fd in descriptors.values():
                os.close(fd)
            raise RestoreFatal(
                path, f"cannot read state database: {exc.strerror} (errno {exc.errno})"
            ) from exc
        except BaseException:
            for fd in descriptors.values():
                os.close(fd)
            raise
        try:
            try:
                connection = apsw.Connection(
                    path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=overlay.vfs_name
                )
            except apsw.Error as exc:
                raise RestoreFatal(path, f"cannot open state database: {exc}") from exc
            try:
                return _restore(connection, None, path)
            finally:
                connection.close(True)
        finally:
            overlay.unregister()
            for fd in descriptors.values():
                os.close(fd)  # (closing the database releases the lock)
    except StartupRefused as exc:
        return RestoreReport(path=path, outcome="fatal", reason=exc.reason)


def restore_only(path: str, config: HysteresisConfig) -> HysteresisStore:
    """Restore as `open_sqlite_store` does, read-only (no writer, no lock, nothing written)."""
    report = restore_report(path)
    if report.outcome == "fatal":
        raise RestoreFatal(path, report.reason or "fatal restore")
    return store_from_report(report, config)


# -- damage (the kit's `declared-damage` row) --------------------------------------------

#: Where a page's b-tree header starts: after the 100-byte database header on page 1.
_HEADER = 100
#: The database header's freelist fields (first trunk page, page count): a flip points
#: SQLite at pages that are not free, which only `PRAGMA quick_check` sees.
_FREELIST = (35, 39)
#: Where each record's canonical text starts in a page (C2.5: sorted keys, compact).
_RECORD_START = b'{"anchor_regime":'


def damages(path: str, files: Mapping[str, bytes]) -> tuple[Damage, ...]:
    """The damages a crashkit database must refuse (`Backend.damage`), read from the file
    format (sqlite.org/fileformat2.html): the magic string and the freelist fields of the
    header flipped; each page's b-tree page type and first-freeblock offset flipped; each
    page zeroed; the file cut after each page but the last: each leaves a database that
    fails `PRAGMA quick_check`, fatal (D.41), never rows served from it. And a byte
    flipped in the middle of each record text found: a live row's is refused (strict
    decoding), a stale copy in a page's free space is never read, so these are held to
    `NOT_INVENTED` (the bytes alone do not tell the two apart). Other bytes SQLite never
    reads (free space) are left out: damage there changes nothing it restores."""
    data = files.get(path)
    if not data or not data.startswith(SQLITE_MAGIC):
        return ()
    page = int.from_bytes(data[16:18], "big")
    page = 65536 if page == 1 else page
    pages = len(data) // page if page >= 512 else 0
    fatal = DamageExpect.FATAL
    out = [Damage("the header's magic string flipped", path, DamageOp.FLIP, 0, fatal)]
    out += [
        Damage(f"the header's freelist field at byte {at} flipped", path, DamageOp.FLIP, at, fatal)
        for at in _FREELIST
    ]
    for n in range(pages):
        base = n * page + (_HEADER if n == 0 else 0)
        out += [
            Damage(f"page {n + 1}'s b-tree page type flipped", path, DamageOp.FLIP, base, fatal),
            Damage(
                f"page {n + 1}'s first-freeblock offset flipped",
                path,
                DamageOp.FLIP,
                base + 1,
                fatal,
            ),
            Damage(f"page {n + 1} zeroed", path, DamageOp.ZERO, n * page, fatal, page),
        ]
        if n:
            out.append(Damage(f"cut after page {n}", path, DamageOp.TRUNCATE, n * page, fatal))
    at = data.find(_RECORD_START)
    while at >= 0:
        end = data.find(b"}", at)
        middle = (at + end) // 2 if end > at else at + len(_RECORD_START)
        out.append(  # (a live row's, refused; or a stale copy in free space, unread)
            Damage(f"a byte flipped in the record text at byte {at}", path, DamageOp.FLIP, middle)
        )
        at = data.find(_RECORD_START, at + 1)
    return tuple(out)


CAPABILITIES = Capabilities(
    line_format=False,
    single_writer=True,
    files=("{path}", "{path}-journal"),
)

#: The SQLite backend's declaration (`crashkit.orchestrator.store.sqlite:BACKEND`).
BACKEND = Backend(
    name="sqlite",
    open=open_sqlite_store,
    restore_only=restore_only,
    capabilities=CAPABILITIES,
    spec="crashkit.orchestrator.store.sqlite:BACKEND",
    report=restore_report,
    damage=damages,
)
