"""Interception of the code under test's file-system calls, on top of pyfakefs.

This is where the fault model meets the code under test: every call below is counted
against the fault plan (and may fail with the rule's errno instead of running), runs on
the fake file system, updates the durability model, and is recorded as one `Op`.

Intercepted (recorded and faultable; `crashkit.faults.ops.OpKind` names them):

- `os`: open (files and directory descriptors), read, write, pread, pwrite, close,
  fsync, fdatasync (a directory's fsync is the op `dirfsync`), ftruncate, truncate,
  posix_fallocate (when it grows the file: an `ftruncate`), rename, replace, unlink,
  remove, mkdir (also each directory os.makedirs creates), rmdir, removedirs (one `rmdir`
  per directory), sync (recorded, cannot fail), link and symlink (each the `open` that
  creates the new name, as the FUSE recorder records them: a hard link is one more
  entry for the inode, a symlink an inode whose target is durable with its entry; both
  durable once their folder is synced, `crashkit.faults.model`);
- `fcntl.flock`, which really excludes here (pyfakefs's is a no-op), so a second
  writer on the same file is refused as on Linux;
- file objects from `open()`, `io.open()`, `os.fdopen()` and `pathlib`: write,
  writelines, flush, close, truncate, the read methods and iteration. `seek`/`tell`
  are not ops, but their internal flush is not recorded as one either.

Wherever the code under test holds them: as the module's own names (`import os as _os`,
`from os import replace`: pyfakefs patches those) and as a class's attributes
(`dbm.dumb`'s `_Database._os = os`, `_Database._io = io`, a `staticmethod(os.open)`:
`crashkit.faults._pyfakefs.ClassAliases`). So pure-Python standard-library storage
(`dbm.dumb` and `shelve` over it, `json`/`pickle` to a file plus `os.replace`, `tempfile`)
runs here whole.

Passed through (answered by pyfakefs on the fake disk, neither recorded nor faultable,
never crash points), because they change no byte and no name a crash state holds:

- metadata: `chmod`, `fchmod`, `lchmod`, `chown`, `fchown`, `utime`, the xattr calls
  (modes, owners and times are not part of a crash state: a restarted program finds
  the file's content and names, not its timestamps);
- `posix_fadvise` (advice only; the descriptor is checked);
- lookups: `stat`/`lstat`/`fstat`, `listdir`/`scandir`, `readlink`, `access`,
  `os.path.*`.

NOT intercepted (neither recorded nor faultable, and invisible to the durability model):

- `mmap`, `os.writev`/`readv`, `os.sendfile`, `os.copy_file_range`, `os.lockf`:
  pyfakefs does not fake them, so they reach the *real* os with a fake descriptor
  number (EBADF at best, another real file at worst);
- I/O done in C (the `sqlite3` module, C extensions, `dbm.gnu`/`dbm.ndbm`): it goes to
  the real disk (`crashkit.faults.escape` notices it).

How: `CrashOs`, a subclass of pyfakefs's fake `os` given to the Patcher with
`modules_to_patch={"os": CrashOs}` (which also catches `from os import fsync`);
`CrashFcntl`, a fake `fcntl`; and a hook on pyfakefs's one open() entry point that
swaps the returned wrapper's class to `CrashBinaryFile`/`CrashTextFile`. All report to
the one active `Session` (patching is process-global). Every intercepted call goes
through `Session.check` / `Session.attempt` / `Session.run`: count the call against the
plan, record and raise an injected error, call pyfakefs, record and re-raise its
OSError; each call then records its success with what is special about it.

This module deliberately imports names *from* `os` rather than the module: pyfakefs
replaces every module-level reference to the `os` module while patching, and the
layer's own bookkeeping must not go through (or be recorded by) the fake.
"""

from __future__ import annotations

import errno as errno_module
import functools
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
    fsdecode,
    fspath,
    strerror,
    umask,
)
from typing import Any, ClassVar, NoReturn, TypeVar

