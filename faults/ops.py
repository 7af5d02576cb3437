"""The op vocabulary: every name the interception layer reports, and the sets built on it.

One enum, `OpKind`, names every call the layer records; the sets the rest of the code
uses are derived here and nowhere else, and checked at import (like Pebble's `init()`
checks): a set naming an op that does not exist, or an op missing from the partition
below, fails the import with a message naming the op.

Which ops are crash points (the partition of `OpKind`):

- `MUTATING`: a successful call always changes what a crash may leave (or, for the
  fsyncs and sync, what is durable), so it is always a crash point;
- `MAY_MUTATE`: `open`, `flush` and `close` are crash points only when they changed
  something (created or truncated a file, moved buffered bytes into it);
- `NON_MUTATING`: `read` and `flock` never are.

A failed call changes nothing and is no crash point, except an injected fsync failure
(the `FsyncModel` may have changed the page cache: see `crashkit.faults.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from enum import StrEnum


class OpKind(StrEnum):
    """An op name as it appears in the trace (`Op.op`) and in fault rules.

    The members compare and hash equal to their strings, so `"write" in MUTATING` works.
    Declaration order is the order of `crashkit.faults.OPS`.
    """

    OPEN = "open"
    WRITE = "write"
    FLUSH = "flush"
    FSYNC = "fsync"
    FDATASYNC = "fdatasync"
    READ = "read"
    REPLACE = "replace"
    RENAME = "rename"
    FTRUNCATE = "ftruncate"
    DIRFSYNC = "dirfsync"
    UNLINK = "unlink"
    MKDIR = "mkdir"
    RMDIR = "rmdir"
    CLOSE = "close"
    FLOCK = "flock"
    SYNC = "sync"


#: Always a crash point when it succeeds (see the module docstring).
MUTATING: frozenset[OpKind] = frozenset(
    {
        OpKind.WRITE,
        OpKind.FTRUNCATE,
        OpKind.FSYNC,
        OpKind.FDATASYNC,
        OpKind.DIRFSYNC,
        OpKind.REPLACE,
        OpKind.RENAME,
        OpKind.UNLINK,
        OpKind.MKDIR,
        OpKind.RMDIR,
        OpKind.SYNC,
    }
)

#: A crash point only when the call changed something.
MAY_MUTATE: frozenset[OpKind] = frozenset({OpKind.OPEN, OpKind.FLUSH, OpKind.CLOSE})

#: Never a crash point.
NON_MUTATING: frozenset[OpKind] = frozenset({OpKind.READ, OpKind.FLOCK})

#: The calls that make data durable, and the ones the fsync-failure models apply to.
SYNC: frozenset[OpKind] = frozenset({OpKind.FSYNC, OpKind.FDATASYNC, OpKind.DIRFSYNC})

#: What a `FaultRule` may target: every op but `sync`, which cannot fail (sync(2)
#: returns void).
FAULTABLE: frozenset[OpKind] = frozenset(OpKind) - {OpKind.SYNC}

#: The ops an I/O-error sweep fails in turn (`crashkit explore --sweep`): the list the
#: harness has always swept. `flush`, `unlink` and `rmdir` are faultable but not in it.
IO_ERROR_SWEEP: frozenset[OpKind] = frozenset(
    {
        OpKind.OPEN,
        OpKind.WRITE,
        OpKind.FSYNC,
        OpKind.FDATASYNC,
        OpKind.FTRUNCATE,
        OpKind.DIRFSYNC,
        OpKind.READ,
        OpKind.REPLACE,
        OpKind.RENAME,
        OpKind.MKDIR,
        OpKind.FLOCK,
        OpKind.CLOSE,
    }
)

#: `FAULTABLE` as plain strings in declaration order: the old `crashkit.faults.OPS`.
FAULTABLE_NAMES: tuple[str, ...] = tuple(op.value for op in OpKind if op in FAULTABLE)


class VocabularyError(ValueError):
    """A derived op set is inconsistent with `OpKind` or with the documented rules."""


def check_vocabulary(
    ops: Set[str],
    sets: Mapping[str, Set[str]],
    *,
    partition: Sequence[str],
    subsets: Sequence[tuple[str, str]],
) -> None:
    """Raise `VocabularyError` naming the offending op unless the sets are consistent.

    Every set in `sets` must hold only names in `ops`; the sets named in `partition`
    must cover `ops` with no op in two of them; for each `(a, b)` in `subsets`, set `a`
    must be a subset of set `b`.
    """
    for name, members in sets.items():
        for op in sorted(members - ops):
            raise VocabularyError(f"{name} names op {op!r}, which is not an OpKind")
    owner: dict[str, str] = {}
    for name in partition:
        for op in sorted(sets[name]):
            if op in owner:
                raise VocabularyError(f"op {op!r} is in both {owner[op]} and {name}")
            owner[op] = name
    for op in sorted(ops - owner.keys()):
        raise VocabularyError(f"op {op!r} is in none of {', '.join(partition)}")
    for small, big in subsets:
        for op in sorted(sets[small] - sets[big]):
            raise VocabularyError(f"op {op!r} is in {small} but not in {big}")


check_vocabulary(
    frozenset(OpKind),
    {
        "MUTATING": MUTATING,
        "MAY_MUTATE": MAY_MUTATE,
        "NON_MUTATING": NON_MUTATING,
        "SYNC": SYNC,
        "FAULTABLE": FAULTABLE,
        "IO_ERROR_SWEEP": IO_ERROR_SWEEP,
    },
    partition=("MUTATING", "MAY_MUTATE", "NON_MUTATING"),
    subsets=(("SYNC", "MUTATING"), ("IO_ERROR_SWEEP", "FAULTABLE")),
)
