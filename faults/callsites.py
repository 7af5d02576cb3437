"""Which line of a Python program made each recorded call.

`environment(folder)` puts `callsite_hook.py` on the command's `PYTHONPATH` as
`sitecustomize.py`, so every Python interpreter it starts logs its calls on the mount
with their source lines (`callsite_hook`); `read_log` reads that log and `attribute`
matches it to the recorder's trace: by order and path, as the calls are synchronous (a
Python call precedes the FUSE call it makes). A FUSE write no `os.write` explains (a
buffered file object's) goes to the line that opened the file. A call no record
explains has no line (a program in another language, a C extension's own I/O).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crashkit.faults.trace import Op

#: The variable naming the log (the hook logs nothing without it).
LOG_VARIABLE = "CRASHKIT_CALLSITES"
_HOOK = Path(__file__).with_name("callsite_hook.py")


@dataclass(frozen=True, slots=True)
class Callsite:
    """One logged call: what, on which path under the mount, from which line."""

    call: str
    path: str
    where: str


def environment(folder: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that make the Python programs of a command log their call sites
    into `folder` (created; outside the mount)."""
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(_HOOK, os.path.join(folder, "sitecustomize.py"))
    env = dict(os.environ if base is None else base)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = folder if not existing else f"{folder}{os.pathsep}{existing}"
    env[LOG_VARIABLE] = os.path.join(folder, "calls.log")
    return env


def read_log(path: str) -> list[Callsite]:
    """The log a command's programs wrote (empty when none of them was Python)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            out.append(Callsite(*parts))
    return out


#: recorder op -> the logged calls that make it
_MADE_BY: dict[str, frozenset[str]] = {
    "open": frozenset({"open"}),
    "write": frozenset({"write"}),
    "fsync": frozenset({"fsync"}),
    "fdatasync": frozenset({"fdatasync", "fsync"}),
    "dirfsync": frozenset({"fsync", "fdatasync"}),
    "rename": frozenset({"rename"}),
    "replace": frozenset({"rename"}),
    "unlink": frozenset({"unlink", "rename"}),
    "mkdir": frozenset({"mkdir"}),
    "rmdir": frozenset({"rmdir"}),
    "ftruncate": frozenset({"ftruncate", "open"}),
    "link": frozenset({"link"}),
    "symlink": frozenset({"symlink"}),
    "sync": frozenset({"sync"}),
}
#: how far ahead of the last match a record may be (calls the mount never sees, such
#: as opens for reading, sit between the ones it does)
_WINDOW = 256


def attribute(trace: Sequence[Op], records: Sequence[Callsite]) -> dict[int, str]:
    """Trace index -> `file:line` of the call that made it, where a record explains it."""
    out: dict[int, str] = {}
    opened: dict[str, str] = {}  # path -> the line of its last open
    cursor = 0
    for op in trace:
        calls = _MADE_BY.get(op.op)
        found = None
        if calls is not None:
            for i in range(cursor, min(len(records), cursor + _WINDOW)):
                record = records[i]
                if record.call in calls and record.path == op.path:
                    found = i
                    break
        if found is not None:
            record = records[found]
            out[op.index] = record.where
            for skipped in records[cursor:found]:
                if skipped.call == "open":
                    opened[skipped.path] = skipped.where
            if record.call == "open":
                opened[record.path] = record.where
            cursor = found + 1
        elif op.op in ("write", "ftruncate", "fsync", "fdatasync", "close"):
            for skipped in records[cursor : cursor + _WINDOW]:
                if skipped.call == "open" and skipped.path == op.path:
                    opened[skipped.path] = skipped.where
                    break
            where = opened.get(op.path)
            if where is not None:
                out[op.index] = where
    return out
