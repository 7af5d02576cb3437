"""The orchestrator as a real process, on any backend: `crashkit explore --real`.

`crashkit run` runs as a child process on a FUSE mount (`crashkit.faults.real`), its
state at the explorer's state path and its events file under `/events`, both recorded:
the order of the calls tells, for every crash point, which events had been published
before it. The run is a `Workload`, as in the in-process explorer: its input (with its
duplicates and late snapshots), its seeded disk, its fault plan and fsync-failure model
(the mount fails the real process's calls), its profile; a runtime other than
`HysteresisRuntime` runs through `real_child`.

The recorded run is judged first, with the in-process explorer's verdicts on what a
real process shows (its exit code, its stderr, its events, the calls it made):

- its start against the contract's reading of the initial disk (R4: the restore table);
- a start during which an open or read of the state path failed must refuse (C4.3);
- after a state call failed by the plan, no decision is published and it does not exit 0
  (C5: a persist failure halts);
- what it published, event by event, is what the runtime rules publish from what it
  restored (`runtime_model`);
- while it holds the state path a second process is refused, after it a third starts
  (C5.9, workloads with `second_writer`).

Then every crash state of the state folder (the events are downstream, not part of it)
is written as a folder and `crashkit run` restarts on it, on the same input, with its
events to a file outside (the same disk reached from several crash points restarts
once). A restart is a warm worker (`warm.WarmRunner`: a fork of a server that imported
`crashkit run`'s modules once, to the judges the new process it stands for; a new
process where no server can run), four per core at once, judged in their order. Each
restart is judged by the same oracles:

- a refused or halted restart after a crash is `4-crash-damage-not-fatal`;
- each symbol's latest decision published before the crash must be restored
  (`3-publish-implies-committed`: what was published was committed, so it survives);
- the decisions before the crash and the restarted process's together equal the
  uninterrupted run's (`5-continuity`, C6.8), and the restarted process published
  exactly what the runtime rules publish from what it restored;
- the store is opened once more after the restarted process ended (no crash in between):
  what it published must be restored again (an append behind a torn tail the backend
  did not cut is lost here).

What a real process cannot show: its acknowledgements (a lost acknowledged tick is seen
as a lost published one, `3-` where the in-process explorer says `1-durability`), and a
second append on a writer that failed (the orchestrator halts first; the in-process
explorer offers it directly).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from crashkit.faults import (
    SYNC,
    CrashState,
    DiskImage,
    FaultPlan,
    FsyncModel,
    OpKind,
    profile_named,
)
from crashkit.faults.crash import enumerate_states
from crashkit.faults.model import Snapshot
from crashkit.faults.real import Recording, materialise, record, snapshots
from crashkit.harness.explore.explorer import fault_rules, reference_of, seed_of
from crashkit.harness.explore.warm import WarmRunner
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.judge.model import ModelRestore
from crashkit.harness.judge.paths import (
    MOUNT_EVENTS,
    MOUNT_INPUT,
    STATE_DIR,
    STATE_PATH,
    leftover_temp_files,
    undeclared_files,
)
from crashkit.harness.judge.runtime_model import model_run
from crashkit.harness.judge.verdicts import (
    CRASHED,
    crash_reason,
    judge_leftover_temp,
    judge_published,
    judge_refusal,
    judge_selection,
    judge_single_writer,
    judge_start_fault,
    judge_undeclared_files,
    start_faults,
)
from crashkit.harness.judge.vulnerabilities import (
    Failure,
    Vulnerability,
    group_failures,
    merge_vulnerabilities,
)
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import ExitCode, StartupRefused
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.sources import encode_snapshot
from crashkit.orchestrator.store.protocol import Backend, Capabilities, load_backend
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

CRASHKIT = (sys.executable, "-m", "crashkit.harness")
STATE = STATE_PATH  # where the in-process explorer keeps it: the same fault plans apply
EVENTS = MOUNT_EVENTS
#: The recorded run's input, on the mount: its first read says the start has returned.
INPUT = MOUNT_INPUT
#: Folders of the mount that are not the state's (downstream's, the input's).
_NOT_STATE = ("events", "input")
#: The workload `crashkit explore --real` runs when none is given.
DEFAULT = Workload(symbols=2, ticks=6, seed=1, window_updates=3, name="real")
#: The `after` of a finding on the recorded run itself, and the `cut` of one with no crash.
RECORDED_RUN = "the recorded run"
NO_CRASH = "no crash"
#: Exit codes of a run that went on to the end of its input.
_RAN = frozenset({ExitCode.OK, ExitCode.SYMBOL_FAILED})
_EMPTY_INPUT = os.devnull


@dataclass(frozen=True, slots=True)
class RealFinding:
    violation: Violation
    after: str  # the call the crash came after, or RECORDED_RUN
    cut: str

    def to_dict(self) -> dict[str, object]:
        v = self.violation
        return {
            "invariant": v.invariant.value,
            "message": v.message,
            "symbol": v.symbol,
            "after": self.after,
            "cut": self.cut,
        }


@dataclass(slots=True)
class RealSummary:
    backend: str
    workload: Workload
    recording: Recording
    runtime: str | None = None
    points: int = 0
    states: int = 0
    restarts: int = 0
    violated: Counter[str] = field(default_factory=Counter)
    findings: list[RealFinding] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # at the findings cap, before every crash state was restarted
    writer_checked: bool = False  # C5.9 was checked with real processes
    max_findings: int = 20
    runs: int = 1  # recorded runs (the sweeps record one per fault)
    start: DiskImage = field(default_factory=DiskImage)  # what the recorded run started on
    #: invariants whose first violation ends the exploration (a self-test's target)
    stop_on: frozenset[str] = frozenset()
    #: the refused runs and crash states, and their causes (`harness.judge.vulnerabilities`)
    failures: list[Failure] = field(default_factory=list)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)

    @property
    def profile(self) -> str:
        return self.workload.profile

    @property
    def violations(self) -> int:
        return sum(self.violated.values())

    def add(
        self,
        violations: Sequence[Violation],
        after: str,
        cut: str,
        failure: Failure | None = None,
    ) -> bool:
        """Count `violations` (of one run or crash state, `failure` for the grouping);
        True once the findings cap is reached."""
        if violations and failure is not None:
            first = violations[0]
            message = f"{first.invariant.value}: {first.message}"
            self.failures.append(replace(failure, message=message))
        for violation in violations:
            self.violated[violation.invariant.value] += 1
            self.findings.append(RealFinding(violation, after, cut))
        if self.max_findings and len(self.findings) >= self.max_findings:
            del self.findings[self.max_findings :]
            self.stopped = True
        if self.stop_on and not self.stop_on.isdisjoint(self.violated):
            self.stopped = True
        return self.stopped

    def merge(self, other: RealSummary) -> None:
        """Add another run's counts (the sweep's faulty runs)."""
        self.points += other.points
        self.states += other.states
        self.restarts += other.restarts
        self.violated.update(other.violated)
        self.findings += other.findings
        self.stopped = self.stopped or other.stopped
        self.writer_checked = self.writer_checked or other.writer_checked
        self.runs += other.runs
        self.seconds += other.seconds
        self.vulnerabilities = merge_vulnerabilities(
            [*self.vulnerabilities, *other.vulnerabilities]
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": "real",
            "backend": self.backend,
            "runtime": self.runtime,
            "workload": self.workload.to_dict(),
            "profile": self.profile,
            "recorded_runs": self.runs,
            "recorded_exit": self.recording.returncode,
            "recorded_calls": len(self.recording.trace),
            "crash_points": self.points,
            "crash_states": self.states,
            "restarts": self.restarts,
            "violations": self.violations,
            "violated": dict(sorted(self.violated.items())),
            "findings": [f.to_dict() for f in self.findings],
            "vulnerabilities": [v.to_dict() for v in self.vulnerabilities],
            "stopped_at_max_findings": self.stopped,
            "second_writer_checked": self.writer_checked,
            "seconds": round(self.seconds, 3),
        }


def read_events(data: bytes) -> list[Event]:
    """The complete event lines of an events file (a torn last one is not published)."""
    out: list[Event] = []
    for line in data.split(b"\n")[:-1]:
        if not line.strip():
            continue
        obj = json.loads(line)
        out.append(
            Event(obj["event_type"], obj["symbol"], obj["engine_timestamp_ms"], obj["payload"])
        )
    return out


def as_published(event: Event) -> Event:
    """An event as it reads back from an events file (JSON types: lists, not tuples)."""
    payload = json.loads(json.dumps(event.payload))
    return Event(event.event_type, event.symbol, event.engine_timestamp_ms, payload)


def state_of_payload(state: Mapping[str, Any]) -> HysteresisState:
    """The state an event's `state` payload carries (its six persisted fields, and the
    window): what a real process restored or decided, read back."""
    candidate = state["candidate_regime"]
    return HysteresisState(
        symbol=str(state["symbol"]),
        engine_timestamp_ms=int(state["engine_timestamp_ms"]),
        anchor_regime=Regime(state["anchor_regime"]),
        candidate_regime=None if candidate is None else Regime(candidate),
        progress_current=int(state["progress_current"]),
        progress_required=int(state["progress_required"]),
        last_commit_timestamp_ms=state["last_commit_timestamp_ms"],
    )


def _state_payload(event: Event) -> Mapping[str, Any]:
    state = event.payload["state"]
    assert isinstance(state, Mapping)
    return state


def restored_states(events: Sequence[Event]) -> dict[str, HysteresisState]:
    """What a process restored, from the restored events it published first."""
    return {
        e.symbol: state_of_payload(_state_payload(e))
        for e in events
        if e.event_type == ev.STATE_RESTORED and e.symbol is not None
    }


def _timestamps(states: Mapping[str, HysteresisState]) -> dict[str, int]:
    return {s: state.engine_timestamp_ms for s, state in states.items()}


def _refusal(output: str) -> str:
    """Why a process refused, from its stderr's last line."""
    last = output.strip().splitlines()[-1] if output.strip() else "exit 3"
    return last.removeprefix("error: ").removeprefix("refusing to start: ")


