"""Bounded exploration and the journaling profiles.

Bounded: the in-order state and each deviation from it alone, every state labelled with
its deviations, a subset of the exhaustive enumeration, linear in what is unsynced.
Journaling (ext4, xfs): any fsync commits every earlier directory operation, and a crash
leaves a prefix of the later ones; whole blocks, so a small append is never torn. Each
rule is shown on both durability models: the in-process one (`CrashFS`) and the replay
of a recorded run (`ReplayModel`, no FUSE needed)."""

from __future__ import annotations

import os

import pytest

from crashkit.faults import CrashFS, DiskImage, OpKind
from crashkit.faults.crash import (
    IN_ORDER,
    DeviationKind,
    Exploration,
    bounded_states,
    crash_states,
    enumerate_states,
)
from crashkit.faults.model import Snapshot
from crashkit.faults.replay import Call, ReplayModel

PROFILES = ("prefix", "ext4-ordered", "ext4-writeback", "xfs", "btrfs", "posix")


def replayed(image: DiskImage, *calls: Call) -> Snapshot:
    model = ReplayModel(image)
    for call in calls:
        model.apply(call)
    return model.snapshot()


def create(path: str) -> Call:
    return Call(OpKind.OPEN, path, creates=True, truncates=True)


def write(path: str, data: bytes, offset: int = 0) -> Call:
    return Call(OpKind.WRITE, path, data, offset)


def fsync(path: str) -> Call:
    return Call(OpKind.FSYNC, path)


def names(snap: Snapshot, profile: str, exploration: str = "bounded") -> set[tuple[str, ...]]:
    states = crash_states(snap, profile=profile, exploration=exploration).states
    return {tuple(sorted(s.image.files)) for s in states}


# -- an entry followed by the fsync of another file --------------------------------------

ENTRY_THEN_OTHER_FSYNC = (
    create("/new"),
    write("/new", b"hello"),
    fsync("/new"),  # the file's bytes, not its folder entry
    write("/other", b"y", 1),
    fsync("/other"),
)


def _in_process_entry_then_other_fsync() -> CrashFS:
    fs = CrashFS(record=True)
    fs.start(DiskImage({"/other": b"x"}))
    fd = os.open("/new", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"hello")
    os.fsync(fd)
    os.close(fd)
    fd = os.open("/other", os.O_WRONLY)
    os.pwrite(fd, b"y", 1)
    os.fsync(fd)
    os.close(fd)
    return fs


@pytest.mark.parametrize("profile", ["ext4-ordered", "ext4-writeback", "xfs"])
@pytest.mark.parametrize("exploration", ["bounded", "exhaustive"])
def test_under_a_journal_an_entry_followed_by_any_fsync_never_vanishes(
    profile: str, exploration: str
) -> None:
    snap = replayed(DiskImage({"/other": b"x"}), *ENTRY_THEN_OTHER_FSYNC)
    assert names(snap, profile, exploration) == {("/new", "/other")}
    fs = _in_process_entry_then_other_fsync()
    try:
        got = {tuple(sorted(s.image.files)) for s in fs.crash_states(profile=profile)}
    finally:
        fs.stop()
    assert got == {("/new", "/other")}


@pytest.mark.parametrize("profile", ["prefix", "btrfs", "posix"])
def test_without_a_journal_the_entry_may_vanish(profile: str) -> None:
    snap = replayed(DiskImage({"/other": b"x"}), *ENTRY_THEN_OTHER_FSYNC)
    assert names(snap, profile) == {("/new", "/other"), ("/other",)}
    fs = _in_process_entry_then_other_fsync()
    try:
        got = {tuple(sorted(s.image.files)) for s in fs.crash_states(profile=profile)}
    finally:
        fs.stop()
    assert got == {("/new", "/other"), ("/other",)}


