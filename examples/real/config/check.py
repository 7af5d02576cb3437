"""Check a crash state of the config writer: `etc/config` holds one whole version, and
no older one than the last version acknowledged (absent only if none was).

Exit 0: the writer can live with this disk; exit 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # acklog.py
from acklog import acked

WHOLE = re.compile(rb"version=([123])\nx{100}\n")


def main() -> int:
    root = os.environ.get("CRASHKIT_DIR", ".")
    done = acked(root)
    last = max((int(item.rpartition("=")[2]) for item in done), default=0)
    path = os.path.join(root, "etc", "config")
    if not os.path.exists(path):
        if last:
            print(f"etc/config is missing, but version={last} was acknowledged")
            return 1
        return 0
    with open(path, "rb") as f:
        data = f.read()
    match = WHOLE.fullmatch(data)
    if match is None:
        print(f"etc/config holds {len(data)} bytes no writer wrote whole: {data[:24]!r}")
        return 1
    if int(match.group(1)) < last:
        print(
            f"etc/config holds version={int(match.group(1))}, but version={last} was acknowledged"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
