"""The kit's own checks: the contract's restore rows that make sense for any backend, the
single-writer rule, and (for line-format backends) every row of the restore table on a
seeded file.

Each check boots the harness's fake disk, drives the backend through its factory only
(no orchestrator), and judges with the one judge. It returns the violations it found
and how much it checked, or raises `NotApplicable` with the reason when the backend
does not declare what the check needs.

The rows, and why each holds for any backend (contract §4, C5.9):
- an empty or missing state folder is a bootstrap: an empty store, no refusal (C4.2);
- a directory or FIFO at the state path is refused, never read as empty (C4.3);
- a state that cannot be opened or read is refused, never taken as empty (C4.3);
- a store whose files were damaged offline never restores as empty without refusing,
  and never restores a state that was not written whole (C4.7, invariant 2);
- damage only a crash can cause never makes a restore refuse (invariant 4);
- while one writer holds the path a second is refused, and a new one starts after it
  closed (C5.9, for backends that declare `single_writer`).
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule, OpKind
from crashkit.harness.explore.explorer import NotApplicable
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import close_quietly
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    is_crash,
    judge_close,
    judge_refusal,
    judge_restored,
    judge_single_writer,
)
from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store.protocol import Backend, OpenedStore
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

CONFIG = HysteresisConfig()
T0 = 1_700_000_000_000
FATAL = ModelRestore("fatal", {}, (), ())
BOOTSTRAP = ModelRestore("bootstrap", {}, (), ())


def _state(
    symbol: str, ts: int, anchor: Regime = Regime.CHOP_BALANCED, progress: int = 0
) -> HysteresisState:
    candidate = (
        None
        if progress == 0
        else (Regime.SQUEEZE_UP if anchor != Regime.SQUEEZE_UP else Regime.SQUEEZE_DOWN)
    )
    return HysteresisState(symbol, ts, anchor, candidate, progress, CONFIG.window_updates, None)


#: What the prepared stores hold: two ticks of two symbols.
TICKS: tuple[tuple[HysteresisState, ...], ...] = (
    (_state("SYM000", T0), _state("SYM001", T0, Regime.TREND_BUILD_UP)),
    (_state("SYM000", T0 + 60_000, Regime.CHOP_BALANCED, 1), _state("SYM001", T0 + 60_000)),
)
WRITTEN = tuple(s for tick in TICKS for s in tick)


@dataclass(slots=True)
class Outcome:
    """What a check found, and how many restores it judged."""

    violations: list[Violation] = field(default_factory=list)
    restores: int = 0
    notes: list[str] = field(default_factory=list)


_FS: CrashFS | None = None


def _fs() -> CrashFS:
    global _FS
    if _FS is None:
        _FS = CrashFS(record=True)
    return _FS


@contextmanager
def disk(image: DiskImage | None = None, plan: FaultPlan | None = None) -> Iterator[CrashFS]:
    """The fake disk holding `image` (fully durable), with `plan` armed."""
    fs = _fs()
    fs.configure(plan=plan or FaultPlan(), record=True)
    fs.start(image)
    try:
        yield fs
    finally:
        fs.stop()


def _open(backend: Backend) -> tuple[OpenedStore | None, str | None]:
    """Open the store at the state path: (opened, None) or (None, refusal reason)."""
    try:
        return backend.open(STATE_PATH, CONFIG), None
    except StartupRefused as exc:
        return None, exc.reason
    except Exception as exc:  # a backend must refuse cleanly, not crash
        return None, crash_reason(exc)


def _judge_start(
    backend: Backend,
    expected: ModelRestore | None,
    ledger: Ledger,
    out: Outcome,
    *,
    crashed: bool = False,
) -> OpenedStore | None:
    """Open, judge the start against `expected`, return the store (the caller closes it)."""
    opened, refusal = _open(backend)
    out.restores += 1
    if opened is None:
        out.violations += judge_refusal(refusal or "", expected=expected, crashed=crashed)
        return None
    out.violations += judge_restored(dict(opened.store.states), ledger, expected=expected)
    return opened


def _close(opened: OpenedStore, out: Outcome) -> None:
    errors: list[str] = []
    close_quietly(opened.backend.close, errors)
    out.violations += judge_close(errors)


def prepared_store(backend: Backend) -> DiskImage:
    """The disk after the backend wrote `TICKS` (each append acknowledged) and closed."""
    with disk() as fs:
        opened, refusal = _open(backend)
        if opened is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        for tick in TICKS:
            opened.backend.append(list(tick))
        close_quietly(opened.backend.close, [])
        return fs.visible_image()


# -- the backend-neutral rows --------------------------------------------------------------


def row_empty_folder(backend: Backend) -> Outcome:
    """The state folder exists and is empty: bootstrap (C4.2)."""
    out = Outcome()
    with disk(DiskImage(dirs=(STATE_DIR,))):
        opened = _judge_start(backend, BOOTSTRAP, Ledger(), out)
        if opened is not None:
            _close(opened, out)
    return out


def row_missing_folder(backend: Backend) -> Outcome:
    """Not even the state folder exists: bootstrap, and the writer creates what it needs."""
    out = Outcome()
    with disk(DiskImage()):
        opened = _judge_start(backend, BOOTSTRAP, Ledger(), out)
        if opened is not None:
            _close(opened, out)
    return out


def _special(kind: str) -> Callable[[Backend], Outcome]:
    def row(backend: Backend) -> Outcome:
        out = Outcome()
        image = (
            DiskImage(dirs=(STATE_PATH,)) if kind == "directory" else DiskImage(dirs=(STATE_DIR,))
        )
        with disk(image) as fs:
            if kind == "fifo":
                fs.filesystem.create_file(STATE_PATH, st_mode=stat.S_IFIFO | 0o644)
            opened = _judge_start(backend, FATAL, Ledger(), out)
            if opened is not None:
                _close(opened, out)
        return out

    row.__doc__ = f"A {kind} at the state path is refused, never read as an empty store (C4.3)."
    return row


row_directory_at_path = _special("directory")
row_fifo_at_path = _special("fifo")


def _faulted(op: OpKind, errno: str) -> Callable[[Backend], Outcome]:
    def row(backend: Backend) -> Outcome:
        out = Outcome()
        image = prepared_store(backend)
        patterns = backend.capabilities.file_patterns(STATE_PATH)
        plan = FaultPlan(tuple(FaultRule(op, p, 1, errno, persistent=True) for p in patterns))
        with disk(image, plan) as fs:
            opened = _judge_start(backend, FATAL, Ledger(), out)
            fired = any(o.injected for o in fs.trace)
            if opened is not None:
                if not fired:
                    out.notes.append(
                        f"no {op} of {', '.join(patterns)} was made: the fault never fired"
                    )
                    out.violations = [
                        v for v in out.violations if v.invariant is not Invariant.RESTORE_TABLE
                    ]
                _close(opened, out)
        return out

    row.__doc__ = f"A store whose {op} fails ({errno}) is refused, never taken as empty (C4.3)."
    return row


row_unreadable_open = _faulted(OpKind.OPEN, "EACCES")
row_unreadable_read = _faulted(OpKind.READ, "EIO")


def _garble(data: bytes, start: int) -> bytes:
    """`data` with every byte from `start` replaced by `#`, newlines kept where they were."""
    return data[:start] + bytes(b if b == 0x0A else 0x23 for b in data[start:])


def _damaged(share: str) -> Callable[[Backend], Outcome]:
    def row(backend: Backend) -> Outcome:
        out = Outcome()
        image = prepared_store(backend)
        files = dict(image.files)
        damaged = [p for p in files if p.startswith(STATE_DIR + "/") and files[p]]
        if not damaged:
            raise NotApplicable("the backend left no file with content in the state folder")
        for path in damaged:
            data = files[path]
            files[path] = _garble(data, 0 if share == "all" else len(data) // 2)
        ledger = Ledger.build((), written=WRITTEN)
        with disk(DiskImage(files=files, dirs=image.dirs)):
            opened, refusal = _open(backend)
            out.restores += 1
            if opened is None:
                if refusal is not None and is_crash(refusal):
                    out.violations += judge_refusal(refusal, expected=None, crashed=False)
                return out  # refusing damaged files is always allowed
            restored = dict(opened.store.states)
            out.violations += judge_restored(restored, ledger)
            if share == "all" and not restored:
                out.violations.append(
                    Violation(
                        Invariant.RESTORE_TABLE,
                        "every file of the store was damaged (garbage, same length) and the "
                        "backend started with an empty store instead of refusing (C4.7)",
                    )
                )
            _close(opened, out)
        return out

    what = "every byte" if share == "all" else "the second half"
    row.__doc__ = (
        f"Damage to {what} of each file the backend keeps: it refuses, or restores only "
        "states that were written whole, and never starts empty from a damaged store."
    )
    return row


row_damaged_whole = _damaged("all")
row_damaged_tail = _damaged("half")


def row_crash_damage_not_fatal(backend: Backend) -> Outcome:
    """Every disk a power cut may leave while the backend writes `TICKS` restores
    without refusing (4), with nothing acknowledged lost (1)."""
    out = Outcome()
    with disk() as fs:
        opened, refusal = _open(backend)
        if opened is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        acked: list[tuple[int, HysteresisState]] = []
        for tick in TICKS:
            try:
                opened.backend.append(list(tick))
            except Exception as exc:
                raise NotApplicable(f"an append failed with no fault injected: {exc}") from exc
            acked += [(len(fs.trace), s) for s in tick]
        close_quietly(opened.backend.close, [])
        states = [(p, st) for p in fs.crash_points() for st in fs.crash_states(p)]
    for point, crash in states:
        ledger = Ledger.build(
            [s for at, s in acked if at <= point + 1],
            later=[s for at, s in acked if at > point + 1],
            written=WRITTEN,
        )
        with disk(crash.image):
            expected = BOOTSTRAP if not crash.image.files else None
            reopened = _judge_start(backend, expected, ledger, out, crashed=True)
            if reopened is not None:
                _close(reopened, out)
    return out


def check_single_writer(backend: Backend) -> Outcome:
    """While one writer holds the path a second open is refused; after it closed, one starts."""
    if not backend.capabilities.single_writer:
        raise NotApplicable(f"{backend.name} does not declare single_writer")
    out = Outcome()
    with disk(DiskImage(dirs=(STATE_DIR,))):
        first, refusal = _open(backend)
        if first is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        try:
            first.backend.append(list(TICKS[0]))
        except Exception as exc:
            raise NotApplicable(f"an append failed with no fault injected: {exc}") from exc
        second, second_refusal = _open(backend)
        if second is not None:
            _close(second, out)
        _close(first, out)
        third, third_refusal = _open(backend)
        if third is not None:
            _close(third, out)
        out.restores += 3
        out.violations += judge_single_writer(second_refusal, third_refusal)
    return out


#: name -> (check, what it needs of the backend); the kit runs each as one item.
NEUTRAL_ROWS: dict[str, Callable[[Backend], Outcome]] = {
    "empty-folder-bootstraps": row_empty_folder,
    "missing-folder-bootstraps": row_missing_folder,
    "directory-at-path-refused": row_directory_at_path,
    "fifo-at-path-refused": row_fifo_at_path,
    "open-error-refused": row_unreadable_open,
    "read-error-refused": row_unreadable_read,
    "damaged-store-never-empty": row_damaged_whole,
    "damaged-store-nothing-invented": row_damaged_tail,
    "crash-damage-never-fatal": row_crash_damage_not_fatal,
}


# -- the restore table on seeded files (line-format backends) -------------------------------


def _line(state: HysteresisState) -> bytes:
    return encode_state(state)


A1, A2, B1 = (
    _state("SYM000", T0),
    _state("SYM000", T0 + 60_000, Regime.TREND_BUILD_UP),
    _state("SYM001", T0),
)
TIE = _state("SYM000", T0 + 60_000, Regime.CHOP_BALANCED, 1)

#: Contract §3.1, rows 6-15 (rows 1-5 are the neutral rows above), as seeded files.
TABLE_ROWS: dict[str, bytes] = {
    "6-zero-bytes": b"",
    "7-only-blank-lines": b"\n  \n\t\n",
    "8-only-a-torn-tail": _line(A1)[:-1],
    "9-records-with-blank-lines": _line(A1) + b"\n" + _line(B1),
    "10-records-and-a-parseable-torn-tail": _line(A1) + _line(A2)[:-1],
    "10-records-and-a-torn-tail": _line(A1) + _line(A2)[: len(_line(A2)) // 2],
    "11-records-and-invalid-lines": _line(A1) + b"not json\n" + _line(B1) + b"[1]\n",
    "11-a-non-utf8-line": _line(A1) + b"\xff\xfe\n",
    "12-only-invalid-lines": b"garbage\n{}\n",
    "12-invalid-lines-and-a-torn-tail": b"garbage\n" + _line(A1)[:-1],
    "13-a-duplicate-key": _line(A1) + _line(A2)[:-2] + b',"symbol":"SYM000"}\n',
    "14-an-engine-invariant-break": _line(A1)
    + _line(A2).replace(b'"progress_current":0', b'"progress_current":2'),
    "15-a-tie-goes-to-the-later-line": _line(A1) + _line(A2) + _line(TIE),
    "selection-by-timestamp-not-position": _line(A2) + _line(A1),
}


def check_table_row(backend: Backend, row: str) -> Outcome:
    """One row of the restore table on a seeded file: the backend starts or refuses, and
    selects, exactly as the contract's reading says; then an append after the restore is
    itself restored (no append behind a torn tail)."""
    if not backend.capabilities.line_format:
        raise NotApplicable(f"{backend.name} does not declare line_format (a seeded line file)")
    data = TABLE_ROWS[row]
    expected = model_restore(data, CONFIG)
    out = Outcome()
    seeded = list(expected.records)
    with disk(DiskImage(files={STATE_PATH: data})):
        opened = _judge_start(
            backend, expected, Ledger.build(expected.states.values(), written=seeded), out
        )
        if opened is None:
            return out
        probe = _state("SYM000", T0 + 3_600_000)
        try:
            opened.backend.append([probe])
        except Exception as exc:
            out.violations.append(
                Violation(
                    Invariant.DURABILITY,
                    f"the first append after restoring row {row} failed: {exc}",
                )
            )
            _close(opened, out)
            return out
        _close(opened, out)
        acked = [*expected.states.values(), probe]
        again = _judge_start(backend, None, Ledger.build(acked, written=[*seeded, probe]), out)
        if again is not None:
            _close(again, out)
    return out
