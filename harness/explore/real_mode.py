"""The orchestrator as a real process, on any backend: `crashkit explore --real`.

`crashkit run` runs as a child process on a FUSE mount (`crashkit.faults.real`), its
state under `/state` and its events file under `/events`, both recorded: the order of
the calls tells, for every crash point, which events had been published before it.
Every crash state of the state folder (the events are downstream, not part of it) is
written as a folder and `crashkit run` restarts on it, on the same input, with its
events to a file outside. The same oracles judge each restart:

- a refused restart after a crash is `4-crash-damage-not-fatal`;
- each symbol's latest decision published before the crash must be restored
  (`3-publish-implies-committed`: what was published was committed, so it survives);
- the decisions published before the crash and by the restarted process together equal
  the uninterrupted run's (`5-continuity`, C6.8), which `crashkit replay` gives.

Any backend `crashkit run` can load works, one on the stdlib `sqlite3` module too: the
mount sees the I/O the in-process fault layer cannot. Restarts are real processes (a
fraction of a second each); the same disk reached from several crash points restarts
once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crashkit.faults import DiskImage, TornMode, profile_named
from crashkit.faults.crash import enumerate_states
from crashkit.faults.model import Snapshot
from crashkit.faults.real import Recording, materialise, record, snapshots
from crashkit.harness.judge import oracles as orc
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.sources import encode_snapshot
from crashkit.regime_engine.synthetic import generate

CRASHKIT = (sys.executable, "-m", "crashkit.harness")
STATE = "/state/hysteresis.jsonl"
EVENTS = "/events/events.jsonl"


@dataclass(frozen=True, slots=True)
class RealFinding:
    violation: Violation
    after: str
    cut: str


@dataclass(slots=True)
class RealSummary:
    backend: str
    profile: str
    recording: Recording
    points: int = 0
    states: int = 0
    restarts: int = 0
    violated: Counter[str] = field(default_factory=Counter)
    findings: list[RealFinding] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False  # at the findings cap, before every crash state was restarted

    @property
    def violations(self) -> int:
        return sum(self.violated.values())


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


def _config(folder: str, backend: str, window: int) -> str:
    path = os.path.join(folder, "orchestrator.toml")
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


def _restored(events: Sequence[Event]) -> dict[str, int]:
    return {
        e.symbol: e.engine_timestamp_ms
        for e in events
        if e.event_type == ev.STATE_RESTORED
        and e.symbol is not None
        and e.engine_timestamp_ms is not None
    }


def judge_restart(
    published: Sequence[Event],
    returncode: int,
    output: str,
    restart: Sequence[Event],
    reference: Mapping[str, orc.Decision],
) -> list[Violation]:
    """One restart of a real process after a crash, by the explorer's oracles."""
    if returncode == 3:
        return orc.check_crash_not_fatal(output.strip().splitlines()[-1] if output else "exit 3")
    out: list[Violation] = []
    if returncode == 4:  # it started, then could not append to what the crash left
        out.append(
            Violation(
                Invariant.CRASH_NOT_FATAL,
                f"the restarted process halted on the disk a crash left: {output[-300:]}",
            )
        )
    elif returncode != 0:
        out.append(
            Violation(
                Invariant.PROTOCOL, f"the restarted process exited {returncode}: {output[-300:]}"
            )
        )
    latest = orc.latest_published(enumerate(published))
    out += orc.published_not_on_disk(latest, _restored(restart))
    before, conflicts = orc.decisions_of(published)
    after, more = orc.decisions_of(restart)
    merged, clash = orc.merge_decisions(before, after)
    out += conflicts + more + clash
    if returncode == 0:
        out += orc.continuity_violations(merged, reference)
    return out


