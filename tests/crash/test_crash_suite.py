"""`make crash`: the CI crash-consistency suite on the reference backend, in shards.

Each shard is one pytest item so xdist spreads them over the cores; the
summary over all shards is printed at the end of the session (conftest.py).
Deselected from `make test` (marker `crash`); run with `make crash`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from crashkit.harness.explore import Explorer, minimal_findings
from crashkit.harness.explore.suite import SUITES, run_jobs

SHARDS = 8
SUITE = os.environ.get("CRASHKIT_SUITE", "ci")


@pytest.mark.crash
@pytest.mark.parametrize("index", range(SHARDS), ids=[f"shard{i}of{SHARDS}" for i in range(SHARDS)])
def test_suite_shard_has_no_violations(
    index: int, record_property: Callable[[str, object], None]
) -> None:
    summary = run_jobs(Explorer(shard=(index, SHARDS)), SUITES[SUITE]())
    data = summary.to_dict()
    data.pop("findings")
    record_property("crash_summary", json.dumps(data))
    assert summary.states_checked > 0
    assert not summary.findings, [
        (f.to_dict(), count) for f, count in minimal_findings(summary.findings)
    ]
