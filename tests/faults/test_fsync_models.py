"""What a failed fsync does under each FsyncModel (the fsyncgate behaviours)."""

from __future__ import annotations

import errno
import os

import pytest

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule, FsyncModel
from tests.faults.conftest import DIR, PATH, contents

FAIL_FIRST_FSYNC = FaultPlan((FaultRule("fsync", PATH, nth=1, errno="EIO"),))


def write_then_failed_fsync(crash: CrashFS, model: FsyncModel) -> int:
    """Start from "a\\n", append "bb\\n", and have the first fsync fail with EIO."""
    crash.configure(plan=FAIL_FIRST_FSYNC, model=model)
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, os.O_RDWR | os.O_APPEND)
    os.write(fd, b"bb\n")
    with pytest.raises(OSError) as info:
        os.fsync(fd)
    assert info.value.errno == errno.EIO
    return fd


def read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 1024)


def test_mark_clean_loses_the_bytes_even_after_a_successful_retry(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.MARK_CLEAN)
    assert read_all(fd) == b"a\nbb\n"  # reads before the crash still see them
    os.fsync(fd)  # the retry "succeeds"
    assert contents(crash.crash_states()) == [b"a\n\0\0\0"]


def test_mark_clean_crash_before_retry_never_shows_the_failed_bytes(crash: CrashFS) -> None:
    write_then_failed_fsync(crash, FsyncModel.MARK_CLEAN)
    got = contents(crash.crash_states())
    assert got == [b"a\n", b"a\n\0", b"a\n\0\0\0"]
    assert all(b"bb" not in (c or b"") for c in got)


def test_mark_clean_later_appends_land_after_the_hole(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.MARK_CLEAN)
    os.write(fd, b"d\n")
    os.fsync(fd)
    assert contents(crash.crash_states()) == [b"a\n\0\0\0d\n"]


def test_mark_clean_range_is_forgotten_once_truncated_away(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.MARK_CLEAN)
    os.ftruncate(fd, 2)
    os.write(fd, b"cc\n")
    os.fsync(fd)
    assert contents(crash.crash_states()) == [b"a\ncc\n"]


def test_keep_dirty_retry_makes_the_bytes_durable(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.KEEP_DIRTY)
    os.fsync(fd)
    assert contents(crash.crash_states()) == [b"a\nbb\n"]


def test_keep_dirty_failed_bytes_may_still_persist(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.KEEP_DIRTY)
    assert read_all(fd) == b"a\nbb\n"
    assert contents(crash.crash_states()) == [
        b"a\n",
        b"a\nb",
        b"a\nbb",
        b"a\nbb\n",
        b"a\n\0\0\0",
    ]


def test_drop_zeroes_reads_at_once_and_the_bytes_never_persist(crash: CrashFS) -> None:
    fd = write_then_failed_fsync(crash, FsyncModel.DROP)
    assert read_all(fd) == b"a\n\0\0\0"
    with open(PATH, "rb") as f:
        assert f.read() == b"a\n\0\0\0"
    assert all(b"bb" not in (c or b"") for c in contents(crash.crash_states()))
    os.fsync(fd)
    assert contents(crash.crash_states()) == [b"a\n\0\0\0"]


@pytest.mark.parametrize("model", list(FsyncModel))
def test_failed_dir_fsync_leaves_the_entry_unsynced(crash: CrashFS, model: FsyncModel) -> None:
    crash.configure(plan=FaultPlan((FaultRule("dirfsync", DIR, nth=1),)), model=model)
    crash.start(DiskImage(dirs=(DIR,)))
    fd = os.open(PATH, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x\n")
    os.fsync(fd)
    dfd = os.open(DIR, os.O_RDONLY | os.O_DIRECTORY)
    with pytest.raises(OSError) as info:
        os.fsync(dfd)
    assert info.value.errno == errno.EIO
    assert sorted(contents(crash.crash_states()), key=repr) == [None, b"x\n"]
    os.fsync(dfd)  # a later directory fsync does persist the entry
    assert contents(crash.crash_states()) == [b"x\n"]


def test_failed_fdatasync_follows_the_model_too(crash: CrashFS) -> None:
    crash.configure(plan=FaultPlan((FaultRule("fdatasync", PATH),)), model=FsyncModel.MARK_CLEAN)
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"bb\n")
    with pytest.raises(OSError):
        os.fdatasync(fd)
    os.fdatasync(fd)
    assert contents(crash.crash_states()) == [b"a\n\0\0\0"]
