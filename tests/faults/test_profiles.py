"""File-system profiles: each rule generates the states it names, and only its profiles do.

The probes: a durable `A\\n`, then unsynced `BBBBB\\n` and `CCCCC\\n` at a 2-byte block size
(each line its own three blocks); and a write-temp-then-rename with no fsync at all."""

from __future__ import annotations

import os

import pytest

from crashkit.faults import PREFIX, PROFILES, CrashFS, DiskImage, Profile, profile_named
from crashkit.faults.crash import block_options, file_options
from crashkit.faults.model import FileSnap
from crashkit.faults.profiles import garbage

PROBE = FileSnap(current=b"A\nBBBBB\nCCCCC\n", durable=b"A\n", low=2)
HOLE = b"A\n" + b"\0" * 6 + b"CCCCC\n"  # B lost (zeros), C kept
PREFIX_THEN_ZEROS = b"A\nBBBBB\n" + b"\0" * 6


def contents(profile: Profile, snap: FileSnap = PROBE) -> set[bytes]:
    if profile.block is not None:
        profile = profile.with_block(2)
    options, _ = file_options(snap, profile=profile)
    return {o.data for o in options}


def test_posix_leaves_the_hole_the_zero_tail_and_garbage() -> None:
    got = contents(PROFILES["posix"])
    assert HOLE in got
    assert PREFIX_THEN_ZEROS in got
    assert b"A\n" + garbage(12, 2) in got  # every unsynced block lost, garbage
    assert b"A\nBBBBB\n" + garbage(6, 8) in got
    assert PROBE.current in got and PROBE.durable in got


def test_prefix_keeps_the_old_model_exactly() -> None:
    got = contents(PREFIX)
    assert HOLE not in got and PREFIX_THEN_ZEROS not in got
    assert not any(b"\xde" in data or b"\xbe" in data for data in got)
    assert b"A\n" + b"\0" * 12 in got  # its one zero-filled state
    assert all(data == b"A\n" + b"\0" * 12 or b"\0" not in data for data in got)


@pytest.mark.parametrize("name", ["ext4-ordered", "btrfs"])
def test_ordered_data_never_exposes_zeros_or_garbage(name: str) -> None:
    got = contents(PROFILES[name])
    assert all(b"\0" not in data and b"\xde" not in data for data in got)
    assert all(PROBE.current.startswith(data) for data in got)  # prefixes only


def test_xfs_exposes_zeros_never_garbage() -> None:
    got = contents(PROFILES["xfs"])
    assert HOLE in got and PREFIX_THEN_ZEROS in got
    assert not any(b"\xde" in data for data in got)


def test_torn_overwrites_mix_old_and_new_blocks() -> None:
    snap = FileSnap(current=b"NNNNNNNN", durable=b"OOOOOOOO", low=8)
    posix = contents(PROFILES["posix"], snap)
    assert b"NNOONNOO" in posix and b"OONNOONN" in posix
    assert contents(PROFILES["btrfs"], snap) == {b"OOOOOOOO", b"NNNNNNNN"}
    assert contents(PREFIX, snap) == {b"OOOOOOOO", b"NNNNNNNN"}


def test_many_blocks_are_sampled_deterministically_under_the_cap() -> None:
    snap = FileSnap(current=b"A\n" + b"x" * 200, durable=b"A\n", low=2)
    profile = PROFILES["posix"].with_block(2)
    first = [o.data for o in block_options(snap, profile, cap=64)]
    again = [o.data for o in block_options(snap, profile, cap=64)]
    assert first == again
    assert 64 <= len(first) <= 64 * len(profile.fills)


def test_unknown_profile_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: prefix, ext4-ordered"):
        profile_named("ntfs")


def _rename_without_fsync(profile: str) -> list[DiskImage]:
    with CrashFS(record=True) as fs:
        fs.restart(DiskImage(files={"/d/cfg": b"old\n"}, dirs=("/d",)))
        fd = os.open("/d/cfg.tmp", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"new\n")
        os.close(fd)
        os.replace("/d/cfg.tmp", "/d/cfg")
        return [s.image for s in fs.crash_states(profile=profile)]


def test_a_temp_file_is_left_behind_when_only_its_creation_persisted() -> None:
    for name in ("ext4-ordered", "posix"):
        images = _rename_without_fsync(name)
        left = [i for i in images if "/d/cfg.tmp" in i.files and i.files.get("/d/cfg") == b"old\n"]
        assert left, name
    assert not any("/d/cfg.tmp" in i.files for i in _rename_without_fsync("prefix"))


def test_a_rename_that_is_not_atomic_leaves_both_names_or_neither_new() -> None:
    for name in ("btrfs", "posix"):
        images = _rename_without_fsync(name)
        both = [i for i in images if i.files.get("/d/cfg.tmp") == i.files.get("/d/cfg") == b"new\n"]
        lost = [
            i for i in images if i.files.get("/d/cfg") == b"old\n" and "/d/cfg.tmp" not in i.files
        ]
        assert both and lost, name
    atomic = _rename_without_fsync("ext4-ordered")
    assert not any(i.files.get("/d/cfg.tmp") == i.files.get("/d/cfg") for i in atomic)


def test_above_the_cap_the_enumeration_says_how_many_states_exist() -> None:
    """Exhaustive under the cap, then a seeded sample: `combinations` counts what exists,
    `capped` says a sample was taken, and the sample is the same on every run."""
    with CrashFS(record=True) as fs:
        fd = os.open("/f", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 300)  # 38 unsynced blocks of 8 bytes: 2**38 subsets, 2 fills
        first = fs.enumerate_crash_states(cap=64, profile=PROFILES["posix"].with_block(8))
        again = fs.enumerate_crash_states(cap=64, profile=PROFILES["posix"].with_block(8))
        small = fs.enumerate_crash_states(cap=64, profile=PREFIX)
        os.close(fd)
    assert first.capped and first.combinations >= 2**38 > len(first.states) >= 64
    assert [s.image.key for s in first.states] == [s.image.key for s in again.states]
    assert not small.capped and small.combinations == len(small.states)
