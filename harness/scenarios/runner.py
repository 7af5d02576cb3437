"""Runs one scenario: one simulated machine, a fake disk, orchestrator processes, the oracles.

The machine has a fake disk (`faults.CrashFS`, which knows what is durable) and
runs orchestrator processes on it one after the other, each with its own
timeline of appends and publishes (`crashkit.harness.judge.observe`). Like `crashkit run`, every
process reads the recorded input from its first tick (contract C6.7): `run`
feeds the running process its next N ticks, so a restarted process is fed again
what its predecessor had read. The runner does no file-system call of its own
between the steps (it reads the disk through the fault layer's snapshots), so an
op index in a `crash` step means the same op as in the run that exported it.
Every start, crash and the final restore are judged by the oracles of contract
§9, as the crash explorer judges one crash state; then the scenario's `expect`
block is compared with what was observed.
"""

from __future__ import annotations

import fnmatch
import stat
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import msgspec

from crashkit.faults import CrashFS, CrashState, DiskImage, FaultPlan, FaultRule, profile_named
from crashkit.harness.explore.explorer import NotApplicable, other_symbol
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import INVARIANTS, Invariant, Violation
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import (
    AppendRecord,
    PublishRecord,
    RecordingBackend,
    RecordingSink,
    Timeline,
    abandon_runtime,
    close_quietly,
    offer_again,
)
from crashkit.harness.judge.observe import recording_factory as _recording_factory
from crashkit.harness.judge.paths import (
    STATE_DIR,
    STATE_PATH,
    leftover_temp_files,
    undeclared_files,
)
from crashkit.harness.judge.runtime_model import model_run
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    image_reading,
    judge_append,
    judge_close,
    judge_continuity,
    judge_leftover_temp,
    judge_process,
    judge_published,
    judge_refusal,
    judge_restored,
    judge_single_writer,
    judge_start_fault,
    judge_undeclared_files,
    start_faults,
    uninterrupted,
)
from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.corrupt import FILE_DAMAGES, CorruptionKind
from crashkit.harness.scenarios.corrupt import corrupt_line as _machine_corrupt_line
from crashkit.harness.scenarios.expect import compare
from crashkit.harness.scenarios.loader import LoadedScenario, hex_bytes, load_scenario
from crashkit.harness.scenarios.results import INVARIANT_CHECK, Check, Observed, ScenarioResult
from crashkit.harness.scenarios.seeding import seeded_image
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import ExitCode, HaltedError, StartupRefused
from crashkit.orchestrator.events import Event, MemorySink
from crashkit.orchestrator.replay import full_replay, resume_replay
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.jsonl import restore_report
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, Backend
from crashkit.orchestrator.validation import PathPart, key_path
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import (
    PERSISTED_FIELDS,
    HysteresisConfig,
    HysteresisState,
    RegimeInputSnapshot,
)

#: What Python exits with when the CLI dies of an uncaught exception (not one of ours).
TRACEBACK_EXIT = 1


class _Shared:
    """One CrashFS per process: its pyfakefs Patcher is reused from run to run (cheap)."""

    fs: CrashFS | None = None


def shared_fs() -> CrashFS:
    """The process's CrashFS (recording: crash states need the op snapshots)."""
    if _Shared.fs is None:
        _Shared.fs = CrashFS(record=True)
    return _Shared.fs


# -- one process --------------------------------------------------------------------------------


@dataclass(slots=True)
class Proc:
    """One orchestrator process on the machine."""

    index: int
    boot: int
    epoch: int
    start_pos: int
    runtime: HysteresisRuntime
    timeline: Timeline
    sink: RecordingSink
    status: str = "running"  # running | refused | halted | exited | crashed | vanished
    outcome: str | None = None
    refusal: str | None = None
    unhandled: bool = False
    restored: dict[str, HysteresisState] | None = None
    refused_next: bool | None = None
    offered_after_halt: bool = False
    offered_again: bool = False  # its failed append was offered to the backend once more
    end_pos: int | None = None
    cutoff: int | None = None  # trace position of a power cut in this process's boot
    direct: list[AppendRecord] = field(default_factory=list)  # store-level `append` steps
    consumed: int = 0  # ticks of the input this process has read
    completed: list[tuple[int, int]] = field(default_factory=list)  # (tick ts, position)

    def seen(self, position: int) -> bool:
        """Whether something at trace `position` happened before this boot's power cut."""
        return self.cutoff is None or position <= self.cutoff

    def publishes(self) -> list[PublishRecord]:
        return [p for p in self.timeline.publishes if self.seen(p.position)]

    def appends(self) -> list[AppendRecord]:
        return [a for a in self.timeline.appends if self.seen(a.position)]

    def all_appends(self) -> list[AppendRecord]:
        return sorted([*self.timeline.appends, *self.direct], key=lambda a: a.seq)

    def acks(self) -> list[tuple[int, HysteresisState]]:
        return [
            (a.seq, st)
            for a in self.all_appends()
            if a.acked and self.seen(a.position)
            for st in a.states
        ]

    @property
    def exit_code(self) -> int | None:
        """What `crashkit run` would exit with (plain data: scenario files hold ints)."""
        if self.status in ("crashed", "vanished"):
            return None
        if self.status == "refused":
            return TRACEBACK_EXIT if self.unhandled else int(ExitCode.REFUSED)
        stats = self.runtime.stats
        if stats.halted:
            return int(ExitCode.HALTED)
        if stats.halted_symbols:
            return int(ExitCode.SYMBOL_FAILED)
        return int(ExitCode.OK)


# -- helpers ---------------------------------------------------------------------------------------


class StepFailed(Exception):
    """A step cannot be carried out on this run (a crash cut that does not exist, no
    ticks left, ...): what the file describes did not happen, so the scenario fails."""

    def __init__(self, parts: Sequence[PathPart], message: str) -> None:
        super().__init__(message)
        self.key = key_path(parts)
        self.message = message


