"""Interception of the code under test's file-system calls, on top of pyfakefs.

Three hooks, all reporting to the one active `Session` (patching is process-global):

- `CrashOs`, a subclass of pyfakefs's fake `os` module given to the Patcher with
  `modules_to_patch={"os": CrashOs}`: that also catches `from os import fsync`;
- `CrashFcntl`, a fake `fcntl` whose `flock` really excludes (pyfakefs's is a no-op),
  so a second writer on the same file is refused as it would be on Linux;
- file objects made by `open()`, `io.open()`, `os.fdopen()` and `pathlib` all come out
  of `FakeFileOpen.call`, which is wrapped while a session runs: the returned pyfakefs
  wrapper gets its class swapped to a subclass whose write/flush/close/truncate/read
  report to the session.

This module deliberately imports names *from* `os` rather than the module: pyfakefs
replaces every module-level reference to the `os` module while patching, and the
layer's own bookkeeping must not go through (or be recorded by) the fake.
"""

from __future__ import annotations

import errno as errno_module
import posixpath
from bisect import bisect_right
from collections.abc import Callable
from fcntl import LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN
from os import (
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_DSYNC,
    O_EXCL,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_SYNC,
    O_TRUNC,
    O_WRONLY,
    SEEK_CUR,
    SEEK_SET,
    fsdecode,
    fspath,
    strerror,
    umask,
)
from typing import Any, ClassVar, NoReturn

from pyfakefs import fake_os
from pyfakefs.fake_file import (
    FakeBinaryFileWrapper,
    FakeDirectory,
    FakeDirWrapper,
    FakeFile,
    FakeFileWrapper,
    FakeTextFileWrapper,
)
from pyfakefs.fake_filesystem import FakeFilesystem
from pyfakefs.fake_io import FakeFcntlModule
from pyfakefs.fake_open import FakeFileOpen

from crashkit.faults.model import DurabilityModel, Snapshot
from crashkit.faults.plan import FaultInjector, FaultPlan, FaultRule, FsyncModel
from crashkit.faults.trace import Op

_FLAG_NAMES: tuple[tuple[str, int], ...] = (
    ("O_APPEND", O_APPEND),
    ("O_CREAT", O_CREAT),
    ("O_EXCL", O_EXCL),
    ("O_TRUNC", O_TRUNC),
    ("O_DIRECTORY", O_DIRECTORY),
    ("O_NONBLOCK", O_NONBLOCK),
    ("O_CLOEXEC", O_CLOEXEC),
    ("O_SYNC", O_SYNC),
    ("O_DSYNC", O_DSYNC),
)


def _read_umask() -> int:
    mask = umask(0)
    umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: the process umask does not change under test


def flags_text(flags: int) -> str:
    """`O_WRONLY|O_APPEND|O_CREAT` for an `os.open` flags value."""
    access = flags & O_ACCMODE
    parts = ["O_RDWR" if access == O_RDWR else "O_WRONLY" if access == O_WRONLY else "O_RDONLY"]
    parts += [name for name, value in _FLAG_NAMES if value and flags & value == value]
    return "|".join(parts)


def flock_text(operation: int) -> str:
    """`LOCK_EX|LOCK_NB` for an `fcntl.flock` operation."""
    names = [
        n
        for n, v in (("LOCK_SH", LOCK_SH), ("LOCK_EX", LOCK_EX), ("LOCK_UN", LOCK_UN))
        if operation & v
    ]
    if operation & LOCK_NB:
        names.append("LOCK_NB")
    return "|".join(names) or str(operation)


def errno_name(exc: OSError) -> str:
    code = exc.errno
    if code is None:
        return type(exc).__name__
    return errno_module.errorcode.get(code, str(code))


def _raise_injected(rule: FaultRule, path: str) -> NoReturn:
    code = rule.code
    raise OSError(code, strerror(code), path)


