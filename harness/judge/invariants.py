"""The invariants a verdict can name, and the violation that names one.

The ids are stable (docs/contract.md §9 and its choices): they are how findings,
scenario files, summaries and the kit's table refer to a broken property, so an id is
never renamed or reused. Contract §9 gives eight (1 to 7 and R4); P and W5 are
protocol rules every backend must keep (docs/backends.md). The members are in the
order of their ids, so a table sorted by id and one in declaration order agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Invariant(StrEnum):
    """One checked property. The value is the id printed everywhere."""

    DURABILITY = "1-durability"
    NO_INVALID_RESTORED = "2-no-invalid-restored"
    PUBLISH_IMPLIES_COMMITTED = "3-publish-implies-committed"
    CRASH_NOT_FATAL = "4-crash-damage-not-fatal"
    CONTINUITY = "5-continuity"
    HALT = "6-halt"
    ENGINE = "7-engine-invariant"
    #: The backend keeps the protocol: its factory refuses with StartupRefused (any
    #: other exception is a crash), close() returns, nothing else raises unexpectedly.
    PROTOCOL = "P-backend-protocol"
    RESTORE_TABLE = "R4-restore-table"
    #: C5.9: a second writer on the same path is refused while the first holds it.
    SINGLE_WRITER = "W5-single-writer"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[Invariant, str] = {
    Invariant.DURABILITY: "every acknowledged record is restored after a crash "
    "(unless a later record of the symbol replaced it)",
    Invariant.NO_INVALID_RESTORED: "nothing is restored that a writer never appended whole",
    Invariant.PUBLISH_IMPLIES_COMMITTED: "nothing is published before it is committed, "
    "and what was published is still on disk after a crash",
    Invariant.CRASH_NOT_FATAL: "damage only a crash can cause never makes restore refuse",
    Invariant.CONTINUITY: "crash, restart and resume decide exactly as the uninterrupted run",
    Invariant.HALT: "after a persist failure nothing more is published, appended or scheduled",
    Invariant.ENGINE: "candidate is null exactly when progress is 0, and never the anchor",
    Invariant.RESTORE_TABLE: "restore starts or refuses, and selects, as the contract's "
    "restore table says",
    Invariant.SINGLE_WRITER: "a second writer on the same path is refused",
    Invariant.PROTOCOL: "the backend refuses cleanly and never raises where the protocol "
    "does not allow it",
}

#: Every id, in the order tables list them (= sorted by id).
INVARIANTS: tuple[Invariant, ...] = tuple(Invariant)
assert list(INVARIANTS) == sorted(INVARIANTS), "declare Invariant members in id order"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, with where it broke when known."""

    invariant: Invariant
    message: str
    symbol: str | None = None
    run_id: str | None = None
    tick: int | None = None  # engine timestamp of the tick; taken from run_id when not given
    line: int | None = None  # 1-based record line in the state file, when known

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Violation:
        """Inverse of `to_dict` (findings read back from a JSON summary)."""
        return cls(
            Invariant(data["invariant"]),
            str(data["message"]),
            data.get("symbol"),
            data.get("run_id"),
            data.get("tick"),
            data.get("line"),
        )

    def to_dict(self) -> dict[str, object]:
        tick = self.tick
        if tick is None and self.run_id is not None:
            tick = int(self.run_id.rsplit(":", 1)[1])
        return {
            "invariant": self.invariant.value,
            "message": self.message,
            "symbol": self.symbol,
            "run_id": self.run_id,
            "tick": tick,
            "line": self.line,
        }
