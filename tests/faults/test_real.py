"""The real-process mode's recorder (`crashkit.faults.real`) and `crashkit explore --exec`:
a real program on a FUSE mount is recorded in the layer's op vocabulary, the offline
replay of its calls arrives at the disk it left, and every crash state is checked.

Needs a FUSE mount (/dev/fuse, fusermount3, libfuse 3): where there is none, these tests
are skipped with the reason (`make setup` installs Debian's fuse3 where it can)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.faults import FaultPlan, FaultRule, FsyncModel
from crashkit.faults.crash import enumerate_states, visible_image
from crashkit.faults.real import fuse_unavailable, record, snapshots
from crashkit.harness.cli import main

UNAVAILABLE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WRITER = f"{sys.executable} {EXAMPLES / 'atomic_write.py'}"
CHECKER = f"{sys.executable} {EXAMPLES / 'check_config.py'}"

SQLITE = """
import os, sqlite3
db = sqlite3.connect(os.path.join(os.environ["CRASHKIT_DIR"], "t.db"))
db.execute("PRAGMA synchronous = EXTRA")
db.execute("CREATE TABLE t (a)")
db.commit()
db.execute("INSERT INTO t VALUES (1)")
db.commit()
db.close()
"""


@needs_fuse
def test_the_stdlib_sqlite3_module_is_seen_call_by_call() -> None:
    """What the pyfakefs layer cannot see (I/O in C) is recorded here: the journal's
    creation, its writes and syncs, the folder's sync, the database's writes, the unlink."""
    here = os.getcwd()
    recording, start = record([sys.executable, "-c", SQLITE])
    assert recording.returncode == 0, recording.stderr
    assert os.getcwd() == here  # (libfuse moves the process to / as it mounts)
    ops = [(op.op, op.path) for op in recording.trace]
    assert ("open", "/t.db-journal") in ops
    assert ("write", "/t.db") in ops
    assert ("fdatasync", "/t.db-journal") in ops or ("fsync", "/t.db-journal") in ops
    assert ("dirfsync", "/") in ops  # after the journal's creation and its unlink (EXTRA)
    assert ops.count(("unlink", "/t.db-journal")) == 2  # one per commit
    # the replay of those calls arrives at the disk the program left
    last = list(snapshots(recording, start))[-1][1]
    assert visible_image(last) == recording.final
    assert set(recording.final.files) == {"/t.db"}


@needs_fuse
def test_a_fault_plan_fails_the_real_process_call() -> None:
    plan = FaultPlan((FaultRule("fsync", "/config.tmp", nth=2, errno="EIO"),))
    recording, _ = record(WRITER, plan=plan)
    assert recording.returncode != 0
    assert "Input/output error" in recording.stderr
    failed = [op for op in recording.trace if op.injected]
    assert [(op.op, op.path, op.error) for op in failed] == [("fsync", "/config.tmp", "EIO")]


@needs_fuse
def test_the_cli_runs_the_worked_example_as_documented() -> None:
    """docs/backends.md, "Any program", its command as written. (The states, refusals and
    first finding it quotes: tests/faults/test_exec_mode.py, linear and exhaustive.)"""
    runner = CliRunner()
    clean = runner.invoke(main, ["explore", "--exec", WRITER, "--check", CHECKER])
    assert clean.exit_code == 0, clean.output
    caught = runner.invoke(
        main, ["explore", "--exec", f"{WRITER} --no-fsync", "--check", CHECKER, "--json"]
    )
    assert caught.exit_code == 1
    assert '"failed": ' in caught.output and '"findings": [' in caught.output


def test_without_fuse_exec_says_why_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import crashkit.faults.real as real

    monkeypatch.setattr(real, "fuse_unavailable", lambda: "no /dev/fuse: (test)")
    result = CliRunner().invoke(main, ["explore", "--exec", "true", "--check", "true"])
    assert result.exit_code == 2
    assert "needs a FUSE mount" in result.output and "no /dev/fuse" in result.output


def test_exec_and_check_go_together() -> None:
    result = CliRunner().invoke(main, ["explore", "--exec", "true"])
    assert result.exit_code == 2 and "--exec and --check go together" in result.output
    result = CliRunner().invoke(
        main, ["explore", "--exec", "true", "--check", "true", "--suite", "ci"]
    )
    assert result.exit_code == 2 and "cannot be combined with --suite" in result.output


def test_real_with_a_backend_that_cannot_load_is_a_usage_error() -> None:
    """Checked before anything runs (and whether or not FUSE is here): exit 2, the fix."""
    result = CliRunner().invoke(main, ["explore", "--real", "--backend", "nosuch:BACKEND"])
    assert result.exit_code == 2
    assert "--backend: backend 'nosuch:BACKEND': cannot import module 'nosuch'" in result.output


#: A program that replaces a file it still holds open (as a compaction does): the kernel
#: keeps the old inode under a `.fuse_hidden` name until its last close.
REPLACE_OPEN = """
import os
d = os.environ["CRASHKIT_DIR"]
path, temp = os.path.join(d, "state"), os.path.join(d, "state.tmp")
with open(path, "wb") as f:
    f.write(b"old\\n"); f.flush(); os.fsync(f.fileno())
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)
held = open(path, "rb")
with open(temp, "wb") as f:
    f.write(b"new\\n"); f.flush(); os.fsync(f.fileno())
