"""What real programs call (the FUSE recorder, `crashkit.faults.real`): shared `mmap`,
hard links, symlinks, `fallocate`, `O_SYNC`/`O_DSYNC`, `sync(2)`/`syncfs(2)` through
the shim, renameat2's flags, and the calls the recorder refuses (named, with the errno
the program got). The replay of each recording arrives at the disk the program left.

The recording tests need a FUSE mount (skipped with the reason where there is none);
the sync ones also a C compiler for the shim. The DiskImage and replay ones run anywhere.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

import crashkit.faults.real as real
from crashkit.faults import FaultPlan, FaultRule, FsyncModel
from crashkit.faults.crash import enumerate_states, visible_image
from crashkit.faults.image import DiskImage, LinkTarget
from crashkit.faults.model import Snapshot
from crashkit.faults.ops import OpKind
from crashkit.faults.real import (
    Recording,
    fuse_unavailable,
    materialise,
    read_folder,
    record,
    snapshots,
    sync_shim,
)
from crashkit.faults.replay import Call, ReplayModel

UNAVAILABLE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")
SHIM, NO_SHIM = sync_shim()
needs_shim = pytest.mark.skipif(SHIM is None, reason=f"no sync shim here: {NO_SHIM}")


def run(program: str, image: DiskImage | None = None, **kwargs: object) -> Recording:
    """Record `program` (Python source) and check the replay arrives at its final disk."""
    recording, start = record([sys.executable, "-c", program], image, **kwargs)  # type: ignore[arg-type]
    assert recording.returncode == 0, recording.stderr
    model = kwargs.get("model", FsyncModel.KEEP_DIRTY)
    last = list(snapshots(recording, start, model))[-1][1]  # type: ignore[arg-type]
    assert visible_image(last) == recording.final
    return recording


def ops(recording: Recording) -> list[tuple[str, str, str]]:
    """The trace without reads and closes: (op, path, detail)."""
    return [
        (op.op, op.path, op.detail)
        for op in recording.trace
        if op.op not in (OpKind.READ, OpKind.CLOSE)
    ]


def states_after(recording: Recording, start: DiskImage, op: str) -> list[DiskImage]:
    """Every crash state (prefix profile, exhaustive) at each crash point that is `op`."""
    out = []
    for index, snap in snapshots(recording, start):
        if recording.trace[index].op == op:
            out += [state.image for state in enumerate_states(snap, point=index).states]
    return out


# -- write(2) order and shared mappings --------------------------------------------------

INTERLEAVED = """
import os
d = os.environ["CRASHKIT_DIR"]
a = os.open(os.path.join(d, "a"), os.O_WRONLY | os.O_CREAT, 0o644)
b = os.open(os.path.join(d, "b"), os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(4):
    os.write(a, b"a%d" % i)
    os.write(b, b"b%d" % i)
"""


@needs_fuse
def test_interleaved_writes_to_two_files_keep_their_order_in_the_trace() -> None:
    """The page cache writes through: each write(2) is recorded before it returns."""
    recording = run(INTERLEAVED)
    writes = [
        (call.path, call.data)
        for call in recording.calls
        if call is not None and call.op is OpKind.WRITE
    ]
    assert writes == [(f"/{name}", f"{name}{i}".encode()) for i in range(4) for name in ("a", "b")]
    assert recording.final.files == {"/a": b"a0a1a2a3", "/b": b"b0b1b2b3"}


PARTS = """
import os
fd = os.open(os.path.join(os.environ["CRASHKIT_DIR"], "f"), os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"a" * 4096, 4000)  # starts inside a page the kernel has not cached
os.lseek(fd, 100, os.SEEK_SET)
os.writev(fd, [b"b" * 3000, b"c" * 3000])  # vectored, across the page at 4096
os.pwrite(fd, b"d" * 96, 12192)  # ends on a page boundary...
os.pwrite(fd, b"e" * 4, 12288)  # ...and the next write(2) starts there: two calls
"""


@needs_fuse
@pytest.mark.skipif(not real._WRITE_CALLS, reason="no write(2) numbers for this machine")
def test_a_write_the_kernel_sends_in_parts_is_one_recorded_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So a crash point is a whole write(2), as in the in-process layer; without /proc's
    word on the writing thread's call the parts stay apart (what the kernel sends)."""
    whole = [(c.offset, len(c.data)) for c in run(PARTS).calls if c and c.op is OpKind.WRITE]
    assert whole == [(4000, 4096), (100, 6000), (12192, 96), (12288, 4)]
    monkeypatch.setattr(real, "writing", lambda tid: None)
    recording = run(PARTS)
    parts = [(c.offset, len(c.data)) for c in recording.calls if c and c.op is OpKind.WRITE]
    assert parts == [(4000, 96), (4096, 4000), (100, 3996), (4096, 2004), (12192, 96), (12288, 4)]
    data = bytearray(12292)
    data[4000:8096], data[100:6100] = b"a" * 4096, b"b" * 3000 + b"c" * 3000
    data[12192:12292] = b"d" * 96 + b"e" * 4
    assert recording.final.files == {"/f": bytes(data)}


MMAP = """
import mmap, os
path = os.path.join(os.environ["CRASHKIT_DIR"], "m")
with open(path, "r+b") as f:
    m = mmap.mmap(f.fileno(), 8192, mmap.MAP_SHARED)
    m[4096:4101] = b"hello"
    m.flush()
    m[0:5] = b"later"
    m.close()
"""


@needs_fuse
def test_a_shared_mapping_is_recorded_as_writes_at_msync_and_munmap() -> None:
    """mmap.flush() is msync: the dirty page is recorded as a write, then the sync it
    implies; the store after it arrives at munmap, not synced."""
    start = DiskImage({"/m": bytes(8192)})
    recording, _ = record([sys.executable, "-c", MMAP], start)
    assert recording.returncode == 0, recording.stderr
    assert ops(recording) == [
        ("open", "/m", ""),  # (not a crash point: it neither creates nor truncates)
        ("write", "/m", "4096 bytes at 4096"),
        ("fdatasync", "/m", ""),
        ("write", "/m", "4096 bytes at 0"),
    ]
    first, _, second = (c for c in recording.calls if c is not None)
    assert first.data == b"hello" + bytes(4091) and second.data == b"later" + bytes(4091)
    after = bytes(4096) + b"hello" + bytes(4091)
    synced = states_after(recording, start, "fdatasync")
    assert synced and all(state.files["/m"] == after for state in synced)
    # after the munmap, the unsynced page may or may not have reached the disk
    last = list(snapshots(recording, start))[-1]
    kept = {s.image.files["/m"][:5] for s in enumerate_states(last[1], point=last[0]).states}
    assert {b"later", bytes(5)} <= kept
    assert recording.final.files == {"/m": b"later" + bytes(4091) + b"hello" + bytes(4091)}


DROPPED_PAGES = """
import mmap, os
path = os.path.join(os.environ["CRASHKIT_DIR"], "f")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"a" * 8192)
m = mmap.mmap(fd, 8192)
print("before", os.pread(fd, 4, 4096), m[:4])
try:
    os.fsync(fd)
except OSError as exc:
    print("fsync", exc.errno)
print("after", os.pread(fd, 4, 4096), m[:4])
m.close()
os.fsync(fd)
os.close(fd)
"""


@needs_fuse
def test_a_failed_fsync_under_drop_reaches_cached_pages_and_mappings() -> None:
    """Whole pages stay in the kernel's cache: the recorder drops them there too, so
    reads and the mapping see what the disk holds."""
    plan = FaultPlan((FaultRule("fsync", "/f", nth=1, errno="EIO"),))
    recording = run(DROPPED_PAGES, plan=plan, model=FsyncModel.DROP)
    assert recording.stdout.splitlines() == [
        "before b'aaaa' b'aaaa'",
        f"fsync {errno.EIO}",
        "after b'\\x00\\x00\\x00\\x00' b'\\x00\\x00\\x00\\x00'",
    ]
    assert recording.final.files == {"/f": bytes(8192)}
    last = list(snapshots(recording, DiskImage(), FsyncModel.DROP))[-1][1]
    assert [f.durable for f in last.files.values()] == [bytes(8192)]


WAL = """
import os, sqlite3
db = sqlite3.connect(os.path.join(os.environ["CRASHKIT_DIR"], "w.db"))
assert db.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
db.execute("CREATE TABLE t (a)")
db.commit()
for i in range(3):
    db.execute("INSERT INTO t VALUES (?)", (i,))
    db.commit()
assert db.execute("SELECT count(*) FROM t").fetchone() == (3,)
db.close()
"""


@needs_fuse
def test_sqlite_in_wal_mode_runs_and_its_wal_and_shm_writes_are_recorded() -> None:
    """The -shm file is a shared mapping (ENODEV under direct_io): its pages are recorded
    when SQLite unmaps it (by then under the name the kernel hid it as)."""
    recording = run(WAL)
    trace = [(op.op, op.path) for op in recording.trace]
    assert ("write", "/w.db-wal") in trace and ("fdatasync", "/w.db-wal") in trace
    assert ("write", "/w.db-shm") in trace  # (SQLite sizes it with write(2))
    mapped = [
        call
        for call in recording.calls
        if call is not None
        and call.op is OpKind.WRITE
        and (call.path == "/w.db-shm" or ".fuse_hidden" in call.path)
        and len(call.data) >= 4096
    ]
    assert mapped and any(call.data.strip(b"\0") for call in mapped)
    assert set(recording.final.files) == {"/w.db"}


# -- links ---------------------------------------------------------------------------------

HARD_LINK = """
import os
d = os.environ["CRASHKIT_DIR"]
with open(os.path.join(d, "a"), "wb") as f:
    f.write(b"data"); f.flush(); os.fsync(f.fileno())
os.link(os.path.join(d, "a"), os.path.join(d, "b"))
print("nlink", os.stat(os.path.join(d, "a")).st_nlink)
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)
"""


@needs_fuse
def test_a_hard_link_is_a_second_name_of_the_inode_in_the_replay() -> None:
    recording = run(HARD_LINK, DiskImage(dirs=("/keep",)))
    assert "nlink 2" in recording.stdout
    assert ("open", "/b", "hard link to /a") in ops(recording)
    last = list(snapshots(recording, DiskImage(dirs=("/keep",))))[-1][1]
    root = last.current[last.root]
    assert root["a"] == root["b"]  # one inode, two names
    assert recording.final.files == {"/a": b"data", "/b": b"data"}
    # before the folder's fsync the new name may be lost; the data never is
    link_at = next(op.index for op in recording.trace if op.detail == "hard link to /a")
    snap = dict(snapshots(recording, DiskImage()))[link_at]
    found = {tuple(sorted(s.image.files.items())) for s in enumerate_states(snap).states}
    assert (("/a", b"data"), ("/b", b"data")) in found
    assert all(dict(files).get("/b", b"data") == b"data" for files in found)


SYMLINK = """
import os
d = os.environ["CRASHKIT_DIR"]
with open(os.path.join(d, "target"), "wb") as f:
    f.write(b"t")
os.symlink("target", os.path.join(d, "link"))
print("readlink", os.readlink(os.path.join(d, "link")))
with open(os.path.join(d, "link"), "rb") as f:
    print("through", f.read())
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)
"""


@needs_fuse
def test_a_symlink_works_and_a_crash_state_materialises_it(tmp_path: Path) -> None:
    recording = run(SYMLINK)
    assert recording.stdout.splitlines() == ["readlink target", "through b't'"]
    assert ("open", "/link", "symlink to target") in ops(recording)
    assert recording.final.links == {"/link": "target"}
    durable = states_after(recording, DiskImage(), "dirfsync")
    assert durable and all(state.links == {"/link": "target"} for state in durable)
    folder = tmp_path / "state"
    materialise(durable[0], str(folder))
    assert os.readlink(folder / "link") == "target"
    assert read_folder(str(folder)) == durable[0]
    # before the folder's fsync, a crash may leave the directory without the link
    start = DiskImage()
    made = next(op.index for op in recording.trace if op.path == "/link")
    snap = dict(snapshots(recording, start))[made]
    assert {tuple(s.image.links) for s in enumerate_states(snap).states} == {(), ("/link",)}


# -- fallocate, O_SYNC, renameat2 -----------------------------------------------------------

FALLOCATE = """
import os
fd = os.open(os.path.join(os.environ["CRASHKIT_DIR"], "f"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"abc")
os.posix_fallocate(fd, 0, 4096)
os.posix_fallocate(fd, 0, 10)  # inside the file: nothing a crash could show
print("size", os.fstat(fd).st_size)
os.close(fd)
"""


@needs_fuse
def test_posix_fallocate_grows_the_file_as_a_truncate() -> None:
    recording = run(FALLOCATE)
    assert "size 4096" in recording.stdout
    assert ops(recording) == [
        ("open", "/f", "O_CREAT"),
        ("write", "/f", "3 bytes at 0"),
        ("ftruncate", "/f", "fallocate to 4096 bytes"),
    ]
    assert recording.final.files == {"/f": b"abc" + bytes(4093)}


O_SYNC_WRITER = """
import os
d = os.environ["CRASHKIT_DIR"]
fd = os.open(os.path.join(d, "log"), os.O_WRONLY | os.O_APPEND | os.O_SYNC)
for i in range(3):
    os.write(fd, b"entry %d\\n" % i)
os.close(fd)
fd = os.open(os.path.join(d, "data"), os.O_WRONLY | os.O_DSYNC)
os.write(fd, b"x")
os.close(fd)
"""


@needs_fuse
def test_every_write_through_an_o_sync_descriptor_is_followed_by_its_sync() -> None:
    """So no crash state after a write's sync loses it: the program needs no fsync."""
    start = DiskImage({"/log": b"", "/data": b""})
    recording, _ = record([sys.executable, "-c", O_SYNC_WRITER], start)
    assert recording.returncode == 0, recording.stderr
    assert ops(recording) == [
        ("open", "/log", "O_SYNC: the kernel syncs after each write"),
        ("write", "/log", "8 bytes at 0"),
        ("fsync", "/log", ""),
        ("write", "/log", "8 bytes at 8"),
        ("fsync", "/log", ""),
        ("write", "/log", "8 bytes at 16"),
        ("fsync", "/log", ""),
        ("open", "/data", "O_DSYNC: the kernel syncs after each write"),
        ("write", "/data", "1 bytes at 0"),
        ("fdatasync", "/data", ""),
    ]
    synced = 0
    for index, snap in snapshots(recording, start):
        if recording.trace[index].op == "fsync":
            synced += 1
            wanted = b"".join(b"entry %d\n" % i for i in range(synced))
            states = enumerate_states(snap, point=index).states
            assert {state.image.files["/log"] for state in states} == {wanted}
    assert synced == 3


#: renameat2(2) through ctypes (the os module has none): flags 1 NOREPLACE, 2 EXCHANGE.
RENAMEAT2 = """
import ctypes, os
d = os.environ["CRASHKIT_DIR"]
libc = ctypes.CDLL(None, use_errno=True)
def rename2(old, new, flags):
    rc = libc.renameat2(-100, os.path.join(d, old).encode(), -100, os.path.join(d, new).encode(), flags)
    print(old, new, flags, "ok" if rc == 0 else errno_name(ctypes.get_errno()))
import errno
errno_name = errno.errorcode.get
for name in ("a", "b"):
    with open(os.path.join(d, name), "w") as f:
        f.write(name)
rename2("a", "c", 1)
rename2("c", "b", 1)
rename2("c", "b", 2)
"""


@needs_fuse
def test_rename_noreplace_is_honoured_and_exchange_is_refused_by_name() -> None:
    recording = run(RENAMEAT2)
    assert recording.stdout.splitlines() == [
        "a c 1 ok",
        "c b 1 EEXIST",  # (the kernel refuses it: the name exists)
        "c b 2 EINVAL",
    ]
    assert ("rename", "/a", "-> /c, RENAME_NOREPLACE") in ops(recording)
    assert recording.unsupported == [
        "rename (RENAME_EXCHANGE) /c -> /b: EINVAL, not supported by the recorder"
    ]
    assert recording.final.files == {"/b": b"b", "/c": b"a"}


# -- sync(2) and syncfs(2) -------------------------------------------------------------------

SYNCS = """
import os, subprocess
d = os.environ["CRASHKIT_DIR"]
with open(os.path.join(d, "f"), "wb") as f:
    f.write(b"one")
os.sync()
with open(os.path.join(d, "g"), "wb") as f:
    f.write(b"two")
subprocess.run(["sync"], check=True)
subprocess.run(["sync", "-f", os.path.join(d, "g")], check=True)  # syncfs of the mount
subprocess.run(["sync", "-f", "/"], check=True)  # another file system's: not this one
"""


@needs_fuse
@needs_shim
def test_os_sync_and_the_sync_command_are_recorded_as_sync() -> None:
    """Data never fsynced but followed by sync(2) survives every later crash state."""
    recording = run(SYNCS)
    assert recording.notes == []
    syncs = [op for op in recording.trace if op.op == OpKind.SYNC]
    assert [op.detail for op in syncs] == ["sync(2) or syncfs(2), seen by the crashkit shim"] * 3
    assert all(op.mutating for op in syncs)
    after = states_after(recording, DiskImage(), "sync")
    assert after and all(state.files.get("/f") == b"one" for state in after)
    last = states_after(recording, DiskImage(), "sync")[-1]
    assert last.files == {"/f": b"one", "/g": b"two"}
    assert recording.final.files == {"/f": b"one", "/g": b"two"}


@needs_fuse
def test_without_a_compiler_the_recording_says_sync_is_not_visible(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # (no shim built before)
    monkeypatch.setattr(real, "find_compiler", lambda: None)
    recording = run("import os; open(os.environ['CRASHKIT_DIR'] + '/f', 'w'); os.sync()")
    assert recording.notes == ["sync(2) is not visible: no C compiler to build the shim"]
    assert not any(op.op == OpKind.SYNC for op in recording.trace)


@needs_shim
def test_the_shim_is_built_once_per_source_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built, note = sync_shim()
    assert note is None and built is not None
    assert Path(built).parent == tmp_path / "crashkit" and Path(built).suffix == ".so"
    monkeypatch.setattr(real, "find_compiler", lambda: None)  # the cached one is used
    assert sync_shim() == (built, None)


# -- what the recorder refuses -----------------------------------------------------------------

REFUSED = """
import errno, fcntl, os
d = os.environ["CRASHKIT_DIR"]
path = os.path.join(d, "f")
with open(path, "wb") as f:
    f.write(b"x")
for what, call in [
    ("setxattr", lambda: os.setxattr(path, "user.k", b"v")),
    ("mkfifo", lambda: os.mkfifo(os.path.join(d, "pipe"))),
    ("ioctl", lambda: fcntl.ioctl(os.open(path, os.O_RDONLY), 0x80086601, bytes(8))),
]:
    try:
        call()
        print(what, "ok")
    except OSError as exc:
        print(what, errno.errorcode[exc.errno])
print("isatty", os.isatty(os.open(path, os.O_RDONLY)))
"""


@needs_fuse
def test_a_refused_call_is_listed_with_its_file_and_the_errno_the_program_got() -> None:
    recording = run(REFUSED)
    assert recording.stdout.splitlines() == [
        "setxattr ENOTSUP",
        "mkfifo EPERM",
        "ioctl ENOTTY",
        "isatty False",
    ]
    assert recording.unsupported == [
        "setxattr /f user.k: ENOTSUP, not supported by the recorder",
        "mknod (FIFO) /pipe: EPERM, not supported by the recorder",
        "ioctl 0x80086601 /f: ENOTTY, not supported by the recorder",
    ]  # (isatty's terminal ioctl is not listed)
    assert recording.final.files == {"/f": b"x"}


# -- DiskImage links and the replay, without FUSE ----------------------------------------------


def test_disk_image_links_are_normalised_compared_and_round_tripped() -> None:
    image = DiskImage({"/d/f": b"x"}, ("/e",), {"/d//l": "f", "/m/abs": "/elsewhere"})
    assert dict(image.links) == {"/d/l": "f", "/m/abs": "/elsewhere"}
    assert image.all_dirs() == ("/d", "/e", "/m")
    assert image == DiskImage(
        {"/d/f": b"x", "/d/l": LinkTarget(b"f")}, ("/e", "/m"), {"/m/abs": "/elsewhere"}
    )
    assert image != DiskImage({"/d/f": b"x", "/d/l": b"f"}, ("/e",), {"/m/abs": "/elsewhere"})
    assert len({image, DiskImage.trusted(dict(image.files), image.dirs, image.links)}) == 1
    data = image.to_dict()
    assert data["links"] == {"/d/l": "f", "/m/abs": "/elsewhere"}
    assert DiskImage.from_dict(json.loads(json.dumps(data))) == image
    assert DiskImage.from_dict(yaml.safe_load(yaml.safe_dump(data))) == image
    assert "links" not in DiskImage({"/f": b""}).to_dict()  # (the old form, unchanged)


@pytest.mark.parametrize(
    ("files", "links"),
    [
        ({"/a": b""}, {"/a": "b"}),  # both a file and a link
        ({"/l/f": b""}, {"/l": "x"}),  # a link as a parent
        ({}, {"/l": ""}),  # no target
        ({}, {"relative": "x"}),
    ],
)
def test_inconsistent_links_are_rejected(files: dict[str, bytes], links: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        DiskImage(files, (), links)


def test_a_folder_with_links_reads_back_as_the_image_it_was_made_from(tmp_path: Path) -> None:
    image = DiskImage({"/d/f": b"x"}, ("/empty",), {"/d/l": "f", "/dl": "d", "/dangling": "no"})
    materialise(image, str(tmp_path))
    assert os.readlink(tmp_path / "dl") == "d"
    assert read_folder(str(tmp_path)) == image


def replay(image: DiskImage, *calls: Call) -> Snapshot:
    model = ReplayModel(image)
    for call in calls:
        model.apply(call)
    return model.snapshot()


def test_the_replay_keeps_both_names_of_a_hard_link_and_their_one_content() -> None:
    snap = replay(
        DiskImage({"/a": b"old"}),
        Call(OpKind.OPEN, "/b", target="/a", creates=True, link="hard"),
        Call(OpKind.WRITE, "/b", b"new", 0),
        Call(OpKind.FSYNC, "/a"),  # (on ext4, commits the link too)
        Call(OpKind.UNLINK, "/a"),
    )
    assert visible_image(snap) == DiskImage({"/b": b"new"})
    assert snap.journal[0].op == "unlink /a"
    # synced through either name, the content is the new one in every state
    ext4 = {state.image for state in enumerate_states(snap, profile="ext4-ordered").states}
    assert ext4 == {DiskImage({"/a": b"new", "/b": b"new"}), DiskImage({"/b": b"new"})}
    prefix = {state.image for state in enumerate_states(snap).states}
    assert prefix == {DiskImage({"/a": b"new"}), DiskImage({"/b": b"new"})}
    linked = ReplayModel(DiskImage({"/a": b"x"}))
    linked.apply(Call(OpKind.OPEN, "/b", target="/a", creates=True, link="hard"))
    assert [entry.op for entry in linked.journal] == ["link /a -> /b"]


def test_the_replay_starts_from_an_image_with_links_and_keeps_them() -> None:
    snap = replay(
        DiskImage({"/f": b"1"}, (), {"/l": "f"}),
        Call(OpKind.OPEN, "/s", data=b"../x", creates=True, link="symbolic"),
        Call(OpKind.SYNC, "/"),
        Call(OpKind.RENAME, "/l", target="/m"),
    )
    assert visible_image(snap) == DiskImage({"/f": b"1"}, (), {"/m": "f", "/s": "../x"})
    links = {tuple(sorted(state.image.links.items())) for state in enumerate_states(snap).states}
    assert links == {(("/l", "f"), ("/s", "../x")), (("/m", "f"), ("/s", "../x"))}