def test_the_journal_leaves_a_prefix_of_the_directory_operations() -> None:
    """Two creates since the last commit: the second never persists without the first."""
    snap = replayed(DiskImage({"/x": b""}), create("/a"), create("/b"))
    assert names(snap, "ext4-ordered") == {("/x",), ("/a", "/x"), ("/a", "/b", "/x")}
    assert ("/b", "/x") in names(snap, "posix")
    cut = [s for s in bounded_states(snap, profile="ext4-ordered").states if s.deviations]
    assert [(d.kind, d.path) for s in cut for d in s.deviations] == [
        (DeviationKind.JOURNAL_CUT, "/a"),
        (DeviationKind.JOURNAL_CUT, "/b"),
    ]


def test_an_fdatasync_that_kept_the_size_commits_nothing() -> None:
    """ext4's fdatasync of an in-place overwrite writes no metadata: an earlier create is
    still uncommitted; one that grew the file commits it."""
    start = DiskImage({"/log": b"0123"})
    overwrite = replayed(start, create("/a"), write("/log", b"ab"), Call(OpKind.FDATASYNC, "/log"))
    assert ("/log",) in names(overwrite, "ext4-ordered")
    grown = replayed(start, create("/a"), write("/log", b"ab", 4), Call(OpKind.FDATASYNC, "/log"))
    assert names(grown, "ext4-ordered") == {("/a", "/log")}


def test_sync_makes_every_file_and_folder_durable() -> None:
    snap = replayed(DiskImage(), create("/a"), write("/a", b"data"), Call(OpKind.SYNC, "/"))
    for profile in PROFILES:
        states = crash_states(snap, profile=profile).states
        assert [dict(s.image.files) for s in states] == [{"/a": b"data"}], profile


# -- whole blocks --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["ext4-ordered", "ext4-writeback", "xfs", "btrfs"])
def test_a_small_append_is_never_torn_on_a_block_file_system(profile: str) -> None:
    snap = replayed(DiskImage({"/log": b"old\n"}), write("/log", b"new record\n", 4))
    contents = {s.image.files["/log"] for s in crash_states(snap, profile=profile).states}
    assert contents == {b"old\n", b"old\nnew record\n"}


@pytest.mark.parametrize("profile", ["prefix", "posix"])
def test_byte_models_tear_a_small_append(profile: str) -> None:
    snap = replayed(DiskImage({"/log": b"old\n"}), write("/log", b"new record\n", 4))
    contents = {s.image.files["/log"] for s in crash_states(snap, profile=profile).states}
    assert b"old\nn" in contents  # its first byte alone


# -- bounded exploration -------------------------------------------------------------------

RENAME_WITHOUT_FSYNC = (
    create("/cfg.tmp"),
    write("/cfg.tmp", b"version=2\n"),
    Call(OpKind.REPLACE, "/cfg.tmp", target="/cfg"),
)


def test_the_in_order_state_comes_first_and_has_no_deviation() -> None:
    snap = replayed(DiskImage({"/cfg": b"version=1\n"}), *RENAME_WITHOUT_FSYNC)
    first, *rest = bounded_states(snap).states
    assert first.cut == IN_ORDER and first.deviations == ()
    assert dict(first.image.files) == {"/cfg": b"version=2\n"}
    assert rest and all(s.deviations for s in rest)


def test_bounded_finds_the_rename_of_data_never_synced() -> None:
    """The classic bug: the rename persisted, the temp file's bytes did not."""
    snap = replayed(DiskImage({"/cfg": b"version=1\n"}), *RENAME_WITHOUT_FSYNC)
    for profile in PROFILES:
        states = bounded_states(snap, profile=profile).states
        empty = [s for s in states if s.image.files.get("/cfg") == b""]
        assert len(empty) == 1, profile
        assert [d.kind for d in empty[0].deviations] == [DeviationKind.DATA_LOST], profile
        assert empty[0].deviations[0].path == "/cfg"


