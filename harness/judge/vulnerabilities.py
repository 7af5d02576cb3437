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
  when it went on (or said "done").

A state with several deviations (the exhaustive exploration) is explained by a failing
state whose deviations are a subset of its own, when there is one; else it is a group
of its own (`unexplained`), never dropped. Paths that differ only by a counter, a hash
or a random temp suffix are one name (`MANIFEST-*`, `tmp*`), so that the same bug met
again with another file is one vulnerability.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from crashkit.faults.crash import Deviation, DeviationKind
from crashkit.faults.ops import OpKind
from crashkit.faults.trace import Op


class VulnClass(StrEnum):
    """What the program assumed of the file system."""

    ATOMICITY = "atomicity"
    ORDERING = "ordering"
    DURABILITY = "durability"
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True, slots=True)
class Failure:
    """One refused crash state: where the crash came, how the disk deviated from the
    in-order state, and what the checker (or the invariant) said."""

    point: int
    deviations: tuple[Deviation, ...]
    message: str
    profiles: tuple[str, ...] = ()


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

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return (self.kind.value, self.ops)

    def line(self) -> str:
        """One line a reader acts on: class, operations, states, the fix."""
        where = ", ".join(self.profiles)
        needs = f" [{where}]" if where else ""
        return (
            f"{self.kind.value}: {' / '.join(self.ops)} ({self.states} states){needs}: {self.hint}"
        )


_HEX = re.compile(r"[0-9a-f]{6,}")
_DIGITS = re.compile(r"\d+")
_TEMP = re.compile(r"((?:tmp|temp)[._-]?)[A-Za-z0-9_]{4,}", re.IGNORECASE)


def normalise(path: str) -> str:
    """A path with its counters, hashes and random temp suffixes as `*`."""
    path = _TEMP.sub(r"\1*", path)
    path = _HEX.sub("*", path)
    return _DIGITS.sub("*", path)


_NAMESPACE = frozenset(
    {OpKind.OPEN.value, OpKind.RENAME.value, OpKind.REPLACE.value, OpKind.UNLINK.value}
    | {OpKind.MKDIR.value, OpKind.RMDIR.value, "link", "symlink"}
)
_DATA = frozenset({OpKind.WRITE.value, OpKind.FTRUNCATE.value})
_SYNCS = frozenset({OpKind.FSYNC.value, OpKind.FDATASYNC.value})


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
    """The first write to the file (under any of its names) since its last sync."""
    first: Op | None = None
    for op in reversed(trace[: point + 1]):
        if op.error is not None or op.path not in names:
            continue
        if op.op in _SYNCS:
            break
        if op.op in _DATA:
            first = op
    return first


def _entry_op(trace: Sequence[Op], path: str, point: int) -> Op | None:
    """The last directory operation that named `path` up to `point`."""
    for op in reversed(trace[: point + 1]):
        named = op.op in _NAMESPACE and path in (op.path, _target(op))
        if op.error is None and named and (op.op != OpKind.OPEN.value or op.mutating):
            return op
    return None


def _later(trace: Sequence[Op], after: Op, point: int, names: set[str]) -> Op | None:
    """The first operation after `after`, up to the crash, that persisted in the state
    and concerns something else: a directory operation, or data of another file."""
    for op in trace[after.index + 1 : point + 1]:
        if op.error is not None or not op.mutating or op.op in _SYNCS:
            continue
        if op.op in _NAMESPACE and (op.op != OpKind.OPEN.value or op.path not in names):
            return op
        if op.op in _DATA and op.path not in names:
            return op
    return None


def _describe(op: Op) -> str:
    if op.op in (OpKind.RENAME.value, OpKind.REPLACE.value):
        return f"rename {normalise(op.path)} -> {normalise(_target(op))}"
    if op.op == OpKind.OPEN.value:
        return f"create {normalise(op.path)}"
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
            "checksum per record (or write a new file, fsync it, and rename it)"
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
    if lost.op in (OpKind.RENAME.value, OpKind.REPLACE.value):
        folder = normalise(_folder(_target(lost)))
    else:
        folder = normalise(_folder(lost.path))
    return f"fsync the folder `{folder}` after {_describe(lost)}"


_NONE = Deviation(DeviationKind.DATA_LOST, "", "")


