"""What survives a crash after each kind of op (durability model + crash enumeration)."""

from __future__ import annotations

import os

import pytest

from crashkit.faults import CrashFS, DiskImage, FsyncModel
from tests.faults.conftest import DIR, PATH, contents

APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def fsync_dir(path: str = DIR) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def paths(crash: CrashFS) -> set[tuple[str, ...]]:
    return {tuple(state.image.files) for state in crash.crash_states()}


@pytest.mark.parametrize("model", list(FsyncModel))
def test_unsynced_append_is_lost_or_torn_at_each_default_cut(
    crash: CrashFS, model: FsyncModel
) -> None:
    crash.configure(model=model)
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"bb\nccc\n")
    assert contents(crash.crash_states()) == [
        b"a\n",  # nothing of the append
        b"a\nb",  # first byte of line 1 (also its middle)
        b"a\nbb",  # line 1 without its "\n"
        b"a\nbb\n",  # line boundary
        b"a\nbb\nc",  # first byte (and middle) of line 2
        b"a\nbb\nccc",  # line 2 without its "\n"
        b"a\nbb\nccc\n",  # everything
        b"a\n" + b"\0" * 7,  # size reached the disk, data did not
    ]


@pytest.mark.parametrize("model", list(FsyncModel))
def test_synced_append_is_kept(crash: CrashFS, model: FsyncModel) -> None:
    crash.configure(model=model)
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"bb\n")
    os.fsync(fd)
    states = crash.crash_states()
    assert contents(states) == [b"a\nbb\n"]
    assert states[0].cut == "nothing unsynced"


def test_fdatasync_makes_bytes_durable_like_fsync(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"bb\n")
    os.fdatasync(fd)
    assert contents(crash.crash_states()) == [b"a\nbb\n"]


def test_torn_all_gives_every_offset(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"bb\nccc\n")
    got = contents(crash.crash_states(torn="all"))
    assert got == [b"a\n" + b"bb\nccc\n"[:k] for k in range(8)] + [b"a\n" + b"\0" * 7]


def test_torn_none_is_all_or_nothing(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"bb\nccc\n")
    assert contents(crash.crash_states(torn="none")) == [b"a\n", b"a\nbb\nccc\n"]


