"""The exhaustive crash explorer.

For a deterministic workload: run it once under the recording file system (and its
uninterrupted twin on an in-memory backend as the reference); then for every crash
point (after each mutating op) and every crash state the faults layer derives there,
materialise that disk on a fresh fake file system, restart the orchestrator on it,
resume on the same input, and judge it (`harness.judge.verdicts`). The I/O-error sweep
fails each I/O call of the clean run in turn.

A backend under test is not trusted to behave: any exception from any of its calls
is a finding, never a crash of the explorer; a cap on findings per invariant keeps a
badly broken backend from turning a suite into hours: an invariant that reached the cap
is no longer judged, from then on each crash point is restarted only on its two extreme
states (none and all of the unsynced data kept: a backend that never syncs has a crash
state per unsynced line at every point), and a state none of whose invariants is still
open is not restarted at all. The summary counts what was skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from crashkit.faults import (
    IO_ERROR_SWEEP,
    SYNC,
    CrashFS,
    CrashState,
    DiskImage,
    EscapeWatch,
    FaultPlan,
    FaultRule,
    FsyncModel,
    Op,
    OpKind,
    TornMode,
    profile_named,
)
from crashkit.harness.explore.coverage import (
    RunFacts,
    created_state_file,
    image_rules,
    run_rules,
    seed_rules,
    state_rules,
    unreachable,
)
from crashkit.harness.explore.probe import WATCHED_ROOT, InvisibleIO
from crashkit.harness.explore.summary import Finding, Summary
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import INVARIANTS, Invariant, Violation
from crashkit.harness.judge.limits import explained_by
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import (
    RecordingSink,
    Timeline,
    close_quietly,
    offer_again,
    recording_factory,
)
from crashkit.harness.judge.paths import (
    STATE_PATH,
    leftover_temp_files,
    state_files_glob,
    undeclared_files,
)
from crashkit.harness.judge.runtime_model import model_run
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    judge_append,
    judge_close,
    judge_leftover_temp,
    judge_process,
    judge_published,
    judge_refusal,
    judge_restored,
    judge_selection,
    judge_single_writer,
    judge_start_fault,
    judge_undeclared_files,
    start_faults,
    uninterrupted,
)
from crashkit.harness.judge.vulnerabilities import Failure, group_failures
from crashkit.orchestrator.errors import HaltedError, StartupRefused
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.interrupt import Interrupt
from crashkit.orchestrator.runtime import HysteresisRuntime, RuntimeClass, engine_commit_clock
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.protocol import (
    DEFAULT_BACKEND,
    Backend,
    BackendFactory,
    BackendProtocolError,
    OpenedStore,
    load_backend,
)
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, RegimeInputSnapshot

SWEEP_ERRNOS: tuple[str, ...] = ("EIO", "ENOSPC", "EDQUOT", "EACCES", "EROFS")

#: What a restart's judgement covers: the restore, the resumed process, and its re-restore.
RESTART_INVARIANTS = frozenset(
    {
        Invariant.DURABILITY,
        Invariant.NO_INVALID_RESTORED,
        Invariant.PUBLISH_IMPLIES_COMMITTED,
        Invariant.CRASH_NOT_FATAL,
        Invariant.CONTINUITY,
        Invariant.HALT,
        Invariant.ENGINE,
        Invariant.PROTOCOL,
    }
)
#: What the recorded run's judgement covers (R4 when the start is predictable).
RUN_INVARIANTS = frozenset(
    {
        Invariant.PUBLISH_IMPLIES_COMMITTED,
        Invariant.HALT,
        Invariant.ENGINE,
        Invariant.PROTOCOL,
        Invariant.RESTORE_TABLE,
    }
)


#: The `cut` of the restart on the disk as the run left it (no power lost).
CLEAN_RESTART = "no power lost: restarted on the disk as the run left it"

#: Said of a startup crash when the fault layer saw no call of the backend at all.
NO_VISIBLE_IO = (
    " (the fault layer saw no file-system call of the backend at all: if it does its I/O "
    "in C, such as the sqlite3 module, the harness cannot see or crash it)"
)


_OPEN = OpKind.OPEN.value
_WRITE = OpKind.WRITE.value


def seed_of(workload: Workload) -> ModelRestore:
    """The contract's reading of the workload's initial disk."""
    if workload.directory_at_state_path:
        return ModelRestore("fatal", {}, (), ())
    return model_restore(workload.initial_state, workload.config)


#: `Summary.stopped` of a run a signal ended before all its crash states were checked.
STOPPED = "interrupted"


#: the pseudo crash point of the run's start on a seeded file (before its first call)
_SEEDED = -1
#: the cut of its findings (no crash point: the run's own), which `ticks_to_first_ack`
#: and an exported scenario read back
SEEDED_START = "the seeded disk, as the run started on it"


class NotApplicable(ValueError):
    """A workload the backend cannot be run on as declared (a seeded line file for a
    backend that keeps its own format)."""


@dataclass(frozen=True, slots=True)
class Restart:
    """What one restart on a crash image did."""

    timeline: Timeline
    sink: RecordingSink
    restored: dict[str, HysteresisState] | None  # None: refused to start
    refusal: str | None
    stop_at: int | None  # timestamp of the tick it stopped after (converged), None = ran out
    again: dict[str, HysteresisState] | None  # the restore after its first append, no crash
    again_refusal: str | None = None
    acked_at_reopen: list[HysteresisState] = field(default_factory=list)
    close_errors: tuple[str, ...] = ()  # what close() raised, if anything
    ticks_read: int = 0  # ticks the restarted process read, up to its first append
    #: where the events of the process started on the reopened store begin in
    #: `sink.events` (None: there was none)
    split: int | None = None
    #: declared temp files (`Capabilities.temp_files`) still on disk once it started
    leftover_temp: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recording:
    """The recorded first run of a workload."""

    timeline: Timeline
    states: list[tuple[int, CrashState]]  # (crash point, crash state), in order
    refusal: str | None
    refused_next: bool | None  # a tick offered after a halt was refused (None: none offered)
    ops: list[str]  # op names of the trace, by index
    restored: dict[str, HysteresisState] | None  # right after the start (None: refused)
    injected: bool  # a fault of the plan fired while it started
    close_errors: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()  # what it published, in order
    ticks_read: int = 0  # ticks it read (offered and accepted)
    #: the opens and reads of the state path that failed by the plan while it started
    start_faults: tuple[str, ...] = ()
    created: bool = False  # it created the state file
    #: after its failed append, the same records offered to the backend again: (it
    #: acknowledged them, it said it is poisoned); None when no append failed
    offered_again: tuple[bool, bool] | None = None
    #: crash states that exist at its crash points (above the cap: more than `states`)
    possible: int = 0
    compaction: Compaction | None = None  # the mid-history compaction, if the workload has one
    created_paths: tuple[str, ...] = ()  # files its opens created (or truncated)
    trace: tuple[Op, ...] = ()  # its calls (what a vulnerability names)


@dataclass(frozen=True, slots=True)
class Compaction:
    """What a recorded run's mid-history compaction did (`Workload.compact_after`)."""

    split: int  # where the second process's events begin in the run's events
    error: str | None  # what the offline compaction raised, if not a refusal
    restored: dict[str, HysteresisState] | None  # what the second process restored
    refusal: str | None  # why the second process did not start
    ticks: int  # ticks the second process read