@dataclass(frozen=True, slots=True)
class Process:
    """One real `crashkit run`: its exit code, its stderr, its events."""

    returncode: int
    output: str
    events: tuple[Event, ...]

    @property
    def crashed(self) -> bool:
        """It died of an exception (a traceback, not one of the documented exit codes)."""
        return self.returncode not in {int(c) for c in ExitCode} or "Traceback" in self.output

    def refusal(self) -> str | None:
        """Why it did not start (None: it started)."""
        if self.crashed and not self.events:
            return f"{CRASHED}{self.output.strip().splitlines()[-1] if self.output else ''}"
        if self.returncode == ExitCode.REFUSED:
            return _refusal(self.output)
        return None


class _Run:
    """What every process of one real exploration shares: its input, configs, commands."""

    def __init__(
        self,
        scratch: str,
        backend: str,
        workload: Workload,
        runtime: str | None,
        loaded: Backend | None,
        runner: WarmRunner,
    ) -> None:
        self.scratch = scratch
        self.loaded = loaded
        self.runner = runner
        self.workload = workload
        self.market = os.path.join(scratch, "market.jsonl")
        snapshots = workload.snapshots()
        self.snapshots = snapshots
        with open(self.market, "wb") as f:
            f.writelines(encode_snapshot(s) for s in snapshots)
        prefix = CRASHKIT if runtime is None else (*_CHILD, runtime)
        first = _config(scratch, "first.toml", backend, workload.window_updates)
        again = _config(scratch, "restart.toml", backend, workload.restart_config.window_updates)
        self.first = (*prefix, "run", "--config", first)
        self.again = (*prefix, "run", "--config", again)
        self.reference = reference_of(workload, snapshots).decisions
        self._expected: dict[tuple[object, ...], tuple[Event, ...]] = {}
        self.count = 0

    def expected(
        self, config: HysteresisConfig, restored: Mapping[str, HysteresisState]
    ) -> tuple[Event, ...]:
        """What the runtime rules publish from `restored` over the whole input."""
        key = (config.window_updates, *sorted(s.persisted_fields() for s in restored.values()))
        found = self._expected.get(key)
        if found is None:
            run = model_run(config, restored, self.snapshots)
            found = self._expected[key] = tuple(as_published(e) for e in run.events)
        return found

    def reopen(self, folder: str, events: str | None = None) -> tuple[str | None, dict[str, int]]:
        """The store under `folder` opened once more, no crash in between: (why it
        refused, or None; what it restored). In this process when the harness could
        load the backend (a real folder, no fault layer), else as a run on no input
        (its events to `events`)."""
        config = self.workload.restart_config
        path = folder + STATE
        backend = self.loaded
        if backend is None:
            process = self.process(self.again, folder, _EMPTY_INPUT, events)
            return process.refusal(), _timestamps(restored_states(process.events))
        try:
            if backend.restore_only is not None:
                states = dict(backend.restore_only(path, config).states)
            else:
                opened = backend(path, config)
                states = dict(opened.store.states)
                opened.backend.close()
        except StartupRefused as exc:
            return exc.reason, {}
        except Exception as exc:  # a backend must refuse cleanly, not crash
            return crash_reason(exc), {}
        return None, _timestamps(states)

    def folder(self, image: DiskImage) -> str:
        self.count += 1
        folder = os.path.join(self.scratch, f"state-{self.count}")
        materialise(image, folder)
        return folder

    def process(
        self, command: Sequence[str], folder: str, input_path: str, events: str | None = None
    ) -> Process:
        """`command` on the state under `folder`, reading `input_path`, its events to
        `events` (a new file of the scratch folder when None: then on this thread only).
        A warm worker when the runner can, else a new process: the same for the judges."""
        if events is None:
            self.count += 1
            events = os.path.join(self.scratch, f"events-{self.count}.jsonl")
        done = self.runner.run(
            [*command, "--input", input_path, "--state", folder + STATE, "--events", events],
            env=child_env(),
            timeout=300,
        )
        data = b""
        if os.path.exists(events):
            with open(events, "rb") as f:
                data = f.read()
        return Process(done.returncode, done.stderr.strip(), tuple(read_events(data)))


