"""Check a crash state of the SQLite workload: the database opens, passes
`PRAGMA integrity_check`, and holds the table and every row the ack log names.

SQLite writes when it opens a database with a hot journal (it rolls it back) or a WAL
(it may rebuild the index, checkpoint at close), so the check opens a copy of `db/`,
never the crash state itself. Exit 0: fine; exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import check_copy


def verdict(folder: str, done: list[str]) -> str | None:
    """What is wrong with the database in `folder` (a copy), or None."""
    path = os.path.join(folder, "test.db")
    if not os.path.exists(path):
        return "db/test.db is missing, but commits were acknowledged" if done else None
    try:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            check = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if check != ["ok"]:
                return f"integrity_check: {'; '.join(check)[:200]}"
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "items" not in tables:
                return "table items is missing, but its creation was acknowledged" if done else None
            rows = {row[0] for row in db.execute("SELECT id FROM items")}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return f"the database does not open: {exc}"
    lost = [item for item in done if item.startswith("row=") and int(item[4:]) not in rows]
    if lost:
        return f"acknowledged {', '.join(lost)} missing (rows present: {sorted(rows)})"
    return None


if __name__ == "__main__":
    sys.exit(check_copy("db", "commits", verdict))