def corrupted(i: int, step: s.CorruptStep, image: DiskImage) -> DiskImage:
    """`image` with line `step.line` of the state file damaged as step `i` says (both
    modes); a missing file or line fails the step."""
    parts: list[PathPart] = ["steps", i, "corrupt", "line"]
    data = image.files.get(STATE_PATH)
    if data is None:
        raise StepFailed(parts, "there is no state file to corrupt")
    lines = data.split(b"\n")
    complete = len(lines) - 1
    if step.line > complete:
        raise StepFailed(parts, f"the state file has only {complete} complete line(s)")
    try:
        lines[step.line - 1] = corrupt_line(lines[step.line - 1], step.with_)
    except ValueError as exc:
        raise StepFailed(["steps", i, "corrupt", "with"], str(exc)) from exc
    files = dict(image.files)
    files[STATE_PATH] = b"\n".join(lines)
    return DiskImage(files=files, dirs=image.dirs)


def corrupt_line(line: bytes, kind: CorruptionKind | s.RawHex) -> bytes:
    """The replacement bytes for one line (without its `\\n`): the state machines' own
    vocabulary, so an exported `corrupt` step writes exactly the bytes the machine wrote."""
    if isinstance(kind, s.RawHex):
        return hex_bytes(kind.raw_hex)
    return _machine_corrupt_line(line, kind)


def pick_cut(
    i: int, states: Sequence[CrashState], cut: int | str, unreachable: str, notes: list[str]
) -> CrashState:
    """The crash state step `i`'s `cut` names (an index, "first", "last" or a cut's text;
    one this code cannot leave fails the step, or with `unreachable: last` takes the last
    and says so in `notes`). Shared by both modes' runners."""
    parts: list[PathPart] = ["steps", i, "crash", "cut"]
    listing = "; ".join(f"[{n}] {st.cut!r}" for n, st in enumerate(states))
    if cut == "first":
        return states[0]
    if cut == "last":
        return states[-1]
    if isinstance(cut, int):
        if cut >= len(states):
            raise StepFailed(parts, f"no crash state {cut}; there are: {listing}")
        return states[cut]
    for st in states:
        if st.cut == cut:
            return st
    if unreachable == "last":
        notes.append(
            f"steps[{i}]: cut {cut!r} cannot happen here (unreachable: last); "
            f"took {states[-1].cut!r}"
        )
        return states[-1]
    raise StepFailed(
        parts,
        f"no crash state with cut {cut!r} at this point; this code leaves: {listing} "
        "(if the scenario reproduces a bug that is fixed now, that state may be "
        "unreachable: re-export the scenario or edit the cut)",
    )


def _persisted(state: HysteresisState) -> dict[str, object]:
    payload = ev.state_payload(state)
    return {k: payload[k] for k in PERSISTED_FIELDS}


# -- the machine ---------------------------------------------------------------------------------