def classify(failure: Failure, trace: Sequence[Op]) -> Vulnerability:
    """The vulnerability one refused state shows, from its (single) deviation."""
    point = failure.point
    if not failure.deviations:
        crash = trace[point] if 0 <= point < len(trace) else None
        ops: tuple[str, ...] = (_describe(crash),) if crash is not None else ()
        return Vulnerability(
            VulnClass.DURABILITY, ops, _hint(VulnClass.DURABILITY, None, None, _NONE), failure
        )
    if len(failure.deviations) > 1:
        ops = tuple(sorted({f"{d.kind.value} {normalise(d.path)}" for d in failure.deviations}))
        hint = "several operations lost together; no single one explains it"
        return Vulnerability(VulnClass.UNEXPLAINED, ops, hint, failure)
    dev = failure.deviations[0]
    if dev.kind is DeviationKind.RENAME_SPLIT:
        ops = (f"rename {normalise(dev.path)} half done",)
        hint = _hint(VulnClass.ATOMICITY, None, None, dev)
        return Vulnerability(VulnClass.ATOMICITY, ops, hint, failure)
    names = _names_of(trace, dev.path, point)
    lost: Op | None
    if dev.kind in (DeviationKind.DATA_LOST, DeviationKind.DATA_TORN):
        lost = _lost_write(trace, names, point)
    else:
        lost = _entry_op(trace, dev.path, point)
    torn = dev.kind is DeviationKind.DATA_TORN
    if torn and (lost is None or _later(trace, lost, point, names) is None):
        # torn with nothing after it depending on it: the write itself is not atomic
        ops = (f"write {normalise(dev.path)} half done",)
        hint = _hint(VulnClass.ATOMICITY, None, None, dev)
        return Vulnerability(VulnClass.ATOMICITY, ops, hint, failure)
    if lost is None:
        ops = (f"{dev.kind.value} {normalise(dev.path)}",)
        return Vulnerability(
            VulnClass.DURABILITY, ops, _hint(VulnClass.DURABILITY, None, None, dev), failure
        )
    later = None if dev.kind is DeviationKind.JOURNAL_CUT else _later(trace, lost, point, names)
    if later is None:
        ops = (f"{_describe(lost)} not durable",)
        kind = VulnClass.DURABILITY
    else:  # lost or torn: the same cause, the same fix
        ops = (f"{_describe(lost)} not durable", f"{_describe(later)} persisted before it")
        kind = VulnClass.ORDERING
    calls = tuple(op for op in (lost, later) if op is not None)
    return Vulnerability(kind, ops, _hint(kind, lost, later, dev), failure, calls=calls)


def group(failures: Iterable[Failure], trace: Sequence[Op]) -> list[Vulnerability]:
    """The refused states as vulnerabilities, most states first (ties by name). A state
    with several deviations goes to the vulnerability of a failing state whose
    deviations are a subset of its own; else it stands alone as `unexplained`."""
    failures = list(failures)
    singles: dict[Deviation, Vulnerability] = {}
    found: dict[tuple[str, tuple[str, ...]], Vulnerability] = {}

    def count(vuln: Vulnerability, failure: Failure) -> None:
        known = found.setdefault(vuln.key, vuln)
        known.states += 1
        known.profiles = tuple(sorted(set(known.profiles) | set(failure.profiles)))
        if _smaller(failure, known.example):
            known.example = failure

    for failure in failures:
        if len(failure.deviations) <= 1:
            vuln = classify(failure, trace)
            count(vuln, failure)
            if failure.deviations:
                singles.setdefault(failure.deviations[0], found[vuln.key])
    for failure in failures:
        if len(failure.deviations) > 1:
            owner = next((singles[d] for d in failure.deviations if d in singles), None)
            if owner is not None:
                owner.states += 1
                owner.profiles = tuple(sorted(set(owner.profiles) | set(failure.profiles)))
            else:
                count(classify(failure, trace), failure)
    return sorted(found.values(), key=lambda v: (-v.states, v.kind.value, v.ops))


def _smaller(a: Failure, b: Failure) -> bool:
    """The smaller example: fewer deviations, then the earlier crash."""
    return (len(a.deviations), a.point) < (len(b.deviations), b.point)
