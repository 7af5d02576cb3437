"""SQLite's I/O as plain Python `os` calls: a VFS (through APSW) that SQLite runs over.

Why: SQLite does its file I/O in C, where nothing written in Python can see, fail or
crash it. SQLite's own crash tests run it over a test VFS (`src/test6.c`) for that
reason; this is the same idea. Every read, write, sync, truncate, open, close, delete
and directory sync SQLite asks for is one `os` call here, so `crashkit.faults` records
it, can fail it, and derives the disks a power cut may leave from it. It is also the
production path: `orchestrator.store.sqlite` opens every database through this VFS, so
what the harness crash-tests is what runs.

What SQLite is told, and what each method does (`OsVfs`, `OsFile`):

- open: `os.open` with the access SQLite asks for (`O_RDWR`/`O_RDONLY`, `O_CREAT`,
  `O_EXCL`), `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`, mode 0644, on the path with its
  symbolic links resolved (`xFullPathname`, as the unix VFS does). A journal, WAL or
  super-journal opened with `SQLITE_OPEN_CREATE` gets its directory synced after its
  first sync, as SQLite's unix VFS does (`UNIXFILE_DIRSYNC`). Every file must be a
  regular one (a FIFO is refused, never waited on).
- read/write: `os.pread`/`os.pwrite` at the offset asked, looping over short counts; a
  read past the end returns what there is (APSW zero-fills the rest and reports
  `SQLITE_IOERR_SHORT_READ`, as SQLite requires).
- sync: `os.fsync` of the file, whatever the flags (`SQLITE_SYNC_NORMAL`, `FULL`,
  `DATAONLY`), and of a directory (open `O_RDONLY|O_DIRECTORY`, `fsync`, close). SQLite's
  unix VFS calls `fdatasync` at the same places on Linux (`full_fsync`); `fsync` also
  persists the metadata fdatasync may leave, and is the call the scenario library and
  the fault plans name, so every sync fault reaches this backend too.
- delete: `os.unlink`; when SQLite passes `syncDir` (synchronous=EXTRA in DELETE journal
  mode), the directory is synced after it, so the deletion (the commit) is durable.
- truncate: `os.ftruncate`. Size: `os.fstat`.
- sector size 4096 and device characteristics 0: no atomic writes, no safe append, no
  power-safe overwrite, no sequential writes. The most conservative declaration: SQLite
  then pads journal headers to a sector and never assumes that a write cannot damage
  the rest of its block, which the block profiles of `crashkit.faults.profiles` may do.
  (The unix VFS declares power-safe overwrite, so its journal headers take 512 bytes:
  the one difference in the calls SQLite makes through either, which
  tests/integration/test_sqlite_syscalls.py shows.)
- locks: one OS lock per connection, `flock` on the main database for as long as it is
  open: exclusive for a read-write connection (`LOCK_EX|LOCK_NB`), shared for a
  read-only one. A held lock refuses the open (`SQLITE_BUSY`). SQLite's own lock levels
  (shared, reserved, pending, exclusive) are then kept per connection with no OS call:
  no other process can have the database open beside a writer. `xCheckReservedLock`
  says whether this connection holds one. No shared memory: the database runs in a
  rollback-journal mode, never WAL (whose wal-index is `mmap`, which the fault layer does
  not model).
- randomness and time: deterministic (a counter through BLAKE2b; a fixed clock), so the
  same run writes the same bytes on every machine. SQLite draws journal nonces from one
  generator seeded from the default VFS, so the backend's VFS is registered as the
  process's default and reseeds it at every connection (`reseed`). Time is used only by
  SQL date functions, which crashkit never calls.
- temp files (SQLite names none): `MemoryFile`, a bytearray. They never outlive a
  connection, so a crash has nothing of them to keep.

`OverlayVfs` reads files from descriptors and keeps every write in memory: a read-only
restore lets SQLite recover a hot journal there, so restoring never writes a file, and
memory holds only what the recovery rewrote.

`OsVfs(name, sync=False)` and `OsVfs(name, dirsync_on_delete=False)` are the broken
VFSs the kit's self-test must catch: a sync that does nothing, a deletion whose
directory sync is ignored.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import posixpath
import stat
from collections.abc import Callable
from typing import Any

import apsw

#: What every file tells SQLite (see the module docstring).
SECTOR_SIZE = 4096
DEVICE_CHARACTERISTICS = 0

_JOURNALS = apsw.SQLITE_OPEN_MAIN_JOURNAL | apsw.SQLITE_OPEN_SUPER_JOURNAL | apsw.SQLITE_OPEN_WAL
_LOCK_NONE = apsw.SQLITE_LOCK_NONE
_LOCK_RESERVED = apsw.SQLITE_LOCK_RESERVED
#: 2000-01-01 as a Julian day number in milliseconds (SQLite's xCurrentTimeInt64 unit).
_FIXED_TIME_MS = 2451544 * 86_400_000 + 43_200_000


def sqlite_error(code: int, exc: BaseException | None = None) -> BaseException:
    """The APSW exception for an SQLite (extended) result code, chained to `exc`."""
    error = apsw.exception_for(code)
    if exc is not None:
        error.__cause__ = exc
    return error


def io_code(exc: OSError, default: int) -> int:
    """The SQLite result code for an OS error: SQLITE_FULL for a full disk or quota."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return apsw.SQLITE_FULL
    return default


