"""Replace a config file "atomically": write a temp file, rename it over the old one,
sync the folder. With `--no-fsync` the temp file's bytes are never synced before the
rename, the classic bug: a power cut can leave the new name on a file whose data never
reached the disk. (The worked example of `crashkit explore --exec`, docs/backends.md.)"""

from __future__ import annotations

import os
import sys


def replace_config(folder: str, text: str, *, fsync: bool) -> None:
    temp, final = os.path.join(folder, "config.tmp"), os.path.join(folder, "config")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, final)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def main() -> None:
    folder = os.environ.get("CRASHKIT_DIR", ".")
    fsync = "--no-fsync" not in sys.argv[1:]
    for version in (1, 2, 3):
        replace_config(folder, f"version={version}\n" + "x" * 100 + "\n", fsync=fsync)


if __name__ == "__main__":
    main()
