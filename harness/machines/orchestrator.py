"""The orchestrator-level state machine: the runtime on a backend, under ticks, faults,
crashes and restarts, judged by the harness oracles against the uninterrupted run.

Rules: `advance`, a tick of random symbols (repeats = duplicates within the tick), at
the next timestamp or, one time in four, re-delivering an earlier one (duplicate for
symbols already there, late for symbols past it), one time in five after arming a
write, short-write or fsync failure; crash after any op of the running process (any
crash state, torn tails included; every other state of that point is restored and
judged too), then restart on that disk; clean restart. A (re)started process
resumes on the whole input from its first tick (contract C6.7). The reference is an
in-memory runtime fed every tick, never interrupted.

Oracles (harness/judge/oracles.py, composed by harness/judge/verdicts.py): after every tick 3 (publish implies committed), 6
(halt), 7 (engine) and 5 (continuity; "never published" only once the process has
caught up without halting); at every restart 1, 2, 3 (published decisions still on
disk), 4, 7, and R4 (the restore equals the contract's reading of the disk).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from crashkit.faults import FaultPlan, FsyncModel
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Violation
from crashkit.harness.judge.model import ModelRestore
from crashkit.harness.judge.observe import (
    RecordingSink,
    Timeline,
    abandon_runtime,
    close_quietly,
    recording_factory,
)
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH, state_files_glob
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    expected_reading,
    judge_close,
    judge_continuity,
    judge_process,
    judge_refusal,
    judge_restored,
)
from crashkit.harness.machines.common import (
    FAULT_FAMILIES,
    FILE_SYNCS,
    crash_fs,
    draw_crash,
    folder_empty,
    optional_fault,
    raise_violations,
    visible_bytes,
)
from crashkit.harness.scenarios import export
from crashkit.harness.scenarios.export import backend_spec
from crashkit.orchestrator.errors import HaltedError, StartupRefused
from crashkit.orchestrator.events import Event, MemorySink
from crashkit.orchestrator.runtime import (
    HysteresisRuntime,
    RuntimeClass,
    engine_commit_clock,
    seeded_factory,
)
from crashkit.orchestrator.sources import snapshot_to_dict
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.memory import memory_store
from crashkit.orchestrator.store.protocol import Backend
from crashkit.regime_engine.belief import SIGNATURES
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    Regime,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.synthetic import START_MS, STEP_MS

SYMBOLS = ("SYM000", "SYM001", "SYM002")
#: A tick's symbols: repeats are duplicates delivered within the tick.
TICK_SYMBOLS = st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4)
REGIMES = st.sampled_from(tuple(Regime))
EARLIER = st.integers(0, 15)
AGAIN = st.integers(0, 3)  # one tick in four re-delivers an earlier timestamp


def snapshot(symbol: str, ts: int, regime: Regime) -> RegimeInputSnapshot:
    """A snapshot sitting on `regime`'s signature (so the engine's belief follows the draw)."""
    return RegimeInputSnapshot(symbol, ts, *SIGNATURES[regime])


@dataclass(slots=True)
class Process:
    """One orchestrator process: its runtime, its observations, how far it read the input."""

    runtime: HysteresisRuntime
    timeline: Timeline
    sink: RecordingSink
    start: int  # trace length when it started: its crash points come after
    consumed: int = 0


@dataclass(slots=True)
class Past:
    """What an ended process did before it stopped or crashed."""

    publishes: list[tuple[int, Event]] = field(default_factory=list)
    acks: list[tuple[int, HysteresisState]] = field(default_factory=list)


class OrchestratorMachine(RuleBasedStateMachine):
    """Subclass (see `orchestrator_machine`) to pick backend, runtime, model and faults."""

    backend: ClassVar[Backend] = jsonl.BACKEND
    runtime_class: ClassVar[RuntimeClass] = HysteresisRuntime
    runtime_spec: ClassVar[str | None] = None
    fsync_model: ClassVar[FsyncModel | None] = None  # None: drawn per example
    #: the file-system profile of its crash states (`crashkit.faults.PROFILES`)
    profile: ClassVar[str] = "prefix"
    fault_families: ClassVar[frozenset[str]] = frozenset(FAULT_FAMILIES)
    #: see StoreMachine.restart_after_lost_fsync
    restart_after_lost_fsync: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.fs = crash_fs()
        self.model = FsyncModel.KEEP_DIRTY
        self.config = HysteresisConfig()
        self.steps: list[export.Step] = []
        self.rule_count = 0
        self.groups: list[list[RegimeInputSnapshot]] = []
        self.stamps: list[int] = []
        self.reference: HysteresisRuntime | None = None
        self.reference_sink = MemorySink()
        self.proc: Process | None = None
        self.past: list[Past] = []
        self.events: list[Event] = []  # what ended processes published, in order
        self.acked: list[HysteresisState] = []
        self.maybe: list[HysteresisState] = []
        self.written: list[HysteresisState] = []
        self.lost_fsync = False
        self.crashed_since_start = False  # a power cut since the last process started

    # -- plumbing -------------------------------------------------------------------------

    def _step(self, step: export.Step) -> None:
        self.rule_count += 1
        self.steps.append(step)

    def _body(self, violations: list[Violation]) -> dict[str, Any]:
        v = violations[0]
        return export.build_scenario(
            description=f"{v.invariant}: {v.message} [orchestrator-level machine "
            f"{type(self).__name__}, {self.rule_count} step(s)]",
            fsync_model=self.model.value,
            window_updates=self.config.window_updates,
            input_={"snapshots": [snapshot_to_dict(s) for g in self.groups for s in g]},
            steps=export.merge_runs(self.steps),
            backend=backend_spec(self.backend),
            profile=self.profile,
            runtime=self.runtime_spec,
            missing_dir=True,  # boot() starts from an empty disk
        )

    def _fail(self, violations: list[Violation]) -> None:
        raise_violations(violations, lambda: self._body(violations), self.rule_count)

    def _settle(self, position: int | None) -> None:
        """End the running process at `position` (None: all it did happened)."""
        proc = self.proc
        if proc is None:
            return
        t = proc.timeline
        pubs = t.published_before(position)
        past = Past([(p.seq, p.event) for p in pubs])
        for a in t.appends:
            if a.acked and (position is None or a.position <= position):
                self.acked.extend(a.states)
                past.acks.extend((a.seq, s) for s in a.states)
            else:
                self.maybe.extend(a.states)
        self.past.append(past)
        self.written.extend(t.attempted())
        self.events.extend(p.event for p in pubs)
        self.proc = None

    def _reference_decisions(self) -> dict[str, orc.Decision]:
        return orc.decisions_of(self.reference_sink.events)[0]

    def _start(self, *, probe: bool = False) -> None:
        """Start a process on the disk, judge its restore, and let it catch up on the input.

        A probe only restores and judges, then closes (no tick, the disk is left as is)."""
        fs = self.fs
        expect = expected_reading(
            self.backend,
            self.config,
            state_bytes=visible_bytes(fs, STATE_PATH),
            folder_empty=folder_empty(fs, STATE_DIR),
        )
        timeline = Timeline(position=lambda: len(fs.trace))
        sink = RecordingSink(timeline)
        runtime = self.runtime_class(
            config=self.config,
            state_path=STATE_PATH,
            sink=sink,
            backend_factory=recording_factory(self.backend.open, timeline),
            clock=engine_commit_clock,
        )
        start = len(fs.trace)
        try:
            runtime.start()
        except Exception as exc:  # a refusal, or a backend that crashed instead
            reason = exc.reason if isinstance(exc, StartupRefused) else crash_reason(exc)
            self._fail(judge_refusal(reason, expected=expect, crashed=self.crashed_since_start))
            return
        if probe:
            errors: list[str] = []
            close_quietly(runtime.close, errors)
            self._fail(judge_close(errors))
            self._judge_restore(dict(runtime.states), expect)
            return
        self.proc = Process(runtime, timeline, sink, start)
        self.crashed_since_start = False
        self._judge_restore(dict(runtime.states), expect)
        if self.groups:  # a (re)started process reads the input from its first tick
            self.steps.append({"run": {"ticks": len(self.groups)}})
        while self.proc.consumed < len(self.groups) and not timeline.first_failure():
            if not self._feed():
                break
        self._check_live()

    def _judge_restore(
        self, restored: dict[str, HysteresisState], expect: ModelRestore | None
    ) -> None:
        published = [e for past in self.past for _, e in past.publishes]
        ledger = Ledger.build(
            self.acked, later=self.maybe, written=self.written, published=published
        )
        self._fail(judge_restored(restored, ledger, expected=expect))

    def _feed(self) -> bool | None:
        """Offer the running process its next tick; returns whether it was accepted
        (None: there was no process)."""
        proc = self.proc
        if proc is None or proc.consumed >= len(self.groups):
            return None
        group = self.groups[proc.consumed]
        before = len(self.fs.trace)
        try:
            proc.runtime.tick(group)
        except HaltedError:
            return False
        proc.consumed += 1
        if self.model is FsyncModel.MARK_CLEAN:
            self.lost_fsync |= any(
                op.op in FILE_SYNCS and op.error for op in self.fs.trace[before:]
            )
        return True

    def _check_live(self, refused_next: bool | None = None) -> None:
        proc = self.proc
        if proc is None:
            return
        t = proc.timeline
        self._fail(
            judge_process(
                t.publish_pairs(),
                acks=t.ack_pairs(),
                outcomes=t.append_outcomes(),
                refused_next=refused_next,
            )
        )
        caught_up = proc.consumed == len(self.groups) and t.first_failure() is None
        self._fail(
            judge_continuity(
                [*self.events, *proc.sink.events],
                self._reference_decisions(),
                up_to_ms=None if caught_up else -1,
            )
        )

    # -- rules ----------------------------------------------------------------------------

    @initialize(data=st.data())
    def boot(self, data: st.DataObject) -> None:
        self.model = self.fsync_model or data.draw(st.sampled_from(FsyncModel), label="model")
        window = data.draw(st.integers(1, 3), label="window_updates")
        self.config = HysteresisConfig(window_updates=window)
        self.reference = HysteresisRuntime(
            config=self.config,
            state_path="<reference>",
            sink=self.reference_sink,
            backend_factory=seeded_factory(memory_store()),
            clock=engine_commit_clock,
        )
        self.reference.start()
        self.fs.stop()  # in case an earlier example died before its teardown
        self.fs.configure(plan=FaultPlan(), model=self.model, record=True)
        self.fs.start(None)
        self._start()

    # Every rule takes exactly one `data` argument: hypothesis orders rules by argument
    # count, then name, and generation favours the first, which should be a tick
    # (hence `advance`), not a restart.

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """A new tick of the input; the running process gets it, after a write or fsync
        failure was armed now and then."""
        symbols = data.draw(TICK_SYMBOLS, label="symbols")
        # Drawn unconditionally (see optional_fault): same draws whatever the state.
        again = data.draw(AGAIN, label="re-deliver an earlier timestamp (3)") == 3
        pick = data.draw(EARLIER, label="which earlier timestamp")
        armed = optional_fault(
            data, sorted(self.fault_families), state_files_glob(self.backend.capabilities)
        )
        last = self.groups[-1][0].engine_timestamp_ms if self.groups else None
        earlier = [ts for ts in self.stamps if ts != last]
        if again and earlier:
            ts = earlier[pick % len(earlier)]
        else:
            ts = START_MS + len(self.stamps) * STEP_MS
            self.stamps.append(ts)
        group = [snapshot(s, ts, data.draw(REGIMES, label=f"{s} regime")) for s in symbols]
        self.groups.append(group)
        assert self.reference is not None
        self.reference.tick(group)
        self.rule_count += 1
        proc = self.proc
        if proc is None:  # no process: the input only grows (a restart catches up)
            return
        failed = proc.timeline.first_failure() is not None
        if armed is not None and not failed:
            self.steps.append({"fault": armed.to_dict()})
            self.fs.configure(plan=FaultPlan((armed,)))
        self.steps.append({"run": {"ticks": 1}})
        accepted = self._feed()
        self._check_live(refused_next=(not accepted) if failed else None)

    @precondition(lambda self: self.proc is not None)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """Power cut after any op of the running process, then restart on that disk."""
        assert self.proc is not None
        points = [p for p in self.fs.crash_points() if p >= self.proc.start]
        choice = draw_crash(data, self.fs, points, self.profile)
        self._step(choice.step())
        self.steps.append({"restart": {}})
        abandon_runtime(self.proc.runtime)
        self._settle(None if choice.point is None else choice.point + 1)  # nothing is closed
        self.crashed_since_start = True
        self.fs.configure(plan=FaultPlan())
        self.lost_fsync = False
        for index in choice.others():  # restore from every other state of the point too
            self.steps[-2:] = [choice.step(index), {"restart": {}}]
            self.fs.restart(choice.states[index].image)
            self._start(probe=True)
        self.steps[-2:] = [choice.step(), {"restart": {}}]
        self.fs.restart(choice.state.image)
        self._start()

    @precondition(lambda self: self.restart_after_lost_fsync or not (self.proc and self.lost_fsync))
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        """Clean restart (the page cache survives); the new process catches up on the input."""
        self._step({"restart": {}})
        errors: list[str] = []
        if self.proc is not None:
            close_quietly(self.proc.runtime.close, errors)
            self._settle(None)
        self._fail(judge_close(errors))
        self.fs.configure(plan=FaultPlan())
        self._start()

    def teardown(self) -> None:
        try:
            if self.proc is not None:
                with contextlib.suppress(Exception):
                    self.proc.runtime.close()
        finally:
            self.fs.stop()


def orchestrator_machine(
    name: str,
    *,
    backend: Backend | None = None,
    runtime_class: RuntimeClass | None = None,
    runtime_spec: str | None = None,
    fsync_model: FsyncModel | None = None,
    fault_families: frozenset[str] | None = None,
    profile: str = "prefix",
) -> type[OrchestratorMachine]:
    """An OrchestratorMachine class for one backend / runtime / fsync model / fault family
    / file-system profile."""
    attrs: dict[str, Any] = {
        "runtime_spec": runtime_spec,
        "fsync_model": fsync_model,
        "profile": profile,
    }
    if backend is not None:
        attrs["backend"] = backend
    if runtime_class is not None:
        attrs["runtime_class"] = runtime_class
    if fault_families is not None:
        attrs["fault_families"] = frozenset(fault_families)
    return type(name, (OrchestratorMachine,), attrs)
