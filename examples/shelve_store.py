"""A backend on the standard library's `shelve`, over `dbm.dumb`: pure Python, tested in
process by the conformance kit (docs/backends.md, "Pure-Python standard-library backends").

    pytest --crashkit-backend=examples.shelve_store:BACKEND --crashkit-suite=quick
    pytest --crashkit-backend=examples.shelve_store:NO_FSYNC --crashkit-suite=quick  # fails

(from the repository root: `examples` is then a namespace package.)

`dbm.dumb` keeps three files beside the state path: `PATH.dat` (the pickled values, each
at a 512-byte boundary), `PATH.dir` (the index: one `'key', (offset, size)` line per key,
appended for a new key, rewritten on `sync()` after renaming the old one to `PATH.bak`).
It never fsyncs, a value that fits the space of the old one is overwritten in place, and
its own open reads only `PATH.dir` (a torn last line makes it raise). So this backend:

- never overwrites: each append is a new *batch*, one new key (its number, ten digits)
  whose value is the list of its states' canonical v1 records; dbm.dumb appends it to
  `.dat` and its index line to `.dir`;
- checks what dbm.dumb wrote (it ignores a short write): the new value read back, the
  index parsed whole;
- makes it durable before returning: `sync()` (the index rewritten), then `fsync` of
  `.dat`, `.dir` and `.bak`, then of the folder (the rename and the new index's entry);
- never lets dbm.dumb rewrite its index unsynced: its `close()` (and its `__del__`) rewrite
  it whenever its private flag `_modified` is set, deleting `.bak` first, and two such
  rewrites in a row delete both synced copies (the kit finds it: `1-durability` after a
  close); every append already wrote and synced the index, so the flag is cleared after
  each append, failed or not, and a poisoned or abandoned writer writes nothing more;
- restores by reading the files itself, `.dir` and `.bak` together (a crash may leave the
  rewritten index torn, empty or missing: its previous copy, synced, is then `.bak`): a
  torn last line of an index is a crash's, ignored; the newest batch may be cut short
  the way a power cut cuts a file (past the end of `.dat`, or into a zero-filled tail: a
  crash during its append, never acknowledged) and is then ignored; any other batch
  that is not whole (an index line that does not parse, two index lines that disagree, a
  value that is not there or does not decode) is damage no crash leaves, and the store
  is refused; per symbol the newest state of the whole
  batches wins (a tie: the later write);
- before opening the writer, rewrites an index that is not exactly the whole batches'
  (through `PATH.tmp`, fsynced, renamed, `.bak` removed, the folder fsynced), so that
  dbm.dumb can read it and no stale entry of an ignored batch survives, then fsyncs the
  files and the folder: what it restored may be the bytes of an append whose fsync
  failed, never durable, and the next appends build on it (the kit's state machines
  found the restart after such a failure refused after a crash);
- holds `flock(LOCK_EX|LOCK_NB)` on `.dat` while open: one writer;
- after any failed call, is poisoned: every later append raises, nothing is retried.

`NO_FSYNC` is the same store with a planted defect: it syncs the folder but never the
files (as `dbm.dumb` itself never does). The kit names it under `1-durability`.
"""

from __future__ import annotations

import ast
import contextlib
import dbm.dumb
import errno
import fcntl
import io
import os
import pickle
import re
import shelve
import stat
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import cast

from crashkit.orchestrator.errors import (
    PersistenceError,
    RestoreFatal,
    StartupRefused,
    WriterLocked,
)
from crashkit.orchestrator.store.protocol import (
    Backend,
    Capabilities,
    OpenedStore,
    RestoreSummary,
)
from crashkit.regime_engine.codec import decode_record, encode_state, record_to_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, HysteresisStore

SUFFIXES = (".dat", ".dir", ".bak")
_KEY = re.compile(r"\d{10}")


# -- reading the files ----------------------------------------------------------------------


class _NoGlobals(pickle.Unpickler):
    """Values are bytes and ints: a damaged value naming a class is refused, not run."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"global {module}.{name} in a value")


def _unpickle(data: bytes) -> object:
    return _NoGlobals(io.BytesIO(data)).load()


def _read(path: str) -> bytes | None:
    """The bytes of `path`, None if it does not exist; refuses anything not a regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise RestoreFatal(path, "not a regular file; refusing to read or write it")
    with open(path, "rb") as f:
        return f.read()


def _parse_index(path: str, data: bytes) -> tuple[dict[str, tuple[int, int]], bool]:
    """An index file's entries, and whether its last line was torn (ignored: a crash's)."""
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # what follows the last newline: a torn line, or nothing
    entries: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(lines, 1):
        try:
            key, where = ast.literal_eval(line.decode("latin-1"))
            pos, size = where
            ok = isinstance(key, str) and _KEY.fullmatch(key) is not None
            ok = ok and type(pos) is int and type(size) is int and pos >= 0 and size >= 0
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            ok = False
        if not ok or entries.get(key, (pos, size)) != (pos, size):
            raise RestoreFatal(path, f"index line {number} is damaged: {line[:80]!r}")
        entries[key] = (pos, size)
    return entries, torn


