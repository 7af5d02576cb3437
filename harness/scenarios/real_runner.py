"""Scenario files in real mode (`mode: real`): every process is a real `crashkit run`.

The in-process runner (`runner.Machine`) drives orchestrator runtimes on a fake disk in
this process; here the same steps drive real child processes on a FUSE mount
(`crashkit.faults.real`, as `crashkit explore --real` does), so a backend that does its
I/O through the kernel (SQLite's C library, another language) is tested by the same
files. The steps mean what they mean in-process:

- a *process* starts at the first step that is not a fault (or at a `restart`, or at the
  first `run`/`append` after a crash) and lives to the next crash, restart or corrupt
  step, or the end. As in-process (contract C6.7) it reads the input from its first
  tick: its input file holds as many ticks as its `run` steps give it. It is recorded
  on the mount from the disk as the last process left it (the first from
  `initial_state`), with the fault armed before it as its plan and the file's
  fsync-failure model;
- `crash: {point, cut}` is a power cut: `point` is an op index of the trace since the
  disk last booted (every process of the boot in turn, as `--trace` lists them; an op
  that changes nothing shares the state of the one before, as in-process), `cut` picks
  one of the crash states there as `Machine._pick_cut` does. The process running then
  crashed (what it had published by then is what the scenario observes of it), one
  started after it never ran; the chosen state (the events folder left out: the events
  are downstream's, not the state's) is the disk the next process starts on;
- `restart` and `corrupt` end the process cleanly (the disk as it left it);
- `append` hands records to the running process's own writer between its ticks: the
  process runs `appending_runtime` (through `real_child`), which appends them after the
  ticks the steps before gave it, and writes what the writer answered to a side file.

It is judged by the `expect` keys as in-process: startup and exit codes are the last
process's, the events are every process's (a crashed one's up to the power cut),
`final_states` and `restore_report` are this process's restore of the final disk as a
plain folder, and the invariants are those a real process can show (the explorer's
real-mode verdicts, `crashkit.harness.explore.real_mode`): its start (R4, C4.3, 4
after a crash, 3 what was published before survives), its run (6 the halt rule, 5 what
it published against the runtime rules, 7, P its exit code and files), continuity over
all of them (5), the final restore. What it cannot show (1: acknowledgements, 2: what
was written whole), the loader refuses (`loader.check_real`).

What is not mirrored, and why: a fault is armed for a whole process from its start (a
real process's fault plan is fixed when it starts: the loader refuses one given while a
process runs); a process reads all its ticks and exits before a crash step's power cut
(a child cannot be paused between ticks), so `point: last` comes after its close; the
op numbers are those of the calls the kernel hands the mount (the events file's among
them), not the fake disk's, so an in-process file's exact `point` or named cut does not
carry over; a run step's ticks count as the steps give them, also for a process that
halted before reading them; and the explorer's offer of a failed append once more
after a halt is not made (a real process halts first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from crashkit.faults import (
    DiskImage,
    FaultPlan,
    FaultRule,
    OpKind,
    Snapshot,
    TornMode,
)
from crashkit.faults.crash import enumerate_states
from crashkit.faults.real import (
    Call,
    Recording,
    ReplayModel,
    fuse_unavailable,
    materialise,
    record,
)
from crashkit.harness.explore import real_mode as rm
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.judge.model import ModelRestore
from crashkit.harness.judge.observe import close_quietly
from crashkit.harness.judge.paths import STATE_PATH, undeclared_files
from crashkit.harness.judge.runtime_model import model_run
from crashkit.harness.judge.verdicts import (
    crash_reason,
    image_reading,
    judge_append,
    judge_close,
    judge_continuity,
    judge_leftover_temp,
    judge_published,
    judge_refusal,
    judge_selection,
    judge_start_fault,
    judge_undeclared_files,
    start_faults,
    uninterrupted,
)
from crashkit.harness.scenarios import schema as s
from crashkit.harness.scenarios.loader import REAL_UNOBSERVABLE, LoadedScenario
from crashkit.harness.scenarios.results import Check, Observed, ScenarioResult
from crashkit.harness.scenarios.runner import (
    TRACEBACK_EXIT,
    StepFailed,
    applicable_invariants,
    boot_image,
    corrupted,
    drive,
    final_states,
    observed_of,
    pick_cut,
    seed_model,
)
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import ExitCode, StartupRefused
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.runtime import HysteresisRuntime
from crashkit.orchestrator.sources import encode_snapshot, ticks
from crashkit.orchestrator.store.jsonl import restore_report
from crashkit.orchestrator.store.protocol import RestoreSummary
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    RegimeInputSnapshot,
)

EVENTS = rm.EVENTS
INPUT = rm.INPUT  # on the mount: its first read tells where the start returned
EVENTS_DIR = EVENTS.rsplit("/", 1)[0]
#: The mount's folders that are not the state's (downstream's, the input's).
_NOT_STATE = (EVENTS_DIR, INPUT.rsplit("/", 1)[0])
_CHILD = (sys.executable, "-m", "crashkit.harness.explore.real_child")
#: Exit codes of a process that went on to the end of its input.
_RAN = frozenset({int(ExitCode.OK), int(ExitCode.SYMBOL_FAILED)})
_SYNCS = frozenset({OpKind.FSYNC.value, OpKind.FDATASYNC.value})
#: The tick results a process publishes (what tells which ticks it completed).
_TICK_EVENTS = frozenset({ev.DECISION_PUBLISHED, ev.DUPLICATE_SKIPPED, ev.SYMBOL_HALTED})

#: How the harness hands `append` steps to `appending_runtime` in the child.
APPENDS_ENV = "CRASHKIT_SCENARIO_APPENDS"
RUNTIME_ENV = "CRASHKIT_SCENARIO_RUNTIME"
OUTCOMES_ENV = "CRASHKIT_SCENARIO_APPENDED"


# -- the child's side of `append` ----------------------------------------------------------


class _Appending(HysteresisRuntime):
    """The scenario's `append` steps through this process's own writer, between its ticks
    (the in-process runner appends through the running process's backend): each after
    as many ticks as the steps before it gave the process; those a halt left undone, at
    its close. What the writer answered goes to the side file the harness judges."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        raw = json.loads(os.environ.get(APPENDS_ENV, "[]"))
        self._due: list[tuple[int, int, tuple[HysteresisState, ...]]] = [
            (int(a["after"]), int(a["step"]), tuple(rm.state_of_payload(x) for x in a["states"]))
            for a in raw
        ]
        self._outcomes = os.environ.get(OUTCOMES_ENV)
        self._append_failed = False

    def start(self) -> RestoreSummary:
        report = super().start()
        self._append_due(0)
        return report

    def tick(self, snapshots: Sequence[RegimeInputSnapshot]) -> list[Event]:
        out = super().tick(snapshots)
        self._append_due(self.stats.ticks)
        return out

    def close(self) -> None:
        if self._opened is not None:
            self._append_due(None)
        super().close()

    def _append_due(self, done: int | None) -> None:
        while self._due and (done is None or self._due[0][0] <= done):
            _, step, states = self._due.pop(0)
            backend = self.backend
            failed_before = self.stats.halted or self._append_failed
            error: str | None = None
            try:
                backend.append(states)
            except Exception as exc:  # recorded like a failed append; the writer is poisoned
                error = f"{type(exc).__name__}: {exc}"
                self._append_failed = True
            outcome = {
                "step": step,
                "acked": error is None,
                "error": error,
                "failed_before": failed_before,
                "poisoned": bool(backend.poisoned),
            }
            if self._outcomes:
                with open(self._outcomes, "a", encoding="utf-8") as f:
                    f.write(json.dumps(outcome) + "\n")


def _named(spec: str) -> object:
    """What `module:attr` names, or None when it cannot be imported."""
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr, None)
    except Exception:
        return None


