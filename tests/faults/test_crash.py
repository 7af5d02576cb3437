"""Crash-state enumeration: cut offsets, combination, deduplication, the cap."""

from __future__ import annotations

import os

import pytest

from crashkit.faults import TORN_MODES, CrashFS, DiskImage, TornMode, cut_offsets
from crashkit.faults.crash import enumerate_states
from tests.faults.conftest import DIR, PATH


def test_default_cuts_are_line_boundaries_plus_three_inside_each_line() -> None:
    #                 0123456789
    unsynced = b"abcd\nef\nxyz"
    assert cut_offsets(unsynced) == [0, 1, 2, 4, 5, 6, 7, 8, 9, 11]


def test_all_cuts_are_every_offset_and_none_is_all_or_nothing() -> None:
    assert cut_offsets(b"ab\nc", "all") == [0, 1, 2, 3, 4]
    assert cut_offsets(b"ab\nc", "none") == [0, 4]
    assert cut_offsets(b"", "default") == [0]
    with pytest.raises(ValueError, match="unknown torn mode 'some'"):
        cut_offsets(b"x", "some")


def test_torn_modes_are_an_enum_whose_values_are_the_old_strings() -> None:
    assert TORN_MODES == ("none", "default", "all")
    assert [mode.value for mode in TornMode] == list(TORN_MODES)
    for mode in TornMode:
        assert cut_offsets(b"ab\nc", mode) == cut_offsets(b"ab\nc", mode.value)


@pytest.mark.parametrize("mode", list(TornMode))
def test_crash_states_take_the_torn_mode_as_enum_or_string(crash: CrashFS, mode: TornMode) -> None:
    crash.start(DiskImage({PATH: b"a\n"}))
    os.write(os.open(PATH, os.O_WRONLY | os.O_APPEND), b"bcde\nf")
    by_enum = [(s.cut, s.image) for s in crash.crash_states(torn=mode)]
    by_name = [(s.cut, s.image) for s in crash.crash_states(torn=mode.value)]
    assert by_enum == by_name
    assert len(by_enum) == {"none": 2, "default": 7, "all": 8}[mode.value]


@pytest.mark.parametrize("bad", ["some", "ALL", None, 1])
def test_an_unknown_torn_mode_is_refused_naming_the_allowed_ones(
    crash: CrashFS, bad: object
) -> None:
    crash.start(DiskImage({PATH: b""}))
    message = f"unknown torn mode {bad!r}; allowed: none, default, all"
    with pytest.raises(ValueError) as info:
        crash.crash_states(torn=bad)  # type: ignore[arg-type]
    assert str(info.value) == message
    with pytest.raises(ValueError, match="unknown torn mode"):
        enumerate_states(crash.snapshot(), torn=bad)  # type: ignore[arg-type]


def test_files_combine_as_a_product_and_cuts_say_what_was_kept(crash: CrashFS) -> None:
    a, b = f"{DIR}/a", f"{DIR}/b"
    crash.start(DiskImage({a: b"", b: b""}))
    for path in (a, b):
        os.write(os.open(path, os.O_WRONLY | os.O_APPEND), b"x\n")
    states = crash.crash_states()
    # per file: "", "x", "x\n", "\0\0" -> 4 x 4 distinct images
    assert len(states) == 16
    assert len({s.image for s in states}) == 16
    torn = next(s for s in states if s.image.files == {a: b"x", b: b"\0\0"})
    assert torn.cut == (
        "/data/a: 1/2 unsynced bytes kept (torn mid-line); /data/b: 2 unsynced bytes zero-filled"
    )


def test_hard_to_tell_apart_choices_are_deduplicated(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    os.mkdir(f"{DIR}/sub")
    os.write(os.open(f"{DIR}/sub/f", os.O_WRONLY | os.O_CREAT), b"x\n")
    # without /data/sub, the entry of f inside it (and f's cuts) make no difference
    images = [s.image for s in crash.crash_states()]
    assert len(images) == len(set(images)) == 1 + 1 + 4  # no sub | sub, no f | sub, f cut 4 ways


def test_enumeration_is_capped_deterministically(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    for i in range(12):  # 2**12 namespace choices x per-file cuts
        os.write(os.open(f"{DIR}/f{i}", os.O_WRONLY | os.O_CREAT), b"line\n")
    first = crash.enumerate_crash_states(cap=64)
    again = crash.enumerate_crash_states(cap=64)
    assert first.capped and len(first.states) == 64
    assert [s.image for s in first.states] == [s.image for s in again.states]
    assert crash.capped[None] == first.combinations
    assert crash.durable_image() in {s.image for s in first.states}
    assert crash.visible_image() in {s.image for s in first.states}


def test_uncapped_enumeration_reports_its_size(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    os.write(os.open(PATH, os.O_WRONLY | os.O_APPEND), b"ab\n")
    result = crash.enumerate_crash_states()
    assert not result.capped
    assert result.combinations == len(result.states) == 5
    assert crash.capped == {}


def _workload() -> None:
    os.mkdir(f"{DIR}/sub")
    fd = os.open(f"{DIR}/sub/f", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"one\ntwo\n")
    os.fsync(fd)
    os.write(fd, b"three\n")
    os.rename(PATH, f"{DIR}/moved")
    os.close(fd)


def test_identical_runs_give_identical_crash_states_in_the_same_order(crash: CrashFS) -> None:
    runs = []
    for _ in range(2):
        crash.start(DiskImage({PATH: b"a\n"}))
        _workload()
        crash.stop()
        runs.append(
            [(p, s.cut, s.image) for p in crash.crash_points() for s in crash.crash_states(p)]
        )
    assert runs[0] == runs[1]
    per_point = [sum(1 for p, _, _ in runs[0] if p == point) for point in crash.crash_points()]
    # sub may vanish (and f with it) until / and /data are fsynced: 2 extra states from
    # the open on; each write adds its cuts (7 + zero-filled, then 5 + zero-filled); the
    # unsynced rename doubles everything
    assert per_point == [2, 3, 2 + 8, 2 + 1, 2 + 6, 2 * (2 + 6)]
