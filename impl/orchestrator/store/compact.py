"""Compaction of the JSONL state file (contract §8): the file rewritten to hold only each
symbol's winning record, so restore time stops growing with history.

Fault model. A crash may come after any call below. The procedure (C8.2) makes each
outcome one that restores to the same store (C8.3), on a file system whose renames are
atomic:

1. under the writer lock, restore the file; a fatal or refusing file is never compacted;
2. write the winners, one canonical line each, to a temp file beside the state file
   (same folder, so the rename cannot cross file systems), lock it, fsync it;
3. `os.replace` it over the state file, then fsync the folder: before that fsync a
   crash leaves the old file or the new one, after it the new one;
4. the temp file's descriptor, already locked, becomes the writer's: no second writer
   can slip in between the rename and the lock.

A crash before step 3 leaves a stale temp file; the next start removes it, durably,
before anything else (`remove_stale_temp`). A failure before the rename leaves the old
file in charge (the temp file is removed), and so does a rename that failed; a failure
of the folder fsync after the rename refuses the start, since appends to the new file
would not be durable.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from crashkit.orchestrator.errors import RestoreFatal
from crashkit.orchestrator.store.report import RestoreReport, parse_state_bytes
from crashkit.regime_engine.codec import RecordError, decode_record, encode_states, record_to_state
from crashkit.regime_engine.contracts import HysteresisConfig

#: The temp file's name: the state file's, plus this (in the same folder).
TEMP_SUFFIX = ".compacting"


def temp_path(path: str) -> str:
    return path + TEMP_SUFFIX


@dataclass(frozen=True, slots=True)
class CompactPolicy:
    """When a start compacts: the file holds at least `min_lines` lines and more than
    `ratio` lines per live record (symbol)."""

    ratio: float = 4.0
    min_lines: int = 10_000

    def due(self, report: RestoreReport) -> bool:
        if report.outcome != "ok" or not report.winners:
            return False
        return report.lines >= self.min_lines and report.lines > self.ratio * len(report.winners)


#: `crashkit compact`: now, unless the file already holds one line per symbol.
COMPACT_NOW = CompactPolicy(ratio=1.0, min_lines=0)

#: Compact at every start that finds more than two lines per symbol: what the explorer
#: runs the reference's compaction with (`jsonl.COMPACTING_BACKEND`).
EAGER_POLICY = CompactPolicy(ratio=2.0, min_lines=0)

#: The reference's automatic policy (a start compacts a file of 10,000 lines or more that
#: holds more than 4 lines per symbol).
DEFAULT_POLICY = CompactPolicy()


@dataclass(frozen=True, slots=True)
class CompactSteps:
    """C8.2's safety steps, each on by default. The self-test's broken variants
    (`crashkit.harness.kit.variants`) turn one off, to show the explorer catches it."""

    fsync_temp: bool = True  # fsync the temp file before the rename
    fsync_folder: bool = True  # fsync the folder after the rename
    write_first: bool = True  # the temp file is complete before the rename
    clean_stale: bool = True  # a start removes a temp file an earlier crash left
    temp_beside: bool = True  # the temp file is in the state file's own folder
    lock_temp: bool = True  # the temp file is locked before the rename (it becomes the writer's)
    later_tie_wins: bool = True  # a tie keeps the later record (C4.11), as restore does
    keep_idle: bool = True  # every symbol's winner is kept, however far back its record
    torn_tail_left: bool = True  # a torn tail stays behind in the old file, never copied


#: Every step on: what the reference does.
SAFE_STEPS = CompactSteps()


@dataclass(frozen=True, slots=True)
class Compacted:
    """What a compaction did: the new file's descriptor (locked) and its restore."""

    fd: int
    report: RestoreReport
    lines_before: int
    bytes_before: int


def compacted_bytes(report: RestoreReport, config: HysteresisConfig) -> bytes:
    """Each symbol's winner as one canonical line, in the order of their lines: restore of
    these bytes selects exactly the winners (ties are already decided)."""
    ordered = sorted(report.winners.values(), key=lambda winner: winner[0])
    return encode_states([record_to_state(record, config) for _, record in ordered])


