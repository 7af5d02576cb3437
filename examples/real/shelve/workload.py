"""The stdlib `shelve` module: open a shelf, write three keys, `sync()` after each, and
log each key whose `sync()` returned in an ack log of our own.

    python examples/real/shelve/workload.py

shelve keeps its data in a `dbm` database; where neither `dbm.gnu` nor `dbm.ndbm` is
built in, that is `dbm.dumb` (`shelf.dat` for the pickled values, `shelf.dir` for the
index, rewritten through `shelf.bak` on sync), which never fsyncs: `sync()` only hands
the bytes to the operating system. Neither module promises anything across a power cut,
so findings are expected. The workload names the dbm module it got on stderr.

Layout under $CRASHKIT_DIR: `db/shelf.*` (the program's folder), `acked` (one line per
key whose sync returned: `key1` .. `key3`, appended and fsynced). `db/` and the ack log
exist and are durable before the shelf is opened.
"""

from __future__ import annotations

import dbm
import os
import shelve
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import ack, fsync_folder, open_ack_log

KEYS = 3


def value(index: int) -> dict[str, object]:
    """The value stored under key `index`, the checker's expectation too."""
    return {"index": index, "body": "s" * 40}


def main() -> int:
    root = os.environ.get("CRASHKIT_DIR", ".")
    folder = os.path.join(root, "db")
    os.makedirs(folder, exist_ok=True)
    fsync_folder(root)
    log = open_ack_log(root)
    path = os.path.join(folder, "shelf")
    try:
        with shelve.open(path) as shelf:
            for index in range(1, KEYS + 1):
                shelf[f"key{index}"] = value(index)
                shelf.sync()
                ack(log, f"key{index}")
        print(f"dbm module: {dbm.whichdb(path)}", file=sys.stderr)
    finally:
        os.close(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
