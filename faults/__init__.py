"""`faults`: a crash-simulating, fault-injecting file system on top of pyfakefs.

Generic: it knows nothing of the engine, the orchestrator or any storage format.
Code under test does ordinary Python I/O (`os`, `open`, `pathlib`); `CrashFS` tracks
what is durable, enumerates the disks a power cut may leave after any op, and injects
errors described by plain-data fault plans; `EscapeWatch` notices calls that bypass it
and reach the real disk (C-level I/O, which it cannot see).
"""

from crashkit.faults.crash import (
    TORN_MODES,
    CrashEnumeration,
    CrashState,
    TornMode,
    cut_offsets,
)
from crashkit.faults.escape import Escape, EscapeWatch
from crashkit.faults.fs import CrashFS
from crashkit.faults.image import DiskImage
from crashkit.faults.model import Snapshot
from crashkit.faults.ops import (
    FAULTABLE,
    IO_ERROR_SWEEP,
    MAY_MUTATE,
    MUTATING,
    NON_MUTATING,
    SYNC,
    OpKind,
)
from crashkit.faults.plan import ERRNO_NAMES, OPS, FaultPlan, FaultRule, FsyncModel
from crashkit.faults.profiles import PREFIX, PROFILE_NAMES, PROFILES, Fill, Profile, profile_named
from crashkit.faults.trace import MUTATING_OPS, Op

__all__ = [
    "ERRNO_NAMES",
    "FAULTABLE",
    "IO_ERROR_SWEEP",
    "MAY_MUTATE",
    "MUTATING",
    "MUTATING_OPS",
    "NON_MUTATING",
    "OPS",
    "PREFIX",
    "PROFILES",
    "PROFILE_NAMES",
    "SYNC",
    "TORN_MODES",
    "CrashEnumeration",
    "CrashFS",
    "CrashState",
    "DiskImage",
    "Escape",
    "EscapeWatch",
    "FaultPlan",
    "FaultRule",
    "Fill",
    "FsyncModel",
    "Op",
    "OpKind",
    "Profile",
    "Snapshot",
    "TornMode",
    "cut_offsets",
    "profile_named",
]