_CHILD = (sys.executable, "-m", "crashkit.harness.explore.real_child")


def _config(folder: str, name: str, backend: str, window: int) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(
            "[engine]\n"
            'engine_mode = "hysteresis"\n'
            f'hysteresis_state_path = "{STATE.lstrip("/")}"\n'
            'commit_clock = "engine"\n'
            f'backend = "{backend}"\n'
            f"[hysteresis]\nwindow_updates = {window}\n"
        )
    return path


def _start_image(workload: Workload, market: bytes) -> DiskImage:
    """The workload's initial disk, with the input and the folder of the events file."""
    image = workload.image() or DiskImage()
    files = {**image.files, INPUT: market}
    return DiskImage(files=files, dirs=(*image.dirs, EVENTS.rsplit("/", 1)[0]))


# -- the recorded run ---------------------------------------------------------------------


def _in_state(path: str) -> bool:
    return path == STATE_DIR or path.startswith(STATE_DIR + "/")


def _published_at(recording: Recording) -> list[int]:
    """For each trace index, how many complete events the events file held after it."""
    data = bytearray()
    out: list[int] = []
    count = 0
    for call in recording.calls:
        if call is not None and call.path == EVENTS:
            if call.op is OpKind.WRITE:
                data[call.offset : call.offset + len(call.data)] = call.data
                count = data.count(b"\n")
            elif call.op is OpKind.FTRUNCATE or (call.op is OpKind.OPEN and call.truncates):
                del data[call.offset if call.op is OpKind.FTRUNCATE else 0 :]
                count = data.count(b"\n")
        out.append(count)
    return out


