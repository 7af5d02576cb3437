"""Where the harness's simulated machine keeps the state: one path for every driver.

The explorer, the scenario runner and both state machines boot the same fake disk
layout, so an op index or a fault rule's path pattern in an exported scenario means
the same thing whichever driver replays it.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable

from crashkit.orchestrator.store.protocol import Capabilities

STATE_DIR = "/crashkit/state"
STATE_PATH = f"{STATE_DIR}/hysteresis.jsonl"
#: Where the real-process mode keeps a run's events and its input on the mount: beside
#: the state, recorded, but downstream's and the input's (never crash-tested).
MOUNT_EVENTS = "/events/events.jsonl"
MOUNT_INPUT = "/input/market.jsonl"
#: The fault-rule path pattern that matches the state file and nothing else.
STATE_FILE_GLOB = "*/hysteresis.jsonl"


def state_files_glob(capabilities: Capabilities) -> str:
    """A fault-rule path pattern for the files a backend keeps: the state file alone when
    that is all it keeps, else every file of the state folder."""
    if capabilities.file_patterns(STATE_PATH) == (STATE_PATH,):
        return STATE_FILE_GLOB
    return f"{STATE_DIR}/*"


def undeclared_files(capabilities: Capabilities, created: Iterable[str]) -> tuple[str, ...]:
    """The created paths that match none of the backend's declared files or temp files."""
    declared = (*capabilities.file_patterns(STATE_PATH), *capabilities.temp_paths(STATE_PATH))
    return tuple(
        sorted({p for p in created if not any(fnmatch.fnmatchcase(p, d) for d in declared)})
    )


def leftover_temp_files(
    capabilities: Capabilities, state_path: str = STATE_PATH
) -> tuple[str, ...]:
    """The backend's declared temp files (`Capabilities.temp_files`) now on the disk."""
    found: list[str] = []
    for pattern in capabilities.temp_paths(state_path):
        if glob.has_magic(pattern):
            found += sorted(glob.glob(pattern))
        elif os.path.exists(pattern):
            found.append(pattern)
    return tuple(found)