class Machine:
    """One scenario's machine: `power_on()`, `run_steps()`, `finish()` (the final restore),
    `judge_processes()`, then `observed()` for the expectations."""

    def __init__(self, sc: LoadedScenario, fs: CrashFS) -> None:
        self.sc = sc
        self.fs = fs
        self.groups: list[list[RegimeInputSnapshot]] = list(ticks(sc.snapshots))
        self.config: HysteresisConfig = sc.config
        self.procs: list[Proc] = []
        self.boot = 0
        self.epoch = 0
        seed = self._seed_model()
        self.baseline: list[HysteresisState] = list(seed.states.values())
        self.baseline_written: list[HysteresisState] = list(seed.records)
        #: after a `damage` step to a store of its own format: the epoch it began, and the
        #: symbols acknowledged before it, each of which a start must restore (or refuse)
        self.damaged_epoch = -1
        self.damaged_symbols: set[str] = set()
        self.crashed_since_start = False
        self.violations: list[tuple[Violation, str]] = []
        self.step_checks: list[Check] = []
        self.at_step = -1  # the index of the step being carried out
        self.traces: list[tuple[str, ...]] = []
        self.created: set[str] = set()  # files the backend's opens created, every boot
        self.notes: list[str] = []
        #: False once a step made the run another than the file describes
        self.expectations_judged = True

    # -- disk -----------------------------------------------------------------------------

    def _seed_model(self) -> ModelRestore:
        return seed_model(self.sc)

    def boot_image(self) -> DiskImage:
        return boot_image(self.sc)

    def power_on(self) -> None:
        fs = self.fs
        fs.configure(plan=FaultPlan(), model=self.sc.model, record=True)
        fs.start(self.boot_image())
        if self.sc.seed.kind == "fifo":
            fs.filesystem.create_file(STATE_PATH, st_mode=stat.S_IFIFO | 0o644)

    def _note_created(self) -> None:
        self.created.update(op.path for op in self.fs.trace if op.op == "open" and op.mutating)

    def _reboot(self, image: DiskImage) -> None:
        self._note_created()
        self.traces.append(tuple(str(op) for op in self.fs.trace))
        for proc in self.procs:  # the power cut took every process still holding its store
            if proc.boot == self.boot:
                abandon_runtime(proc.runtime)
        self.fs.restart(image)
        self.boot += 1

    def _disk_model(self) -> ModelRestore | None:
        """The harness's own reading (contract §4) of what a restore would read now (None:
        the backend keeps its own format and the disk is not empty). A state path that is
        not a regular file must be refused by any backend."""
        fsys = self.fs.filesystem
        if fsys.exists(STATE_PATH) and not stat.S_ISREG(fsys.stat(STATE_PATH).st_mode):
            return ModelRestore("fatal", {}, (), ())
        return image_reading(self.sc.backend, self.fs.visible_image(), self.config)

    def _position(self) -> int:
        return len(self.fs.trace)

    # -- faults ---------------------------------------------------------------------------

    def _arm(self, rule: FaultRule | None) -> None:
        """Arm one rule (its `nth` counts calls from now), replacing the armed one. A
        backend that keeps no file at the state path itself (its declared files are
        `{path}.dat`, `{path}.dir`, ...) has a rule on the state path applied to its files:
        the `nth` call on any of them."""
        if rule is not None and fnmatch.fnmatchcase(STATE_PATH, rule.path):
            patterns = self.sc.backend.capabilities.file_patterns(STATE_PATH)
            if STATE_PATH not in patterns:
                rule = replace(rule, path=STATE_PATH + "*")
                # the file counts its calls on the reference's one file: on these files
                # the `nth` call is another one, and only the invariants judge the run
                self.expectations_judged = False
                self.notes.append(
                    f"fault {rule.describe()}: on the backend's files "
                    f"({', '.join(patterns)}); judged on the invariants, not the file's "
                    "expectations"
                )
        self.fs.configure(plan=FaultPlan(() if rule is None else (rule,)))

    # -- processes ---------------------------------------------------------------------------

    def current(self) -> Proc | None:
        """The last process unless a power cut killed it (then a new one is needed)."""
        if self.procs and self.procs[-1].status not in ("crashed", "vanished"):
            return self.procs[-1]
        return None

    def _found(self, violations: Iterable[Violation], where: str) -> None:
        self.violations.extend((v, where) for v in violations)

    def _epoch_procs(self, exclude: Proc | None = None) -> list[Proc]:
        return [
            p
            for p in self.procs
            if p.epoch == self.epoch and p is not exclude and p.status != "vanished"
        ]

    def _acked_and_later(
        self, exclude: Proc | None = None
    ) -> tuple[list[HysteresisState], list[HysteresisState]]:
        acked: list[HysteresisState] = list(self.baseline)
        later: list[HysteresisState] = []
        for p in self._epoch_procs(exclude):
            for a in p.all_appends():
                if a.acked and p.seen(a.position):
                    acked.extend(a.states)
                else:
                    later.extend(a.states)
        return acked, later

    def _written(self) -> list[HysteresisState]:
        out = list(self.baseline_written)
        for p in self._epoch_procs():
            for a in p.all_appends():
                out.extend(a.states)
        return out

    def _ledger(self, exclude: Proc | None) -> Ledger:
        """What the processes of this epoch (all but `exclude`) acknowledged, attempted,
        wrote and published before the power cut of their boot, if any."""
        acked, later = self._acked_and_later(exclude)
        published = [r.event for p in self._epoch_procs(exclude) for r in p.publishes()]
        return Ledger.build(acked, later=later, written=self._written(), published=published)

    def _judge_refusal(
        self, reason: str, model: ModelRestore | None, injected: bool, where: str
    ) -> None:
        self._found(
            judge_refusal(
                reason, expected=model, crashed=self.crashed_since_start, injected=injected
            ),
            where,
        )

    def start(self, where: str) -> Proc:
        """A new process on the disk as it is: restore, or refuse to start."""
        fs = self.fs
        model = self._disk_model()
        timeline = Timeline(position=lambda: len(fs.trace))
        sink = RecordingSink(timeline)
        runtime = self.sc.runtime_class(
            config=self.config,
            state_path=STATE_PATH,
            sink=sink,
            backend_factory=_recording_factory(self.sc.backend, timeline),
            clock=engine_commit_clock,
        )
        start_pos = self._position()
        proc = Proc(len(self.procs), self.boot, self.epoch, start_pos, runtime, timeline, sink)
        self.procs.append(proc)
        try:
            report = runtime.start()
            proc.outcome = report.outcome
            proc.restored = dict(runtime.states)
        except StartupRefused as exc:
            proc.status, proc.refusal, proc.outcome = "refused", exc.reason, "fatal"
        except Exception as exc:  # a backend must refuse cleanly, not crash
            proc.status, proc.outcome, proc.unhandled = "refused", "fatal", True
            proc.refusal = crash_reason(exc)
        injected = any(op.injected for op in fs.trace[start_pos:])
        if proc.refusal is not None:
            proc.end_pos = self._position()
            self._judge_refusal(proc.refusal, model, injected, where)
            return proc
        assert proc.restored is not None
        self._found(
            judge_restored(
                proc.restored, self._ledger(exclude=proc), expected=None if injected else model
            ),
            where,
        )
        self._found(judge_start_fault(True, start_faults(fs.trace[start_pos:])), where)
        self._found(judge_leftover_temp(leftover_temp_files(self.sc.backend.capabilities)), where)
        if proc.epoch == self.damaged_epoch and (
            missing := sorted(self.damaged_symbols - set(proc.restored))
        ):
            self._found(
                [
                    Violation(
                        Invariant.RESTORE_TABLE,
                        f"the store was damaged and the backend started without "
                        f"{', '.join(missing)}: a store that is not a line file must refuse "
                        "rather than reset a symbol it cannot read (C4.6, C4.7, contract 9a)",
                    )
                ],
                where,
            )
        self.crashed_since_start = False
        return proc

    def feed(self, proc: Proc, count: int) -> None:
        """Offer the process its next `count` ticks; a halted runtime must refuse (C6.13),
        which ends the feed."""
        runtime = proc.runtime
        for _ in range(count):
            group = self.groups[proc.consumed]
            failed_before = proc.timeline.first_failure() is not None
            try:
                runtime.tick(group)
            except HaltedError:
                proc.refused_next = True
                break
            if failed_before and proc.refused_next is None:
                proc.refused_next = False  # it took a tick after a persist failure
            proc.consumed += 1
            if runtime.stats.halted:
                proc.status = "halted"
            else:
                proc.completed.append((group[0].engine_timestamp_ms, self._position()))
        failed = proc.timeline.first_failure()
        if proc.status == "halted" and failed is not None and not proc.offered_again:
            # as the explorer does: the failed records once more, to the backend itself
            proc.offered_again = True
            acked, poisoned = offer_again(runtime.backend, failed.states)
            if not acked:  # and a symbol it was not writing: C5.6 poisons all of them
                acked, poisoned = offer_again(runtime.backend, [other_symbol(failed.states)])
            verdicts = judge_append(acked=acked, failed_before=True, poisoned=poisoned)
            self._found(verdicts, f"process {proc.index}")

    def _stop(self, proc: Proc | None) -> None:
        """A clean exit of a live process (the end of its input, or an operator's restart)."""
        if proc is not None and proc.status in ("running", "halted"):
            errors: list[str] = []
            close_quietly(proc.runtime.close, errors)
            self._found(judge_close(errors), f"process {proc.index}")
            if proc.status == "running":
                proc.status = "exited"
            proc.end_pos = self._position()

    # -- steps ---------------------------------------------------------------------------------

    def run_steps(self) -> None:
        """The steps in order; the first process starts before the first non-`fault` step."""
        for i, step in enumerate(self.sc.spec.steps):
            self.at_step = i
            where = f"steps[{i}]"
            if not self.procs and not isinstance(step.fault, s.FaultStep):
                self.start(where)
            if isinstance(step.run, s.RunStep):
                self.step_run(i, step.run, where)
            elif isinstance(step.append, s.AppendStep):
                self.step_append(i, where)
            elif isinstance(step.fault, s.FaultStep):
                self._arm(self.sc.fault_rules[i])
            elif isinstance(step.crash, s.CrashStep):
                self.step_crash(i, step.crash)
            elif step.restart is not msgspec.UNSET:
                self._stop(self.current())
                self._arm(None)  # a fault is armed for one process's life
                if i in self.sc.restart_configs:
                    self.config = self.sc.restart_configs[i]
                self.start(where)
            elif isinstance(step.corrupt, s.CorruptStep):
                self.step_corrupt(i, step.corrupt)
            elif isinstance(step.replay, s.ReplayStep):
                self.step_replay(i, step.replay)
            elif isinstance(step.compact, s.CompactStep):
                self.step_compact(i, where)
            elif isinstance(step.second_writer, s.SecondWriterStep):
                self.step_second_writer(i, where)
            elif isinstance(step.damage, s.DamageStep):
                self.step_damage(i, step.damage)

    def step_run(self, i: int, step: s.RunStep, where: str) -> None:
        proc = self.current() or self.start(where)
        if proc.status == "refused":
            return  # nothing runs: the process never started
        left = len(self.groups) - proc.consumed
        count = left if step.ticks == "all" else step.ticks
        if count > left:
            raise StepFailed(
                ["steps", i, "run", "ticks"],
                f"process {proc.index} has read {proc.consumed} of the input's "
                f"{len(self.groups)} ticks: only {left} left",
            )
        self.feed(proc, count)

    def step_compact(self, i: int, where: str) -> None:
        """Stop the process, compact offline (`Backend.compact`), start a new process."""
        compact = self.sc.backend.compact
        if compact is None:
            raise StepFailed(
                ["steps", i, "compact"],
                f"backend {self.sc.backend.name} declares no offline compaction (Backend.compact)",
            )
        self._stop(self.current())
        self._arm(None)
        try:
            compact(STATE_PATH, self.config)
        except StartupRefused:
            pass  # a refusal is an answer: the file is left as it was
        except Exception as exc:
            self._judge_refusal(crash_reason(exc), None, False, where)
        self.start(where)

    def step_damage(self, i: int, step: s.DamageStep) -> None:
        """Offline damage to the state file (a failing disk, not a crash): the process
        exits, the file is edited, the disk reboots fully durable. From then on a line file
        is held to the contract's reading of its damaged lines (as after `corrupt`); any
        other store to every symbol it acknowledged before (with states written whole, an
        older one where it keeps history): it restores each of them or refuses."""
        self._stop(self.current())
        image = self.fs.visible_image()
        # the state file, or (a backend that keeps none at the state path) the first of
        # its declared files that holds something: its data file
        target = next(
            (
                path
                for path in self.sc.backend.capabilities.file_patterns(STATE_PATH)
                if image.get(path)
            ),
            STATE_PATH,
        )
        if image.get(STATE_PATH) is not None:
            target = STATE_PATH
        data = image.get(target)
        damaged = FILE_DAMAGES[step.with_](data or b"")
        if data is None or damaged == data:
            raise StepFailed(
                ["steps", i, "damage", "with"],
                f"{step.with_} changes nothing in {target} ({len(data or b'')} bytes)",
            )
        if target != STATE_PATH:
            self.notes.append(f"steps[{i}]: {step.with_} applied to {target}")
        acked = self._acked_and_later()[0]
        written = self._written()
        self._arm(None)
        self._reboot(DiskImage(files={**image.files, target: damaged}, dirs=image.dirs))
        self.epoch += 1
        if self.sc.backend.capabilities.line_format:
            seed = model_restore(damaged, self.config)
            self.baseline, self.baseline_written = list(seed.states.values()), list(seed.records)
        else:  # its own format: it may fall back to older states it kept, never drop one
            self.baseline, self.baseline_written = [], written
            self.damaged_epoch, self.damaged_symbols = self.epoch, {s.symbol for s in acked}

    def step_second_writer(self, i: int, where: str) -> None:
        """C5.9: while the running process holds the state path, healthy or halted, a
        second open of it is refused (W5); one that opens is closed again at once."""
        proc = self.current() or self.start(where)
        if proc.status not in ("running", "halted"):
            raise StepFailed(
                ["steps", i, "second_writer"], f"no process holds the state path (it {proc.status})"
            )
        try:
            second = self.sc.backend.open(STATE_PATH, self.config)
        except StartupRefused as exc:
            refusal: str | None = exc.reason
        except Exception as exc:
            refusal = crash_reason(exc)
        else:
            refusal = None
            errors: list[str] = []
            close_quietly(second.backend.close, errors)
            self._found(judge_close(errors), where)
        self._found(judge_single_writer(refusal, None), where)

    def step_append(self, i: int, where: str) -> None:
        proc = self.current() or self.start(where)
        if proc.status not in ("running", "halted"):
            raise StepFailed(
                ["steps", i, "append"], f"no process to append with (it {proc.status})"
            )
        backend = proc.runtime.backend
        inner = backend.inner if isinstance(backend, RecordingBackend) else backend
        states = self.sc.append_states[i]
        failed_before = proc.timeline.first_failure() is not None or any(
            not a.acked for a in proc.direct
        )
        try:
            inner.append(states)
            acked, error = True, None
        except Exception as exc:  # recorded like a failed append; the backend is poisoned
            acked, error = False, str(exc)
        proc.direct.append(
            AppendRecord(proc.timeline.next_seq(), states, acked, error, self._position())
        )
        verdicts = judge_append(acked=acked, failed_before=failed_before, poisoned=inner.poisoned)
        self._found(verdicts, f"steps[{i}]")

    def _pick_cut(
        self, i: int, states: list[CrashState], cut: int | str, unreachable: str = "fail"
    ) -> CrashState:
        return pick_cut(i, states, cut, unreachable, self.notes)

    def step_crash(self, i: int, step: s.CrashStep) -> None:
        """Power cut: the disk becomes one crash state, every process of this boot is gone."""
        fs = self.fs
        trace = fs.trace
        point: int | None = None
        if isinstance(step.point, int):
            if step.point >= len(trace):
                raise StepFailed(
                    ["steps", i, "crash", "point"],
                    f"no op {step.point}: the trace since the disk last booted has "
                    f"{len(trace)} ops (run with --trace to list them)",
                )
            point = step.point
        states = fs.crash_states(point, profile=self.sc.profile)
        chosen = self._pick_cut(i, states, step.cut, step.unreachable)
        # A crash after op `point` comes at any moment before the next op that changes the
        # disk (as in the explorer): what was acknowledged or published until then counts.
        cutoff = len(trace)
        if point is not None:
            cutoff = next((op.index for op in trace[point + 1 :] if op.mutating), len(trace))
        after = "the last op" if point is None else f"op #{point} ({trace[point].op})"
        self.notes.append(f"steps[{i}]: crash after {after}: cut {chosen.cut!r}")
        for proc in self.procs:
            if proc.boot != self.boot or proc.status == "vanished":
                continue
            if proc.start_pos >= cutoff:
                proc.status = "vanished"  # it would have started after the power cut
                continue
            proc.cutoff = cutoff
            if proc.status == "running" or (proc.end_pos is not None and proc.end_pos > cutoff):
                proc.status = "crashed"
        self._arm(None)
        self._reboot(chosen.image)
        self.crashed_since_start = True

    def step_corrupt(self, i: int, step: s.CorruptStep) -> None:
        """Offline damage: the process exits, line N is rewritten, the disk is fully durable.
        A backend that is not a line file gets the record line N holds (the N-th record
        written) damaged in place, as `_corrupt_record` says."""
        self._stop(self.current())
        image = self.fs.visible_image()
        if not self.sc.backend.capabilities.line_format:
            self._corrupt_record(i, step, image)
            return
        damaged = corrupted(i, step, image)
        new = damaged.files[STATE_PATH]
        self._arm(None)
        self._reboot(damaged)
        self.epoch += 1  # deliberate damage: durability is judged from this disk on
        seed = model_restore(new, self.config)
        self.baseline = list(seed.states.values())
        self.baseline_written = list(seed.records)

    def _corrupt_record(self, i: int, step: s.CorruptStep, image: DiskImage) -> None:
        """`corrupt` on a store of its own format: the record that line N of the line file
        holds (the N-th record written, in order) is damaged wherever its canonical text
        lies in the store's files, at the same length (so only the record's own decoding
        can tell; a kind that changes the length flips its middle byte instead). A store
        that kept no copy of it (one row per symbol keeps only the winner) is left as it
        is, and the file's expectations still describe the run. Otherwise the run is held
        to the damage rule (`step_damage`) and every invariant, not to the expectations:
        they say how a line file skips the line, where a store with one row per symbol
        must refuse."""
        written = self._written()
        if not 1 <= step.line <= len(written):
            raise StepFailed(
                ["steps", i, "corrupt", "line"], f"only {len(written)} record(s) were written"
            )
        text = encode_state(written[step.line - 1])[:-1]
        damaged = corrupt_line(text, step.with_)
        if len(damaged) != len(text):
            middle = len(text) // 2
            damaged = text[:middle] + bytes([text[middle] ^ 0xFF]) + text[middle + 1 :]
        files = {
            path: data.replace(text, damaged) if path.startswith(STATE_DIR + "/") else data
            for path, data in image.files.items()
        }
        if files == dict(image.files):
            kept = [
                data
                for path, data in image.files.items()
                if path.startswith(STATE_DIR + "/") and data
            ]
            if not any(encode_state(st)[:-1] in data for st in written for data in kept):
                raise NotApplicable(
                    "the store keeps no record's canonical text (its contract-v1 line) in "
                    "its files, so a corrupt step cannot damage it (its damage is checked "
                    "by the declared-damage row: Backend.damage)"
                )
            self.notes.append(
                f"steps[{i}]: the store keeps no copy of line {step.line}'s record: unchanged"
            )
            self._arm(None)
            self._reboot(image)
            return
        acked = self._acked_and_later()[0]
        self._arm(None)
        self._reboot(DiskImage(files=files, dirs=image.dirs))
        self.epoch += 1
        self.baseline, self.baseline_written = [], written
        self.damaged_epoch, self.damaged_symbols = self.epoch, {s.symbol for s in acked}
        self.expectations_judged = False
        self.notes.append(
            f"steps[{i}]: line {step.line}'s record damaged in the store: judged on the "
            "invariants and the damage rule, not on the file's expectations"
        )

    def _live_decisions(
        self,
    ) -> tuple[dict[str, orc.Decision], dict[str, orc.Decision], list[Violation]]:
        """(published decisions, decisions plus restored states, run_ids published twice
        with different states) of the live processes."""
        events = self.visible_events()
        published = {
            e.run_id: orc.decision_of_payload(e.payload)
            for e in events
            if e.event_type == ev.DECISION_PUBLISHED and e.run_id is not None
        }
        known, conflicts = orc.decisions_of(events)
        return published, known, conflicts

    def step_replay(self, i: int, step: s.ReplayStep) -> None:
        """Contract §7: a replay of the input read so far gives exactly the live decisions."""
        name = f"steps[{i}].replay"
        snapshots = [snap for group in self.groups[: self.read()] for snap in group]
        sink = MemorySink()
        before = self._position()
        try:
            if step.at is None:
                full_replay(self.config, snapshots, sink, clock=engine_commit_clock)
            else:
                resume_replay(
                    self.config,
                    snapshots,
                    sink,
                    state_path=STATE_PATH,
                    at_ms=step.at,
                    clock=engine_commit_clock,
                )
        except StartupRefused as exc:
            self.step_checks.append(Check(name, False, f"replay refused: {exc.reason}"))
            return
        problems: list[str] = []
        changed = [str(op) for op in self.fs.trace[before:] if op.mutating]
        if changed:
            problems.append(f"replay changed the disk: {changed[0]}")
        published, known, conflicts = self._live_decisions()
        problems.extend(f"the live run is no reference: {v.message}" for v in conflicts[:1])
        seeded: dict[str, int] = {}
        for e in sink.events:
            if e.event_type == ev.STATE_RESTORED and e.symbol and e.run_id:
                seeded[e.symbol] = e.engine_timestamp_ms or 0
                want = known.get(e.run_id)
                got = orc.decision_of_payload(e.payload)
                if want is not None and want != got:
                    problems.append(f"seeded {e.run_id} as {got}, live state was {want}")
        replayed = {
            e.run_id: orc.decision_of_payload(e.payload)
            for e in sink.events
            if e.event_type == ev.DECISION_PUBLISHED and e.run_id is not None
        }
        expected = {
            rid: d
            for rid, d in published.items()
            if isinstance(d[0], str) and isinstance(d[1], int) and d[1] > seeded.get(d[0], -1)
        }
        for rid in sorted(set(expected) | set(replayed)):
            if rid not in replayed:
                problems.append(f"{rid} decided live but not by the replay")
            elif rid not in expected:
                problems.append(f"{rid} decided by the replay but not live")
            elif replayed[rid] != expected[rid]:
                problems.append(f"{rid}: replay decided {replayed[rid]}, live {expected[rid]}")
        kind = "full replay" if step.at is None else f"replay from the state at {step.at}"
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self.step_checks.append(Check(name, False, f"{kind}: {problems[0]}{more}"))
        else:
            self.step_checks.append(
                Check(name, True, f"{kind}: {len(replayed)} decisions equal the live run's")
            )

    # -- the end ----------------------------------------------------------------------------------

    def read(self) -> int:
        """How far into the input any process has read (what the reference run reads)."""
        return max((p.consumed for p in self.procs), default=0)

    def visible_events(self) -> list[Event]:
        return [r.event for p in self.procs if p.status != "vanished" for r in p.publishes()]

    def finish(self) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
        """Stop the last process, then restore the final disk: (final states, restore report)."""
        self._stop(self.current())
        self._arm(None)
        # `crashkit inspect` of the final disk: the line report of a line file; for
        # another backend its outcome and winners, as the final restore gives them (the
        # layout keys are judged only on the backend a file was written for)
        line_format = self.sc.backend.capabilities.line_format
        report = restore_report(STATE_PATH).to_json() if line_format else {}
        model = self._disk_model()
        where = "final restore"
        try:
            opened = self.sc.backend(STATE_PATH, self.config)
        except StartupRefused as exc:
            self._judge_refusal(exc.reason, model, False, where)
            return {}, report or {"outcome": "fatal", "symbols": {}}
        except Exception as exc:
            self._judge_refusal(crash_reason(exc), model, False, where)
            return {}, report or {"outcome": "fatal", "symbols": {}}
        restored = dict(opened.store.states)
        if not line_format:
            report = {"outcome": opened.report.outcome, "symbols": final_states(restored)}
        errors: list[str] = []
        close_quietly(opened.backend.close, errors)
        self._found(judge_close(errors), where)
        self._found(judge_restored(restored, self._ledger(exclude=None), expected=model), where)
        return final_states(restored), report

    def _reference(self) -> dict[str, orc.Decision]:
        """The uninterrupted run on the input read so far, from the same initial state."""
        snapshots = [snap for group in self.groups[: self.read()] for snap in group]
        return uninterrupted(self.sc.config, self._seed_model().states, snapshots)

    def judge_processes(self) -> None:
        """Per process: publish after commit, the halt rule, the engine invariant downstream;
        over all of them: continuity with the uninterrupted run; and only declared files."""
        self._note_created()
        self._found(
            judge_undeclared_files(undeclared_files(self.sc.backend.capabilities, self.created)),
            "all processes",
        )
        live = [p for p in self.procs if p.status != "vanished"]
        for p in live:
            verdicts = judge_process(
                [(r.seq, r.event) for r in p.publishes()],
                acks=p.acks(),
                outcomes=[(a.seq, a.acked) for a in p.appends()],
                refused_next=p.refused_next,
                refused=p.status == "refused",
            )
            self._found(verdicts, f"process {p.index}")
            if p.restored is not None:
                self._found(self._judge_events(p), f"process {p.index}")
        last = live[-1] if live else None
        up_to: int | None = -1
        if (
            last is not None
            and last.status == "exited"
            and last.cutoff is None
            and last.consumed == self.read()
        ):
            up_to = None
        elif last is not None:
            done = [ts for ts, pos in last.completed if last.seen(pos)]
            up_to = max(done) if done else -1
        self._found(
            judge_continuity(self.visible_events(), self._reference(), up_to_ms=up_to),
            "all processes",
        )

    def _judge_events(self, p: Proc) -> list[Violation]:
        """The process on its own, as the explorer judges it (5): every event it published
        is what the harness's reading of the runtime rules publishes for the states it
        restored and the ticks it read. One that halted or lost power is judged on what
        it published before (a prefix); `scheduling_halted` is the halt rule's (6)."""
        assert p.restored is not None
        published = [r.event for r in p.publishes() if r.event.event_type != ev.SCHEDULING_HALTED]
        snapshots = [snap for group in self.groups[: p.consumed] for snap in group]
        expected = model_run(p.runtime.config, p.restored, snapshots).events
        ended_cleanly = p.status == "exited" and p.cutoff is None
        if not ended_cleanly:
            expected = expected[: len(published)]
        return judge_published(published, expected, process=f"process {p.index}")

    def applicable(self) -> tuple[str, ...]:
        """Invariants checked by default (W5 only where a `second_writer` step opens a
        second writer; otherwise it is the kit's own check)."""
        opens = any(st.second_writer is not msgspec.UNSET for st in self.sc.spec.steps)
        return applicable_invariants(self.sc, set() if opens else {Invariant.SINGLE_WRITER.value})

    def observed(self, final: dict[str, dict[str, object]], report: dict[str, object]) -> Observed:
        live = [p for p in self.procs if p.status != "vanished"]
        last = live[-1] if live else None
        startup: dict[str, object] | None = None
        if last is not None:
            code = (
                (TRACEBACK_EXIT if last.unhandled else int(ExitCode.REFUSED))
                if last.refusal is not None
                else int(ExitCode.OK)
            )
            startup = {"outcome": last.outcome, "exit_code": code}
        return observed_of(
            startup,
            None if last is None else last.exit_code,
            tuple(self.visible_events()),
            self.violations,
            final,
            report,
            self.applicable(),
        )


