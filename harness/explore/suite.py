"""Named sets of exploration jobs: what `crashkit explore` and `make crash` run.

A job is (kind, workload): "crash" explores every crash point of the workload,
"sweep" fails each I/O call of its clean run in turn, "models" fails each fsync
under each fsync-failure model. Suites are plain data so shards agree on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from crashkit.faults import TornMode
from crashkit.harness.explore import Explorer, Summary, Workload, default_workloads
from crashkit.harness.explore.catalogue import (
    BLANK_AND_TORN,
    COMPACTION,
    EDGES,
    SMALL,
    coverage_workloads,
)
from crashkit.harness.explore.explorer import STOPPED, SWEEP_ERRNOS
from crashkit.orchestrator.store.protocol import Backend

KINDS = ("crash", "sweep", "models")


@dataclass(frozen=True, slots=True)
class Job:
    kind: str
    workload: Workload
    #: the sweep's errnos (None: every one of `SWEEP_ERRNOS`)
    errnos: tuple[str, ...] | None = None
    #: its cuts at every byte only for a backend that keeps contract-v1 lines (they test
    #: line parsing at each offset); another gets the default cuts (a page file torn at
    #: byte k or k+1 is one case to it, and every byte of its pages costs minutes)
    lines_only: bool = False


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` with 0 <= i < n (shards are numbered from 0); ValueError says what is wrong."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"{text!r} is not i/n with 0 <= i < n (for example 0/2)")
    return i, n


def single(workload: Workload, *, sweep: bool = False, models: bool = False) -> tuple[Job, ...]:
    """One workload: its crash exploration, plus the sweep and fsync models if asked."""
    jobs = [Job("crash", workload)]
    if sweep:
        jobs.append(Job("sweep", workload))
    if models:
        jobs.append(Job("models", workload))
    return tuple(jobs)


#: The seeded-market workloads of the `ci` suite (x scale): the plain market at each
#: window. More of them buy no new kind of bug (the crafted workloads do), so few.
CI_MARKET_SEEDS = 12


def ci_suite(scale: int = 1) -> tuple[Job, ...]:
    """The CI crash-consistency suite (`make crash`), chosen for coverage per second:

    - the crafted small workloads every broken variant is caught on (`catalogue.SMALL`:
      seeded files, a directory at the state path, faults at start and mid-run,
      duplicates, late snapshots, a second writer);
    - market-sized crafted ones (`catalogue.coverage_workloads`): duplicates and late
      snapshots at each window, a window change between restarts, each seeded file;
    - `CI_MARKET_SEEDS` x scale seeds of the plain market (3 symbols x 30 ticks,
      windows 1-3) and 2 x scale small ones cut at every byte;
    - the I/O-error sweep (every faultable call x errno, and a short write of each
      write) on a plain and a seeded workload, each ending in a crash and a clean
      restart; the fsync-failure models on two more.
    """
    jobs = [Job("crash", w) for w in SMALL]
    jobs += [Job("crash", w) for w in COMPACTION]
    jobs += [Job("crash", w) for w in coverage_workloads()]
    jobs += [
        Job("crash", w) for w in default_workloads(CI_MARKET_SEEDS * scale, symbols=3, ticks_=30)
    ]
    jobs += [
        Job(
            "crash",
            Workload(2, 6, seed=s, window_updates=2, torn=TornMode.ALL, name=f"everybyte{s}"),
        )
        for s in range(2 * scale)
    ]
    jobs += [  # cut at every byte, with a tick delivered twice and a late snapshot
        Job(
            "crash",
            Workload(
                2,
                6,
                seed=10 + s,
                window_updates=1 + s,
                torn=TornMode.ALL,
                duplicates=(2,),
                late=(4,),
                name=f"everybyte-edited{s}",
            ),
        )
        for s in range(2 * scale)
    ]
    jobs += [
        Job("sweep", Workload(3, 12, seed=1, window_updates=3, name="sweep1")),
        Job(
            "sweep",
            Workload(2, 8, seed=2, window_updates=1, initial_state=BLANK_AND_TORN, name="sweep2"),
        ),
    ]
    jobs += [
        Job("models", Workload(3, 12, seed=s, window_updates=w, name=f"models{s}"))
        for s, w in ((3, 3), (4, 2))
    ]
    return tuple(jobs)


#: The quick sweep's errnos: an I/O error and a full disk, the two answers a backend can
#: tell apart (SQLite maps them to SQLITE_IOERR and SQLITE_FULL); EDQUOT, EACCES and EROFS
#: take the same paths, and the ci suite sweeps them all.
QUICK_ERRNOS = ("EIO", "ENOSPC")


def quick_suite() -> tuple[Job, ...]:
    """Under a minute per backend on 2 cores: the small crafted workloads (one per kind of
    bug the broken variants plant, `catalogue.SMALL` and `catalogue.EDGES`), the three that
    compact, four market workloads (windows 1-3), one cut at every byte (line files), the
    I/O-error sweep (EIO, ENOSPC) and the fsync-failure models on one small workload each."""
    jobs = [Job("crash", w) for w in SMALL]
    jobs += [Job("crash", w) for w in EDGES]
    jobs += [Job("crash", w) for w in COMPACTION]
    jobs += [Job("crash", w) for w in default_workloads(4, symbols=3, ticks_=12)]
    everybyte = Workload(2, 4, seed=0, window_updates=2, torn=TornMode.ALL, name="everybyte0")
    jobs.append(Job("crash", everybyte, lines_only=True))
    jobs.append(Job("sweep", Workload(2, 4, seed=1, window_updates=3, name="sweep1"), QUICK_ERRNOS))
    jobs.append(Job("models", Workload(2, 4, seed=3, window_updates=2, name="models3")))
    return tuple(jobs)


SUITES: dict[str, Callable[[], tuple[Job, ...]]] = {
    "quick": quick_suite,
    "ci": ci_suite,
    "nightly": lambda: ci_suite(scale=10),
}


def applicable_jobs(jobs: Sequence[Job], backend: Backend) -> tuple[list[Job], list[Job]]:
    """(the jobs the backend can be explored on, the others): a workload that seeds a
    state file of contract-v1 lines needs a backend that declares `line_format`."""
    line_format = backend.capabilities.line_format
    runnable = [j for j in jobs if line_format or j.workload.initial_state is None]
    skipped = [j for j in jobs if j not in runnable]
    if not line_format:
        runnable = [
            replace(j, workload=replace(j.workload, torn=TornMode.DEFAULT)) if j.lines_only else j
            for j in runnable
        ]
    return runnable, skipped


def run_jobs(
    explorer: Explorer,
    jobs: Sequence[Job],
    on_job: Callable[[Job], None] | None = None,
) -> Summary:
    """Run the jobs in order on one explorer (its shard applies across all of them)."""
    total = Summary()
    index, count = explorer.shard
    crash_jobs = sum(job.kind == "crash" for job in jobs)
    whole_workloads = crash_jobs >= count  # enough workloads: shard by workload, not by state
    crash_seen = 0
    for job in jobs:
        if explorer.interrupted:  # a signal: the jobs left are not run
            total.stopped = STOPPED
            break
        if on_job is not None:
            on_job(job)
        if job.kind == "crash" and whole_workloads:
            crash_seen += 1
            if (crash_seen - 1) % count != index:
                continue
            explorer.shard = (0, 1)
            try:
                result = explorer.run(job.workload)
            finally:
                explorer.shard = (index, count)
        elif job.kind == "crash":
            result = explorer.run(job.workload)
        elif job.kind == "sweep":
            result = explorer.sweep(job.workload, job.errnos or SWEEP_ERRNOS)
        elif job.kind == "models":
            result = explorer.fsync_models(job.workload)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}; expected one of {KINDS}")
        total.merge(result)
    return total
