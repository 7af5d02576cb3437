"""Pure-Python standard-library storage on the fake disk: `dbm.dumb` (and `shelve` over it),
`json` + `os.replace`, `pickle`, links and the metadata calls. Every call that touches the
disk is seen, recorded and crashed; none reaches the real disk."""

from __future__ import annotations

import dbm.dumb
import json
import os
import pickle
import shelve
from collections.abc import MutableMapping
from typing import Literal, cast

from crashkit.faults import CrashFS, DiskImage
from crashkit.faults.escape import EscapeWatch

DIR = "/data"
DB = "/data/db"


def ops(crash: CrashFS) -> list[tuple[str, str]]:
    return [(o.op, o.path) for o in crash.trace]


def test_dbm_dumb_open_write_sync_close_is_recorded_and_nothing_escapes(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    with EscapeWatch((DIR,)) as watch:
        db = dbm.dumb.open(DB, "c")  # noqa: SIM115 (closed by hand: its calls are the test)
        db[b"key"] = b"value" * 20
        db.sync()  # the index rewritten through .bak: unlink, rename, open "w"
        db.close()
    assert watch.escapes == []
    seen = ops(crash)
    # through the class's own aliases (`_Database._os`, `_Database._io`)
    assert ("unlink", DB + ".bak") in seen
    assert ("rename", DB + ".dir") in seen
    assert ("write", DB + ".dat") in seen
    assert ("write", DB + ".dir") in seen
    assert crash.visible_image().files[DB + ".dat"] == b"value" * 20
    assert b"'key', (0, 100)" in crash.visible_image().files[DB + ".dir"]
    # the aliases are the real modules again once stopped
    crash.stop()
    assert dbm.dumb._Database._os is os  # type: ignore[attr-defined]


def test_dbm_dumb_writes_never_synced_are_lost_in_a_crash(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    db = dbm.dumb.open(DB, "c")  # noqa: SIM115 (closed by hand: its calls are the test)
    db[b"key"] = b"value" * 20
    db.sync()
    db.close()
    last = crash.crash_points()[-1]
    datas = {state.image.files.get(DB + ".dat") for state in crash.crash_states(last)}
    # the value never fsynced: a crash may leave no data file, an empty one, or part of it
    assert None in datas and b"value" * 20 in datas
    assert any(d is not None and len(d) < 100 for d in datas)
    assert crash.durable_image().files == {}  # nothing was ever made durable


def test_dbm_dumb_writes_fsynced_survive_every_crash(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    db = dbm.dumb.open(DB, "c")  # noqa: SIM115 (closed by hand: its calls are the test)
    db[b"key"] = b"v" * 10
    db.sync()
    for suffix in (".dat", ".dir"):
        fd = os.open(DB + suffix, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    fd = os.open(DIR, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    states = crash.crash_states(crash.crash_points()[-1])
    assert {s.image.files.get(DB + ".dat") for s in states} == {b"v" * 10}


def _database(flag: Literal["r", "c"]) -> MutableMapping[bytes, bytes]:
    return cast("MutableMapping[bytes, bytes]", dbm.dumb.open(DB, flag))


def test_shelve_over_dbm_dumb_is_seen(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    with EscapeWatch((DIR,)) as watch, shelve.Shelf[object](_database("c")) as shelf:
        shelf["a"] = {"x": 1}
    assert watch.escapes == []
    assert ("rename", DB + ".dir") in ops(crash)
    with shelve.Shelf[object](_database("r")) as shelf:
        assert shelf["a"] == {"x": 1}


def test_json_and_pickle_with_os_replace_are_seen(crash: CrashFS) -> None:
    crash.start(DiskImage(dirs=(DIR,)))
    with EscapeWatch((DIR,)) as watch:
        with open(DIR + "/state.json.tmp", "w") as f:
            json.dump({"a": 1}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(DIR + "/state.json.tmp", DIR + "/state.json")
        with open(DIR + "/state.pickle", "wb") as g:
            pickle.dump([1, 2], g)
    assert watch.escapes == []
    seen = ops(crash)
    assert ("fsync", DIR + "/state.json.tmp") in seen
    assert ("replace", DIR + "/state.json.tmp") in seen
    assert ("write", DIR + "/state.pickle") in seen
    # the replace not made durable by a folder fsync: a crash may undo it
    names = [set(s.image.files) for s in crash.crash_states(crash.crash_points()[-1])]
    assert any(DIR + "/state.json" not in n for n in names)


class _Holder:
    """A class holding the os module, open and os.open, as dbm.dumb's _Database does."""

    os_module = os
    opener = open
    raw_open = staticmethod(os.open)


def test_aliases_held_by_any_class_are_faked_while_started(crash: CrashFS) -> None:
    crash.stop()  # (so the next start scans this test module, imported before it)
    crash.start(DiskImage(dirs=(DIR,)))
    with EscapeWatch((DIR,)) as watch:
        with _Holder.opener(DIR + "/a", "w") as f:
            f.write("x")
        _Holder.os_module.close(_Holder.raw_open(DIR + "/b", os.O_CREAT | os.O_WRONLY))
        _Holder.os_module.rename(DIR + "/a", DIR + "/c")
    assert watch.escapes == []
    assert [op for op in ops(crash) if op[0] in ("open", "rename")] == [
        ("open", DIR + "/a"),
        ("open", DIR + "/b"),
        ("rename", DIR + "/a"),
    ]
    crash.stop()
    assert _Holder.os_module is os and _Holder.opener is open
    assert _Holder.__dict__["raw_open"].__func__ is os.open


def test_metadata_calls_pass_through_unrecorded(crash: CrashFS) -> None:
    crash.start(DiskImage({DIR + "/f": b"x"}))
    with EscapeWatch((DIR,)) as watch:
        os.chmod(DIR + "/f", 0o600)
        os.utime(DIR + "/f", (1, 2))
        fd = os.open(DIR + "/f", os.O_RDWR)
        os.fchmod(fd, 0o640)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    assert watch.escapes == []
    assert os.stat(DIR + "/f").st_mode & 0o777 == 0o640
    assert os.stat(DIR + "/f").st_mtime == 2
    assert [op for op, _ in ops(crash)] == ["open", "close"]  # no op, no crash point


def test_posix_fallocate_grows_the_file_as_a_truncate(crash: CrashFS) -> None:
    crash.start(DiskImage({DIR + "/f": b"ab"}))
    fd = os.open(DIR + "/f", os.O_RDWR)
    os.posix_fallocate(fd, 0, 8)
    os.posix_fallocate(fd, 0, 4)  # already that long: nothing
    os.close(fd)
    assert crash.visible_image().files[DIR + "/f"] == b"ab" + bytes(6)
    assert [o.op for o in crash.trace] == ["open", "ftruncate", "close"]
    # not durable: a crash may leave the old size
    assert b"ab" in {s.image.files[DIR + "/f"] for s in crash.crash_states()}


def test_a_hard_link_is_a_name_durable_once_its_folder_is_synced(crash: CrashFS) -> None:
    crash.start(DiskImage({DIR + "/f": b"data"}))
    os.link(DIR + "/f", DIR + "/g")
    assert crash.trace[-1].op == "open" and crash.trace[-1].detail == f"hard link to {DIR}/f"
    assert {DIR + "/g" in s.image.files for s in crash.crash_states()} == {True, False}
    fd = os.open(DIR, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    assert [s.image.files.get(DIR + "/g") for s in crash.crash_states()] == [b"data"]


def test_a_symlink_is_kept_by_crash_states_and_restored(crash: CrashFS) -> None:
    crash.start(DiskImage({DIR + "/f": b"data"}))
    os.symlink("f", DIR + "/l")
    assert crash.trace[-1].op == "open" and crash.trace[-1].detail == "symlink -> f"
    images = [s.image for s in crash.crash_states()]
    assert {image.links.get(DIR + "/l") for image in images} == {"f", None}
    kept = next(image for image in images if image.links)
    crash.restart(kept)  # a crash state holding the link boots with it
    assert os.readlink(DIR + "/l") == "f"
    with open(DIR + "/l", "rb") as f:
        assert f.read() == b"data"
