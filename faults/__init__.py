"""`faults`: a crash-simulating, fault-injecting file system on top of pyfakefs.

Generic: it knows nothing of the engine, the orchestrator or any storage format.
Code under test does ordinary Python I/O (`os`, `open`, `pathlib`); `CrashFS` tracks
what is durable, enumerates the disks a power cut may leave after any op, and injects
errors described by plain-data fault plans.
"""

from crashkit.faults.crash import TORN_MODES, CrashEnumeration, CrashState, cut_offsets
from crashkit.faults.fs import CrashFS
from crashkit.faults.image import DiskImage
from crashkit.faults.model import Snapshot
from crashkit.faults.plan import ERRNO_NAMES, OPS, FaultPlan, FaultRule, FsyncModel
from crashkit.faults.trace import MUTATING_OPS, Op

__all__ = [
    "ERRNO_NAMES",
    "MUTATING_OPS",
    "OPS",
    "TORN_MODES",
    "CrashEnumeration",
    "CrashFS",
    "CrashState",
    "DiskImage",
    "FaultPlan",
    "FaultRule",
    "FsyncModel",
    "Op",
    "Snapshot",
    "cut_offsets",
]
