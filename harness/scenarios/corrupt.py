"""Damage to a committed line of a state file: the `corrupt` step's vocabulary.

Shared by the store-level machine and the scenario runner so that a `corrupt`
step in an exported scenario produces exactly the bytes the machine produced.
Every kind yields a `\\n`-terminated line that strict decoding rejects (C2.7),
whatever the line held before.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
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
    "true_for_int",
    "number_for_string",
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
    elif kind == "true_for_int":
        # (a boolean where an integer belongs, C2.4: `true` is 1 to a loose reader; on the
        # progress when that keeps the engine invariant, so such a reader restores it)
        key = (
            "progress_current" if obj.get("candidate_regime") is not None else "engine_timestamp_ms"
        )
        obj[key] = True
    elif kind == "number_for_string":
        obj["schema_version"] = 1  # (the number 1 where the string "1" belongs, C2.4)
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


# -- damage to a whole file (any format): the `damage` step's vocabulary ---------------------

#: A page, as SQLite (and most disks) write them: damage a page at a time.
PAGE = 4096


def flip_byte(data: bytes, at: int) -> bytes:
    """`data` with every bit of the byte at `at` flipped: in a line file the line gets a
    byte that is not UTF-8 (it can never read as another valid record)."""
    if not 0 <= at < len(data):
        return data
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


#: The `with:` values of a `damage` step: offline damage to the state file as a failing
#: disk leaves it (not a crash), whatever the file's format.
FileDamageKind = Literal["flip_middle", "zero_second_page", "cut_to_first_page", "cut_half"]
FILE_DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "flip_middle": lambda d: flip_byte(d, len(d) // 2),
    "zero_second_page": lambda d: d[:PAGE] + bytes(len(d[PAGE : 2 * PAGE])) + d[2 * PAGE :],
    "cut_to_first_page": lambda d: d[:PAGE],
    "cut_half": lambda d: d[: len(d) // 2],
}
assert set(FILE_DAMAGES) == set(typing.get_args(FileDamageKind))