def appending_runtime(**kwargs: Any) -> HysteresisRuntime:
    """The runtime of a real process with `append` steps (`real_child` calls it as it
    calls a runtime class): the scenario's runtime class, named in the environment,
    with `_Appending` before it."""
    spec = os.environ.get(RUNTIME_ENV, "")
    base = _named(spec) if spec else HysteresisRuntime
    if not (isinstance(base, type) and issubclass(base, HysteresisRuntime)):
        raise SystemExit(f"error: {spec!r} names no HysteresisRuntime class (module:Class)")
    if base is HysteresisRuntime:
        return _Appending(**kwargs)
    composed = type(f"Appending{base.__name__}", (_Appending, base), {})
    return cast(HysteresisRuntime, composed(**kwargs))


# -- one real process ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Append:
    step: int
    after: int  # ticks the steps before it gave the process
    states: tuple[HysteresisState, ...]


@dataclass(slots=True)
class RealProc:
    """One real `crashkit run`: what the steps give it, then what it did."""

    index: int
    step: int  # the step it starts at
    boot: int  # the disk's boot it runs in (a crash or a corrupt step reboots the disk)
    config: HysteresisConfig
    rule: FaultRule | None
    image: DiskImage  # the disk it starts on (the state's, no events)
    epoch: int
    after_crash: bool  # a power cut left that disk, and no start succeeded since
    ticks: int = 0  # ticks of the input it reads, from the first
    appends: list[_Append] = field(default_factory=list)
    recording: Recording | None = None
    start: DiskImage | None = None  # what the recording started from (with the events folder)
    process: rm.Process | None = None
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    offset: int = 0  # where its calls start in the trace of its boot
    cut_after: int | None = None  # a power cut came after this call of its own (-1: before any)
    vanished: bool = False  # it started after the power cut of its boot: it never ran
    visible: tuple[Event, ...] = ()  # what it published (up to the power cut)
    end: DiskImage | None = None  # the disk it left when it exited

    @property
    def launched(self) -> bool:
        return self.recording is not None

    def run(self) -> tuple[Recording, rm.Process]:
        assert self.recording is not None and self.process is not None
        return self.recording, self.process

    @property
    def refusal(self) -> str | None:
        return None if self.process is None else self.process.refusal()

    @property
    def exited_cleanly(self) -> bool:
        """It ran to the end of its input, no power cut (in-process: status `exited`)."""
        p = self.process
        return (
            p is not None
            and self.cut_after is None
            and p.refusal() is None
            and not p.crashed
            and p.returncode in _RAN
        )


