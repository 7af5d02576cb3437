"""Where the harness's simulated machine keeps the state: one path for every driver.

The explorer, the scenario runner and both state machines boot the same fake disk
layout, so an op index or a fault rule's path pattern in an exported scenario means
the same thing whichever driver replays it.
"""

from __future__ import annotations

STATE_DIR = "/crashkit/state"
STATE_PATH = f"{STATE_DIR}/hysteresis.jsonl"
#: The fault-rule path pattern that matches the state file and nothing else.
STATE_FILE_GLOB = "*/hysteresis.jsonl"
