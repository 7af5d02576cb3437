"""SQLite through Python's stdlib `sqlite3`: create a table, then insert three rows, one
transaction each, and log each commit SQLite returned from in an ack log of our own.

    python examples/real/sqlite/workload.py JOURNAL SYNCHRONOUS [--exclusive]

JOURNAL: delete, truncate, persist or wal; SYNCHRONOUS: normal, full or extra (also
read from $SQLITE_JOURNAL / $SQLITE_SYNCHRONOUS when no arguments are given).
--exclusive sets `PRAGMA locking_mode=EXCLUSIVE` first, so WAL keeps its index in heap
memory instead of a shared-memory `-shm` file (mmap(MAP_SHARED)); the durability rules
are the same, and it runs on a mount that cannot map files shared.

Layout under $CRASHKIT_DIR: `db/test.db` (+ its journal or WAL), `acked` (one line per
commit returned: `schema`, then `row=1` .. `row=3`, appended and fsynced). `db/` and the
ack log exist and are durable before SQLite starts.
"""

from __future__ import annotations

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import ack, open_ack_log

JOURNALS = ("delete", "truncate", "persist", "wal")
SYNCHRONOUS = ("normal", "full", "extra")
ROWS = 3


def modes(argv: list[str]) -> tuple[str, str, bool]:
    """(journal mode, synchronous, exclusive) from the arguments or the environment."""
    words = [a.lower() for a in argv if not a.startswith("--")]
    journal = words[0] if words else os.environ.get("SQLITE_JOURNAL", "wal").lower()
    sync = words[1] if len(words) > 1 else os.environ.get("SQLITE_SYNCHRONOUS", "full").lower()
    if journal not in JOURNALS or sync not in SYNCHRONOUS:
        raise SystemExit(
            f"usage: workload.py {{{','.join(JOURNALS)}}} {{{','.join(SYNCHRONOUS)}}} "
            f"[--exclusive] (got {journal} {sync})"
        )
    return journal, sync, "--exclusive" in argv


def main() -> int:
    journal, sync, exclusive = modes(sys.argv[1:])
    root = os.environ.get("CRASHKIT_DIR", ".")
    folder = os.path.join(root, "db")
    os.makedirs(folder, exist_ok=True)
    log = open_ack_log(root)
    db = sqlite3.connect(os.path.join(folder, "test.db"), isolation_level=None)
    try:
        if exclusive:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
        got = db.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]
        if got != journal:
            raise SystemExit(f"SQLite refused journal_mode={journal} (kept {got})")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        ack(log, "schema")
        for row in range(1, ROWS + 1):
            db.execute("BEGIN")
            db.execute("INSERT INTO items VALUES (?, ?)", (row, f"row {row} " + "x" * 40))
            db.execute("COMMIT")
            ack(log, f"row={row}")
    finally:
        db.close()
        os.close(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