def _not_state(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in _NOT_STATE)


def _without_events(image: DiskImage) -> DiskImage:
    """The disk as the state sees it: the events folder is downstream's, the input's
    is the input's."""
    return DiskImage(
        files={p: d for p, d in image.files.items() if not _not_state(p)},
        dirs=tuple(d for d in image.dirs if not _not_state(d)),
    )


def _toml_config(backend: str, config: HysteresisConfig) -> str:
    """`crashkit run`'s config for one process: the scenario's whole engine config."""
    lines = [
        "[engine]",
        'engine_mode = "hysteresis"',
        f"hysteresis_state_path = {json.dumps(STATE_PATH.lstrip('/'))}",
        'commit_clock = "engine"',
        f"backend = {json.dumps(backend)}",
        "[hysteresis]",
        f"window_updates = {config.window_updates}",
        f"enter_threshold = {float(config.enter_threshold)!r}",
        f"commit_threshold = {float(config.commit_threshold)!r}",
        f"decay_step = {config.decay_step}",
    ]
    if config.min_lead_over_anchor is not None:
        lines.append(f"min_lead_over_anchor = {float(config.min_lead_over_anchor)!r}")
    if config.allowed_regimes is not None:
        names = ", ".join(json.dumps(r.value) for r in config.allowed_regimes)
        lines.append(f"allowed_regimes = [{names}]")
    return "\n".join(lines) + "\n"


def runtime_spec(sc: LoadedScenario) -> str | None:
    """How a child process names the scenario's runtime class (None: the default one);
    ValueError when it cannot be named as `module:Class`."""
    cls = sc.runtime_class
    if cls is HysteresisRuntime:
        return None
    if sc.spec.runtime is not None and _named(sc.spec.runtime) is cls:
        return sc.spec.runtime
    spec = f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', '?')}"
    if _named(spec) is not cls:
        raise ValueError(f"the runtime {cls!r} cannot be named as module:Class for a real process")
    return spec


# -- the machine -----------------------------------------------------------------------------