def applicable_invariants(sc: LoadedScenario, left_out: Collection[str]) -> tuple[str, ...]:
    """The invariants `[all]` means for `sc` (both modes), but those `left_out`:
    continuity needs a run the reference can predict (no append, corrupt or window
    change)."""
    unpredictable = any(
        st.append is not msgspec.UNSET
        or st.corrupt is not msgspec.UNSET
        or st.damage is not msgspec.UNSET
        for st in sc.spec.steps
    ) or bool(sc.restart_configs)
    return tuple(
        i
        for i in INVARIANTS
        if i.value not in left_out and not (unpredictable and i == Invariant.CONTINUITY)
    )


def seed_model(sc: LoadedScenario) -> ModelRestore:
    """The contract's reading of the scenario's `initial_state` (both modes)."""
    if sc.seed.kind != "file":
        return ModelRestore("fatal", {}, (), ())
    return model_restore(sc.seed.data, sc.config)


def boot_image(sc: LoadedScenario) -> DiskImage:
    """The disk of the scenario's `initial_state` (a FIFO is made on it afterwards). A
    backend that is not a line file is seeded with the lines' valid records, in file
    order (`seeding.seeded_image`): what the lines' writer committed."""
    seed = sc.seed
    if seed.missing_dir:
        return DiskImage()
    if seed.kind == "directory":
        return DiskImage(dirs=(STATE_PATH,))
    if seed.data is None:
        return DiskImage(dirs=(STATE_DIR,))
    if not sc.backend.capabilities.line_format:
        return seeded_image(sc.backend, seed_model(sc).records, sc.config)
    return DiskImage(files={STATE_PATH: seed.data})


