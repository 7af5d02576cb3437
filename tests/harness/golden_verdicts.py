"""The CI suite's verdicts, recomputed job by job: what `golden/ci_verdicts.json` pins.

For the reference backend and a broken variant the explorer catches on the ci
suite, every job of `SUITES["ci"]()` runs on a fresh `Explorer` (so the findings cap of
one job never depends on another, and the jobs can be split into chunks run anywhere)
with the CLI's default cap. Per job the numbers that define its verdict are kept:
workloads and fault runs, crash points, states checked and skipped, outcomes by
category, how often each invariant was judged and violated, and a digest of the kept
findings (each finding's JSON: violation, message, crash point, cut, op), sorted.

Any change to the explorer or the fault layer that is meant to be a pure speed-up must
leave this file byte for byte the same. Regenerate it (only on purpose, when a verdict
is meant to change, and say why in the commit) with::

    .venv/bin/python -m tests.harness.golden_verdicts
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from crashkit.harness.explore import Explorer
from crashkit.harness.explore.suite import SUITES, Job, run_jobs
from crashkit.harness.explore.summary import Summary
from crashkit.harness.kit import variants
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, Backend, load_backend

GOLDEN = Path(__file__).parent / "golden" / "ci_verdicts.json"
SUITE = "ci"
#: The CLI's default (`crashkit explore --max-findings`), per job here.
MAX_FINDINGS = 20
#: The backends pinned: the reference (every job clean), and a variant the ci suite
#: catches on nearly every job (durability and publish-implies-committed), so the pinned
#: findings exercise the whole judgement path too.
BACKENDS: tuple[str, ...] = ("reference", "no_fsync")
#: Jobs per chunk: each (backend, chunk) is one test item, for pytest-xdist to spread.
CHUNKS = 4


def backend_of(name: str) -> Backend:
    if name == "reference":
        return load_backend(DEFAULT_BACKEND)
    found = getattr(variants, name)
    assert isinstance(found, Backend)
    return found


def jobs() -> tuple[Job, ...]:
    return SUITES[SUITE]()


def job_key(job: Job) -> str:
    return f"{job.kind}:{job.workload.name}"


def chunk_of(index: int, chunk: int) -> bool:
    return index % CHUNKS == chunk


def verdict(summary: Summary) -> dict[str, object]:
    """The numbers that define a job's verdict (no timing)."""
    blobs = sorted(json.dumps(f.to_dict(), sort_keys=True) for f in summary.findings)
    digest = hashlib.sha256("\n".join(blobs).encode()).hexdigest()
    return {
        "workloads": summary.workloads,
        "sweep_runs": summary.sweep_runs,
        "crash_points": summary.crash_points,
        "states_checked": summary.states_checked,
        "states_skipped": summary.states_skipped,
        "outcomes": dict(sorted(summary.outcomes.items())),
        "checked_by_invariant": {k: v for k, v in summary.checked_by_invariant().items() if v},
        "violations_by_invariant": {
            k: v for k, v in summary.violations_by_invariant().items() if v
        },
        "coverage": {k: v for k, v in summary.coverage().items() if v},
        "findings": len(summary.findings),
        "findings_digest": digest,
    }


def job_verdict(backend: Backend, job: Job) -> dict[str, object]:
    return verdict(run_jobs(Explorer(backend, max_findings=MAX_FINDINGS), [job]))


def verdicts(backend_name: str, chunk: int | None = None) -> dict[str, dict[str, object]]:
    """Job key -> verdict, for every job (of one chunk, if given), in suite order."""
    backend = backend_of(backend_name)
    return {
        job_key(job): job_verdict(backend, job)
        for i, job in enumerate(jobs())
        if chunk is None or chunk_of(i, chunk)
    }


def load() -> dict[str, dict[str, dict[str, object]]]:
    data = json.loads(GOLDEN.read_text("utf-8"))
    assert data["suite"] == SUITE and data["max_findings"] == MAX_FINDINGS
    backends: dict[str, dict[str, dict[str, object]]] = data["backends"]
    return backends


def main(argv: Sequence[str]) -> int:
    names = list(argv) or list(BACKENDS)
    out: dict[str, dict[str, dict[str, object]]] = load() if GOLDEN.exists() else {}
    for name in names:
        started = time.perf_counter()
        out[name] = verdicts(name)
        print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "suite": SUITE,
        "max_findings": MAX_FINDINGS,
        "backends": {name: out[name] for name in BACKENDS if name in out},
    }
    GOLDEN.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
