"""Fault rules fire on exactly the calls they name, with the errno they name."""

from __future__ import annotations

import errno
import fcntl
import os
import pathlib
from collections.abc import Callable

import pytest

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule
from tests.faults.conftest import DIR, PATH

APPEND = os.O_WRONLY | os.O_APPEND


def start(crash: CrashFS, *rules: FaultRule, image: DiskImage | None = None) -> None:
    crash.configure(plan=FaultPlan(rules))
    crash.start(image if image is not None else DiskImage({PATH: b"a\n"}))


def file_bytes(path: str = PATH) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_rule_fires_on_exactly_the_nth_call_and_the_failed_write_writes_nothing(
    crash: CrashFS,
) -> None:
    start(crash, FaultRule("write", PATH, nth=2))
    fd = os.open(PATH, APPEND)
    assert os.write(fd, b"1\n") == 2
    with pytest.raises(OSError) as info:
        os.write(fd, b"2\n")
    assert info.value.errno == errno.EIO
    assert info.value.filename == PATH
    assert os.write(fd, b"3\n") == 2
    assert file_bytes() == b"a\n1\n3\n"


def test_persistent_rule_fails_the_nth_and_every_later_call(crash: CrashFS) -> None:
    start(crash, FaultRule("write", PATH, nth=2, persistent=True))
    fd = os.open(PATH, APPEND)
    outcomes = []
    for i in range(4):
        try:
            os.write(fd, b"%d\n" % i)
            outcomes.append("ok")
        except OSError as exc:
            outcomes.append(errno.errorcode[exc.errno or 0])
    assert outcomes == ["ok", "EIO", "EIO", "EIO"]
    assert file_bytes() == b"a\n0\n"


def test_rule_path_pattern_only_counts_matching_paths(crash: CrashFS) -> None:
    start(crash, FaultRule("write", "/data/*.tmp"))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"x\n")  # not a .tmp: neither fails nor counts
    tmp = os.open(PATH + ".tmp", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        os.write(tmp, b"y\n")


def test_short_write_writes_exactly_k_bytes_and_returns_k(crash: CrashFS) -> None:
    start(crash, FaultRule("write", PATH, short_write=3))
    fd = os.open(PATH, APPEND)
    assert os.write(fd, b"bcdef\n") == 3
    assert file_bytes() == b"a\nbcd"
    assert os.write(fd, b"g\n") == 2  # once only
    writes = [op for op in crash.trace if op.op == "write"]
    assert [(op.detail, op.injected, op.error) for op in writes] == [
        ("short write: 3 of 6 bytes", True, None),
        ("2 bytes", False, None),
    ]


def test_short_write_on_a_file_object(crash: CrashFS) -> None:
    start(crash, FaultRule("write", PATH, short_write=1))
    with open(PATH, "ab") as f:
        assert f.write(b"xyz") == 1
    assert file_bytes() == b"a\nx"


def _fsync_dir() -> None:
    fd = os.open(DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ftruncate() -> None:
    fd = os.open(PATH, os.O_WRONLY)
    os.ftruncate(fd, 0)


def _buffered_flush() -> None:
    f = open(PATH, "ab")  # noqa: SIM115 - the flush, not the close, must fail
    f.write(b"x")
    f.flush()


def _flock() -> None:
    fd = os.open(PATH, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


CALLS: dict[str, Callable[[], object]] = {
    "open": lambda: os.open(PATH, os.O_RDONLY),
    "write": lambda: os.write(os.open(PATH, APPEND), b"x"),
    "read": lambda: os.read(os.open(PATH, os.O_RDONLY), 10),
    "fsync": lambda: os.fsync(os.open(PATH, APPEND)),
    "fdatasync": lambda: os.fdatasync(os.open(PATH, APPEND)),
    "dirfsync": _fsync_dir,
    "ftruncate": _ftruncate,
    "replace": lambda: os.replace(PATH, PATH + ".new"),
    "rename": lambda: os.rename(PATH, PATH + ".new"),
    "unlink": lambda: os.unlink(PATH),
    "mkdir": lambda: os.mkdir("/data/sub"),
    "close": lambda: os.close(os.open(PATH, os.O_RDONLY)),
    "flush": _buffered_flush,
    "flock": _flock,
}


@pytest.mark.parametrize(
    ("op", "code"),
    [
        ("open", "EACCES"),
        ("write", "ENOSPC"),
        ("read", "EIO"),
        ("fsync", "EIO"),
        ("fdatasync", "EDQUOT"),
        ("dirfsync", "EIO"),
        ("ftruncate", "EFBIG"),
        ("replace", "EROFS"),
        ("rename", "EXDEV"),
        ("unlink", "EBUSY"),
        ("mkdir", "ENOSPC"),
        ("close", "EIO"),
        ("flush", "ENOSPC"),
        ("flock", "EWOULDBLOCK"),
    ],
)
def test_errno_is_propagated_as_oserror(crash: CrashFS, op: str, code: str) -> None:
    start(crash, FaultRule(op, errno=code))
    with pytest.raises(OSError) as info:
        CALLS[op]()
    assert info.value.errno == getattr(errno, code)
    assert info.value.strerror == os.strerror(getattr(errno, code))
    failed = [o for o in crash.trace if o.error is not None]
    assert [(o.op, o.error, o.injected) for o in failed] == [(op, code, True)]


def test_failed_ops_change_nothing(crash: CrashFS) -> None:
    start(
        crash,
        *(FaultRule(op, persistent=True) for op in ("replace", "rename", "unlink", "mkdir")),
        FaultRule("open", PATH + ".new"),
        FaultRule("ftruncate"),
    )
    for op in ("replace", "rename", "unlink", "mkdir", "ftruncate"):
        with pytest.raises(OSError):
            CALLS[op]()
    with pytest.raises(OSError):
        os.open(PATH + ".new", os.O_WRONLY | os.O_CREAT)
    assert crash.visible_image() == DiskImage({PATH: b"a\n"})


def test_failed_close_still_releases_the_descriptor(crash: CrashFS) -> None:
    start(crash, FaultRule("close"))
    fd = os.open(PATH, os.O_RDONLY)
    with pytest.raises(OSError):
        os.close(fd)
    with pytest.raises(OSError) as info:
        os.read(fd, 1)
    assert info.value.errno == errno.EBADF


def test_rules_apply_to_pathlib_and_builtin_open(crash: CrashFS) -> None:
    start(crash, FaultRule("open", "/data/new.txt"), FaultRule("write", "/data/b.txt"))
    with pytest.raises(OSError):
        pathlib.Path("/data/new.txt").write_text("x")
    assert not os.path.exists("/data/new.txt")  # a failed open creates nothing
    with open("/data/b.txt", "w") as f, pytest.raises(OSError):
        f.write("y")
    assert file_bytes("/data/b.txt") == b""


def test_counters_restart_with_every_start(crash: CrashFS) -> None:
    start(crash, FaultRule("write", PATH, nth=1))
    with pytest.raises(OSError):
        os.write(os.open(PATH, APPEND), b"x")
    crash.stop()
    crash.start(DiskImage({PATH: b""}))
    with pytest.raises(OSError):
        os.write(os.open(PATH, APPEND), b"x")
