"""Damage to a committed line of a state file: the `corrupt` step's vocabulary.

Shared by the store-level machine and the scenario runner so that a `corrupt`
step in an exported scenario produces exactly the bytes the machine produced.
Every kind yields a `\\n`-terminated line that strict decoding rejects (C2.7),
whatever the line held before.
"""

from __future__ import annotations

import json
import typing
from typing import Literal

#: The `with:` values of a `corrupt` step (the scenario schema's type), in the order a
#: shrinker prefers them.
CorruptionKind = Literal[
    "garbage",
    "non_utf8",
    "extra_key",
    "missing_key",
    "wrong_type",
    "unknown_regime",
    "negative",
    "zero_bytes",
]
CORRUPTIONS: tuple[str, ...] = typing.get_args(CorruptionKind)


def _as_object(line: bytes) -> dict[str, object]:
    """The line's JSON object, or an empty one (the edit then still yields an invalid line)."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dump(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def corrupt_line(line: bytes, kind: str) -> bytes:
    """The damaged form of one line (given and returned without its `\\n`)."""
    if kind == "garbage":
        return b"#garbage#"
    if kind == "non_utf8":
        return b"\xff\xfe" + line
    if kind == "zero_bytes":
        return b"\0" * max(1, len(line))
    obj = _as_object(line)
    if kind == "extra_key":
        obj["extra_key"] = 1
    elif kind == "missing_key":
        obj.pop("progress_current", None)
    elif kind == "wrong_type":
        obj["progress_current"] = "1"
    elif kind == "unknown_regime":
        obj["anchor_regime"] = "NOT_A_REGIME"
    elif kind == "negative":
        obj["engine_timestamp_ms"] = -1
    else:
        raise ValueError(f"unknown corruption {kind!r}; allowed: {', '.join(CORRUPTIONS)}")
    return _dump(obj)


def line_count(data: bytes) -> int:
    """Complete (`\\n`-terminated) lines in a file's bytes: the lines a step may corrupt."""
    return data.count(b"\n")


def corrupt_file(data: bytes, line: int, kind: str) -> bytes:
    """`data` with its 1-based complete line `line` damaged; the torn tail is kept as is."""
    lines = data.split(b"\n")
    complete = len(lines) - 1
    if not 1 <= line <= complete:
        raise ValueError(f"line {line} out of range: the file has {complete} complete line(s)")
    lines[line - 1] = corrupt_line(lines[line - 1], kind)
    return b"\n".join(lines)