class RealMachine:
    """One real-mode scenario: `run_steps()`, `finish()` (the final restore, here),
    `judge_processes()`, then `observed()` for the expectations."""

    def __init__(self, sc: LoadedScenario, scratch: str, backend: str, runtime: str | None) -> None:
        self.sc = sc
        self.scratch = scratch
        self.backend_spec = backend
        self.runtime = runtime
        self.groups: list[list[RegimeInputSnapshot]] = list(ticks(sc.snapshots))
        self.config: HysteresisConfig = sc.config
        self.disk = self._boot_image()
        self.boot_image = self.disk  # the disk the current boot started from (all durable)
        self.boots: list[list[RealProc]] = [[]]  # the processes of each boot of the disk
        self.procs: list[RealProc] = []
        self.open: RealProc | None = None  # the process whose life the steps are in
        self.armed: FaultRule | None = None
        self.epoch = 0
        self.after_crash = False
        self.violations: list[tuple[Violation, str]] = []
        self.step_checks: list[Check] = []
        self.notes: list[str] = []
        self.at_step = -1

    # -- disk -----------------------------------------------------------------------------

    def _boot_image(self) -> DiskImage:
        return boot_image(self.sc)

    def _seed_model(self) -> ModelRestore:
        return seed_model(self.sc)

    def _reading(self, image: DiskImage, config: HysteresisConfig) -> ModelRestore | None:
        """The contract's reading of `image` (None: the backend's own format); a state
        path that is a folder must be refused by any backend."""
        inside = STATE_PATH + "/"
        if STATE_PATH in image.dirs or any(
            p.startswith(inside) for p in (*image.dirs, *image.files)
        ):
            return ModelRestore("fatal", {}, (), ())
        return image_reading(self.sc.backend, image, config)

    def _found(self, violations: Iterable[Violation], where: str) -> None:
        self.violations.extend((v, where) for v in violations)

    # -- processes ------------------------------------------------------------------------

    def _open(self, i: int) -> RealProc:
        """A process starts at step `i`, on the disk as it is, with the armed fault."""
        proc = RealProc(
            len(self.procs),
            i,
            len(self.boots) - 1,
            self.config,
            self.armed,
            self.disk,
            self.epoch,
            self.after_crash,
        )
        self.procs.append(proc)
        self.boots[-1].append(proc)
        self.open = proc
        return proc

    def _reboot(self, image: DiskImage) -> None:
        """The disk restarts holding `image`, all of it durable (a crash state, or the
        disk a corrupt step rewrote offline)."""
        self.disk = self.boot_image = image
        self.boots.append([])

    def _launch(self, proc: RealProc) -> None:
        """Record the process on the mount: `crashkit run` on its ticks of the input."""
        k = proc.index
        scratch = self.scratch
        market = b"".join(encode_snapshot(snap) for g in self.groups[: proc.ticks] for snap in g)
        config_path = os.path.join(scratch, f"config-{k}.toml")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(_toml_config(self.backend_spec, proc.config))
        env = rm.child_env()
        outcomes = os.path.join(scratch, f"appended-{k}.jsonl")
        prefix: tuple[str, ...] = rm.CRASHKIT
        if proc.appends:
            prefix = (*_CHILD, f"{__name__}:appending_runtime")
            env[RUNTIME_ENV] = self.runtime or ""
            env[OUTCOMES_ENV] = outcomes
            env[APPENDS_ENV] = json.dumps(
                [
                    {
                        "step": a.step,
                        "after": a.after,
                        "states": [ev.state_payload(x) for x in a.states],
                    }
                    for a in proc.appends
                ]
            )
        elif self.runtime is not None:
            prefix = (*_CHILD, self.runtime)
        argv = (*prefix, "run", "--config", config_path)
        command = " ".join(shlex.quote(a) for a in argv) + "".join(
            f' --{flag} "$CRASHKIT_DIR{path}"'
            for flag, path in (("input", INPUT), ("state", STATE_PATH), ("events", EVENTS))
        )
        start = DiskImage(
            files={**proc.image.files, INPUT: market}, dirs=(*proc.image.dirs, EVENTS_DIR)
        )
        plan = FaultPlan(() if proc.rule is None else (proc.rule,))
        recording, start = record(command, start, plan=plan, model=self.sc.model, env=env)
        data = recording.final.files.get(EVENTS, b"")
        process = rm.Process(
            recording.returncode or 0, recording.stderr.strip(), tuple(rm.read_events(data))
        )
        proc.recording, proc.start, proc.process = recording, start, process
        proc.offset = sum(
            len(p.recording.trace)
            for p in self.boots[proc.boot]
            if p is not proc and p.recording is not None
        )
        proc.visible = process.events
        proc.end = _without_events(recording.final)
        if os.path.exists(outcomes):
            with open(outcomes, encoding="utf-8") as f:
                proc.outcomes = [json.loads(line) for line in f if line.strip()]
        if process.refusal() is None:
            self.after_crash = False
        how = "refused" if process.refusal() is not None else f"read {proc.ticks} tick(s)"
        self.notes.append(
            f"process {k} (from steps[{proc.step}]): {how}, exit {process.returncode}; "
            f"ops #{proc.offset}-#{proc.offset + len(recording.trace) - 1} of boot {proc.boot}"
        )

    def _check_appends(self, proc: RealProc) -> None:
        """A process that refused had no writer for its `append` steps: the first of them
        fails (in-process it fails as it comes, and the steps after it are not run)."""
        if proc.appends and proc.refusal is not None:
            self.at_step = proc.appends[0].step
            raise StepFailed(
                ["steps", self.at_step, "append"], "no process to append with (it refused)"
            )

    def _end(self, proc: RealProc | None) -> None:
        """A clean exit (the end of its input, or an operator's restart): the disk is as
        the process left it."""
        if proc is None:
            return
        if not proc.launched:
            self._launch(proc)
        assert proc.end is not None
        self.disk = proc.end
        if self.open is proc:
            self.open = None
        self._check_appends(proc)

    # -- steps ----------------------------------------------------------------------------

    def run_steps(self) -> None:
        """The steps in order; the first process starts at the first non-`fault` step."""
        for i, step in enumerate(self.sc.spec.steps):
            self.at_step = i
            if not self.procs and not isinstance(step.fault, s.FaultStep):
                self._open(i)
            if isinstance(step.run, s.RunStep):
                self.step_run(i, step.run)
            elif isinstance(step.append, s.AppendStep):
                self.step_append(i)
            elif isinstance(step.fault, s.FaultStep):
                self.armed = self.sc.fault_rules[i]  # replaces the armed one, as in-process
            elif isinstance(step.crash, s.CrashStep):
                self.step_crash(i, step.crash)
            elif step.restart is not msgspec.UNSET:
                self._end(self.open)
                self.armed = None  # a fault is armed for one process's life
                if i in self.sc.restart_configs:
                    self.config = self.sc.restart_configs[i]
                self._open(i)
            elif isinstance(step.corrupt, s.CorruptStep):
                self.step_corrupt(i, step.corrupt)
            else:  # the loader refuses replay and compact in real mode
                raise StepFailed(["steps", i], "this step does not run in real mode")
        self._end(self.open)  # the running process reads the rest of its input and exits

    def step_run(self, i: int, step: s.RunStep) -> None:
        proc = self.open or self._open(i)
        if proc.launched:
            return  # it refused (launched early, below): nothing runs
        left = len(self.groups) - proc.ticks
        count = left if step.ticks == "all" else step.ticks
        if count > left:
            self._launch(proc)  # what the steps before gave it happened
            self._check_appends(proc)
            if proc.refusal is not None:
                return  # a process that never started reads nothing (as in-process)
            raise StepFailed(
                ["steps", i, "run", "ticks"],
                f"process {proc.index} has read {proc.ticks} of the input's "
                f"{len(self.groups)} ticks: only {left} left",
            )
        proc.ticks += count

    def step_append(self, i: int) -> None:
        proc = self.open or self._open(i)
        if proc.launched:  # launched early: it refused
            raise StepFailed(["steps", i, "append"], "no process to append with (it refused)")
        proc.appends.append(_Append(i, proc.ticks, self.sc.append_states[i]))

    def _boot_snapshot(self, at: int) -> tuple[Snapshot, RealProc | None]:
        """The disk just after call `at` of the boot's trace (every process of the boot
        replayed in turn from the disk it booted with, so a crash may lose what an
        earlier process of the boot left unsynced, as in-process), and the process
        that made that call (None: `at` is -1, before any)."""
        boot = self.boots[-1]
        first = boot[0].start if boot else None
        if first is None:
            first = DiskImage(
                files=dict(self.boot_image.files), dirs=(*self.boot_image.dirs, EVENTS_DIR)
            )
        replay = ReplayModel(first, self.sc.model)  # (the input's reads change nothing)
        if at < 0:
            return replay.snapshot(), None
        for n, proc in enumerate(boot):
            recording, _ = proc.run()
            if n:  # each process has an events file of its own
                replay.apply(Call(OpKind.OPEN, EVENTS, truncates=True))
            for local, call in enumerate(recording.calls):
                if call is not None:
                    replay.apply(call)
                elif recording.trace[local].op in _SYNCS:
                    replay.fsync_failed(recording.trace[local].path)
                if proc.offset + local == at:
                    return replay.snapshot(), proc
        raise AssertionError(f"no call {at} in the boot's trace")

    def step_crash(self, i: int, step: s.CrashStep) -> None:
        """Power cut: the disk becomes one crash state of its boot's trace; the process
        running then crashed, those started after it never ran."""
        if self.open is not None and not self.open.launched:
            self._launch(self.open)
            self._check_appends(self.open)
        boot = self.boots[-1]
        total = sum(len(p.run()[0].trace) for p in boot)
        point: int | None = step.point if isinstance(step.point, int) else None
        if point is not None and point >= total:
            raise StepFailed(
                ["steps", i, "crash", "point"],
                f"no op {point}: the trace since the disk last booted has {total} ops "
                "(run with --trace to list them)",
            )
        at = total - 1 if point is None else point
        snap, owner = self._boot_snapshot(at)
        published, disk = rm.split_events(snap)
        states = enumerate_states(
            disk, torn=TornMode.DEFAULT, point=point, profile=self.sc.profile
        ).states
        chosen = pick_cut(i, list(states), step.cut, step.unreachable, self.notes)
        after = "the last op"
        if point is not None and owner is not None:
            after = f"op #{point} ({owner.run()[0].trace[point - owner.offset].op})"
        self.notes.append(f"steps[{i}]: crash after {after}: cut {chosen.cut!r}")
        for proc in boot:
            if owner is None or proc.index > owner.index:
                proc.vanished = True  # it would have started after the power cut
                proc.visible = ()
            elif proc is owner:
                local = at - proc.offset
                if proc is self.open or local < len(proc.run()[0].trace) - 1:
                    proc.cut_after = local
                proc.visible = tuple(published)
        self.open = None
        self.armed = None
        self.after_crash = True
        self._reboot(chosen.image)

    def step_corrupt(self, i: int, step: s.CorruptStep) -> None:
        """Offline damage: the process exits, line N is rewritten, the disk is durable."""
        self._end(self.open)
        self.armed = None
        self._reboot(corrupted(i, step, self.disk))
        self.epoch += 1  # deliberate damage: what must survive is judged from this disk on

    # -- the end --------------------------------------------------------------------------

    def visible_events(self) -> list[Event]:
        return [e for p in self.procs for e in p.visible]

    def _epoch_published(self, epoch: int, before: int | None = None) -> list[Event]:
        """What the processes of `epoch` (those before process `before`) published."""
        return [
            e
            for p in self.procs
            if p.epoch == epoch and (before is None or p.index < before)
            for e in p.visible
        ]

    def finish(self) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
        """End the last process, judge every start, then restore the final disk here, as
        a plain folder: (final states, restore report)."""
        with contextlib.suppress(StepFailed):  # a step failed before: not judged again
            self._end(self.open)
        for p in self.procs:  # judged before the final restore, as in-process at each start
            if p.launched and not p.vanished:
                self._found(self._judge_start(p), f"process {p.index}")
        folder = os.path.join(self.scratch, "final")
        materialise(self.disk, folder)
        path = folder + STATE_PATH
        # `crashkit inspect` of the final disk: the line report of a line file; for
        # another backend its outcome and winners, as the final restore gives them
        report: dict[str, object] = {}
        line_format = self.sc.backend.capabilities.line_format
        if line_format:
            report = restore_report(path).to_json()
            report["path"] = STATE_PATH
        refused: dict[str, object] = report or {"outcome": "fatal", "symbols": {}}
        model = self._reading(self.disk, self.config)
        where = "final restore"
        try:
            opened = self.sc.backend(path, self.config)
        except StartupRefused as exc:
            self._found(judge_refusal(exc.reason, expected=model, crashed=self.after_crash), where)
            return {}, refused
        except Exception as exc:
            reason = crash_reason(exc)
            self._found(judge_refusal(reason, expected=model, crashed=self.after_crash), where)
            return {}, refused
        restored = dict(opened.store.states)
        if not line_format:
            report = {"outcome": opened.report.outcome, "symbols": final_states(restored)}
        errors: list[str] = []
        close_quietly(opened.backend.close, errors)
        self._found(judge_close(errors), where)
        if model is not None:
            self._found(judge_selection(restored, model), where)
        latest = orc.latest_published((0, e) for e in self._epoch_published(self.epoch))
        self._found(orc.check_published_survived(latest, restored), where)
        self._found(orc.check_engine(restored.values()), where)
        return final_states(restored), report

    def _judge_start(self, p: RealProc) -> list[Violation]:
        """Its start, as the in-process runner judges one: refused as allowed, restored
        the contract's selection (R4) and what was published before (3), C4.3, 7."""
        recording, process = p.run()
        trace = recording.trace
        model = self._reading(p.image, p.config)
        injected = any(op.injected for op in trace[: rm.started_at(recording)])
        refusal = process.refusal()
        if refusal is not None:
            out = judge_refusal(refusal, expected=model, crashed=p.after_crash, injected=injected)
            if process.events:
                out.append(
                    Violation(Invariant.HALT, "events published by a process that refused to start")
                )
            return out
        restored = rm.restored_states(process.events)
        out = [] if model is None or injected else judge_selection(restored, model)
        latest = orc.latest_published((0, e) for e in self._epoch_published(p.epoch, p.index))
        out += orc.check_published_survived(latest, restored)
        out += orc.check_engine(restored.values())
        out += judge_start_fault(True, start_faults(trace))
        if p.cut_after is None and p.end is not None:
            temps = self.sc.backend.capabilities.temp_paths(STATE_PATH)
            left = sorted(f for f in p.end.files if any(fnmatch.fnmatchcase(f, t) for t in temps))
            out += judge_leftover_temp(left)
        return out

    def _judge_run(self, p: RealProc) -> list[Violation]:
        """The process's run: the halt rule (6), the engine invariant downstream (7), its
        exit code (P; 4 after a crash), what it published against the runtime rules (5),
        the answers of its writer to the `append` steps (6)."""
        recording, process = p.run()
        out = rm.judge_halt(recording, process.events)
        out += orc.check_engine_events(p.visible)
        if process.refusal() is not None:
            return out
        code = process.returncode
        injected = any(op.injected for op in recording.trace)
        if process.crashed:
            out.append(
                Violation(
                    Invariant.PROTOCOL,
                    f"process {p.index} exited {code} (an exception, not one of the documented "
                    f"exit codes): {process.output[-300:]}",
                )
            )
        elif code not in _RAN and not injected:
            if p.after_crash and code == ExitCode.HALTED:
                out.append(
                    Violation(
                        Invariant.CRASH_NOT_FATAL,
                        "the restarted process halted on the disk a crash left: "
                        f"{process.output[-300:]}",
                    )
                )
            else:
                out.append(
                    Violation(
                        Invariant.PROTOCOL,
                        f"process {p.index} exited {code}: {process.output[-300:]}",
                    )
                )
        restored = rm.restored_states(process.events)
        published = [e for e in p.visible if e.event_type != ev.SCHEDULING_HALTED]
        snaps = [snap for group in self.groups[: p.ticks] for snap in group]
        expected = [rm.as_published(e) for e in model_run(p.config, restored, snaps).events]
        if not p.exited_cleanly:
            expected = expected[: len(published)]  # judged on what it published before
        out += judge_published(published, expected, process=f"process {p.index}")
        for outcome in p.outcomes:
            out += judge_append(
                acked=bool(outcome["acked"]),
                failed_before=bool(outcome["failed_before"]),
                poisoned=bool(outcome["poisoned"]),
            )
        return out

    def judge_processes(self) -> None:
        """Per process its run (its start was judged by `finish`); over all of them
        continuity with the uninterrupted run, and only declared files created."""
        created: set[str] = set()
        for p in self.procs:
            if not p.launched or p.vanished:
                continue
            recording, _ = p.run()
            created.update(
                op.path
                for op in recording.trace
                if op.op == "open" and op.mutating and not _not_state(op.path)
            )
            self._found(self._judge_run(p), f"process {p.index}")
        self._found(
            judge_undeclared_files(undeclared_files(self.sc.backend.capabilities, created)),
            "all processes",
        )
        read = max((p.ticks for p in self.procs), default=0)
        snaps = [snap for group in self.groups[:read] for snap in group]
        reference = uninterrupted(self.sc.config, self._seed_model().states, snaps)
        last = self._last()
        up_to: int | None = -1
        if last is not None and last.exited_cleanly and last.ticks == read:
            up_to = None
        elif last is not None and last.exited_cleanly:
            up_to = self.groups[last.ticks - 1][0].engine_timestamp_ms if last.ticks else -1
        elif last is not None:
            done = [
                e.engine_timestamp_ms
                for e in last.visible
                if e.event_type in _TICK_EVENTS and e.engine_timestamp_ms is not None
            ]
            up_to = max(done) if done else -1
        self._found(
            judge_continuity(self.visible_events(), reference, up_to_ms=up_to), "all processes"
        )

    def applicable(self) -> tuple[str, ...]:
        """Invariants checked by default: those a real process shows."""
        return applicable_invariants(self.sc, REAL_UNOBSERVABLE)

    def _last(self) -> RealProc | None:
        """The last process that ran (one started after a power cut it preceded did not)."""
        live = [p for p in self.procs if not p.vanished]
        return live[-1] if live else None

    def observed(self, final: dict[str, dict[str, object]], report: dict[str, object]) -> Observed:
        last = self._last()
        startup: dict[str, object] | None = None
        exit_code: int | None = None
        if last is not None and last.process is not None:
            process = last.process
            if process.refusal() is not None:
                code = int(ExitCode.REFUSED) if process.returncode == ExitCode.REFUSED else None
                startup = {"outcome": "fatal", "exit_code": code or TRACEBACK_EXIT}
            else:
                restored = rm.restored_states(process.events)
                startup = {"outcome": "ok" if restored else "bootstrap", "exit_code": 0}
            exit_code = None if last.cut_after is not None else process.returncode
        return observed_of(
            startup,
            exit_code,
            tuple(self.visible_events()),
            self.violations,
            final,
            report,
            self.applicable(),
        )

    def traces(self) -> tuple[tuple[str, ...], ...]:
        """The calls of each boot of the disk, every process's in turn, numbered as a
        crash step's `point` counts them (as `--trace` prints the in-process boots)."""
        return tuple(
            tuple(
                str(dataclasses.replace(op, index=op.index + p.offset))
                for p in boot
                if p.recording is not None
                for op in p.recording.trace
            )
            for boot in self.boots
            if any(p.recording is not None for p in boot)
        )