os.replace(temp, path)
assert held.read() == b"old\\n"
held.close()
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)
"""


@needs_fuse
def test_replacing_an_open_file_is_one_replace_not_a_rename_to_a_hidden_name() -> None:
    """The kernel's rename of the open target to `.fuse_hidden...` is half of the
    program's atomic replace: no crash point, and no crash state without `/state`."""
    recording, start = record([sys.executable, "-c", REPLACE_OPEN])
    assert recording.returncode == 0, recording.stderr
    points = [(op.op, op.path) for op in recording.trace if op.mutating]
    assert ("replace", "/state.tmp") in points
    assert not any(".fuse_hidden" in path for _, path in points)
    hidden = [op for op in recording.trace if ".fuse_hidden" in op.detail + op.path]
    assert hidden and not any(op.mutating for op in hidden)
    synced = next(op.index for op in recording.trace if op.op == "dirfsync")
    for index, snap in snapshots(recording, start):
        for state in enumerate_states(snap, point=index).states:
            if index >= synced:  # once its entry is durable, /state is there, old or new
                assert state.image.files.get("/state") in (b"old\n", b"new\n"), state.cut
    assert visible_image(list(snapshots(recording, start))[-1][1]) == recording.final
    assert recording.final.files == {"/state": b"new\n"}


FSYNC_FAILS = """
import os
path = os.path.join(os.environ["CRASHKIT_DIR"], "f")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"abc")
try:
    os.fsync(fd)
except OSError as exc:
    print("fsync", exc.errno)
print("reads", os.pread(fd, 10, 0))
os.fsync(fd)
os.close(fd)
"""


@needs_fuse
@pytest.mark.parametrize(
    ("model", "reads", "durable"),
    [
        (FsyncModel.KEEP_DIRTY, b"abc", b"abc"),  # a later fsync persists them
        (FsyncModel.MARK_CLEAN, b"abc", b"\0\0\0"),  # marked clean: never written
        (FsyncModel.DROP, b"\0\0\0", b"\0\0\0"),  # thrown away: reads see the disk
    ],
)
def test_a_failed_fsync_applies_the_fsync_model_to_the_real_process(
    model: FsyncModel, reads: bytes, durable: bytes
) -> None:
    plan = FaultPlan((FaultRule("fsync", "/f", nth=1, errno="EIO"),))
    recording, start = record([sys.executable, "-c", FSYNC_FAILS], plan=plan, model=model)
    assert recording.returncode == 0, recording.stderr
    assert f"fsync {errno.EIO}" in recording.stdout
    assert f"reads {reads!r}" in recording.stdout
    last = list(snapshots(recording, start, model))[-1][1]
    (snap,) = [f for ino, f in last.files.items() if last.paths[ino] == "/f"]
    assert snap.writeback[: len(durable)] == durable
    assert visible_image(last) == recording.final


SHORT_AND_CLOSE = """
import os
path = os.path.join(os.environ["CRASHKIT_DIR"], "f")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
print("wrote", os.write(fd, b"abcdef"))
try:
    os.close(fd)
except OSError as exc:
    print("close", exc.errno)
"""


@needs_fuse
def test_a_short_write_and_a_failed_close_reach_the_real_process() -> None:
    plan = FaultPlan(
        (
            FaultRule("write", "/f", nth=1, short_write=2),
            FaultRule("close", "/f", nth=1, errno="EIO"),
        )
    )
    recording, _ = record([sys.executable, "-c", SHORT_AND_CLOSE], plan=plan)
    assert recording.returncode == 0, recording.stderr
    assert "wrote 2" in recording.stdout
    assert f"close {errno.EIO}" in recording.stdout
    assert recording.final.files == {"/f": b"ab"}
    short = [op for op in recording.trace if op.op == "write"]
    assert [(op.injected, op.detail) for op in short] == [(True, "short write: 2 of 6 bytes at 0")]
