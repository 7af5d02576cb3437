"""What every program of the corpus shares: its ack log, and the checkers' way in.

A workload records each operation its program reported done in `$CRASHKIT_DIR/acked`,
apart from the program's own folder: one line per item, appended and fsynced before the
program goes on, the file and its folder durable before the program starts. A checker
demands what the whole lines of that log name (a torn last line was never
acknowledged), on a copy of the program's folder, since opening a store may write.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable


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


def acked(root: str) -> list[str]:
    """The items the ack log holds whole (a torn last line was never acknowledged)."""
    try:
        with open(os.path.join(root, "acked"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [line.decode("ascii", "replace") for line in data.split(b"\n")[:-1]]


def check_copy(folder: str, what: str, verdict: Callable[[str, list[str]], str | None]) -> int:
    """A checker's main: `verdict(copy of $CRASHKIT_DIR/<folder>, acknowledged items)`,
    printed and exit 1 when it names a problem; a missing folder is one only when `what`
    (the items, for the reader) were acknowledged."""
    root = os.environ.get("CRASHKIT_DIR", ".")
    done = acked(root)
    source = os.path.join(root, folder)
    if not os.path.isdir(source):
        if done:
            print(f"{folder}/ is missing, but {what} were acknowledged")
            return 1
        return 0
    with tempfile.TemporaryDirectory(prefix="check-") as scratch:
        copy = os.path.join(scratch, folder)
        shutil.copytree(source, copy)
        reason = verdict(copy, done)
    if reason:
        print(reason)
        return 1
    return 0
