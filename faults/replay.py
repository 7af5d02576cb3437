"""The offline replay of a recorded run: the durability model rebuilt call by call from
the image the run started on, and a `Snapshot` after every call that changed the disk.

Why apart from the recorder: only recording needs FUSE. Everything here is plain data
and runs anywhere; `crash.enumerate_states` and `crash.bounded_states` derive the crash
states from its snapshots, as they do from the in-process layer's.

Fault model (the same as `crashkit.faults.model`'s): what an `fsync`/`fdatasync` of a
file made durable is its content at that moment; what a directory's fsync made durable
is its entries; `sync`/`syncfs` make every file and folder durable; nothing else is
durable. Everything in the starting image is durable. A failed `fsync`/`fdatasync`
applies the chosen `FsyncModel` to the file's dirty range. Besides, the replay keeps the
namespace as it stood at the last sync of anything (`Snapshot.committed`) and after each
directory operation since (`Snapshot.journal`): what a journaling file system may leave.

What it replays (`Call`): creating and truncating opens, writes, truncates (`fallocate`
growing a file is one), unlink, rename/replace, mkdir, rmdir, the fsyncs, sync, and two
more directory operations recorded as opens that create a name: a hard link (a second
name for the inode of `Call.target`: what one name's fsync made durable, the other
holds) and a symlink (a new inode whose content is its target, a `LinkTarget`; written
with its inode, so it is durable as soon as its entry is: only the entry can be lost).
What it does not: metadata (modes, times, owners, xattrs) and special files.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from crashkit.faults.image import DiskImage, LinkTarget
from crashkit.faults.model import (
    FileSnap,
    JournalEntry,
    Poison,
    Snapshot,
    apply_poison,
    dirty_start,
)
from crashkit.faults.ops import OpKind
from crashkit.faults.plan import FsyncModel
from crashkit.faults.trace import Op


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call that may change the disk, with what the replay needs."""

    op: OpKind
    path: str  # absolute in the mount ("/state/h.db")
    data: bytes = b""  # write: the bytes
    offset: int = 0  # write: where; truncate: the new size
    target: str = ""  # rename: the destination
    truncates: bool = False  # open: O_TRUNC
    creates: bool = False  # open: the file did not exist
    #: rename/unlink to or of a `.fuse_hidden` name: the kernel keeping a file that is
    #: still open alive after it was unlinked or replaced (the inode, not a name)
    hidden: bool = False
    #: open that creates `path` as a link: "hard", another name for the inode of
    #: `target`; "symbolic", a symlink whose target is `data` (file-system encoded)
    link: Literal["", "hard", "symbolic"] = ""


#: How libfuse names a file unlinked or replaced while open (it removes it at last close).
HIDDEN_PREFIX = ".fuse_hidden"


def is_hidden(path: str) -> bool:
    return posixpath.basename(path).startswith(HIDDEN_PREFIX)


@dataclass(slots=True)
class Recording:
    """What one recorded run did: its calls (and their trace), its exit, its output."""

    calls: list[Call | None] = field(default_factory=list)  # None: a call that failed
    trace: list[Op] = field(default_factory=list)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    #: what the mount held when the command ended (the replay must arrive at it)
    final: DiskImage = field(default_factory=DiskImage)
    #: calls the recorder refused, each named with its file and errno ("setxattr /db
    #: user.x: ENOTSUP, not supported by the recorder"): the run is not fully modelled
    unsupported: list[str] = field(default_factory=list)
    #: what the recording could not see, whatever the program did ("sync(2) is not
    #: visible: ..."): for the report beside the findings
    notes: list[str] = field(default_factory=list)
    #: per call of the trace, how many bytes of `stdout` the program had written before
    #: it (what it had said, "done" included, when the power was cut there)
    stdout_at: list[int] = field(default_factory=list)
    #: where the mount was while the command ran (the path its calls named)
    mount: str = ""

    def said_before(self, index: int) -> int:
        """Bytes of stdout written before call `index` was made (all of them past the
        last call)."""
        if index < len(self.stdout_at):
            return self.stdout_at[index]
        return len(self.stdout.encode())


@dataclass(slots=True)
class _File:
    current: bytearray
    durable: bytes
    low: int
    poison: tuple[Poison, ...] = ()  # ranges a failed fsync marked clean (MARK_CLEAN)
    #: `current` as bytes, kept until the next change: the snapshots of every crash
    #: point share one copy of a file that did not change between them
    frozen: bytes | None = None

    def content(self) -> bytes:
        if self.frozen is None:
            self.frozen = bytes(self.current)
        return self.frozen


