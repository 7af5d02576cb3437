"""The op trace and crash points: a crash can be placed after any recorded op."""

from __future__ import annotations

import os

import pytest

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule, Op
from tests.faults.conftest import DIR, PATH, contents


def test_trace_records_ops_with_errors_in_order(crash: CrashFS) -> None:
    crash.configure(plan=FaultPlan((FaultRule("fsync", PATH, nth=1, errno="ENOSPC"),)))
    crash.start(DiskImage(dirs=(DIR,)))
    with pytest.raises(FileNotFoundError):
        os.open(PATH, os.O_RDONLY)
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x\n")
    with pytest.raises(OSError):
        os.fsync(fd)
    os.close(fd)
    assert [(o.index, o.op, o.path, o.error, o.injected, o.mutating) for o in crash.trace] == [
        (0, "open", PATH, "ENOENT", False, False),
        (1, "open", PATH, None, False, True),  # it created the file
        (2, "write", PATH, None, False, True),
        (3, "fsync", PATH, "ENOSPC", True, True),
        (4, "close", PATH, None, False, False),
    ]
    assert crash.trace[1].detail == "O_WRONLY|O_APPEND|O_CREAT|O_EXCL"
    assert str(crash.trace[3]) == f"#3 fsync {PATH} -> ENOSPC [injected]"


def test_crash_points_are_the_mutating_ops(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_RDWR | os.O_APPEND)  # 0: not mutating
    os.write(fd, b"a\n")  # 1
    os.read(fd, 10)  # 2: not mutating
    os.fsync(fd)  # 3
    os.replace(PATH, PATH + ".2")  # 4
    os.close(fd)  # 5: not mutating
    assert crash.crash_points() == [1, 3, 4]


def test_crash_states_after_an_earlier_point(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"a\n")
    os.fsync(fd)
    os.write(fd, b"b\n")
    write1, fsync1, write2 = crash.crash_points()
    assert contents(crash.crash_states(write1)) == [b"", b"a", b"a\n", b"\0\0"]
    assert contents(crash.crash_states(fsync1)) == [b"a\n"]
    assert contents(crash.crash_states(write2)) == [b"a\n", b"a\nb", b"a\nb\n", b"a\n\0\0"]
    assert contents(crash.crash_states(0)) == [b""]  # after the open: nothing written yet
    assert all(s.point == write1 for s in crash.crash_states(write1))


def test_crash_states_stay_available_after_stop(crash: CrashFS) -> None:
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"a\n")
    crash.stop()
    ops = len(crash.trace)
    assert os.path.exists(__file__)  # the real file system is back
    assert len(crash.trace) == ops  # and its calls are not recorded
    assert contents(crash.crash_states(1)) == [b"", b"a", b"a\n", b"\0\0"]
    assert contents(crash.crash_states()) == [b"", b"a", b"a\n", b"\0\0"]


def test_unknown_point_is_rejected(crash: CrashFS) -> None:
    crash.start()
    with pytest.raises(ValueError, match="no op 3"):
        crash.crash_states(3)


def test_record_off_keeps_no_trace_but_still_models_durability(crash: CrashFS) -> None:
    crash.configure(record=False, plan=FaultPlan((FaultRule("write", nth=2),)))
    crash.start(DiskImage({PATH: b""}))
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"a\n")
    with pytest.raises(OSError):  # faults still fire
        os.write(fd, b"b\n")
    assert crash.trace == []
    assert crash.crash_points() == []
    with pytest.raises(RuntimeError, match="record=True"):
        crash.crash_states(0)
    assert contents(crash.crash_states()) == [b"", b"a", b"a\n", b"\0\0"]


def test_op_round_trips_through_plain_data() -> None:
    op = Op(3, "fsync", PATH, "", "EIO", mutating=True, injected=True)
    assert Op.from_dict(op.to_dict()) == op
    with pytest.raises(ValueError, match="unknown op keys"):
        Op.from_dict({**op.to_dict(), "errno": 5})
    assert op.to_dict() == {
        "index": 3,
        "op": "fsync",
        "path": PATH,
        "detail": "",
        "error": "EIO",
        "mutating": True,
        "injected": True,
    }