@pytest.mark.parametrize("profile", PROFILES)
def test_bounded_states_are_exhaustive_states(profile: str) -> None:
    snap = replayed(
        DiskImage({"/d/log": b"A\n"}, dirs=("/d",)),
        write("/d/log", b"BBBBB\nCCCCC\n", 2),
        create("/d/tmp"),
        write("/d/tmp", b"x" * 9000),
        Call(OpKind.RENAME, "/d/tmp", target="/d/data"),
        Call(OpKind.UNLINK, "/d/log"),
    )
    bounded = {s.image.key for s in bounded_states(snap, profile=profile).states}
    exhaustive = {s.image.key for s in enumerate_states(snap, profile=profile).states}
    assert bounded <= exhaustive
    assert len(bounded) < len(exhaustive)


def test_bounded_grows_linearly_with_the_unsynced_files() -> None:
    """n files created and written, nothing synced: the exhaustive product is 2**n
    namespaces times each file's cuts; bounded stays linear in n."""

    def counts(n: int) -> tuple[int, int]:
        calls = [c for i in range(n) for c in (create(f"/f{i}"), write(f"/f{i}", b"abc\n"))]
        snap = replayed(DiskImage(), *calls)
        bounded = len(bounded_states(snap).states)
        exhaustive = len(crash_states(snap, exploration=Exploration.EXHAUSTIVE).states)
        return bounded, exhaustive

    # per file: its entry lost, or its bytes cut at 0, 1 or 3 of 4, or zero-filled; the
    # exhaustive product of the 6 choices per file reaches the cap at 8 files
    assert counts(4) == (1 + 5 * 4, 6**4)
    assert counts(8) == (1 + 5 * 8, 4096)


def test_an_ignored_file_is_whole_in_every_state() -> None:
    snap = replayed(
        DiskImage(),
        create("/db"),
        write("/db", b"row\n"),
        create("/LOG"),
        write("/LOG", b"opened the database\n"),
    )
    every = bounded_states(snap).states
    kept = bounded_states(snap, ignore=lambda path: path == "/LOG").states
    assert len(kept) < len(every)
    assert all(
        s.image.files.get("/LOG", b"opened the database\n") == b"opened the database\n"
        for s in kept
    )
    assert any(s.image.files.get("/db") == b"" for s in kept)
    exhaustive = crash_states(snap, exploration="exhaustive", ignore=lambda p: p == "/LOG")
    assert all(d.path != "/LOG" for s in exhaustive.states for d in s.deviations)


# -- linear: each deviation once, at the last crash point where it holds -------------------


def _points(*calls: Call) -> list[Snapshot]:
    """The snapshot after each call, in order."""
    model = ReplayModel(DiskImage())
    snaps = []
    for call in calls:
        model.apply(call)
        snaps.append(model.snapshot())
    return snaps


def _deviations(snaps: list[Snapshot], exploration: str, profile: str = "prefix") -> list[set[str]]:
    following = [*snaps[1:], None]
    return [
        {
            s.cut
            for s in crash_states(
                snap, exploration=exploration, following=nxt, profile=profile
            ).states
        }
        for snap, nxt in zip(snaps, following, strict=True)
    ]


@pytest.mark.parametrize("profile", ["prefix", "posix", "ext4-ordered"])
def test_linear_leaves_each_deviation_to_the_last_point_where_it_holds(profile: str) -> None:
    """/a's unsynced bytes stay the same while /d is made beside it and /d/b is created
    and written: linear loses them right before /d is made (a change of names in /a's
    folder can change what a reader opens), then not until the last point before /a is
    written again; bounded at every point."""
    snaps = _points(
        create("/a"),
        write("/a", b"one\n"),
        Call(OpKind.MKDIR, "/d"),
        create("/d/b"),
        write("/d/b", b"x\n"),
        write("/a", b"two\n", 4),
    )
    linear = _deviations(snaps, "linear", profile)
    bounded = _deviations(snaps, "bounded", profile)
    for got, every in zip(linear, bounded, strict=True):
        assert IN_ORDER in got and got <= every
    lost_a = "/a: none of 4 unsynced bytes kept"
    assert [lost_a in cuts for cuts in bounded] == [False, True, True, True, True, False]
    assert [lost_a in cuts for cuts in linear] == [False, True, False, False, True, False]
    # the last point explores everything bounded does
    assert linear[-1] == bounded[-1]
    assert sum(map(len, linear)) < sum(map(len, bounded))


