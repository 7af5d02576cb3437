"""Materialisation throughput: `python -m crashkit.faults.bench [cycles]`.

One cycle is what a crash explorer pays per state before its own checks: reboot onto a
disk image, then open the state file, append three lines and fsync. The explorer needs
well over 1,000 cycles/s per core; run this after touching the interception layer.
"""

from __future__ import annotations

import os
import sys
import time

from crashkit.faults.fs import CrashFS
from crashkit.faults.image import DiskImage

PATH = "/data/state.jsonl"
IMAGE = DiskImage({PATH: b'{"symbol":"A","ts":0}\n' * 50})
LINES = tuple(b'{"symbol":"A","ts":%d}\n' % i for i in range(1, 4))


def _workload() -> None:
    fd = os.open(PATH, os.O_WRONLY | os.O_APPEND)
    for line in LINES:
        os.write(fd, line)
    os.fsync(fd)
    os.close(fd)


def measure(cycles: int = 1000, *, restart: bool = True, record: bool = False) -> float:
    """Cycles per second, with `restart()` (no unpatching) or `stop()` + `start()`."""
    fs = CrashFS(record=record)
    fs.start(IMAGE)
    try:
        began = time.perf_counter()
        for _ in range(cycles):
            if restart:
                fs.restart(IMAGE)
            else:
                fs.stop()
                fs.start(IMAGE)
            _workload()
        return cycles / (time.perf_counter() - began)
    finally:
        fs.stop()


def main(argv: list[str]) -> None:
    cycles = int(argv[0]) if argv else 1000
    measure(cycles // 5)  # warm up pyfakefs's caches
    for label, restart, record in (
        ("restart(image), record=False", True, False),
        ("stop() + start(image), record=False", False, False),
        ("restart(image), record=True", True, True),
    ):
        rate = measure(cycles, restart=restart, record=record)
        print(f"{label:38} {rate:8.0f} cycles/s  ({cycles} cycles)")


if __name__ == "__main__":
    main(sys.argv[1:])
