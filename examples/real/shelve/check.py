"""Check a crash state of the shelve workload: the shelf opens and every acknowledged
key holds the value written.

Opening a `dbm.dumb` shelf with flag "c" (as the program reopens it) creates missing
files and rewrites the index at close, so the check opens a copy of `db/`. Exit 0: fine;
exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import shelve
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import check_copy


def expected(key: str) -> dict[str, object]:
    """The value the workload stored under `key` (keyN)."""
    return {"index": int(key[3:]), "body": "s" * 40}


def verdict(folder: str, done: list[str]) -> str | None:
    """What is wrong with the shelf in `folder` (a copy), or None."""
    try:
        with shelve.open(os.path.join(folder, "shelf")) as shelf:
            for key in done:
                if key not in shelf:
                    return f"acknowledged {key} is missing (keys: {sorted(shelf.keys())})"
                got = shelf[key]
                if got != expected(key):
                    return f"acknowledged {key} reads {got!r:.60}"
    except Exception as exc:  # whatever a torn index or pickle raises: the shelf is unusable
        return f"the shelf does not open or read: {type(exc).__name__}: {exc}"[:200]
    return None


if __name__ == "__main__":
    sys.exit(check_copy("db", "keys", verdict))