def test_the_in_process_model_explores_linearly_too() -> None:
    """`CrashFS.crash_states(point, exploration="linear")` leaves to the next crash point
    what holds there (the kit's crash-damage row explores so): /a's unsynced bytes are
    lost right before /b is created beside it (a change of names in its folder) and at
    the last point before /a is written again, not while /b is written."""
    fs = CrashFS(record=True)
    fs.start(DiskImage({"/a": b""}))
    a = os.open("/a", os.O_WRONLY)
    os.write(a, b"one\n")
    b = os.open("/b", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(b, b"x\n")
    os.fsync(b)
    os.write(a, b"two\n")
    os.close(a)
    os.close(b)
    fs.stop()
    points = fs.crash_points()
    lost = "/a: none of 4 unsynced bytes kept"
    cuts = {
        how: [{s.cut for s in fs.crash_states(p, exploration=how)} for p in points]
        for how in ("linear", "bounded", "exhaustive")
    }
    ops = [(fs.trace[p].op, fs.trace[p].path) for p in points]
    first_write, second_write = (
        ops.index(("write", "/a")),
        len(ops) - 1 - ops[::-1].index(("write", "/a")),
    )
    holds = range(first_write, second_write)  # /a holds "one" unsynced, unchanged
    assert [i for i, c in enumerate(cuts["bounded"]) if lost in c] == list(holds)
    assert [i for i, c in enumerate(cuts["linear"]) if lost in c] == [first_write, second_write - 1]
    for linear, bounded in zip(cuts["linear"], cuts["bounded"], strict=True):
        assert IN_ORDER in linear and linear <= bounded
    assert sum(map(len, cuts["linear"])) < sum(map(len, cuts["exhaustive"]))


def test_linear_without_a_following_point_is_bounded() -> None:
    snap = replayed(DiskImage({"/x": b""}), create("/a"), write("/a", b"hello"))
    assert names(snap, "posix", "linear") == names(snap, "posix", "bounded")


# -- a journal orders sizes with names -------------------------------------------------


def _unlink_then_append() -> Snapshot:
    """A folder operation, then an append to another file with no fsync yet (an ack log
    written and about to be synced)."""
    start = DiskImage({"/j": b"journal", "/ack": b"one\n"})
    return replayed(start, Call(OpKind.UNLINK, "/j"), write("/ack", b"two\n", 4))


@pytest.mark.parametrize("profile", ["ext4-ordered", "ext4-writeback", "xfs"])
def test_under_a_journal_an_append_never_outlives_an_earlier_folder_operation(
    profile: str,
) -> None:
    """The append's new size is journaled after the unlink: a disk that still holds /j
    holds /ack at its old size (ext4 and xfs log an inode's size in order with names)."""
    states = bounded_states(_unlink_then_append(), profile=profile).states
    disks = {(("/j" in s.image.files), s.image.files["/ack"]) for s in states}
    assert (True, b"one\ntwo\n") not in disks
    assert (True, b"one\n") in disks  # the journal cut before the unlink
    assert (False, b"one\ntwo\n") in disks  # in order


def test_without_a_journal_the_append_may_outlive_the_unlink() -> None:
    states = bounded_states(_unlink_then_append(), profile="posix").states
    assert any("/j" in s.image.files and s.image.files["/ack"] == b"one\ntwo\n" for s in states)
