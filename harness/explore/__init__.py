"""Exploration: crash every recorded run at every point and judge every disk it may leave.

`Explorer` runs `Workload`s (plain seeded data) against one backend; `suite` names
the sets of jobs (`crashkit explore --suite`, `make crash`); `summary` holds what
was found (`Finding`, `Summary`) and how it is reported.
"""

from crashkit.harness.explore.explorer import Explorer
from crashkit.harness.explore.summary import Finding, Summary, minimal_findings, summary_table
from crashkit.harness.explore.workload import Workload, default_workloads

__all__ = [
    "Explorer",
    "Finding",
    "Summary",
    "Workload",
    "default_workloads",
    "minimal_findings",
    "summary_table",
]