def started_at(recording: Recording) -> int:
    """The index of the first call after the start returned: the run's first read of its
    input (which is on the mount for that), or the end when it never read it."""
    return next(
        (op.index for op in recording.trace if op.op == OpKind.READ and op.path == INPUT),
        len(recording.trace),
    )


def judge_halt(recording: Recording, events: Sequence[Event]) -> list[Violation]:
    """C5: after a call on the state that the plan failed once the start returned (a
    persist failure), nothing more is decided, and the process does not end as if all
    went well. (A failed close loses nothing an fsync made durable: not judged here.)"""
    start = started_at(recording)
    failed = next(
        (
            op
            for op in recording.trace[start:]
            if op.injected and op.error and _in_state(op.path) and op.op != OpKind.CLOSE
        ),
        None,
    )
    if failed is None:
        return []
    what = f"#{failed.index} {failed.op} {failed.path} failed ({failed.error})"
    after = events[_published_at(recording)[failed.index] :]
    decided = [e for e in after if e.event_type == ev.DECISION_PUBLISHED]
    out: list[Violation] = []
    if decided:
        first = decided[0]
        out.append(
            Violation(
                Invariant.HALT,
                f"{len(decided)} decisions published after {what}, the first {first.run_id}: "
                "a failed persist must halt scheduling",
                first.symbol,
                first.run_id,
            )
        )
    if recording.returncode in _RAN:
        out.append(
            Violation(
                Invariant.HALT,
                f"the run exited {recording.returncode} after {what}: the failure was "
                "swallowed (a failed persist halts the run, exit 4)",
            )
        )
    return out


def judge_run(
    recording: Recording,
    seed: ModelRestore,
    run: _Run,
    capabilities: Capabilities | None,
) -> list[Violation]:
    """The recorded run itself, with no crash: its start, its halt, what it published."""
    data = recording.final.files.get(EVENTS, b"")
    process = Process(recording.returncode or 0, recording.stderr.strip(), tuple(read_events(data)))
    injected = any(op.injected for op in recording.trace)
    found: list[Violation] = []
    refusal = process.refusal()
    restored = restored_states(process.events)
    if refusal is not None:
        found += judge_refusal(refusal, expected=seed, crashed=False, injected=injected)
    elif not injected:
        found += judge_selection(restored, seed)
    start = recording.trace[: started_at(recording)]
    found += judge_start_fault(refusal is None, start_faults(start))
    found += judge_halt(recording, process.events)
    if refusal is None and not injected:
        if process.returncode not in _RAN:
            found.append(_exit_violation("the run", process))
        else:
            expected = run.expected(run.workload.config, restored)
            found += judge_published(process.events, expected, process="the run")
    if capabilities is not None:
        events = EVENTS.rsplit("/", 1)[0] + "/"
        created = {
            op.path
            for op in recording.trace
            if op.error is None
            and op.mutating
            and op.op == OpKind.OPEN
            and not op.path.startswith(events)
        }
        found += judge_undeclared_files(undeclared_files(capabilities, created))
    return found