def final_states(restored: Mapping[str, HysteresisState]) -> dict[str, dict[str, object]]:
    """What `expect.final_states` is compared with: per symbol, its restored decision."""
    return {
        sym: {
            "anchor_regime": st.anchor_regime.value,
            "candidate_regime": None if st.candidate_regime is None else st.candidate_regime.value,
            "progress_current": st.progress_current,
            "engine_timestamp_ms": st.engine_timestamp_ms,
        }
        for sym, st in sorted(restored.items())
    }


def observed_of(
    startup: dict[str, object] | None,
    exit_code: int | None,
    events: tuple[Event, ...],
    violations: Iterable[tuple[Violation, str]],
    final: dict[str, dict[str, object]],
    report: dict[str, object],
    applicable: tuple[str, ...],
) -> Observed:
    """What a run showed, as the expectations read it (both modes): each violation once."""
    halted = [e for e in events if e.event_type == ev.SCHEDULING_HALTED]
    by_invariant: dict[str, list[str]] = {i: [] for i in INVARIANTS}
    seen: set[tuple[str, str]] = set()
    for violation, where in violations:
        key = (violation.invariant, violation.message)
        if key in seen:
            continue
        seen.add(key)
        by_invariant[violation.invariant].append(f"{where}: {violation.message}")
    return Observed(
        startup=startup,
        halted_tick=halted[-1].engine_timestamp_ms if halted else None,
        exit_code=exit_code,
        events=events,
        final_states=final,
        restore_report=report,
        violations={k: tuple(v) for k, v in by_invariant.items()},
        applicable=applicable,
    )


