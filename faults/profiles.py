"""File-system profiles: which disks a power cut may leave, per file system.

Fault model. A profile says, for the bytes and directory entries a process changed
since their last fsync, which combinations may survive a crash:

- `block`: the unit in which unsynced file data reaches the disk (4096: a page;
  512: a sector). Rules below act on whole blocks of the file's offsets.
- `reorder`: unsynced blocks of one file may persist in any subset, not only as a
  prefix (a later block kept while an earlier one is lost).
- `fills`: what a lost block reads as when the file's size covers it: zeros (the size
  persisted, the data did not) and/or garbage (stale bytes of an earlier owner of the
  block; `GARBAGE` gives deterministic bytes). Empty: the size never runs ahead of
  the data (the data is written before the metadata that exposes it).
- `torn_overwrite`: the blocks of an in-place overwrite persist independently (old
  and new mixed); otherwise an overwrite is all old or all new.
- `ordered_dir_ops`: the directory operations since a directory's last fsync may have
  persisted up to any one of them (a journal replays a prefix of them): every
  intermediate namespace is a crash state, so a temp file created and then renamed may
  be left behind under its temp name, a file created then unlinked (a lock) may
  reappear. (Each changed entry persisting on its own is a state in every profile.)
- `atomic_rename`: a rename is one change (both names move together); otherwise the
  destination may be replaced while the source name still exists, or neither remains.
- `journal`: metadata is journaled in program order across the whole file system, and
  any `fsync` (of any file or folder) commits the journal: every directory operation
  before it is durable, and a crash leaves the operations since as a prefix. A file's
  size is journaled in the same order, so a crash that cuts the journal before a
  directory operation keeps no byte an append added after it (an ack log's append never
  outlives an earlier unlink). Where the model tracks no commit (`Snapshot.committed` is
  None) the profile falls back to `ordered_dir_ops`.
- `byte_tears`: unsynced bytes may persist cut at any byte (the torn mode's cuts);
  otherwise data reaches the disk in whole blocks, so an append within a block is all
  or nothing.

`prefix` is the model every crash explorer run used before profiles existed: bytes
reach the disk in order, as a prefix cut at line boundaries and inside lines, plus one
state with the unsynced range zero-filled; an overwrite is all old or all new; each
changed directory entry persists or not, renames atomically. It stays the default.

Sources (each rule of each profile cites the finding it models):

- ALICE: Pillai et al., "All File Systems Are Not Created Equal", OSDI 2014, Table 1
  (persistence properties: atomicity of appends and overwrites, ordering of appends,
  overwrites and directory operations per file system and mode) and section 3.
- CrashMonkey/ACE: Mohan et al., "Finding Crash-Consistency Bugs with Bounded
  Black-Box Crash Testing", OSDI 2018, section 6 (btrfs and F2FS rename and fsync
  bugs: both names lost, files reappearing).
- CuttleFS: Rebello et al., "Can Applications Recover from fsync Failures?", ATC 2020
  (what a failed fsync leaves: `crashkit.faults.plan.FsyncModel`, orthogonal to this).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Fill(StrEnum):
    """What a lost block reads as when the file's size covers it."""

    ZERO = "zero"
    GARBAGE = "garbage"


#: The bytes a garbage-filled block holds (deterministic: same state on every machine).
GARBAGE = b"\xde\xad\xbe\xef"