def test_created_file_without_dir_fsync_may_vanish(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    fd = os.open(PATH, APPEND | os.O_EXCL, 0o644)
    os.write(fd, b"x\n")
    os.fsync(fd)
    states = crash.crash_states()
    assert sorted(contents(states), key=repr) == [None, b"x\n"]
    assert any("new entry not persisted" in s.cut for s in states if PATH not in s.image.files)


def test_created_file_with_dir_fsync_is_kept(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    fd = os.open(PATH, APPEND | os.O_EXCL, 0o644)
    os.write(fd, b"x\n")
    os.fsync(fd)
    fsync_dir()
    assert contents(crash.crash_states()) == [b"x\n"]


def test_directory_opened_without_o_directory_is_fsynced_too(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    fd = os.open(PATH, APPEND | os.O_EXCL, 0o644)
    os.fsync(fd)
    dfd = os.open(DIR, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    assert [o.op for o in crash.trace][-3:] == ["open", "dirfsync", "close"]
    assert contents(crash.crash_states()) == [b""]


def test_dir_fsync_alone_keeps_the_entry_but_not_unsynced_bytes(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    fd = os.open(PATH, APPEND | os.O_EXCL, 0o644)
    fsync_dir()
    os.write(fd, b"x\n")
    assert contents(crash.crash_states()) == [b"", b"x", b"x\n", b"\0\0"]


def test_new_directory_without_parent_fsync_takes_its_subtree(crash: CrashFS) -> None:
    crash.start()
    os.mkdir(DIR)
    fd = os.open(PATH, APPEND, 0o644)
    os.write(fd, b"x\n")
    os.fsync(fd)
    fsync_dir(DIR)  # the file is durable in /data, but /data is not durable in /
    images = {(s.image.files.get(PATH), DIR in s.image.all_dirs()) for s in crash.crash_states()}
    assert images == {(None, False), (b"x\n", True)}
    fsync_dir("/")
    assert contents(crash.crash_states()) == [b"x\n"]


def test_rename_without_dir_fsync_is_old_or_new_never_both_or_neither(crash: CrashFS) -> None:
    crash.start(DiskImage({f"{DIR}/old": b"v\n"}))
    os.rename(f"{DIR}/old", f"{DIR}/new")
    assert paths(crash) == {(f"{DIR}/old",), (f"{DIR}/new",)}
    assert any("rename /data/old -> /data/new not persisted" in s.cut for s in crash.crash_states())
    fsync_dir()
    assert paths(crash) == {(f"{DIR}/new",)}


def test_replace_of_a_durable_temp_file_is_atomic(crash: CrashFS) -> None:
    tmp = PATH + ".tmp"
    crash.start(DiskImage({PATH: b"old\n", tmp: b"new\n"}))
    os.replace(tmp, PATH)
    images = {tuple(s.image.files.items()) for s in crash.crash_states()}
    assert images == {((PATH, b"old\n"), (tmp, b"new\n")), ((PATH, b"new\n"),)}


def test_compaction_crash_leaves_old_or_new_file(crash: CrashFS) -> None:
    tmp = PATH + ".tmp"
    crash.start(DiskImage({PATH: b"old\n"}))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"new\n")
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, PATH)
    assert sorted(contents(crash.crash_states())) == [b"new\n", b"old\n"]
    assert all(tmp not in s.image.files for s in crash.crash_states())
    fsync_dir()
    assert contents(crash.crash_states()) == [b"new\n"]


def test_unlink_without_dir_fsync_may_be_undone(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    os.unlink(PATH)
    assert sorted(contents(crash.crash_states()), key=repr) == [None, b"a\n"]
    fsync_dir()
    assert contents(crash.crash_states()) == [None]


def test_close_and_flush_make_nothing_durable(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    with open(PATH, "ab") as f:
        f.write(b"b\n")
        f.flush()
    fd = os.open(PATH, APPEND)
    os.write(fd, b"c\n")
    os.close(fd)
    assert crash.durable_image().files[PATH] == b"a\n"
    assert crash.visible_image().files[PATH] == b"a\nb\nc\n"
    assert b"a\n" in contents(crash.crash_states())


def test_fsync_before_flush_misses_the_python_buffer(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    with open(PATH, "ab") as f:
        f.write(b"b\n")
        os.fsync(f.fileno())  # the bytes are still in the file object's buffer
        assert crash.durable_image().files[PATH] == b"a\n"
        f.flush()
        os.fsync(f.fileno())
    assert crash.durable_image().files[PATH] == b"a\nb\n"


def test_truncate_then_append_keeps_durable_or_the_cut_prefix(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\nbroken"}))
    fd = os.open(PATH, APPEND)
    os.ftruncate(fd, 2)
    os.write(fd, b"c\n")
    assert contents(crash.crash_states()) == [
        b"a\nbroken",  # the truncate did not persist
        b"a\n",
        b"a\nc",
        b"a\nc\n",
        b"a\n\0\0",
    ]
    os.fsync(fd)
    assert contents(crash.crash_states()) == [b"a\nc\n"]


def test_overwrite_in_place_is_old_or_new(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"abc"}))
    fd = os.open(PATH, os.O_WRONLY)
    os.write(fd, b"X")
    assert contents(crash.crash_states()) == [b"abc", b"Xbc"]


def test_open_with_truncate_mode_is_a_truncation(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"old\n"}))
    with open(PATH, "w") as f:
        f.write("n\n")
    assert contents(crash.crash_states()) == [b"old\n", b"", b"n", b"n\n", b"\0\0"]


def test_sync_makes_everything_durable(crash: CrashFS) -> None:
    crash.start()
    os.makedirs(DIR)
    with open(PATH, "wb") as f:
        f.write(b"x\n")
    os.sync()
    assert contents(crash.crash_states()) == [b"x\n"]


def test_durable_and_visible_images(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b"a\n"}, ("/empty",)))
    fd = os.open(PATH, APPEND)
    os.write(fd, b"b\n")
    os.mkdir("/new")
    assert crash.durable_image() == DiskImage({PATH: b"a\n"}, ("/empty",))
    assert crash.visible_image() == DiskImage({PATH: b"a\nb\n"}, ("/empty", "/new"))


def test_start_materialises_the_image_fully_durable(crash: CrashFS) -> None:
    image = DiskImage({PATH: b"a\n", "/other/deep/f": b"\0\1"}, ("/empty",))
    crash.start(image)
    with open(PATH, "rb") as f:
        assert f.read() == b"a\n"
    assert os.listdir("/other/deep") == ["f"]
    assert crash.visible_image() == image
    assert crash.durable_image() == image
    assert [s.image for s in crash.crash_states()] == [image]
