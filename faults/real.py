"""Real processes on a real file system: record what a program asks of a FUSE mount, then
rebuild every disk a power cut could leave, as ordinary folders.

Why: the pyfakefs layer sees only I/O done through Python's `os` inside one process.
A real program (the stdlib `sqlite3` module, a C extension, a program in another
language) does its I/O through the kernel. As LazyFS and ALICE do, this module puts a
file system in between: `RecordingFS`, a FUSE passthrough to a backing folder, records
every call that changes or syncs it, with its bytes, in the op vocabulary of the rest of
the layer (`crashkit.faults.ops.OpKind`), and can fail the Nth call of an op on a path
with an errno (the same `FaultPlan`s).

Fault model (the same as the pyfakefs layer's, `crashkit.faults.model` and `.crash`):
what an `fsync`/`fdatasync` of a file made durable is its content at that moment; what a
directory's fsync made durable is its entries; `sync`/`syncfs` make everything durable;
nothing else is durable. Everything in the starting image is durable. A failed
`fsync`/`fdatasync` applies the chosen `FsyncModel` to the file's dirty range: kept
dirty, marked clean without being written (a later fsync does not persist it), or
dropped (the recorder rewrites the backing file and drops the kernel's cache of it, so
the process reads back what the disk holds). `crashkit.faults.replay` replays the
recorded calls from the image, offline, and gives a `Snapshot` after any of them, from
which `crashkit.faults.crash` derives the crash states under any file-system profile:
the recording is the only thing that needs FUSE; checks run on plain folders
(`materialise`).

How the mount sees a program: the kernel's page cache is on (no `direct_io`, so shared
`mmap` works) but write-through (no `writeback_cache`): every write(2) reaches the
recorder, in program order, before it returns; each open drops the file's cached pages.
The kernel sends a write(2) that starts inside a page it has not cached in parts (one
ending at that page's end): the recorder merges them back into one write, reading from
/proc which call the writing thread is blocked in (`writing`), so a crash point is a
whole write(2), as in the in-process layer. Reads the cache answers never reach the
recorder: only the others are recorded (and can be failed by a plan). A shared
mapping's stores reach it as ordinary writes of whole pages when the kernel writes them
back: at `msync` (then the fsync it implies), `fsync`, `munmap`, close, `sync`, or the
kernel's own writeback; a crash before then loses them, as on a disk. `O_SYNC` and
`O_DSYNC` descriptors: the kernel follows each write through one with an fsync or
fdatasync of the file, recorded as such. `sync(2)`/`syncfs(2)` reach no FUSE daemon:
`record` preloads a small shim (faults/shim/crashkit_sync.c, built on first use with
the C compiler) that, after the real call, opens a reserved name on the mount, which the
recorder answers with one `sync` (where it cannot be built, `Recording.notes` says so).

Recorded: create/open (an open that creates, or truncates, changes the disk), write
(offset and bytes), truncate, `fallocate` (growing the file: a truncate to the new
size; punching a hole or zeroing a range: a write of zeros; keeping the size: nothing),
unlink, rename (a replace when it overwrites; `RENAME_NOREPLACE` honoured), mkdir, rmdir,
hard links and symlinks (as opens that create the name, `Call.link`), fsync, fdatasync, a
directory's fsync, sync, close; reads too, as no crash point. Passed through, not
recorded (they change nothing a crash state holds): `readlink`, `chmod`, `chown`,
`utimens`, `statfs`, and file locks (`fcntl`/`flock`: kept by the kernel, on this one
machine). Refused, each listed in
`Recording.unsupported` with its file and errno, the errno returned to the program:
extended attributes (`setxattr`/`removexattr`: ENOTSUP; reading them finds none), special
files (`mknod` of a FIFO, socket or device: EPERM), `RENAME_EXCHANGE`/`RENAME_WHITEOUT`
(EINVAL) and file ioctls (ENOTTY; a terminal's, as isatty asks, silently). Not modelled:
a statically linked program's `sync` (the shim cannot reach it); the parts of a write(2)
where /proc cannot say which call a thread is in (another machine than x86_64 and
aarch64, io_uring): each part is a write; a short write a plan makes over pages the
kernel had cached leaves them showing all the bytes until the next open; a file's two
hard links are two inodes to the kernel's cache, so two mappings of it through different
names do not see each other's stores until written back.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import hashlib
import mmap
import os
import platform
import posixpath
import select
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from crashkit.faults.image import DiskImage
from crashkit.faults.ops import OpKind
from crashkit.faults.plan import FaultInjector, FaultPlan, FaultRule, FsyncModel, errno_code
from crashkit.faults.replay import (
    Call,
    Recording,
    ReplayModel,
    crash_points,
    is_hidden,
    snapshots,
)
from crashkit.faults.trace import Op

__all__ = [
    "Call",
    "Recording",
    "RecordingFS",
    "ReplayModel",
    "crash_points",
    "fuse_unavailable",
    "materialise",
    "mounted",
    "read_folder",
    "record",
    "snapshots",
    "sync_shim",
]

#: What the recorder needs beside Python: the kernel's FUSE device, libfuse 3's mount
#: helper (Debian: fuse3) and a binding (mfusepy, from PyPI).
FUSE_DEVICE = "/dev/fuse"
FUSERMOUNT = "fusermount3"

#: The reserved name at the root of the mount that the sync shim opens: the recorder
#: answers it (a `sync` recorded) and it never exists on the backing folder.
SYNC_PATH = "/.crashkit-sync"
#: The file handle of an open of `SYNC_PATH` (no real descriptor's number).
SYNC_FH = 2**62

#: renameat2(2) flags (Linux's values; the os module has no renameat2).
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
#: fallocate(2) modes a FUSE file system is sent (the kernel refuses the others).
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10

#: Open flags the recorder does not pass to the backing file: the kernel already placed
#: each write (O_APPEND would move the recorder's to the end of the backing file) and
#: O_DIRECT would need aligned buffers.
_NOT_FOR_BACKING = os.O_APPEND | getattr(os, "O_DIRECT", 0)


def fuse_unavailable() -> str | None:
    """Why a FUSE mount cannot be made here (None: it can)."""
    if not os.path.exists(FUSE_DEVICE):
        return f"no {FUSE_DEVICE}: the kernel's FUSE device is missing"
    if shutil.which(FUSERMOUNT) is None:
        return f"no {FUSERMOUNT}: install libfuse 3 (Debian: apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:  # (OSError: libfuse3.so missing)
        return f"the FUSE binding cannot load: {exc}"
    return None


def _sync_mode(flags: int) -> str:
    """What the kernel syncs after each write through a descriptor opened with `flags`
    ("O_SYNC": fsync, "O_DSYNC": fdatasync, "": nothing)."""
    if flags & os.O_SYNC == os.O_SYNC:
        return "O_SYNC"
    return "O_DSYNC" if flags & os.O_DSYNC else ""


#: The write(2) family's system call numbers, per machine: what a thread blocked in a
#: write is doing (`writing`). Elsewhere a write split into pages stays split.
_WRITE_CALLS_BY_MACHINE: dict[str, dict[int, str]] = {
    "x86_64": {1: "write", 18: "pwrite64", 20: "writev", 296: "pwritev", 328: "pwritev2"},
    "aarch64": {64: "write", 68: "pwrite64", 66: "writev", 70: "pwritev", 287: "pwritev2"},
}
_WRITE_CALLS = _WRITE_CALLS_BY_MACHINE.get(platform.machine(), {})

#: At most this many iovecs are read to size a vectored write (IOV_MAX).
_IOV_MAX = 1024


def writing(tid: int) -> tuple[tuple[int, ...], int] | None:
    """The write(2)-family call thread `tid` is blocked in, as (its number and first four
    arguments, the bytes it writes in all), from /proc; None when it is not in one or
    /proc does not say (another user's process, no /proc)."""
    try:
        with open(f"/proc/{tid}/syscall") as f:
            fields = f.read().split()
        number = int(fields[0])
        args = tuple(int(a, 16) for a in fields[1:5])
    except (OSError, ValueError, IndexError):
        return None
    kind = _WRITE_CALLS.get(number)
    if kind is None:
        return None
    if kind in ("write", "pwrite64"):
        return (number, *args), args[2]
    count = args[2]
    if count > _IOV_MAX:
        return None
    try:  # a vectored write: the sum of its iovecs' lengths, read from its memory
        with open(f"/proc/{tid}/mem", "rb") as mem:
            mem.seek(args[1])
            raw = mem.read(16 * count)
    except (OSError, OverflowError, ValueError):
        return None
    if len(raw) != 16 * count:
        return None
    return (number, *args), sum(length for _, length in struct.iter_unpack("=QQ", raw))


@dataclasses.dataclass(slots=True)
class _Unfinished:
    """A write(2) the kernel sent in parts (it ends a part at each page it has not
    cached): the rest arrives as more writes from the same thread, merged into this one."""

    tid: int
    call: tuple[int, ...]  # (its number and first arguments: the same for every part)
    total: int
    done: int
    index: int  # its entry in the trace
    path: str
    next: int  # where its next part starts


class RecordingFS:
    """A FUSE passthrough to `backing` that records every call (see the module docstring)
    and fails the calls `plan` names with their errno. Built on `mfusepy.Operations`
    (created by `make_operations`, which imports the binding only when a mount is made)."""

    def __init__(
        self,
        backing: str,
        plan: FaultPlan | None = None,
        *,
        image: DiskImage | None = None,
        model: FsyncModel = FsyncModel.KEEP_DIRTY,
    ) -> None:
        self.backing = backing
        self.recording = Recording()
        self.injector = FaultInjector(plan or FaultPlan())
        self._lock = threading.Lock()
        #: the durability model, live: a failed fsync under DROP must change what the
        #: process reads back at once (`image`: what `backing` starts with)
        self.model = ReplayModel(image or DiskImage(), model)
        self._hid: dict[str, int] = {}  # a name the kernel just hid -> the trace index
        #: drops the kernel's cached pages of a path (set by `make_operations`: the
        #: backing file changed behind the kernel's back)
        self.invalidate: Callable[[str], None] = lambda path: None
        self._unfinished: _Unfinished | None = None

    def write(self, path: str, payload: bytes, offset: int, fh: int, tid: int = 0) -> int:
        """A write; one the plan cuts short writes only its first bytes and says so.

        One write(2) is one recorded write, as in the in-process layer, though the kernel
        may send it in parts (`_Unfinished`): a part that continues the last recorded
        write of thread `tid` (its caller, 0: unknown) is merged into it."""
        if self._continues(path, payload, offset, fh, tid):
            return len(payload)
        detail = f"{len(payload)} bytes at {offset}"
        with self._lock:
            rule = self.injector.check(OpKind.WRITE.value, path)
            if rule is not None and rule.short_write is not None:
                kept = payload[: rule.short_write]
                written = os.pwrite(fh, kept, offset)
                call = Call(OpKind.WRITE, path, kept[:written], offset)
                index = len(self.recording.trace)
                detail = f"short write: {written} of {len(payload)} bytes at {offset}"
                self.recording.trace.append(
                    Op(index, OpKind.WRITE.value, path, detail, None, True, True)
                )
                self.recording.calls.append(call)
                self.model.apply(call)
                return written
        record = Call(OpKind.WRITE, path, payload, offset)
        written = int(
            self.call(
                OpKind.WRITE, path, detail, record, lambda: os.pwrite(fh, payload, offset), (rule,)
            )
        )
        end = offset + written
        if tid and written == len(payload) and end % mmap.PAGESIZE == 0:
            blocked = writing(tid)  # (a part ends at a page: is there more of it to come?)
            if blocked is not None and blocked[1] > written:
                index = len(self.recording.trace) - 1
                self._unfinished = _Unfinished(
                    tid, blocked[0], blocked[1], written, index, path, end
                )
        return written

    def _continues(self, path: str, payload: bytes, offset: int, fh: int, tid: int) -> bool:
        """Merge a write into the unfinished write(2) it is the next part of, if it is
        (the same thread in the same call, where the last part ended, nothing between)."""
        part = self._unfinished
        if part is None or (part.tid, part.path, part.next) != (tid, path, offset):
            return False
        self._unfinished = None
        blocked = writing(tid)
        if (
            blocked is None
            or blocked[0] != part.call
            or part.done + len(payload) > part.total
            or part.index != len(self.recording.trace) - 1
        ):
            return False
        os.pwrite(fh, payload, offset)
        with self._lock:
            first = self.recording.calls[part.index]
            assert first is not None
            merged = dataclasses.replace(first, data=first.data + payload)
            self.recording.calls[part.index] = merged
            op = self.recording.trace[part.index]
            detail = f"{len(merged.data)} bytes at {merged.offset}"
            self.recording.trace[part.index] = dataclasses.replace(op, detail=detail)
            self.model.apply(Call(OpKind.WRITE, path, payload, offset))
        part.done += len(payload)
        part.next += len(payload)
        if part.done < part.total:
            self._unfinished = part
        return True

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        """A rename; the kernel's own to a hidden name is the unlink of an open file, or
        the first half of a replace of one (then not a crash point: the program's
        replace is atomic). `flags`: renameat2's; only RENAME_NOREPLACE is modelled."""
        real_old, real_new = self.real(old), self.real(new)
        if flags & ~RENAME_NOREPLACE:
            named = ((RENAME_EXCHANGE, "RENAME_EXCHANGE"), (RENAME_WHITEOUT, "RENAME_WHITEOUT"))
            what = "|".join(name for flag, name in named if flags & flag) or f"flags {flags:#x}"
            self.refuse(f"rename ({what}) {old} -> {new}", errno.EINVAL)
        if is_hidden(new):
            record = Call(OpKind.RENAME, old, target=new, hidden=True)
            detail = f"still open: the kernel keeps it as {posixpath.basename(new)}"
            with self._lock:
                os.rename(real_old, real_new)
                index = len(self.recording.trace)
                self.recording.trace.append(Op(index, OpKind.UNLINK.value, old, detail, None, True))
                self.recording.calls.append(record)
                self.model.apply(record)
                self._hid[old] = index
            return
        if flags & RENAME_NOREPLACE:

            def run() -> None:
                if os.path.lexists(real_new):  # (only the recorder changes the backing)
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), new)
                os.rename(real_old, real_new)

            call = Call(OpKind.RENAME, old, target=new)
            self.call(OpKind.RENAME, old, f"-> {new}, RENAME_NOREPLACE", call, run)
            return
        hid = self._hid.pop(new, None)
        op = OpKind.REPLACE if hid is not None or os.path.lexists(real_new) else OpKind.RENAME
        self.call(
            op, old, f"-> {new}", Call(op, old, target=new), lambda: os.rename(real_old, real_new)
        )
        if hid is not None:
            with self._lock:
                hide = self.recording.trace[hid]
                self.recording.trace[hid] = dataclasses.replace(
                    hide, mutating=False, detail=f"{hide.detail}, replaced by the next call"
                )

    def unlink(self, path: str) -> None:
        """An unlink; the kernel's of a hidden file at its last close is not the program's."""
        if not is_hidden(path):
            self.call(
                OpKind.UNLINK,
                path,
                "",
                Call(OpKind.UNLINK, path),
                lambda: os.unlink(self.real(path)),
            )
            return
        record = Call(OpKind.UNLINK, path, hidden=True)
        with self._lock:
            os.unlink(self.real(path))
            index = len(self.recording.trace)
            detail = "the kernel drops a hidden file at its last close"
            self.recording.trace.append(Op(index, OpKind.UNLINK.value, path, detail, None, False))
            self.recording.calls.append(record)
            self.model.apply(record)

    def link(self, source: str, name: str) -> None:
        """A hard link: `name` becomes another name of `source`'s inode (an open that
        creates `name`, for fault rules and the trace)."""
        record = Call(OpKind.OPEN, name, target=source, creates=True, link="hard")
        real_source, real_name = self.real(source), self.real(name)
        self.call(
            OpKind.OPEN,
            name,
            f"hard link to {source}",
            record,
            lambda: os.link(real_source, real_name, follow_symlinks=False),
        )

    def symlink(self, name: str, target: str) -> None:
        """A symlink `name` -> `target` (an open that creates `name`, as `link`)."""
        data = os.fsencode(target)
        record = Call(OpKind.OPEN, name, data=data, creates=True, link="symbolic")
        real = self.real(name)
        self.call(
            OpKind.OPEN, name, f"symlink to {target}", record, lambda: os.symlink(target, real)
        )

    def fallocate(self, path: str, mode: int, offset: int, length: int, fh: int) -> None:
        """fallocate(2) as the bytes it changes: growing the file is a truncate to the
        new size, a punched hole or zeroed range is a write of zeros, an allocation that
        keeps the size changes nothing a crash could show (the blocks are not modelled)."""
        keep = bool(mode & FALLOC_FL_KEEP_SIZE)
        size = os.fstat(fh).st_size
        end = offset + length
        if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            self.refuse(f"fallocate (mode {mode:#x}) {path}", errno.EOPNOTSUPP)
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            stop = min(end, size) if keep else end
            if stop <= offset:
                return
            zeros = bytes(stop - offset)
            what = "punch hole" if mode & FALLOC_FL_PUNCH_HOLE else "zero range"
            detail = f"fallocate, {what}: {len(zeros)} zero bytes at {offset}"
            record = Call(OpKind.WRITE, path, zeros, offset)
            self.call(OpKind.WRITE, path, detail, record, lambda: os.pwrite(fh, zeros, offset))
        elif not keep and end > size:
            record = Call(OpKind.FTRUNCATE, path, offset=end)
            self.call(
                OpKind.FTRUNCATE,
                path,
                f"fallocate to {end} bytes",
                record,
                lambda: os.posix_fallocate(fh, offset, length),
            )

    def sync(self) -> None:
        """sync(2) or syncfs(2) of the mount, as the shim reports it: everything durable."""
        detail = "sync(2) or syncfs(2), seen by the crashkit shim"
        self.call(OpKind.SYNC, "/", detail, Call(OpKind.SYNC, "/"), lambda: None)

    def refuse(self, what: str, code: int) -> None:
        """Fail a call the recorder does not model, and say so in the recording (once per
        call and file): the program gets `code`, the report names the call."""
        name = errno.errorcode.get(code, str(code))
        message = f"{what}: {name}, not supported by the recorder"
        with self._lock:
            if message not in self.recording.unsupported:
                self.recording.unsupported.append(message)
        raise OSError(code, os.strerror(code))

    def sync_failed(self, path: str, fh: int) -> None:
        """A failed fsync of `path` (open as `fh`): apply the fsync model; under DROP the
        backing file is rewritten to what the disk holds (not recorded: not the program's)
        and the kernel's cached pages of it dropped, so reads and mappings see it."""
        with self._lock:
            dropped = self.model.fsync_failed(path)
        if dropped is not None:
            os.ftruncate(fh, len(dropped))
            os.pwrite(fh, dropped, 0)
            self.invalidate(path)

    def real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def call(
        self,
        op: OpKind,
        path: str,
        detail: str,
        record: Call | None,
        run: Any,
        counted: tuple[FaultRule | None] | None = None,
    ) -> Any:
        """Fail it if the plan says so, else run it; record it either way (`counted`: the
        rule the caller already counted this call against, when it did)."""
        with self._lock:
            rule = self.injector.check(op.value, path) if counted is None else counted[0]
            index = len(self.recording.trace)
            if rule is not None:
                self.recording.trace.append(
                    Op(index, op.value, path, detail, rule.errno, False, True)
                )
                self.recording.calls.append(None)
                raise OSError(errno_code(rule.errno), os.strerror(errno_code(rule.errno)))
            try:
                result = run()
            except OSError as exc:
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                self.recording.trace.append(Op(index, op.value, path, detail, name, False))
                self.recording.calls.append(None)
                raise
            mutating = record is not None and op not in (OpKind.CLOSE,)
            self.recording.trace.append(Op(index, op.value, path, detail, None, mutating))
            self.recording.calls.append(record)
            if record is not None:
                self.model.apply(record)
            return result