def garbage(length: int, offset: int = 0) -> bytes:
    """`length` garbage bytes as they would sit at file offset `offset`."""
    start = offset % len(GARBAGE)
    repeated = GARBAGE * ((start + length) // len(GARBAGE) + 1)
    return repeated[start : start + length]


@dataclass(frozen=True, slots=True)
class Profile:
    """A named choice of the crash states above (see the module docstring)."""

    name: str
    summary: str
    block: int | None = 4096  # None: byte offsets (the `prefix` model)
    reorder: bool = False
    fills: tuple[Fill, ...] = ()
    torn_overwrite: bool = False
    ordered_dir_ops: bool = False
    atomic_rename: bool = True
    journal: bool = False
    byte_tears: bool = True
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.block is not None and self.block < 1:
            raise ValueError(f"profile {self.name}: block must be >= 1, got {self.block}")

    def with_block(self, block: int) -> Profile:
        """The same profile at another granularity (512 for sectors, small in tests)."""
        if self.block is None:
            raise ValueError(f"profile {self.name} cuts at byte offsets: it has no block size")
        return replace(self, block=block)


PREFIX = Profile(
    "prefix",
    "in-order byte prefix and a zero-filled tail; overwrites all old or all new; "
    "each changed entry kept or lost, renames atomic (the model before profiles)",
    block=None,
    sources=("crashkit's own model, close to ext4 data=ordered for one append per fsync",),
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        PREFIX,
        Profile(
            "ext4-ordered",
            "Linux ext4 data=ordered (the default): data in whole blocks, before the "
            "metadata that exposes it, so no torn append within a block and no stale or "
            "zero blocks; multi-block overwrites torn; directory operations journaled in "
            "program order, every earlier one committed by any fsync",
            torn_overwrite=True,
            ordered_dir_ops=True,
            journal=True,
            byte_tears=False,
            sources=(
                "ALICE Table 1, ext4-ordered: appends never expose garbage or zeros; "
                "single-block appends are atomic",
                "ALICE Table 1: multi-block overwrites are not atomic",
                "ALICE Table 1, ext4: directory operations are ordered (journal)",
                "ext4 documentation (data=ordered; jbd2): fsync commits the running "
                "transaction, which holds every earlier metadata change",
                "ext4 (jbd2): an inode's on-disk size (i_disksize) is updated in a "
                "transaction when its blocks are allocated at writeback, after every "
                "earlier metadata change: an appended size never persists without them",
            ),
        ),
        Profile(
            "ext4-writeback",
            "Linux ext4 data=writeback: the size may persist before the data (zeros or "
            "stale blocks), blocks in any order; directory operations journaled",
            reorder=True,
            fills=(Fill.ZERO, Fill.GARBAGE),
            torn_overwrite=True,
            ordered_dir_ops=True,
            journal=True,
            byte_tears=False,
            sources=(
                "ALICE Table 1, ext4-writeback: appends may contain garbage",
                "ext4 documentation (data=writeback): metadata still journaled (jbd2), "
                "data written in blocks",
                "ALICE Table 1: appends are not ordered with other operations in writeback",
                "ALICE Table 1, ext4: directory operations are ordered (journal)",
            ),
        ),
        Profile(
            "xfs",
            "XFS: the size may persist before the data, which then reads as zeros, "
            "never stale; blocks in any order; directory operations journaled",
            reorder=True,
            fills=(Fill.ZERO,),
            torn_overwrite=True,
            ordered_dir_ops=True,
            journal=True,
            byte_tears=False,
            sources=(
                "ALICE Table 1, xfs: appends may leave zeros, not garbage",
                "ALICE Table 1, xfs: directory operations are ordered (journal)",
                "XFS documentation (delayed logging): an fsync forces the log, and the "
                "log is written in order",
            ),
        ),
        Profile(
            "btrfs",
            "btrfs: copy-on-write data (a prefix, no zero or stale blocks, overwrites "
            "all old or all new); directory operations not ordered, renames not atomic",
            atomic_rename=False,
            byte_tears=False,
            sources=(
                "ALICE Table 1, btrfs: overwrites and appends of a block are atomic",
                "btrfs documentation (log tree): an fsync logs that file and its names, "
                "not every earlier directory operation",
                "CrashMonkey/ACE section 6: btrfs renames losing both names",
            ),
        ),
        Profile(
            "posix",
            "everything POSIX allows after a crash: blocks in any order, zeros or "
            "garbage, torn overwrites, non-atomic renames (the weakest)",
            reorder=True,
            fills=(Fill.ZERO, Fill.GARBAGE),
            torn_overwrite=True,
            ordered_dir_ops=True,
            atomic_rename=False,
            sources=("POSIX fsync(): nothing is durable before it returns; no ordering",),
        ),
    )
}

#: The profile names, the default first.
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def profile_named(name: str | Profile) -> Profile:
    """A profile by name, or `name:BLOCK` for another block size (`posix:512` for
    sectors). ValueError naming the allowed ones."""
    if isinstance(name, Profile):
        return name
    base, sep, size = name.partition(":")
    found = PROFILES.get(base)
    if found is None:
        raise ValueError(
            f"unknown file-system profile {base!r}; allowed: {', '.join(PROFILES)} "
            "(optionally :BLOCK, for example posix:512)"
        )
    if not sep:
        return found
    if not size.isdigit() or int(size) < 1:
        raise ValueError(f"profile {name!r}: the block size after ':' must be an integer >= 1")
    if found.block is None:
        raise ValueError(f"profile {base!r} cuts at byte offsets: it takes no block size")
    sized = found.with_block(int(size))
    return sized if int(size) == found.block else replace(sized, name=f"{base}:{size}")
