"""The op trace: one frozen record per intercepted call, so a crash can be placed after any op.

Fault model: a power cut may come after any op; only after a mutating one (a crash
point, see `crashkit.faults.ops`) can it leave a disk that an earlier point cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from crashkit.faults.ops import MUTATING

#: `crashkit.faults.ops.MUTATING` as plain strings (the name harness code imports).
MUTATING_OPS: frozenset[str] = frozenset(op.value for op in MUTATING)


@dataclass(frozen=True, slots=True)
class Op:
    """One intercepted call.

    `index` is its position in the trace (a crash "after op k" sees the effects of ops
    0..k). `op` is an `OpKind` value, kept as a plain str. `path` is absolute (for rename/replace: the source; `detail` names the
    destination). `error` is the errno name the call raised, or None. `injected` says a
    fault rule caused the error (or the short write). `mutating` marks crash points.
    """

    index: int
    op: str
    path: str
    detail: str = ""
    error: str | None = None
    mutating: bool = False
    injected: bool = False

    def __str__(self) -> str:
        text = f"#{self.index} {self.op} {self.path}"
        if self.detail:
            text += f" ({self.detail})"
        if self.error:
            text += f" -> {self.error}{' [injected]' if self.injected else ''}"
        elif self.injected:
            text += " [injected]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "path": self.path,
            "detail": self.detail,
            "error": self.error,
            "mutating": self.mutating,
            "injected": self.injected,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Op:
        """Inverse of `to_dict` (a trace saved with a scenario or a failure report)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown op keys {unknown}; allowed: {sorted(known)}")
        return cls(**data)