def _exit_violation(who: str, process: Process) -> Violation:
    return Violation(
        Invariant.PROTOCOL, f"{who} exited {process.returncode}: {process.output[-300:]}"
    )


def check_second_writer(run: _Run, image: DiskImage | None) -> list[Violation]:
    """C5.9 with real processes, on the workload's initial disk as a plain folder: while a
    `crashkit run` that has published a decision holds the state path (its input is a
    pipe kept open), a second one is refused; after it ended, a third one starts."""
    folder = run.folder(image or DiskImage())
    pipe = os.path.join(run.scratch, f"input-{run.count}")
    os.mkfifo(pipe)
    events = os.path.join(run.scratch, f"holder-{run.count}.jsonl")
    holder = subprocess.Popen(
        [*run.first, "--input", pipe, "--state", folder + STATE, "--events", events],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # The first tick, and the first snapshot of the next: a tick ends where the next starts.
    first = run.snapshots[0].engine_timestamp_ms
    cut = next((i for i, s in enumerate(run.snapshots) if s.engine_timestamp_ms != first), None)
    if cut is None:
        holder.kill()
        holder.wait()
        return []  # one tick only: nothing to hold the state with
    try:
        with open(pipe, "wb") as feed:
            feed.writelines(encode_snapshot(s) for s in run.snapshots[: cut + 1])
            feed.flush()
            if not _wait_for_decision(events, holder):
                return []  # it never decided (judged where the workload is explored)
            second = run.process(run.first, folder, _EMPTY_INPUT)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    third = run.process(run.first, folder, _EMPTY_INPUT)
    return judge_single_writer(second.refusal(), third.refusal())


def _wait_for_decision(events: str, holder: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(events):
            with open(events, "rb") as f:
                if ev.DECISION_PUBLISHED.encode() in f.read():
                    return True
        if holder.poll() is not None:
            return False
        time.sleep(0.02)
    return False


# -- restarts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restart:
    """A restart on one crash state, and the store opened once more after it."""

    process: Process
    #: what the store restored when opened once more (symbol -> timestamp), or why it
    #: refused; both None: not reopened (the restart did not run to the end of its input)
    again: Mapping[str, int] | None = None
    again_refusal: str | None = None
    #: the backend's declared temp files still there after it (when it can be loaded)
    leftover: tuple[str, ...] = ()


def judge_restart(
    published: Sequence[Event], restart: Restart, run: _Run, seed: ModelRestore
) -> list[Violation]:
    """One restart of a real process after a crash, by the explorer's oracles."""
    process = restart.process
    refusal = process.refusal()
    if refusal is not None:
        return judge_refusal(
            refusal, expected=seed if seed.outcome == "fatal" else None, crashed=True
        )
    out: list[Violation] = []
    if process.returncode == ExitCode.HALTED:  # it started, then could not append
        out.append(
            Violation(
                Invariant.CRASH_NOT_FATAL,
                f"the restarted process halted on the disk a crash left: {process.output[-300:]}",
            )
        )
    elif process.returncode not in _RAN:
        out.append(_exit_violation("the restarted process", process))
    restored = restored_states(process.events)
    latest = orc.latest_published(enumerate(published))
    out += orc.published_not_on_disk(latest, _timestamps(restored))
    before, conflicts = orc.decisions_of(published)
    after, more = orc.decisions_of(process.events)
    merged, clash = orc.merge_decisions(before, after)
    out += conflicts + more + clash
    if process.returncode in _RAN:
        config = run.workload.restart_config
        out += judge_published(
            process.events, run.expected(config, restored), process="the restarted process"
        )
        if not run.workload.window_changed:
            out += orc.continuity_violations(merged, run.reference)
    out += judge_leftover_temp(restart.leftover)
    if restart.again_refusal is not None:
        out += judge_refusal(restart.again_refusal, expected=None, crashed=True)
    elif restart.again is not None:
        every = orc.latest_published(enumerate([*published, *process.events]))
        out += [
            replace(v, message=f"reopened after the restarted process ended: {v.message}")
            for v in orc.published_not_on_disk(every, restart.again)
        ]
    return out


def _launch(run: _Run, image: DiskImage, n: int) -> tuple[str, Restart]:
    """The processes of the `n`-th restart, on any thread: `crashkit run` on `image` as
    the folder `restart-n`, on the whole input; then, if it ran to the end and this
    process cannot load the backend, the store opened once more by a run on no input."""
    folder = os.path.join(run.scratch, f"restart-{n}")
    materialise(image, folder)
    process = run.process(run.again, folder, run.market, f"{folder}.jsonl")
    if run.loaded is not None or process.returncode not in _RAN:
        return folder, Restart(process)
    refusal, again = run.reopen(folder, f"{folder}-again.jsonl")
    return folder, Restart(process, again, refusal)


def _settle(run: _Run, folder: str, restart: Restart) -> Restart:
    """The rest of a restart, on the judging thread, when this process loads the backend
    (a backend need not be thread-safe): its leftover temp files, the store reopened."""
    process = restart.process
    if run.loaded is None:
        return restart
    leftover: tuple[str, ...] = ()
    if process.refusal() is None:
        found = leftover_temp_files(run.loaded.capabilities, folder + STATE)
        leftover = tuple(p.removeprefix(folder) for p in found)
    if process.returncode not in _RAN:
        return Restart(process, leftover=leftover)
    refusal, again = run.reopen(folder)
    return Restart(process, again, refusal, leftover)


@contextlib.contextmanager
def _restarts(run: _Run, images: Sequence[DiskImage], workers: int) -> Iterator[Iterator[Restart]]:
    """The restarts on `images`, in their order, with up to `workers` processes running
    at once ahead of the judging (each restart its own folder and events files, so the
    order they run in changes nothing; each is removed once judged, by the pool, so that
    the cleaning overlaps the restarts). Leaving stops those not begun and waits for the
    others, before the scratch folder goes."""
    if workers <= 1:
        yield (_settle(run, *_launch(run, image, n)) for n, image in enumerate(images))
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crashkit-restart")
    queue = iter(enumerate(images))
    ahead: deque[Future[tuple[str, Restart]]] = deque()

    def submit(count: int) -> None:
        for n, image in itertools.islice(queue, count):
            ahead.append(pool.submit(_launch, run, image, n))

    def results() -> Iterator[Restart]:
        submit(2 * workers)
        while ahead:
            folder, restart = ahead.popleft().result()
            submit(1)
            settled = _settle(run, folder, restart)
            pool.submit(_remove, folder)
            yield settled

    try:
        yield results()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _remove(folder: str) -> None:
    """A judged restart's folder and events files (the scratch folder's end would)."""
    shutil.rmtree(folder, ignore_errors=True)
    for path in (f"{folder}.jsonl", f"{folder}-again.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def restart_workers() -> int:
    """Restarts run at once by default: four per core this process may run on (a
    restart spends much of its time waiting for its fsyncs, and fsyncs at once share
    the file system's journal commits), at most 16 (the judging, one at a time, keeps
    up with no more)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity on this platform
        cores = os.cpu_count() or 1
    return min(4 * max(1, cores), 16)


def warm_runner(backend: str, runtime: str | None, *, enabled: bool = True) -> WarmRunner:
    """The warm processes of a real exploration: forks of a server that has imported
    what `crashkit run` (or `real_child` with `runtime`) imports, the backend's module
    among it, in the children's environment (`child_env`: a backend module in the
    current folder loads there too). `enabled=False`: every process a new one."""
    if runtime is None:
        module, preload = CRASHKIT[2], ["crashkit.harness.cli"]
    else:
        module, preload = _CHILD[2], ["crashkit.orchestrator.cli", runtime.partition(":")[0]]
    preload += [backend.partition(":")[0], *_LATER]
    return WarmRunner(module, preload, env=child_env(), enabled=enabled)


#: What `crashkit run` imports only once it runs (rich's emoji table, for its summary
#: table): warmed when it exists.
_LATER = ("?rich._emoji_codes",)


# -- explore ------------------------------------------------------------------------------


def explore_real(
    backend: str,
    workload: Workload = DEFAULT,
    *,
    runtime: str | None = None,
    points: str = "all",
    max_findings: int = 20,
    on_progress: Callable[[int, int], None] | None = None,
    stop_on: frozenset[str] = frozenset(),
    runner: WarmRunner | None = None,
    workers: int | None = None,
) -> RealSummary:
    """Record `crashkit run` on `backend` on a mount, judge the run, restart it on every
    crash state (`points="end"`: only those after its last call); stop at the
    `max_findings`-th finding (0: never), as every restart is a process; `on_progress`
    hears (crash states judged, of how many) after each; a violation of an invariant in
    `stop_on` ends it too. When this process can load the backend too, its capabilities add the checks that need them
    (the files it may create, a second writer) and reopening after a restart is a call
    here, not one more process.

    The recorded run is a new process; the others are warm workers of `runner` (one is
    made, `warm_runner`, when None; new processes where it cannot serve), `workers` of
    them at once (default `restart_workers()`), judged in order: the verdicts are those
    of new processes run one by one."""
    if workload.compact_after is not None:
        raise ValueError(
            f"workload {workload.name or '-'}: a mid-history compaction is not run in real "
            "mode (`crashkit compact` compacts the reference line file only)"
        )
    started = time.perf_counter()
    profile_named(workload.profile)  # a bad name fails before anything runs
    seed = seed_of(workload)
    loaded = _loadable(backend)
    capabilities = None if loaded is None else loaded.capabilities
    with contextlib.ExitStack() as stack:
        if runner is None:
            runner = stack.enter_context(warm_runner(backend, runtime))
        runner.start()  # its imports overlap the recorded run
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="crashkit-real-run-"))
        run = _Run(scratch, backend, workload, runtime, loaded, runner)
        command = (
            " ".join(run.first)
            + f' --input "$CRASHKIT_DIR{INPUT}" --state "$CRASHKIT_DIR{STATE}"'
            + f' --events "$CRASHKIT_DIR{EVENTS}"'
        )
        with open(run.market, "rb") as f:
            market = f.read()
        recording, start = record(
            command,
            _start_image(workload, market),
            plan=workload.plan,
            model=workload.model,
            env=child_env(),
        )
        summary = RealSummary(
            backend,
            workload,
            recording,
            runtime,
            max_findings=max_findings,
            stop_on=stop_on,
            start=start,
        )
        fault = ", ".join(
            f"{r.op} {r.path}: {r.errno or 'short write'}" for r in workload.plan.rules
        )
        profiles = (workload.profile,)
        run_failure = Failure(-1, (), "", profiles, crashed=False, fault=fault)
        found = judge_run(recording, seed, run, capabilities)
        if summary.add(found, RECORDED_RUN, NO_CRASH, run_failure):
            return _done(summary, started)
        if workload.second_writer and capabilities is not None and capabilities.single_writer:
            summary.writer_checked = True
            found = check_second_writer(run, workload.image())
            if summary.add(
                found, "a second writer while a run holds the state", NO_CRASH, run_failure
            ):
                return _done(summary, started)
        verdicts: dict[DiskImage, Restart] = {}
        todo = crash_states(recording, start, workload)
        if points == "end" and todo:
            todo = [t for t in todo if t[0] == todo[-1][0]]
        summary.points = len({index for index, _, _ in todo})
        states_at = Counter(index for index, _, _ in todo)
        images = list(dict.fromkeys(state.image for _, _, state in todo))
        with _restarts(run, images, workers or restart_workers()) as restarts:
            for done, (index, published, state) in enumerate(todo, start=1):
                summary.states += 1
                restart = verdicts.get(state.image)
                if restart is None:
                    restart = verdicts[state.image] = next(restarts)
                    summary.restarts += 1
                if on_progress is not None:
                    on_progress(done, len(todo))
                found = judge_restart(published, restart, run, seed)
                failure = Failure(
                    index,
                    state.deviations,
                    "",
                    profiles,
                    settled=states_at[index] == 1,
                    fault=fault,
                )
                if summary.add(found, str(recording.trace[index]), state.cut, failure):
                    break
    return _done(summary, started)


def crash_states(
    recording: Recording, start: DiskImage, workload: Workload
) -> list[tuple[int, list[Event], CrashState]]:
    """Every crash state of the state folder a recording allows under the workload's
    profile: (the call it comes after, the events published by then, the state)."""
    profile = profile_named(workload.profile)
    out: list[tuple[int, list[Event], CrashState]] = []
    for index, snap in snapshots(recording, start, workload.model):
        published, disk = split_events(snap)
        states = enumerate_states(disk, torn=workload.torn, point=index, profile=profile)
        out += [(index, published, state) for state in states.states]
    return out


def _loadable(spec: str) -> Backend | None:
    """The backend, when this process can import it (its children may, with the current
    folder on their path, where this one cannot: then None)."""
    try:
        return load_backend(spec)
    except Exception:
        return None


def _published(path: str) -> bool:
    return path == MOUNT_EVENTS or path.startswith(MOUNT_EVENTS.rstrip("/") + "/")


def _done(summary: RealSummary, started: float) -> RealSummary:
    # the events file is what the run published: a loss behind it is acknowledged early
    summary.vulnerabilities = group_failures(
        summary.failures, summary.recording.trace, acks=_published
    )
    summary.seconds = time.perf_counter() - started
    return summary


def sweep_plans(recording: Recording, errnos: Sequence[str]) -> list[FaultPlan]:
    """One plan per I/O call on the state in a clean recording, per errno, once and
    persistently, and each write cut short once (as the in-process sweep's)."""
    trace = [op for op in recording.trace if _in_state(op.path)]
    return [FaultPlan((rule,)) for rule in fault_rules(trace, errnos, short_writes=True)]


def _faulty(
    backend: str,
    base: Workload,
    workloads: Iterator[Workload],
    clean: Recording,
    *,
    runtime: str | None,
    points: str,
    max_findings: int,
    on_run: Callable[[RealSummary], None] | None,
) -> RealSummary:
    """Explore each faulty workload, merged into one summary (stops at the cap); one
    warm server serves them all."""
    total = RealSummary(backend, base, clean, runtime, max_findings=max_findings, runs=0)
    started = time.perf_counter()
    with warm_runner(backend, runtime) as runner:
        for workload in workloads:
            left = max_findings - len(total.findings) if max_findings else 0
            result = explore_real(
                backend,
                workload,
                runtime=runtime,
                points=points,
                max_findings=left,
                runner=runner,
            )
            total.merge(result)
            if on_run is not None:
                on_run(result)
            if total.stopped:
                break
    return _done(total, started)


def sweep_real(
    backend: str,
    workload: Workload,
    clean: Recording,
    *,
    errnos: Sequence[str] = ("EIO",),
    runtime: str | None = None,
    max_findings: int = 20,
    on_run: Callable[[RealSummary], None] | None = None,
) -> RealSummary:
    """The I/O-error sweep for real: fail each call on the state of `clean` (the
    workload's recorded run without faults) in turn; each faulty run must halt or refuse
    with nothing published that is not committed, and a restart on every crash state
    after its last call loses nothing."""
    workloads = (
        replace(workload, plan=plan, name=f"{workload.name}+{plan.rules[0].describe()}")
        for plan in sweep_plans(clean, errnos)
    )
    return _faulty(
        backend,
        workload,
        workloads,
        clean,
        runtime=runtime,
        points="end",
        max_findings=max_findings,
        on_run=on_run,
    )


def fsync_model_real(
    backend: str,
    workload: Workload,
    clean: Recording,
    *,
    runtime: str | None = None,
    max_findings: int = 20,
    on_run: Callable[[RealSummary], None] | None = None,
) -> RealSummary:
    """Each fsync on the state of `clean` fails once, under each fsync-failure model,
    with a crash after every call (as the in-process `fsync_models`)."""
    rules = [
        rule
        for rule in fault_rules([op for op in clean.trace if _in_state(op.path)], ("EIO",))
        if rule.op in SYNC and not rule.persistent
    ]
    workloads = (
        replace(
            workload,
            plan=FaultPlan((rule,)),
            model=model,
            name=f"{workload.name}+{rule.describe()}@{model.value}",
        )
        for model in FsyncModel
        for rule in rules
    )
    return _faulty(
        backend,
        workload,
        workloads,
        clean,
        runtime=runtime,
        points="all",
        max_findings=max_findings,
        on_run=on_run,
    )


def child_env() -> dict[str, str]:
    """The children's environment: a backend module in the current folder loads there as
    it does for `crashkit explore --backend` (the folder first on PYTHONPATH)."""
    path = os.environ.get("PYTHONPATH")
    here = os.getcwd()
    return {**os.environ, "PYTHONPATH": here if not path else f"{here}{os.pathsep}{path}"}


def split_events(snap: Snapshot) -> tuple[list[Event], Snapshot]:
    """The events published by then (the events file as the process saw it), and the
    disk without the events and input folders (downstream's and the input's, not the
    state's: not crash-tested)."""
    root = snap.current[snap.root]
    folders = {root[name] for name in _NOT_STATE if name in root}
    published: list[Event] = []
    events = root.get(EVENTS.split("/")[1])
    for ino in snap.current.get(events, {}).values() if events is not None else ():
        if ino in snap.files:
            published = read_events(snap.files[ino].current)
    if not folders:
        return published, snap
    current = {d: e for d, e in snap.current.items() if d not in folders}
    current[snap.root] = {n: i for n, i in current[snap.root].items() if i not in folders}
    durable = {
        d: {n: i for n, i in e.items() if i not in folders}
        for d, e in snap.durable.items()
        if d not in folders
    }
    kept = set(current) | {i for e in (*current.values(), *durable.values()) for i in e.values()}
    files = {i: f for i, f in snap.files.items() if i in kept}
    return published, Snapshot(snap.root, current, durable, files, snap.paths)


__all__ = [
    "DEFAULT",
    "RealSummary",
    "explore_real",
    "fsync_model_real",
    "sweep_real",
]
