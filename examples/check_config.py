"""The checker of the worked example: after any power cut, `config` must be absent (the
first replace never reached the disk) or hold one whole version the writer wrote."""

from __future__ import annotations

import os
import re
import sys

WHOLE = re.compile(rb"version=[123]\nx{100}\n")


def main() -> int:
    path = os.path.join(os.environ.get("CRASHKIT_DIR", "."), "config")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        data = f.read()
    if WHOLE.fullmatch(data):
        return 0
    print(f"config holds {len(data)} bytes that no writer wrote whole: {data[:40]!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
