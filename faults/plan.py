"""Fault plans: which intercepted call fails, how, and what a failed fsync leaves behind.

Fault model: a rule makes the nth matching call fail with an errno before it has any
effect, except close (it still closes: buffered bytes flushed, descriptor released)
and fsync (the `FsyncModel` acts on the dirty bytes); a short write writes a prefix and
says so. `sync` cannot fail. Only the calls `crashkit.faults.intercept` records can be
failed.

Plans are plain frozen data so that scenario files (YAML/JSON) can carry them and a
failing run can be replayed exactly: `to_dict()`/`from_dict()` round-trip through
JSON- and YAML-safe dicts.
"""

from __future__ import annotations

import errno as errno_module
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from crashkit.faults.ops import FAULTABLE_NAMES, OpKind

#: The op names a rule may target, in `OpKind` order (`crashkit.faults.ops.FAULTABLE`).
OPS: tuple[str, ...] = FAULTABLE_NAMES

#: errno names a rule may use: every name the platform's `errno` module knows
#: (aliases such as EWOULDBLOCK for EAGAIN included).
ERRNO_NAMES: tuple[str, ...] = tuple(
    sorted(
        name
        for name in dir(errno_module)
        if name.startswith("E") and isinstance(getattr(errno_module, name), int)
    )
)


class FsyncModel(StrEnum):
    """What a *failed* fsync/fdatasync does to the bytes it was asked to persist.

    The "dirty range" of a file at the failed call is everything that differs from its
    durable content: for an append, the bytes after the durable length.

    - ``KEEP_DIRTY``: nothing happens to them. They stay dirty in the page cache: a later
      crash may persist any prefix of them, and a later successful fsync makes them
      durable. (The optimistic model: a retry "works".)
    - ``MARK_CLEAN``: the pages are marked clean without having been written (Linux
      ext4/XFS after a writeback error). The range is never written back: in every crash
      image, even after a later fsync *succeeds*, it holds what the disk held at the
      failure (the old durable bytes, zeros past the old end of file). Reads before the
      crash still see the written bytes. A backend that retries fsync and carries on
      silently loses data under this model.
    - ``DROP``: the dirty pages are thrown away at once: from the failure on, reads see
      what the disk held (zeros past the old end of file, the file keeps its size), and
      the lost bytes can never persist.

    A failed directory fsync leaves the directory's entries as they were (un-synced,
    may or may not persist later) under every model.
    """

    KEEP_DIRTY = "keep-dirty"
    MARK_CLEAN = "mark-clean"
    DROP = "drop"


def errno_code(name: str) -> int:
    """The numeric errno for a name such as ``"EIO"`` (ValueError if unknown)."""
    code = getattr(errno_module, name, None) if name in ERRNO_NAMES else None
    if not isinstance(code, int):
        raise ValueError(f"unknown errno {name!r}; allowed: {', '.join(ERRNO_NAMES)}")
    return code


def _check_type(name: str, value: object, kind: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and kind is int:
        raise ValueError(f"{name} must be an int, not a bool")
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be {getattr(kind, '__name__', kind)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """ "The `nth` call of `op` on a path matching `path` fails with `errno`".

    `path` is an fnmatch pattern on the absolute path (for rename/replace the rule
    matches if either the source or the destination matches). `nth` is 1-based and
    counts only the calls this rule matches. `persistent` fails the nth and every later
    matching call. `short_write` (write only) makes the call write just the first k
    bytes and return k instead of raising. A failing call has no effect, except close
    (the descriptor is released anyway) and fsync (see `FsyncModel`).
    """

    op: str
    path: str = "*"
    nth: int = 1
    errno: str = "EIO"
    persistent: bool = False
    short_write: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.op, OpKind):  # kept as the plain name: to_dict() stays YAML-safe
            object.__setattr__(self, "op", self.op.value)
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; allowed: {', '.join(OPS)}")
        _check_type("path", self.path, str)
        _check_type("nth", self.nth, int)
        if self.nth < 1:
            raise ValueError(f"nth must be >= 1 (1-based), got {self.nth}")
        _check_type("errno", self.errno, str)
        errno_code(self.errno)
        _check_type("persistent", self.persistent, bool)
        if self.short_write is not None:
            if self.op != OpKind.WRITE:
                raise ValueError(f"short_write only applies to op 'write', not {self.op!r}")
            _check_type("short_write", self.short_write, int)
            if self.short_write < 0:
                raise ValueError(f"short_write must be >= 0, got {self.short_write}")

    @property
    def code(self) -> int:
        return errno_code(self.errno)

    def matches(self, op: str, paths: Sequence[str]) -> bool:
        """Whether a call of `op` on any of `paths` counts towards this rule."""
        return op == self.op and any(fnmatch.fnmatchcase(p, self.path) for p in paths)

    def fires(self, count: int) -> bool:
        """Whether the `count`-th matching call (1-based) fails."""
        return count == self.nth or (self.persistent and count > self.nth)

    def describe(self) -> str:
        what = (
            f"short write of {self.short_write} bytes"
            if self.short_write is not None
            else (self.errno)
        )
        times = "and every later one" if self.persistent else "once"
        return f"{self.op} #{self.nth} on {self.path}: {what} ({times})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "path": self.path,
            "nth": self.nth,
            "errno": self.errno,
            "persistent": self.persistent,
            "short_write": self.short_write,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule must be a mapping, got {data!r}")
        known = {"op", "path", "nth", "errno", "persistent", "short_write"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault rule keys {unknown}; allowed: {sorted(known)}")
        if "op" not in data:
            raise ValueError("a fault rule needs an 'op'")
        return cls(
            op=data["op"],
            path=data.get("path", "*"),
            nth=data.get("nth", 1),
            errno=data.get("errno", "EIO"),
            persistent=data.get("persistent", False),
            short_write=data.get("short_write"),
        )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """An ordered set of rules; when several fire on one call, the first one wins."""

    rules: tuple[FaultRule, ...] = field(default=())

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        for rule in rules:
            if not isinstance(rule, FaultRule):
                raise ValueError(f"FaultPlan rules must be FaultRule, got {rule!r}")
        object.__setattr__(self, "rules", rules)

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [rule.to_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault plan must be a mapping, got {data!r}")
        unknown = sorted(set(data) - {"rules"})
        if unknown:
            raise ValueError(f"unknown fault plan keys {unknown}; allowed: ['rules']")
        rules = data.get("rules", [])
        if not isinstance(rules, Sequence) or isinstance(rules, str | bytes):
            raise ValueError(f"'rules' must be a list, got {rules!r}")
        return cls(tuple(FaultRule.from_dict(rule) for rule in rules))


class FaultInjector:
    """Counts matching calls per rule and says which rule (if any) fails this call.

    Mutable on purpose (it is the run's state, not data); reset on every `CrashFS.start`.
    """

    __slots__ = ("_counts", "plan")

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._counts = [0] * len(plan.rules)

    def check(self, op: str, *paths: str) -> FaultRule | None:
        """Count this call against every matching rule; return the first that fires."""
        fired: FaultRule | None = None
        for i, rule in enumerate(self.plan.rules):
            if rule.matches(op, paths):
                self._counts[i] += 1
                if fired is None and rule.fires(self._counts[i]):
                    fired = rule
        return fired
