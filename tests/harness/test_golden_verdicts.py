"""The CI suite's verdicts are pinned: a speed-up of the explorer or the fault layer must
give, job by job, exactly the verdicts recorded in `golden/ci_verdicts.json` (see
`tests.harness.golden_verdicts` for what is pinned and how to regenerate it).

Slow (the whole ci suite on four backends): marked `crash`, so `make test` skips it;
split into (backend, chunk of jobs) items for pytest-xdist.
"""

from __future__ import annotations

import pytest

from crashkit.harness.explore.coverage import RULES
from tests.harness import golden_verdicts as golden


@pytest.mark.crash
@pytest.mark.parametrize("chunk", range(golden.CHUNKS))
@pytest.mark.parametrize("backend", golden.BACKENDS)
def test_ci_suite_verdicts_equal_the_golden_file(backend: str, chunk: int) -> None:
    expected = golden.load()[backend]
    got = golden.verdicts(backend, chunk)
    assert got, "every chunk holds jobs"
    for key, value in got.items():
        assert value == expected[key], f"{backend} {key}"


def test_the_golden_file_covers_every_job_of_the_suite() -> None:
    keys = {golden.job_key(job) for job in golden.jobs()}
    backends = golden.load()
    assert set(backends) == set(golden.BACKENDS)
    for name, by_job in backends.items():
        assert set(by_job) == keys, name
    # the variants are caught, the reference is clean: the comparison means something
    assert not any(v["findings"] for v in backends["reference"].values())
    for name in golden.BACKENDS[1:]:
        assert any(v["findings"] for v in backends[name].values()), name


def test_the_ci_suite_exercises_every_rule_the_explorer_can_reach() -> None:
    """The coverage table of the ci suite on the reference has no rule at 0 (pinned in
    the golden file, which the crash-marked test above keeps equal to what runs)."""
    total: dict[str, int] = dict.fromkeys(RULES, 0)
    for verdict in golden.load()["reference"].values():
        coverage = verdict["coverage"]
        assert isinstance(coverage, dict)
        for rule, count in coverage.items():
            total[rule] += count
    assert [rule for rule, count in total.items() if not count] == []
