"""LevelDB through `plyvel`: open a database, put three keys with `sync=True`, and log
each put LevelDB returned from in an ack log of our own.

    python examples/real/leveldb/workload.py [--no-sync]

--no-sync writes with sync=False (LevelDB's default), which LevelDB documents as
durable across a process crash but not a machine crash.

Layout under $CRASHKIT_DIR: `db/` (LevelDB's folder: CURRENT, MANIFEST-*, *.log, LOCK),
`acked` (one line per put returned: `key1` .. `key3`, appended and fsynced). `db/` and
the ack log exist and are durable before LevelDB starts.
"""

from __future__ import annotations

import os
import sys

import plyvel

KEYS = 3


def fsync_folder(path: str) -> None:
    """Make the folder's entries durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_ack_log(root: str) -> int:
    """The ack log, created and durable (its folder fsynced) before the program runs."""
    fd = os.open(os.path.join(root, "acked"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.fsync(fd)
    fsync_folder(root)
    return fd


def ack(fd: int, item: str) -> None:
    """Record one item the program reported done: appended and fsynced before the next."""
    os.write(fd, f"{item}\n".encode())
    os.fsync(fd)


def value(index: int) -> bytes:
    """The value of key `index`, the checker's expectation too."""
    return f"value {index} ".encode() + b"v" * 40


def main() -> int:
    sync = "--no-sync" not in sys.argv[1:]
    root = os.environ.get("CRASHKIT_DIR", ".")
    folder = os.path.join(root, "db")
    os.makedirs(folder, exist_ok=True)
    fsync_folder(root)
    log = open_ack_log(root)
    db = plyvel.DB(folder, create_if_missing=True)
    try:
        for index in range(1, KEYS + 1):
            db.put(f"key{index}".encode(), value(index), sync=sync)
            ack(log, f"key{index}")
    finally:
        db.close()
        os.close(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