class ReplayModel:
    """The durability model, replayed from an image and a recording's calls (offline)."""

    def __init__(self, image: DiskImage, model: FsyncModel = FsyncModel.KEEP_DIRTY) -> None:
        self.model = model
        self._next = 1
        self.root = self._ino()
        self.dirs: dict[int, dict[str, int]] = {self.root: {}}
        self.durable_dirs: dict[int, dict[str, int]] = {}
        self.files: dict[int, _File] = {}
        self.hidden: dict[str, int] = {}  # open files the kernel hid (path -> inode)
        for directory in image.dirs:
            self._mkdirs(directory)
        for path, data in image.files.items():
            parent, name = self._parent(path, create=True)
            ino = self._ino()
            self.files[ino] = _File(bytearray(data), bytes(data), len(data))
            self.dirs[parent][name] = ino
        for path, target in image.links.items():
            parent, name = self._parent(path, create=True)
            self.dirs[parent][name] = self._symlink(os.fsencode(target))
        self.durable_dirs = {d: dict(entries) for d, entries in self.dirs.items()}
        #: the namespace the last commit left (any sync: a journaling file system's), the
        #: directories changed since, and each directory operation since (Snapshot.journal)
        self.committed: dict[int, dict[str, int]] = {
            d: dict(entries) for d, entries in self.dirs.items()
        }
        self.changed: set[int] = set()
        self.journal: list[JournalEntry] = []

    def _commit(self) -> None:
        """Every directory operation so far is in the journal's last commit."""
        for d in self.changed:
            self.committed[d] = dict(self.dirs[d])
        self.changed.clear()
        self.journal.clear()

    def _dir_op(self, op: str, path: str, *dirs: int) -> None:
        """A directory operation on `dirs`: one more entry of the journal."""
        self.changed.update(dirs)
        sizes = {ino: len(f.current) for ino, f in self.files.items()}
        self.journal.append(JournalEntry(op, path, {d: dict(self.dirs[d]) for d in dirs}, sizes))

    def _ino(self) -> int:
        self._next += 1
        return self._next - 1

    def _mkdirs(self, path: str) -> int:
        current = self.root
        for part in [p for p in path.split("/") if p]:
            child = self.dirs[current].get(part)
            if child is None:
                child = self._ino()
                self.dirs[child] = {}
                self.dirs[current][part] = child
            current = child
        return current

    def _parent(self, path: str, *, create: bool = False) -> tuple[int, str]:
        head, name = posixpath.split(path)
        if create:
            return self._mkdirs(head), name
        return self._lookup_dir(head), name

    def _lookup_dir(self, path: str) -> int:
        current = self.root
        for part in [p for p in path.split("/") if p]:
            current = self.dirs[current][part]
        return current

    def _inode(self, path: str) -> int:
        ino = self.hidden.get(path)
        if ino is None:
            parent, name = self._parent(path)
            ino = self.dirs[parent][name]
        return ino

    def _file(self, path: str) -> _File:
        return self.files[self._inode(path)]

    def _symlink(self, target: bytes) -> int:
        """A new symlink inode: its content (the target) is durable with it."""
        ino = self._ino()
        content = LinkTarget(target)
        self.files[ino] = _File(bytearray(content), content, len(content), frozen=content)
        return ino

    def apply(self, call: Call) -> None:
        """One recorded call's effect on what is visible and what is durable."""
        op = call.op
        if call.hidden:  # the inode lives on under a name that is not on the disk
            if op is OpKind.RENAME:
                parent, name = self._parent(call.path)
                self.hidden[call.target] = self.dirs[parent].pop(name)
                self._dir_op(f"unlink {call.path} (still open)", call.path, parent)
            else:
                self.hidden.pop(call.path, None)
        elif op is OpKind.OPEN and call.link:
            parent, name = self._parent(call.path)
            if call.link == "hard":
                self.dirs[parent][name] = self._inode(call.target)
                self._dir_op(f"link {call.target} -> {call.path}", call.path, parent)
            else:
                self.dirs[parent][name] = self._symlink(call.data)
                what = f"symlink {call.path} -> {os.fsdecode(call.data)}"
                self._dir_op(what, call.path, parent)
        elif op is OpKind.OPEN:
            parent, name = self._parent(call.path)
            ino = self.dirs[parent].get(name)
            if ino is None or ino not in self.files:
                ino = self._ino()
                self.files[ino] = _File(bytearray(), b"", 0)
                self.dirs[parent][name] = ino
                self._dir_op(f"create {call.path}", call.path, parent)
            elif call.truncates:
                f = self.files[ino]
                f.current = bytearray()
                f.frozen = None
                f.low = 0
        elif op is OpKind.WRITE:
            f = self._file(call.path)
            end = call.offset + len(call.data)
            if len(f.current) < call.offset:
                f.current.extend(b"\0" * (call.offset - len(f.current)))
            f.current[call.offset : end] = call.data
            f.frozen = None
        elif op is OpKind.FTRUNCATE:
            f = self._file(call.path)
            f.frozen = None
            del f.current[call.offset :]
            if len(f.current) < call.offset:
                f.current.extend(b"\0" * (call.offset - len(f.current)))
            f.low = min(f.low, call.offset)
            f.poison = tuple(
                Poison(p.start, p.base[: call.offset - p.start])
                for p in f.poison
                if p.start < call.offset
            )
        elif op in (OpKind.FSYNC, OpKind.FDATASYNC):
            f = self._file(call.path)
            # fdatasync commits the journal only when the size changed (ext4's
            # ext4_sync_file: a data-only sync of an overwrite needs no metadata)
            resized = len(f.current) != len(f.durable)
            f.durable = apply_poison(f.content(), f.poison)
            f.low = len(f.current)
            if op is OpKind.FSYNC or resized:
                self._commit()
        elif op is OpKind.DIRFSYNC:
            directory = self._lookup_dir(call.path)
            self.durable_dirs[directory] = dict(self.dirs[directory])
            self._commit()
        elif op is OpKind.SYNC:  # sync(2), syncfs(2): every file and folder durable
            for f in self.files.values():
                f.durable = apply_poison(f.content(), f.poison)
                f.low = len(f.current)
            self.durable_dirs = {d: dict(entries) for d, entries in self.dirs.items()}
            self._commit()
        elif op is OpKind.UNLINK:
            parent, name = self._parent(call.path)
            del self.dirs[parent][name]
            self._dir_op(f"unlink {call.path}", call.path, parent)
        elif op in (OpKind.RENAME, OpKind.REPLACE):
            parent, name = self._parent(call.path)
            target_parent, target_name = self._parent(call.target)
            self.dirs[target_parent][target_name] = self.dirs[parent].pop(name)
            what = f"rename {call.path} -> {call.target}"
            self._dir_op(what, call.target, parent, target_parent)
        elif op is OpKind.MKDIR:
            parent, name = self._parent(call.path)
            ino = self._ino()
            self.dirs[ino] = {}
            self.dirs[parent][name] = ino
            self.committed.setdefault(ino, {})
            self._dir_op(f"mkdir {call.path}", call.path, parent, ino)
        elif op is OpKind.RMDIR:
            parent, name = self._parent(call.path)
            del self.dirs[parent][name]
            self._dir_op(f"rmdir {call.path}", call.path, parent)

    def fsync_failed(self, path: str) -> bytes | None:
        """A failed fsync/fdatasync of `path` under the model (as `DurabilityModel`'s):
        returns the file's new content when DROP threw dirty bytes away, else None."""
        if self.model is FsyncModel.KEEP_DIRTY:
            return None
        f = self._file(path)
        view = apply_poison(bytes(f.current), f.poison)
        start = dirty_start(f.durable, view, f.low)
        size = len(view) - start
        if size <= 0:
            return None
        base = f.durable[start : start + size]
        base += b"\0" * (size - len(base))
        if self.model is FsyncModel.MARK_CLEAN:
            f.poison = (*f.poison, Poison(start, base))
            return None
        dropped = view[:start] + base
        if dropped == bytes(f.current):
            return None
        f.current = bytearray(dropped)
        f.frozen = None
        return dropped

    def snapshot(self) -> Snapshot:
        """The model now, as the plain data crash states are derived from."""
        paths: dict[int, str] = {self.root: "/"}
        reachable = [self.root]
        current: dict[int, dict[str, int]] = {}
        files: dict[int, FileSnap] = {}
        seen: set[int] = set()
        while reachable:
            directory = reachable.pop()
            if directory in seen:
                continue
            seen.add(directory)
            entries = dict(self.dirs.get(directory, {}))
            current[directory] = entries
            tables: list[Mapping[str, int]] = [entries, self.durable_dirs.get(directory, {})]
            tables.append(self.committed.get(directory, {}))
            tables += [e.changed[directory] for e in self.journal if directory in e.changed]
            for table in tables:
                for name, ino in table.items():
                    base = paths[directory]
                    paths.setdefault(ino, f"/{name}" if base == "/" else f"{base}/{name}")
                    if ino in self.files:
                        f = self.files[ino]
                        files[ino] = FileSnap(f.content(), f.durable, f.low, f.poison)
                    else:
                        reachable.append(ino)
        durable = {d: dict(self.durable_dirs.get(d, {})) for d in current}
        committed = {d: dict(self.committed.get(d, {})) for d in current}
        return Snapshot(
            self.root,
            current,
            durable,
            files,
            paths,
            committed=committed,
            journal=tuple(self.journal),
        )


def crash_points(recording: Recording) -> list[int]:
    """The indexes of the calls a crash may come after: every one that changed the disk."""
    return [op.index for op in recording.trace if op.mutating]


_SYNCS = frozenset({OpKind.FSYNC.value, OpKind.FDATASYNC.value})


def snapshots(
    recording: Recording, image: DiskImage, model: FsyncModel = FsyncModel.KEEP_DIRTY
) -> Iterator[tuple[int, Snapshot]]:
    """(call index, the model right after it) for every crash point, in order; a failed
    fsync applies `model` (the one the recording ran under)."""
    replay = ReplayModel(image, model)
    points = set(crash_points(recording))
    for index, call in enumerate(recording.calls):
        if call is not None:
            replay.apply(call)
        elif recording.trace[index].op in _SYNCS:
            replay.fsync_failed(recording.trace[index].path)
        if index in points:
            yield index, replay.snapshot()
