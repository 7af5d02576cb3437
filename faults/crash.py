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

Namespace choices and per-file cuts combine as a product; identical images are
deduplicated. Above `cap` combinations a deterministic sample is taken instead (every
single-file and single-entry variation first, then seeded pseudo-random picks) and the
result says it was capped.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from crashkit.faults.image import DiskImage
from crashkit.faults.model import FileSnap, Snapshot


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


@dataclass(frozen=True, slots=True)
class CrashState:
    """One disk a power cut may leave, with a short human-readable `cut` description."""

    image: DiskImage
    cut: str
    point: int | None = None


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
    snap: FileSnap, torn: TornMode | str = TornMode.DEFAULT
) -> tuple[tuple[FileOption, ...], int]:
    """The distinct contents a crash may leave for one file, and the index of "all kept"."""
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


def _groups(changes: Sequence[_Change]) -> list[tuple[_Change, ...]]:
    """Changes that move one inode (rename/replace) form one atomic group."""
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
        if ino in arriving:
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

    def inos(self) -> list[int]:
        return list(dict.fromkeys(ino for _, ino in self.files))


def _layout(
    snap: Snapshot,
    keep_old: frozenset[tuple[int, str]],
    descs: tuple[str, ...],
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
        for name in sorted(cur.keys() | dur.keys(), reverse=True):
            ino = dur.get(name) if (dino, name) in keep_old else cur.get(name)
            if ino is None:
                continue
            child = f"/{name}" if path == "/" else f"{path}/{name}"
            if ino in snap.current:
                dirs.append(child)
                stack.append((ino, child))
            elif ino in snap.files:
                files.append((child, ino))
    return _Layout(tuple(sorted(dirs)), tuple(sorted(files)), descs)


def _layouts(snap: Snapshot, cap: int, rng: random.Random) -> tuple[list[_Layout], bool]:
    """Distinct namespaces after crash; sampled (True) when 2**groups exceeds `cap`."""
    groups = _groups(_changes(snap))
    g = len(groups)
    descs = [_group_desc(snap, group) for group in groups]
    keys = [frozenset((c.dir, c.name) for c in group) for group in groups]
    sampled = g > 0 and 2**g > cap
    choices: Iterator[tuple[bool, ...]]
    if not sampled:
        choices = itertools.product((False, True), repeat=g)  # True = not persisted
    else:
        choices = _sample_bits(g, cap, rng)
    layouts: dict[tuple[object, ...], _Layout] = {}
    for bits in choices:
        keep_old: frozenset[tuple[int, str]] = frozenset().union(
            *(keys[i] for i in range(g) if bits[i])
        )
        desc = tuple(descs[i] for i in range(g) if bits[i])
        layout = _layout(snap, keep_old, desc)
        layouts.setdefault((layout.dirs, layout.files), layout)
    return list(layouts.values()), sampled


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
) -> CrashEnumeration:
    """Every distinct crash state of `snap` (or a deterministic sample of `cap` of them)."""
    torn = torn_mode(torn)
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    rng = random.Random(f"crashkit-faults:{point}")
    layouts, capped = _layouts(snap, cap, rng)
    cache: dict[int, tuple[tuple[FileOption, ...], int]] = {}

    def options(ino: int) -> tuple[tuple[FileOption, ...], int]:
        if ino not in cache:
            cache[ino] = file_options(snap.files[ino], torn)
        return cache[ino]

    plans = []
    total = 0
    for layout in layouts:
        inos = layout.inos()
        opts = [options(ino) for ino in inos]
        total += math.prod(len(o) for o, _ in opts)
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
        for ino, (choices, _), index in zip(inos, opts, pick, strict=True):
            option = choices[index]
            content[ino] = option.data
            if len(choices) > 1:
                parts.append(f"{snap.paths.get(ino, f'<inode {ino}>')}: {option.desc}")
        image = _image(layout, content)
        if image.key not in states:
            cut = "; ".join(parts) if parts else "nothing unsynced"
            states[image.key] = CrashState(image, cut, point)

    if not capped and total <= cap:
        for layout, inos, opts in plans:
            for combo in itertools.product(*(range(len(o)) for o, _ in opts)):
                add(layout, inos, opts, combo)
        return CrashEnumeration(tuple(states.values()), total, False)

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


def durable_image(snap: Snapshot) -> DiskImage:
    """The disk if nothing un-synced survives: durable entries, durable bytes."""
    keep_old = frozenset((c.dir, c.name) for c in _changes(snap))
    layout = _layout(snap, keep_old, ())
    return _image(layout, {ino: snap.files[ino].durable for _, ino in layout.files})


def visible_image(snap: Snapshot) -> DiskImage:
    """What a reader sees now: current entries, current bytes."""
    layout = _layout(snap, frozenset(), ())
    return _image(layout, {ino: snap.files[ino].current for _, ino in layout.files})