def _broken_selection(
    fd: int, report: RestoreReport, config: HysteresisConfig, steps: CompactSteps
) -> bytes:
    """The winners as a compaction that leaves out one of C8.1's cares would pick them (the
    self-test's broken variants): the first of a tie (its own scan of the file with `>`),
    or only the symbols whose winner lies in the newer half of the history."""
    winners = dict(report.winners)
    if not steps.later_tie_wins:
        data = os.pread(fd, report.committed_bytes, 0)
        for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
            try:
                record = decode_record(raw)
            except RecordError:
                continue
            best = winners.get(record.symbol)
            tied = best is not None and record.engine_timestamp_ms == best[1].engine_timestamp_ms
            if tied and best is not None and number < best[0]:
                winners[record.symbol] = (number, record)
    if not steps.keep_idle:
        winners = {s: w for s, w in winners.items() if w[0] > report.lines // 2}
    ordered = sorted(winners.values(), key=lambda winner: winner[0])
    return encode_states([record_to_state(record, config) for _, record in ordered])


def _close_quietly(fd: int) -> None:
    """close(2) releases the descriptor even when it reports an error."""
    with contextlib.suppress(OSError):
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    if os.write(fd, data) != len(data):
        raise OSError(errno.EIO, "short write")


def remove_stale_temp(path: str, fsync_directory: Callable[[str], None]) -> bool:
    """Remove a temp file an earlier compaction left behind, durably. True if one was."""
    stale = temp_path(path)
    try:
        os.unlink(stale)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise RestoreFatal(
            path, f"cannot remove the stale compaction file {stale}: {exc.strerror}"
        ) from exc
    try:
        fsync_directory(os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        raise RestoreFatal(
            path, f"cannot make the removal of {stale} durable (directory fsync): {exc.strerror}"
        ) from exc
    return True


def compact_locked(
    path: str,
    fd: int,
    report: RestoreReport,
    config: HysteresisConfig,
    *,
    lock: Callable[[int, str], None],
    fsync_directory: Callable[[str], None],
    steps: CompactSteps = SAFE_STEPS,
) -> Compacted | None:
    """Compact the file whose locked descriptor is `fd` and whose restore is `report`.

    Returns the new file (its descriptor locked, `fd` closed), or None when a failure
    before or of the rename left the old file in charge (`fd` still open). Raises
    RestoreFatal when the folder fsync after the rename failed (`fd` closed)."""
    if report.outcome != "ok":
        raise RestoreFatal(path, f"a {report.outcome} state file is never compacted")
    data = compacted_bytes(report, config)
    if not (steps.later_tie_wins and steps.keep_idle):
        data = _broken_selection(fd, report, config, steps)
    written = data
    if not steps.torn_tail_left and report.torn_tail_bytes:  # (a broken variant's step)
        written += os.pread(fd, report.torn_tail_bytes, report.committed_bytes)
    tmp = temp_path(path)
    if not steps.temp_beside:
        parent = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        tmp = os.path.join(parent, os.path.basename(tmp))
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        tfd = os.open(tmp, flags, 0o644)
    except OSError:
        return None
    try:
        if steps.lock_temp:
            lock(tfd, tmp)
        if steps.write_first:
            _write_all(tfd, written)
        if steps.fsync_temp:
            os.fsync(tfd)
    except (OSError, RestoreFatal):
        _close_quietly(tfd)
        with contextlib.suppress(OSError):  # else the next start removes it
            os.unlink(tmp)
        return None
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.replace(tmp, path)
    except OSError:  # nothing was renamed (EXDEV, EIO...): the old file stays in charge
        _close_quietly(tfd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    try:
        if not steps.write_first:
            _write_all(tfd, written)
            os.fsync(tfd)
        if steps.fsync_folder:
            fsync_directory(directory)
    except OSError as exc:
        _close_quietly(tfd)
        _close_quietly(fd)
        raise RestoreFatal(
            path,
            f"compaction could not make the compacted file durable ({exc.strerror}); "
            "refusing to append to it",
        ) from exc
    _close_quietly(fd)  # the old file was only read: an error closing it loses nothing
    new = parse_state_bytes(data, path)
    return Compacted(tfd, new, report.lines, report.file_bytes)