@dataclass(frozen=True, slots=True)
class _Read:
    """What the files hold: the restored states, the entries of the whole batches, the
    next batch number, and whether the index files must be rewritten before writing."""

    states: dict[str, HysteresisState]
    kept: dict[str, tuple[int, int]]
    next_batch: int
    repair: bool
    found: bool  # any file of the store exists


def _batch_states(
    data: bytes, where: tuple[int, int], config: HysteresisConfig
) -> list[HysteresisState] | None:
    """The states of one batch in write order, or None if it is not whole."""
    pos, size = where
    if pos + size > len(data):
        return None  # past the end of the data file
    try:
        value = _unpickle(data[pos : pos + size])
        if not isinstance(value, list) or not value:
            return None
        out: list[HysteresisState] = []
        for raw in value:
            if not isinstance(raw, bytes) or not raw.endswith(b"\n"):
                return None
            out.append(record_to_state(decode_record(raw[:-1]), config))
        return out
    except Exception:  # whatever a damaged pickle or record raises
        return None


def _cut_by_a_crash(data: bytes, where: tuple[int, int]) -> bool:
    """The value is damaged as a power cut damages the end of a file: it runs past the end
    of the data file, or into the zeros a size persisted ahead of its data leaves. (A
    whole pickle ends with its STOP byte, never a zero.) Any other damage is no crash's."""
    pos, size = where
    return pos + size > len(data) or len(data.rstrip(b"\0")) < pos + size


def _read_store(path: str, config: HysteresisConfig) -> _Read:
    """Read the store at `path` as the module docstring says (RestoreFatal on damage)."""
    dat, index, bak = (_read(path + suffix) for suffix in SUFFIXES)
    found = any(f is not None for f in (dat, index, bak))
    if os.path.lexists(path) and not os.path.isfile(path):
        raise RestoreFatal(path, "the state path is not a regular file; refusing to use it")
    dir_entries, dir_torn = _parse_index(path + ".dir", index or b"")
    bak_entries, _ = _parse_index(path + ".bak", bak or b"")
    merged = dict(bak_entries)
    for key, where in dir_entries.items():
        if merged.get(key, where) != where:
            raise RestoreFatal(path, f"{key}: {path}.dir and {path}.bak disagree")
        merged[key] = where
    newest = max(merged, default="")
    states: dict[str, HysteresisState] = {}
    kept: dict[str, tuple[int, int]] = {}
    for key in sorted(merged):
        got = _batch_states(dat or b"", merged[key], config)
        if got is None:
            if key == newest and _cut_by_a_crash(dat or b"", merged[key]):
                continue  # a crash during its append: never acknowledged
            raise RestoreFatal(path, f"batch {int(key)} is damaged (not the newest: no crash)")
        kept[key] = merged[key]
        for state in got:
            old = states.get(state.symbol)
            if old is None or state.engine_timestamp_ms >= old.engine_timestamp_ms:
                states[state.symbol] = state
    last = max((int(k) for k in kept), default=0)
    stale = any(k not in kept for k in bak_entries)
    repair = dir_torn or dir_entries != kept or stale or (index is None and bak is not None)
    return _Read(states, kept, last + 1, repair, found)


def restore_only(path: str, config: HysteresisConfig) -> HysteresisStore:
    """What the factory restores, read-only: no lock, nothing written."""
    try:
        return HysteresisStore(_read_store(path, config).states)
    except OSError as exc:
        raise RestoreFatal(path, f"cannot read the store: {exc}") from exc


# -- writing --------------------------------------------------------------------------------


