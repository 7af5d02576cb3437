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
directory's fsync made durable is its entries; nothing else is durable. Everything in
the starting image is durable. A failed `fsync`/`fdatasync` applies the chosen
`FsyncModel` to the file's dirty range: kept dirty, marked clean without being written
(a later fsync does not persist it), or dropped (the recorder rewrites the backing file,
so the process reads back what the disk holds). `crashkit.faults.replay` replays the
recorded calls from the image, offline, and gives a `Snapshot` after any of them, from
which `crashkit.faults.crash` derives the crash states under any file-system profile:
the recording is the only thing that needs FUSE; checks run on plain folders
(`materialise`).

Recorded: create/open (an open that creates, or truncates, changes the disk), write
(offset and bytes), truncate, unlink, rename (a replace when it overwrites), mkdir,
rmdir, fsync, fdatasync, a directory's fsync, close. Not recorded: reads and metadata
(they change nothing durable), links, xattrs, `mmap` (a mapping's writes reach the mount
only as the kernel flushes them: a program that persists through `msync` is not
modelled), and writes the kernel keeps in its page cache (the mount is opened with
`direct_io`, so every write reaches the recorder in the order the program made it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import posixpath
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
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
]

#: What the recorder needs beside Python: the kernel's FUSE device, libfuse 3's mount
#: helper (Debian: fuse3) and a binding (mfusepy, from PyPI).
FUSE_DEVICE = "/dev/fuse"
FUSERMOUNT = "fusermount3"


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

    def write(self, path: str, payload: bytes, offset: int, fh: int) -> int:
        """A write; one the plan cuts short writes only its first bytes and says so."""
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
        return int(
            self.call(
                OpKind.WRITE, path, detail, record, lambda: os.pwrite(fh, payload, offset), (rule,)
            )
        )

    def rename(self, old: str, new: str) -> None:
        """A rename; the kernel's own to a hidden name is the unlink of an open file, or
        the first half of a replace of one (then not a crash point: the program's
        replace is atomic)."""
        real_old, real_new = self.real(old), self.real(new)
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
        hid = self._hid.pop(new, None)
        op = OpKind.REPLACE if hid is not None or os.path.exists(real_new) else OpKind.RENAME
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

    def sync_failed(self, path: str, fh: int) -> None:
        """A failed fsync of `path` (open as `fh`): apply the fsync model; under DROP the
        backing file is rewritten to what the disk holds (not recorded: not the program's)."""
        with self._lock:
            dropped = self.model.fsync_failed(path)
        if dropped is not None:
            os.ftruncate(fh, len(dropped))
            os.pwrite(fh, dropped, 0)

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


def make_operations(fs: RecordingFS) -> Any:
    """The mfusepy `Operations` that route every call of the mount through `fs`."""
    import mfusepy

    error = mfusepy.FuseOSError

    def guard(run: Any) -> Any:
        try:
            return run()
        except OSError as exc:
            raise error(exc.errno or errno.EIO) from exc

    class Ops(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = guard(lambda: os.lstat(fs.real(path)))
            keys = ("st_atime_ns", "st_ctime_ns", "st_mtime_ns", "st_gid", "st_mode")
            out = {k: getattr(st, k) for k in keys}
            out.update(st_nlink=st.st_nlink, st_size=st.st_size, st_uid=st.st_uid)
            return out

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *guard(lambda: os.listdir(fs.real(path)))]

        def access(self, path: str, amode: int) -> int:
            if not os.access(fs.real(path), amode):
                raise error(errno.EACCES)
            return 0

        def open(self, path: str, flags: int) -> int:
            real = fs.real(path)
            truncates = bool(flags & os.O_TRUNC) and os.path.exists(real)
            record = Call(OpKind.OPEN, path, truncates=True) if truncates else None
            return int(
                guard(lambda: fs.call(OpKind.OPEN, path, "", record, lambda: os.open(real, flags)))
            )

        def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
            real = fs.real(path)
            record = Call(OpKind.OPEN, path, creates=True, truncates=True)
            access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
            return int(
                guard(
                    lambda: fs.call(
                        OpKind.OPEN,
                        path,
                        "O_CREAT",
                        record,
                        lambda: os.open(real, access | os.O_CREAT | os.O_TRUNC, mode),
                    )
                )
            )

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
            return int(guard(lambda: fs.write(path, bytes(data), offset, fh)))

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            record = Call(OpKind.FTRUNCATE, path, offset=length)

            def run() -> None:
                if fh is not None:
                    os.ftruncate(fh, length)
                else:
                    os.truncate(fs.real(path), length)

            guard(lambda: fs.call(OpKind.FTRUNCATE, path, f"to {length} bytes", record, run))
            return 0

        def flush(self, path: str, fh: int) -> int:
            # close(2) of a descriptor: its error is what close returns (release's is not
            # seen by the program), so a close is recorded, and failed, here
            guard(lambda: fs.call(OpKind.CLOSE, path, "", None, lambda: None))
            return 0

        def release(self, path: str, fh: int) -> int:
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

        def rename(self, old: str, new: str) -> int:
            guard(lambda: fs.rename(old, new))
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

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            guard(lambda: os.utime(fs.real(path), ns=times) if times else os.utime(fs.real(path)))
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(fs.real(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            out = {k: getattr(st, k) for k in keys}
            out.update(f_files=st.f_files, f_flag=st.f_flag, f_frsize=st.f_frsize)
            out.update(f_namemax=st.f_namemax)
            return out

    return Ops()


@contextlib.contextmanager
def mounted(fs: RecordingFS, mountpoint: str) -> Iterator[str]:
    """`fs` mounted at `mountpoint` (served by a thread of this process) while inside."""
    import mfusepy

    reason = fuse_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    operations = make_operations(fs)
    here = os.getcwd()  # libfuse changes the process's folder to / as it mounts

    def serve() -> None:
        mfusepy.FUSE(operations, mountpoint, foreground=True, nothreads=True, direct_io=True)

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
    keeps its files; returns the recording and the image it started from (what the replay
    starts at, with the same `model`)."""
    start = image or DiskImage()
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="crashkit-real-") as scratch:
        backing, mountpoint = os.path.join(scratch, "backing"), os.path.join(scratch, "mnt")
        os.mkdir(mountpoint)
        materialise(start, backing)
        fs = RecordingFS(backing, plan, image=start, model=model)
        with mounted(fs, mountpoint):
            done = subprocess.run(
                command,
                shell=isinstance(command, str),
                cwd=here,
                env={**os.environ, **(env or {}), "CRASHKIT_DIR": mountpoint},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        fs.recording.returncode = done.returncode
        fs.recording.stdout, fs.recording.stderr = done.stdout, done.stderr
        fs.recording.final = read_folder(backing)
        return fs.recording, start


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


def read_folder(folder: str) -> DiskImage:
    """An ordinary folder as a `DiskImage` (regular files and folders only)."""
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    for here, subdirs, names in os.walk(folder):
        rel = "/" + os.path.relpath(here, folder).lstrip(".").lstrip("/")
        if not subdirs and not names and rel != "/":
            dirs.append(rel)
        for name in names:
            path = os.path.join(here, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    files[posixpath.join(rel, name)] = f.read()
    return DiskImage(files=files, dirs=tuple(dirs))
