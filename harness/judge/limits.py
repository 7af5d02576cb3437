"""What the v1 record format cannot guarantee under some file-system profiles.

A violation that a limit explains is reported as that limit, with its count, instead
of as a finding: it is not a bug of the backend under test (the reference has it too,
and so would any v1 line store), and it is not a pass either. The explorer's summary,
`crashkit explore --profile all` and docs/contract.md (D.40) name each one.

A limit is matched narrowly: by the profile's rules, the invariant, the crash state's
kind (its `cut`), and the reason the restart gave. Anything else stays a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from crashkit.faults import Profile, profile_named
from crashkit.harness.judge.invariants import Invariant, Violation


@dataclass(frozen=True, slots=True)
class Limit:
    """One thing v1 cannot hold, where, and what a later format would add."""

    id: str
    invariant: Invariant
    why: str
    v2: str

    def applies(self, profile: Profile) -> bool:
        """The profiles whose crash states can show it."""
        return profile.reorder and bool(profile.fills)

    def explains(self, profile: Profile, violation: Violation, cut: str | None) -> bool:
        return (
            self.applies(profile)
            and violation.invariant == self.invariant
            and cut is not None
            and "blocks kept (lost:" in cut
            and "no valid record" in violation.message
        )


#: Every limit of the v1 format, by id.
LIMITS: dict[str, Limit] = {
    limit.id: limit
    for limit in (
        Limit(
            "v1-lost-first-block",
            Invariant.CRASH_NOT_FATAL,
            "a crash in the first tick whose write spans blocks, on a file system that may "
            "persist a later block before an earlier one and expose the earlier one as "
            "zeros or stale bytes, leaves one line of such bytes glued to the tail of a "
            "record and no valid record; v1 cannot tell it from a corrupted file, so "
            "restore refuses (C4.7) where only a crash happened",
            "a per-record length and checksum (and the offset the writer last synced): "
            "restore could then tell a record a crash tore from one the media corrupted",
        ),
    )
}


def explained_by(profile: str | Profile, violation: Violation, cut: str | None) -> Limit | None:
    """The limit of the v1 format that explains `violation` on crash state `cut`, if any."""
    found = profile_named(profile)
    for limit in LIMITS.values():
        if limit.explains(found, violation, cut):
            return limit
    return None