class Session:
    """One run's interception state: fault counters, durability model, trace, locks."""

    generation: ClassVar[int] = 0

    def __init__(
        self, fs: FakeFilesystem, plan: FaultPlan, model: FsyncModel, record: bool
    ) -> None:
        Session.generation += 1
        self.gen = Session.generation
        self.fs = fs
        self.injector = FaultInjector(plan)
        self.model = DurabilityModel(model)
        self.record = record
        self.trace: list[Op] = []
        self.points: list[int] = []
        self.snapshots: dict[int, Snapshot] = {}
        self.initial: Snapshot | None = None
        self.final: Snapshot | None = None
        # flock table: inode -> {id(open file description): (mode, description)}
        self.locks: dict[int, dict[int, tuple[int, object]]] = {}

    # -- bookkeeping ---------------------------------------------------------------------

    def fault(self, op: str, *paths: str) -> FaultRule | None:
        return self.injector.check(op, *paths)

    def log(
        self,
        op: str,
        path: str,
        detail: str = "",
        error: str | None = None,
        *,
        mutating: bool = False,
        injected: bool = False,
    ) -> None:
        if not self.record:
            return
        index = len(self.trace)
        self.trace.append(Op(index, op, path, detail, error, mutating, injected))
        if mutating:
            self.points.append(index)
            self.snapshots[index] = self.model.snapshot(self.fs.root)

    def snapshot_at(self, point: int) -> Snapshot:
        """The state just after op `point` (ops that change nothing share a snapshot)."""
        i = bisect_right(self.points, point) - 1
        if i >= 0:
            return self.snapshots[self.points[i]]
        assert self.initial is not None
        return self.initial

    def abspath(self, path: Any, dir_fd: int | None = None) -> str:
        raw = fspath(path)
        text: str = fsdecode(raw) if isinstance(raw, bytes) else str(raw)
        if dir_fd is not None and not text.startswith("/"):
            text = f"{handle_path(self.fs.get_open_file(dir_fd))}/{text}"
        if (
            text.startswith("/")
            and "//" not in text
            and "/." not in text
            and (len(text) == 1 or not text.endswith("/"))
        ):
            return text
        return str(self.fs.absnormpath(text))

    # -- flock ---------------------------------------------------------------------------

    def flock(self, handle: Any, operation: int, path: str) -> None:
        ino = handle.get_object().stat_result.st_ino
        key = id(handle)
        table = self.locks.setdefault(ino, {})
        if operation & LOCK_UN:
            table.pop(key, None)
            return
        mode = LOCK_EX if operation & LOCK_EX else LOCK_SH
        for other, (held, _) in table.items():
            if other != key and (mode == LOCK_EX or held == LOCK_EX):
                if operation & LOCK_NB:
                    code = errno_module.EWOULDBLOCK
                    raise BlockingIOError(code, strerror(code), path)
                code = errno_module.EDEADLK
                raise OSError(code, f"{strerror(code)} (flock would block forever)", path)
        table[key] = (mode, handle)

    def release_locks(self) -> None:
        """Drop the locks of handles no descriptor refers to any more (after a close).

        Pruning by liveness rather than by the closed handle also covers `os.fdopen`
        and `os.dup`, whose descriptors share the locked handle.
        """
        if not self.locks:
            return
        alive = {id(h) for entry in self.fs.open_files if entry for h in entry}
        for ino in list(self.locks):
            table = self.locks[ino]
            for key in [key for key in table if key not in alive]:
                del table[key]
            if not table:
                del self.locks[ino]


class _Active:
    session: Session | None = None


def active_session() -> Session | None:
    return _Active.session


def set_active_session(session: Session | None) -> None:
    _Active.session = session
    if session is None:
        FakeFileOpen.call = _ORIGINAL_CALL  # type: ignore[method-assign]
    else:
        FakeFileOpen.call = _hooked_call  # type: ignore[method-assign]


def _session_for(fs: FakeFilesystem) -> Session | None:
    session = _Active.session
    if session is None or session.fs is not fs:
        return None
    return session


def handle_path(handle: Any) -> str:
    path = getattr(handle, "_crash_path", None)
    if isinstance(path, str):
        return path
    return str(getattr(handle, "file_path", "?"))


# -- the fake os module -------------------------------------------------------------------