def fsync_path(path: str, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_parents(folder: str) -> None:
    """Create missing folders one by one, each made durable in its parent."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for made in reversed(missing):
        os.mkdir(made)
        fsync_path(os.path.dirname(made) or ".", directory=True)


def _rewrite_index(path: str, kept: dict[str, tuple[int, int]]) -> None:
    """Put exactly `kept` in `PATH.dir`, durably, and remove `PATH.bak`."""
    folder = os.path.dirname(path) or "."
    text = "".join(f"{key!r}, {where!r}\n" for key, where in sorted(kept.items()))
    with open(path + ".tmp", "w", encoding="latin-1") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path + ".dir")
    if os.path.lexists(path + ".bak"):
        os.unlink(path + ".bak")
    fsync_path(folder, directory=True)


def _nothing_pending(database: MutableMapping[bytes, bytes]) -> None:
    """Tell dbm.dumb its index needs no rewrite (its private `_modified`): each append
    wrote and synced it; a rewrite at close or garbage collection would be unsynced, and
    would first delete the synced copy in `.bak`."""
    database._modified = False  # type: ignore[attr-defined]


def _sync_store(path: str, suffixes: Sequence[str]) -> None:
    """fsync the store's files that exist, then its folder."""
    for suffix in suffixes:
        if os.path.lexists(path + suffix):
            fsync_path(path + suffix)
    fsync_path(os.path.dirname(path) or ".", directory=True)


class ShelveStateBackend:
    """The writer: one shelf over dbm.dumb, the lock on `.dat`, the next batch number."""

    #: the files `append` fsyncs (the broken variant leaves them out)
    synced: tuple[str, ...] = SUFFIXES

    def __init__(
        self,
        path: str,
        lock_fd: int,
        database: MutableMapping[bytes, bytes],
        batch: int,
        keys: set[str],
    ) -> None:
        self.path = path
        self.keys = keys  # the batches in the index
        self.database = database
        self.folder = os.path.dirname(path) or "."
        self.lock_fd: int | None = lock_fd
        self.shelf: shelve.Shelf[object] | None = shelve.Shelf(database)
        self.batch = batch
        self._poisoned = False

    @property
    def poisoned(self) -> bool:
        return self._poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        if self._poisoned or self.shelf is None:
            raise PersistenceError(f"{self.path}: poisoned by an earlier failure (or closed)")
        if not states:
            return
        key = f"{self.batch:010d}"
        records = [encode_state(state) for state in states]
        try:
            self.shelf[key] = records
            self.shelf.sync()  # dbm.dumb rewrites the index through .bak
            self._check_written(key, records)
            _sync_store(self.path, self.synced)  # the folder: the rename, the new index
        except Exception as exc:
            self._poisoned = True  # never retry: what failed may be gone
            code = exc.errno if isinstance(exc, OSError) else errno.EIO
            raise PersistenceError(f"{self.path}: append failed: {exc}", code) from exc
        finally:
            _nothing_pending(self.database)
        self.keys.add(key)
        self.batch += 1

    def _check_written(self, key: str, records: list[bytes]) -> None:
        """dbm.dumb ignores what a write returns, so a short write would go unnoticed (and
        be acknowledged): read back the new value and the index before syncing them."""
        if self.shelf is None or self.shelf[key] != records:
            raise OSError(errno.EIO, f"{self.path}.dat does not hold batch {key} as written")
        entries, torn = _parse_index(self.path + ".dir", _read(self.path + ".dir") or b"")
        if torn or set(entries) != self.keys | {key}:
            raise OSError(errno.EIO, f"{self.path}.dir does not hold the index as written")

    def close(self) -> None:
        shelf, self.shelf = self.shelf, None
        if shelf is not None:
            _nothing_pending(self.database)  # (no unsynced index rewrite at close)
            with contextlib.suppress(Exception):
                shelf.close()
        fd, self.lock_fd = self.lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # releases the flock


def _release(lock_fd: int | None) -> None:
    """Close the lock's descriptor on a refused start. Its close may fail too (the kit
    fails every close of `.dat`): the refusal is what the caller must see, and Linux
    frees the descriptor whatever close returns."""
    if lock_fd is not None:
        with contextlib.suppress(OSError):
            os.close(lock_fd)


def _open_store(
    path: str, config: HysteresisConfig, writer: type[ShelveStateBackend]
) -> OpenedStore:
    if os.path.lexists(path) and not os.path.isfile(path):
        raise RestoreFatal(path, "the state path is not a regular file; refusing to use it")
    lock_fd: int | None = None
    try:
        _make_parents(os.path.dirname(path))
        lock_fd = os.open(path + ".dat", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        if not stat.S_ISREG(os.fstat(lock_fd).st_mode):
            raise RestoreFatal(path, f"{path}.dat is not a regular file")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WriterLocked(path, "another writer holds the store") from exc
        read = _read_store(path, config)
        if read.repair:
            _rewrite_index(path, read.kept)
        _sync_store(path, SUFFIXES)  # what was restored may never have been synced
        # (kept open for the writer's lifetime: its close() closes it)
        database = cast("MutableMapping[bytes, bytes]", dbm.dumb.open(path, "c"))  # noqa: SIM115
        _nothing_pending(database)  # (a new store: its empty index needs no file yet)
    except StartupRefused:
        _release(lock_fd)
        raise
    except OSError as exc:
        _release(lock_fd)
        raise RestoreFatal(path, f"cannot open the store: {exc}") from exc
    backend = writer(path, lock_fd, database, read.next_batch, set(read.kept))
    summary = RestoreSummary(path, "ok" if read.states else "bootstrap")
    return OpenedStore(backend, HysteresisStore(read.states), summary)


def open_shelve_store(path: str, config: HysteresisConfig) -> OpenedStore:
    """The factory: restore (or refuse), then the writer."""
    return _open_store(path, config, ShelveStateBackend)


BACKEND = Backend(
    name="shelve",
    open=open_shelve_store,
    restore_only=restore_only,
    capabilities=Capabilities(
        single_writer=True,
        files=("{path}.dat", "{path}.dir", "{path}.bak"),
        temp_files=("{path}.tmp",),
    ),
)


# -- the planted defect ---------------------------------------------------------------------


class NoFsyncBackend(ShelveStateBackend):
    """Syncs the folder, never the files: what dbm.dumb's own `sync()` promises."""

    synced = ()


def open_no_fsync_store(path: str, config: HysteresisConfig) -> OpenedStore:
    return _open_store(path, config, NoFsyncBackend)


NO_FSYNC = replace(BACKEND, name="shelve-no-fsync", open=open_no_fsync_store, restore_only=None)