# -- one scenario ------------------------------------------------------------------------------


def _not_applicable(sc: LoadedScenario, reason: str) -> ScenarioResult:
    return ScenarioResult(sc.name, str(sc.path), (), None, 0.0, not_applicable=reason)


def run_real(sc: LoadedScenario, *, as_written: bool = True) -> ScenarioResult:
    """Execute a `mode: real` scenario (`runner.run_loaded` sends it here, with the
    backend and profile it runs on) and compare it with its expectations. Without FUSE
    it does not apply (and says why); a failed step is one failed check, as in-process."""
    reason = fuse_unavailable()
    if reason is not None:
        return _not_applicable(sc, f"mode: real needs a FUSE mount: {reason}")
    backend = sc.backend.spec
    if backend is None:
        return _not_applicable(
            sc, f"backend {sc.backend.name} has no module:attribute a real process could load"
        )
    try:
        runtime = runtime_spec(sc)
    except ValueError as exc:
        return _not_applicable(sc, str(exc))
    with tempfile.TemporaryDirectory(prefix="crashkit-scenario-real-") as scratch:
        machine = RealMachine(sc, scratch, backend, runtime)
        return drive(sc, machine, as_written=as_written, traces=machine.traces)


__all__ = ["RealMachine", "RealProc", "appending_runtime", "run_real", "runtime_spec"]
