"""The store-level state machine: a backend alone, under appends, crashes, damage and faults.

Rules: append a batch of valid states (few symbols, equal / duplicate / out-of-order
timestamps), one time in five after arming a write, short-write or fsync failure
(`fault` step); crash (any crash state of the faults layer after any op of the running
process, torn tails included; every other state of that point is restored and
judged too) and restart on that disk; clean restart (restore through the backend
factory); restart, corrupt a committed line and restart on it. The fsync-failure model is
fixed per example. The reference is a plain model of what was committed, and
`crashkit.harness.judge.model.model_restore` as the contract's reading of the bytes the backend
restores from. Invariants, checked at every restore and append:

- restore is fatal exactly when the contract says (R4, or 4 for crash-only damage);
- restore equals the contract's latest-per-symbol over the surviving valid records (R4);
- nothing acknowledged (or seeded) is lost unless its line was corrupted (1);
- nothing restored was never written whole (2); restored states keep the engine
  invariant (7);
- a writer whose append failed is poisoned and refuses every later append (6).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from crashkit.faults import DiskImage, FaultPlan, FsyncModel
from crashkit.harness.judge.invariants import Violation
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import Timeline, abandon, close_quietly, recording_factory
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH, state_files_glob
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    expected_reading,
    judge_append,
    judge_close,
    judge_refusal,
    judge_restored,
)
from crashkit.harness.machines.common import (
    FAULT_FAMILIES,
    FILE_SYNCS,
    CrashChoice,
    crash_fs,
    draw_crash,
    folder_empty,
    index_below,
    optional_fault,
    raise_violations,
    visible_bytes,
)
from crashkit.harness.scenarios import export
from crashkit.harness.scenarios.corrupt import CORRUPTIONS, corrupt_file, corrupt_line, line_count
from crashkit.harness.scenarios.export import backend_spec
from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import Backend, OpenedStore
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

WINDOW = 3
SYMBOLS = ("SYM000", "SYM001", "SYM002")
STAMPS = (1_000, 2_000, 3_000, 4_000)
PROBE_STAMP = 10_000  # a probe's own append: later than every generated state


_OTHER_REGIMES = {a: tuple(r for r in Regime if r != a) for a in Regime}


def _state(
    parts: tuple[str, int, Regime, int, int, int | None],
) -> HysteresisState:
    symbol, ts, anchor, progress, pick, last_commit = parts
    candidate = None if progress == 0 else _OTHER_REGIMES[anchor][pick]
    return HysteresisState(symbol, ts, anchor, candidate, progress, WINDOW, last_commit)


#: States that keep the engine invariant, from a small domain (so ties happen). One
#: flat tuple of prebuilt strategies: cheaper to draw (and shrink) than a composite.
hysteresis_states: st.SearchStrategy[HysteresisState] = st.tuples(
    st.sampled_from(SYMBOLS),
    st.sampled_from(STAMPS),
    st.sampled_from(tuple(Regime)),
    st.integers(0, WINDOW),
    st.integers(0, len(Regime) - 2),
    st.none() | st.sampled_from(STAMPS),
).map(_state)
BATCHES = st.lists(hysteresis_states, min_size=1, max_size=3)


def _seed_line(choice: tuple[HysteresisState, str | None]) -> bytes:
    state, damage = choice
    line = encode_state(state)
    return line if damage is None else corrupt_line(line[:-1], damage) + b"\n"


#: A line of a seeded state file: mostly valid records, sometimes a damaged one.
_damage = st.tuples(st.integers(0, 3), st.sampled_from(CORRUPTIONS)).map(
    lambda t: t[1] if t[0] == 3 else None
)
#: No state file (the writer creates it) as often as a seeded one of 1-3 lines.
seed_lines = st.booleans().flatmap(
    lambda seeded: (
        st.lists(st.tuples(hysteresis_states, _damage).map(_seed_line), min_size=1, max_size=3)
        if seeded
        else st.just([])
    )
)


def _close(opened: OpenedStore) -> list[Violation]:
    """Close a store the machine opened; what close() raised is a finding."""
    errors: list[str] = []
    close_quietly(opened.backend.close, errors)
    return judge_close(errors)


class StoreMachine(RuleBasedStateMachine):
    """Subclass (see `store_machine`) to pick the backend, the fsync model and the faults."""

    backend: ClassVar[Backend] = jsonl.BACKEND
    fsync_model: ClassVar[FsyncModel | None] = None  # None: drawn per example
    #: the file-system profile of its crash states (`crashkit.faults.PROFILES`)
    profile: ClassVar[str] = "prefix"
    fault_families: ClassVar[frozenset[str]] = frozenset(FAULT_FAMILIES)
    #: Start some examples from a seeded state file, and corrupt committed lines: only
    #: for a backend that stores contract-v1 lines (None: as its capabilities say).
    seeded: ClassVar[bool | None] = None
    #: A clean restart after an fsync failure under mark-clean loses later acknowledged
    #: appends on any line backend (see the module notes of harness/machines): off.
    restart_after_lost_fsync: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.fs = crash_fs()
        self.config = HysteresisConfig(window_updates=WINDOW)
        self.model = FsyncModel.KEEP_DIRTY
        self.initial: bytes | None = None
        self.steps: list[export.Step] = []
        self.rule_count = 0
        self.opened: OpenedStore | None = None
        self.timeline = Timeline()
        self.process_start = 0
        self.failed = False  # the running writer had a failed append
        self.lost_fsync = False  # an fsync failed under mark-clean since the last reboot
        self.valid = 0  # valid records in the state file as visible now
        self.corrupted = False
        self.disk_changed = False  # since the last refused start
        self.crashed_since_start = False  # a power cut since the last process started
        # the model: what was committed, what may be on disk, what was ever written
        self.acked: list[HysteresisState] = []
        self.maybe: list[HysteresisState] = []
        self.written: list[HysteresisState] = []

    # -- plumbing -------------------------------------------------------------------------

    def _step(self, step: export.Step) -> None:
        self.rule_count += 1
        self.steps.append(step)

    def _body(self, violations: list[Violation]) -> dict[str, Any]:
        v = violations[0]
        return export.build_scenario(
            description=f"{v.invariant}: {v.message} [store-level machine "
            f"{type(self).__name__}, {self.rule_count} step(s)]",
            fsync_model=self.model.value,
            window_updates=WINDOW,
            input_={"snapshots": []},
            steps=self.steps,
            backend=backend_spec(self.backend),
            profile=self.profile,
            initial_state=self.initial,
            missing_dir=self.initial is None,  # boot() starts such runs from an empty disk
        )

    def _fail(self, violations: list[Violation]) -> None:
        raise_violations(violations, lambda: self._body(violations), self.rule_count)

    def _visible(self) -> bytes | None:
        """The state file as a reader sees it now (no intercepted call, no trace entry)."""
        return visible_bytes(self.fs, STATE_PATH)

    def _lines(self) -> bool:
        """Whether the backend stores contract-v1 lines (seeded files, line corruption)."""
        if self.seeded is not None:
            return self.seeded
        return self.backend.capabilities.line_format

    def _expected(self) -> ModelRestore | None:
        """The contract's reading of the disk, when the harness can read it."""
        return expected_reading(
            self.backend,
            self.config,
            state_bytes=self._visible(),
            folder_empty=folder_empty(self.fs, STATE_DIR),
        )

    def _refresh(self) -> None:
        if not self._lines():
            self.valid = 0  # no line to corrupt
            return
        self.valid = len(model_restore(self._visible(), self.config).records)

    def _settle(self, position: int | None) -> None:
        """End the running process's record: acks at or before `position` (None: all)
        are committed, every other state it tried may or may not be on disk."""
        for a in self.timeline.appends:
            if a.acked and (position is None or a.position <= position):
                self.acked.extend(a.states)
            else:
                self.maybe.extend(a.states)
        self.timeline = Timeline()

    def _stop(self) -> None:
        """Clean stop of the running process (the page cache survives)."""
        found: list[Violation] = []
        if self.opened is not None:
            found = _close(self.opened)
            self.opened = None
        self._settle(None)
        self._fail(found)

    def _open(self, *, probe: bool = False) -> OpenedStore | None:
        """Start a process: restore through the factory, then judge the restore.

        A probe only restores and judges; it returns the opened store (the caller
        closes it) and leaves the machine's process as it was."""
        fs = self.fs
        expect = self._expected()
        timeline = Timeline(position=lambda: len(fs.trace))
        if not probe:
            self.timeline = timeline
            self.process_start = len(fs.trace)
            self.failed = False
        try:
            opened = recording_factory(self.backend.open, timeline)(STATE_PATH, self.config)
        except StartupRefused as exc:
            if not probe:
                self.disk_changed = False
            self._judge_refusal(exc.reason, expect)
            return None
        except Exception as exc:  # a backend must refuse cleanly, not crash
            self._judge_refusal(crash_reason(exc), expect)
            return None
        if not probe:
            self.opened = opened
            self.crashed_since_start = False
        try:
            self._judge_restore(opened.store.states, expect)
        except BaseException:
            if probe:
                self._fail(_close(opened))
            raise
        return opened

    def _probe(self, choice: CrashChoice) -> None:
        """Restore from every other state of the crash point too (cheap: restores only),
        each judged as if the crash had gone there. Where the state ends in a torn
        tail, also append once and restore again (as the explorer does): an append
        must never land behind bytes the backend should have cut."""
        for index in range(len(choice.states)):
            state = choice.states[index]
            data = state.image.get(STATE_PATH)
            torn = bool(data) and not (data or b"").endswith(b"\n")
            if index == choice.index and not torn:
                continue  # the crash goes there next: judged then
            self.steps[-2:] = [choice.step(index), {"restart": {}}]
            self._reboot(state.image)
            opened = self._open(probe=True)
            if opened is None:
                continue
            if not torn:
                self._fail(_close(opened))
                continue
            self._probe_append(opened)
        self.steps[-2:] = [choice.step(), {"restart": {}}]

    def _probe_append(self, opened: OpenedStore) -> None:
        """Append one record that beats every generated one, stop, restore again."""
        record = HysteresisState(
            SYMBOLS[0], PROBE_STAMP, Regime.CHOP_BALANCED, None, 0, WINDOW, None
        )
        acked, written, steps = list(self.acked), list(self.written), len(self.steps)
        self.steps += [{"append": {"records": [export.record_fields(record)]}}, {"restart": {}}]
        self.written.append(record)
        try:
            opened.backend.append([record])
            self.acked.append(record)
        except Exception:
            pass  # a failure is legitimate (the cut may fail); the record may or may not land
        self._fail(_close(opened))
        again = self._open(probe=True)
        if again is not None:
            self._fail(_close(again))
        self.acked, self.written = acked, written
        del self.steps[steps:]

    def _judge_refusal(self, reason: str, expect: ModelRestore | None) -> None:
        # After a power cut, refusing is taking crash damage as fatal (4); otherwise the
        # refusal misreads the restore table (R4). Every driver judges alike.
        self._fail(judge_refusal(reason, expected=expect, crashed=self.crashed_since_start))

    def _judge_restore(
        self, restored: dict[str, HysteresisState], expect: ModelRestore | None
    ) -> None:
        later = self.written if self.corrupted else self.maybe
        ledger = Ledger.build(self.acked, later=later, written=self.written)
        self._fail(judge_restored(restored, ledger, expected=expect))

    def _reboot(self, image: DiskImage) -> None:
        """Power back on with `image` on disk (fully durable), faults disarmed."""
        self.fs.configure(plan=FaultPlan())
        self.fs.restart(image)
        self.lost_fsync = False
        self.disk_changed = True

    def _may_restart(self) -> bool:
        """Not after a refusal on an unchanged disk (it would only refuse again, unless
        nothing else is possible), and not out of a mark-clean fsync failure."""
        if self.opened is None:
            return self.disk_changed or self.valid < 2
        return self.restart_after_lost_fsync or not self.lost_fsync

    # -- rules ----------------------------------------------------------------------------
    #
    # A crash or a corrupt ends with the restart that restores from the damaged disk
    # (two scenario steps, one rule), so examples rarely sit with no process running.

    @initialize(data=st.data())
    def boot(self, data: st.DataObject) -> None:
        self.model = self.fsync_model or data.draw(st.sampled_from(FsyncModel), label="model")
        lines = data.draw(seed_lines, label="seeded lines") if self._lines() else []
        self.initial = b"".join(lines) if lines else None
        image = (
            None
            if self.initial is None
            else DiskImage(files={STATE_PATH: self.initial}, dirs=(STATE_DIR,))
        )
        seed = model_restore(self.initial, self.config)
        self.acked = list(seed.records)
        self.written = list(seed.records)
        self.fs.stop()  # in case an earlier example died before its teardown
        self.fs.configure(plan=FaultPlan(), model=self.model, record=True)
        self.fs.start(image)
        self._open()
        self._refresh()

    # Every rule takes exactly one `data` argument: hypothesis orders rules by argument
    # count, then name, and generation favours the first; this way it is `append`
    # rather than a restart (no argument) that examples are made of by default.

    @precondition(lambda self: self.opened is not None)
    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        """Append a batch, after arming a write or fsync failure now and then."""
        batch = data.draw(BATCHES, label="batch")
        self.rule_count += 1
        armed = optional_fault(
            data, sorted(self.fault_families), state_files_glob(self.backend.capabilities)
        )
        if armed is not None:
            self.steps.append({"fault": armed.to_dict()})
            self.fs.configure(plan=FaultPlan((armed,)))
        self.steps.append({"append": {"records": [export.record_fields(s) for s in batch]}})
        assert self.opened is not None
        backend = self.opened.backend
        was_failed = self.failed
        trace = self.fs.trace
        before = len(trace)
        self.written.extend(batch)
        try:
            backend.append(batch)
            ok = True
        except Exception:
            ok = False
        if not ok and self.model is FsyncModel.MARK_CLEAN:
            self.lost_fsync |= any(op.op in FILE_SYNCS and op.error for op in trace[before:])
        self._refresh()
        if not ok:
            self.failed = True
        self._fail(judge_append(acked=ok, failed_before=was_failed, poisoned=backend.poisoned))

    @precondition(lambda self: self.opened is not None)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """Power cut after any op of the running process, then restart on that disk."""
        points = [p for p in self.fs.crash_points() if p >= self.process_start]
        choice = draw_crash(data, self.fs, points, self.profile)
        self._step(choice.step())
        self.steps.append({"restart": {}})
        if self.opened is not None:
            abandon(self.opened.backend)
        self.opened = None  # a power cut: nothing is closed
        self.crashed_since_start = True
        self._settle(None if choice.point is None else choice.point + 1)
        self._probe(choice)
        self._reboot(choice.state.image)
        self._open()
        self._refresh()

    @precondition(lambda self: self._may_restart())
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        """Clean restart: stop (the page cache survives), restore through the factory."""
        self._step({"restart": {}})
        self._stop()
        self.fs.configure(plan=FaultPlan())
        self._open()
        self._refresh()

    @precondition(lambda self: self.valid >= 2)
    @rule(data=st.data())
    def corrupt(self, data: st.DataObject) -> None:
        """Restart (whose restore must find everything acknowledged), damage one committed
        line offline, restart on it. Only while two valid records are visible, so damage
        alone never makes the file fatal (seeded files do).

        The first restart settles what was committed before the damage: a loss is
        reported there, so the scenario runner (which judges durability against the
        damaged disk from a `corrupt` on) sees it as well."""
        self._step({"restart": {}})
        self._stop()
        self.fs.configure(plan=FaultPlan())
        self._open()
        current = self._visible() or b""
        count = line_count(current)  # counted back from the end (see draw_crash)
        line = count - data.draw(index_below(count), label="lines before the last")
        kind = CORRUPTIONS[data.draw(index_below(len(CORRUPTIONS)), label="damage")]
        self.steps.append({"corrupt": {"line": line, "with": kind}})
        self._stop()
        self.corrupted = True
        damaged = corrupt_file(current, line, kind)
        # What is committed from here on is what the damaged file holds, record by record:
        # its winners (as the scenario runner judges a `corrupt` step). Not the ledger
        # minus one line: a backend that rewrote its file (compaction) may hold one copy
        # of a record the ledger acknowledged several times, or none of one it replaced.
        self.acked = list(model_restore(damaged, self.config).states.values())
        image = self.fs.visible_image()
        files = dict(image.files)
        files[STATE_PATH] = damaged
        self._reboot(DiskImage(files=files, dirs=image.dirs))
        self.steps.append({"restart": {}})
        self._open()
        self._refresh()

    def teardown(self) -> None:
        try:
            if self.opened is not None:
                with contextlib.suppress(Exception):
                    self.opened.backend.close()
        finally:
            self.fs.stop()


def store_machine(
    name: str,
    *,
    backend: Backend | None = None,
    fsync_model: FsyncModel | None = None,
    fault_families: frozenset[str] | None = None,
    seeded: bool | None = None,
    profile: str = "prefix",
) -> type[StoreMachine]:
    """A StoreMachine class for one backend / fsync model / fault family / profile."""
    attrs: dict[str, Any] = {"fsync_model": fsync_model, "seeded": seeded, "profile": profile}
    if backend is not None:
        attrs["backend"] = backend
    if fault_families is not None:
        attrs["fault_families"] = frozenset(fault_families)
    return type(name, (StoreMachine,), attrs)
