"""From failing crash states to vulnerabilities: the causes a user fixes.

Why: a real program refuses hundreds or thousands of crash states, and they reduce to a
handful of causes (ALICE, OSDI'14: 60 vulnerabilities in 11 applications, each a call
the program silently assumed persisted, or persisted in order, or whole). Every crash
state carries its deviations from the in-order state (`crashkit.faults.crash`); this
module reads them against the trace of calls and names the cause:

- `atomicity`: one operation half done (a torn write, a rename with both names or
  neither);
- `ordering`: an operation A lost while a later operation B, on another file or entry,
  persisted (the pair A, B);
- `durability`: an operation lost with nothing the program did after it persisted, or
  the in-order state itself refused: what the program relied on was not yet durable
  when it went on (or said "done");
- `behaviour`: refused with nothing lost: the run itself, or a crash state with
  everything up to the crash persisted. No sync fixes it: the program acknowledged (or
  published) before it wrote, or misreads what it wrote;
- `error-handling`: a call the fault plan failed, and what the program did next.

A state with several deviations (the exhaustive exploration) is explained by a failing
state whose deviations are a subset of its own, when there is one; else by the first
operation any of its deviations undid and what persisted after it (SQLite's page
written while its journal's bytes were lost: the journal's ordering pair); a state
none of whose deviations names an operation is a group of its own (`unexplained`),
never dropped. Paths that differ only by a counter, a hash or a random temp suffix are
one name (`MANIFEST-*`, `tmp*`), so that the same bug met again with another file is
one vulnerability; ordering pairs whose lost operations lack the same sync (one file
never synced, one folder never synced after its entries changed) are one too, listing
its pairs; so are the refused states of one acknowledgement made before its data was
durable, listing the operations not yet durable when the program acknowledged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crashkit.faults.crash import Deviation, DeviationKind
from crashkit.faults.ops import OpKind
from crashkit.faults.trace import Op
from crashkit.harness.judge.invariants import Invariant


class VulnClass(StrEnum):
    """What the program assumed of the file system."""

    ATOMICITY = "atomicity"
    ORDERING = "ordering"
    DURABILITY = "durability"
    BEHAVIOUR = "behaviour"
    ERROR_HANDLING = "error-handling"
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True, slots=True)
class Failure:
    """One refused crash state: where the crash came, how the disk deviated from the
    in-order state, and what the checker (or the invariant) said."""

    point: int
    deviations: tuple[Deviation, ...]
    message: str
    profiles: tuple[str, ...] = ()
    crashed: bool = True  # False: the run itself, no crash state
    #: nothing was unsynced at its crash point (the in-order state is the only state)
    settled: bool = False
    fault: str = ""  # the call the fault plan failed in that run, if any ("fsync /x: EIO")
    label: str = ""  # where it was found (a workload's name), for the reader
    #: how to replay it, as plain data (the explorer's finding: workload, crash point,
    #: cut), set on a vulnerability's example
    reproduction: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point if self.crashed else None,
            "deviations": [
                {"kind": d.kind.value, "path": d.path, "detail": d.detail} for d in self.deviations
            ],
            "message": self.message,
            "fault": self.fault or None,
            "label": self.label or None,
            "reproduction": self.reproduction,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        point = data.get("point")
        return cls(
            -1 if point is None else int(point),
            tuple(
                Deviation(DeviationKind(d["kind"]), str(d["path"]), str(d["detail"]))
                for d in data.get("deviations", ())
            ),
            str(data.get("message", "")),
            crashed=point is not None,
            fault=str(data.get("fault") or ""),
            label=str(data.get("label") or ""),
            reproduction=data.get("reproduction"),
        )


@dataclass(slots=True)
class Vulnerability:
    """The cause shared by a group of refused states (see the module docstring)."""

    kind: VulnClass
    ops: tuple[str, ...]  # the operations, normalised ("write /db/MANIFEST-*")
    hint: str
    example: Failure
    states: int = 0
    profiles: tuple[str, ...] = ()
    calls: tuple[Op, ...] = field(default_factory=tuple)  # the example's calls, as traced
    #: the source line of each of `calls` (`file:line`; "" where none is known)
    sources: tuple[str, ...] = ()
    #: the refused states counted in it (those `group_failures` was given)
    members: list[Failure] = field(default_factory=list, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.kind.value, self.ops)

    @property
    def static_key(self) -> tuple[str, tuple[str, ...]] | None:
        """ALICE's static vulnerability: the class and the lines that made its calls
        (None unless every call has a line)."""
        if not self.sources or not all(self.sources):
            return None
        return (self.kind.value, self.sources)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape (`--json`'s `vulnerabilities`)."""
        return {
            "class": self.kind.value,
            "ops": list(self.ops),
            "states": self.states,
            "profiles": list(self.profiles),
            "message": self.example.message,
            "hint": self.hint,
            "sources": list(self.sources),
            "example": self.example.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vulnerability:
        return cls(
            VulnClass(data["class"]),
            tuple(str(op) for op in data["ops"]),
            str(data["hint"]),
            Failure.from_dict(data["example"]),
            int(data["states"]),
            tuple(str(p) for p in data.get("profiles", ())),
            sources=tuple(str(s) for s in data.get("sources", ())),
        )

    def absorb(self, other: Vulnerability) -> None:
        """Count `other` (the same key) in this one: states, profiles, the smaller example."""
        self.states += other.states
        self.members += other.members
        self.profiles = tuple(sorted(set(self.profiles) | set(other.profiles)))
        if _smaller(other.example, self.example):
            self.example = other.example
            self.calls = other.calls

    def line(self) -> str:
        """One line a reader acts on: class, operations (and their lines), states, the fix."""
        where = ", ".join(self.profiles)
        needs = f" [{where}]" if where else ""
        ops = list(self.ops)
        if len(self.sources) == len(ops):
            ops = [
                f"{op} (at {src})" if src else op for op, src in zip(ops, self.sources, strict=True)
            ]
        elif any(self.sources):
            ops.append(f"at {', '.join(s for s in self.sources if s)}")
        what, shown = self.kind.value, " / ".join(ops)
        if self.pairs > 1:  # one sync missing, met as several ordering pairs
            what = f"{what} (one missing sync, {self.pairs} pairs)"
            shown = "; ".join(" / ".join(ops[n : n + 2]) for n in range(0, len(ops), 2))
        return f"{what}: {shown} ({self.states} states){needs}: {self.hint}"

    @property
    def pairs(self) -> int:
        """How many (lost, persisted) pairs an ordering vulnerability lists (0: none)."""
        return len(self.ops) // 2 if self.kind is VulnClass.ORDERING else 0


_HEX = re.compile(r"[0-9a-f]{6,}")
_DIGITS = re.compile(r"\d+")
#: a whole name of hex digits with a digit in it (git's fan-out folders `objects/0c/`,
#: `objects/d0/`): one `*`, not `*c` and `d*` (a name of letters alone, `db`, stays)
_HEX_NAME = re.compile(r"(?<=/)(?=[0-9a-f]*\d)[0-9a-f]{2,}(?=/|$)")
_TEMP = re.compile(r"((?:tmp|temp)[._-]?)[A-Za-z0-9_]{4,}", re.IGNORECASE)


def normalise(path: str) -> str:
    """A path with its counters, hashes and random temp suffixes as `*`."""
    path = _TEMP.sub(r"\1*", path)
    path = _HEX.sub("*", path)
    path = _HEX_NAME.sub("*", path)
    return _DIGITS.sub("*", path)


_NAMESPACE = frozenset(
    {OpKind.OPEN.value, OpKind.RENAME.value, OpKind.REPLACE.value, OpKind.UNLINK.value}
    | {OpKind.MKDIR.value, OpKind.RMDIR.value, "link", "symlink"}
)
#: calls that write bytes (an in-process `flush` writes what a file object buffered)
_DATA = frozenset({OpKind.WRITE.value, OpKind.FTRUNCATE.value, OpKind.FLUSH.value})
_SYNCS = frozenset({OpKind.FSYNC.value, OpKind.FDATASYNC.value})
_REMOVES = frozenset(
    {OpKind.UNLINK.value, OpKind.RENAME.value, OpKind.REPLACE.value, OpKind.RMDIR.value}
)


def _target(op: Op) -> str:
    """A rename's destination (the recorder writes `-> /b`, the in-process layer `/b`)."""
    return op.detail.removeprefix("-> ").strip()


def _names_of(trace: Sequence[Op], path: str, point: int) -> set[str]:
    """Every name the file now at `path` had up to `point` (renames walked backwards)."""
    names = {path}
    for op in reversed(trace[: point + 1]):
        renamed = op.op in (OpKind.RENAME.value, OpKind.REPLACE.value)
        if op.error is None and renamed and _target(op) in names:
            names.add(op.path)
    return names


def _lost_write(trace: Sequence[Op], names: set[str], point: int) -> Op | None:
    """The first write to the file (under any of its names) since its last sync, or
    since an earlier file of the same name was removed (a journal deleted and made again;
    an unlink with nothing written or created after it is one the state did not keep)."""
    first: Op | None = None
    created = False
    for op in reversed(trace[: point + 1]):
        if op.error is not None or op.path not in names:
            continue
        if op.op in _SYNCS or (op.op == OpKind.UNLINK.value and (first or created)):
            break
        created = created or (op.op == OpKind.OPEN.value and op.mutating)
        if op.op in _DATA:
            first = op
    return first


def _entry_op(trace: Sequence[Op], path: str, point: int, replaced: bool = False) -> Op | None:
    """The last directory operation that named `path` up to `point`; `replaced` (the
    old file came back in place of a new one of the same name): the removal of the old
    one, which is what was not durable."""
    found: Op | None = None
    for op in reversed(trace[: point + 1]):
        named = op.op in _NAMESPACE and path in (op.path, _target(op))
        if op.error is None and named and (op.op != OpKind.OPEN.value or op.mutating):
            if not replaced:
                return op
            found = found or op
            if op.op == OpKind.UNLINK.value or (op.path == path and op.op != OpKind.OPEN.value):
                return op
    return found


@dataclass(frozen=True, slots=True)
class _Lost:
    """What one deviation of a state lost: the first operation it undid, the names of
    its file, and whether everything of it after that operation is gone (a lost entry,
    or all of a file's unsynced bytes) or some of it persisted (torn)."""

    dev: Deviation
    op: Op
    names: frozenset[str]

    def took(self, op: Op) -> bool:
        """`op` went with this deviation: a later call on its file that did not persist."""
        if self.dev.kind is DeviationKind.DATA_TORN or op.index < self.op.index:
            return False
        if self.dev.kind is DeviationKind.DATA_LOST:
            return op.op in _DATA and op.path in self.names
        inside = tuple(f"{name.rstrip('/')}/" for name in self.names)
        return op.path in self.names or op.path.startswith(inside)


def _later(
    trace: Sequence[Op],
    after: Op,
    point: int,
    names: set[str],
    gone: Sequence[_Lost] = (),
    folder: str | None = None,
) -> Op | None:
    """The first operation after `after`, up to the crash, that persisted in the state
    and concerns something else: a directory operation, or data of another file (not
    one inside a lost folder: it went with it, nor one another deviation of the state
    lost, `gone`). With `folder` (a lost entry's), the first name removed from that
    folder (an unlink, a rename away) comes first: what a reader resolves through the
    lost entry may be what was removed (a `CURRENT` renamed, then the file it named
    before unlinked), the pair that matters, not a log written between them."""
    inside = tuple(f"{name.rstrip('/')}/" for name in names)
    first: Op | None = None
    for op in trace[after.index + 1 : point + 1]:
        if op.error is not None or not op.mutating or op.op in _SYNCS:
            continue
        if op.path.startswith(inside) or any(lost.took(op) for lost in gone):
            continue
        namespace = op.op in _NAMESPACE and (op.op != OpKind.OPEN.value or op.path not in names)
        if not (namespace or (op.op in _DATA and op.path not in names)):
            continue
        if folder is None or (op.op in _REMOVES and _folder(op.path) == folder):
            return op
        first = first or op
    return first


def _describe(op: Op) -> str:
    if op.op in (OpKind.RENAME.value, OpKind.REPLACE.value):
        return f"rename {normalise(op.path)} -> {normalise(_target(op))}"
    if op.op == OpKind.OPEN.value:
        return f"create {normalise(op.path)}"
    if op.op == OpKind.FLUSH.value:
        return f"write {normalise(op.path)}"
    return f"{op.op} {normalise(op.path)}"


def _folder(path: str) -> str:
    return posixpath.dirname(path) or "/"


def _hint(kind: VulnClass, lost: Op | None, later: Op | None, dev: Deviation) -> str:
    """A fix from a small rule table (real-programs.md, "From failing states")."""
    if kind is VulnClass.ATOMICITY:
        if dev.kind is DeviationKind.RENAME_SPLIT:
            return (
                "the rename is not atomic under this profile: make the reader accept both "
                "names or neither (or keep the old file until the new one is verified)"
            )
        return (
            f"the reader must detect a torn write to `{normalise(dev.path)}`: a length or "
            "checksum per record, or a journal to roll it back (or write a new file, fsync "
            "it, and rename it)"
        )
    if lost is None:
        return (
            "the state with everything up to the crash persisted is refused: the program "
            "said done (or the checker expects more) before it wrote it"
        )
    if lost.op in _DATA:
        name = normalise(lost.path)
        if later is not None and later.op in (OpKind.RENAME.value, OpKind.REPLACE.value):
            return f"fsync `{name}` before renaming it over `{normalise(_target(later))}`"
        if later is not None:
            return f"fsync `{name}` before {_describe(later)}"
        return f"fsync `{name}` before acknowledging it"
    return _sync_of(lost)


def _sync_of(op: Op) -> str:
    """The sync that makes `op` durable: its file's for data, its folder's for an entry."""
    if op.op in _DATA:
        return f"fsync `{normalise(op.path)}`"
    path = _target(op) if op.op in (OpKind.RENAME.value, OpKind.REPLACE.value) else op.path
    return f"fsync the folder `{normalise(_folder(path))}` after {_describe(op)}"


_NOTHING_LOST = "refused with nothing lost"
#: the invariants a state breaks by what the program does with its disk, not by losing
#: something: an in-order state refused under one is `behaviour` (the restart mishandles
#: what the crash left, a temp file, a half-done step), never an acknowledgement too early
_NO_LOSS = frozenset(
    i.value
    for i in (
        Invariant.NO_INVALID_RESTORED,
        Invariant.HALT,
        Invariant.ENGINE,
        Invariant.PROTOCOL,
        Invariant.RESTORE_TABLE,
        Invariant.SINGLE_WRITER,
    )
)
_RECOVERY = (
    "nothing was lost at the crash, and the restart is refused: it mishandles what the "
    "crash left (a temp file, a half-done step); fix the recovery, no sync is missing"
)


def _lost_op(trace: Sequence[Op], dev: Deviation, names: set[str], point: int) -> Op | None:
    """The operation a deviation undid: the first unsynced write of a file that lost or
    tore its bytes, the directory operation of an entry not persisted."""
    if dev.kind in (DeviationKind.DATA_LOST, DeviationKind.DATA_TORN):
        return _lost_write(trace, names, point)
    replaced = dev.detail.endswith("replacement not persisted")
    return _entry_op(trace, dev.path, point, replaced)


def classify(
    failure: Failure, trace: Sequence[Op], acks: Callable[[str], bool] | None = None
) -> Vulnerability:
    """The vulnerability one refused state shows (`acks`: the files where the program
    records what it acknowledged: a loss behind a write to one is durability,
    acknowledged before durable).

    A state with several deviations (several files' unsynced data lost or torn at once,
    as page writes without a sync leave) is read from the first operation any of them
    undid: what persisted after it (a torn file's bytes, an entry kept), the others'
    losses left out, is the later half of its ordering pair; nothing: its durability.
    What no deviation names an operation for is `unexplained`."""
    point = failure.point
    ops: tuple[str, ...]
    if not failure.crashed and failure.fault:
        ops = (f"failed call {failure.fault}",)
        hint = "the program mishandled the failed call: see the message for what it did next"
        return Vulnerability(VulnClass.ERROR_HANDLING, ops, hint, failure)
    if not failure.deviations:
        hint = (
            "no power cut is needed: with nothing lost the program is refused, so it "
            "acknowledged (or published) before it wrote, or it misreads what it wrote"
        )
        return Vulnerability(VulnClass.BEHAVIOUR, (_NOTHING_LOST,), hint, failure)
    several = len(failure.deviations) > 1
    losses: list[_Lost] = []
    for each in failure.deviations:
        if each.kind is DeviationKind.RENAME_SPLIT:
            if several:
                return _unexplained(failure)
            ops = (f"rename {normalise(each.path)} half done",)
            hint = _hint(VulnClass.ATOMICITY, None, None, each)
            return Vulnerability(VulnClass.ATOMICITY, ops, hint, failure)
        names = _names_of(trace, each.path, point)
        undone = _lost_op(trace, each, names, point)
        if undone is None:
            if several:
                return _unexplained(failure)
            if each.kind is DeviationKind.DATA_TORN:
                return _torn(each, failure)
            ops = (f"{each.kind.value} {normalise(each.path)}",)
            hint = _hint(VulnClass.DURABILITY, None, None, each)
            return Vulnerability(VulnClass.DURABILITY, ops, hint, failure)
        losses.append(_Lost(each, undone, frozenset(names)))
    first = min(losses, key=lambda x: (x.op.index, x.dev.kind.value, x.dev.path))
    dev, lost, names = first.dev, first.op, set(first.names)
    gone = [other for other in losses if other is not first]
    journal = dev.kind is DeviationKind.JOURNAL_CUT
    entry = dev.kind is DeviationKind.ENTRY_LOST
    renamed = lost.op in (OpKind.RENAME.value, OpKind.REPLACE.value)
    folder = _folder(_target(lost) if renamed else lost.path) if entry else None
    first_later = None if journal else _later(trace, lost, point, names, gone)
    if dev.kind is DeviationKind.DATA_TORN and first_later is None:
        return _torn(dev, failure)
    if first_later is not None and acks is not None and acks(first_later.path):
        ops = (f"{_describe(lost)} not durable",)
        hint = _hint(VulnClass.DURABILITY, lost, None, dev)
        return Vulnerability(VulnClass.DURABILITY, ops, hint, failure, calls=(lost,))
    later = first_later if folder is None else _later(trace, lost, point, names, gone, folder)
    if later is None:
        ops = (f"{_describe(lost)} not durable",)
        kind = VulnClass.DURABILITY
    else:  # lost or torn: the same cause, the same fix
        ops = (f"{_describe(lost)} not durable", f"{_describe(later)} persisted before it")
        kind = VulnClass.ORDERING
    calls = tuple(op for op in (lost, later) if op is not None)
    return Vulnerability(kind, ops, _hint(kind, lost, later, dev), failure, calls=calls)


def _torn(dev: Deviation, failure: Failure) -> Vulnerability:
    """A torn write with nothing after it depending on it: the write is not atomic."""
    ops = (f"write {normalise(dev.path)} half done",)
    hint = _hint(VulnClass.ATOMICITY, None, None, dev)
    return Vulnerability(VulnClass.ATOMICITY, ops, hint, failure)


def _unexplained(failure: Failure) -> Vulnerability:
    """A state with several deviations none of which names an operation: its own group."""
    ops = tuple(sorted({f"{d.kind.value} {normalise(d.path)}" for d in failure.deviations}))
    hint = "several operations lost together; no single one explains it"
    return Vulnerability(VulnClass.UNEXPLAINED, ops, hint, failure)


_NONE = Deviation(DeviationKind.DATA_LOST, "", "")

#: The order failures are attributed in: a state is explained by the cause of a simpler
#: one when there is one (nothing lost, then something lost, then something torn).
_RANK = {
    DeviationKind.DATA_LOST: 1,
    DeviationKind.ENTRY_LOST: 1,
    DeviationKind.JOURNAL_CUT: 1,
    DeviationKind.DATA_TORN: 2,
    DeviationKind.RENAME_SPLIT: 2,
}


def _rank(failure: Failure) -> int:
    if not failure.deviations:
        return 0
    if len(failure.deviations) > 1:
        return 3
    return _RANK[failure.deviations[0].kind]


def group_failures(
    failures: Iterable[Failure],
    trace: Sequence[Op],
    sources: Mapping[int, str] | None = None,
    *,
    acks: Callable[[str], bool] | None = None,
) -> list[Vulnerability]:
    """The refused states as vulnerabilities, most states first (ties by name).

    Each state is attributed to the smallest cause that explains it: a state at a crash
    point whose in-order state is refused too goes with that one (nothing lost already
    fails); a torn file with the state where the same file lost all its unsynced bytes,
    when that one is refused; a state with several deviations with a refused state of
    one of them, else with the ordering pair of the first operation its deviations undid
    (`classify`). What none explains stands as its own group, never dropped. Besides:

    - an in-order state refused is `behaviour` when the program is refused where no
      crash can explain it (the run itself, or a crash point with nothing unsynced);
      otherwise it acknowledged before it wrote, and the write after the crash point is
      what was not durable (`durability`, with the lost writes' own states); a crash
      state that breaks an invariant the run itself broke is that `behaviour` too;
    - after a call the fault plan failed, every refused state is that failure's
      (`error-handling`): what the program did next;
    - a program that never syncs a file (a folder perhaps) has one cause, whatever it
      lost;
    - ordering pairs that lack the same sync are one vulnerability (`_fold_missing_syncs`);
    - the in-order states refused for the same acknowledgement (the last write to an
      `acks` file, else the acknowledged state the message names), and the states that
      lost one of its writes with it, are one vulnerability (`_Windows`).
    """
    failures = list(failures)
    injected = next((op.index for op in trace if op.injected), None)
    synced = {op.op for op in trace if op.op in _ALL_SYNCS and op.error is None}
    # no file's bytes ever synced (folders perhaps): one cause, whatever it lost
    unsynced = None if synced & _FILE_SYNCS else "nothing" if not synced else "no file"
    # invariants the run broke with no crash: a crash state breaking them shows that
    run_broke = {_invariant(f) for f in failures if not f.crashed and not f.fault}
    behaviour = bool(run_broke) or any(
        f.crashed and not f.deviations and _following(f, trace) is None for f in failures
    )
    found: dict[tuple[str, tuple[str, ...]], Vulnerability] = {}
    # each refused in-order state of an acknowledgement made too early, by that one
    windows = _Windows(failures, trace, acks, behaviour)
    in_order: dict[int, Vulnerability] = {}  # crash point -> its refused in-order state
    single: dict[tuple[int, DeviationKind, str], Vulnerability] = {}
    by_path: dict[tuple[int, str], Vulnerability] = {}  # (point, path) of single ones

    def count(vuln: Vulnerability, failure: Failure) -> Vulnerability:
        known = found.setdefault(vuln.key, vuln)
        known.states += 1
        known.members.append(failure)
        known.profiles = tuple(sorted(set(known.profiles) | set(failure.profiles)))
        if _smaller(failure, known.example):
            known.example = failure
            known.calls = vuln.calls
        return known

    for failure in sorted(failures, key=_rank):
        devs = failure.deviations
        after_fault = injected is not None and failure.crashed and failure.point >= injected
        if failure.fault and (not failure.crashed or after_fault):
            ops = (f"failed call {failure.fault}",)
            hint = "the program mishandled the failed call: see the message for what it did next"
            count(Vulnerability(VulnClass.ERROR_HANDLING, ops, hint, failure), failure)
            continue
        owner = in_order.get(failure.point) if failure.crashed and devs else None
        if owner is None and len(devs) == 1 and devs[0].kind is DeviationKind.DATA_TORN:
            owner = single.get((failure.point, DeviationKind.DATA_LOST, devs[0].path))
        if owner is None and len(devs) > 1:
            keys = [(failure.point, d.path) for d in devs]
            owner = next((by_path[k] for k in keys if k in by_path), None)
        if owner is None and failure.crashed and _invariant(failure) in run_broke:
            owner = found.get((VulnClass.BEHAVIOUR.value, (_NOTHING_LOST,)))
        if owner is not None:
            owner.states += 1
            owner.members.append(failure)
            owner.profiles = tuple(sorted(set(owner.profiles) | set(failure.profiles)))
            continue
        if failure.crashed and not devs and _invariant(failure) in _NO_LOSS:
            vuln = Vulnerability(VulnClass.BEHAVIOUR, (_NOTHING_LOST,), _RECOVERY, failure)
        elif failure.crashed and not devs and not behaviour:
            vuln = (
                windows.of.get(id(failure))
                or _split_writes(failure, trace)
                or _acknowledged_early(failure, trace)
            )
        else:
            vuln = windows.join(failure, classify(failure, trace, acks))
        vuln = count(vuln, failure)
        if failure.crashed and not devs:
            in_order[failure.point] = vuln
        if len(devs) == 1:
            single.setdefault((failure.point, devs[0].kind, devs[0].path), vuln)
            by_path.setdefault((failure.point, devs[0].path), vuln)
    vulns = _fold_created_paths(sorted(found.values(), key=_order))
    if sources:
        vulns = _by_source_line(vulns, sources)
    vulns = _fold_missing_syncs(vulns)
    # (where lines are known they tell one bug from two: ALICE's static vulnerabilities)
    return vulns if unsynced is None or sources else _fold_unsynced(vulns, unsynced)


def _by_source_line(vulns: list[Vulnerability], sources: Mapping[int, str]) -> list[Vulnerability]:
    """Each vulnerability's calls named by their lines, and those with the same class and
    the same lines counted as one (the same bug met on other files or at other times)."""
    out: dict[object, Vulnerability] = {}
    for vuln in vulns:
        vuln.sources = tuple(sources.get(op.index, "") for op in vuln.calls)
        key = vuln.static_key or ("dynamic", vuln.key)
        known = out.get(key)
        if known is None:
            out[key] = vuln
        else:
            known.absorb(vuln)
    return sorted(out.values(), key=_order)


_LOSSES = frozenset({VulnClass.DURABILITY, VulnClass.ORDERING, VulnClass.UNEXPLAINED})
_FILE_SYNCS = frozenset({OpKind.FSYNC.value, OpKind.FDATASYNC.value, OpKind.SYNC.value})
_ALL_SYNCS = _FILE_SYNCS | {OpKind.DIRFSYNC.value}


def _invariant(failure: Failure) -> str:
    return failure.message.split(":", 1)[0]


def _following(failure: Failure, trace: Sequence[Op]) -> Op | None:
    """The first call after the crash point that would have written something."""
    return next(
        (
            op
            for op in trace[failure.point + 1 :]
            if op.error is None and op.mutating and op.op in _DATA | _NAMESPACE
        ),
        None,
    )


def _acknowledged_early(failure: Failure, trace: Sequence[Op]) -> Vulnerability:
    """An in-order state refused while later calls would have written more: what the
    program acknowledged (or published) at the crash was the next write, not yet made."""
    following = _following(failure, trace)
    if following is None:
        return classify(failure, trace)
    kind = VulnClass.DURABILITY
    ops = (f"{_describe(following)} not durable",)
    if following.op in _DATA:
        hint = f"fsync `{normalise(following.path)}` before acknowledging it"
    else:
        hint = f"make {_describe(following)} durable (fsync its folder) before acknowledging it"
    return Vulnerability(kind, ops, hint, failure, calls=(following,))


def _split_writes(failure: Failure, trace: Sequence[Op]) -> Vulnerability | None:
    """An in-order state refused as damaged (4: nothing acknowledged is named, the
    restart found the file unreadable) between two writes of one file: the program's
    own writes, in order, leave it unreadable until the next one lands (a database's
    pages written in place, no journal). Several writes that must land together: the
    atomicity of the write that was to come, the same cause as that write torn."""
    if _invariant(failure) != Invariant.CRASH_NOT_FATAL.value:
        return None
    following = _following(failure, trace)
    if following is None or following.op not in _DATA:
        return None
    return _torn(Deviation(DeviationKind.DATA_TORN, following.path, ""), failure)


#: the acknowledged state an invariant's (or a checker's) message names
#: ("1-durability: acknowledged SYM000:1700000000000 lost: ...")
_ACKNOWLEDGED = re.compile(r"\backnowledged\s+(\S+)")


def _acknowledgement(
    failure: Failure, trace: Sequence[Op], acks: Callable[[str], bool] | None
) -> tuple[str, ...] | None:
    """Which acknowledgement a refused in-order state shows lost: the last write to an
    acknowledgement file (`acks`) at or before its crash point, else the acknowledged
    state its message names, with the invariant; None: neither is known."""
    if acks is not None:
        for op in reversed(trace[: failure.point + 1]):
            if op.error is None and op.op in _DATA and acks(op.path):
                return ("ack", str(op.index))
    named = _ACKNOWLEDGED.search(failure.message)
    if named is None:
        return None
    return ("named", _invariant(failure), named.group(1))


class _Windows:
    """One acknowledgement made before its data was durable, met at several crash points:
    each refused in-order state of its window names the next write after its own point
    (`_acknowledged_early`), so one defect shows as several writes. The in-order states
    refused for the same acknowledgement (`_acknowledgement`) are one vulnerability
    listing every operation not yet durable when the program acknowledged, with one fix:
    sync them before acknowledging (`of`: by `id` of each state; a window of one write
    is left as it is). A state that lost one of those operations and with it the same
    acknowledgement is that vulnerability too (`join`). None when the run shows
    `behaviour` (an in-order state is then not an early acknowledgement)."""

    def __init__(
        self,
        failures: Sequence[Failure],
        trace: Sequence[Op],
        acks: Callable[[str], bool] | None,
        behaviour: bool,
    ) -> None:
        self.trace, self.acks = trace, acks
        self.of: dict[int, Vulnerability] = {}
        self.by_ack: dict[tuple[str, ...], Vulnerability] = {}
        windows: dict[tuple[str, ...], list[Failure]] = {}
        for failure in () if behaviour else failures:
            if not failure.crashed or failure.deviations or failure.fault:
                continue
            if _invariant(failure) in _NO_LOSS:
                continue
            ack = _acknowledgement(failure, trace, acks)
            if ack is not None:
                windows.setdefault(ack, []).append(failure)
        for ack, window in windows.items():
            pending: dict[str, Op] = {}  # what the window's states lost, by description
            for failure in window:
                following = _following(failure, trace)
                if following is not None:
                    pending.setdefault(_describe(following), following)
            if len(pending) < 2:
                continue
            calls = tuple(sorted(pending.values(), key=lambda op: op.index))
            ops = tuple(f"{_describe(op)}{_NOT_DURABLE}" for op in calls)
            syncs = ", ".join(dict.fromkeys(_sync_of(op) for op in calls))
            hint = f"sync them before acknowledging: {syncs}"
            example = min(window, key=lambda f: f.point)
            vuln = Vulnerability(VulnClass.DURABILITY, ops, hint, example, calls=calls)
            self.by_ack[ack] = vuln
            self.of.update((id(failure), vuln) for failure in window)

    def join(self, failure: Failure, vuln: Vulnerability) -> Vulnerability:
        """The window's vulnerability when `vuln` is the durability of one of its
        operations and `failure` lost the same acknowledgement; else `vuln`."""
        if vuln.kind is not VulnClass.DURABILITY or len(vuln.ops) != 1 or not self.by_ack:
            return vuln
        ack = _acknowledgement(failure, self.trace, self.acks)
        window = self.by_ack.get(ack) if ack is not None else None
        return window if window is not None and vuln.ops[0] in window.ops else vuln


def _order(vuln: Vulnerability) -> tuple[int, str, tuple[str, ...]]:
    return (-vuln.states, vuln.kind.value, vuln.ops)


_CREATES = frozenset({OpKind.OPEN.value, OpKind.MKDIR.value})


def _fold_created_paths(vulns: list[Vulnerability]) -> list[Vulnerability]:
    """Folders created one inside the other and none synced are one cause (a `makedirs`
    without a sync per level): their entries-not-durable vulnerabilities fold into the
    deepest one."""
    created = {
        v.calls[0].path: v
        for v in vulns
        if v.kind is VulnClass.DURABILITY and len(v.calls) == 1 and v.calls[0].op in _CREATES
    }
    if len(created) < 2:
        return vulns
    folded: set[int] = set()
    for path, vuln in sorted(created.items(), key=lambda item: -len(item[0])):
        if id(vuln) in folded:
            continue
        chain = [p for p in created if p != path and path.startswith(p.rstrip("/") + "/")]
        if not chain:
            continue
        for ancestor in chain:
            other = created[ancestor]
            if id(other) not in folded:
                vuln.absorb(other)
                folded.add(id(other))
        top = min(chain, key=len)
        vuln.ops = (f"create {normalise(path)} and its folders from {normalise(top)} not durable",)
        vuln.hint = (
            f"fsync each new folder's parent, from `{normalise(_folder(top))}` down to "
            f"`{normalise(_folder(path))}`, after creating it"
        )
    return sorted((v for v in vulns if id(v) not in folded), key=_order)


_NOT_DURABLE = " not durable"
_PERSISTED = " persisted before it"


def _missing_sync(lost: str) -> str:
    """The sync an ordering pair's lost operation (as `_describe` names it) lacks: the
    file's own for its data, its folder's for an entry."""
    verb, _, path = lost.removesuffix(_NOT_DURABLE).partition(" ")
    if verb in (OpKind.WRITE.value, OpKind.FTRUNCATE.value):
        return f"`{path}`"
    return f"the folder `{_folder(path.split(' -> ')[-1])}`"


def _fold_missing_syncs(vulns: list[Vulnerability]) -> list[Vulnerability]:
    """Ordering vulnerabilities whose lost operations lack the same sync (the same file
    never synced, the same folder never synced after its entries changed) are one
    defect met with several later operations: one vulnerability listing every pair as
    its ops (their lines with them), one fix. Different files or folders stay apart."""
    by_sync: dict[str, list[Vulnerability]] = {}
    for vuln in vulns:
        if vuln.pairs and len(vuln.ops) == 2 * vuln.pairs:
            by_sync.setdefault(_missing_sync(vuln.ops[0]), []).append(vuln)
    folded: set[int] = set()
    for sync, group in by_sync.items():
        if len(group) < 2:
            continue
        pairs: set[tuple[str, str, str, str]] = set()
        for vuln in group:
            srcs = vuln.sources if len(vuln.sources) == len(vuln.ops) else ("",) * len(vuln.ops)
            for n in range(0, len(vuln.ops), 2):
                pairs.add((vuln.ops[n], vuln.ops[n + 1], srcs[n], srcs[n + 1]))
        head, rest = group[0], group[1:]
        for other in rest:
            head.absorb(other)
            folded.add(id(other))
        listed = sorted(pairs)
        head.ops = tuple(op for pair in listed for op in pair[:2])
        sources = tuple(src for pair in listed for src in pair[2:])
        head.sources = sources if any(sources) else ()
        if sync.startswith("the folder"):
            losts = dict.fromkeys(p[0].removesuffix(_NOT_DURABLE) for p in listed)
            head.hint = f"fsync {sync} after {', '.join(losts)}"
        else:
            laters = dict.fromkeys(p[1].removesuffix(_PERSISTED) for p in listed)
            head.hint = f"fsync {sync} before {', '.join(laters)}"
    return sorted((v for v in vulns if id(v) not in folded), key=_order)


def _fold_unsynced(vulns: list[Vulnerability], unsynced: str) -> list[Vulnerability]:
    """A program that never syncs a file has one cause, however many losses show it (a
    database's pages, its journal, their folder: SQLite with `synchronous=OFF`): its
    loss vulnerabilities are one, listing what each lost, with one fix."""
    losses = [v for v in vulns if v.kind in _LOSSES]
    if len(losses) < 2:
        return vulns
    head = losses[0]
    lost = [op for v in losses for op in v.ops if not op.endswith(_PERSISTED)]
    fixes = "; ".join(dict.fromkeys(v.hint for v in losses))
    for other in losses[1:]:
        head.absorb(other)
    head.kind = VulnClass.DURABILITY
    head.ops = (f"{unsynced} is ever synced", *dict.fromkeys(lost))
    head.sources = ()
    head.hint = f"the program never syncs a file (fsync, fdatasync, sync): {fixes}"

    kept = {id(v) for v in losses[1:]}
    return sorted((v for v in vulns if id(v) not in kept), key=_order)


def may_own(owner: Failure, failure: Failure, trace: Sequence[Op]) -> bool:
    """Whether `owner`, refused too, can change the vulnerability `group_failures` counts
    `failure` in (its rules: the in-order state of the same crash point; a torn file's
    lost bytes; a deviation of a state with several; an in-order state refused where
    nothing more was to be written, which makes every refused in-order state
    `behaviour`). What `failure` must be checked with to be grouped as in a whole run."""
    if owner.crashed and not owner.deviations and _following(owner, trace) is None:
        return True
    if owner.point != failure.point or not failure.deviations:
        return False
    if not owner.deviations:
        return True
    if len(owner.deviations) != 1:
        return False
    (dev,) = owner.deviations
    if len(failure.deviations) == 1:
        (mine,) = failure.deviations
        torn, lost = DeviationKind.DATA_TORN, DeviationKind.DATA_LOST
        return mine.kind is torn and dev.kind is lost and dev.path == mine.path
    return any(d.path == dev.path for d in failure.deviations)


def _smaller(a: Failure, b: Failure) -> bool:
    """The smaller example: fewer deviations, then the earlier crash."""
    return (len(a.deviations), a.point) < (len(b.deviations), b.point)


def merge_vulnerabilities(groups: Iterable[Vulnerability]) -> list[Vulnerability]:
    """Vulnerabilities of several runs as one list: the same key counted once."""
    found: dict[tuple[str, tuple[str, ...]], Vulnerability] = {}
    for vuln in groups:
        known = found.get(vuln.key)
        if known is None:
            found[vuln.key] = Vulnerability(
                vuln.kind,
                vuln.ops,
                vuln.hint,
                vuln.example,
                vuln.states,
                vuln.profiles,
                vuln.calls,
                vuln.sources,
            )
        else:
            known.absorb(vuln)
    return _fold_missing_syncs(sorted(found.values(), key=_order))


def headline(vulns: Sequence[Vulnerability], refused: str) -> str:
    """ "N vulnerabilities explain the <refused>:", above their lines (`refused`: what was
    refused, "1,234 refused crash states")."""
    what = "vulnerability explains" if len(vulns) == 1 else "vulnerabilities explain"
    return f"{len(vulns)} {what} the {refused}:"


def report_lines(vulns: Sequence[Vulnerability], cap: int | None = None) -> list[str]:
    """The vulnerabilities as a reader gets them: a line each (the first `cap`; None or
    0: all), the smallest example's message under it, and how many more there are."""
    shown = list(vulns) if not cap else list(vulns)[:cap]
    out: list[str] = []
    for number, vuln in enumerate(shown, start=1):
        out.append(f"V{number} {vuln.line()}")
        example = vuln.example
        where = f"crash after call #{example.point}" if example.crashed else "the run itself"
        cut = "; ".join(d.detail for d in example.deviations) or "nothing lost"
        out.append(f"   e.g. {where}, {cut}: {example.message}")
    if len(shown) < len(vulns):
        out.append(f"... and {len(vulns) - len(shown)} more (--max-findings 0 shows all)")
    return out
