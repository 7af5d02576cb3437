"""The judging core: the invariants of contract §9, the oracles that check them, the
harness's own reading of a state file, and the observations they judge.

Every driver (the explorer, the scenario runner, both state machines, the kit) judges
through this room, so a verdict means the same wherever it was reached.
"""