def gaps(sc: LoadedScenario, backend: Backend, *, as_written: bool) -> list[str]:
    """Why `sc` does not apply to `backend` (empty: it does): each requirement it does not
    meet, with the scenario's reason for it. `as_written`: `backend` is the one the file
    was written for."""
    caps = backend.capabilities
    met = {
        "line_format": caps.line_format,
        "single_writer": caps.single_writer,
        "reference": as_written,
        "records": caps.line_format or seed_model(sc).outcome != "fatal",
        "compact": backend.compact is not None,
    }
    return [
        (
            f"{why}, and none is a valid record: {backend.name} keeps its own format, "
            "which holds records, not line bytes (a store whose every record is damaged is "
            "the kit's damage rows)"
        )
        if name == "records"
        else f"needs {name} ({why}); {backend.name} "
        + (
            "with this profile is not what it was written for"
            if sc.profile != sc.spec.profile and profile_named(sc.spec.profile).name != sc.profile
            else "is not the backend it was written for"
            if name == "reference"
            else "declares no offline compaction (Backend.compact)"
            if name == "compact"
            else f"does not declare {name}"
        )
        for name, why in sorted(sc.requires.items())
        if not met.get(name, False)
    ]


def run_loaded(
    sc: LoadedScenario,
    fs: CrashFS | None = None,
    *,
    backend: Backend | None = None,
    profile: str | None = None,
) -> ScenarioResult:
    """Execute a loaded scenario and compare it with its expectations.

    `backend` runs it on another backend than the file names: then it applies only if
    the backend meets what the scenario requires, and `expect.reference` is not judged.
    A step that cannot be carried out (a crash cut that this run does not have, ...)
    is one failed check: the remaining steps are skipped, and since the run is then not
    the one the file describes, its expectations are not judged (only the invariants,
    which hold on any run).
    """
    # Only on the backend the file was written for (its `backend:` key, or the reference)
    # do its trace details and `expect.reference` apply.
    as_written = backend is None or backend.spec == (sc.spec.backend or DEFAULT_BACKEND)
    if backend is not None:
        sc = replace(sc, backend=backend)
    if profile is not None and profile_named(profile).name != sc.profile:
        # another file system's crash states: the file's exact cuts and reference-only
        # expectations describe its own profile
        sc = replace(sc, profile=profile_named(profile).name)
        as_written = False
    missing = gaps(sc, sc.backend, as_written=as_written)
    if missing:
        return ScenarioResult(
            sc.name, str(sc.path), (), None, 0.0, not_applicable="; ".join(missing)
        )
    if sc.spec.mode == "real":  # real `crashkit run` processes instead of this Machine
        from crashkit.harness.scenarios.real_runner import run_real

        return run_real(sc, as_written=as_written)
    fs = fs or shared_fs()
    machine = Machine(sc, fs)
    machine.power_on()
    try:
        return drive(
            sc,
            machine,
            as_written=as_written,
            traces=lambda: (*machine.traces, tuple(str(op) for op in fs.trace)),
        )
    finally:
        fs.stop()