class _Declared:
    """What every file of these VFSs tells SQLite: the lock level it holds (kept in the
    connection: see the module docstring on locks), the sector size and the device
    characteristics."""

    level = _LOCK_NONE

    def xLock(self, level: int) -> None:
        self.level = max(self.level, level)

    def xUnlock(self, level: int) -> None:
        self.level = min(self.level, level)

    def xCheckReservedLock(self) -> bool:
        return self.level >= _LOCK_RESERVED

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return SECTOR_SIZE

    def xDeviceCharacteristics(self) -> int:
        return DEVICE_CHARACTERISTICS


class OsFile(_Declared):
    """One file SQLite opened, as a descriptor: every method one `os` call (or a loop)."""

    def __init__(self, vfs: OsVfs, path: str, flags: list[int]) -> None:
        wanted = flags[0]
        #: the `os` and `fcntl` of the world the file was opened in: a connection
        #: collected after a simulated machine is gone closes its descriptors there,
        #: never a real descriptor that happens to carry the same number
        self._os = os
        self._fcntl = fcntl
        self.vfs = vfs
        self.state = vfs.state_of(path)
        self.path = path
        self.main = bool(wanted & apsw.SQLITE_OPEN_MAIN_DB)
        readonly = bool(wanted & apsw.SQLITE_OPEN_READONLY)
        create = bool(wanted & apsw.SQLITE_OPEN_CREATE)
        mode = os.O_RDONLY if readonly else os.O_RDWR
        if create:
            mode |= os.O_CREAT
        if wanted & apsw.SQLITE_OPEN_EXCLUSIVE:
            mode |= os.O_EXCL
        try:
            fd = os.open(path, mode | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self.state.failed(exc, f"open {path}")
            raise sqlite_error(apsw.SQLITE_CANTOPEN, exc) from exc
        self.fd: int | None = fd
        try:
            self._check_regular()  # (O_NONBLOCK: a FIFO is refused here, never waited on)
            if self.main:
                self._lock(readonly)
        except BaseException:
            os.close(fd)
            self.fd = None
            raise
        #: the directory still to be synced after the first sync (SQLite's UNIXFILE_DIRSYNC)
        self.dirsync_pending = create and bool(wanted & _JOURNALS)
        self.level = _LOCK_NONE
        flags[1] = wanted & ~apsw.SQLITE_OPEN_CREATE

    def _check_regular(self) -> None:
        assert self.fd is not None
        info = self._os.fstat(self.fd)
        if not stat.S_ISREG(info.st_mode):
            self.state.note(f"{self.path} is not a regular file")
            raise sqlite_error(apsw.SQLITE_CANTOPEN)

    def _lock(self, readonly: bool) -> None:
        assert self.fd is not None
        lock = self._fcntl
        try:
            lock.flock(self.fd, (lock.LOCK_SH if readonly else lock.LOCK_EX) | lock.LOCK_NB)
        except BlockingIOError as exc:
            self.state.note(f"{self.path} is locked by another connection")
            raise sqlite_error(apsw.SQLITE_BUSY, exc) from exc
        except OSError as exc:
            self.state.failed(exc, f"flock {self.path}")
            raise sqlite_error(apsw.SQLITE_IOERR_LOCK, exc) from exc

    def _fd(self) -> int:
        if self.fd is None or self.state.dead:
            raise sqlite_error(apsw.SQLITE_IOERR_CLOSE)
        return self.fd

    def _call(self, what: str, code: int, call: Callable[..., Any], *args: Any) -> Any:
        """One `os` call; an OSError becomes `code` (SQLITE_FULL when the disk is full)."""
        self.state.check_poisoned(what)
        try:
            return call(*args)
        except OSError as exc:
            self.state.failed(exc, f"{what} {self.path}")
            raise sqlite_error(io_code(exc, code), exc) from exc

    def xRead(self, amount: int, offset: int) -> bytes:
        fd = self._fd()
        parts: list[bytes] = []
        while amount > 0:
            chunk = self._call("read", apsw.SQLITE_IOERR_READ, self._os.pread, fd, amount, offset)
            if not chunk:
                break
            parts.append(chunk)
            amount -= len(chunk)
            offset += len(chunk)
        return b"".join(parts)

    def xWrite(self, data: bytes, offset: int) -> None:
        fd = self._fd()
        view = memoryview(data)
        while view:
            written = self._call(
                "write", apsw.SQLITE_IOERR_WRITE, self._os.pwrite, fd, view, offset
            )
            if written <= 0:
                self.state.note(f"short write on {self.path}")
                raise sqlite_error(apsw.SQLITE_FULL)
            view = view[written:]
            offset += written

    def xSync(self, flags: int) -> None:
        fd = self._fd()
        if self.vfs.sync:
            self._call("fsync", apsw.SQLITE_IOERR_FSYNC, self._os.fsync, fd)
        if self.dirsync_pending:
            self.vfs.fsync_directory(self._os, self.state, posixpath.dirname(self.path))
            self.dirsync_pending = False

    def xTruncate(self, size: int) -> None:
        self._call("ftruncate", apsw.SQLITE_IOERR_TRUNCATE, self._os.ftruncate, self._fd(), size)

    def xFileSize(self) -> int:
        info = self._call("fstat", apsw.SQLITE_IOERR_FSTAT, self._os.fstat, self._fd())
        return int(info.st_size)

    def xClose(self) -> None:
        """Close the descriptor (which releases the flock). Never raises: SQLite can do
        nothing with a failed close, and a descriptor is released either way on Linux."""
        fd, self.fd = self.fd, None
        if fd is None or self.state.dead:  # (a dead process's descriptors died with it)
            return
        try:
            self._os.close(fd)
        except OSError as exc:
            self.state.failed(exc, f"close {self.path}")


class MemoryFile(_Declared):
    """A file held in a bytearray: SQLite's temp files (and the base of `OverlayFile`)."""

    def __init__(self, data: bytearray | None = None, on_close: Callable[[], None] | None = None):
        self.data = data if data is not None else bytearray()
        self.level = _LOCK_NONE
        self._on_close = on_close

    def xRead(self, amount: int, offset: int) -> bytes:
        return bytes(self.data[offset : offset + amount])

    def xWrite(self, data: bytes, offset: int) -> None:
        end = offset + len(data)
        if len(self.data) < offset:
            self.data.extend(b"\0" * (offset - len(self.data)))
        self.data[offset:end] = data

    def xSync(self, flags: int) -> None:
        return None

    def xTruncate(self, size: int) -> None:
        del self.data[size:]

    def xFileSize(self) -> int:
        return len(self.data)

    def xClose(self) -> None:
        if self._on_close is not None:
            self._on_close()


def _name(name: str | apsw.URIFilename | None) -> str | None:
    if name is None or isinstance(name, str):
        return name
    return name.filename()


class _DeterministicVfs(apsw.VFS):
    """What both VFSs share: no base VFS, deterministic randomness and time, no sleep."""

    def __init__(self, name: str, *, makedefault: bool = False) -> None:
        self.vfs_name = name
        self._random = 0
        super().__init__(name, base="", makedefault=makedefault)

    def reseed(self) -> None:
        """Start SQLite's random numbers (journal nonces, salts) over, from this VFS.

        SQLite draws them from one process-wide generator, seeded once from the default
        VFS (the unix one reads /dev/urandom): the bytes of a journal would differ from
        run to run, and with them the crash states. `sqlite3_randomness(0)` makes SQLite
        seed again on next use, from the default VFS, which must then be this one."""
        self._random = 0
        apsw.randomness(0)

    def xRandomness(self, numbytes: int) -> bytes:
        out = b""
        while len(out) < numbytes:
            self._random += 1
            out += hashlib.blake2b(self._random.to_bytes(8, "big"), digest_size=64).digest()
        return out[:numbytes]

    def xSleep(self, microseconds: int) -> int:
        return 0

    def xCurrentTime(self) -> float:
        return _FIXED_TIME_MS / 86_400_000

    def xCurrentTimeInt64(self) -> int:
        return _FIXED_TIME_MS

    def xGetLastError(self) -> tuple[int, str]:
        return (0, "")

    def xFullPathname(self, name: str) -> str:
        """The absolute path with its symbolic links resolved (the journal goes beside
        the real file), as SQLite's unix VFS gives it."""
        return os.path.realpath(name)


class ConnectionState:
    """What one connection's files share: the first OS error behind a failure (what
    failed, with which errno: SQLite's own message says neither) and, for a writer,
    the poisoning that failure sets. Once poisoned, every write, sync, truncate and
    delete fails at once without touching the disk: a writer whose append failed makes
    no further I/O (contract C5.7), not even SQLite's own rollback, which the next start
    does from the journal instead."""

    def __init__(self, *, writer: bool = False, previous: ConnectionState | None = None) -> None:
        self.writer = writer
        #: the process this connection belonged to lost power (`SqliteStateBackend.abandon`):
        #: its files make no OS call at all any more, not even a close
        self.dead = False
        #: the state this one replaced for its path (a refused second open gives it back)
        self.previous = previous
        #: what the connection calls once it is closed or refused (`OsVfs.detach`)
        self.release: Callable[[], None] = _nothing
        self.last_error: tuple[str, OSError | None] | None = None
        self.poisoned: str | None = None

    def note(self, what: str) -> None:
        if self.last_error is None:
            self.last_error = (what, None)

    def failed(self, exc: OSError, what: str) -> None:
        if self.last_error is None or self.last_error[1] is None:
            self.last_error = (what, exc)
        if self.writer and self.poisoned is None:
            self.poisoned = f"{what} failed: {exc.strerror or exc}"

    def check_poisoned(self, what: str) -> None:
        if self.poisoned is not None and what not in ("read", "fstat"):
            self.note(f"{what} refused: the writer is poisoned ({self.poisoned})")
            raise sqlite_error(apsw.SQLITE_IOERR)


def _nothing() -> None:
    return None


#: The suffixes of the files SQLite keeps beside a database.
_BESIDE = ("-journal", "-wal", "-shm")


class OsVfs(_DeterministicVfs):
    """SQLite over Python's `os` (the module docstring says what each method does).

    One per setting (registered once under its name): `sync=False` and
    `dirsync_on_delete=False` make the broken VFSs of the self-test. What is one
    connection's own lives in its `ConnectionState`, found by the database's path: a
    backend calls `attach(path)` before it connects (one writer per path and process:
    the flock sees to that), and a journal finds its database's state by its name."""

    def __init__(
        self,
        name: str,
        *,
        sync: bool = True,
        dirsync_on_delete: bool = True,
        makedefault: bool = False,
    ) -> None:
        self.sync = sync
        self.dirsync_on_delete = dirsync_on_delete
        self._states: dict[str, ConnectionState] = {}
        super().__init__(name, makedefault=makedefault)

    def attach(self, path: str, *, writer: bool) -> ConnectionState:
        """A fresh state for the connection about to open the database at `path`."""
        key = self.xFullPathname(path)
        previous = self._states.get(key)
        if previous is not None:
            previous.previous = None  # (one level: what a refused open gives back)
        state = ConnectionState(writer=writer, previous=previous)
        state.release = functools.partial(self.detach, path, state)
        self._states[key] = state
        return state

    def detach(self, path: str, state: ConnectionState) -> None:
        """The connection of `state` is gone (closed, or refused: a second writer): the
        one before it, still open, gets its files' state back."""
        key = self.xFullPathname(path)
        if self._states.get(key) is state:
            if state.previous is None:
                del self._states[key]
            else:
                self._states[key] = state.previous

    def state_of(self, path: str) -> ConnectionState:
        for suffix in _BESIDE:
            if path.endswith(suffix):
                path = path[: -len(suffix)]
                break
        state = self._states.get(path)
        if state is None:
            state = self._states[path] = ConnectionState()
        return state

    @staticmethod
    def fsync_directory(os_module: Any, state: ConnectionState, directory: str) -> None:
        state.check_poisoned("directory fsync")
        try:
            fd = os_module.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os_module.fsync(fd)
            finally:
                os_module.close(fd)
        except OSError as exc:
            state.failed(exc, f"directory fsync {directory}")
            raise sqlite_error(apsw.SQLITE_IOERR_DIR_FSYNC, exc) from exc

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> Any:
        path = _name(name)
        if path is None:
            flags[1] = flags[0]
            return MemoryFile()
        return OsFile(self, path, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        state = self.state_of(filename)
        if state.dead:
            raise sqlite_error(apsw.SQLITE_IOERR_DELETE)
        state.check_poisoned("unlink")
        try:
            os.unlink(filename)
        except FileNotFoundError as exc:
            raise sqlite_error(apsw.SQLITE_IOERR_DELETE_NOENT, exc) from exc
        except OSError as exc:
            state.failed(exc, f"unlink {filename}")
            raise sqlite_error(apsw.SQLITE_IOERR_DELETE, exc) from exc
        if syncdir and self.dirsync_on_delete:
            self.fsync_directory(os, state, posixpath.dirname(filename))

    def xAccess(self, pathname: str, flags: int) -> bool:
        if flags == apsw.SQLITE_ACCESS_EXISTS:
            return os.path.exists(pathname)
        wanted = os.R_OK | (os.W_OK if flags == apsw.SQLITE_ACCESS_READWRITE else 0)
        return os.access(pathname, wanted)


class OverlayFile(MemoryFile):
    """A file read from a descriptor, with every write kept in memory (copy on write, per
    4096-byte block): SQLite may recover a hot journal through it, and the file on disk
    is never touched. Memory holds only the blocks written (one transaction's pages)."""

    BLOCK = 4096

    def __init__(self, os_module: Any, fd: int) -> None:
        super().__init__()
        self._os = os_module
        self._fd = fd
        self.size = int(os_module.fstat(fd).st_size)
        self.blocks: dict[int, bytearray] = {}

    def _base(self, index: int) -> bytearray:
        block = self.blocks.get(index)
        if block is None:
            start = index * self.BLOCK
            block = bytearray(self._os.pread(self._fd, self.BLOCK, start))
            block.extend(b"\0" * (self.BLOCK - len(block)))
            self.blocks[index] = block
        return block

    def xRead(self, amount: int, offset: int) -> bytes:
        end = min(offset + amount, self.size)
        if end <= offset:
            return b""
        if not self.blocks:
            return bytes(self._os.pread(self._fd, end - offset, offset))
        parts: list[bytes] = []
        position = offset
        while position < end:
            index, within = divmod(position, self.BLOCK)
            take = min(self.BLOCK - within, end - position)
            block = self.blocks.get(index)
            if block is None:
                parts.append(self._os.pread(self._fd, take, position))
            else:
                parts.append(bytes(block[within : within + take]))
            position += take
        return b"".join(parts)

    def xWrite(self, data: bytes, offset: int) -> None:
        position, view = offset, memoryview(data)
        while view:
            index, within = divmod(position, self.BLOCK)
            take = min(self.BLOCK - within, len(view))
            self._base(index)[within : within + take] = view[:take]
            position += take
            view = view[take:]
        self.size = max(self.size, offset + len(data))

    def xTruncate(self, size: int) -> None:
        if size < self.size:
            last = (size + self.BLOCK - 1) // self.BLOCK
            self.blocks = {i: b for i, b in self.blocks.items() if i < last}
            index, within = divmod(size, self.BLOCK)
            if within and index in self.blocks:
                self.blocks[index][within:] = b"\0" * (self.BLOCK - within)
        self.size = size

    def xFileSize(self) -> int:
        return self.size


class OverlayVfs(_DeterministicVfs):
    """The files of `bases` (path -> an open read-only descriptor) through `OverlayFile`s:
    a read-only restore lets SQLite recover a hot journal here, writing nothing on disk.
    A deleted file (the journal, once rolled back) is gone from this VFS only."""

    def __init__(self, name: str, bases: dict[str, int]) -> None:
        self._files: dict[str, MemoryFile] = {
            path: OverlayFile(os, fd) for path, fd in bases.items()
        }
        super().__init__(name)

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> Any:
        path = _name(name)
        flags[1] = flags[0]
        if path is None:
            return MemoryFile()
        found = self._files.get(path)
        if found is None:
            if not flags[0] & apsw.SQLITE_OPEN_CREATE:
                raise sqlite_error(apsw.SQLITE_CANTOPEN)
            found = self._files[path] = MemoryFile()  # (none is expected)
        return found

    def xDelete(self, filename: str, syncdir: bool) -> None:
        if self._files.pop(filename, None) is None:
            raise sqlite_error(apsw.SQLITE_IOERR_DELETE_NOENT)

    def xAccess(self, pathname: str, flags: int) -> bool:
        return pathname in self._files
