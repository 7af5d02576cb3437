"""Crash-test any program, as ALICE's checker does: record it on a FUSE mount, rebuild
the disks a power cut could leave as folders, and run the user's checker on each.

`crashkit explore --exec CMD --check CHECK`. CMD runs once, in the current folder, with
`CRASHKIT_DIR` naming a mount where it keeps its files, recorded by `crashkit.faults.real`.
After every call of it that changed the disk, the crash states the profile allows
(`Exploration.LINEAR` by default: the in-order state at each crash point and each
deviation from it alone, once, at the last crash point where it holds; `BOUNDED`: each
deviation at every crash point; `EXHAUSTIVE` under a cap) are written as ordinary folders and CHECK runs with
`CRASHKIT_DIR` naming one: exit 0 means the disk is one the program can live with,
anything else is a finding (its output kept). No FUSE is needed to check: only to record.

Why it is built the way it is: real programs make thousands of calls, so the same disk
is checked once (deduplicated by a digest of its content), several checkers run at once
(`jobs` threads, each with its own scratch folder, rewriting only the files that differ
from the disk it wrote last), and the run has budgets (distinct disks, seconds): when
one runs out, or a signal arrives, it stops and says what it did and did not explore.
Every way out removes the scratch folders (unless `keep`) and kills the checkers still
running (each in its own process group).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import heapq
import itertools
import os
import queue
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import FrameType

from crashkit.faults import DiskImage, TornMode, profile_named
from crashkit.faults.callsites import LOG_VARIABLE, attribute, environment, read_log
from crashkit.faults.crash import (
    DEFAULT_CAP,
    CrashState,
    Deviation,
    Exploration,
    crash_states,
    profiles_leaving,
)
from crashkit.faults.real import Recording, crash_points, materialise, record, snapshots
from crashkit.faults.stacks import read_stacks, stacks_unavailable, traced
from crashkit.harness.judge.vuln_ids import failure_id
from crashkit.harness.judge.vulnerabilities import (
    Failure,
    Vulnerability,
    group_failures,
    headline,
    may_own,
    report_lines,
)
from crashkit.orchestrator.interrupt import signals

DEFAULT_BUDGET = 50_000  # distinct disks checked
DEFAULT_TIME_BUDGET = 600.0  # seconds, recording included
DEFAULT_MAX_FINDINGS = 20
OUTPUT_LIMIT = 4000  # characters of a checker's output kept per disk
#: The mtime every materialised file gets: a checker that writes a file shows (its mtime
#: moves), so the incremental rewrite never trusts a file the checker changed.
FIXED_MTIME_NS = 1_577_836_800 * 10**9  # 2020-01-01T00:00:00Z
#: Exit codes of a checker that could not be run at all (the shell's).
CANNOT_RUN = frozenset({126, 127})
#: Characters that make a checker line need a shell (else it is run directly: faster).
SHELL_SYNTAX = frozenset("|&;<>()$`\\\"'*?[]#~\n{}!")


class ExecExit(IntEnum):
    """What `crashkit explore --exec` exits with (docs/backends.md, "Any program")."""

    OK = 0  # every crash state explored passed, and the command succeeded
    FINDINGS = 1  # a crash state the checker refused, or the command itself failed
    USAGE = 2  # a usage error, no FUSE, a checker that cannot run or refuses the clean end
    NOTHING_RECORDED = 3  # the command changed nothing under $CRASHKIT_DIR: nothing to test
    INCONCLUSIVE = 4  # a budget ran out before every state was checked, and none failed
    SIGINT = 130  # interrupted (Ctrl-C): the partial summary was printed
    SIGTERM = 143  # terminated: the partial summary was printed


class Stopped(StrEnum):
    """Why a run ended before every crash state was checked."""

    BUDGET = "budget"  # --budget distinct disks were checked
    TIME = "time"  # --time-budget seconds passed
    INTERRUPTED = "interrupted"  # SIGINT or SIGTERM


class CheckerUnusable(ValueError):
    """The checker cannot judge anything: it does not run (exit 126/127, not found) or it
    refuses the disk the command left when it ended cleanly (a usage error, exit 2)."""


class UnknownVulnerability(ValueError):
    """`only` names no vulnerability a crash state of this run can show (a usage error,
    exit 2); `known` are the ids they can show."""

    def __init__(self, wanted: str, known: Sequence[str]) -> None:
        self.wanted, self.known = wanted, tuple(known)
        shown = ", ".join(self.known[:40]) or "none"
        more = f" and {len(self.known) - 40} more" if len(self.known) > 40 else ""
        super().__init__(
            f"no crash state of this run can show a vulnerability {wanted!r} (the ids its "
            f"crash states can show: {shown}{more}); take an id from a run without --only, "
            "with the same --profile, --exploration, --torn, --ack, --ignore and --stacks"
        )


@dataclass(frozen=True, slots=True)
class ExecFinding:
    """One crash state the checker refused: where the power was cut, what survived, how
    it deviates from the in-order state, what the checker said."""

    point: int
    after: str  # the call the crash came after, as the trace shows it
    cut: str
    returncode: int
    output: str
    files: tuple[str, ...]  # the disk's files (sizes), for the reader
    deviations: tuple[Deviation, ...] = ()
    folder: str | None = None  # with keep: the disk, written out, to rerun the checker on

    def to_dict(self) -> dict[str, object]:
        return {
            "point": self.point,
            "after": self.after,
            "cut": self.cut,
            "returncode": self.returncode,
            "output": self.output,
            "files": list(self.files),
            "deviations": [
                {"kind": d.kind.value, "path": d.path, "detail": d.detail} for d in self.deviations
            ],
            "folder": self.folder,
        }


@dataclass(frozen=True, slots=True)
class ExecProgress:
    """Where a run stands, for a progress line: states judged of those found so far."""

    done: int  # crash states with a verdict
    found: int  # crash states enumerated so far
    checked: int  # distinct disks the checker ran on
    points_enumerated: int
    points_total: int
    elapsed: float  # seconds since checking began


@dataclass(slots=True)
class ExecSummary:
    """What a run did and did not explore, and what it found."""

    command: str
    check: str
    profile: str
    exploration: Exploration
    budget: int
    time_budget: float
    jobs: int
    recording: Recording = field(default_factory=Recording)
    ignore: tuple[str, ...] = ()
    #: globs of the files where the command records what it acknowledged
    ack: tuple[str, ...] = ()
    points_total: int = 0
    points_enumerated: int = 0
    points_explored: int = 0  # every crash state of the point has a verdict
    states: int = 0  # crash states with a verdict (the same disk counted at each point)
    checked: int = 0  # distinct disks the checker ran on
    unchecked: int = 0  # crash states found and left without a verdict
    failed: int = 0  # crash states refused (all of them, also those not listed)
    findings: list[ExecFinding] = field(default_factory=list)
    stopped: Stopped | None = None
    signal: int | None = None  # the signal that interrupted the run
    recorded: bool = False  # the recording finished (not interrupted)
    kept: str | None = None  # with keep: the folder holding the findings' disks
    seconds: float = 0.0
    #: the refused states grouped by cause (`harness.judge.vulnerabilities`)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    #: trace index -> the source line that made the call (Python programs)
    sources: dict[int, str] = field(default_factory=dict)
    #: vulnerability number (1-based) -> its example's disk, written out (with keep)
    examples: dict[int, str] = field(default_factory=dict)
    #: each vulnerability's stable id (`harness.judge.vuln_ids`), in the same order
    ids: list[str] = field(default_factory=list)
    torn: str = TornMode.DEFAULT.value
    #: the program ran under `strace -k`: its calls name native frames
    stacks: bool = False
    #: the one vulnerability checked (`--only`): its crash states and the states that
    #: decide how they group; `failed` and `findings` are then its own
    only: str | None = None
    only_states: int = 0  # crash states of the run that can show it (checked first)
    others_refused: int = 0  # refused states checked beside them that show another cause

    def vuln_id(self, number: int) -> str:
        """The stable id of vulnerability `number` (1-based)."""
        return self.ids[number - 1] if number <= len(self.ids) else f"V{number}"

    @property
    def more_findings(self) -> int:
        """Refused crash states not listed (past `max_findings`)."""
        return self.failed - len(self.findings)

    @property
    def nothing_recorded(self) -> str | None:
        """Why there is nothing to crash-test, if so: the command made no call on the
        mount (it wrote elsewhere?) or none that changed the disk."""
        if not self.recorded:
            return None
        calls = len(self.recording.trace)
        if calls == 0:
            return (
                "the command made no file-system call under $CRASHKIT_DIR: it must keep "
                "its files in the folder $CRASHKIT_DIR names (is it writing elsewhere?)"
            )
        if self.points_total == 0:
            return (
                f"the command changed nothing under $CRASHKIT_DIR ({calls} call(s), none "
                "that changes the disk): there is no crash point to test"
            )
        return None

    @property
    def exit_code(self) -> ExecExit:
        """A signal first, then a finding or the command's failure, then nothing to test,
        then a budget that ran out."""
        if self.signal is not None:
            return ExecExit.SIGTERM if self.signal == signal.SIGTERM else ExecExit.SIGINT
        if self.failed or (self.recorded and self.recording.returncode != 0):
            return ExecExit.FINDINGS
        if self.nothing_recorded is not None:
            return ExecExit.NOTHING_RECORDED
        if self.stopped is not None:
            return ExecExit.INCONCLUSIVE
        return ExecExit.OK

    @property
    def ok(self) -> bool:
        return self.exit_code is ExecExit.OK

    def stop_lines(self) -> list[str]:
        """What was and was not explored, when the run stopped early."""
        if self.stopped is None:
            return []
        why = {
            Stopped.BUDGET: f"the budget of {self.budget:,} distinct disks ran out",
            Stopped.TIME: f"the time budget of {self.time_budget:g} s ran out",
            Stopped.INTERRUPTED: f"interrupted by signal {self.signal}",
        }[self.stopped]
        if not self.recorded:
            return [f"stopped while recording the command: {why}; nothing was checked"]
        lines = [
            f"stopped early: {why}. Explored {self.points_explored:,} of "
            f"{self.points_total:,} crash points; {self.states:,} crash states checked "
            f"({self.checked:,} distinct disks), {self.unchecked:,} found and left "
            f"unchecked, {self.points_total - self.points_enumerated:,} crash points "
            "never enumerated."
        ]
        if self.stopped is not Stopped.INTERRUPTED:
            lines.append(
                "Inconclusive: raise --budget or --time-budget, or leave out files no "
                "checker reads with --ignore."
            )
        return lines

    def to_dict(self) -> dict[str, object]:
        recording = self.recording
        return {
            "command": self.command,
            "check": self.check,
            "profile": self.profile,
            "exploration": self.exploration.value,
            "budget": self.budget,
            "time_budget": self.time_budget,
            "jobs": self.jobs,
            "ignore": list(self.ignore),
            "ack": list(self.ack),
            "returncode": recording.returncode,
            "calls": len(recording.trace),
            "crash_points": self.points_explored,
            "points_total": self.points_total,
            "points_explored": self.points_explored,
            "states": self.states,
            "checked": self.checked,
            "unchecked": self.unchecked,
            "failed": self.failed,
            "findings": [f.to_dict() for f in self.findings],
            "more_findings": self.more_findings,
            "vulnerabilities": [
                {
                    **v.to_dict(),
                    "id": self.vuln_id(n),
                    "number": n,
                    "disk": self.examples.get(n),
                    "rerun": rerun_command(self, self.vuln_id(n)),
                }
                for n, v in enumerate(self.vulnerabilities, start=1)
            ],
            "stacks": self.stacks,
            "only": self.only,
            "only_states": self.only_states if self.only is not None else None,
            "others_refused": self.others_refused if self.only is not None else None,
            "stopped": None if self.stopped is None else self.stopped.value,
            "nothing_recorded": self.nothing_recorded,
            "unsupported": list(recording.unsupported),
            "notes": list(recording.notes),
            "kept": self.kept,
            "exit_code": int(self.exit_code),
            "seconds": round(self.seconds, 3),
        }


# -- the checker and its scratch folder ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    returncode: int
    output: str
    folder: str | None = None  # with keep: the disk written out


_PASSED = _Verdict(0, "")


def _checker_argv(check: str) -> list[str] | None:
    """The checker as an argv to run without a shell, when its line has no shell syntax
    and names a program on PATH (a shell line's meaning, a process less); else None."""
    if SHELL_SYNTAX & set(check):
        return None
    words = check.split()
    if not words or "=" in words[0]:
        return None
    program = shutil.which(words[0])
    return None if program is None else [program, *words[1:]]


def _clip(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    half = OUTPUT_LIMIT // 2
    return f"{text[:half]}\n[... {len(text) - OUTPUT_LIMIT} characters cut ...]\n{text[-half:]}"


#: one disk to check: its digest, the disk, and how many bytes of the command's standard
#: output the checker gets ($CRASHKIT_STDOUT: what it had said at the crash)
_Work = tuple[bytes, DiskImage, int]


class _Scratch:
    """One worker's folder, kept equal to the last disk written into it by rewriting only
    what differs; what a checker changed (seen by a walk after it) is rewritten too."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.mkdir(folder)
        self.files: dict[str, tuple[bytes, int]] = {}  # path -> (bytes written, inode)
        self.dirs: set[str] = set()  # every folder, parents included
        self.said = os.path.join(os.path.dirname(folder), f"{os.path.basename(folder)}.stdout")
        #: the checker's environment
        self.env = {**os.environ, "CRASHKIT_DIR": folder, "CRASHKIT_STDOUT": self.said}
        self._said: bytes | None = None

    def say(self, out: bytes) -> None:
        """Make $CRASHKIT_STDOUT hold `out` (rewritten only when it changed)."""
        if out != self._said:
            with open(self.said, "wb") as f:
                f.write(out)
            self._said = out

    def _real(self, path: str) -> str:
        return os.path.join(self.folder, path.lstrip("/"))

    def write(self, image: DiskImage) -> None:
        """Make the folder hold `image`."""
        wanted_dirs = set(image.all_dirs())
        for path in [p for p in self.files if p not in image.files]:
            _remove(self._real(path))
            del self.files[path]
        for directory in sorted(self.dirs - wanted_dirs, key=len, reverse=True):
            _remove(self._real(directory))
            self.dirs.discard(directory)
        for directory in sorted(wanted_dirs - self.dirs):
            os.makedirs(self._real(directory), exist_ok=True)
            self.dirs.add(directory)
        for path, data in image.files.items():
            old = self.files.get(path)
            if old is not None and (old[0] is data or old[0] == data):
                continue
            known = None if old is None else old[0]
            self.files[path] = (data, _write_file(self._real(path), data, known))

    def repair(self) -> None:
        """Forget (and remove) whatever the checker changed, so the next write redoes it:
        a file with another size, mtime or inode, anything new, anything gone."""
        seen_files: set[str] = set()
        seen_dirs: set[str] = set()
        stack = ["/"]
        while stack:
            here = stack.pop()
            with os.scandir(self._real(here) if here != "/" else self.folder) as entries:
                for entry in entries:
                    path = f"{here.rstrip('/')}/{entry.name}"
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode) and path in self.dirs:
                        seen_dirs.add(path)
                        stack.append(path)
                        continue
                    known = self.files.get(path)
                    if (
                        known is not None
                        and stat.S_ISREG(info.st_mode)
                        and info.st_ino == known[1]
                        and info.st_size == len(known[0])
                        and info.st_mtime_ns == FIXED_MTIME_NS
                    ):
                        seen_files.add(path)
                        continue
                    _remove(entry.path)
        self.files = {p: v for p, v in self.files.items() if p in seen_files}
        self.dirs = seen_dirs


def _write_file(real: str, data: bytes, old: bytes | None) -> int:
    """Make the file at `real` hold `data` (it held `old`, if known) with the fixed mtime;
    its inode. Never truncated to zero first: on ext4 that flushes the file at close
    (auto_da_alloc), a millisecond per file. What `old` starts is appended to."""
    fd = os.open(real, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if old is not None and len(data) >= len(old) and data.startswith(old):
            view, at = memoryview(data)[len(old) :], len(old)
        else:
            view, at = memoryview(data), 0
        while view:
            done = os.pwrite(fd, view, at)
            view, at = view[done:], at + done
        if old is None or len(data) < len(old):
            os.ftruncate(fd, len(data))
        os.utime(fd, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _remove(real: str) -> None:
    if os.path.isdir(real) and not os.path.islink(real):
        shutil.rmtree(real, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(real)


class _Digests:
    """A digest of a disk's content, remembering the digest of recent large bytes objects
    (the crash states of a run share most of them) within a memory bound."""

    def __init__(self, limit: int = 64 << 20) -> None:
        self.limit = limit
        self.held = 0
        self.cache: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()

    def _of(self, data: bytes) -> bytes:
        if len(data) < 4096:
            return hashlib.blake2b(data, digest_size=16).digest()
        hit = self.cache.get(id(data))
        if hit is not None and hit[0] is data:
            self.cache.move_to_end(id(data))
            return hit[1]
        digest = hashlib.blake2b(data, digest_size=16).digest()
        self.cache[id(data)] = (data, digest)
        self.held += len(data)
        while self.held > self.limit and self.cache:
            _, (old, _) = self.cache.popitem(last=False)
            self.held -= len(old)
        return digest

    def of(self, image: DiskImage) -> bytes:
        whole = hashlib.blake2b(digest_size=16)
        for path, data in image.files.items():
            whole.update(f"f{len(path)}:{path}:{len(data)}:".encode())
            whole.update(self._of(data))
        for directory in image.dirs:
            whole.update(f"d{len(directory)}:{directory}".encode())
        return whole.digest()


# -- the run -------------------------------------------------------------------------


class _Interrupted(Exception):
    """A SIGINT or SIGTERM, raised in the main thread to leave what it was doing."""


@dataclass(slots=True)
class _Waiting:
    seq: int
    point: int
    state: CrashState


class _Run:
    """The shared ledger of one run: the verdict of every distinct disk, the crash states
    waiting for one, the counts, the listed findings, and the checkers in flight."""

    def __init__(
        self,
        summary: ExecSummary,
        check: str,
        *,
        max_findings: int,
        timeout: float,
        deadline: float,
        keep: bool,
    ) -> None:
        self.summary = summary
        self.check = check
        self.argv = _checker_argv(check)
        self.max_findings = max_findings
        self.timeout = timeout
        self.deadline = deadline
        self.keep = keep
        self.lock = threading.Lock()
        self.verdicts: dict[bytes, _Verdict] = {}
        self.pending: dict[bytes, list[_Waiting]] = {}
        self.missing: dict[int, int] = {}  # point -> its states without a verdict
        self.cut_short: set[int] = set()  # points the budget left states of unchecked
        self.listed: list[tuple[int, ExecFinding]] = []  # a heap of (-seq, finding)
        #: slot -> the checker running there and when it started
        self.inflight: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.timed_out: set[int] = set()  # pids of checkers killed for their timeout
        self.halted = False  # stop checking: time out, signal, error
        self.raising = True  # a first signal raises _Interrupted in the main thread
        self.error: BaseException | None = None
        self.found = 0
        self.kept_disks = 0
        self.markers = 0  # end markers queued for the workers
        self.root: str | None = None  # the scratch folder, once made
        #: every refused crash state, for the vulnerabilities, with its disk
        self.failures: list[tuple[Failure, DiskImage]] = []
        self.states_at: dict[int, int] = {}  # crash point -> its crash states
        self.start = DiskImage()  # the disk the command started on
        self.stdout = b""  # what the command wrote to its standard output

    # verdicts ---------------------------------------------------------------------

    def judge(self, waiting: _Waiting, verdict: _Verdict) -> None:
        """Count one crash state's verdict (under the lock)."""
        summary = self.summary
        summary.states += 1
        if verdict.returncode == 0:
            return
        summary.failed += 1
        state = waiting.state
        said = verdict.output.strip().splitlines()
        message = said[-1] if said else f"the checker exited {verdict.returncode}"
        failure = Failure(
            waiting.point,
            state.deviations,
            message,
            (summary.profile,),
            settled=self.states_at.get(waiting.point, 0) == 1,
        )
        self.failures.append((failure, state.image))
        cap = self.max_findings
        if cap and len(self.listed) >= cap and -self.listed[0][0] < waiting.seq:
            return
        finding = ExecFinding(
            waiting.point,
            str(summary.recording.trace[waiting.point]),
            state.cut,
            verdict.returncode,
            verdict.output,
            tuple(f"{p} ({len(d)} bytes)" for p, d in state.image.files.items()),
            state.deviations,
            verdict.folder,
        )
        heapq.heappush(self.listed, (-waiting.seq, finding))
        if cap and len(self.listed) > cap:
            heapq.heappop(self.listed)

    def resolve(self, digest: bytes, verdict: _Verdict) -> None:
        """A distinct disk was checked: judge every crash state waiting for it."""
        with self.lock:
            self.summary.checked += 1
            self.verdicts[digest] = _PASSED if verdict.returncode == 0 else verdict
            for waiting in self.pending.pop(digest, []):
                self.judge(waiting, verdict)
                self.missing[waiting.point] -= 1

    # stopping ---------------------------------------------------------------------

    def stop(self, reason: Stopped) -> None:
        if self.summary.stopped is None:
            self.summary.stopped = reason

    def halt(self) -> None:
        """Check nothing more and kill the checkers in flight (their process groups).
        Safe from a signal handler: takes no lock."""
        self.halted = True
        for proc, _ in self._running():
            _kill(proc)

    def _running(self) -> list[tuple[subprocess.Popen[bytes], float]]:
        for _ in range(3):
            with contextlib.suppress(RuntimeError):  # changed size while copied: again
                return list(self.inflight.values())
        return []

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.stop(Stopped.TIME)
        self.halt()
        return True

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.summary.signal is None:
            self.summary.signal = signum
            self.summary.stopped = Stopped.INTERRUPTED
        self.halt()
        if self.raising:
            self.raising = False
            raise _Interrupted(signum)

    # checking ---------------------------------------------------------------------

    def run_check(self, scratch: _Scratch, slot: int) -> _Verdict | None:
        """Run the checker on the scratch folder: its verdict, or None if halted."""
        try:
            proc = subprocess.Popen(
                self.argv if self.argv is not None else self.check,
                shell=self.argv is None,
                env=scratch.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return _Verdict(127, f"{self.check}: {exc.strerror or exc}")
        self.inflight[slot] = (proc, time.monotonic())
        try:  # no timeout here: a timed wait polls with sleeps; the watchdog kills
            out, _ = proc.communicate()
        finally:
            self.inflight.pop(slot, None)
        if self.halted:
            return None
        said = out.decode("utf-8", "replace").strip()
        if proc.pid in self.timed_out:
            self.timed_out.discard(proc.pid)
            if proc.returncode == -signal.SIGKILL:
                note = f"(the checker did not finish in {self.timeout:g} s: killed)"
                said = f"{said}\n{note}" if said else note
        return _Verdict(proc.returncode, _clip(said))

    def watchdog(self, done: threading.Event) -> None:
        """Every 50 ms until `done`: the time budget, and each checker's timeout."""
        while not done.wait(0.05):
            if self.out_of_time():
                continue
            now = time.monotonic()
            for proc, started in self._running():
                if now - started > self.timeout:
                    self.timed_out.add(proc.pid)
                    _kill(proc)

    def check_disk(
        self, scratch: _Scratch, slot: int, image: DiskImage, said: int
    ) -> _Verdict | None:
        scratch.write(image)
        scratch.say(self.stdout[:said])
        verdict = self.run_check(scratch, slot)
        scratch.repair()
        if verdict is None or verdict.returncode == 0 or not self.keep or self.root is None:
            return verdict
        with self.lock:
            self.kept_disks += 1
            folder = os.path.join(self.root, f"disk-{self.kept_disks}")
        materialise(image, folder)
        return _Verdict(verdict.returncode, verdict.output, folder)

    def worker(self, scratch: _Scratch, slot: int, work: queue.Queue[_Work | None]) -> None:
        """Check the disks of the queue until its end marker (discarding them once halted)."""
        try:
            while (item := work.get()) is not None:
                if self.halted or self.out_of_time():
                    continue
                digest, image, said = item
                verdict = self.check_disk(scratch, slot, image, said)
                if verdict is not None:
                    self.resolve(digest, verdict)
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            self.halt()
            while work.get() is not None:
                pass


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a checker and whatever it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _signals(run: _Run) -> Iterator[None]:
    """SIGINT and SIGTERM end the run with its partial summary (main thread only)."""
    with signals(run.on_signal):
        yield


def explore_exec(
    command: str,
    check: str,
    *,
    profile: str = "prefix",
    torn: TornMode | str = TornMode.DEFAULT,
    exploration: Exploration | str = Exploration.LINEAR,
    ignore: Sequence[str] = (),
    budget: int = DEFAULT_BUDGET,
    time_budget: float = DEFAULT_TIME_BUDGET,
    jobs: int | None = None,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    keep: bool = False,
    ack: Sequence[str] = (),
    timeout: float = 300,
    cap: int = DEFAULT_CAP,
    on_progress: Callable[[ExecProgress], None] | None = None,
    only: str | None = None,
    stacks: bool = False,
) -> ExecSummary:
    """Record `command`, then run `check` on the crash states of every crash point, until
    done, `budget` distinct disks, `time_budget` seconds (recording included) or a signal.
    `max_findings`: how many findings are listed (0: all); `timeout`: the seconds one
    check may take (a slower one is killed, a finding). Raises `CheckerUnusable` when the
    checker cannot judge.

    `only`: a vulnerability's id (`ExecSummary.ids`): check only the crash states that
    can show it (those whose own vulnerability, were they refused alone, has that id;
    the smallest first) and those that decide how they group (`may_own`), and report
    that vulnerability alone. Raises `UnknownVulnerability` when no state can show it.
    `stacks`: run the command under `strace -f -k` (`crashkit.faults.stacks`) so that
    each call names its native frame (where strace cannot, a note says why)."""
    started = time.monotonic()
    chosen = profile_named(profile)
    workers = max(1, jobs or os.cpu_count() or 1)
    summary = ExecSummary(
        command,
        check,
        chosen.name,
        Exploration(exploration),
        budget,
        time_budget,
        workers,
        ignore=tuple(ignore),
        ack=tuple(ack),
        torn=TornMode(torn).value,
        stacks=stacks,
        only=only,
    )
    run = _Run(
        summary,
        check,
        max_findings=0 if only is not None else max_findings,
        timeout=timeout,
        deadline=started + time_budget,
        keep=keep,
    )
    work: queue.Queue[_Work | None] = queue.Queue(maxsize=16 * workers)
    threads: list[threading.Thread] = []
    watched = threading.Event()
    watchdog = threading.Thread(
        target=run.watchdog, args=(watched,), name="crashkit-watchdog", daemon=True
    )
    watchdog.start()
    try:
        with _signals(run):
            done = False
            try:
                _explore(run, command, workers, work, threads, chosen.name, torn, cap, on_progress)
                done = True
            except _Interrupted:
                pass
            finally:
                run.raising = False
                if not done:  # a signal, an error: the queued disks are not checked
                    run.halt()
                _finish(run, work, threads)
    finally:
        watched.set()
        watchdog.join()
        _clean(run)
    if run.error is not None:
        raise run.error
    summary.findings = [f for _, f in sorted(run.listed, key=lambda x: -x[0])]
    if run.failures:
        _vulnerabilities(run, torn, keep)
    if only is not None:
        _only_findings(summary, max_findings)
    summary.seconds = time.monotonic() - started
    return summary


def _vulnerabilities(run: _Run, torn: TornMode | str, keep: bool) -> None:
    """The refused states grouped by cause; each vulnerability's example with the
    profiles under which a crash may leave its disk, and (with `keep`) the disk written
    out beside the findings', to rerun the checker on."""
    summary = run.summary
    recording = summary.recording
    images = {id(failure): image for failure, image in run.failures}
    acks = _acks(summary)
    trace, sources = recording.trace, summary.sources
    vulns = group_failures([f for f, _ in run.failures], trace, sources, acks=acks)
    ids = [failure_id(v.example, trace, sources, acks) for v in vulns]
    if summary.only is not None:  # that one alone; the others' states are context
        vulns = [v for v, i in zip(vulns, ids, strict=True) if i == summary.only]
        ids = [summary.only] * len(vulns)
        summary.failed = sum(v.states for v in vulns)
        summary.others_refused = len(run.failures) - summary.failed
    summary.ids = ids
    wanted = {v.example.point for v in vulns}
    snaps = {index: snap for index, snap in snapshots(recording, run.start) if index in wanted}
    for number, vuln in enumerate(vulns, start=1):
        image = images.get(id(vuln.example))
        if image is None or vuln.example.point not in snaps:
            continue
        snap = snaps[vuln.example.point]
        vuln.profiles = profiles_leaving(snap, image, torn=torn, exploration=summary.exploration)
        if keep and run.root is not None:  # beside the findings' disks
            folder = os.path.join(run.root, f"V{number}")
            materialise(image, folder)
            summary.examples[number] = folder
            summary.kept = run.root
    summary.vulnerabilities = vulns


def _globs(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """Whether a path under the mount matches one of `patterns` (`--ack`, `--ignore`): a
    glob on its absolute path (`/db/LOG`, `*/LOG*`) or, without the leading slash, on
    its path from the mount's root (`acked`, `db/*.log`), as the READMEs write them."""
    if not patterns:
        return None
    return lambda path: any(
        fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path.lstrip("/"), p) for p in patterns
    )


def _acks(summary: ExecSummary) -> Callable[[str], bool] | None:
    """Whether a path is one where the command records what it acknowledged (`--ack`)."""
    return _globs(summary.ack)


def _only_findings(summary: ExecSummary, cap: int) -> None:
    """With `only`: the findings are the chosen vulnerability's refused states (the
    first `cap` of them, smallest first; 0: all)."""
    members = {(m.point, m.deviations) for v in summary.vulnerabilities for m in v.members}
    mine = [f for f in summary.findings if (f.point, f.deviations) in members]
    summary.findings = mine[:cap] if cap else mine


class _Only:
    """`--only ID`: the crash states to check, gathered over every crash point: those
    whose vulnerability, were they refused alone, has the id or one the whole run
    would fold into it (a pair of them, refused, groups as one: ordering pairs lacking
    the same sync, nested folders), and each state that may decide how they group
    (`may_own`: the in-order state of their crash point, and so on), the smallest first."""

    def __init__(self, wanted: str, summary: ExecSummary) -> None:
        self.wanted = wanted
        self.trace = summary.recording.trace
        self.sources = summary.sources
        self.acks = _acks(summary)
        #: per crash point: (its index, bytes said, its states, their ids)
        self.points: list[tuple[int, int, Sequence[CrashState], list[str]]] = []
        #: id -> up to two of its states, at different crash points (to try folds with)
        self.reps: dict[str, list[Failure]] = {}
        self.shows = 0  # states that can show it

    def add(self, index: int, said: int, states: Sequence[CrashState]) -> None:
        """The crash states of one crash point."""
        failures = [Failure(index, state.deviations, "") for state in states]
        ids = [failure_id(f, self.trace, self.sources, self.acks) for f in failures]
        self.points.append((index, said, states, ids))
        for failure, vuln_id in zip(failures, ids, strict=True):
            reps = self.reps.setdefault(vuln_id, [])
            if len(reps) < 2 and all(r.point != failure.point for r in reps):
                reps.append(failure)

    def _folded(self) -> set[str]:
        """The wanted id and those whose states the whole run would count in it."""
        out = {self.wanted}
        mine = self.reps.get(self.wanted, [])
        for other, reps in self.reps.items():
            pair = next(((a, b) for a in mine for b in reps if a.point != b.point), None)
            if other == self.wanted or pair is None:
                continue
            if len(group_failures(pair, self.trace, self.sources, acks=self.acks)) == 1:
                out.add(other)
        return out

    def states(self, complete: bool) -> list[tuple[int, int, CrashState]]:
        """(crash point, bytes said, state) to check, smallest first. Raises
        `UnknownVulnerability` when every crash point was enumerated (`complete`) and
        none can show the id."""
        if self.wanted not in self.reps:
            if complete:
                raise UnknownVulnerability(self.wanted, sorted(self.reps))
            return []
        wanted = self._folded()
        chosen: list[tuple[tuple[int, int, int], int, int, CrashState]] = []
        for index, said, states, ids in self.points:
            failures = [Failure(index, state.deviations, "") for state in states]
            mine = [f for f, i in zip(failures, ids, strict=True) if i in wanted]
            self.shows += len(mine)
            for n, (state, failure) in enumerate(zip(states, failures, strict=True)):
                # an in-order state refused where nothing more is written decides for
                # all (`may_own` of a state with itself: only that rule can hold)
                context = any(may_own(failure, m, self.trace) for m in mine) or (
                    not failure.deviations and may_own(failure, failure, self.trace)
                )
                if ids[n] in wanted or context:
                    chosen.append(((len(state.deviations), index, n), index, said, state))
        return [(index, said, state) for _, index, said, state in sorted(chosen)]


def _explore(
    run: _Run,
    command: str,
    workers: int,
    work: queue.Queue[_Work | None],
    threads: list[threading.Thread],
    profile: str,
    torn: TornMode | str,
    cap: int,
    on_progress: Callable[[ExecProgress], None] | None,
) -> None:
    """Record, check the clean end, then enumerate the crash states and feed the workers."""
    summary = run.summary
    run.root = root = tempfile.mkdtemp(prefix="crashkit-exec-")
    env = environment(os.path.join(root, "callsites"))  # a Python program's source lines
    strace_log = os.path.join(root, "strace.log")  # with stacks: the native frames
    no_stacks = stacks_unavailable() if summary.stacks else None
    argv = traced(command, strace_log) if summary.stacks and no_stacks is None else command
    try:  # the time budget bounds the recording too
        recording, start = record(argv, env=env, timeout=max(0.0, run.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        run.stop(Stopped.TIME)
        return
    summary.recording = recording
    summary.recorded = True
    run.start = start
    run.stdout = recording.stdout.encode()
    native: dict[int, str] = {}
    if argv is not command:
        calls = read_stacks(strace_log, recording.mount, os.getcwd())
        native = attribute(recording.trace, calls)
    elif no_stacks is not None:
        recording.notes.append(f"no native stacks (--stacks): {no_stacks}")
    # a Python line where the hook names one, else the native frame
    summary.sources = {**native, **attribute(recording.trace, read_log(env[LOG_VARIABLE]))}
    points = crash_points(recording)
    summary.points_total = len(points)
    if summary.nothing_recorded is not None:
        return
    scratches = [_Scratch(os.path.join(root, f"worker-{n}")) for n in range(workers)]
    _preflight(run, scratches[0], recording)
    for slot, scratch in enumerate(scratches):
        thread = threading.Thread(
            target=run.worker,
            args=(scratch, slot, work),
            name=f"crashkit-check-{slot}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    ignored = _globs(summary.ignore)
    digests = _Digests()
    checking = time.monotonic()
    shown = 0.0

    def progress() -> None:
        nonlocal shown
        now = time.monotonic()
        if on_progress is None or now - shown < 0.2:
            return
        shown = now
        on_progress(
            ExecProgress(
                summary.states,
                run.found,
                summary.checked,
                summary.points_enumerated,
                summary.points_total,
                now - checking,
            )
        )

    def put(item: _Work) -> bool:
        while not run.halted:
            progress()
            try:
                work.put(item, timeout=0.05)
                return True
            except queue.Full:
                if run.out_of_time():
                    return False
        return False

    submitted = 0
    seq = 0

    def offer(index: int, said: int, state: CrashState) -> bool:
        """Count `state` with its disk's verdict, or queue its disk; False: stop."""
        nonlocal submitted, seq
        seq += 1
        run.found += 1
        digest = digests.of(state.image)
        if run.stdout:  # the same disk with more said is another case
            digest += said.to_bytes(8, "little")
        waiting = _Waiting(seq, index, state)
        with run.lock:
            known = run.verdicts.get(digest)
            if known is not None:
                run.judge(waiting, known)
                return True
            if digest in run.pending:
                run.pending[digest].append(waiting)
                run.missing[index] += 1
                return True
            if submitted >= summary.budget:
                run.stop(Stopped.BUDGET)
                run.cut_short.add(index)
                summary.unchecked += 1
                return True
            submitted += 1
            run.pending[digest] = [waiting]
            run.missing[index] += 1
        return put((digest, state.image, said))

    only = None if summary.only is None else _Only(summary.only, summary)
    following = dict(itertools.pairwise([*points, len(recording.trace)]))
    # each crash point with the next one's snapshot (the linear exploration leaves to it
    # what still holds there)
    ahead = itertools.chain(snapshots(recording, start), [(None, None)])
    for (index, snap), (_, next_snap) in itertools.pairwise(ahead):
        assert index is not None and snap is not None
        if run.halted or run.out_of_time() or summary.stopped is Stopped.BUDGET:
            break
        # what the command had said when the power was cut: a crash after this call
        # stands for every moment up to the next call that changes the disk
        said = recording.said_before(following[index])
        enumeration = crash_states(
            snap,
            exploration=summary.exploration,
            torn=torn,
            cap=cap,
            point=index,
            profile=profile,
            ignore=ignored,
            following=next_snap,
        )
        summary.points_enumerated += 1
        run.missing[index] = 0
        run.states_at[index] = len(enumeration.states)
        if only is not None:  # checked once every crash point is known, smallest first
            only.add(index, said, enumeration.states)
            continue
        for state in enumeration.states:
            if not offer(index, said, state):
                break
    if only is not None:
        chosen = only.states(complete=summary.points_enumerated == summary.points_total)
        summary.only_states = only.shows
        for n, (index, said, state) in enumerate(chosen):
            if run.halted or run.out_of_time():
                left = chosen[n:]
            elif offer(index, said, state):
                continue
            else:
                left = chosen[n + 1 :]
            summary.unchecked += len(left)
            run.cut_short.update(i for i, _, _ in left)
            break

    def tick() -> None:
        progress()
        run.out_of_time()

    _end_workers(run, work, threads, tick)


def _end_workers(
    run: _Run,
    work: queue.Queue[_Work | None],
    threads: list[threading.Thread],
    tick: Callable[[], None],
) -> None:
    """Queue one end marker per worker and wait for them all, calling `tick` meanwhile;
    once halted the workers discard what is queued, and a full queue is emptied."""
    while run.markers < len(threads) and any(t.is_alive() for t in threads):
        try:
            work.put(None, timeout=0.05)
            run.markers += 1
        except queue.Full:
            if run.halted:
                with contextlib.suppress(queue.Empty):
                    if work.get_nowait() is None:
                        run.markers -= 1
        tick()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.05)
        tick()


def _preflight(run: _Run, scratch: _Scratch, recording: Recording) -> None:
    """Check the disk the command left when it ended: a checker that cannot run, or that
    refuses a clean end, would make every crash state a false finding."""
    scratch.write(recording.final)
    scratch.say(run.stdout)
    verdict = run.run_check(scratch, 0)
    scratch.repair()
    if verdict is None:
        return
    said = verdict.output.strip()[-500:] or "(no output)"
    if verdict.returncode in CANNOT_RUN:
        raise CheckerUnusable(
            f"the checker cannot run (exit {verdict.returncode}): {run.check!r}: {said}"
        )
    if verdict.returncode != 0 and recording.returncode == 0:
        raise CheckerUnusable(
            f"the checker {run.check!r} refuses the disk the command left when it ended "
            f"cleanly (exit {verdict.returncode}): {said}. A checker must accept that disk, "
            "else every crash state would look like a finding."
        )


def _finish(
    run: _Run,
    work: queue.Queue[_Work | None],
    threads: list[threading.Thread],
) -> None:
    """Stop the workers (once halted they discard what is queued) and count what is left
    unchecked and which crash points were fully explored."""
    _end_workers(run, work, threads, lambda: None)
    summary = run.summary
    with run.lock:
        summary.unchecked += sum(len(w) for w in run.pending.values())
        summary.points_explored = sum(
            1
            for point, missing in run.missing.items()
            if missing == 0 and point not in run.cut_short
        )
    complete = summary.unchecked == 0 and summary.points_explored == summary.points_total
    if summary.stopped is Stopped.TIME and summary.recorded and complete:
        summary.stopped = None  # the clock ran out as the last check ended: nothing left


def _clean(run: _Run) -> None:
    """Remove the scratch folders; with keep, leave the listed findings' disks."""
    root = run.root
    if root is None:
        return
    if not run.keep:
        shutil.rmtree(root, ignore_errors=True)
        return
    listed = {f.folder for _, f in run.listed if f.folder is not None}
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if path not in listed:
            _remove(path)
    if listed:
        run.summary.kept = root
    else:
        shutil.rmtree(root, ignore_errors=True)


def rerun_command(summary: ExecSummary, vuln_id: str) -> str:
    """The command that reruns one vulnerability alone: this run's with `--only`, and the
    options that change which crash states there are or how they group."""
    words = ["crashkit", "explore", "--exec", summary.command, "--check", summary.check]
    words += ["--only", vuln_id]
    if summary.profile != "prefix":
        words += ["--profile", summary.profile]
    if summary.torn != TornMode.DEFAULT.value:
        words += ["--torn", summary.torn]
    if summary.exploration is not Exploration.LINEAR:
        words += ["--exploration", summary.exploration.value]
    for pattern in summary.ignore:
        words += ["--ignore", pattern]
    for pattern in summary.ack:
        words += ["--ack", pattern]
    if summary.stacks:
        words.append("--stacks")
    return shlex.join(words)


def vulnerability_notes(summary: ExecSummary, cap: int) -> list[str]:
    """The refused states by cause (`report_lines`), each with its stable id; with keep,
    its example's disk and the command that reruns it alone (`--only`)."""
    vulns = summary.vulnerabilities
    only = summary.only
    if only is not None and not vulns and summary.recorded:
        done = "all passed" if summary.stopped is None else "passed, of those checked"
        return [
            f"vulnerability {only} did not show (--only): the {summary.only_states:,} crash "
            f"state(s) that can show it {done}"
        ]
    if not vulns:
        return []
    if only is None:
        out = [headline(vulns, f"{summary.failed:,} refused crash states")]
    else:
        out = [
            f"vulnerability {only} alone (--only): {summary.failed:,} refused crash states "
            f"({summary.only_states:,} can show it)"
        ]
    kept: list[str] = []  # under the example's line
    for line in report_lines(vulns, cap):
        number = line.split(" ", 1)[0]
        if not (number.startswith("V") and number[1:].isdigit()):
            out.append(line)
            if line.startswith("   e.g. "):
                out += kept
                kept = []
            continue
        n = int(number[1:])
        out.append(f"{number} [{summary.vuln_id(n)}]{line[len(number) :]}")
        disk = summary.examples.get(n)
        if disk is not None:
            kept = [
                f"   disk kept: CRASHKIT_DIR={shlex.quote(disk)} {summary.check}",
                f"   rerun: {rerun_command(summary, summary.vuln_id(n))}",
            ]
    if summary.others_refused:
        out.append(
            f"({summary.others_refused:,} other refused crash state(s), checked because they "
            "decide how its states group, show other causes: run without --only for them)"
        )
    if not summary.examples and only is None:
        out.append(
            "(--only ID reruns one vulnerability alone; --keep writes each one's example "
            "disk, with that command)"
        )
    return out


def finding_lines(summary: ExecSummary) -> Sequence[str]:
    """Each finding as the lines a reader needs: the cut, the disk, how it deviates from
    the in-order state, what the check said (and where the disk was kept)."""
    out: list[str] = []
    for f in summary.findings:
        out.append(f"crash after {f.after}: {f.cut}")
        out.append(f"  disk: {', '.join(f.files) or 'no file'}")
        for d in f.deviations:
            out.append(f"  deviation {d.kind.value}: {d.detail}")
        if not f.deviations:
            out.append("  deviation: none (the in-order state: every call persisted)")
        output = f.output or "(no output)"
        out.append(f"  check exited {f.returncode}: {output}")
        if f.folder is not None:
            out.append(f"  disk kept: CRASHKIT_DIR={shlex.quote(f.folder)} {summary.check}")
    if summary.more_findings:
        out.append(
            f"... and {summary.more_findings:,} more refused crash state(s) not listed "
            "(--max-findings 0 lists every one)"
        )
    return out