from crashkit.faults._pyfakefs import (
    FakeBinaryFileWrapper,
    FakeDirectory,
    FakeDirWrapper,
    FakeFcntlModule,
    FakeFilesystem,
    FakeFileWrapper,
    FakeOsModule,
    FakeTextFileWrapper,
    byte_contents,
    close_shared_descriptor,
    hook_file_open,
    inode,
    is_binary,
    last_inode,
    live_handle_ids,
    open_directory,
    open_file,
    positioned_read,
    positioned_write,
    retype_raw_handle,
    retype_wrapper,
    route_skipped_modules,
    truncated,
    truncates_on_open,
    wrapped_file,
    wrapper_attr,
    wrapper_getattribute,
    wrapper_is_open,
)
from crashkit.faults.model import DurabilityModel, Snapshot
from crashkit.faults.ops import OpKind
from crashkit.faults.plan import FaultInjector, FaultPlan, FaultRule, FsyncModel
from crashkit.faults.trace import Op

T = TypeVar("T")

# module-level names: a global lookup is cheaper than an enum attribute on the hot path
OPEN, WRITE, FLUSH, READ, CLOSE = OpKind.OPEN, OpKind.WRITE, OpKind.FLUSH, OpKind.READ, OpKind.CLOSE
FSYNC, FDATASYNC, DIRFSYNC, SYNC = OpKind.FSYNC, OpKind.FDATASYNC, OpKind.DIRFSYNC, OpKind.SYNC
FTRUNCATE, RENAME, REPLACE, FLOCK = OpKind.FTRUNCATE, OpKind.RENAME, OpKind.REPLACE, OpKind.FLOCK
UNLINK, MKDIR, RMDIR = OpKind.UNLINK, OpKind.MKDIR, OpKind.RMDIR

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

    # -- the one fault/record sequence ---------------------------------------------------
    #
    # An intercepted call is: `check` (count it against the plan; an injected error is
    # recorded and raised), `attempt` (call pyfakefs; its OSError is recorded and
    # re-raised), then `log` of its success with what is special about it. `run` is
    # `check` + `attempt`. Where an injected fault is not simply "raise instead of
    # calling", the call uses `fault` + `inject` in place of `check`: close reports it
    # after the descriptor is released, fsync after the FsyncModel acted on the file.

    def fault(self, op: OpKind, *paths: str) -> FaultRule | None:
        """Count this call against the plan; the rule that fires on it, if any."""
        return self.injector.check(op, *paths)

    def inject(
        self, rule: FaultRule, op: OpKind, path: str, detail: str = "", *, mutating: bool = False
    ) -> NoReturn:
        """Record the injected error of `rule` and raise it (an OSError naming `path`)."""
        self.log(op, path, detail, rule.errno, mutating=mutating, injected=True)
        code = rule.code
        raise OSError(code, strerror(code), path)

    def check(self, op: OpKind, path: str, detail: str = "", *others: str) -> FaultRule | None:
        """`fault` + `inject`: an error rule raises here; a short-write rule is returned.

        `others`: further paths the rule may match (a rename's destination).
        """
        rule = self.injector.check(op, path, *others)
        if rule is not None and rule.short_write is None:
            self.inject(rule, op, path, detail)
        return rule

    def attempt(
        self, op: OpKind, path: str, detail: str, call: Callable[..., T], /, *args: Any
    ) -> T:
        """`call(*args)`; an OSError it raises is recorded (not a crash point).

        (No keyword arguments: accepting them costs every call; pass a lambda instead.)
        """
        try:
            return call(*args)
        except OSError as exc:
            self.log(op, path, detail, errno_name(exc))
            raise

    def run(self, op: OpKind, path: str, detail: str, call: Callable[..., T], /, *args: Any) -> T:
        """`check` + `attempt`, for any op but write (whose short writes `check` returns)."""
        self.check(op, path, detail)
        return self.attempt(op, path, detail, call, *args)

    def log(
        self,
        op: OpKind,
        path: str,
        detail: str = "",
        error: str | None = None,
        *,
        mutating: bool = False,
        injected: bool = False,
    ) -> None:
        """Append an op to the trace; a mutating one is a crash point (snapshot taken)."""
        if not self.record:
            return
        index = len(self.trace)
        self.trace.append(Op(index, str(op), path, detail, error, mutating, injected))
        if mutating:
            self.points.append(index)
            where = f"{op} {path}" + (f" {detail}" if detail else "")
            self.snapshots[index] = self.model.snapshot(self.fs.root, where, path)

    def handle(self, op: OpKind, fd: int) -> Any:
        """The handle of descriptor `fd`; a bad descriptor is recorded as `<fd N>`."""
        try:
            return open_file(self.fs, fd)
        except OSError as exc:
            self.log(op, f"<fd {fd}>", error=errno_name(exc))
            raise

    # -- queries -------------------------------------------------------------------------

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
            text = f"{handle_path(open_file(self.fs, dir_fd))}/{text}"
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
        """flock(2) on an open file description: EWOULDBLOCK with LOCK_NB, else EDEADLK
        (one process cannot wait for itself)."""
        ino = inode(handle.get_object())
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
        alive = live_handle_ids(self.fs)
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
    hook_file_open(None if session is None else _open_file_object)


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