class CrashOs(fake_os.FakeOsModule):
    """pyfakefs's fake `os`, reporting every I/O call to the active session.

    Also fills pyfakefs gaps a backend would trip on: lseek's return value,
    pread/pwrite (else a fake descriptor number reaches the real os), and closing
    one of several `os.dup` copies.
    """

    _keep_mode = False

    def chmod(
        self,
        path: Any,
        mode: int,
        *,
        dir_fd: int | None = None,
        follow_symlinks: bool | None = None,
    ) -> None:
        if self._keep_mode:
            return
        kwargs: dict[str, Any] = {"dir_fd": dir_fd}
        if follow_symlinks is not None:
            kwargs["follow_symlinks"] = follow_symlinks
        super().chmod(path, mode, **kwargs)

    @staticmethod
    def dir() -> list[str]:
        # also patch `from os import ftruncate` & co, which pyfakefs leaves to the real os
        names = fake_os.FakeOsModule.dir()
        extra = ("ftruncate", "truncate", "fdopen", "sync", "pread", "pwrite")
        return [*names, *(n for n in extra if n not in names)]

    def _handle(self, session: Session, op: str, fd: int) -> Any:
        try:
            return self.filesystem.get_open_file(fd)
        except OSError as exc:
            session.log(op, f"<fd {fd}>", error=errno_name(exc))
            raise

    def open(
        self,
        path: Any,
        flags: int,
        mode: int | None = None,
        *,
        dir_fd: int | None = None,
    ) -> int:
        s = _session_for(self.filesystem)
        if s is None:
            return super().open(path, flags, mode, dir_fd=dir_fd)
        abspath = s.abspath(path, dir_fd)
        detail = flags_text(flags) if s.record else ""
        rule = s.fault("open", abspath)
        if rule is not None:
            s.log("open", abspath, detail, rule.errno, injected=True)
            _raise_injected(rule, abspath)
        if flags & O_DIRECTORY and flags & O_ACCMODE == O_RDONLY and not flags & O_CREAT:
            fd = self._open_directory(abspath)
            if fd is not None:  # (None: not a plain directory; pyfakefs decides below)
                s.log("open", abspath, detail)
                return fd
        if mode is None:  # what pyfakefs would compute, without its two umask syscalls
            mode = 0o777 & ~_UMASK
        before = self.filesystem.last_ino
        # pyfakefs chmods the file on every os.open, existing ones too (POSIX only sets the
        # mode of a file the call creates); skipping it when nothing can be created is
        # both more faithful and faster.
        self._keep_mode = not flags & O_CREAT
        try:
            fd = super().open(path, flags, mode, dir_fd=dir_fd)
        except OSError as exc:
            s.log("open", abspath, detail, errno_name(exc))
            raise
        finally:
            self._keep_mode = False
        handle = self.filesystem.get_open_file(fd)
        handle._crash_path = abspath  # type: ignore[union-attr]
        if flags & O_APPEND and flags & O_ACCMODE == O_RDWR and isinstance(handle, FakeFileWrapper):
            # POSIX: O_APPEND moves each write to the end, but the offset starts at 0, so
            # the descriptor reads from the start. pyfakefs starts it at the end.
            handle.seek(0)
        created = self.filesystem.last_ino > before
        truncated = False
        if (
            isinstance(handle, FakeFileWrapper)
            and flags & O_TRUNC
            and flags & O_ACCMODE != O_RDONLY
        ):
            s.model.truncated(handle.get_object(), 0)
            truncated = True
        s.log("open", abspath, detail, mutating=created or truncated)
        return fd

    def _open_directory(self, abspath: str) -> int | None:
        """The directory-fd open (for a directory fsync) without pyfakefs's general path:
        same result, a third of the cost. None when `abspath` is not a directory."""
        try:
            obj = self.filesystem.resolve(abspath)
        except OSError:
            return None
        if not isinstance(obj, FakeDirectory):
            return None
        wrapper = FakeDirWrapper(obj, abspath, self.filesystem)
        fd = self.filesystem.add_open_file(wrapper)
        wrapper.filedes = fd
        wrapper._crash_path = abspath  # type: ignore[attr-defined]
        return fd

    def write(self, fd: int, contents: bytes) -> int:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().write(fd, contents)
        handle = self._handle(s, "write", fd)
        if not isinstance(handle, FakeFileWrapper | FakeDirWrapper):
            return super().write(fd, contents)
        path = handle_path(handle)
        requested = len(contents)
        rule = s.fault("write", path)
        if rule is not None:
            if rule.short_write is None:
                s.log("write", path, f"{requested} bytes", rule.errno, injected=True)
                _raise_injected(rule, path)
            contents = contents[: rule.short_write]
        try:
            written = super().write(fd, contents)
        except OSError as exc:
            s.log("write", path, f"{requested} bytes", errno_name(exc))
            raise
        detail = f"{written} bytes"
        if rule is not None:
            detail = f"short write: {written} of {requested} bytes"
        s.log("write", path, detail, mutating=True, injected=rule is not None)
        return written

    def read(self, fd: int, n: int) -> bytes:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().read(fd, n)
        handle = self._handle(s, "read", fd)
        if not isinstance(handle, FakeFileWrapper | FakeDirWrapper):
            return super().read(fd, n)
        path = handle_path(handle)
        rule = s.fault("read", path)
        if rule is not None:
            s.log("read", path, f"up to {n} bytes", rule.errno, injected=True)
            _raise_injected(rule, path)
        try:
            data = super().read(fd, n)
        except OSError as exc:
            s.log("read", path, f"up to {n} bytes", errno_name(exc))
            raise
        s.log("read", path, f"{len(data)} bytes")
        return data

    def _close_fd(self, fd: int) -> None:
        """Close one descriptor; `os.dup` copies share the handle and must stay open.

        pyfakefs closes the shared handle itself, which leaves the copies unusable and
        their slots never freed.
        """
        fs = self.filesystem
        handle = fs.get_open_file(fd)
        others = [i for i, e in enumerate(fs.open_files) if e and i != fd and handle in e]
        if not others:
            return super().close(fd)
        fs.close_open_file(fd)
        if getattr(handle, "filedes", None) == fd:
            handle.filedes = others[0]

    def close(self, fd: int) -> None:
        s = _session_for(self.filesystem)
        if not isinstance(fd, int) or fd < 3:
            return super().close(fd)
        if s is None:
            return self._close_fd(fd)
        handle = self._handle(s, "close", fd)
        path = handle_path(handle)
        rule = s.fault("close", path)
        try:
            self._close_fd(fd)
        except OSError as exc:
            s.log("close", path, error=errno_name(exc))
            raise
        finally:
            s.release_locks()
        if rule is not None:  # like close(2): the descriptor is gone, the error reported
            s.log("close", path, error=rule.errno, injected=True)
            _raise_injected(rule, path)
        s.log("close", path)

    def _sync(self, op: str, fd: Any, original: Callable[[int], None]) -> None:
        s = _session_for(self.filesystem)
        if s is not None and not isinstance(fd, int) and hasattr(fd, "fileno"):
            fd = fd.fileno()
        if s is None or not isinstance(fd, int) or fd < 3:
            return original(fd)
        handle = self._handle(s, op, fd)
        is_dir = isinstance(handle, FakeDirWrapper)
        if not is_dir and not isinstance(handle, FakeFileWrapper):
            return original(fd)
        kind = "dirfsync" if is_dir else op
        detail = op if is_dir else ""
        path = handle_path(handle)
        obj = handle.get_object()
        rule = s.fault(kind, path)
        if rule is not None:
            if not is_dir:
                s.model.fsync_failed(obj)
            s.log(kind, path, detail, rule.errno, mutating=True, injected=True)
            _raise_injected(rule, path)
        try:
            original(fd)
        except OSError as exc:
            s.log(kind, path, detail, errno_name(exc))
            raise
        if isinstance(obj, FakeDirectory):
            s.model.dir_synced(obj)
        else:
            s.model.fsync_ok(obj)
        s.log(kind, path, detail, mutating=True)

    def fsync(self, fd: int) -> None:
        self._sync("fsync", fd, super().fsync)

    def fdatasync(self, fd: int) -> None:
        self._sync("fdatasync", fd, super().fdatasync)

    def sync(self) -> None:
        """sync(2): everything becomes durable (it cannot fail)."""
        s = _session_for(self.filesystem)
        if s is None:
            return
        s.model.sync_all(self.filesystem.root)
        s.log("sync", "/", mutating=True)

    def ftruncate(self, fd: int, length: int) -> None:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().ftruncate(fd, length)
        handle = self._handle(s, "ftruncate", fd)
        path = handle_path(handle)
        self._truncate(
            s,
            path,
            f"to {length} bytes",
            length,
            lambda: super(CrashOs, self).ftruncate(fd, length),
            handle.get_object,
        )

    def truncate(self, path: Any, length: int) -> None:
        s = _session_for(self.filesystem)
        if s is None:
            return super().truncate(path, length)
        if isinstance(path, int):
            return self.ftruncate(path, length)
        abspath = s.abspath(path)
        self._truncate(
            s,
            abspath,
            f"truncate() to {length} bytes",
            length,
            lambda: super(CrashOs, self).truncate(path, length),
            lambda: self.filesystem.resolve(abspath),
        )

    @staticmethod
    def _truncate(
        s: Session,
        path: str,
        detail: str,
        length: int,
        call: Callable[[], None],
        target: Callable[[], FakeFile],
    ) -> None:
        rule = s.fault("ftruncate", path)
        if rule is not None:
            s.log("ftruncate", path, detail, rule.errno, injected=True)
            _raise_injected(rule, path)
        try:
            call()
        except OSError as exc:
            s.log("ftruncate", path, detail, errno_name(exc))
            raise
        s.model.truncated(target(), length)
        s.log("ftruncate", path, detail, mutating=True)

    def _move(
        self,
        op: str,
        src: Any,
        dst: Any,
        src_dir_fd: int | None,
        dst_dir_fd: int | None,
        call: Callable[[], None],
    ) -> None:
        s = _session_for(self.filesystem)
        if s is None:
            return call()
        a, b = s.abspath(src, src_dir_fd), s.abspath(dst, dst_dir_fd)
        rule = s.fault(op, a, b)
        if rule is not None:
            s.log(op, a, f"-> {b}", rule.errno, injected=True)
            _raise_injected(rule, a)
        try:
            call()
        except OSError as exc:
            s.log(op, a, f"-> {b}", errno_name(exc))
            raise
        s.log(op, a, f"-> {b}", mutating=True)

    def rename(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        self._move(
            "rename",
            src,
            dst,
            src_dir_fd,
            dst_dir_fd,
            lambda: super(CrashOs, self).rename(
                src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd
            ),
        )

    def replace(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        self._move(
            "replace",
            src,
            dst,
            src_dir_fd,
            dst_dir_fd,
            lambda: super(CrashOs, self).replace(
                src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd
            ),
        )

    def _path_op(self, op: str, path: Any, dir_fd: int | None, call: Callable[[], None]) -> None:
        s = _session_for(self.filesystem)
        if s is None:
            return call()
        abspath = s.abspath(path, dir_fd)
        rule = s.fault(op, abspath)
        if rule is not None:
            s.log(op, abspath, error=rule.errno, injected=True)
            _raise_injected(rule, abspath)
        try:
            call()
        except OSError as exc:
            s.log(op, abspath, error=errno_name(exc))
            raise
        s.log(op, abspath, mutating=True)

    def unlink(self, path: Any, *, dir_fd: int | None = None) -> None:
        self._path_op(
            "unlink", path, dir_fd, lambda: super(CrashOs, self).unlink(path, dir_fd=dir_fd)
        )

    def remove(self, path: Any, dir_fd: int | None = None) -> None:
        self._path_op(
            "unlink", path, dir_fd, lambda: super(CrashOs, self).remove(path, dir_fd=dir_fd)
        )

    def rmdir(self, path: Any, *, dir_fd: int | None = None) -> None:
        self._path_op(
            "rmdir", path, dir_fd, lambda: super(CrashOs, self).rmdir(path, dir_fd=dir_fd)
        )

    def mkdir(self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        self._path_op(
            "mkdir", path, dir_fd, lambda: super(CrashOs, self).mkdir(path, mode, dir_fd=dir_fd)
        )

    def removedirs(self, name: Any) -> None:
        """Like CPython's: every directory removed is an `rmdir` op of its own."""
        s = _session_for(self.filesystem)
        if s is None:
            return super().removedirs(name)
        head = s.abspath(name)
        self.rmdir(head)
        head, tail = posixpath.split(head)
        while head and tail:
            try:
                self.rmdir(head)
            except OSError:
                break
            head, tail = posixpath.split(head)

    def lseek(self, fd: int, pos: int, how: int) -> int:
        """pyfakefs returns None; os.lseek returns the new offset (sizes are read so)."""
        super().lseek(fd, pos, how)  # EBADF unless a regular file's descriptor
        handle = self.filesystem.get_open_file(fd)
        return int(handle.tell()) if isinstance(handle, FakeFileWrapper) else 0

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        """pyfakefs has none: without it the call would reach a *real* descriptor."""
        pos = self.lseek(fd, 0, SEEK_CUR)
        self.lseek(fd, offset, SEEK_SET)
        try:
            return self.read(fd, n)
        finally:
            self.lseek(fd, pos, SEEK_SET)

    def pwrite(self, fd: int, contents: bytes, offset: int) -> int:
        """pyfakefs has none: without it the call would reach a *real* descriptor."""
        pos = self.lseek(fd, 0, SEEK_CUR)
        self.lseek(fd, offset, SEEK_SET)
        try:
            return self.write(fd, contents)
        finally:
            self.lseek(fd, pos, SEEK_SET)


_OS_OVERRIDES = (
    "open",
    "write",
    "read",
    "close",
    "fsync",
    "fdatasync",
    "sync",
    "ftruncate",
    "truncate",
    "rename",
    "replace",
    "unlink",
    "remove",
    "rmdir",
    "mkdir",
    "removedirs",
    "lseek",
    "pread",
    "pwrite",
)
for _name in _OS_OVERRIDES:
    # like pyfakefs's own methods: calls from skipped modules go to the real os
    setattr(CrashOs, _name, fake_os.handle_original_call(getattr(CrashOs, _name)))


# -- the fake fcntl module ----------------------------------------------------------------


class CrashFcntl(FakeFcntlModule):
    """pyfakefs's fake `fcntl` with a working `flock` (exclusive/shared, LOCK_NB)."""

    def flock(self, fd: Any, operation: int) -> None:
        s = _session_for(self.filesystem)
        if s is not None and not isinstance(fd, int) and hasattr(fd, "fileno"):
            fd = fd.fileno()
        if s is None or not isinstance(fd, int):
            return super().flock(fd, operation)
        try:
            handle = self.filesystem.get_open_file(fd)
        except OSError as exc:
            s.log("flock", f"<fd {fd}>", error=errno_name(exc))
            raise
        path = handle_path(handle)
        detail = flock_text(operation) if s.record else ""
        rule = s.fault("flock", path)
        if rule is not None:
            s.log("flock", path, detail, rule.errno, injected=True)
            _raise_injected(rule, path)
        try:
            s.flock(handle, operation, path)
        except OSError as exc:
            s.log("flock", path, detail, errno_name(exc))
            raise
        s.log("flock", path, detail)


# -- file objects (open(), io.open(), os.fdopen(), pathlib) --------------------------------

_HOOKED = frozenset(
    {
        "write",
        "writelines",
        "flush",
        "close",
        "truncate",
        "read",
        "read1",
        "readline",
        "readlines",
        "readinto",
        "readinto1",
        "seek",
        "tell",
    }
)


def _file_session(f: Any) -> Session | None:
    """The session that owns file object `f`, unless `f` is inside one of its own calls."""
    s = _Active.session
    d = f.__dict__
    if s is None or d.get("_crash_gen") != s.gen or d.get("_crash_busy"):
        return None
    return s


class _Busy:
    """Marks a file object as inside a hooked call: its internal calls are not ops."""

    __slots__ = ("d",)

    def __init__(self, f: Any) -> None:
        self.d = f.__dict__

    def __enter__(self) -> None:
        self.d["_crash_busy"] = True

    def __exit__(self, *exc: object) -> None:
        self.d["_crash_busy"] = False


def _file_write(f: Any, data: Any) -> Any:
    orig = FakeFileWrapper.__getattr__(f, "write")
    s = _file_session(f)
    if s is None:
        return orig(data)
    path: str = f.__dict__["_crash_path"]
    unit = "bytes" if f.__dict__.get("_binary") else "chars"
    requested = len(data)
    rule = s.fault("write", path)
    if rule is not None:
        if rule.short_write is None:
            s.log("write", path, f"{requested} {unit}", rule.errno, injected=True)
            _raise_injected(rule, path)
        data = data[: rule.short_write]
    try:
        with _Busy(f):
            result = orig(data)
    except OSError as exc:
        s.log("write", path, f"{requested} {unit}", errno_name(exc))
        raise
    if rule is not None:
        s.log(
            "write",
            path,
            f"short write: {len(data)} of {requested} {unit}",
            mutating=True,
            injected=True,
        )
        return len(data)
    s.log("write", path, f"{requested} {unit}", mutating=True)
    return result


def _file_flush(f: Any) -> None:
    s = _file_session(f)
    if s is None:
        return FakeFileWrapper.flush(f)
    path: str = f.__dict__["_crash_path"]
    rule = s.fault("flush", path)
    if rule is not None:
        s.log("flush", path, error=rule.errno, injected=True)
        _raise_injected(rule, path)
    obj = f.__dict__["file_object"]
    before = obj.byte_contents
    try:
        with _Busy(f):
            FakeFileWrapper.flush(f)
    except OSError as exc:
        s.log("flush", path, error=errno_name(exc))
        raise
    s.log("flush", path, mutating=obj.byte_contents is not before)


def _file_close(f: Any) -> None:
    s = _file_session(f)
    if s is None or not FakeFileWrapper._is_open(f):
        return FakeFileWrapper.close(f)
    path: str = f.__dict__["_crash_path"]
    rule = s.fault("close", path)
    obj = f.__dict__["file_object"]
    before = obj.byte_contents
    try:
        with _Busy(f):
            FakeFileWrapper.close(f)
    except OSError as exc:
        s.log("close", path, error=errno_name(exc), mutating=obj.byte_contents is not before)
        raise
    finally:
        s.release_locks()
    changed = obj.byte_contents is not before
    if rule is not None:  # the file is closed (buffered bytes flushed); the error reported
        s.log("close", path, error=rule.errno, mutating=changed, injected=True)
        _raise_injected(rule, path)
    s.log("close", path, mutating=changed)


def _file_truncate(f: Any, args: tuple[Any, ...]) -> int:
    orig = FakeFileWrapper.__getattr__(f, "truncate")
    s = _file_session(f)
    if s is None:
        return int(orig(*args))
    path: str = f.__dict__["_crash_path"]
    rule = s.fault("ftruncate", path)
    if rule is not None:
        s.log("ftruncate", path, "truncate()", rule.errno, injected=True)
        _raise_injected(rule, path)
    try:
        with _Busy(f):
            size = int(orig(*args))
    except OSError as exc:
        s.log("ftruncate", path, "truncate()", errno_name(exc))
        raise
    s.model.truncated(f.__dict__["file_object"], size)
    s.log("ftruncate", path, f"truncate() to {size}", mutating=True)
    return size


def _file_read(f: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    s = _file_session(f)
    if s is None:
        return FakeFileWrapper.__getattr__(f, name)(*args, **kwargs)
    path: str = f.__dict__["_crash_path"]
    rule = s.fault("read", path)
    if rule is not None:
        s.log("read", path, f"{name}()", rule.errno, injected=True)
        _raise_injected(rule, path)
    try:
        with _Busy(f):
            result = FakeFileWrapper.__getattr__(f, name)(*args, **kwargs)
    except OSError as exc:
        s.log("read", path, f"{name}()", errno_name(exc))
        raise
    s.log("read", path, f"{name}()")
    return result


def _file_quiet(f: Any, name: str, args: tuple[Any, ...]) -> Any:
    """seek/tell: not ops, but their internal flush must not count as one either."""
    method = getattr(FakeFileWrapper, name)
    if _file_session(f) is None:
        return method(f, *args)
    with _Busy(f):
        return method(f, *args)


class _CrashFile:
    """Mixin for pyfakefs file wrappers: routes I/O methods through the session."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name in _HOOKED:
            return object.__getattribute__(self, name)
        return super().__getattribute__(name)

    def write(self, data: Any) -> Any:
        return _file_write(self, data)

    def writelines(self, lines: Any) -> None:
        items = list(lines)
        joined: Any = (
            b"".join(items)
            if items and isinstance(items[0], bytes | bytearray)
            else ("".join(items))
        )
        _file_write(self, joined)

    def flush(self) -> None:
        _file_flush(self)

    def close(self) -> None:
        _file_close(self)

    def truncate(self, *args: Any) -> int:
        return _file_truncate(self, args)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "read", args, kwargs)

    def read1(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "read1", args, kwargs)

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "readline", args, kwargs)

    def readlines(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "readlines", args, kwargs)

    def readinto(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "readinto", args, kwargs)

    def readinto1(self, *args: Any, **kwargs: Any) -> Any:
        return _file_read(self, "readinto1", args, kwargs)

    def seek(self, *args: Any) -> Any:
        return _file_quiet(self, "seek", args)

    def tell(self) -> Any:
        return _file_quiet(self, "tell", ())

    def __iter__(self) -> Any:
        s = _file_session(self)
        if s is not None:
            path: str = object.__getattribute__(self, "__dict__")["_crash_path"]
            rule = s.fault("read", path)
            if rule is not None:
                s.log("read", path, "iteration", rule.errno, injected=True)
                _raise_injected(rule, path)
            s.log("read", path, "iteration")
        return FakeFileWrapper.__iter__(self)  # type: ignore[arg-type]


class CrashBinaryFile(_CrashFile, FakeBinaryFileWrapper):  # type: ignore[misc]
    """A binary file object of the code under test."""

    __slots__ = ()


class CrashTextFile(_CrashFile, FakeTextFileWrapper):  # type: ignore[misc]
    """A text file object of the code under test."""

    __slots__ = ()


_ORIGINAL_CALL = FakeFileOpen.call


def _hooked_call(
    self: FakeFileOpen,
    file_: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
    open_modes: Any = None,
) -> Any:
    """`FakeFileOpen.call` while a session runs: fault, record, and hook the file object."""
    s = _Active.session

    def call() -> Any:
        return _ORIGINAL_CALL(
            self, file_, mode, buffering, encoding, errors, newline, closefd, opener, open_modes
        )

    if s is None or self.raw_io or self.filesystem is not s.fs:
        return call()
    fs = s.fs
    if isinstance(file_, int):
        try:
            path = handle_path(fs.get_open_file(file_))
        except OSError:
            return call()
    else:
        path = s.abspath(file_)
    # os.fdopen wraps a descriptor (its os.open was the op); an opener other than
    # pathlib's does its own os.open (recorded there)
    own = not isinstance(file_, int) and (
        opener is None or getattr(opener, "__module__", "") in ("pathlib", "pathlib._local")
    )
    if own:
        rule = s.fault("open", path)
        if rule is not None:
            s.log("open", path, f"mode {mode!r}", rule.errno, injected=True)
            _raise_injected(rule, path)
    before = fs.last_ino
    try:
        wrapper = call()
    except OSError as exc:
        if own:
            s.log("open", path, f"mode {mode!r}", errno_name(exc))
        raise
    if isinstance(wrapper, FakeBinaryFileWrapper):
        wrapper.__class__ = CrashBinaryFile
    elif isinstance(wrapper, FakeTextFileWrapper):
        wrapper.__class__ = CrashTextFile
    else:
        return wrapper
    d = wrapper.__dict__
    d["_crash_path"] = path
    d["_crash_gen"] = s.gen
    d["_crash_busy"] = False
    created = fs.last_ino > before
    truncated = wrapper.open_modes.truncate and wrapper.open_modes.can_write
    if truncated:
        s.model.truncated(wrapper.file_object, 0)
    if own:
        s.log("open", path, f"mode {mode!r}", mutating=created or truncated)
    return wrapper