def _is_tty_ioctl(cmd: int) -> bool:
    """A terminal's ioctl (type 'T': TCGETS as isatty asks): not a call a disk answers."""
    return (cmd >> 8) & 0xFF == ord("T")


def _invalidator() -> Callable[[str], None]:
    """libfuse's `fuse_invalidate_path` for the mount being served (called from one of
    its operations): drops the kernel's cached pages and attributes of a path."""
    import mfusepy

    lib = getattr(mfusepy, "_libfuse", None)
    if lib is None or not hasattr(lib, "fuse_invalidate_path"):
        return lambda path: None
    lib.fuse_invalidate_path.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    lib.fuse_invalidate_path.restype = ctypes.c_int

    def invalidate(path: str) -> None:
        fuse = lib.fuse_get_context().contents.fuse
        lib.fuse_invalidate_path(fuse, path.encode("utf-8", "surrogateescape"))

    return invalidate


def make_operations(fs: RecordingFS) -> Any:
    """The mfusepy `Operations` that route every call of the mount through `fs`."""
    import mfusepy

    error = mfusepy.FuseOSError
    fs.invalidate = _invalidator()

    def guard(run: Any) -> Any:
        try:
            return run()
        except OSError as exc:
            raise error(exc.errno or errno.EIO) from exc

    class Ops(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            if path == SYNC_PATH:  # the shim's: an empty file only the recorder knows
                now = time.time_ns()
                times = {"st_atime_ns": now, "st_ctime_ns": now, "st_mtime_ns": now}
                return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": 0, **times}
            st = guard(lambda: os.lstat(fs.real(path)))
            keys = ("st_atime_ns", "st_ctime_ns", "st_mtime_ns", "st_gid", "st_mode")
            out = {k: getattr(st, k) for k in keys}
            out.update(st_nlink=st.st_nlink, st_size=st.st_size, st_uid=st.st_uid)
            return out

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *guard(lambda: os.listdir(fs.real(path)))]

        def readlink(self, path: str) -> str:
            return str(guard(lambda: os.readlink(fs.real(path))))

        def access(self, path: str, amode: int) -> int:
            if path != SYNC_PATH and not os.access(fs.real(path), amode):
                raise error(errno.EACCES)
            return 0

        def open(self, path: str, flags: int) -> int:
            if path == SYNC_PATH:
                guard(fs.sync)
                return SYNC_FH
            real = fs.real(path)
            truncates = bool(flags & os.O_TRUNC) and os.path.exists(real)
            record = Call(OpKind.OPEN, path, truncates=True) if truncates else None
            mode = _sync_mode(flags)
            detail = f"{mode}: the kernel syncs after each write" if mode else ""
            backing = flags & ~_NOT_FOR_BACKING
            return int(
                guard(
                    lambda: fs.call(
                        OpKind.OPEN, path, detail, record, lambda: os.open(real, backing)
                    )
                )
            )

        def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
            real = fs.real(path)
            record = Call(OpKind.OPEN, path, creates=True, truncates=True)
            access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
            sync = _sync_mode(flags)
            detail = f"O_CREAT, {sync}: the kernel syncs after each write" if sync else "O_CREAT"
            return int(
                guard(
                    lambda: fs.call(
                        OpKind.OPEN,
                        path,
                        detail,
                        record,
                        lambda: os.open(real, access | os.O_CREAT | os.O_TRUNC, mode),
                    )
                )
            )

        def mknod(self, path: str, mode: int, dev: int) -> int:
            if stat.S_ISREG(mode):  # mknod(2) of a regular file: an empty file created
                os.close(self.create(path, stat.S_IMODE(mode), os.O_WRONLY))
                return 0
            kinds = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}
            kind = kinds.get(stat.S_IFMT(mode), "device")
            guard(lambda: fs.refuse(f"mknod ({kind}) {path}", errno.EPERM))
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return bytes(
                guard(
                    lambda: fs.call(
                        OpKind.READ,
                        path,
                        f"{size} bytes at {offset}",
                        None,
                        lambda: os.pread(fh, size, offset),
                    )
                )
            )

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            tid = int(mfusepy.fuse_get_context()[2])  # (0: the kernel's own writeback)
            return int(guard(lambda: fs.write(path, bytes(data), offset, fh, tid)))

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            record = Call(OpKind.FTRUNCATE, path, offset=length)

            def run() -> None:
                if fh is not None:
                    os.ftruncate(fh, length)
                else:
                    os.truncate(fs.real(path), length)

            guard(lambda: fs.call(OpKind.FTRUNCATE, path, f"to {length} bytes", record, run))
            return 0

        def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
            guard(lambda: fs.fallocate(path, mode, offset, size, fh))
            return 0

        def flush(self, path: str, fh: int) -> int:
            # close(2) of a descriptor: its error is what close returns (release's is not
            # seen by the program), so a close is recorded, and failed, here
            if fh != SYNC_FH:
                guard(lambda: fs.call(OpKind.CLOSE, path, "", None, lambda: None))
            return 0

        def release(self, path: str, fh: int) -> int:
            if fh != SYNC_FH:
                os.close(fh)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            op = OpKind.FDATASYNC if datasync else OpKind.FSYNC
            try:
                fs.call(op, path, "", Call(op, path), lambda: os.fsync(fh))
            except OSError as exc:
                fs.sync_failed(path, fh)
                raise error(exc.errno or errno.EIO) from exc
            return 0

        def opendir(self, path: str) -> int:
            return 0

        def releasedir(self, path: str, fh: int) -> int:
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            real = fs.real(path)

            def run() -> None:
                fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

            op = OpKind.DIRFSYNC
            guard(lambda: fs.call(op, path, "fsync", Call(op, path), run))
            return 0

        def unlink(self, path: str) -> int:
            guard(lambda: fs.unlink(path))
            return 0

        def rename(self, old: str, new: str, flags: int = 0) -> int:
            guard(lambda: fs.rename(old, new, flags))
            return 0

        def link(self, target: str, source: str) -> int:  # (mfusepy's names: target is new)
            guard(lambda: fs.link(source, target))
            return 0

        def symlink(self, target: str, source: str) -> int:  # target: the link's path
            guard(lambda: fs.symlink(target, source))
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            op = OpKind.MKDIR
            guard(
                lambda: fs.call(op, path, "", Call(op, path), lambda: os.mkdir(fs.real(path), mode))
            )
            return 0

        def rmdir(self, path: str) -> int:
            op = OpKind.RMDIR
            guard(lambda: fs.call(op, path, "", Call(op, path), lambda: os.rmdir(fs.real(path))))
            return 0

        def chmod(self, path: str, mode: int) -> int:
            guard(lambda: os.chmod(fs.real(path), mode))
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            guard(lambda: os.lchown(fs.real(path), uid, gid))
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            real = fs.real(path)  # (not following a symlink: `touch -h` changes the link)
            if times is None:
                guard(lambda: os.utime(real, follow_symlinks=False))
            else:
                guard(lambda: os.utime(real, ns=times, follow_symlinks=False))
            return 0

        def setxattr(
            self, path: str, name: str, value: bytes, options: int, position: int = 0
        ) -> int:
            guard(lambda: fs.refuse(f"setxattr {path} {name}", errno.ENOTSUP))
            return 0

        def removexattr(self, path: str, name: str) -> int:
            guard(lambda: fs.refuse(f"removexattr {path} {name}", errno.ENOTSUP))
            return 0

        def ioctl(self, path: str, cmd: int, arg: Any, fh: int, flags: int, data: Any) -> int:
            if _is_tty_ioctl(cmd):
                raise error(errno.ENOTTY)
            guard(lambda: fs.refuse(f"ioctl {cmd:#x} {path}", errno.ENOTTY))
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(fs.real(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            out = {k: getattr(st, k) for k in keys}
            out.update(f_files=st.f_files, f_flag=st.f_flag, f_frsize=st.f_frsize)
            out.update(f_namemax=st.f_namemax)
            return out

    return Ops()


def _fuse_class() -> Any:
    """mfusepy's `FUSE`, passing renameat2's flags on (its own drops them, which would
    turn a RENAME_NOREPLACE into a replace)."""
    import mfusepy

    class Fuse(mfusepy.FUSE):  # type: ignore[misc]
        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            decode = (self.encoding, self.errors)
            return int(self.operations.rename(old.decode(*decode), new.decode(*decode), flags))

    return Fuse


@contextlib.contextmanager
def mounted(fs: RecordingFS, mountpoint: str) -> Iterator[str]:
    """`fs` mounted at `mountpoint` (served by a thread of this process) while inside.

    No `direct_io`: shared mappings need the page cache (libfuse 3.14 cannot ask for
    FUSE_DIRECT_IO_ALLOW_MMAP); without `writeback_cache` the cache writes through."""
    reason = fuse_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    operations = make_operations(fs)
    fuse = _fuse_class()
    here = os.getcwd()  # libfuse changes the process's folder to / as it mounts

    def serve() -> None:
        fuse(operations, mountpoint, foreground=True, nothreads=True)

    thread = threading.Thread(target=serve, name="crashkit-fuse", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not os.path.ismount(mountpoint):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the FUSE mount at {mountpoint} did not come up")
        time.sleep(0.01)
    os.chdir(here)
    try:
        yield mountpoint
    finally:
        subprocess.run([FUSERMOUNT, "-u", mountpoint], check=False, capture_output=True)
        thread.join(timeout=10)
        os.chdir(here)


#: The sync shim's source, shipped with the package.
SHIM_SOURCE = Path(__file__).with_name("shim") / "crashkit_sync.c"


def find_compiler() -> str | None:
    """The C compiler to build the shim with: $CC, else cc, gcc or clang on the PATH."""
    named = os.environ.get("CC")
    if named:
        return shutil.which(named)
    return next((found for c in ("cc", "gcc", "clang") if (found := shutil.which(c))), None)


def _cache_dir() -> str:
    """Where built shims are kept: $XDG_CACHE_HOME/crashkit (~/.cache/crashkit), else a
    folder of this user's in the temp folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for folder in (
        os.path.join(base, "crashkit"),
        os.path.join(tempfile.gettempdir(), f"crashkit-{os.getuid()}"),
    ):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    return tempfile.mkdtemp(prefix="crashkit-shim-")


def sync_shim() -> tuple[str | None, str | None]:
    """The sync shim as a shared library, built on first use: (its path, None), or
    (None, a note saying why sync(2) is not visible). Kept per source version."""
    try:
        source = SHIM_SOURCE.read_bytes()
    except OSError:
        return None, f"sync(2) is not visible: the shim's source {SHIM_SOURCE} is missing"
    library = os.path.join(
        _cache_dir(), f"crashkit_sync-{hashlib.sha256(source).hexdigest()[:16]}.so"
    )
    if os.path.exists(library):
        return library, None
    compiler = find_compiler()
    if compiler is None:
        return None, "sync(2) is not visible: no C compiler to build the shim"
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(library), suffix=".so.tmp")
    os.close(handle)
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", partial, str(SHIM_SOURCE), "-ldl"]
    try:
        built = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        built = subprocess.CompletedProcess(command, 1, "", str(exc))
    if built.returncode != 0:
        os.unlink(partial)
        last = (built.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"sync(2) is not visible: the shim did not build ({last})"
    os.replace(partial, library)  # (atomic: a concurrent build writes the same file)
    return library, None


def record(
    command: Sequence[str] | str,
    image: DiskImage | None = None,
    *,
    plan: FaultPlan | None = None,
    model: FsyncModel = FsyncModel.KEEP_DIRTY,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> tuple[Recording, DiskImage]:
    """Run `command` (a shell line, or an argv) on a mount holding `image` and record it,
    failing the calls `plan` names (a failed fsync under `model`).

    The command runs in the current folder with `CRASHKIT_DIR` set to the mount, where it
    keeps its files, and the sync shim preloaded (appended to any LD_PRELOAD); returns
    the recording and the image it started from (what the replay starts at, with the
    same `model`)."""
    start = image or DiskImage()
    here = os.getcwd()
    shim, note = sync_shim()
    with tempfile.TemporaryDirectory(prefix="crashkit-real-") as scratch:
        backing, mountpoint = os.path.join(scratch, "backing"), os.path.join(scratch, "mnt")
        os.mkdir(mountpoint)
        materialise(start, backing)
        fs = RecordingFS(backing, plan, image=start, model=model)
        fs.recording.mount = os.path.realpath(mountpoint)
        if note is not None:
            fs.recording.notes.append(note)
        if not _WRITE_CALLS:
            fs.recording.notes.append(
                f"a write(2) may be recorded in parts: no system call numbers for "
                f"{platform.machine()} to merge them"
            )
        environment = {**os.environ, **(env or {}), "CRASHKIT_DIR": mountpoint}
        if shim is not None:
            preload = environment.get("LD_PRELOAD", "")
            environment["LD_PRELOAD"] = f"{preload}:{shim}" if preload else shim
            environment["CRASHKIT_SYNC_PATH"] = mountpoint + SYNC_PATH
        with mounted(fs, mountpoint):
            returncode, stdout, stderr = _run_interleaved(fs, command, here, environment, timeout)
        fs.recording.returncode = returncode
        fs.recording.stdout = stdout.decode("utf-8", "replace")
        fs.recording.stderr = stderr.decode("utf-8", "replace")
        fs.recording.final = read_folder(backing)
        return fs.recording, start


class _Said(list[Op]):
    """A trace that notes, as each call is appended, how much the program had written
    to its standard output before it: the output is drained first (the program wrote
    it before it made the call, so it is in the pipe by then)."""

    def __init__(self, drain: Any, at: list[int]) -> None:
        super().__init__()
        self._drain = drain
        self._at = at

    def append(self, op: Op) -> None:
        self._at.append(self._drain())
        super().append(op)


def _run_interleaved(
    fs: RecordingFS,
    command: Sequence[str] | str,
    here: str,
    environment: Mapping[str, str],
    timeout: float,
) -> tuple[int, bytes, bytes]:
    """Run `command` (on the mount), its standard output read as it comes and counted
    against the calls it makes (`Recording.stdout_at`): (exit code, stdout, stderr).
    Raises `subprocess.TimeoutExpired` past `timeout`; it, or any exception that leaves
    here (a second Ctrl-C's `SystemExit`), kills the process group first."""
    proc = subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=here,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    lock = threading.Lock()
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in streams:
        os.set_blocking(fd, False)

    def drain(fd: int) -> bool:
        """Read what is there; False at the end of the stream."""
        with lock:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if not chunk:
                    return False
                streams[fd].extend(chunk)

    stdout_fd = proc.stdout.fileno()

    def said() -> int:
        drain(stdout_fd)
        return len(out)

    at: list[int] = []
    fs.recording.stdout_at = at
    traced = _Said(said, at)
    traced.extend(fs.recording.trace)
    fs.recording.trace = traced
    deadline = time.monotonic() + timeout
    open_fds = set(streams)
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise subprocess.TimeoutExpired(command, timeout)
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.1))
            for fd in ready:
                if not drain(fd):
                    open_fds.discard(fd)
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except BaseException:  # the timeout, or a signal's SystemExit: no child outlives it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
        fs.recording.trace = list(traced)
    return returncode, bytes(out), bytes(err)


def materialise(image: DiskImage, folder: str) -> None:
    """Write `image` as an ordinary folder (created; its paths under `folder`)."""
    os.makedirs(folder, exist_ok=True)
    for directory in image.dirs:
        os.makedirs(os.path.join(folder, directory.lstrip("/")), exist_ok=True)
    for path, data in image.files.items():
        real = os.path.join(folder, path.lstrip("/"))
        os.makedirs(os.path.dirname(real), exist_ok=True)
        with open(real, "wb") as f:
            f.write(data)
    for path, target in image.links.items():
        real = os.path.join(folder, path.lstrip("/"))
        os.makedirs(os.path.dirname(real), exist_ok=True)
        os.symlink(target, real)


def read_folder(folder: str) -> DiskImage:
    """An ordinary folder as a `DiskImage` (regular files, folders and symlinks; other
    special files are left out, as the replay has none)."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    dirs: list[str] = []
    for here, subdirs, names in os.walk(folder):
        rel = "/" + os.path.relpath(here, folder).lstrip(".").lstrip("/")
        if not subdirs and not names and rel != "/":
            dirs.append(rel)
        for name in [*names, *subdirs]:  # (a symlink to a folder is listed as a folder)
            path = os.path.join(here, name)
            if os.path.islink(path):
                links[posixpath.join(rel, name)] = os.readlink(path)
            elif name in names and os.path.isfile(path):
                with open(path, "rb") as f:
                    files[posixpath.join(rel, name)] = f.read()
    return DiskImage(files=files, dirs=tuple(dirs), links=links)
