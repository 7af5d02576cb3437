"""Check a crash state of the shelve workload: the shelf opens and every acknowledged
key holds the value written.

Opening a `dbm.dumb` shelf with flag "c" (as the program reopens it) creates missing
files and rewrites the index at close, so the check opens a copy of `db/`. Exit 0: fine;
exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import shelve
import shutil
import sys
import tempfile


def acked(root: str) -> list[str]:
    """The items the ack log holds whole (a torn last line was never acknowledged)."""
    try:
        with open(os.path.join(root, "acked"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [line.decode("ascii", "replace") for line in data.split(b"\n")[:-1]]


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


def main() -> int:
    root = os.environ.get("CRASHKIT_DIR", ".")
    done = acked(root)
    source = os.path.join(root, "db")
    if not os.path.isdir(source):
        if done:
            print("db/ is missing, but keys were acknowledged")
            return 1
        return 0
    with tempfile.TemporaryDirectory(prefix="check-shelve-") as scratch:
        copy = os.path.join(scratch, "db")
        shutil.copytree(source, copy)
        reason = verdict(copy, done)
    if reason:
        print(reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
