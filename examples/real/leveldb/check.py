"""Check a crash state of the LevelDB workload: the database opens (as LevelDB would
reopen it: recovering its log) and every acknowledged key holds the value put.

Opening recovers the log into a new table and rewrites MANIFEST and CURRENT, so the
check opens a copy of `db/`, never the crash state itself. A `db/` that LevelDB cannot
open is a finding even with nothing acknowledged: the program could not start again.
Exit 0: fine; exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import plyvel


def acked(root: str) -> list[str]:
    """The items the ack log holds whole (a torn last line was never acknowledged)."""
    try:
        with open(os.path.join(root, "acked"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [line.decode("ascii", "replace") for line in data.split(b"\n")[:-1]]


def expected(key: str) -> bytes:
    """The value the workload put under `key` (keyN)."""
    return f"value {key[3:]} ".encode() + b"v" * 40


def verdict(folder: str, done: list[str]) -> str | None:
    """What is wrong with the LevelDB database in `folder` (a copy), or None."""
    try:
        db = plyvel.DB(folder, create_if_missing=True)
    except plyvel.Error as exc:
        return f"LevelDB does not open: {exc}"
    try:
        for key in done:
            got = db.get(key.encode())
            if got != expected(key):
                return f"acknowledged {key} reads {got!r:.40}"
    finally:
        db.close()
    return None


def main() -> int:
    root = os.environ.get("CRASHKIT_DIR", ".")
    done = acked(root)
    source = os.path.join(root, "db")
    if not os.path.isdir(source):
        if done:
            print("db/ is missing, but puts were acknowledged")
            return 1
        return 0
    with tempfile.TemporaryDirectory(prefix="check-leveldb-") as scratch:
        copy = os.path.join(scratch, "db")
        shutil.copytree(source, copy)
        reason = verdict(copy, done)
    if reason:
        print(reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