class Driven(Protocol):
    """What `drive` runs: the in-process `Machine`, or the real mode's `RealMachine`."""

    step_checks: list[Check]
    notes: list[str]
    at_step: int

    def run_steps(self) -> None: ...

    def finish(self) -> tuple[dict[str, dict[str, object]], dict[str, object]]: ...

    def judge_processes(self) -> None: ...

    def observed(
        self, final: dict[str, dict[str, object]], report: dict[str, object]
    ) -> Observed: ...


def drive(
    sc: LoadedScenario,
    machine: Driven,
    *,
    as_written: bool,
    traces: Callable[[], tuple[tuple[str, ...], ...]],
) -> ScenarioResult:
    """Run a scenario's steps on `machine` and judge it (both modes). A step that cannot
    be carried out (a crash cut that this run does not have, ...) is one failed check:
    the remaining steps are skipped, and since the run is then not the one the file
    describes, its expectations are not judged (only the invariants, which hold on any
    run)."""
    started = time.perf_counter()
    step_failed = False
    try:
        try:
            machine.run_steps()
        except StepFailed as exc:
            step_failed = True
            left = len(sc.spec.steps) - machine.at_step - 1
            skipped = (
                f"; the {left} step(s) after it were not run and the expectations not judged"
                if left
                else "; the expectations were not judged"
            )
            machine.step_checks.append(Check(exc.key, False, exc.message + skipped))
        final, report = machine.finish()
        machine.judge_processes()
    except NotApplicable as exc:  # a step this backend's store cannot take
        return ScenarioResult(
            sc.name, str(sc.path), (), None, time.perf_counter() - started, not_applicable=str(exc)
        )
    except Exception:
        return ScenarioResult(
            sc.name,
            str(sc.path),
            tuple(machine.step_checks),
            None,
            time.perf_counter() - started,
            error="the run raised: " + traceback.format_exc(limit=8),
            traces=traces(),
            notes=tuple(machine.notes),
        )
    seen = traces()
    unfired = _unfired(sc, seen, step_failed)
    if unfired is not None and not as_written:
        # the file faults a call this backend never makes: its run tests nothing it names
        return ScenarioResult(
            sc.name,
            str(sc.path),
            (),
            None,
            time.perf_counter() - started,
            traces=seen,
            not_applicable=f"{unfired} on this backend: the file faults a call it never makes",
        )
    observed = machine.observed(final, report)
    judged = compare(sc.spec.expect, observed, reference=as_written)
    if step_failed or not getattr(machine, "expectations_judged", True):
        judged = [c for c in judged if c.name.startswith(INVARIANT_CHECK)]
    checks = [*machine.step_checks, *judged]
    if unfired is not None:
        checks.append(Check("steps (fault)", False, f"{unfired}: the file tests nothing"))
    return ScenarioResult(
        sc.name,
        str(sc.path),
        tuple(checks),
        observed,
        time.perf_counter() - started,
        traces=seen,
        notes=tuple(machine.notes),
    )


#: How an op's text (`crashkit.faults.Op.__str__`) marks a fault the plan injected.
INJECTED = "[injected]"


def _unfired(sc: LoadedScenario, traces: Sequence[Sequence[str]], step_failed: bool) -> str | None:
    """Which of the file's fault steps never fired in the whole run (None: all did, or
    there are none, or a failed step cut the run short)."""
    if not sc.fault_rules or step_failed:
        return None
    if any(INJECTED in line for trace in traces for line in trace):
        return None
    rules = ", ".join(
        f"steps[{index}] ({rule.describe()})" for index, rule in sorted(sc.fault_rules.items())
    )
    return f"the fault of {rules} never fired"


def run_scenario(path: str) -> ScenarioResult:
    """Load and run one scenario file (raises ScenarioError if the file is bad)."""
    return run_loaded(load_scenario(path))