@dataclass(frozen=True, slots=True)
class PointFacts:
    """What the recorded run had done at a crash point: the same for all its crash states."""

    ledger: Ledger
    decisions: dict[str, orc.Decision]
    conflicts: list[Violation]


@dataclass(frozen=True, slots=True)
class Reference:
    decisions: dict[str, orc.Decision]
    at: dict[tuple[str, int], orc.Decision]


def reference_of(workload: Workload, snapshots: Sequence[RegimeInputSnapshot]) -> Reference:
    """The uninterrupted run, on an in-memory backend, seeded like the workload's file."""
    seed = seed_of(workload)
    decisions = uninterrupted(workload.config, seed.states, snapshots)
    at: dict[tuple[str, int], orc.Decision] = {}
    for d in decisions.values():
        symbol, ts = d[0], d[1]
        assert isinstance(symbol, str) and isinstance(ts, int)
        at[(symbol, ts)] = d
    return Reference(decisions, at)


class Explorer:
    """Runs workloads against one backend (and optionally a runtime variant).

    `max_findings`: keep at most this many findings per invariant (None: all); an
    invariant that reached it is no longer judged by this explorer. `interrupt`: once
    its signal came, each run checks no more crash states and runs record nothing more
    (their summaries are partial, `stopped`)."""

    def __init__(
        self,
        backend: Backend | str | None = None,
        *,
        runtime_class: RuntimeClass = HysteresisRuntime,
        full: bool = False,
        torn: TornMode = TornMode.DEFAULT,
        profile: str | None = None,
        shard: tuple[int, int] = (0, 1),
        on_progress: Callable[[int], None] | None = None,
        max_findings: int | None = None,
        interrupt: Interrupt | None = None,
    ) -> None:
        if backend is None or isinstance(backend, str):
            backend = load_backend(backend or DEFAULT_BACKEND)
        self.backend = backend
        self.factory: BackendFactory = backend.open
        # The extra check restores use the backend's declared read-only restore, if any.
        self.restore_only = backend.restore_only
        self.runtime_class = runtime_class
        self.full = full
        self.torn = torn
        #: the file-system profile every workload is explored under (None: its own)
        self.profile = None if profile is None else profile_named(profile).name
        self.shard = shard
        self.on_progress = on_progress
        self.max_findings = max_findings
        #: a stop asked by a signal: the crash states not yet checked are left (counted)
        self.interrupt = interrupt
        self.fs = CrashFS(record=True)
        self._counter = 0  # global crash-state index, for sharding
        self._runs = 0  # global faulty-run index, for sharding
        self._per_point: dict[int, PointFacts] = {}
        #: crash point -> the next one (the trace length when the disk next changes)
        self._horizon: dict[int, int] = {}
        #: restarts of this workload by disk image: a restart is a function of the disk
        #: (and the workload) alone, and many crash points leave the same disk
        self._restarts: dict[tuple[DiskImage, bool], Restart] = {}
        self._written_fields: frozenset[tuple[object, ...]] = frozenset()
        self._kept: Counter[str] = Counter()  # findings kept per invariant, across jobs
        self._failures: list[Failure] = []  # the refused states of the workload running
        self._finding_of: dict[int, Finding] = {}  # id of a failure -> its reproduction
        self._states_at: Counter[int] = Counter()  # crash point -> its crash states
        self._groups: list[list[RegimeInputSnapshot]] = []  # the workload's ticks
        #: the contract's reading of a process started on given restored states (per
        #: workload: many crash states restore the same states)
        self._expected: dict[tuple[object, ...], tuple[Event, ...]] = {}

    # -- the cap ------------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        return self.interrupt is not None and self.interrupt.asked

    def capped(self) -> frozenset[Invariant]:
        """The invariants that reached `max_findings`: no longer judged."""
        if self.max_findings is None:
            return frozenset()
        return frozenset(i for i in INVARIANTS if self._kept[i.value] >= self.max_findings)

    def _keep(
        self,
        summary: Summary,
        violations: Iterable[Violation],
        workload: Workload,
        point: int | None,
        cut: str | None,
        op: str | None,
        state: CrashState | None = None,
    ) -> None:
        first = True
        for v in violations:
            limit = explained_by(workload.profile, v, cut)
            if limit is not None:  # a known limit of the v1 format, said as such
                summary.limits[limit.id] += 1
                continue
            if first:  # the state (or the run) is one failure, whatever it broke
                first = False
                settled = point is not None and self._states_at[point] == 1
                failure = _failure(v, workload, point, state, settled)
                self._failures.append(failure)
                self._finding_of[id(failure)] = Finding(v, workload, point, cut, op)
            name = v.invariant.value
            summary.violated[name] += 1
            if self.max_findings is not None and self._kept[name] >= self.max_findings:
                continue
            self._kept[name] += 1
            summary.findings.append(Finding(v, workload, point, cut, op))

    # -- one process --------------------------------------------------------------------

    def _runtime(
        self,
        workload: Workload,
        timeline: Timeline,
        sink: RecordingSink,
        config: HysteresisConfig | None = None,
    ) -> HysteresisRuntime:
        return self.runtime_class(
            config=config or workload.config,
            state_path=STATE_PATH,
            sink=sink,
            backend_factory=recording_factory(self.factory, timeline),
            clock=engine_commit_clock,
        )

    def _record(
        self,
        workload: Workload,
        snapshots: Sequence[RegimeInputSnapshot],
        *,
        clean_restart: bool = False,
    ) -> Recording:
        """The recorded first run, and the crash states after each of its mutating ops;
        with `clean_restart`, last the disk as the run left it, no power lost (a process
        that halted on a failed append is restarted on what it saw)."""
        fs = self.fs
        fs.configure(plan=workload.plan, model=workload.model, record=True)
        fs.start(workload.image())
        try:
            timeline = Timeline(position=lambda: len(fs.trace))
            sink = RecordingSink(timeline)
            runtime = self._runtime(workload, timeline, sink)
            refusal: str | None = None
            refused_next: bool | None = None
            restored: dict[str, HysteresisState] | None = None
            closing: list[str] = []
            ticks_read = 0
            again: tuple[bool, bool] | None = None
            split: int | None = None
            compact_error: str | None = None
            second_restored: dict[str, HysteresisState] | None = None
            second_refusal: str | None = None
            second_ticks = 0
            with EscapeWatch((WATCHED_ROOT,)) as watch:
                try:
                    runtime.start()
                    restored = dict(runtime.states)
                except StartupRefused as exc:
                    refusal = exc.reason
                except Exception as exc:  # a backend must refuse cleanly, not crash
                    refusal = crash_reason(exc)
                    if not fs.trace and not isinstance(exc, BackendProtocolError):
                        refusal += NO_VISIBLE_IO  # (not for a factory that broke the protocol)
                injected = any(op.injected for op in fs.trace)
                faults_at_start = start_faults(fs.trace)
                if refusal is None:
                    groups = list(ticks(snapshots))
                    ticks_read = _feed(runtime, groups, workload.compact_after)
                    if workload.compact_after is not None and not runtime.stats.halted:
                        # stop, compact offline, start a second process on the result
                        close_quietly(runtime.close, closing)
                        compact_error = self._compact_offline(workload)
                        split = len(sink.events)
                        runtime = self._runtime(workload, timeline, sink)
                        try:
                            runtime.start()
                            second_restored = dict(runtime.states)
                            second_ticks = _feed(runtime, groups, None)
                        except StartupRefused as exc:
                            second_refusal = exc.reason
                        except Exception as exc:
                            second_refusal = crash_reason(exc)
                    if runtime.stats.halted or timeline.first_failure() is not None:
                        try:
                            runtime.tick(groups[-1])
                            refused_next = False
                        except HaltedError:
                            refused_next = True
                    failed = timeline.first_failure()
                    if failed is not None and second_refusal is None:
                        again = offer_again(runtime.backend, failed.states)
                        if not again[0]:  # and a symbol it was not writing: C5.6 poisons all
                            again = offer_again(runtime.backend, [other_symbol(failed.states)])
                    if second_refusal is None:
                        close_quietly(runtime.close, closing)
            if watch.escapes:
                raise InvisibleIO(self.backend, watch.escapes)
            ops = [op.op for op in fs.trace]
            states: list[tuple[int, CrashState]] = []
            torn = TornMode.ALL if TornMode.ALL in (self.torn, workload.torn) else TornMode.DEFAULT
            points = fs.crash_points()
            possible = 0
            for point in points:
                found = fs.enumerate_crash_states(point, torn, profile=workload.profile)
                possible += found.combinations if found.capped else len(found.states)
                states.extend((point, state) for state in found.states)
            if clean_restart and points:
                visible = fs.visible_image()
                if all(state.image != visible for p, state in states if p == points[-1]):
                    states.append((points[-1], CrashState(visible, CLEAN_RESTART, points[-1])))
            return Recording(
                timeline,
                states,
                refusal,
                refused_next,
                ops,
                restored,
                injected,
                tuple(closing),
                tuple(sink.events),
                ticks_read,
                faults_at_start,
                created_state_file(fs.trace, existed=workload.image() is not None),
                again,
                possible,
                Compaction(split, compact_error, second_restored, second_refusal, second_ticks)
                if split is not None
                else None,
                tuple(op.path for op in fs.trace if op.op == _OPEN and op.mutating),
                tuple(fs.trace),
            )
        finally:
            fs.stop()

    def _restart(
        self,
        workload: Workload,
        snapshots: Sequence[RegimeInputSnapshot],
        reference: Reference,
        image: DiskImage,
        *,
        converge: bool = True,
    ) -> Restart:
        """Boot the fake disk onto a crash image, restart and resume on the same input.

        Right after the restarted process's first acknowledged append it is stopped
        cleanly and the store is opened once more (no crash in between): that
        restore must hold what was acknowledged, which catches appends landing
        behind bytes the backend should have cut (a torn tail). The run then goes
        on in that reopened store. The check sits at the same place with or
        without early stop, so both give the same verdicts. Without `converge` (the
        continuity invariant is capped) the process stops after that first append.
        """
        self.fs.restart(image)
        config = workload.restart_config
        timeline = Timeline()
        sink = RecordingSink(timeline)
        runtime = self._runtime(workload, timeline, sink, config)
        closing: list[str] = []
        try:
            runtime.start()
        except StartupRefused as exc:
            return Restart(timeline, sink, None, exc.reason, None, None)
        except Exception as exc:  # a backend must refuse cleanly, not crash
            return Restart(timeline, sink, None, crash_reason(exc), None, None)
        restored = dict(runtime.states)
        leftover = leftover_temp_files(self.backend.capabilities)
        groups = self._groups
        # After a change of window the decisions part from the uninterrupted run's (C1.3):
        # no early stop on them; the restarted process is judged on its own (see
        # `_check_state`).
        early = not workload.window_changed
        stop_at, position = self._resume(runtime, groups, 0, reference, until_ack=True, early=early)
        close_quietly(runtime.close, closing)
        acked = timeline.acked_before()
        if not acked:  # nothing new on disk: the reopened store would equal `restored`
            return Restart(
                timeline,
                sink,
                restored,
                None,
                stop_at,
                restored,
                None,
                [],
                tuple(closing),
                ticks_read=position,
                leftover_temp=leftover,
            )
        if not converge and stop_at is None and position < len(groups):
            stop_at = groups[position - 1][0].engine_timestamp_ms
        done = stop_at is not None or position >= len(groups) or runtime.stats.halted
        reopened: OpenedStore
        first = Restart(
            timeline,
            sink,
            restored,
            None,
            stop_at,
            None,
            None,
            acked,
            (),
            ticks_read=position,
            leftover_temp=leftover,
        )
        try:
            if done and self.restore_only is not None:
                again = dict(self.restore_only(STATE_PATH, config).states)
                return replace(first, again=again, close_errors=tuple(closing))
            reopened = self.factory(STATE_PATH, config)
            again = dict(reopened.store.states)
        except StartupRefused as exc:
            return replace(first, again_refusal=exc.reason, close_errors=tuple(closing))
        except Exception as exc:
            return replace(first, again_refusal=crash_reason(exc), close_errors=tuple(closing))
        split: int | None = None
        if not done:
            second = self.runtime_class(
                config=config,
                state_path=STATE_PATH,
                sink=sink,
                backend_factory=recording_factory(lambda _p, _c: reopened, timeline),
                clock=engine_commit_clock,
            )
            split = len(sink.events)
            second.start()
            stop_at, _ = self._resume(second, groups, 0, reference, until_ack=False, early=early)
            close_quietly(second.close, closing)
        else:
            close_quietly(reopened.backend.close, closing)
        return replace(
            first,
            stop_at=stop_at,
            again=again,
            close_errors=tuple(closing),
            split=split,
        )

    def _resume(
        self,
        runtime: HysteresisRuntime,
        groups: Sequence[Sequence[RegimeInputSnapshot]],
        start: int,
        reference: Reference,
        *,
        until_ack: bool,
        early: bool = True,
    ) -> tuple[int | None, int]:
        """Tick from `start`; returns (timestamp it converged at or None, next tick index).

        With `until_ack` it returns right after the first tick that appended; early
        stop never comes before that, so the append path after a crash is always
        exercised (decisions are deterministic, a backend's appends are not)."""
        for i in range(start, len(groups)):
            group = groups[i]
            runtime.tick(group)
            if runtime.stats.halted:
                return None, i + 1
            if until_ack and not runtime.stats.decisions:
                continue  # never stop before the restarted process has appended once
            converged = early and not self.full and self._converged(runtime, reference)
            if converged:
                return group[0].engine_timestamp_ms, i + 1
            if until_ack:
                return None, i + 1
        return None, len(groups)

    @staticmethod
    def _converged(runtime: HysteresisRuntime, reference: Reference) -> bool:
        """Every symbol past its resume point and equal to the reference at its timestamp."""
        if runtime.pending_resume or runtime.stats.halted_symbols:
            return False
        at = reference.at
        for state in runtime.states.values():
            if at.get((state.symbol, state.engine_timestamp_ms)) != orc.decision_of_state(state):
                return False
        return True

    def _point_facts(self, point: int, timeline: Timeline, seed: ModelRestore) -> PointFacts:
        """What the recorded run had acknowledged, attempted and published by the crash
        after op `point` (cached: the same for every crash state of the point)."""
        cached = self._per_point.get(point)
        if cached is not None:
            return cached
        # A crash after op `point` comes at any moment before the next op that changes
        # the disk: what was acknowledged or published until then (an append that ends on
        # calls that change nothing, a directory's close after its fsync) was on this
        # same disk. After the last such op, everything the run did was (None: all).
        position = self._horizon.get(point)
        pre = [p.event for p in timeline.published_before(position)]
        decisions, conflicts = orc.decisions_of(pre)
        in_flight = [
            s
            for a in timeline.appends
            if not (a.acked and (position is None or a.position <= position))
            for s in a.states
        ]
        ledger = Ledger.build(
            [*seed.states.values(), *timeline.acked_before(position)],
            later=in_flight,
            published=pre,
        )
        facts = PointFacts(replace(ledger, written=self._written_fields), decisions, conflicts)
        self._per_point = {point: facts}
        return facts

    def _check_state(
        self,
        workload: Workload,
        snapshots: Sequence[RegimeInputSnapshot],
        reference: Reference,
        seed: ModelRestore,
        timeline: Timeline,
        point: int,
        state: CrashState,
        capped: frozenset[Invariant],
        run_facts: RunFacts,
    ) -> tuple[bool, list[Violation], set[str]]:
        """Restart on one crash state and judge it; returns (refused, violations, the
        contract rules it exercised)."""
        facts = self._point_facts(point, timeline, seed)
        converge = Invariant.CONTINUITY not in capped
        key = (state.image, converge)
        r = self._restarts.get(key)
        if r is None:
            r = self._restarts[key] = self._restart(
                workload, snapshots, reference, state.image, converge=converge
            )
        config = workload.restart_config
        if r.refusal is not None or r.restored is None:
            allowed = seed if seed.outcome == "fatal" else None
            found = judge_refusal(r.refusal or "", expected=allowed, crashed=True)
            line_format = self.backend.capabilities.line_format
            return (
                True,
                found,
                set(image_rules(state.image, line_format=line_format)) | (run_facts.rules),
            )
        restored = r.restored
        # publish-after-ack was judged once on the recorded run; here: did it survive?
        found = judge_restored(restored, facts.ledger)
        if converge:
            r_decisions, r_conflicts = orc.decisions_of(r.sink.events)
            merged, conflicts = orc.merge_decisions(facts.decisions, r_decisions)
            found += facts.conflicts + r_conflicts + conflicts
            if not workload.window_changed:  # C6.8: as if never interrupted
                found += orc.continuity_violations(merged, reference.decisions, up_to_ms=r.stop_at)
            # the restarted process on its own, event by event, up to its first append
            # (the same ticks with or without early stop): what it published for what it
            # restored and read (C6.3, C6.5-C6.7, C6.9, C1.3)
            events = r.sink.events if r.split is None else r.sink.events[: r.split]
            expected = self._expected_events(config, restored, r.ticks_read)
            found += judge_published(events, expected, process="the restarted process")
        else:
            events = []
        found += judge_process(
            r.timeline.publish_pairs(),
            acks=r.timeline.ack_pairs(),
            outcomes=r.timeline.append_outcomes(),
        )
        found += judge_close(r.close_errors)
        found += judge_leftover_temp(r.leftover_temp)
        # The restarted process's acknowledged appends must survive the next restore too.
        if r.again_refusal is not None:
            found += judge_refusal(r.again_refusal, expected=None, crashed=True)
        elif r.again is not None:
            after = Ledger.build(
                [*facts.ledger.latest_acked.values(), *restored.values(), *r.acked_at_reopen]
            )
            attempted = {s.persisted_fields() for s in r.timeline.attempted()}
            found += judge_restored(
                r.again, replace(after, written=self._written_fields | attempted)
            )
        rules = state_rules(
            run_facts,
            state.image,
            restored=restored,
            events=events,
            appended=bool(r.acked_at_reopen),
            window_changed=workload.window_changed,
            compared=converge and not workload.window_changed,
            seeded=workload.initial_state is not None,
            line_format=self.backend.capabilities.line_format,
        )
        return False, [v for v in found if v.invariant not in capped], rules

    def _compact_offline(self, workload: Workload) -> str | None:
        """The backend's offline compaction (`Backend.compact`) between two processes: a
        refusal is an answer, any other exception is a crash (returned)."""
        compact = self.backend.compact
        if compact is None:
            return None
        try:
            compact(STATE_PATH, workload.config)
        except StartupRefused:
            return None
        except Exception as exc:
            return crash_reason(exc)
        return None

    def _second_writer(self, workload: Workload) -> list[Violation] | None:
        """C5.9 on the workload's initial disk: while a process that has appended holds the
        state path, a second open is refused; once it closed, a new one starts. None
        when it does not apply (no single_writer declared, or nothing to hold)."""
        if not self.backend.capabilities.single_writer or not self._groups:
            return None
        fs = self.fs
        fs.configure(plan=FaultPlan(), model=workload.model, record=False)
        fs.start(workload.image())
        try:
            timeline = Timeline()
            holder = self._runtime(workload, timeline, RecordingSink(timeline))
            try:
                holder.start()
                holder.tick(self._groups[0])
            except Exception:  # judged where the workload itself is explored
                return None
            second = self._try_open(workload)
            close_quietly(holder.close, [])
            third = self._try_open(workload)
            found = judge_single_writer(second, third)
            # and beside a holder that halted (its append failed: poisoned, it still holds
            # the path), then beside one started on the whole run's history (the start a
            # compacting backend rewrites its file at): the lock must survive both
            glob = state_files_glob(self.backend.capabilities)
            fail = FaultPlan(
                tuple(
                    FaultRule(op, glob, 1, "EIO", persistent=True)
                    for op in (OpKind.WRITE, OpKind.FSYNC)
                )
            )
            # (each holder reads the input from its start, as a restarted process does)
            for plan, groups in ((fail, self._groups[:2]), (FaultPlan(), self._groups)):
                holder = self._runtime(workload, timeline, RecordingSink(timeline))
                try:
                    holder.start()
                except Exception:
                    return found
                fs.configure(plan=plan)
                with contextlib.suppress(Exception):  # (a halt is what the first pass wants)
                    for group in groups:
                        holder.tick(group)
                fs.configure(plan=FaultPlan())
                if plan is not fail:  # a new start on everything it wrote
                    close_quietly(holder.close, [])
                    holder = self._runtime(workload, timeline, RecordingSink(timeline))
                    try:
                        holder.start()
                    except Exception:
                        return found
                second = self._try_open(workload)
                close_quietly(holder.close, [])
                found += judge_single_writer(second, self._try_open(workload))
            return found
        finally:
            fs.stop()

    def _try_open(self, workload: Workload) -> str | None:
        """Open the store and close it again: None, or why it was refused."""
        try:
            opened = self.factory(STATE_PATH, workload.config)
        except StartupRefused as exc:
            return exc.reason
        except Exception as exc:
            return crash_reason(exc)
        close_quietly(opened.backend.close, [])
        return None

    def _judge_compaction(self, rec: Recording, seed: ModelRestore) -> list[Violation]:
        """A mid-history compaction lost nothing: the process started after it restored
        every acknowledged state (1, 2, 3, 7), and neither it nor the compaction crashed."""
        c = rec.compaction
        if c is None:
            return []
        found = [] if c.error is None else judge_refusal(c.error, expected=None, crashed=False)
        if c.refusal is not None:
            return found + judge_refusal(c.refusal, expected=None, crashed=False)
        assert c.restored is not None
        split_at = (
            rec.timeline.publishes[c.split].position
            if c.split < len(rec.timeline.publishes)
            else None
        )
        ledger = Ledger.build(
            [*seed.states.values(), *rec.timeline.acked_before(split_at)],
            published=[p.event for p in rec.timeline.published_before(split_at)],
        )
        written = {s.persisted_fields() for s in [*seed.records, *rec.timeline.attempted()]}
        return found + judge_restored(c.restored, replace(ledger, written=frozenset(written)))

    def _expected_events(
        self, config: HysteresisConfig, restored: Mapping[str, HysteresisState], ticks_read: int
    ) -> tuple[Event, ...]:
        """What the contract's reading of the runtime rules publishes from `restored` over
        the workload's first `ticks_read` ticks (cached per workload: many crash states
        restore the same states, and a restarted process reads few ticks past its resume
        point, so only those are run)."""
        key = (
            config.window_updates,
            ticks_read,
            *sorted(s.persisted_fields() for s in restored.values()),
        )
        found = self._expected.get(key)
        if found is None:
            snapshots = [s for group in self._groups[:ticks_read] for s in group]
            found = self._expected[key] = model_run(config, restored, snapshots).events
        return found

    # -- a workload ---------------------------------------------------------------------

    def run(self, workload: Workload, *, points: str = "all") -> Summary:
        """Explore one workload. `points="end"` checks only the crash states after the last op."""
        if workload.initial_state is not None and not self.backend.capabilities.line_format:
            raise NotApplicable(
                f"workload {workload.name or '-'} seeds a state file of contract-v1 lines; "
                f"backend {self.backend.name} does not declare line_format"
            )
        started = time.perf_counter()
        if self.profile is not None and workload.profile != self.profile:
            workload = replace(workload, profile=self.profile)  # (findings then carry it)
        summary = Summary(
            workloads=1,
            findings_cap=self.max_findings,
            line_format=self.backend.capabilities.line_format,
        )
        snapshots = workload.snapshots()
        self._groups = list(ticks(snapshots))
        self._expected = {}
        reference = reference_of(workload, snapshots)
        seed = seed_of(workload)
        rec = self._record(workload, snapshots, clean_restart=points == "end")
        timeline, states, refusal, ops = rec.timeline, rec.states, rec.refusal, rec.ops
        crash_points = sorted({p for p, _ in states})
        self._states_at = Counter(p for p, _ in states)
        self._horizon = dict(itertools.pairwise(crash_points))

        # The recorded run itself (no crash): its start against the contract's reading of
        # the initial disk (a seeded file or an empty disk), then the process.
        found: list[Violation] = []
        if refusal is not None:
            found += judge_refusal(refusal, expected=seed, crashed=False, injected=rec.injected)
        elif rec.restored is not None and not rec.injected:
            found += judge_selection(rec.restored, seed)
        found += judge_start_fault(rec.restored is not None, rec.start_faults)
        if rec.offered_again is not None:
            acked, poisoned = rec.offered_again
            found += judge_append(acked=acked, failed_before=True, poisoned=poisoned)
        found += judge_process(
            timeline.publish_pairs(),
            acks=timeline.ack_pairs(),
            outcomes=timeline.append_outcomes(),
            refused_next=rec.refused_next,
            refused=refusal is not None,
        )
        found += judge_close(rec.close_errors)
        found += self._judge_compaction(rec, seed)
        found += judge_undeclared_files(
            undeclared_files(self.backend.capabilities, rec.created_paths)
        )
        if rec.restored is not None and not rec.injected and timeline.first_failure() is None:
            # the run itself, for what it restored: every event the contract's reading has
            expected = self._expected_events(workload.config, rec.restored, rec.ticks_read)
            c = rec.compaction
            events = rec.events if c is None else rec.events[: c.split]
            found += judge_published(events, expected, process="the run")
            if c is not None and c.restored is not None:
                expected = self._expected_events(workload.config, c.restored, c.ticks)
                found += judge_published(
                    rec.events[c.split :], expected, process="the process after the compaction"
                )
        writer_checked = False
        if workload.second_writer and rec.restored is not None:
            second = self._second_writer(workload)
            if second is not None:
                found += second
                writer_checked = True
        capped = self.capped()
        summary.judged(RUN_INVARIANTS - capped)
        summary.unjudged.update(i.value for i in RUN_INVARIANTS & capped)
        summary.unreachable = unreachable(
            rec.trace, self.backend.capabilities, appends=len(timeline.appends)
        )
        self._failures = []
        self._finding_of = {}
        self._keep(
            summary, (v for v in found if v.invariant not in capped), workload, None, None, None
        )
        if refusal is not None:
            summary.outcomes["refused"] += 1
        elif timeline.first_failure() is not None:
            summary.outcomes["halted"] += 1
        else:
            summary.outcomes["completed"] += 1
        seeded = seed_rules(seed, workload.initial_state)
        summary.covered.update(
            seeded
            | run_rules(
                plan=workload.plan,
                created=rec.created,
                refused_start=refusal is not None,
                start_fault=bool(rec.start_faults) or workload.directory_at_state_path,
                halted=timeline.first_failure() is not None,
                refused_next=rec.refused_next,
                events=rec.events,
                second_writer_checked=writer_checked,
            )
        )
        appended_at: dict[int, set[str]] = {}
        for attempted in timeline.attempted():
            appended_at.setdefault(attempted.engine_timestamp_ms, set()).add(attempted.symbol)
        facts = RunFacts(seeded, appended_at)

        if points == "end" and states:
            last = states[-1][0]
            states = [(p, s) for p, s in states if p == last]
        index, count = self.shard
        # With state-level shards, a crash point counts in the shard of its first state.
        firsts = {p: self._counter + i for i, (p, _) in reversed(list(enumerate(states)))}
        summary.crash_points = sum(1 for first in firsts.values() if first % count == index)
        summary.states_possible = rec.possible
        if count > 1 and self._counter % count != index:
            # The recorded run is judged (and counted) once, by the shard of its first state.
            summary.workloads = 0
            summary.findings.clear()
            summary.violated.clear()
            summary.checked.clear()
            summary.outcomes.clear()
            summary.covered.clear()
            summary.states_possible = 0
        written = [*seed.records, *timeline.attempted()]
        self._written_fields = frozenset(s.persisted_fields() for s in written)
        fs = self.fs
        self._per_point = {}
        self._restarts = {}
        fs.configure(plan=FaultPlan(), model=workload.model, record=False)
        image = workload.image()
        if (
            image is not None
            and workload.initial_state is not None
            and refusal is None
            and summary.workloads
        ):
            # A seeded file is what an earlier run (and its crash) left: the run's start on
            # it is judged as every restart is, up to its first acknowledged append and a
            # clean reopen, with nothing of the run acknowledged yet. What breaks there is
            # the run's own finding, no new crash needed (a compaction that copies the
            # seed's torn tail glues that append to it, and loses it).
            self._horizon[_SEEDED] = 0  # (a crash before the run's first call)
            _, seeded_start, _ = self._check_state(
                workload,
                snapshots,
                reference,
                seed,
                timeline,
                _SEEDED,
                CrashState(image, SEEDED_START),
                self.capped(),
                facts,
            )
            del self._horizon[_SEEDED]
            self._keep(summary, seeded_start, workload, None, SEEDED_START, None)
        # Each point's first and last crash state (nothing of the unsynced data kept, all
        # of it kept): once an invariant reached the cap only those are restarted.
        extremes = {(p, id(s)) for p, group in _by_point(states) for s in (group[0], group[-1])}
        try:
            for point, state in states:
                self._counter += 1
                if (self._counter - 1) % count != index:
                    continue
                if self.interrupted:  # a signal: the rest of the states are left, counted
                    summary.stopped = STOPPED
                    summary.states_left += 1
                    continue
                if self.on_progress is not None:
                    self.on_progress(1)
                capped = self.capped()
                if capped >= RESTART_INVARIANTS or (capped and (point, id(state)) not in extremes):
                    summary.states_skipped += 1
                    summary.unjudged.update(i.value for i in RESTART_INVARIANTS)
                    continue
                summary.unjudged.update(i.value for i in RESTART_INVARIANTS & capped)
                summary.states_checked += 1
                refused, violations, rules = self._check_state(
                    workload, snapshots, reference, seed, timeline, point, state, capped, facts
                )
                summary.covered.update(rules)
                summary.judged(RESTART_INVARIANTS - capped)
                summary.outcomes["restart-refused" if refused else "restart-resumed"] += 1
                op = ops[point] if point < len(ops) else None
                self._keep(summary, violations, workload, point, state.cut, op, state)
        finally:
            fs.stop()
        summary.vulnerabilities = group_failures(self._failures, rec.trace)
        for vuln in summary.vulnerabilities:  # each example with its reproduction
            finding = self._finding_of.get(id(vuln.example))
            if finding is not None:
                vuln.example = replace(vuln.example, reproduction=finding.to_dict())
        summary.seconds = time.perf_counter() - started
        return summary

    def crash_states(self, workload: Workload) -> list[tuple[int, CrashState]]:
        """Every crash state of the workload's recorded run, with the index of the op it
        comes after (what the real-process mode's must equal, point by point)."""
        return list(self._record(workload, workload.snapshots()).states)

    def ticks_to_first_ack(self, workload: Workload, point: int | None, cut: str) -> int | None:
        """How many ticks a process restarted on the crash state (`point`, `cut`) of the
        workload reads up to its first acknowledged append (None: no such state, a
        refusal, or no append at all); `SEEDED_START` (no point): the seeded disk itself.
        Re-records the workload to find the state; what a regression scenario needs to
        replay the explorer's check after that append."""
        snapshots = workload.snapshots()
        image = workload.image() if point is None and cut == SEEDED_START else None
        if image is None:
            rec = self._record(workload, snapshots)
            state = next((s for p, s in rec.states if p == point and s.cut == cut), None)
            if state is None:
                return None
            image = state.image
        fs = self.fs
        fs.configure(plan=FaultPlan(), model=workload.model, record=False)
        fs.start(image)
        timeline = Timeline()
        process = self._runtime(workload, timeline, RecordingSink(timeline))
        try:
            try:
                process.start()
            except Exception:  # a refusal (or a crash): there is no append to reach
                return None
            for count, group in enumerate(ticks(snapshots), start=1):
                process.tick(group)
                if timeline.acked_before():
                    return count
                if process.stats.halted:
                    return None
            return None
        finally:
            with contextlib.suppress(Exception):
                process.close()
            fs.stop()

    def _clean_trace(self, workload: Workload) -> list[Op]:
        """The op trace of the workload's clean run (no faults), to place faults on."""
        fs = self.fs
        fs.configure(plan=FaultPlan(), model=workload.model, record=True)
        fs.start(workload.image())
        try:
            runtime = self._runtime(workload, Timeline(), RecordingSink(Timeline()))
            try:
                runtime.start()
            except Exception:  # judged when the workload itself is explored
                return list(fs.trace)
            runtime.run(workload.snapshots())
            close_quietly(runtime.close, [])
            return list(fs.trace)
        finally:
            fs.stop()

    def _faulty_runs(self, workloads: Iterable[tuple[Workload, str]]) -> Summary:
        """Run fault workloads, sharded by run (every run is recorded once, in one shard)."""
        summary = Summary(
            findings_cap=self.max_findings, line_format=self.backend.capabilities.line_format
        )
        index, count = self.shard
        whole = self.shard
        for workload, points in workloads:
            self._runs += 1
            if (self._runs - 1) % count != index:
                continue
            if self.interrupted:  # a signal: no more runs recorded
                summary.stopped = STOPPED
                break
            self.shard = (0, 1)
            try:
                result = self.run(workload, points=points)
            finally:
                self.shard = whole
            result.sweep_runs = 1
            summary.merge(result)
        return summary

    def sweep(self, workload: Workload, errnos: Sequence[str] = SWEEP_ERRNOS) -> Summary:
        """Fail every I/O call of the clean run in turn, once and persistently, per errno.

        Each faulty run must halt or refuse with nothing published that was not
        committed; then a restart on the disk it left (every crash state after its
        last op, and the disk as it left it with no power lost) must lose nothing
        acknowledged. Each write is also cut short once (a short write, C5.5).
        """
        return self._faulty_runs(
            (
                replace(
                    workload, plan=FaultPlan((rule,)), name=f"{workload.name}+{rule.describe()}"
                ),
                "end",
            )
            for rule in fault_rules(self._clean_trace(workload), errnos, short_writes=True)
        )

    def fsync_models(self, workload: Workload) -> Summary:
        """Fail each fsync of the clean run once, under each fsync-failure model, and crash
        after every op of that run: the failed bytes may, must not, or cannot persist."""
        rules = [r for r in fault_rules(self._clean_trace(workload), ("EIO",)) if r.op in SYNC]
        return self._faulty_runs(
            (
                replace(
                    workload,
                    plan=FaultPlan((rule,)),
                    model=model,
                    name=f"{workload.name}+{rule.describe()}@{model.value}",
                ),
                "all",
            )
            for model in FsyncModel
            for rule in rules
            if not rule.persistent
        )


