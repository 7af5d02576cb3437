"""Every way the code under test may do I/O is seen; nothing else is touched."""

from __future__ import annotations

import errno
import fcntl
import importlib
import os
import pathlib
import sys
from os import fsync as imported_fsync

import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from crashkit.faults import CrashFS, DiskImage
from tests.faults.conftest import DIR, PATH, contents


def ops(crash: CrashFS) -> list[tuple[str, str]]:
    return [(o.op, o.path) for o in crash.trace]


def test_function_imported_from_os_is_intercepted(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"a\n")
    imported_fsync(fd)
    assert ops(crash)[-1] == ("fsync", PATH)
    assert contents(crash.crash_states()) == [b"a\n"]


def test_pathlib_calls_are_intercepted(crash: CrashFS) -> None:
    crash.start()
    base = pathlib.Path(DIR)
    base.mkdir()
    (base / "a.txt").write_text("hi\n")
    (base / "a.txt").rename(base / "b.txt")
    assert (base / "b.txt").read_bytes() == b"hi\n"
    (base / "b.txt").unlink()
    assert [op for op, _ in ops(crash)] == [
        "mkdir",
        "open",
        "write",
        "close",
        "rename",
        "open",
        "read",
        "close",
        "unlink",
    ]


def test_buffered_file_object_ops_are_recorded_once_each(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    with open(PATH, "a+", encoding="utf-8") as f:
        f.write("b\n")
        f.flush()
        f.seek(0)
        assert f.readline() == "a\n"
        os.fsync(f.fileno())
    assert [(o.op, o.detail, o.mutating) for o in crash.trace] == [
        ("open", "mode 'a+'", False),
        ("write", "2 chars", True),
        ("flush", "", True),  # moved the bytes into the file: a crash point
        ("read", "readline()", False),
        ("fsync", "", True),
        ("close", "", False),
    ]
    assert contents(crash.crash_states()) == [b"a\nb\n"]


def test_fdopen_file_objects_are_intercepted(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "ab") as f:
        f.write(b"x\n")
    # fdopen is no system call: one open (os.open), then the file object's write, close
    assert ops(crash) == [("open", PATH), ("write", PATH), ("close", PATH)]
    assert crash.visible_image().files[PATH] == b"x\n"


def test_flock_excludes_a_second_writer_until_the_first_closes(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    first = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)  # re-locking one's own lock is fine
    second = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    with pytest.raises(BlockingIOError) as info:
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert info.value.errno == errno.EWOULDBLOCK
    os.close(first)
    fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_shared_locks_coexist_but_exclude_an_exclusive_one(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    a, b, c = (os.open(PATH, os.O_RDONLY) for _ in range(3))
    fcntl.flock(a, fcntl.LOCK_SH | fcntl.LOCK_NB)
    fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB)
    with pytest.raises(BlockingIOError):
        fcntl.flock(c, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(a, fcntl.LOCK_UN)
    fcntl.flock(b, fcntl.LOCK_UN)
    fcntl.flock(c, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_new_start_forgets_open_files_and_locks(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    crash.stop()
    crash.start(DiskImage({PATH: b""}))
    with pytest.raises(OSError) as info:
        os.write(fd, b"x")
    assert info.value.errno == errno.EBADF
    fcntl.flock(os.open(PATH, os.O_WRONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_restart_reboots_onto_an_image_without_unpatching(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    os.write(os.open(PATH, os.O_WRONLY | os.O_APPEND), b"b\n")
    torn = crash.crash_states()[1].image
    crash.restart(torn)
    with open(PATH, "rb") as f:
        assert f.read() == b"a\nb"
    assert [o.op for o in crash.trace] == ["open", "read", "close"]


def test_another_pyfakefs_patcher_can_run_between_sessions(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    crash.stop()
    with Patcher() as patcher:
        assert patcher.fs is not None
        patcher.fs.create_file("/x", contents="y")
        with open("/x") as f:
            assert f.read() == "y"
        with pytest.raises(RuntimeError, match="another pyfakefs Patcher"):
            crash.start()
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"b\n")
    os.fsync(fd)
    assert ops(crash) == [("open", PATH), ("write", PATH), ("fsync", PATH)]
    assert not os.path.exists("/x")


def test_only_one_crashfs_runs_at_a_time(crash: CrashFS) -> None:
    crash.start()
    with pytest.raises(RuntimeError, match="already started"):
        CrashFS().start()
    with pytest.raises(RuntimeError, match="this CrashFS is already started"):
        crash.start()


def test_context_manager_starts_and_stops_keeping_the_patcher_parked() -> None:
    with CrashFS() as fs:
        os.mkdir(DIR)
        assert fs.started
        assert [o.op for o in fs.trace] == ["mkdir"]
        patcher = Patcher.PATCHER
    assert not fs.started
    assert not os.path.exists(DIR)
    with CrashFS() as again:
        assert Patcher.PATCHER is patcher  # reused, not rebuilt
        assert not os.path.exists(DIR)  # a fresh, empty disk
        assert again.trace == []


def test_fdopen_of_a_locked_descriptor_releases_the_lock_on_close(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with os.fdopen(fd, "ab") as f:
        f.write(b"x\n")
    fcntl.flock(os.open(PATH, os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_dup_keeps_the_lock_until_every_descriptor_is_closed(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    copy = os.dup(fd)
    os.close(fd)
    assert os.write(copy, b"x") == 1  # the copy stays usable
    other = os.open(PATH, os.O_RDONLY)
    with pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(copy)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_lseek_pread_and_pwrite_work_on_fake_descriptors(crash: CrashFS) -> None:
    # pyfakefs has no pread/pwrite (the real ones would get a fake fd number) and its
    # lseek returns None
    crash.start(DiskImage({PATH: b"abcdef\n"}))
    fd = os.open(PATH, os.O_RDWR)
    assert os.lseek(fd, 0, os.SEEK_END) == 7
    assert os.lseek(fd, 2, os.SEEK_SET) == 2
    assert os.pread(fd, 3, 1) == b"bcd"
    assert os.pwrite(fd, b"XY", 0) == 2
    assert os.lseek(fd, 0, os.SEEK_CUR) == 2  # p* calls leave the offset alone
    assert os.read(fd, 2) == b"cd"
    assert [(o.op, o.detail, o.mutating) for o in crash.trace[1:3]] == [
        ("read", "3 bytes at 1", False),
        ("write", "2 bytes at 0", True),
    ]
    # an in-place overwrite: a crash keeps the old or the new bytes
    assert contents(crash.crash_states()) == [b"abcdef\n", b"XYcdef\n"]


def test_positioned_io_sees_a_truncate_and_is_never_undone_by_a_stale_buffer(
    crash: CrashFS,
) -> None:
    # pyfakefs buffers a whole file per handle and writes the buffer back on a seek or a
    # close: pread/pwrite built on lseek once read bytes a truncate had cut and put them
    # back (SQLite's rollback truncates its database, then reads it)
    crash.start(DiskImage({PATH: b"S"}))
    rw = os.open(PATH, os.O_RDWR)
    ro = os.open(PATH, os.O_RDONLY)
    os.ftruncate(rw, 0)
    assert os.pread(rw, 10, 0) == b""
    assert os.pwrite(rw, b"abc", 2) == 3
    assert os.pread(ro, 10, 0) == b"\0\0abc"  # another handle sees it (was EBADF)
    os.ftruncate(rw, 4)
    assert os.pread(ro, 10, 0) == b"\0\0ab"
    os.close(rw)
    os.close(ro)
    assert crash.visible_image().files[PATH] == b"\0\0ab"  # the close wrote nothing back
    append = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.pwrite(append, b"Z", 0)  # O_APPEND: at the end, as on Linux
    os.close(append)
    assert crash.visible_image().files[PATH] == b"\0\0abZ"


def test_removedirs_records_every_directory_it_removes(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=("/a/b/c",)))
    os.removedirs("/a/b/c")
    assert [(o.op, o.path, o.error) for o in crash.trace] == [
        ("rmdir", "/a/b/c", None),
        ("rmdir", "/a/b", None),
        ("rmdir", "/a", None),
        ("rmdir", "/", "ENOTEMPTY"),  # CPython's loop stops at the first failure too
    ]
    assert crash.visible_image() == DiskImage()
    # no directory fsync: every removal may be undone, but /a/b goes only with /a/b/c
    assert {s.image.dirs for s in crash.crash_states()} == {("/a/b/c",), ("/a/b",), ("/a",), ()}


def test_a_module_imported_during_a_run_stays_patched_in_later_runs(
    crash: CrashFS, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "crashkit_lazily_imported_backend"
    (tmp_path / f"{name}.py").write_text(
        "import os\nfrom os import fsync\n"
        "def make(path):\n"
        "    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "    os.write(fd, b'x')\n"
        "    fsync(fd)\n"
        "    os.close(fd)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    target = tmp_path / "must-stay-fake"
    crash.start()
    module = importlib.import_module(name)
    crash.stop()
    crash.start(DiskImage(dirs=(str(tmp_path),)))
    module.make(str(target))
    assert [o.op for o in crash.trace] == ["open", "write", "fsync", "close"]
    crash.stop()
    assert not target.exists()  # the real file system was never touched


def test_one_patcher_and_one_fake_file_system_serve_every_run(crash: CrashFS) -> None:
    image = DiskImage({PATH: b"a\n"})
    crash.start(image)
    patcher, fake = Patcher.PATCHER, crash.filesystem
    for _ in range(3):
        crash.restart(image)
        crash.stop()
        crash.start(image)
        assert Patcher.PATCHER is patcher
        assert crash.filesystem is fake
    crash.stop()
    assert Patcher.PATCHER is None  # parked: other pyfakefs users may start their own


def test_read_write_append_descriptor_reads_from_the_start_like_posix(crash: CrashFS) -> None:
    # O_APPEND moves every write to the end, yet the offset starts at 0: a backend that
    # restores and appends through one O_RDWR | O_APPEND descriptor relies on this.
    crash.start(DiskImage({PATH: b"a\ntor"}))
    fd = os.open(PATH, os.O_RDWR | os.O_APPEND)
    assert os.read(fd, 100) == b"a\ntor"
    os.ftruncate(fd, 2)
    os.write(fd, b"b\n")
    assert os.read(fd, 100) == b""
    os.close(fd)
    with open(PATH, "rb") as f:
        assert f.read() == b"a\nb\n"
