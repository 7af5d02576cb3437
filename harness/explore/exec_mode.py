"""Crash-test any program, as ALICE's checker does: record it on a FUSE mount, rebuild
every disk a power cut could leave as a folder, and run the user's checker on each.

`crashkit explore --exec CMD --check CHECK`. CMD runs once, in the current folder, with
`CRASHKIT_DIR` naming a mount where it keeps its files, recorded by `crashkit.faults.real`. After every call
of it that changed the disk, each crash state the profile allows is written as an
ordinary folder and CHECK runs with `CRASHKIT_DIR` naming that folder: exit 0 means the
disk is one the program can live with, anything else is a finding (its output kept).
The same disk reached from several crash points is checked once. No FUSE is needed to
check: only to record.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from crashkit.faults import DiskImage, TornMode, profile_named
from crashkit.faults.crash import enumerate_states
from crashkit.faults.real import Recording, materialise, record, snapshots


@dataclass(frozen=True, slots=True)
class ExecFinding:
    """One crash state the checker refused: where the power was cut, what survived, what
    the checker said."""

    point: int
    after: str  # the call the crash came after, as the trace shows it
    cut: str
    returncode: int
    output: str
    files: tuple[str, ...]  # the disk's files (sizes), for the reader


@dataclass(slots=True)
class ExecSummary:
    command: str
    check: str
    profile: str
    recording: Recording
    points: int = 0
    states: int = 0
    checked: int = 0  # distinct disks the checker ran on
    findings: list[ExecFinding] = field(default_factory=list)
    failed: int = 0  # crash states refused (all of them, also those past the cap)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.recording.returncode == 0


def _describe(image: DiskImage) -> tuple[str, ...]:
    return tuple(f"{path} ({len(data)} bytes)" for path, data in image.files.items())


def explore_exec(
    command: str,
    check: str,
    *,
    profile: str = "prefix",
    torn: TornMode | str = TornMode.DEFAULT,
    max_findings: int = 20,
    timeout: float = 300,
) -> ExecSummary:
    """Record `command`, then run `check` on every crash state of every crash point."""
    started = time.perf_counter()
    chosen = profile_named(profile)
    recording, start = record(command, timeout=timeout)
    summary = ExecSummary(command, check, chosen.name, recording)
    verdicts: dict[DiskImage, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory(prefix="crashkit-exec-") as scratch:
        for index, snap in snapshots(recording, start):
            summary.points += 1
            for state in enumerate_states(snap, torn=torn, point=index, profile=chosen).states:
                summary.states += 1
                verdict = verdicts.get(state.image)
                if verdict is None:
                    verdict = verdicts[state.image] = _check(
                        check, state.image, scratch, len(verdicts), timeout
                    )
                    summary.checked += 1
                if verdict[0] == 0:
                    continue
                summary.failed += 1
                if len(summary.findings) < max_findings:
                    summary.findings.append(
                        ExecFinding(
                            index,
                            str(recording.trace[index]),
                            state.cut,
                            verdict[0],
                            verdict[1],
                            _describe(state.image),
                        )
                    )
    summary.seconds = time.perf_counter() - started
    return summary


def _check(
    check: str, image: DiskImage, scratch: str, number: int, timeout: float
) -> tuple[int, str]:
    """Run the checker on `image` written as a folder: (its exit code, its output)."""
    folder = os.path.join(scratch, f"state-{number}")
    materialise(image, folder)
    done = subprocess.run(
        check,
        shell=True,
        env={**os.environ, "CRASHKIT_DIR": folder},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def finding_lines(summary: ExecSummary) -> Sequence[str]:
    """Each finding as the lines a reader needs: the cut, the disk, what the check said."""
    out: list[str] = []
    for f in summary.findings:
        out.append(f"crash after {f.after}: {f.cut}")
        out.append(f"  disk: {', '.join(f.files) or 'no file'}")
        out.append(f"  check exited {f.returncode}: {f.output or '(no output)'}")
    return out