def other_symbol(states: Sequence[HysteresisState]) -> HysteresisState:
    """A state of a symbol the failed append was not writing: a poisoned writer must refuse
    it too (C5.6 poisons the writer, not the symbols it was writing)."""
    first = states[0]
    return HysteresisState(
        "~" + "".join(sorted({s.symbol for s in states})),
        max(s.engine_timestamp_ms for s in states),
        first.anchor_regime,
        None,
        0,
        first.progress_required,
        None,
    )


def _feed(
    runtime: HysteresisRuntime, groups: Sequence[Sequence[RegimeInputSnapshot]], limit: int | None
) -> int:
    """Offer the ticks in order (at most `limit`), stopping at a halt; returns how many."""
    read = 0
    for group in groups if limit is None else groups[:limit]:
        runtime.tick(group)
        read += 1
        if runtime.stats.halted:
            break
    return read


def _by_point(
    states: Sequence[tuple[int, CrashState]],
) -> list[tuple[int, list[CrashState]]]:
    """The crash states grouped by their point, in order."""
    groups: dict[int, list[CrashState]] = {}
    for point, state in states:
        groups.setdefault(point, []).append(state)
    return list(groups.items())


def fault_rules(
    trace: Sequence[Op], errnos: Sequence[str], *, short_writes: bool = False
) -> list[FaultRule]:
    """One rule per (I/O call of the trace, errno, once|persistent): the Nth call on its
    path; with `short_writes`, also each write cut to half its bytes (C5.5)."""
    rules: list[FaultRule] = []
    seen: Counter[tuple[str, str]] = Counter()
    for op in trace:
        seen[(op.op, op.path)] += 1
        if op.op not in IO_ERROR_SWEEP:
            continue
        nth = seen[(op.op, op.path)]
        for code in errnos:
            for persistent in (False, True):
                rules.append(
                    FaultRule(op=op.op, path=op.path, nth=nth, errno=code, persistent=persistent)
                )
        size = _written_bytes(op)
        if short_writes and size > 1:
            rules.append(FaultRule(op=op.op, path=op.path, nth=nth, short_write=size // 2))
    return rules


def _written_bytes(op: Op) -> int:
    """What a recorded write wrote ("N bytes"), 0 for any other op."""
    if op.op != _WRITE or op.error is not None:
        return 0
    count, _, unit = op.detail.partition(" ")  # "N bytes", "N bytes at OFFSET"
    return int(count) if unit.split(" ")[0] == "bytes" and count.isdigit() else 0


def _failure(
    violation: Violation,
    workload: Workload,
    point: int | None,
    state: CrashState | None,
    settled: bool,
) -> Failure:
    """A refused crash state (or the run itself, `point` None) as the vulnerabilities
    group it: its deviations, the invariant's message, the fault the plan injected."""
    fault = ", ".join(f"{r.op} {r.path}: {r.errno or 'short write'}" for r in workload.plan.rules)
    return Failure(
        -1 if point is None else point,
        state.deviations if state is not None else (),
        f"{violation.invariant.value}: {violation.message}",
        (workload.profile,),
        crashed=point is not None,
        settled=settled,
        fault=fault,
        label=workload.name or "",
    )