class CrashOs(FakeOsModule):
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
        names = FakeOsModule.dir()
        extra = (
            "ftruncate",
            "truncate",
            "fdopen",
            "sync",
            "pread",
            "pwrite",
            "fchmod",
            "fchown",
            "posix_fadvise",
            "posix_fallocate",
        )
        return [*names, *(n for n in extra if n not in names)]

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
        s.check(OPEN, abspath, detail)
        if flags & O_DIRECTORY and flags & O_ACCMODE == O_RDONLY and not flags & O_CREAT:
            fd = self._open_directory(abspath)
            if fd is not None:  # (None: not a plain directory; pyfakefs decides below)
                s.log(OPEN, abspath, detail)
                return fd
        if mode is None:  # what pyfakefs would compute, without its two umask syscalls
            mode = 0o777 & ~_UMASK
        fs = self.filesystem
        before = last_inode(fs)
        fd = s.attempt(OPEN, abspath, detail, self._fake_open, path, flags, mode, dir_fd)
        handle = open_file(fs, fd)
        retype_raw_handle(handle)
        handle._crash_path = abspath  # type: ignore[union-attr]
        if flags & O_APPEND and flags & O_ACCMODE == O_RDWR and isinstance(handle, FakeFileWrapper):
            # POSIX: O_APPEND moves each write to the end, but the offset starts at 0, so
            # the descriptor reads from the start. pyfakefs starts it at the end.
            handle.seek(0)
        created = last_inode(fs) > before
        truncated = False
        if (
            isinstance(handle, FakeFileWrapper)
            and flags & O_TRUNC
            and flags & O_ACCMODE != O_RDONLY
        ):
            s.model.truncated(handle.get_object(), 0)
            truncated = True
        s.log(OPEN, abspath, detail, mutating=created or truncated)
        return fd

    def _fake_open(self, path: Any, flags: int, mode: int, dir_fd: int | None) -> int:
        """pyfakefs's os.open. It chmods the file on every call, existing files too (POSIX
        only sets the mode of a file the call creates): skipped when nothing can be
        created, both more faithful and faster."""
        self._keep_mode = not flags & O_CREAT
        try:
            return super().open(path, flags, mode, dir_fd=dir_fd)
        finally:
            self._keep_mode = False

    def _open_directory(self, abspath: str) -> int | None:
        """The directory-fd open (for a directory fsync) without pyfakefs's general path:
        same result, a third of the cost. None when `abspath` is not a directory."""
        try:
            obj = self.filesystem.resolve(abspath)
        except OSError:
            return None
        if not isinstance(obj, FakeDirectory):
            return None
        fd, wrapper = open_directory(self.filesystem, obj, abspath)
        wrapper._crash_path = abspath  # type: ignore[attr-defined]
        return fd

    def write(self, fd: int, contents: bytes) -> int:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().write(fd, contents)
        handle = s.handle(WRITE, fd)
        if not isinstance(handle, FakeFileWrapper | FakeDirWrapper):
            return super().write(fd, contents)
        write = functools.partial(FakeOsModule.write, self, fd)
        return _recorded_write(s, handle_path(handle), contents, "", write)

    def read(self, fd: int, n: int) -> bytes:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().read(fd, n)
        handle = s.handle(READ, fd)
        if not isinstance(handle, FakeFileWrapper | FakeDirWrapper):
            return super().read(fd, n)
        path = handle_path(handle)
        data = s.run(READ, path, f"up to {n} bytes", super().read, fd, n)
        s.log(READ, path, f"{len(data)} bytes")
        return data

    def _close_fd(self, fd: int) -> None:
        """Close one descriptor; `os.dup` copies share the handle and must stay open."""
        if not close_shared_descriptor(self.filesystem, fd):
            super().close(fd)

    def close(self, fd: int) -> None:
        s = _session_for(self.filesystem)
        if not isinstance(fd, int) or fd < 3:
            return super().close(fd)
        if s is None:
            return self._close_fd(fd)
        path = handle_path(s.handle(CLOSE, fd))
        rule = s.fault(CLOSE, path)
        try:
            s.attempt(CLOSE, path, "", self._close_fd, fd)
        finally:
            s.release_locks()
        if rule is not None:  # like close(2): the descriptor is gone, the error reported
            s.inject(rule, CLOSE, path)
        s.log(CLOSE, path)

    def _sync(self, op: OpKind, fd: Any, original: Callable[[int], None]) -> None:
        s = _session_for(self.filesystem)
        if s is not None and not isinstance(fd, int) and hasattr(fd, "fileno"):
            fd = fd.fileno()
        if s is None or not isinstance(fd, int) or fd < 3:
            return original(fd)
        handle = s.handle(op, fd)
        is_dir = isinstance(handle, FakeDirWrapper)
        if not is_dir and not isinstance(handle, FakeFileWrapper):
            return original(fd)
        kind = DIRFSYNC if is_dir else op
        detail = op.value if is_dir else ""
        path = handle_path(handle)
        obj = handle.get_object()
        rule = s.fault(kind, path)
        if rule is not None:  # the failure has happened: the FsyncModel acts (a crash point)
            if not is_dir:
                s.model.fsync_failed(obj)
            s.inject(rule, kind, path, detail, mutating=True)
        s.attempt(kind, path, detail, original, fd)
        if isinstance(obj, FakeDirectory):
            s.model.dir_synced(obj)
        else:
            s.model.fsync_ok(obj, datasync=op is FDATASYNC)
        s.log(kind, path, detail, mutating=True)

    def fsync(self, fd: int) -> None:
        self._sync(FSYNC, fd, super().fsync)

    def fdatasync(self, fd: int) -> None:
        self._sync(FDATASYNC, fd, super().fdatasync)

    def sync(self) -> None:
        """sync(2): everything becomes durable (it cannot fail)."""
        s = _session_for(self.filesystem)
        if s is None:
            return
        s.model.sync_all(self.filesystem.root)
        s.log(SYNC, "/", mutating=True)

    def ftruncate(self, fd: int, length: int) -> None:
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return super().ftruncate(fd, length)
        handle = s.handle(FTRUNCATE, fd)
        path = handle_path(handle)
        detail = f"to {length} bytes"
        s.run(FTRUNCATE, path, detail, super().ftruncate, fd, length)
        truncated(self.filesystem, handle.get_object())
        s.model.truncated(handle.get_object(), length)
        s.log(FTRUNCATE, path, detail, mutating=True)

    def truncate(self, path: Any, length: int) -> None:
        s = _session_for(self.filesystem)
        if s is None:
            return super().truncate(path, length)
        if isinstance(path, int):
            return self.ftruncate(path, length)
        abspath = s.abspath(path)
        detail = f"truncate() to {length} bytes"
        s.run(FTRUNCATE, abspath, detail, super().truncate, path, length)
        s.model.truncated(self.filesystem.resolve(abspath), length)
        s.log(FTRUNCATE, abspath, detail, mutating=True)

    def _move(
        self,
        op: OpKind,
        call: Callable[..., None],
        src: Any,
        dst: Any,
        src_dir_fd: int | None,
        dst_dir_fd: int | None,
    ) -> None:
        s = _session_for(self.filesystem)
        if s is None:
            return call(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        a, b = s.abspath(src, src_dir_fd), s.abspath(dst, dst_dir_fd)
        detail = f"-> {b}"
        s.check(op, a, detail, b)  # a rule on either path fires
        s.attempt(
            op, a, detail, lambda: call(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        )
        s.log(op, a, detail, mutating=True)

    def rename(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        self._move(RENAME, super().rename, src, dst, src_dir_fd, dst_dir_fd)

    def replace(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> None:
        self._move(REPLACE, super().replace, src, dst, src_dir_fd, dst_dir_fd)

    def _path_op(
        self, op: OpKind, call: Callable[..., None], path: Any, *args: Any, dir_fd: int | None
    ) -> None:
        """unlink/remove/rmdir/mkdir: `call(path, *args, dir_fd=dir_fd)`, a crash point."""
        s = _session_for(self.filesystem)
        if s is None:
            return call(path, *args, dir_fd=dir_fd)
        abspath = s.abspath(path, dir_fd)
        s.run(op, abspath, "", lambda: call(path, *args, dir_fd=dir_fd))
        s.log(op, abspath, mutating=True)

    def unlink(self, path: Any, *, dir_fd: int | None = None) -> None:
        self._path_op(UNLINK, super().unlink, path, dir_fd=dir_fd)

    def remove(self, path: Any, dir_fd: int | None = None) -> None:
        self._path_op(UNLINK, super().remove, path, dir_fd=dir_fd)

    def rmdir(self, path: Any, *, dir_fd: int | None = None) -> None:
        self._path_op(RMDIR, super().rmdir, path, dir_fd=dir_fd)

    def mkdir(self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        self._path_op(MKDIR, super().mkdir, path, mode, dir_fd=dir_fd)

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

    def link(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool | None = None,
    ) -> None:
        """A hard link: a second name for `src`'s inode, recorded as the `open` that
        creates the name `dst` (as the FUSE recorder records it): a crash point, durable
        once `dst`'s folder is synced; what an fsync of either name made durable, both
        hold."""
        parent = super().link
        s = _session_for(self.filesystem)

        def call() -> None:
            kwargs: dict[str, Any] = {"src_dir_fd": src_dir_fd, "dst_dir_fd": dst_dir_fd}
            if follow_symlinks is not None:
                kwargs["follow_symlinks"] = follow_symlinks
            parent(src, dst, **kwargs)

        if s is None:
            return call()
        a, b = s.abspath(src, src_dir_fd), s.abspath(dst, dst_dir_fd)
        detail = f"hard link to {a}"
        s.run(OPEN, b, detail, call)
        s.log(OPEN, b, detail, mutating=True)

    def symlink(
        self, src: Any, dst: Any, target_is_directory: bool = False, *, dir_fd: int | None = None
    ) -> None:
        """A symbolic link, recorded as the `open` that creates the name `dst`: a crash
        point; the link (its target) is durable with its entry, once `dst`'s folder is
        synced (`crashkit.faults.model`)."""
        parent = super().symlink
        s = _session_for(self.filesystem)
        if s is None:
            return parent(src, dst, target_is_directory, dir_fd=dir_fd)
        b = s.abspath(dst, dir_fd)
        detail = f"symlink -> {fsdecode(fspath(src))}"
        s.run(OPEN, b, detail, lambda: parent(src, dst, target_is_directory, dir_fd=dir_fd))
        s.log(OPEN, b, detail, mutating=True)

    def fchmod(self, fd: int, mode: int) -> None:
        """pyfakefs has none (the real one would chmod a real descriptor): the mode of the
        fake file. Metadata: neither an op nor a crash point (as `chmod`)."""
        open_file(self.filesystem, fd)  # EBADF unless a fake descriptor
        self.filesystem.chmod(fd, mode)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        """pyfakefs has none: the owner of the fake file. Metadata (as `chown`)."""
        open_file(self.filesystem, fd)
        self.chown(fd, uid, gid)  # type: ignore[type-var]  # (pyfakefs takes a descriptor)

    def posix_fadvise(self, fd: int, offset: int, length: int, advice: int) -> None:
        """pyfakefs has none: advice only, it changes nothing (checks the descriptor)."""
        open_file(self.filesystem, fd)

    def posix_fallocate(self, fd: int, offset: int, length: int) -> None:
        """pyfakefs has none: a file shorter than `offset + length` grows to it (zeros),
        recorded as an `ftruncate` (a crash point; not durable until an fsync); space is
        not modelled, so a longer file is left as it is."""
        handle = open_file(self.filesystem, fd)
        if not isinstance(handle, FakeFileWrapper):
            code = errno_module.ENODEV
            raise OSError(code, strerror(code))
        size = len(byte_contents(handle.get_object()) or b"")
        if offset + length > size:
            self.ftruncate(fd, offset + length)

    def lseek(self, fd: int, pos: int, how: int) -> int:
        """pyfakefs returns None; os.lseek returns the new offset (sizes are read so)."""
        super().lseek(fd, pos, how)  # EBADF unless a regular file's descriptor
        handle = open_file(self.filesystem, fd)
        return int(handle.tell()) if isinstance(handle, FakeFileWrapper) else 0

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        """pyfakefs has none: without it the call would reach a *real* descriptor. Read
        from the file itself, as pread(2) does: the descriptor's offset stays."""
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return positioned_read(self.filesystem, fd, n, offset)
        path = handle_path(s.handle(READ, fd))
        data = s.run(
            READ, path, f"up to {n} bytes", positioned_read, self.filesystem, fd, n, offset
        )
        s.log(READ, path, f"{len(data)} bytes at {offset}")
        return data

    def pwrite(self, fd: int, contents: bytes, offset: int) -> int:
        """pyfakefs has none: without it the call would reach a *real* descriptor. Write
        into the file itself, as pwrite(2) does: the descriptor's offset stays."""
        s = _session_for(self.filesystem)
        if s is None or not isinstance(fd, int) or fd < 3:
            return positioned_write(self.filesystem, fd, contents, offset)
        path = handle_path(s.handle(WRITE, fd))

        def write(data: bytes) -> int:
            return positioned_write(self.filesystem, fd, data, offset)

        return _recorded_write(s, path, contents, f" at {offset}", write)


def _recorded_write(
    s: Session, path: str, contents: bytes, where: str, write: Callable[[bytes], int]
) -> int:
    """One write op (os.write, os.pwrite): counted against the plan, whose rule may cut it
    short, then run and logged (`where`: " at OFFSET" for a positioned write)."""
    requested = len(contents)
    asked = f"{requested} bytes"
    rule = s.check(WRITE, path, asked)
    if rule is not None:  # a short write
        contents = contents[: rule.short_write]
    written: int = s.attempt(WRITE, path, asked, write, contents)
    if rule is None:
        s.log(WRITE, path, f"{written} bytes{where}", mutating=True)
    else:
        detail = f"short write: {written} of {requested} bytes{where}"
        s.log(WRITE, path, detail, mutating=True, injected=True)
    return written


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
    "link",
    "symlink",
    "fchmod",
    "fchown",
    "posix_fadvise",
    "posix_fallocate",
)
for _name in _OS_OVERRIDES:
    # like pyfakefs's own methods: calls from skipped modules go to the real os
    setattr(CrashOs, _name, route_skipped_modules(getattr(CrashOs, _name)))


# -- the fake fcntl module ----------------------------------------------------------------


class CrashFcntl(FakeFcntlModule):
    """pyfakefs's fake `fcntl` with a working `flock` (exclusive/shared, LOCK_NB)."""

    def flock(self, fd: Any, operation: int) -> None:
        s = _session_for(self.filesystem)
        if s is not None and not isinstance(fd, int) and hasattr(fd, "fileno"):
            fd = fd.fileno()
        if s is None or not isinstance(fd, int):
            return super().flock(fd, operation)
        handle = s.handle(FLOCK, fd)
        path = handle_path(handle)
        detail = flock_text(operation) if s.record else ""
        s.run(FLOCK, path, detail, s.flock, handle, operation, path)
        s.log(FLOCK, path, detail)


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
    orig = wrapper_attr(f, "write")
    s = _file_session(f)
    if s is None:
        return orig(data)
    path: str = f.__dict__["_crash_path"]
    unit = "bytes" if is_binary(f) else "chars"
    requested = len(data)
    asked = f"{requested} {unit}"
    rule = s.check(WRITE, path, asked)
    if rule is not None:  # a short write
        data = data[: rule.short_write]
    with _Busy(f):
        result = s.attempt(WRITE, path, asked, orig, data)
    if rule is not None:
        detail = f"short write: {len(data)} of {requested} {unit}"
        s.log(WRITE, path, detail, mutating=True, injected=True)
        return len(data)
    s.log(WRITE, path, asked, mutating=True)
    return result


def _file_flush(f: Any) -> None:
    s = _file_session(f)
    if s is None:
        return FakeFileWrapper.flush(f)
    path: str = f.__dict__["_crash_path"]
    s.check(FLUSH, path)
    obj = wrapped_file(f)
    before = byte_contents(obj)
    with _Busy(f):
        s.attempt(FLUSH, path, "", FakeFileWrapper.flush, f)
    s.log(FLUSH, path, mutating=byte_contents(obj) is not before)  # moved bytes in?


def _file_close(f: Any) -> None:
    """Like `CrashOs.close`, but a close that flushes is a crash point, failed or not."""
    s = _file_session(f)
    if s is None or not wrapper_is_open(f):
        return FakeFileWrapper.close(f)
    path: str = f.__dict__["_crash_path"]
    rule = s.fault(CLOSE, path)
    obj = wrapped_file(f)
    before = byte_contents(obj)
    try:
        with _Busy(f):
            FakeFileWrapper.close(f)
    except OSError as exc:
        s.log(CLOSE, path, error=errno_name(exc), mutating=byte_contents(obj) is not before)
        raise
    finally:
        s.release_locks()
    changed = byte_contents(obj) is not before
    if rule is not None:  # the file is closed (buffered bytes flushed); the error reported
        s.inject(rule, CLOSE, path, mutating=changed)
    s.log(CLOSE, path, mutating=changed)


def _file_truncate(f: Any, args: tuple[Any, ...]) -> int:
    orig = wrapper_attr(f, "truncate")
    s = _file_session(f)
    if s is None:
        return int(orig(*args))
    path: str = f.__dict__["_crash_path"]
    with _Busy(f):
        size = int(s.run(FTRUNCATE, path, "truncate()", orig, *args))
    s.model.truncated(wrapped_file(f), size)
    s.log(FTRUNCATE, path, f"truncate() to {size}", mutating=True)
    return size


def _file_read(f: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    s = _file_session(f)
    if s is None:
        return wrapper_attr(f, name)(*args, **kwargs)
    path: str = f.__dict__["_crash_path"]
    detail = f"{name}()"
    s.check(READ, path, detail)
    with _Busy(f):  # the lookup is part of the call: for a read method it flushes
        result = s.attempt(READ, path, detail, lambda: wrapper_attr(f, name)(*args, **kwargs))
    s.log(READ, path, detail)
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
        return wrapper_getattribute(self, name)

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
            s.check(READ, path, "iteration")
            s.log(READ, path, "iteration")
        return FakeFileWrapper.__iter__(self)  # type: ignore[arg-type]


class CrashBinaryFile(_CrashFile, FakeBinaryFileWrapper):  # type: ignore[misc]
    """A binary file object of the code under test."""

    __slots__ = ()


class CrashTextFile(_CrashFile, FakeTextFileWrapper):  # type: ignore[misc]
    """A text file object of the code under test."""

    __slots__ = ()


def _open_file_object(
    fs: FakeFilesystem, call: Callable[[], Any], file_: Any, mode: str, opener: Any
) -> Any:
    """Every fake open() while a session runs: fault, record, and hook the file object."""
    s = _Active.session
    if s is None or fs is not s.fs:
        return call()
    if isinstance(file_, int):
        try:
            path = handle_path(open_file(fs, file_))
        except OSError:
            return call()
    else:
        path = s.abspath(file_)
    # os.fdopen wraps a descriptor (its os.open was the op); an opener other than
    # pathlib's does its own os.open (recorded there)
    own = not isinstance(file_, int) and (
        opener is None or getattr(opener, "__module__", "") in ("pathlib", "pathlib._local")
    )
    detail = f"mode {mode!r}"
    if own:
        s.check(OPEN, path, detail)
    before = last_inode(fs)
    wrapper = s.attempt(OPEN, path, detail, call) if own else call()
    if not retype_wrapper(wrapper, CrashBinaryFile, CrashTextFile):
        return wrapper
    d = wrapper.__dict__
    d["_crash_path"] = path
    d["_crash_gen"] = s.gen
    d["_crash_busy"] = False
    created = last_inode(fs) > before
    truncated = truncates_on_open(wrapper)
    if truncated:
        s.model.truncated(wrapped_file(wrapper), 0)
    if own:
        s.log(OPEN, path, detail, mutating=created or truncated)
    return wrapper
