"""LevelDB through `plyvel`: open a database, put three keys with `sync=True`, and log
each put LevelDB returned from in an ack log of our own.

    python examples/real/leveldb/workload.py [--no-sync] [--leveldb-creates-db]

--no-sync writes with sync=False (LevelDB's default), which LevelDB documents as
durable across a process crash but not a machine crash. --leveldb-creates-db leaves
`db/` for LevelDB to create (`create_if_missing`, as most programs open it): LevelDB
never syncs the folder that holds it, so its creation is not durable either.

Layout under $CRASHKIT_DIR: `db/` (LevelDB's folder: CURRENT, MANIFEST-*, *.log, LOCK),
`acked` (one line per put returned: `key1` .. `key3`, appended and fsynced). `db/` and
the ack log exist and are durable before LevelDB starts (`db/` only the ack log's
folder, with --leveldb-creates-db).
"""

from __future__ import annotations

import os
import sys

import plyvel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import ack, fsync_folder, open_ack_log

KEYS = 3


def value(index: int) -> bytes:
    """The value of key `index`, the checker's expectation too."""
    return f"value {index} ".encode() + b"v" * 40


def main() -> int:
    sync = "--no-sync" not in sys.argv[1:]
    root = os.environ.get("CRASHKIT_DIR", ".")
    folder = os.path.join(root, "db")
    if "--leveldb-creates-db" not in sys.argv[1:]:
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
