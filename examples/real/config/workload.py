"""Replace a config file three times, written right or wrong, and log each version the
writer reported done in an ack log kept apart from the config's folder.

    python examples/real/config/workload.py [right|no-fsync|no-dir-fsync]

right: temp file, write, fsync, rename over `config`, fsync the folder. no-fsync: the
temp file's bytes are never synced before the rename (the new name may reach the disk
on a file whose data never did). no-dir-fsync: the bytes are synced but the rename is
never made durable (the old version may come back after a power cut).

Layout under $CRASHKIT_DIR: `etc/config` (the program's folder), `acked` (one line per
version the writer returned from, appended and fsynced). Both the ack log and `etc/`
exist and are durable before the first write, so a missing folder is never blamed on
the program.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import ack, fsync_folder, open_ack_log

MODES = ("right", "no-fsync", "no-dir-fsync")


def replace_config(folder: str, text: str, mode: str) -> None:
    """The rename idiom, with the step `mode` leaves out."""
    temp, final = os.path.join(folder, "config.tmp"), os.path.join(folder, "config")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
        if mode != "no-fsync":
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, final)
    if mode != "no-dir-fsync":
        fsync_folder(folder)


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "right"
    if mode not in MODES:
        print(f"unknown mode {mode!r}; one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    root = os.environ.get("CRASHKIT_DIR", ".")
    folder = os.path.join(root, "etc")
    os.makedirs(folder, exist_ok=True)
    log = open_ack_log(root)
    try:
        for version in (1, 2, 3):
            replace_config(folder, f"version={version}\n" + "x" * 100 + "\n", mode)
            ack(log, f"version={version}")
    finally:
        os.close(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
