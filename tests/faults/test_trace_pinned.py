"""Pinned traces: every field of every op of scripted runs, exactly as recorded.

The expected values were recorded from the interception layer before it was
refactored onto one fault/record helper; any change to what a call reports (op, path,
detail, error, mutating, injected, order), to what it raises or to what it leaves on the
disk shows up here. Update them only for an intended change of the trace format.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule, FsyncModel

D = "/data"
P = "/data/log.jsonl"

Raised = tuple[str, str | None, str | None, Any]


def raised(call: Callable[[], object]) -> Raised | None:
    """What `call` raised: exception type name, errno name, strerror, filename."""
    try:
        call()
    except OSError as exc:
        code = errno.errorcode.get(exc.errno) if exc.errno is not None else None
        return (type(exc).__name__, code, exc.strerror, exc.filename)
    return None


def os_calls(crash: CrashFS) -> list[object]:
    """Descriptor-level calls: open/write/short write/injected errors/fsync/close/rename/dirfsync."""
    crash.configure(
        plan=FaultPlan(
            (
                FaultRule("write", P, nth=2, short_write=3),
                FaultRule("write", P, nth=3, errno="ENOSPC"),
                FaultRule("fsync", P, nth=1, errno="EIO"),
                FaultRule("close", P, nth=1, errno="EIO"),
                FaultRule("dirfsync", D, nth=1, errno="EIO"),
                FaultRule("rename", "/data/b.tmp"),
            )
        ),
        model=FsyncModel.MARK_CLEAN,
    )
    crash.start(DiskImage({P: b"a\n"}, (D,)))
    out: list[object] = []
    out.append(raised(lambda: os.open("/data/missing", os.O_RDONLY)))
    fd = os.open(P, os.O_RDWR | os.O_APPEND)
    out.append(os.write(fd, b"bb\n"))
    out.append(os.write(fd, b"cccc\n"))  # short write: 3 bytes
    out.append(raised(lambda: os.write(fd, b"d\n")))
    out.append(raised(lambda: os.fsync(fd)))  # MARK_CLEAN applies
    os.fsync(fd)
    out.append(os.read(fd, 100))
    os.lseek(fd, 0, os.SEEK_SET)
    out.append(os.read(fd, 4))
    os.ftruncate(fd, 5)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    out.append(raised(lambda: os.close(fd)))  # injected, yet the descriptor is gone
    out.append(raised(lambda: os.write(fd, b"x")))
    tmp = os.open("/data/a.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o644)
    os.write(tmp, b"new\n")
    os.fdatasync(tmp)
    os.close(tmp)
    out.append(raised(lambda: os.rename("/data/a.tmp", "/data/b.tmp")))  # matches the dest
    os.replace("/data/a.tmp", "/data/c")
    os.rename("/data/c", "/data/d")
    dfd = os.open(D, os.O_RDONLY | os.O_DIRECTORY)
    out.append(raised(lambda: os.fsync(dfd)))
    os.fsync(dfd)
    os.close(dfd)
    os.mkdir("/data/sub")
    os.rmdir("/data/sub")
    out.append(raised(lambda: os.rmdir("/data/nope")))
    os.unlink("/data/d")
    out.append(raised(lambda: os.remove("/data/d")))
    os.truncate(P, 2)
    os.sync()
    return out


def file_objects(crash: CrashFS) -> list[object]:
    """open()/pathlib/os.fdopen file objects: buffered writes, flush, read, truncate, close."""
    crash.configure(
        plan=FaultPlan(
            (
                FaultRule("write", "/data/f.txt", nth=2, short_write=1),
                FaultRule("write", "/data/f.txt", nth=3, errno="EDQUOT"),
                FaultRule("flush", "/data/f.txt", nth=2, errno="ENOSPC"),
                FaultRule("close", "/data/g.bin", errno="EIO"),
                FaultRule("open", "/data/h.txt", errno="EACCES"),
                FaultRule("read", "/data/g.bin", nth=2),
                FaultRule("ftruncate", "/data/g.bin", nth=2, errno="EFBIG"),
            )
        ),
        model=FsyncModel.KEEP_DIRTY,
    )
    crash.start(DiskImage({"/data/g.bin": b"0123456789\nab\n"}, (D,)))
    out: list[object] = []
    f = open("/data/f.txt", "w", encoding="utf-8")  # noqa: SIM115 - closed below, on purpose
    out.append(f.write("hello\n"))
    out.append(f.write("world\n"))  # short write: 1 char
    out.append(raised(lambda: f.write("x")))
    f.flush()
    f.write("more")
    out.append(raised(f.flush))
    f.writelines(["a", "b\n"])
    os.fsync(f.fileno())
    f.close()
    with open("/data/g.bin", "r+b") as g:
        out.append(g.read(3))
        out.append(raised(g.readline))
        out.append(g.readline())
        g.seek(0)
        out.append(g.tell())
        out.append(list(g))
        out.append(g.truncate(4))
        out.append(raised(lambda: g.truncate(2)))
        fcntl.flock(g, fcntl.LOCK_SH)
        out.append(raised(g.close))
    out.append(raised(lambda: open("/data/h.txt", "w")))  # noqa: SIM115
    out.append(raised(lambda: open("/data/nope/x")))  # noqa: SIM115
    p = pathlib.Path("/data/p.txt")
    p.write_bytes(b"pp\n")
    out.append(p.read_text())
    fd = os.open("/data/p.txt", os.O_RDWR)
    with os.fdopen(fd, "r+b") as q:
        q.write(b"Q")
        out.append(q.read())
    with open("/data/p.txt", "a+b") as r:
        r.write(b"z")
        r.seek(0)
        out.append(r.read())
    return out


def odd_calls(crash: CrashFS) -> list[object]:
    """flock conflicts, dup, pread/pwrite, truncate by fd, bad descriptors, real ENOSPC."""
    crash.configure(disk_size=40, plan=FaultPlan((FaultRule("flock", P, nth=3, errno="ENOLCK"),)))
    crash.start(DiskImage({P: b"abcdef\n"}, ("/a/b/c",)))
    out: list[object] = []
    x = os.open(P, os.O_RDWR)
    y = os.open(P, os.O_RDONLY)
    fcntl.flock(x, fcntl.LOCK_EX)
    out.append(raised(lambda: fcntl.flock(y, fcntl.LOCK_SH | fcntl.LOCK_NB)))
    out.append(raised(lambda: fcntl.flock(y, fcntl.LOCK_SH)))  # injected
    out.append(raised(lambda: fcntl.flock(y, fcntl.LOCK_SH)))  # would block forever
    out.append(raised(lambda: fcntl.flock(99, fcntl.LOCK_SH)))
    fcntl.flock(x, fcntl.LOCK_UN)
    z = os.dup(x)
    os.close(x)
    out.append(os.pwrite(z, b"XY", 1))
    out.append(os.pread(z, 3, 0))
    os.truncate(z, 3)
    out.append(raised(lambda: os.write(z, b"0123456789" * 5)))
    out.append(raised(lambda: os.fsync(99)))
    out.append(raised(lambda: os.close(99)))
    os.close(z)
    os.close(y)
    os.removedirs("/a/b/c")
    f = open("/data/big", "wb")  # noqa: SIM115 - its close must fail
    f.write(b"z" * 60)
    out.append(raised(f.close))
    out.append(raised(lambda: os.replace("/nope", "/data/q")))
    out.append(raised(lambda: os.mkdir("/data")))
    return out


SCRIPTS: dict[str, Callable[[CrashFS], list[object]]] = {
    "os_calls": os_calls,
    "file_objects": file_objects,
    "odd_calls": odd_calls,
}


def run(crash: CrashFS, name: str) -> dict[str, object]:
    results = SCRIPTS[name](crash)
    crash.stop()
    return {
        "results": results,
        "trace": [
            (o.index, o.op, o.path, o.detail, o.error, o.mutating, o.injected) for o in crash.trace
        ],
        "text": [str(o) for o in crash.trace],
        "points": crash.crash_points(),
        "visible": dict(crash.visible_image().files),
        "durable": dict(crash.durable_image().files),
    }


@pytest.fixture
def fresh() -> Iterator[CrashFS]:
    fs = CrashFS()
    try:
        yield fs
    finally:
        fs.stop()


# -- recorded before the refactor ----------------------------------------------------------

EXPECTED: dict[str, dict[str, object]] = {
    "os_calls": {
        "results": [
            ("FileNotFoundError", "ENOENT", "No such file or directory", "/data/missing"),
            3,
            3,
            ("OSError", "ENOSPC", "No space left on device", "/data/log.jsonl"),
            ("OSError", "EIO", "Input/output error", "/data/log.jsonl"),
            b"",
            b"a\nbb",
            ("OSError", "EIO", "Input/output error", "/data/log.jsonl"),
            ("OSError", "EBADF", "Bad file descriptor", "3"),
            ("OSError", "EIO", "Input/output error", "/data/a.tmp"),
            ("OSError", "EIO", "Input/output error", "/data"),
            ("FileNotFoundError", "ENOENT", "No such file or directory", "/data/nope"),
            ("FileNotFoundError", "ENOENT", "No such file or directory", "/data/d"),
        ],
        "trace": [
            (0, "open", "/data/missing", "O_RDONLY", "ENOENT", False, False),
            (1, "open", "/data/log.jsonl", "O_RDWR|O_APPEND", None, False, False),
            (2, "write", "/data/log.jsonl", "3 bytes", None, True, False),
            (3, "write", "/data/log.jsonl", "short write: 3 of 5 bytes", None, True, True),
            (4, "write", "/data/log.jsonl", "2 bytes", "ENOSPC", False, True),
            (5, "fsync", "/data/log.jsonl", "", "EIO", True, True),
            (6, "fsync", "/data/log.jsonl", "", None, True, False),
            (7, "read", "/data/log.jsonl", "0 bytes", None, False, False),
            (8, "read", "/data/log.jsonl", "4 bytes", None, False, False),
            (9, "ftruncate", "/data/log.jsonl", "to 5 bytes", None, True, False),
            (10, "flock", "/data/log.jsonl", "LOCK_EX|LOCK_NB", None, False, False),
            (11, "close", "/data/log.jsonl", "", "EIO", False, True),
            (12, "write", "<fd 3>", "", "EBADF", False, False),
            (13, "open", "/data/a.tmp", "O_WRONLY|O_CREAT|O_EXCL|O_TRUNC", None, True, False),
            (14, "write", "/data/a.tmp", "4 bytes", None, True, False),
            (15, "fdatasync", "/data/a.tmp", "", None, True, False),
            (16, "close", "/data/a.tmp", "", None, False, False),
            (17, "rename", "/data/a.tmp", "-> /data/b.tmp", "EIO", False, True),
            (18, "replace", "/data/a.tmp", "-> /data/c", None, True, False),
            (19, "rename", "/data/c", "-> /data/d", None, True, False),
            (20, "open", "/data", "O_RDONLY|O_DIRECTORY", None, False, False),
            (21, "dirfsync", "/data", "fsync", "EIO", True, True),
            (22, "dirfsync", "/data", "fsync", None, True, False),
            (23, "close", "/data", "", None, False, False),
            (24, "mkdir", "/data/sub", "", None, True, False),
            (25, "rmdir", "/data/sub", "", None, True, False),
            (26, "rmdir", "/data/nope", "", "ENOENT", False, False),
            (27, "unlink", "/data/d", "", None, True, False),
            (28, "unlink", "/data/d", "", "ENOENT", False, False),
            (29, "ftruncate", "/data/log.jsonl", "truncate() to 2 bytes", None, True, False),
            (30, "sync", "/", "", None, True, False),
        ],
        "text": [
            "#0 open /data/missing (O_RDONLY) -> ENOENT",
            "#1 open /data/log.jsonl (O_RDWR|O_APPEND)",
            "#2 write /data/log.jsonl (3 bytes)",
            "#3 write /data/log.jsonl (short write: 3 of 5 bytes) [injected]",
            "#4 write /data/log.jsonl (2 bytes) -> ENOSPC [injected]",
            "#5 fsync /data/log.jsonl -> EIO [injected]",
            "#6 fsync /data/log.jsonl",
            "#7 read /data/log.jsonl (0 bytes)",
            "#8 read /data/log.jsonl (4 bytes)",
            "#9 ftruncate /data/log.jsonl (to 5 bytes)",
            "#10 flock /data/log.jsonl (LOCK_EX|LOCK_NB)",
            "#11 close /data/log.jsonl -> EIO [injected]",
            "#12 write <fd 3> -> EBADF",
            "#13 open /data/a.tmp (O_WRONLY|O_CREAT|O_EXCL|O_TRUNC)",
            "#14 write /data/a.tmp (4 bytes)",
            "#15 fdatasync /data/a.tmp",
            "#16 close /data/a.tmp",
            "#17 rename /data/a.tmp (-> /data/b.tmp) -> EIO [injected]",
            "#18 replace /data/a.tmp (-> /data/c)",
            "#19 rename /data/c (-> /data/d)",
            "#20 open /data (O_RDONLY|O_DIRECTORY)",
            "#21 dirfsync /data (fsync) -> EIO [injected]",
            "#22 dirfsync /data (fsync)",
            "#23 close /data",
            "#24 mkdir /data/sub",
            "#25 rmdir /data/sub",
            "#26 rmdir /data/nope -> ENOENT",
            "#27 unlink /data/d",
            "#28 unlink /data/d -> ENOENT",
            "#29 ftruncate /data/log.jsonl (truncate() to 2 bytes)",
            "#30 sync /",
        ],
        "points": [2, 3, 5, 6, 9, 13, 14, 15, 18, 19, 21, 22, 24, 25, 27, 29, 30],
        "visible": {"/data/log.jsonl": b"a\n"},
        "durable": {"/data/log.jsonl": b"a\n"},
    },
    "file_objects": {
        "results": [
            6,
            1,
            ("OSError", "EDQUOT", "Disk quota exceeded", "/data/f.txt"),
            ("OSError", "ENOSPC", "No space left on device", "/data/f.txt"),
            b"012",
            ("OSError", "EIO", "Input/output error", "/data/g.bin"),
            b"3456789\n",
            0,
            [b"0123456789\n", b"ab\n"],
            4,
            ("OSError", "EFBIG", "File too large", "/data/g.bin"),
            ("OSError", "EIO", "Input/output error", "/data/g.bin"),
            ("PermissionError", "EACCES", "Permission denied", "/data/h.txt"),
            ("FileNotFoundError", "ENOENT", "No such file or directory", "/data/nope/x"),
            "pp\n",
            b"p\n",
            b"Qp\nz",
        ],
        "trace": [
            (0, "open", "/data/f.txt", "mode 'w'", None, True, False),
            (1, "write", "/data/f.txt", "6 chars", None, True, False),
            (2, "write", "/data/f.txt", "short write: 1 of 6 chars", None, True, True),
            (3, "write", "/data/f.txt", "1 chars", "EDQUOT", False, True),
            (4, "flush", "/data/f.txt", "", None, True, False),
            (5, "write", "/data/f.txt", "4 chars", None, True, False),
            (6, "flush", "/data/f.txt", "", "ENOSPC", False, True),
            (7, "write", "/data/f.txt", "3 chars", None, True, False),
            (8, "fsync", "/data/f.txt", "", None, True, False),
            (9, "close", "/data/f.txt", "", None, True, False),
            (10, "open", "/data/g.bin", "mode 'r+b'", None, False, False),
            (11, "read", "/data/g.bin", "read()", None, False, False),
            (12, "read", "/data/g.bin", "readline()", "EIO", False, True),
            (13, "read", "/data/g.bin", "readline()", None, False, False),
            (14, "read", "/data/g.bin", "iteration", None, False, False),
            (15, "ftruncate", "/data/g.bin", "truncate() to 4", None, True, False),
            (16, "ftruncate", "/data/g.bin", "truncate()", "EFBIG", False, True),
            (17, "flock", "/data/g.bin", "LOCK_SH", None, False, False),
            (18, "close", "/data/g.bin", "", "EIO", False, True),
            (19, "open", "/data/h.txt", "mode 'w'", "EACCES", False, True),
            (20, "open", "/data/nope/x", "mode 'r'", "ENOENT", False, False),
            (21, "open", "/data/p.txt", "mode 'wb'", None, True, False),
            (22, "write", "/data/p.txt", "3 bytes", None, True, False),
            (23, "close", "/data/p.txt", "", None, True, False),
            (24, "open", "/data/p.txt", "mode 'r'", None, False, False),
            (25, "read", "/data/p.txt", "read()", None, False, False),
            (26, "close", "/data/p.txt", "", None, False, False),
            (27, "open", "/data/p.txt", "O_RDWR", None, False, False),
            (28, "write", "/data/p.txt", "1 bytes", None, True, False),
            (29, "read", "/data/p.txt", "read()", None, False, False),
            (30, "close", "/data/p.txt", "", None, False, False),
            (31, "open", "/data/p.txt", "mode 'a+b'", None, False, False),
            (32, "write", "/data/p.txt", "1 bytes", None, True, False),
            (33, "read", "/data/p.txt", "read()", None, False, False),
            (34, "close", "/data/p.txt", "", None, False, False),
        ],
        "text": [
            "#0 open /data/f.txt (mode 'w')",
            "#1 write /data/f.txt (6 chars)",
            "#2 write /data/f.txt (short write: 1 of 6 chars) [injected]",
            "#3 write /data/f.txt (1 chars) -> EDQUOT [injected]",
            "#4 flush /data/f.txt",
            "#5 write /data/f.txt (4 chars)",
            "#6 flush /data/f.txt -> ENOSPC [injected]",
            "#7 write /data/f.txt (3 chars)",
            "#8 fsync /data/f.txt",
            "#9 close /data/f.txt",
            "#10 open /data/g.bin (mode 'r+b')",
            "#11 read /data/g.bin (read())",
            "#12 read /data/g.bin (readline()) -> EIO [injected]",
            "#13 read /data/g.bin (readline())",
            "#14 read /data/g.bin (iteration)",
            "#15 ftruncate /data/g.bin (truncate() to 4)",
            "#16 ftruncate /data/g.bin (truncate()) -> EFBIG [injected]",
            "#17 flock /data/g.bin (LOCK_SH)",
            "#18 close /data/g.bin -> EIO [injected]",
            "#19 open /data/h.txt (mode 'w') -> EACCES [injected]",
            "#20 open /data/nope/x (mode 'r') -> ENOENT",
            "#21 open /data/p.txt (mode 'wb')",
            "#22 write /data/p.txt (3 bytes)",
            "#23 close /data/p.txt",
            "#24 open /data/p.txt (mode 'r')",
            "#25 read /data/p.txt (read())",
            "#26 close /data/p.txt",
            "#27 open /data/p.txt (O_RDWR)",
            "#28 write /data/p.txt (1 bytes)",
            "#29 read /data/p.txt (read())",
            "#30 close /data/p.txt",
            "#31 open /data/p.txt (mode 'a+b')",
            "#32 write /data/p.txt (1 bytes)",
            "#33 read /data/p.txt (read())",
            "#34 close /data/p.txt",
        ],
        "points": [0, 1, 2, 4, 5, 7, 8, 9, 15, 21, 22, 23, 28, 32],
        "visible": {
            "/data/f.txt": b"hello\nwmoreab\n",
            "/data/g.bin": b"0123",
            "/data/p.txt": b"Qp\nz",
        },
        "durable": {"/data/g.bin": b"0123456789\nab\n"},
    },
    "odd_calls": {
        "results": [
            ("BlockingIOError", "EAGAIN", "Resource temporarily unavailable", "/data/log.jsonl"),
            ("OSError", "ENOLCK", "No locks available", "/data/log.jsonl"),
            (
                "OSError",
                "EDEADLOCK",
                "Resource deadlock avoided (flock would block forever)",
                "/data/log.jsonl",
            ),
            ("OSError", "EBADF", "Bad file descriptor", "99"),
            2,
            b"aXY",
            ("OSError", "ENOSPC", "No space left on device", "log.jsonl"),
            ("OSError", "EBADF", "Bad file descriptor", "99"),
            ("OSError", "EBADF", "Bad file descriptor", "99"),
            ("OSError", "ENOSPC", "No space left on device", "big"),
            ("FileNotFoundError", "ENOENT", "No such file or directory", "/nope"),
            ("FileExistsError", "EEXIST", "File exists", "/data"),
        ],
        "trace": [
            (0, "open", "/data/log.jsonl", "O_RDWR", None, False, False),
            (1, "open", "/data/log.jsonl", "O_RDONLY", None, False, False),
            (2, "flock", "/data/log.jsonl", "LOCK_EX", None, False, False),
            (3, "flock", "/data/log.jsonl", "LOCK_SH|LOCK_NB", "EAGAIN", False, False),
            (4, "flock", "/data/log.jsonl", "LOCK_SH", "ENOLCK", False, True),
            (5, "flock", "/data/log.jsonl", "LOCK_SH", "EDEADLOCK", False, False),
            (6, "flock", "<fd 99>", "", "EBADF", False, False),
            (7, "flock", "/data/log.jsonl", "LOCK_UN", None, False, False),
            (8, "close", "/data/log.jsonl", "", None, False, False),
            (9, "write", "/data/log.jsonl", "2 bytes at 1", None, True, False),
            (10, "read", "/data/log.jsonl", "3 bytes at 0", None, False, False),
            (11, "ftruncate", "/data/log.jsonl", "to 3 bytes", None, True, False),
            (12, "write", "/data/log.jsonl", "50 bytes", "ENOSPC", False, False),
            (13, "fsync", "<fd 99>", "", "EBADF", False, False),
            (14, "close", "<fd 99>", "", "EBADF", False, False),
            (15, "close", "/data/log.jsonl", "", None, False, False),
            (16, "close", "/data/log.jsonl", "", None, False, False),
            (17, "rmdir", "/a/b/c", "", None, True, False),
            (18, "rmdir", "/a/b", "", None, True, False),
            (19, "rmdir", "/a", "", None, True, False),
            (20, "rmdir", "/", "", "ENOTEMPTY", False, False),
            (21, "open", "/data/big", "mode 'wb'", None, True, False),
            (22, "write", "/data/big", "60 bytes", None, True, False),
            (23, "close", "/data/big", "", "ENOSPC", False, False),
            (24, "replace", "/nope", "-> /data/q", "ENOENT", False, False),
            (25, "mkdir", "/data", "", "EEXIST", False, False),
        ],
        "text": [
            "#0 open /data/log.jsonl (O_RDWR)",
            "#1 open /data/log.jsonl (O_RDONLY)",
            "#2 flock /data/log.jsonl (LOCK_EX)",
            "#3 flock /data/log.jsonl (LOCK_SH|LOCK_NB) -> EAGAIN",
            "#4 flock /data/log.jsonl (LOCK_SH) -> ENOLCK [injected]",
            "#5 flock /data/log.jsonl (LOCK_SH) -> EDEADLOCK",
            "#6 flock <fd 99> -> EBADF",
            "#7 flock /data/log.jsonl (LOCK_UN)",
            "#8 close /data/log.jsonl",
            "#9 write /data/log.jsonl (2 bytes at 1)",
            "#10 read /data/log.jsonl (3 bytes at 0)",
            "#11 ftruncate /data/log.jsonl (to 3 bytes)",
            "#12 write /data/log.jsonl (50 bytes) -> ENOSPC",
            "#13 fsync <fd 99> -> EBADF",
            "#14 close <fd 99> -> EBADF",
            "#15 close /data/log.jsonl",
            "#16 close /data/log.jsonl",
            "#17 rmdir /a/b/c",
            "#18 rmdir /a/b",
            "#19 rmdir /a",
            "#20 rmdir / -> ENOTEMPTY",
            "#21 open /data/big (mode 'wb')",
            "#22 write /data/big (60 bytes)",
            "#23 close /data/big -> ENOSPC",
            "#24 replace /nope (-> /data/q) -> ENOENT",
            "#25 mkdir /data -> EEXIST",
        ],
        "points": [9, 11, 17, 18, 19, 21, 22],
        "visible": {"/data/big": b"", "/data/log.jsonl": b"aXY"},
        "durable": {"/data/log.jsonl": b"abcdef\n"},
    },
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_trace_is_pinned(fresh: CrashFS, name: str) -> None:
    got, want = run(fresh, name), EXPECTED[name]
    for key in want:  # field by field, for a readable diff
        assert got[key] == want[key], key
    assert got == want


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_record_off_raises_and_leaves_the_same_but_keeps_no_trace(name: str) -> None:
    fs = CrashFS(record=False)
    try:
        results = SCRIPTS[name](fs)
        visible = dict(fs.visible_image().files)
        durable = dict(fs.durable_image().files)
    finally:
        fs.stop()
    assert fs.trace == [] and fs.crash_points() == []
    assert results == EXPECTED[name]["results"]
    assert visible == EXPECTED[name]["visible"]
    assert durable == EXPECTED[name]["durable"]
