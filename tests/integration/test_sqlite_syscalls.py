"""The production path of the SQLite backend is the tested one, and it asks the disk for
what SQLite's own unix VFS asks.

The backend opens every database through `sqlite_vfs.OsVfs` (the VFS the fault layer
crash-tests), in production as under test. What is left to show is that this VFS does
what SQLite's unix VFS would have done: the same system calls, in the same order, for
the same transactions on a real disk. `strace` records both; the differences allowed are
the size of a journal header (512 bytes under the unix VFS, which declares power-safe
overwrite; a 4096-byte sector here) and `fsync` where the unix VFS calls `fdatasync`
(a superset; see the module docstring of `sqlite_vfs`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.orchestrator.store import sqlite
from crashkit.orchestrator.store.sqlite_vfs import OsFile

SCRIPT = """
import os, sys
import apsw
from crashkit.orchestrator.store.sqlite import SAFE, vfs_for
path = os.path.abspath("t.db")
if sys.argv[1] == "crashkit":
    vfs = vfs_for(SAFE)
    vfs.attach(path, writer=True)
    connection = apsw.Connection(path, vfs=vfs.vfs_name)
else:
    connection = apsw.Connection(path, vfs="unix")
cursor = connection.cursor()
for pragma in ("locking_mode = NORMAL", "journal_mode = DELETE", "synchronous = EXTRA"):
    cursor.execute(f"PRAGMA {pragma}").fetchall()
os.write(2, b"--BEGIN--\\n")
cursor.execute("BEGIN IMMEDIATE; CREATE TABLE t (a PRIMARY KEY, b) WITHOUT ROWID; COMMIT")
for n in range(1, 4):
    cursor.execute("BEGIN IMMEDIATE")
    cursor.executemany("INSERT INTO t VALUES (?, ?)", [(n * 100 + i, "x" * 300) for i in range(n * 20)])
    cursor.execute("COMMIT")
os.write(2, b"--END--\\n")
connection.close()
"""

CALL = re.compile(r"^(?:\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+)")


def _calls(folder: Path, vfs: str) -> list[tuple[str, str, int | None]]:
    """(call, file, bytes) for every open, write, sync, truncate and unlink between the
    markers, with descriptors named by the file they were opened on."""
    trace = folder / f"trace.{vfs}"
    script = folder / "script.py"
    script.write_text(SCRIPT)
    for leftover in folder.glob("t.db*"):
        leftover.unlink()
    result = subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            str(trace),
            "-e",
            "trace=openat,pwrite64,write,fsync,fdatasync,ftruncate,unlink,close",
            sys.executable,
            str(script),
            vfs,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names: dict[str, str] = {}
    out: list[tuple[str, str, int | None]] = []
    inside = False
    for line in trace.read_text().splitlines():
        match = CALL.match(line)
        if match is None:
            continue
        call, args, returned = match.group(1), match.group(2), int(match.group(3))
        if call == "write" and "--BEGIN--" in args:
            inside = True
            continue
        if call == "write" and "--END--" in args:
            break
        if returned < 0:
            continue
        if call == "openat":  # (the database is opened before the first marker)
            path = args.split('"')[1]
            if path.startswith(str(folder)):
                name = os.path.relpath(path, folder)
                names[str(returned)] = name
                if inside:
                    out.append(("open", name, None))
            continue
        if not inside:
            continue
        if call == "unlink":
            out.append(("unlink", os.path.relpath(args.split('"')[1], folder), None))
        else:
            fd = args.split(",")[0]
            if fd not in names:
                continue
            size = returned if call == "pwrite64" else None
            out.append(("sync" if call in ("fsync", "fdatasync") else call, names[fd], size))
            if call == "close":
                del names[fd]
    return out


def _kind(folder: Path, vfs: str) -> str:
    """The sync call a VFS made (one kind only) in the trace `_calls` left."""
    text = (folder / f"trace.{vfs}").read_text()
    kinds = {k for k in ("fsync", "fdatasync") if re.search(rf"\b{k}\(", text)}
    assert len(kinds) == 1, kinds
    return kinds.pop()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian: strace)")
def test_the_crashkit_vfs_makes_the_calls_of_sqlites_unix_vfs(tmp_path: Path) -> None:
    unix = _calls(tmp_path, "unix")
    ours = _calls(tmp_path, "crashkit")
    assert [c[:2] for c in ours] == [c[:2] for c in unix]
    syncs = [c[:2] for c in ours if c[0] in ("sync", "unlink")]
    # per commit: journal, its folder (new journal), journal header, database, unlink,
    # folder (synchronous=EXTRA)
    assert syncs[:6] == [
        ("sync", "t.db-journal"),
        ("sync", "."),
        ("sync", "t.db-journal"),
        ("sync", "t.db"),
        ("unlink", "t.db-journal"),
        ("sync", "."),
    ]
    # which sync: fdatasync there, fsync here, at the same places
    assert {_kind(tmp_path, "unix"), _kind(tmp_path, "crashkit")} == {"fdatasync", "fsync"}
    assert len(syncs) == 4 * 6  # four commits, none folded into another
    differ = [(u, o) for u, o in zip(unix, ours, strict=True) if u != o]
    # the one difference: a journal header is a sector, 512 bytes there, 4096 here
    assert differ and all(
        u[0] == "pwrite64" and u[1] == "t.db-journal" and (u[2], o[2]) == (512, 4096)
        for u, o in differ
    )


def test_the_backend_opens_every_database_through_the_crashkit_vfs(tmp_path: Path) -> None:
    """In production (`crashkit run` opens `BACKEND`) every file of the database goes
    through `OsFile`, whose calls are the ones the fault layer records."""
    opened: list[str] = []
    original = OsFile.__init__

    def spy(self: OsFile, vfs: object, path: str, flags: list[int]) -> None:
        opened.append(os.path.basename(path))
        original(self, vfs, path, flags)  # type: ignore[arg-type]

    from crashkit.regime_engine.contracts import HysteresisConfig
    from tests.conftest import make_state

    OsFile.__init__ = spy  # type: ignore[method-assign]
    try:
        store = sqlite.BACKEND(str(tmp_path / "s.db"), HysteresisConfig())
        store.backend.append([make_state("A", 1)])
        store.backend.close()
    finally:
        OsFile.__init__ = original  # type: ignore[method-assign]
    assert opened == ["s.db", "s.db-journal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
