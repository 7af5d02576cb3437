"""Scenario files: named, human-readable regression runs of the crash harness.

A scenario (YAML, see docs/scenarios.md) sets up a disk and an input, drives one
simulated machine through steps (run ticks, inject faults, cut the power,
restart, corrupt a line, replay) and states what must be observed. The runner
checks the expectations and every oracle of contract §9 on the way.
"""

from crashkit.harness.scenarios.loader import LoadedScenario, ScenarioError, load_scenario
from crashkit.harness.scenarios.results import Check, Observed, ScenarioResult
from crashkit.harness.scenarios.runner import run_loaded, run_scenario

__all__ = [
    "Check",
    "LoadedScenario",
    "Observed",
    "ScenarioError",
    "ScenarioResult",
    "load_scenario",
    "run_loaded",
    "run_scenario",
]
