"""The durability model: what a power cut cannot take away, per inode and per directory.

pyfakefs knows only what a process *sees* (the page cache, in kernel terms). This model
adds what is *durable*:

- per file (by inode number, stable across renames): the bytes the last successful
  fsync/fdatasync persisted, the lowest size the file had since then (so a truncate
  followed by an append is told apart from an append), and the ranges a failed fsync
  lost for good under `FsyncModel.MARK_CLEAN`;
- per directory (by inode number): the entries (name -> inode) the last fsync of that
  directory persisted.

close() and flush() make nothing durable: only fsync, fdatasync, a directory fsync and
sync() do. Everything present when a run starts from an image is durable.

A hard link is one more entry for an inode (both names hold what its fsync made durable).
A symbolic link is an inode whose content, its target (a `LinkTarget`), is written with
it: durable as soon as its entry is (as in `crashkit.faults.replay`).

A `Snapshot` freezes the model together with the visible tree; crash states are derived
from snapshots alone (see `crashkit.faults.crash`), so they can be enumerated after the fake file
system is gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from crashkit.faults._pyfakefs import (
    FakeDirectory,
    FakeFile,
    byte_contents,
    entries,
    inode,
    is_link,
    is_regular,
    set_contents,
)
from crashkit.faults.image import LinkTarget
from crashkit.faults.plan import FsyncModel

_EMPTY: Mapping[str, int] = {}


@dataclass(frozen=True, slots=True)
class Poison:
    """A range a failed fsync marked clean without writing it: on disk it holds `base`."""

    start: int
    base: bytes


@dataclass(frozen=True, slots=True)
class FileDurability:
    """The durable side of one inode (a never-synced file has the defaults)."""

    durable: bytes = b""
    low: int = 0
    poison: tuple[Poison, ...] = ()


_NEW_FILE = FileDurability()


def apply_poison(content: bytes, poison: tuple[Poison, ...]) -> bytes:
    """What writeback would put on disk: `content` with every lost range replaced."""
    for p in poison:
        end = min(p.start + len(p.base), len(content))
        if p.start < end:
            content = content[: p.start] + p.base[: end - p.start] + content[end:]
    return content


def common_prefix_len(a: bytes, b: bytes) -> int:
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo], a[:hi+1] != b[:hi+1]
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def dirty_start(durable: bytes, view: bytes, low: int) -> int:
    """Offset from which `view` may differ from what is durable."""
    t = min(low, len(durable), len(view))
    if view[:t] == durable[:t]:
        return t
    return common_prefix_len(view, durable)


@dataclass(frozen=True, slots=True)
class FileSnap:
    """One inode frozen at a crash point: what reads saw and what was durable."""

    current: bytes
    durable: bytes
    low: int
    poison: tuple[Poison, ...] = ()

    @property
    def writeback(self) -> bytes:
        """The content a writeback could persist (current minus ranges lost to fsync)."""
        return apply_poison(self.current, self.poison) if self.poison else self.current


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The visible tree and the durable state at one moment, as plain data.

    `current`/`durable` map each directory inode to its entries (name -> inode); every
    directory reachable through either kind of entry has a `current` map (possibly
    empty: a removed directory). `files` holds every reachable regular file. `paths`
    gives each inode a display path (its current location when it has one).
    """

    root: int
    current: Mapping[int, Mapping[str, int]]
    durable: Mapping[int, Mapping[str, int]]
    files: Mapping[int, FileSnap]
    paths: Mapping[int, str]
    #: per directory, the entries it had at each earlier snapshot since its last fsync,
    #: oldest first, when they differed from both its durable and its current entries:
    #: the namespaces a crash may leave if only some of its operations persisted
    versions: Mapping[int, tuple[Mapping[str, int], ...]] = field(default_factory=dict)
    #: the namespace as the last sync of anything left it (a journaling file system
    #: commits every earlier directory operation at any fsync): every directory's entries
    #: then; None where the model does not track it (the profiles fall back to `durable`)
    committed: Mapping[int, Mapping[str, int]] | None = None
    #: each directory operation since that commit, in program order: what it did, and
    #: the entries of every directory changed since the commit right after it
    journal: tuple[JournalEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One directory operation since the last commit and the namespace it left."""

    op: str  # the call, as a reader sees it ("rename /a -> /b")
    path: str  # the path it named
    changed: Mapping[int, Mapping[str, int]]  # directory inode -> entries, after it
    #: every file's size then (inode -> bytes): a size a later append reached is journaled
    #: after this entry, so a journal cut before it keeps no byte past these sizes
    sizes: Mapping[int, int] = field(default_factory=dict)


def _join(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


class DurabilityModel:
    """Mutable per-run durability state, updated by the interception layer."""

    def __init__(self, model: FsyncModel = FsyncModel.KEEP_DIRTY) -> None:
        self.model = model
        self.files: dict[int, FileDurability] = {}
        self.dirs: dict[int, Mapping[str, int]] = {}
        self.objects: dict[int, FakeFile] = {}
        #: per directory, its entries at each snapshot since its last fsync (see
        #: `Snapshot.versions`)
        self.history: dict[int, list[Mapping[str, int]]] = {}
        #: the namespace at the last commit (any sync) and the journal since (see
        #: `Snapshot.committed`); a commit is taken at the next snapshot, which follows
        #: the sync before any other call
        self.committed: dict[int, Mapping[str, int]] = {}
        self.journal: list[JournalEntry] = []
        self._commit = True
        self._namespace: dict[int, Mapping[str, int]] = {}

    # -- whole-tree operations ---------------------------------------------------------

    def reset_durable(self, root: FakeDirectory) -> None:
        """Forget everything; what is in the tree now is fully durable (a fresh image)."""
        self.files = {}
        self.dirs = {}
        self.objects = {}
        self.history = {}
        self.committed = {}
        self.journal = []
        self._namespace = {}
        self.sync_all(root)

    def sync_all(self, root: FakeDirectory) -> None:
        """sync(2): every file and directory reachable or still open becomes durable."""
        pending: list[FakeFile] = [root]
        seen: set[int] = set()
        while pending:
            obj = pending.pop()
            if inode(obj) in seen:
                continue
            seen.add(inode(obj))
            if isinstance(obj, FakeDirectory):
                self.dir_synced(obj)
                pending.extend(entries(obj).values())
            elif is_regular(obj):
                self.fsync_ok(obj)
        for obj in list(self.objects.values()):
            if inode(obj) not in seen and not isinstance(obj, FakeDirectory) and is_regular(obj):
                self.fsync_ok(obj)

    # -- per-call updates --------------------------------------------------------------

    def state(self, ino: int) -> FileDurability:
        return self.files.get(ino, _NEW_FILE)

    def fsync_ok(self, obj: FakeFile, *, datasync: bool = False) -> None:
        """A successful fsync/fdatasync: what writeback can persist is now durable. It
        commits the journal, but for an fdatasync that left the size as it was (ext4's
        `ext4_sync_file`: a data-only sync of an overwrite needs no metadata)."""
        ino = inode(obj)
        self.objects[ino] = obj
        fd = self.files.get(ino, _NEW_FILE)
        view = apply_poison(byte_contents(obj) or b"", fd.poison)
        self._commit = self._commit or not datasync or len(view) != len(fd.durable)
        self.files[ino] = FileDurability(durable=view, low=len(view), poison=fd.poison)

    def fsync_failed(self, obj: FakeFile) -> None:
        """A failed fsync/fdatasync: apply the configured `FsyncModel` to the dirty range."""
        if self.model is FsyncModel.KEEP_DIRTY:
            return
        ino = inode(obj)
        self.objects[ino] = obj
        fd = self.files.get(ino, _NEW_FILE)
        current = byte_contents(obj) or b""
        view = apply_poison(current, fd.poison)
        start = dirty_start(fd.durable, view, fd.low)
        size = len(view) - start
        if size <= 0:
            return
        base = fd.durable[start : start + size]
        base += b"\0" * (size - len(base))
        if self.model is FsyncModel.MARK_CLEAN:
            poison = (*fd.poison, Poison(start, base))
            self.files[ino] = FileDurability(fd.durable, fd.low, poison)
        else:  # DROP: the page cache loses the bytes now; reads see the disk's content
            dropped = view[:start] + base
            if dropped != current:
                set_contents(obj, dropped)

    def truncated(self, obj: FakeFile, size: int) -> None:
        """The file was cut to `size` (ftruncate, O_TRUNC, mode "w"): track the low mark."""
        ino = inode(obj)
        self.objects[ino] = obj
        fd = self.files.get(ino, _NEW_FILE)
        poison = tuple(
            Poison(p.start, p.base[: size - p.start]) for p in fd.poison if p.start < size
        )
        self.files[ino] = FileDurability(fd.durable, min(fd.low, size), poison)

    def dir_synced(self, directory: FakeDirectory) -> None:
        """A successful fsync of a directory: its current entries are durable."""
        children = entries(directory)
        self.objects[inode(directory)] = directory
        for child in children.values():
            self.objects[inode(child)] = child
        self.dirs[inode(directory)] = {name: inode(child) for name, child in children.items()}
        self.history.pop(inode(directory), None)
        self._commit = True

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self, root: FakeDirectory, op: str = "", path: str = "") -> Snapshot:
        """Freeze the visible tree plus everything durable entries still point at (`op`
        on `path`: the call just made, which names a journal entry)."""
        current: dict[int, Mapping[str, int]] = {}
        durable: dict[int, Mapping[str, int]] = {}
        files: dict[int, FileSnap] = {}
        paths: dict[int, str] = {}
        objects = self.objects
        states = self.files
        # current tree first (breadth-first), so display paths prefer current locations
        queue: deque[tuple[FakeDirectory, str]] = deque([(root, "/")])
        detached: list[tuple[int, str]] = []
        while queue or detached:
            if not queue:
                ino, path = detached.pop(0)
                obj = objects.get(ino)
                if ino in paths or obj is None:
                    continue
                if isinstance(obj, FakeDirectory):
                    queue.append((obj, path))
                elif is_regular(obj) or is_link(obj):
                    paths[ino] = path
                    files[ino] = self._file_snap(obj, states.get(ino, _NEW_FILE))
                continue
            directory, path = queue.popleft()
            dino = inode(directory)
            if dino in current:
                continue
            paths.setdefault(dino, path)
            children = entries(directory)
            cur = {name: inode(child) for name, child in children.items()}
            current[dino] = cur
            dur = self.dirs.get(dino, _EMPTY)
            durable[dino] = dur
            for name, child in children.items():
                cino = inode(child)
                objects[cino] = child
                if isinstance(child, FakeDirectory):
                    queue.append((child, _join(path, name)))
                elif cino not in files and (is_regular(child) or is_link(child)):
                    paths.setdefault(cino, _join(path, name))
                    files[cino] = self._file_snap(child, states.get(cino, _NEW_FILE))
            for name, cino in dur.items():
                if cur.get(name) != cino:
                    detached.append((cino, _join(path, name)))
            if cur != dur:
                seen = self.history.setdefault(dino, [])
                if not seen or seen[-1] != cur:
                    seen.append(cur)
                for earlier in seen[:-1]:
                    for name, cino in earlier.items():
                        if cino not in cur.values() and cino not in dur.values():
                            detached.append((cino, _join(path, name)))
        versions = {
            dino: tuple(v for v in seen[:-1] if v != durable.get(dino))
            for dino, seen in self.history.items()
            if dino in current and len(seen) > 1
        }
        sizes = {ino: len(snap.current) for ino, snap in files.items()}
        self._track_journal(current, op or "a directory operation", path, sizes)
        for table in [self.committed, *(e.changed for e in self.journal)]:
            for dino, names in table.items():
                for name, cino in names.items():
                    if cino in files or cino in current:
                        continue
                    obj = objects.get(cino)
                    if isinstance(obj, FakeDirectory):
                        current[cino] = {n: inode(c) for n, c in entries(obj).items()}
                        durable[cino] = self.dirs.get(cino, _EMPTY)
                    elif obj is not None and (is_regular(obj) or is_link(obj)):
                        paths.setdefault(cino, _join(paths.get(dino, "/"), name))
                        files[cino] = self._file_snap(obj, states.get(cino, _NEW_FILE))
        return Snapshot(
            inode(root),
            current,
            durable,
            files,
            paths,
            {d: v for d, v in versions.items() if v},
            committed={d: self.committed.get(d, _EMPTY) for d in current},
            journal=tuple(self.journal),
        )

    def _track_journal(
        self,
        current: Mapping[int, Mapping[str, int]],
        op: str,
        path: str,
        sizes: Mapping[int, int],
    ) -> None:
        """The journal from one snapshot to the next: a sync since the last one is a commit
        of the namespace now (a sync changes no name); else the directories whose entries
        changed are one more journal entry."""
        changed = {
            d: entries for d, entries in current.items() if self._namespace.get(d) != entries
        }
        self._namespace = dict(current)
        if self._commit:
            self.committed.update(current)
            self.journal = []
            self._commit = False
        elif changed:
            self.journal.append(JournalEntry(op, path, changed, sizes))

    @staticmethod
    def _file_snap(obj: FakeFile, fd: FileDurability) -> FileSnap:
        if is_link(obj):  # its target is written with its inode: only the entry can be lost
            target = LinkTarget(byte_contents(obj) or b"")
            return FileSnap(target, target, len(target))
        return FileSnap(byte_contents(obj) or b"", fd.durable, fd.low, fd.poison)
