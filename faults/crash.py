"""Crash states: the distinct disks a power cut may leave, derived from a `Snapshot`.

Per file (inode): its durable bytes plus any prefix of the bytes written after them
(cut at the offsets of the `torn` mode), or all of them zero-filled (the size reached
the disk, the data did not). A file that was truncated since its last fsync keeps
either its durable content or the truncated prefix plus a cut of what followed; a file
overwritten in place keeps either its durable or its current content.

Per directory: every entry that differs from what the directory's last fsync made
durable (created, removed, replaced) is independently persisted or not, except that
changes moving the same inode (a rename) are persisted together (renames are atomic).
A directory that is not persisted takes its whole subtree with it.

That is the `prefix` file-system profile, the default. A profile of
`crashkit.faults.profiles` adds what its file system may also leave: unsynced blocks
persisted in any subset, lost blocks read as zeros or garbage, torn overwrites
(`block_options`), a directory at any of its intermediate namespaces since its last
fsync (a temp file left behind), and renames half persisted (`_split_renames`).

Namespace choices and per-file cuts combine as a product; identical images are
deduplicated. Above `cap` combinations a deterministic sample is taken instead (every
single-file and single-entry variation first, then seeded pseudo-random picks) and the
result says it was capped. That is the exhaustive exploration (`enumerate_states`).

The bounded exploration (`bounded_states`, ALICE's, the default of the real mode) keeps
the number of states linear in what is unsynced: the in-order state (everything
persisted), then each deviation from it alone: one changed entry (or a rename half,
or the journal cut before one directory operation) not persisted while the rest is, or
one file's unsynced bytes lost, cut or torn while every other file is whole. Every
state carries its `Deviation`s: what differs from the in-order state, the label that
lets a failure be explained (`crashkit.harness.judge` groups them).

Bounded per crash point is still quadratic over a run that never syncs (git without
`core.fsync`: every loose object stays unsynced to the end, so each crash point tears
every one of them again). The linear exploration (`LINEAR`, the default of
`explore --exec`) gives `bounded_states` the next crash point's snapshot and leaves out
each deviation that still holds unchanged there (the same file with the same durable
and unsynced bytes in a folder whose names did not change, the same directory with the
same entries, the same journal since the same commit): a deviation is explored at the
last crash point where it holds, the most demanding one (everything after it persisted,
everything the program said by then acknowledged), and again before each change of
names in its file's folder (which can change what a reader opens); the in-order state at
every crash point. Near ALICE's choice (each operation dropped or torn once, its later
operations up to its sync persisted), and linear where the folders a program writes
its files in change a bounded number of times while they are unsynced. What it gives
up: a failure that only a state in the middle of a deviation's life shows, because a
later call repairs it outside the file's folder.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from crashkit.faults.image import DiskImage
from crashkit.faults.model import FileSnap, Snapshot
from crashkit.faults.profiles import PREFIX, PROFILES, Fill, Profile, garbage, profile_named


class TornMode(StrEnum):
    """Where a crash may cut the unsynced bytes of a file.

    ``NONE``: a file keeps all or none of them. ``DEFAULT``: line boundaries plus three
    cuts inside each line (first byte, middle, just before its newline) and a
    zero-filled tail. ``ALL``: every byte offset, plus the zero-filled tail.
    """

    NONE = "none"
    DEFAULT = "default"
    ALL = "all"


#: The `TornMode` values, as plain strings (scenario files and the CLI use them).
TORN_MODES: tuple[str, ...] = tuple(mode.value for mode in TornMode)
DEFAULT_CAP = 4096


def torn_mode(torn: TornMode | str) -> TornMode:
    """`torn` as a `TornMode`: the enum or its value (ValueError naming the allowed ones)."""
    if isinstance(torn, TornMode):
        return torn
    if torn not in TORN_MODES:
        raise ValueError(f"unknown torn mode {torn!r}; allowed: {', '.join(TORN_MODES)}")
    return TornMode(torn)


class Exploration(StrEnum):
    """How many crash states a crash point gives: `LINEAR`, the in-order state and each
    deviation not left unchanged by the next crash point (each deviation once over a run);
    `BOUNDED`, the in-order state and each deviation from it alone; `EXHAUSTIVE`, every
    combination under a cap."""

    LINEAR = "linear"
    BOUNDED = "bounded"
    EXHAUSTIVE = "exhaustive"


class DeviationKind(StrEnum):
    """How a crash state differs from the in-order one (everything persisted)."""

    ENTRY_LOST = "entry-lost"  # a changed directory entry not persisted (create, unlink, rename)
    RENAME_SPLIT = "rename-split"  # a rename half persisted: both names, or neither
    JOURNAL_CUT = "journal-cut"  # the directory operations persisted up to an earlier one
    DATA_LOST = "data-lost"  # a file's unsynced bytes all lost: it holds its durable content
    DATA_TORN = "data-torn"  # some of a file's unsynced bytes persisted (cut, torn, filled)


@dataclass(frozen=True, slots=True)
class Deviation:
    """One way a crash state differs from the in-order state: its kind, the path it
    concerns, and the reader's description (the same words as the state's `cut`)."""

    kind: DeviationKind
    path: str
    detail: str


@dataclass(frozen=True, slots=True)
class CrashState:
    """One disk a power cut may leave, with a short human-readable `cut` description and
    its deviations from the in-order state (none: the in-order state itself)."""

    image: DiskImage
    cut: str
    point: int | None = None
    deviations: tuple[Deviation, ...] = ()


@dataclass(frozen=True, slots=True)
class CrashEnumeration:
    """The crash states at one point; `capped` when the space was sampled, not exhausted."""

    states: tuple[CrashState, ...]
    combinations: int
    capped: bool


@dataclass(frozen=True, slots=True)
class FileOption:
    data: bytes
    desc: str


# -- per-file options ---------------------------------------------------------------------


def cut_offsets(unsynced: bytes, torn: TornMode | str = TornMode.DEFAULT) -> list[int]:
    """Prefix lengths of the unsynced bytes a torn write may leave, ascending."""
    torn = torn_mode(torn)
    n = len(unsynced)
    if torn is TornMode.ALL:
        return list(range(n + 1))
    offsets = {0, n}
    if torn is TornMode.DEFAULT:
        start = 0
        while start < n:
            nl = unsynced.find(b"\n", start)
            end, after = (n, n) if nl < 0 else (nl, nl + 1)
            offsets.add(after)  # a line boundary
            if end > start:  # inside the line: first byte, middle, just before its "\n"
                offsets.update((start + 1, start + (end - start) // 2, end))
            start = after
    return sorted(o for o in offsets if 0 <= o <= n)


def _cut_desc(off: int, unsynced: bytes) -> str:
    n = len(unsynced)
    if off == n:
        return f"all {n} unsynced bytes kept"
    if off == 0:
        return f"none of {n} unsynced bytes kept"
    where = "at a line boundary" if unsynced[off - 1 : off] == b"\n" else "torn mid-line"
    return f"{off}/{n} unsynced bytes kept ({where})"


def file_options(
    snap: FileSnap,
    torn: TornMode | str = TornMode.DEFAULT,
    profile: Profile = PREFIX,
    cap: int = DEFAULT_CAP,
    *,
    bounded: bool = False,
) -> tuple[tuple[FileOption, ...], int]:
    """The distinct contents a crash may leave for one file, and the index of "all kept".

    Every profile keeps the states of the `prefix` model (but for its zero-filled tail
    when the profile has no fills, and for its cuts inside a block when it has no byte
    tears); a profile with a block size adds the block states it allows
    (`block_options`; `bounded`: a linear number of them)."""
    if profile.block is not None and not profile.byte_tears:
        torn = TornMode.NONE  # whole blocks: the block states below hold the partial ones
    options, full = _prefix_options(snap, torn)
    if profile.block is None or snap.writeback == snap.durable:
        return options, full
    if not profile.fills:  # the size never runs ahead of the data: no zero-filled tail
        view = options[full].data
        options = tuple(o for o in options if not o.desc.endswith("zero-filled"))
        full = next(i for i, o in enumerate(options) if o.data == view)
    extra = block_options(snap, profile, cap, bounded=bounded)
    unique: dict[bytes, FileOption] = {o.data: o for o in reversed(options)}
    merged = list(options) + [o for o in extra if o.data not in unique]
    return tuple(merged), full


def _blocks_of(length: int, block: int) -> range:
    return range(0, (length + block - 1) // block)


def block_options(
    snap: FileSnap, profile: Profile, cap: int = DEFAULT_CAP, *, bounded: bool = False
) -> list[FileOption]:
    """The contents a crash may leave under `profile`, block by block.

    Each block that differs between the durable content and the writeback content is
    persisted (new bytes) or lost. A lost block inside the durable size keeps its old
    bytes (a torn overwrite, if the profile allows blocks of one overwrite to part);
    a lost block past it reads as each of the profile's fills, when the persisted size
    covers it. The size persisted is the new one or, for a profile without fills, as far
    as the persisted blocks reach. With `reorder` any subset of the dirty blocks
    persists, otherwise a prefix of them. More than `cap` subsets: a deterministic
    sample (the prefixes, each block alone kept and alone lost, then seeded picks);
    `bounded`: only the prefixes and each block alone lost."""
    assert profile.block is not None
    block = profile.block
    old, new = snap.durable, snap.writeback
    dirty = _dirty_blocks(snap, block)
    if not dirty:
        return []
    overwrite = [i for i in dirty if i * block < len(old)]
    if overwrite and not profile.torn_overwrite and not profile.reorder:
        return []  # an overwrite is all old or all new: the prefix model has both
    out: list[FileOption] = []
    any_subset = profile.reorder or profile.torn_overwrite
    subsets = _linear_subsets(dirty) if bounded and any_subset else _subsets(dirty, any_subset, cap)
    for kept in subsets:
        if not profile.reorder and not _is_prefix(kept, dirty, overwrite):
            continue
        lost_past_old = [i for i in dirty if i not in kept and i * block >= len(old)]
        fills: tuple[Fill | None, ...] = profile.fills if lost_past_old else (None,)
        if not profile.fills:
            fills = (None,)
        for fill in fills:
            data = _assemble(old, new, block, kept, fill)
            out.append(FileOption(data, _block_desc(dirty, kept, fill, block, len(data))))
    return out


def _dirty_blocks(snap: FileSnap, block: int) -> list[int]:
    """The blocks whose durable and writeback bytes differ; none for a file truncated
    since its last fsync (the prefix model's states only)."""
    old, new = snap.durable, snap.writeback
    if snap.low < len(old) or len(new) < len(old):
        return []
    return [
        i
        for i in _blocks_of(max(len(old), len(new)), block)
        if old[i * block : (i + 1) * block] != new[i * block : (i + 1) * block]
    ]


def block_state_count(snap: FileSnap, profile: Profile) -> int:
    """How many block states `profile` allows for one file (what `block_options` samples
    from when there are more than its cap): 0 when it adds none."""
    if profile.block is None or snap.writeback == snap.durable:
        return 0
    dirty = len(_dirty_blocks(snap, profile.block))
    if not dirty:
        return 0
    if not (profile.reorder or profile.torn_overwrite):
        return dirty + 1
    return int(2**dirty * max(1, len(profile.fills)))


def _is_prefix(kept: frozenset[int], dirty: Sequence[int], overwrite: Sequence[int]) -> bool:
    """Without reordering, appended blocks persist in order (overwritten ones may part)."""
    appended = [i for i in dirty if i not in overwrite]
    seen_lost = False
    for i in appended:
        if i in kept and seen_lost:
            return False
        seen_lost = seen_lost or i not in kept
    return True


def _linear_subsets(items: Sequence[int]) -> Iterator[frozenset[int]]:
    """Every prefix of `items`, then each item alone lost: linear in their number."""
    for k in range(len(items) + 1):
        yield frozenset(items[:k])
    for i in items[:-1]:
        yield frozenset(items) - {i}


def _subsets(items: Sequence[int], any_subset: bool, cap: int) -> Iterator[frozenset[int]]:
    """Subsets of `items` to keep: all of them when 2**n <= cap, else a sample: every
    prefix, each item alone kept and alone lost, then seeded pseudo-random picks."""
    n = len(items)
    if not any_subset or n == 0:
        for k in range(n + 1):
            yield frozenset(items[:k])
        return
    if 2**n <= cap:
        for bits in itertools.product((False, True), repeat=n):
            yield frozenset(i for i, b in zip(items, bits, strict=True) if b)
        return
    seen: set[frozenset[int]] = set()
    picks: list[frozenset[int]] = [frozenset(items[:k]) for k in range(n + 1)]
    picks += [frozenset({i}) for i in items]
    picks += [frozenset(items) - {i} for i in items]
    rng = random.Random(f"crashkit-blocks:{n}")
    while len(picks) < 4 * cap:
        picks.append(frozenset(i for i in items if rng.random() < 0.5))
    for pick in picks:
        if pick not in seen and len(seen) < cap:
            seen.add(pick)
            yield pick


def _assemble(old: bytes, new: bytes, block: int, kept: frozenset[int], fill: Fill | None) -> bytes:
    """The file after the crash: each block new if kept (or unchanged), else old inside
    the old size and `fill` past it. Without a fill, unwritten data is never exposed:
    the size stops where the kept data past the old size stops."""
    size = len(new)
    if fill is None:
        size = len(old)
        for i in _blocks_of(len(new), block):
            start, end = i * block, min((i + 1) * block, len(new))
            if end <= len(old):
                continue
            if i not in kept and new[start:end] != old[start:end]:
                break
            size = end
        size = max(size, min(len(old), len(new)))
    parts: list[bytes] = []
    for i in _blocks_of(size, block):
        start, end = i * block, min((i + 1) * block, size)
        if i in kept or new[start:end] == old[start:end]:
            parts.append(new[start:end])
            continue
        inside = old[start : min(end, len(old))]
        past = end - start - len(inside)
        if fill is Fill.GARBAGE:
            parts.append(inside + garbage(past, start + len(inside)))
        else:
            parts.append(inside + b"\0" * past)
    return b"".join(parts)


def _block_desc(
    dirty: Sequence[int], kept: frozenset[int], fill: Fill | None, block: int, size: int
) -> str:
    lost = [i for i in dirty if i not in kept]
    text = f"{len(kept)}/{len(dirty)} unsynced {block}-byte blocks kept"
    if lost:
        text += f" (lost: {_ranges(lost)})"
        if fill is not None:
            text += f", lost blocks read as {fill.value}"
    return f"{text}, {size} bytes"


def _ranges(blocks: Sequence[int]) -> str:
    """Block numbers as compact ranges: 1-3, 7."""
    out: list[str] = []
    start = prev = blocks[0]
    for b in [*blocks[1:], None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if b is not None:
            start = prev = b
    return ", ".join(out)


def _prefix_options(snap: FileSnap, torn: TornMode | str) -> tuple[tuple[FileOption, ...], int]:
    """The `prefix` model's contents for one file, and the index of "all kept"."""
    torn = torn_mode(torn)
    view = snap.writeback
    durable = snap.durable
    if view == durable:
        return (FileOption(durable, "synced"),), 0
    lost = ""
    if view != snap.current:
        count = sum(1 for a, b in zip(view, snap.current, strict=False) if a != b)
        lost = f" [{count} bytes lost to a failed fsync]"
    options: list[FileOption] = []
    t = min(snap.low, len(durable), len(view))
    if view[:t] == durable[:t]:
        base, unsynced = view[:t], view[t:]
        prefix = ""
        if base != durable:
            options.append(FileOption(durable, "truncate not persisted" + lost))
            prefix = f"truncated to {t} bytes, "
        for off in cut_offsets(unsynced, torn):
            options.append(
                FileOption(base + unsynced[:off], prefix + _cut_desc(off, unsynced) + lost)
            )
        if torn is not TornMode.NONE and unsynced:
            zeros = b"\0" * len(unsynced)
            options.append(
                FileOption(base + zeros, f"{prefix}{len(unsynced)} unsynced bytes zero-filled")
            )
    else:
        options.append(FileOption(durable, "overwrite not persisted"))
        options.append(FileOption(view, "overwrite persisted" + lost))
    unique: dict[bytes, FileOption] = {}
    for option in options:
        unique.setdefault(option.data, option)
    result = tuple(unique.values())
    full = next(i for i, option in enumerate(result) if option.data == view)
    return result, full


# -- namespace choices --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Change:
    dir: int
    name: str
    old: int | None
    new: int | None


def _changes(snap: Snapshot) -> list[_Change]:
    out: list[_Change] = []
    for dino in sorted(snap.current):
        cur = snap.current[dino]
        dur = snap.durable.get(dino, {})
        for name in sorted(cur.keys() | dur.keys()):
            old, new = dur.get(name), cur.get(name)
            if old != new:
                out.append(_Change(dino, name, old, new))
    return out


def _groups(changes: Sequence[_Change], atomic_rename: bool = True) -> list[tuple[_Change, ...]]:
    """Changes that move one inode (rename/replace) form one atomic group (with
    `atomic_rename`; otherwise each half of a rename persists on its own)."""
    parent = list(range(len(changes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    leaving: dict[int, list[int]] = {}
    arriving: dict[int, list[int]] = {}
    for i, change in enumerate(changes):
        if change.old is not None:
            leaving.setdefault(change.old, []).append(i)
        if change.new is not None:
            arriving.setdefault(change.new, []).append(i)
    for ino, left in leaving.items():
        linked = left + arriving.get(ino, [])
        if ino in arriving and atomic_rename:
            for i in linked[1:]:
                parent[find(i)] = find(linked[0])
    grouped: dict[int, list[_Change]] = {}
    for i, change in enumerate(changes):
        grouped.setdefault(find(i), []).append(change)
    return [tuple(group) for _, group in sorted(grouped.items())]


def _path(snap: Snapshot, dino: int, name: str) -> str:
    parent = snap.paths.get(dino, f"<dir {dino}>")
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def _group_desc(snap: Snapshot, group: tuple[_Change, ...]) -> str:
    """How a group looks when it is *not* persisted."""
    if len(group) == 2:
        a, b = group
        src, dst = (a, b) if a.new is None else (b, a)
        if src.new is None and src.old is not None and dst.new == src.old:
            return (
                f"rename {_path(snap, src.dir, src.name)} -> "
                f"{_path(snap, dst.dir, dst.name)} not persisted"
            )
    parts = []
    for c in group:
        what = "new entry" if c.old is None else "removal" if c.new is None else "replacement"
        parts.append(f"{_path(snap, c.dir, c.name)}: {what} not persisted")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The namespace after one set of group choices."""

    dirs: tuple[str, ...]
    files: tuple[tuple[str, int], ...]
    desc: tuple[str, ...]
    devs: tuple[Deviation, ...] = ()
    #: a journal cut's file sizes: no byte past them persisted (None: no such bound)
    sizes: Mapping[int, int] | None = None

    def inos(self) -> list[int]:
        return list(dict.fromkeys(ino for _, ino in self.files))


def _layout(
    snap: Snapshot,
    keep_old: frozenset[tuple[int, str]],
    descs: tuple[str, ...],
    override: Mapping[int, Mapping[str, int]] | None = None,
    devs: tuple[Deviation, ...] = (),
) -> _Layout:
    dirs: list[str] = []
    files: list[tuple[str, int]] = []
    seen: set[int] = set()
    stack: list[tuple[int, str]] = [(snap.root, "/")]
    while stack:
        dino, path = stack.pop()
        if dino in seen:
            continue
        seen.add(dino)
        cur = snap.current.get(dino, {})
        dur = snap.durable.get(dino, {})
        fixed = override.get(dino) if override is not None else None
        names = fixed.keys() if fixed is not None else cur.keys() | dur.keys()
        for name in sorted(names, reverse=True):
            if fixed is not None:
                ino = fixed.get(name)
            else:
                ino = dur.get(name) if (dino, name) in keep_old else cur.get(name)
            if ino is None:
                continue
            child = f"/{name}" if path == "/" else f"{path}/{name}"
            if ino in snap.current:
                dirs.append(child)
                stack.append((ino, child))
            elif ino in snap.files:
                files.append((child, ino))
    return _Layout(tuple(sorted(dirs)), tuple(sorted(files)), descs, devs)


def _layouts(
    snap: Snapshot, cap: int, rng: random.Random, profile: Profile = PREFIX
) -> tuple[list[_Layout], bool]:
    """Distinct namespaces after crash; sampled (True) when 2**groups exceeds `cap`.
    With `profile.ordered_dir_ops`, also each directory at each of its intermediate
    namespaces since its last fsync (the others as they are now). With `profile.journal`
    (and a snapshot that tracks commits): the namespace at each cut of the journal."""
    layouts: dict[tuple[object, ...], _Layout] = {}
    if _journaled(snap, profile):
        for layout in [_layout(snap, frozenset(), ()), *_journal_layouts(snap)]:
            layouts.setdefault((layout.dirs, layout.files), layout)
        return list(layouts.values()), False
    groups = _groups(_changes(snap), profile.atomic_rename)
    g = len(groups)
    descs = [_group_desc(snap, group) for group in groups]
    devs = [_group_deviation(snap, group, desc) for group, desc in zip(groups, descs, strict=True)]
    keys = [frozenset((c.dir, c.name) for c in group) for group in groups]
    sampled = g > 0 and 2**g > cap
    choices: Iterator[tuple[bool, ...]]
    if not sampled:
        choices = itertools.product((False, True), repeat=g)  # True = not persisted
    else:
        choices = _sample_bits(g, cap, rng)
    for bits in choices:
        keep_old: frozenset[tuple[int, str]] = frozenset().union(
            *(keys[i] for i in range(g) if bits[i])
        )
        desc = tuple(descs[i] for i in range(g) if bits[i])
        layout = _layout(snap, keep_old, desc, devs=tuple(devs[i] for i in range(g) if bits[i]))
        layouts.setdefault((layout.dirs, layout.files), layout)
    for layout in _partial_layouts(snap, profile):
        layouts.setdefault((layout.dirs, layout.files), layout)
    return list(layouts.values()), sampled


def _journaled(snap: Snapshot, profile: Profile) -> bool:
    return profile.journal and snap.committed is not None


def _journal_layouts(snap: Snapshot) -> Iterator[_Layout]:
    """The journal cut before each directory operation since the last commit: every
    earlier one persisted, it and every later one not (the last cut, after all of them,
    is the current namespace)."""
    assert snap.committed is not None
    total = len(snap.journal)
    for k, entry in enumerate(snap.journal):
        namespace = dict(snap.committed)
        if k:
            namespace.update(snap.journal[k - 1].changed)
        lost = total - k
        desc = f"journal cut before {entry.op}: the last {lost} of {total} directory operations not persisted"
        dev = Deviation(DeviationKind.JOURNAL_CUT, entry.path, desc)
        layout = _layout(snap, frozenset(), (desc,), namespace, (dev,))
        yield replace(layout, sizes=entry.sizes) if entry.sizes else layout


def _within(file: FileSnap, data: bytes, size: int | None) -> bytes:
    """`data` no longer than `size` (a journal cut's bound on a file's size), but never
    shorter than its durable bytes: an append whose size was journaled after the cut is
    not on the disk (ext4 and xfs journal an inode's size in order with names)."""
    if size is None or len(data) <= size:
        return data
    return data[: max(size, len(file.durable))]


def _group_deviation(snap: Snapshot, group: tuple[_Change, ...], desc: str) -> Deviation:
    """A group not persisted, as a deviation: the path of its new name (or its only one)."""
    change = next((c for c in group if c.new is not None), group[0])
    return Deviation(DeviationKind.ENTRY_LOST, _path(snap, change.dir, change.name), desc)


def _partial_layouts(snap: Snapshot, profile: Profile) -> Iterator[_Layout]:
    """The namespaces of renames half persisted (without `atomic_rename`) and of
    directories at an intermediate namespace (`ordered_dir_ops`)."""
    for _, layout in _partial_layouts_by_dir(snap, profile):
        yield layout


def _partial_layouts_by_dir(snap: Snapshot, profile: Profile) -> Iterator[tuple[int, _Layout]]:
    """`_partial_layouts`, each with the directory it concerns."""
    if not profile.atomic_rename:
        for dino, split, entries, name in _split_renames(snap):
            dev = Deviation(DeviationKind.RENAME_SPLIT, _path(snap, dino, name), split)
            yield dino, _layout(snap, frozenset(), (split,), {dino: entries}, (dev,))
    if profile.ordered_dir_ops:
        for dino, versions in sorted(snap.versions.items()):
            where = snap.paths.get(dino, f"<dir {dino}>")
            for n, version in enumerate(versions, start=1):
                partial = f"{where}: only its first {n} of {len(versions) + 1} changes persisted"
                dev = Deviation(DeviationKind.JOURNAL_CUT, where, partial)
                yield dino, _layout(snap, frozenset(), (partial,), {dino: version}, (dev,))


def _split_renames(snap: Snapshot) -> Iterator[tuple[int, str, dict[str, int], str]]:
    """Each rename within a directory since its last fsync, half persisted: the new name
    linked while the old one stayed (both names), or the old name gone while the new one
    was not linked (neither holds the moved file). From the directory's namespaces in
    order: durable, each intermediate one, current."""
    for dino in sorted(snap.current):
        chain = [snap.durable.get(dino, {}), *snap.versions.get(dino, ()), snap.current[dino]]
        where = snap.paths.get(dino, f"<dir {dino}>")
        for before, after in itertools.pairwise(chain):
            for src, ino in sorted(before.items()):
                if after.get(src) == ino:
                    continue
                dsts = [n for n, i in after.items() if i == ino and before.get(n) != ino]
                for dst in dsts:
                    both = {**after, src: ino}
                    yield (
                        dino,
                        f"{where}: rename {src} -> {dst} half persisted (both names)",
                        both,
                        dst,
                    )
                    neither = {n: i for n, i in after.items() if n != dst}
                    if dst in before:
                        neither[dst] = before[dst]
                    yield (
                        dino,
                        f"{where}: rename {src} -> {dst} half persisted (neither)",
                        neither,
                        dst,
                    )


def _sample_bits(g: int, cap: int, rng: random.Random) -> Iterator[tuple[bool, ...]]:
    """All persisted, none persisted, each single change flipped, then seeded random."""
    seen: set[tuple[bool, ...]] = set()

    def fresh(bits: tuple[bool, ...]) -> bool:
        if bits in seen:
            return False
        seen.add(bits)
        return True

    candidates: list[tuple[bool, ...]] = [(False,) * g, (True,) * g]
    for i in range(g):
        candidates.append(tuple(j == i for j in range(g)))
        candidates.append(tuple(j != i for j in range(g)))
    for bits in candidates:
        if len(seen) >= cap:
            return
        if fresh(bits):
            yield bits
    attempts = 0
    while len(seen) < cap and attempts < 8 * cap:
        attempts += 1
        bits = tuple(rng.random() < 0.5 for _ in range(g))
        if fresh(bits):
            yield bits


# -- enumeration ------------------------------------------------------------------------


def _image(layout: _Layout, content: Mapping[int, bytes]) -> DiskImage:
    return DiskImage.trusted(
        {path: content[ino] for path, ino in layout.files},
        layout.dirs,
    )


def enumerate_states(
    snap: Snapshot,
    *,
    torn: TornMode | str = TornMode.DEFAULT,
    cap: int = DEFAULT_CAP,
    point: int | None = None,
    profile: Profile | str = PREFIX,
) -> CrashEnumeration:
    """Every distinct crash state of `snap` under `profile` (or a deterministic sample of
    `cap` of them)."""
    torn = torn_mode(torn)
    profile = profile_named(profile)
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    rng = random.Random(f"crashkit-faults:{point}")
    layouts, capped = _layouts(snap, cap, rng, profile)
    cache: dict[int, tuple[tuple[FileOption, ...], int]] = {}

    def options(ino: int) -> tuple[tuple[FileOption, ...], int]:
        if ino not in cache:
            cache[ino] = file_options(snap.files[ino], torn, profile, cap)
        return cache[ino]

    plans = []
    total = 0
    sampled_files = False
    for layout in layouts:
        inos = layout.inos()
        opts = [options(ino) for ino in inos]
        exist = [
            max(len(o), block_state_count(snap.files[ino], profile))
            for ino, (o, _) in zip(inos, opts, strict=True)
        ]
        sampled_files = sampled_files or any(
            e > len(o) for e, (o, _) in zip(exist, opts, strict=True)
        )
        total += math.prod(exist)
        plans.append((layout, inos, opts))

    states: dict[tuple[object, ...], CrashState] = {}

    def add(
        layout: _Layout,
        inos: list[int],
        opts: list[tuple[tuple[FileOption, ...], int]],
        pick: Sequence[int],
    ) -> None:
        content = {}
        parts = list(layout.desc)
        devs = list(layout.devs)
        for ino, (choices, full), index in zip(inos, opts, pick, strict=True):
            option = choices[index]
            content[ino] = option.data
            if len(choices) > 1:
                path = snap.paths.get(ino, f"<inode {ino}>")
                parts.append(f"{path}: {option.desc}")
                if index != full:
                    devs.append(_data_deviation(path, snap.files[ino], option))
        image = _image(layout, content)
        if image.key not in states:
            cut = "; ".join(parts) if parts else "nothing unsynced"
            states[image.key] = CrashState(image, cut, point, tuple(devs))

    enumerable = sum(math.prod(len(o) for o, _ in opts) for _, _, opts in plans)
    if not capped and enumerable <= cap:
        for layout, inos, opts in plans:
            for combo in itertools.product(*(range(len(o)) for o, _ in opts)):
                add(layout, inos, opts, combo)
        return CrashEnumeration(tuple(states.values()), total, sampled_files)

    # capped: for every namespace its "nothing kept" and "all kept" picks, then each file
    # varied alone (round-robin over namespaces), then seeded random picks
    def variations(opts: list[tuple[tuple[FileOption, ...], int]]) -> Iterator[list[int]]:
        low = [0] * len(opts)
        full = [f for _, f in opts]
        for i, (choices, _) in enumerate(opts):
            for j in range(len(choices)):
                for base in (low, full):
                    varied = list(base)
                    varied[i] = j
                    yield varied

    for layout, inos, opts in plans:
        for pick in ([0] * len(opts), [f for _, f in opts]):
            if len(states) < cap:
                add(layout, inos, opts, pick)
    queues = [(layout, inos, opts, variations(opts)) for layout, inos, opts in plans]
    while queues and len(states) < cap:
        alive = []
        for layout, inos, opts, picks in queues:
            varied = next(picks, None)
            if varied is None:
                continue
            add(layout, inos, opts, varied)
            alive.append((layout, inos, opts, picks))
            if len(states) >= cap:
                break
        queues = alive
    attempts = 0
    while len(states) < cap and attempts < 8 * cap and plans:
        attempts += 1
        layout, inos, opts = plans[rng.randrange(len(plans))]
        add(layout, inos, opts, [rng.randrange(len(o)) for o, _ in opts])
    return CrashEnumeration(tuple(list(states.values())[:cap]), total, True)


def _data_deviation(path: str, snap: FileSnap, option: FileOption) -> Deviation:
    kind = DeviationKind.DATA_LOST if option.data == snap.durable else DeviationKind.DATA_TORN
    return Deviation(kind, path, f"{path}: {option.desc}")


#: The in-order state's description: every call up to the crash point persisted.
IN_ORDER = "in order: everything up to the crash persisted"


def _nothing_ignored(path: str) -> bool:
    return False


class _Holds:
    """What of `snap` still holds unchanged at the next crash point `following`: there
    the same deviation is explored again, later (the linear exploration)."""

    def __init__(self, snap: Snapshot, following: Snapshot | None) -> None:
        self.snap, self.following = snap, following
        self.files = dict(_layout(following, frozenset(), ()).files) if following else {}
        self.folders: dict[int, list[int]] = {}  # inode -> the folders naming it
        for dino, entries in snap.current.items():
            for ino in entries.values():
                self.folders.setdefault(ino, []).append(dino)

    def dir(self, dino: int) -> bool:
        a, b = self.snap, self.following
        return b is not None and all(
            m.get(dino) == n.get(dino)
            for m, n in (
                (a.current, b.current),
                (a.durable, b.durable),
                (a.versions, b.versions),
                (a.paths, b.paths),
            )
        )

    def file(self, path: str, ino: int) -> bool:
        """The file's bytes unchanged, and its folder's names too: a name created, renamed
        or removed beside it can change which files a reader opens (LevelDB's `CURRENT`
        renamed to point at a `MANIFEST` whose bytes are still unsynced), so its lost or
        torn bytes are explored again after every such change."""
        return (
            self.following is not None
            and self.files.get(path) == ino
            and self.following.files.get(ino) == self.snap.files[ino]
            and all(self.dir(dino) for dino in self.folders.get(ino, ()))
        )

    def journal(self) -> bool:
        a, b = self.snap, self.following
        return (
            b is not None
            and b.committed == a.committed
            and b.journal[: len(a.journal)] == a.journal
        )


def bounded_states(
    snap: Snapshot,
    *,
    torn: TornMode | str = TornMode.DEFAULT,
    point: int | None = None,
    profile: Profile | str = PREFIX,
    ignore: Callable[[str], bool] | None = None,
    following: Snapshot | None = None,
) -> CrashEnumeration:
    """The in-order state of `snap` and each deviation from it alone (see the module
    docstring): one namespace change not persisted, or one journal cut, or one rename
    half done (as `profile` allows), or one file's unsynced bytes lost, cut or torn.
    Linear in what is unsynced. `ignore(path)`: a file whose variants are not explored
    (no checker reads it); it is whole in every state. `following`: the next crash
    point's snapshot, where the deviations that still hold unchanged are left to it
    (the linear exploration)."""
    torn = torn_mode(torn)
    profile = profile_named(profile)
    skip = ignore or _nothing_ignored
    holds = _Holds(snap, following)
    inorder = _layout(snap, frozenset(), ())
    states: dict[tuple[object, ...], CrashState] = {}

    def add(layout: _Layout, content: Mapping[int, bytes], devs: tuple[Deviation, ...]) -> None:
        data = {ino: content.get(ino, snap.files[ino].writeback) for _, ino in layout.files}
        if layout.sizes is not None:  # a journal cut: sizes journaled after it did not persist
            data = {
                ino: _within(snap.files[ino], b, layout.sizes.get(ino)) for ino, b in data.items()
            }
        image = _image(layout, data)
        if image.key not in states:
            cut = "; ".join(d.detail for d in devs) or IN_ORDER
            states[image.key] = CrashState(image, cut, point, devs)

    add(inorder, {}, ())
    deviant: list[_Layout] = []
    if _journaled(snap, profile):
        if not holds.journal():
            deviant = list(_journal_layouts(snap))
    else:
        for group in _groups(_changes(snap), profile.atomic_rename):
            if all(holds.dir(c.dir) for c in group):
                continue
            desc = _group_desc(snap, group)
            layout = _layout(
                snap,
                frozenset((c.dir, c.name) for c in group),
                (desc,),
                devs=(_group_deviation(snap, group, desc),),
            )
            deviant.append(layout)
        deviant += [
            layout for dino, layout in _partial_layouts_by_dir(snap, profile) if not holds.dir(dino)
        ]
    for layout in deviant:
        if not all(skip(d.path) for d in layout.devs):
            add(layout, {}, layout.devs)
    for path, ino in inorder.files:
        file = snap.files[ino]
        if skip(path) or file.writeback == file.durable or holds.file(path, ino):
            continue
        options, full = file_options(file, torn, profile, bounded=True)
        for i, option in enumerate(options):
            if i != full:
                add(inorder, {ino: option.data}, (_data_deviation(path, file, option),))
    return CrashEnumeration(tuple(states.values()), len(states), False)


def crash_states(
    snap: Snapshot,
    *,
    exploration: Exploration | str = Exploration.BOUNDED,
    torn: TornMode | str = TornMode.DEFAULT,
    cap: int = DEFAULT_CAP,
    point: int | None = None,
    profile: Profile | str = PREFIX,
    ignore: Callable[[str], bool] | None = None,
    following: Snapshot | None = None,
) -> CrashEnumeration:
    """The crash states of `snap`: `bounded_states` (`LINEAR`: leaving to `following`,
    the next crash point's snapshot, what still holds there) or, `EXHAUSTIVE`,
    `enumerate_states` under `cap` (the ignored files' variants left out of both)."""
    exploration = Exploration(exploration)
    if exploration is not Exploration.EXHAUSTIVE:
        later = following if exploration is Exploration.LINEAR else None
        return bounded_states(
            snap, torn=torn, point=point, profile=profile, ignore=ignore, following=later
        )
    found = enumerate_states(snap, torn=torn, cap=cap, point=point, profile=profile)
    if ignore is None:
        return found
    kept = tuple(
        state for state in found.states if not any(ignore(d.path) for d in state.deviations)
    )
    return CrashEnumeration(kept, found.combinations, found.capped)


def profiles_leaving(
    snap: Snapshot,
    image: DiskImage,
    *,
    torn: TornMode | str = TornMode.DEFAULT,
    exploration: Exploration | str = Exploration.BOUNDED,
    profiles: Iterable[str] = PROFILES,
) -> tuple[str, ...]:
    """The profiles under which a crash at `snap` may leave `image` (a finding's "needs":
    a disk only `posix` leaves is no bug on ext4)."""
    return tuple(
        name
        for name in profiles
        if any(
            state.image.key == image.key
            for state in crash_states(snap, exploration=exploration, torn=torn, profile=name).states
        )
    )


def durable_image(snap: Snapshot) -> DiskImage:
    """The disk if nothing un-synced survives: durable entries, durable bytes."""
    keep_old = frozenset((c.dir, c.name) for c in _changes(snap))
    layout = _layout(snap, keep_old, ())
    return _image(layout, {ino: snap.files[ino].durable for _, ino in layout.files})


def visible_image(snap: Snapshot) -> DiskImage:
    """What a reader sees now: current entries, current bytes."""
    layout = _layout(snap, frozenset(), ())
    return _image(layout, {ino: snap.files[ino].current for _, ino in layout.files})
