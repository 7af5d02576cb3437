"""Check a crash state of the LevelDB workload: the database opens (as LevelDB would
reopen it: recovering its log) and every acknowledged key holds the value put.

Opening recovers the log into a new table and rewrites MANIFEST and CURRENT, so the
check opens a copy of `db/`, never the crash state itself. A `db/` that LevelDB cannot
open is a finding even with nothing acknowledged: the program could not start again.
Exit 0: fine; exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import sys

import plyvel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import check_copy


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


if __name__ == "__main__":
    sys.exit(check_copy("db", "puts", verdict))
