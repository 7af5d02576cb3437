"""Replays (contract §7): recompute decisions without touching the live state file.

Both kinds run the ordinary runtime on an in-memory backend, so a replay takes
exactly the live decisions: the same guard, duplicate skips and resume point.
"""

from __future__ import annotations

from collections.abc import Iterable

from crashkit.orchestrator.errors import RestoreFatal
from crashkit.orchestrator.events import EventSink
from crashkit.orchestrator.runtime import (
    CommitClock,
    HysteresisRuntime,
    RunStats,
    seeded_factory,
    wall_commit_clock,
)
from crashkit.orchestrator.store.jsonl import restore_report
from crashkit.orchestrator.store.memory import memory_store
from crashkit.orchestrator.store.report import store_from_report
from crashkit.regime_engine.contracts import HysteresisConfig, RegimeInputSnapshot


def full_replay(
    config: HysteresisConfig,
    snapshots: Iterable[RegimeInputSnapshot],
    sink: EventSink,
    *,
    clock: CommitClock = wall_commit_clock,
    stats: RunStats | None = None,
) -> RunStats:
    """From an empty store, every input in order; nothing is persisted. `stats`, if given,
    is filled as the replay goes (so a caller sees how far one that raised got)."""
    runtime = HysteresisRuntime(
        config=config,
        state_path="<replay>",
        sink=sink,
        backend_factory=seeded_factory(memory_store()),
        clock=clock,
        stats=stats,
    )
    runtime.start()
    return runtime.run(snapshots)


def resume_replay(
    config: HysteresisConfig,
    snapshots: Iterable[RegimeInputSnapshot],
    sink: EventSink,
    *,
    state_path: str,
    at_ms: int,
    clock: CommitClock = wall_commit_clock,
    stats: RunStats | None = None,
) -> RunStats:
    """Seed from the records at or before `at_ms` (read-only), then continue after them.

    The recorded input is read from its start; the runtime's resume rule skips
    each symbol's already-applied prefix, so only inputs after the seed are run.
    """
    report = restore_report(state_path, max_timestamp_ms=at_ms)
    if report.outcome == "fatal":
        raise RestoreFatal(state_path, report.reason or "fatal restore")
    seeded = memory_store(store_from_report(report, config), path=state_path)
    runtime = HysteresisRuntime(
        config=config,
        state_path=state_path,
        sink=sink,
        backend_factory=seeded_factory(seeded),
        clock=clock,
        stats=stats,
    )
    runtime.start()
    return runtime.run(snapshots)