def explore_real(
    backend: str,
    *,
    symbols: int = 2,
    ticks: int = 6,
    seed: int = 1,
    window: int = 3,
    profile: str = "prefix",
    torn: TornMode | str = TornMode.DEFAULT,
    max_findings: int = 20,
) -> RealSummary:
    """Record `crashkit run` on `backend` on a mount, restart it on every crash state;
    stop at the `max_findings`-th finding (0: never), as every restart is a process."""
    started = time.perf_counter()
    chosen = profile_named(profile)
    with tempfile.TemporaryDirectory(prefix="crashkit-real-run-") as scratch:
        market = os.path.join(scratch, "market.jsonl")
        with open(market, "wb") as f:
            f.writelines(encode_snapshot(s) for s in generate(symbols, ticks, seed))
        config = _config(scratch, backend, window)
        reference_events = os.path.join(scratch, "reference.jsonl")
        replay = [*CRASHKIT, "replay", "--config", config, "--input", market]
        subprocess.run([*replay, "--events", reference_events], check=True, capture_output=True)
        with open(reference_events, "rb") as f:
            reference, _ = orc.decisions_of(read_events(f.read()))
        run = [*CRASHKIT, "run", "--config", config, "--input", market]
        command = (
            " ".join(run) + f' --state "$CRASHKIT_DIR{STATE}" --events "$CRASHKIT_DIR{EVENTS}"'
        )
        recording, start = record(command, DiskImage(dirs=("/events",)), env=_child_env())
        summary = RealSummary(backend, chosen.name, recording)
        verdicts: dict[DiskImage, tuple[int, str, list[Event]]] = {}
        for index, snap in snapshots(recording, start):
            summary.points += 1
            published, disk = _split_events(snap)
            for state in enumerate_states(disk, torn=torn, point=index, profile=chosen).states:
                image = state.image
                summary.states += 1
                verdict = verdicts.get(image)
                if verdict is None:
                    verdict = verdicts[image] = _restart(run, image, scratch, len(verdicts))
                    summary.restarts += 1
                for violation in judge_restart(published, *verdict, reference):
                    summary.violated[violation.invariant.value] += 1
                    summary.findings.append(
                        RealFinding(violation, str(recording.trace[index]), state.cut)
                    )
                if max_findings and len(summary.findings) >= max_findings:
                    del summary.findings[max_findings:]
                    summary.stopped = True
                    break
            if summary.stopped:
                break
    summary.seconds = time.perf_counter() - started
    return summary


def _child_env() -> dict[str, str]:
    """The children's environment: a backend module in the current folder loads there as
    it does for `crashkit explore --backend` (the folder first on PYTHONPATH)."""
    path = os.environ.get("PYTHONPATH")
    here = os.getcwd()
    return {**os.environ, "PYTHONPATH": here if not path else f"{here}{os.pathsep}{path}"}


def _split_events(snap: Snapshot) -> tuple[list[Event], Snapshot]:
    """The events published by then (the events file as the process saw it), and the
    disk without the events folder (downstream's, not the state's: not crash-tested)."""
    folder = snap.current[snap.root].get(EVENTS.split("/")[1])
    published: list[Event] = []
    if folder is None:
        return published, snap
    for ino in snap.current.get(folder, {}).values():
        if ino in snap.files:
            published = read_events(snap.files[ino].current)
    current = {d: e for d, e in snap.current.items() if d != folder}
    current[snap.root] = {n: i for n, i in current[snap.root].items() if i != folder}
    durable = {d: {n: i for n, i in e.items() if i != folder} for d, e in snap.durable.items()}
    durable.pop(folder, None)
    kept = set(current) | {i for e in (*current.values(), *durable.values()) for i in e.values()}
    files = {i: f for i, f in snap.files.items() if i in kept}
    return published, Snapshot(snap.root, current, durable, files, snap.paths)


def _restart(
    run: Sequence[str], image: DiskImage, scratch: str, number: int
) -> tuple[int, str, list[Event]]:
    """`crashkit run` on `image` as a folder: (exit code, its stderr, its events)."""
    folder = os.path.join(scratch, f"state-{number}")
    materialise(image, folder)
    events = os.path.join(scratch, f"events-{number}.jsonl")
    done = subprocess.run(
        [*run, "--state", folder + STATE, "--events", events],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    data = b""
    if os.path.exists(events):
        with open(events, "rb") as f:
            data = f.read()
    return done.returncode, done.stderr.strip(), read_events(data)
