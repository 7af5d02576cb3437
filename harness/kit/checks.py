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

import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from crashkit.faults import CrashFS, DiskImage, FaultPlan, FaultRule, OpKind
from crashkit.faults.crash import Exploration
from crashkit.harness.explore.explorer import NotApplicable
from crashkit.harness.judge.invariants import Invariant, Violation
from crashkit.harness.judge.model import ModelRestore, model_restore
from crashkit.harness.judge.observe import close_quietly
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.judge.verdicts import (
    Ledger,
    crash_reason,
    is_crash,
    judge_append,
    judge_close,
    judge_refusal,
    judge_restored,
    judge_single_writer,
)
from crashkit.harness.scenarios.seeding import seeded_image
from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store.protocol import (
    Backend,
    Damage,
    DamageExpect,
    DamageOp,
    OpenedStore,
)
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
    """What a check found, and how many restores it judged (`after_crash`: of them, on a
    disk a power cut left, where a refusal breaks invariant 4 too)."""

    violations: list[Violation] = field(default_factory=list)
    restores: int = 0
    after_crash: int = 0
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
    out.after_crash += crashed
    if opened is None:
        out.violations += judge_refusal(refusal or "", expected=expected, crashed=crashed)
        return None
    out.violations += judge_restored(dict(opened.store.states), ledger, expected=expected)
    return opened


def _close(opened: OpenedStore, out: Outcome) -> None:
    errors: list[str] = []
    close_quietly(opened.backend.close, errors)
    out.violations += judge_close(errors)


def prepared_store(
    backend: Backend, ticks: tuple[tuple[HysteresisState, ...], ...] = TICKS
) -> DiskImage:
    """The disk after the backend wrote `ticks` (each append acknowledged) and closed."""
    with disk() as fs:
        opened, refusal = _open(backend)
        if opened is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        for tick in ticks:
            opened.backend.append(list(tick))
        close_quietly(opened.backend.close, [])
        return fs.visible_image()


def seeded_store(backend: Backend, records: Sequence[HysteresisState]) -> DiskImage:
    """The disk holding a store of `records` (`scenarios.seeding.seeded_image`)."""
    return seeded_image(backend, records, CONFIG, _fs())


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


#: SQLite's page size (and a common one): damage a page at a time, as a disk fails.
PAGE = 4096


def _flip(data: bytes, at: int) -> bytes:
    """`data` with every bit of the byte at `at` flipped (a line gets a byte that is not
    UTF-8, so it can never read as another valid record)."""
    if not 0 <= at < len(data):
        return data
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _record_flips(data: bytes) -> bytes:
    """A byte flipped in the middle of each written record's canonical text it holds."""
    for state in TICKS[-1]:
        record = encode_state(state)[:-1]
        at = data.find(record)
        if at >= 0:
            data = _flip(data, at + len(record) // 2)
    return data


#: Offline damage to one file of the store, as a failing disk leaves it: share -> (what,
#: how). "all" leaves nothing readable; "half" leaves some of it.
DAMAGE: dict[str, tuple[tuple[str, Callable[[bytes], bytes]], ...]] = {
    "all": (("every byte garbled", lambda d: _garble(d, 0)),),
    "half": (
        ("the second half garbled", lambda d: _garble(d, len(d) // 2)),
        ("a byte flipped in the middle", lambda d: _flip(d, len(d) // 2)),
        ("a byte flipped in each newest record", _record_flips),
        ("a byte flipped in its second page", lambda d: _flip(d, PAGE + PAGE // 2)),
        (
            "its second page zeroed",
            lambda d: d[:PAGE] + bytes(len(d[PAGE : 2 * PAGE])) + d[2 * PAGE :],
        ),
        ("cut to its first page", lambda d: d[:PAGE]),
        ("cut in half", lambda d: d[: len(d) // 2]),
    ),
}


def _kept(image: DiskImage) -> list[str]:
    return [p for p in sorted(image.files) if p.startswith(STATE_DIR + "/") and image.files[p]]


def _damaged_disks(image: DiskImage, share: str) -> Iterator[tuple[str, DiskImage]]:
    """(what was done, the disk) for each damage of `share`: "all" to every file of the
    store at once, "half" to each file alone (each damage that changes it)."""
    files = dict(image.files)
    kept = _kept(image)
    if not kept:
        raise NotApplicable("the backend left no file with content in the state folder")
    if share == "all":
        ((what, damage),) = DAMAGE["all"]
        damaged = {p: damage(files[p]) if p in kept else files[p] for p in files}
        yield what, DiskImage(files=damaged, dirs=image.dirs)
        return
    for path in kept:
        for what, damage in DAMAGE[share]:
            data = damage(files[path])
            if data != files[path]:
                yield f"{path}: {what}", DiskImage(files={**files, path: data}, dirs=image.dirs)


def _hot_journals(backend: Backend, limit: int = 3) -> list[DiskImage]:
    """Disks a power cut leaves in the middle of the second append with a second file of
    the store holding bytes (a rollback journal the next start must play back): at most
    `limit`, the last crash points first."""
    with disk() as fs:
        opened, _ = _open(backend)
        if opened is None:
            return []
        start = 0
        for n, tick in enumerate(TICKS):
            if n == len(TICKS) - 1:
                start = len(fs.trace)
            try:
                opened.backend.append(list(tick))
            except Exception:
                return []
        close_quietly(opened.backend.close, [])
        found: list[DiskImage] = []
        for point in reversed([p for p in fs.crash_points() if p >= start]):
            for crash in fs.crash_states(point):
                if len(_kept(crash.image)) > 1 and crash.image not in found:
                    found.append(crash.image)
                    if len(found) == limit:
                        return found
        return found


def _journal_damage(backend: Backend) -> Iterator[tuple[str, DiskImage]]:
    """Each "half" damage to the second file (the journal) of each hot-journal disk."""
    for image in _hot_journals(backend):
        for path in _kept(image):
            if path == STATE_PATH:
                continue
            for what, damage in DAMAGE["half"]:
                data = damage(image.files[path])
                if data != image.files[path]:
                    yield (
                        f"{path} (a crash mid-append left it): {what}",
                        DiskImage(files={**image.files, path: data}, dirs=image.dirs),
                    )


def _damaged(share: str) -> Callable[[Backend], Outcome]:
    def row(backend: Backend) -> Outcome:
        out = Outcome()
        line_format = backend.capabilities.line_format
        symbols = {s.symbol for s in WRITTEN}
        disks = list(_damaged_disks(prepared_store(backend), share))
        if share == "half":
            disks += _journal_damage(backend)
        for what, damaged in disks:
            restored = _restore_damaged(backend, damaged, out)
            if restored is not None:
                found: list[Violation] = []
                if line_format and share == "half":
                    # the contract's reading of the damaged lines (v1 has no checksum: a
                    # line the damage left valid is the model's too)
                    expected = model_restore(damaged.get(STATE_PATH), CONFIG)
                    ledger = Ledger.build((), written=[*WRITTEN, *expected.records])
                    found += judge_restored(restored, ledger, expected=expected)
                else:
                    found += judge_restored(restored, Ledger.build((), written=WRITTEN))
                if share == "all" and not restored:
                    found.append(
                        Violation(
                            Invariant.RESTORE_TABLE,
                            "every file of the store was damaged (garbage, same length) and the "
                            "backend started with an empty store instead of refusing (C4.7)",
                        )
                    )
                elif not line_format and (missing := sorted(symbols - set(restored))):
                    found.append(
                        Violation(
                            Invariant.RESTORE_TABLE,
                            f"the store was damaged ({what}) and the backend started without "
                            f"{', '.join(missing)}, each written whole before: a store that is "
                            "not a line file must refuse rather than reset a symbol it cannot "
                            "read (C4.6, C4.7, contract 9a)",
                        )
                    )
                out.violations += found
        return out

    what = "every byte" if share == "all" else "part (a flipped byte, a zeroed page, a cut)"
    row.__doc__ = (
        f"Damage to {what} of each file the backend keeps: it refuses, or restores only "
        "states that were written whole, never starts empty from a damaged store, and (not "
        "a line file, no history to fall back to) never restores without a symbol."
    )
    return row


row_damaged_whole = _damaged("all")
row_damaged_tail = _damaged("half")


def generic_damages(path: str, files: Mapping[str, bytes]) -> tuple[Damage, ...]:
    """The damages tried on a backend that declares none (`Backend.damage`): each file of
    the store cut in half, a byte flipped in its middle, its second block zeroed. Nothing
    says how its format reads them, so restore is held to `NOT_INVENTED` only."""
    out: list[Damage] = []
    for file, data in sorted(files.items()):
        size = len(data)
        out += [
            Damage(f"{file} cut in half", file, DamageOp.TRUNCATE, size // 2),
            Damage(f"{file}: a byte flipped in the middle", file, DamageOp.FLIP, size // 2),
            Damage(f"{file}: its second block zeroed", file, DamageOp.ZERO, PAGE, length=PAGE),
        ]
    return tuple(d for d in out if d.apply(files[d.file]) != files[d.file])


def row_declared_damage(backend: Backend) -> Outcome:
    """Each damage the backend declares (`Backend.damage`; else `generic_damages`) done to
    a store of `TICKS`: after a `FATAL` one restore refuses (R4); after any, it never
    starts empty, never restores a state nobody wrote (2), never drops a symbol written
    before (a one-store format has no history to fall back to, 9a), and a refusal is a
    `StartupRefused`, not a crash (P)."""
    out = Outcome()
    image = prepared_store(backend)
    kept = {p: image.files[p] for p in _kept(image)}
    if not kept:
        raise NotApplicable("the backend left no file with content in the state folder")
    declared = backend.damage is not None
    hook = backend.damage or generic_damages
    try:
        damages = list(hook(STATE_PATH, kept))
    except Exception as exc:
        out.violations += judge_refusal(
            f"its damage hook raised: {crash_reason(exc)}", expected=None, crashed=False
        )
        return out
    if not damages:
        raise NotApplicable("the backend's damage hook declares no damage for its store")
    symbols = {s.symbol for s in WRITTEN}
    for damage in damages:
        data = kept.get(damage.file)
        if data is None or damage.apply(data) == data:
            out.notes.append(f"{damage.what}: changes nothing in {damage.file}")
            continue
        files = {**image.files, damage.file: damage.apply(data)}
        restored = _restore_damaged(backend, DiskImage(files=files, dirs=image.dirs), out)
        if restored is None:
            continue
        if backend.capabilities.line_format:  # the contract's reading of the damaged lines
            expected = model_restore(files.get(STATE_PATH), CONFIG)
            ledger = Ledger.build((), written=[*WRITTEN, *expected.records])
            found = judge_restored(restored, ledger, expected=expected)
        else:
            found = judge_restored(restored, Ledger.build((), written=WRITTEN))
        if damage.expect is DamageExpect.FATAL:
            found.append(
                Violation(
                    Invariant.RESTORE_TABLE,
                    f"the backend declares this damage fatal, and it started with "
                    f"{len(restored)} symbol(s) instead of refusing (C4.3, C4.7)",
                )
            )
        elif not backend.capabilities.line_format and (missing := sorted(symbols - set(restored))):
            found.append(
                Violation(
                    Invariant.RESTORE_TABLE,
                    f"the backend started without {', '.join(missing)}, each written whole "
                    "before: a damaged store refuses rather than reset a symbol (C4.6, C4.7, "
                    "contract 9a)"
                    + ("" if declared else "; the kit's generic damage, no hook declared"),
                )
            )
        out.violations += [replace(v, message=f"{damage.what}: {v.message}") for v in found]
    return out


#: The store the wrong-type row damages: the second tick's records hold values a
#: same-length edit can turn into the wrong JSON type (a four-digit progress becomes
#: `true`, a commit time `false`), and each symbol keeps an older record to fall back to.
RETYPE_TICKS: tuple[tuple[HysteresisState, ...], ...] = (
    TICKS[0],
    (
        HysteresisState(
            "SYM000", T0 + 60_000, Regime.TREND_BUILD_UP, Regime.SQUEEZE_UP, 1111, 3, T0
        ),
        HysteresisState("SYM001", T0 + 60_000, Regime.CHOP_BALANCED, None, 0, 3, T0 + 60_000),
    ),
)

#: (what, a value's canonical text, its replacement: the same bytes, the wrong JSON type)
RETYPES: tuple[tuple[str, re.Pattern[bytes], Callable[[re.Match[bytes]], bytes]], ...] = (
    (
        "the number 1 for the string schema_version",
        re.compile(rb'"schema_version":"1"'),
        lambda m: b'"schema_version": 1 ',
    ),
    (
        "true for the integer progress_current",
        re.compile(rb'"progress_current":(\d{4,})'),
        lambda m: b'"progress_current":' + b"true".ljust(len(m[1])),
    ),
    (
        "false for the integer last_commit_timestamp_ms",
        re.compile(rb'"last_commit_timestamp_ms":(\d{5,})'),
        lambda m: b'"last_commit_timestamp_ms":' + b"false".ljust(len(m[1])),
    ),
)


def retyped(record: bytes) -> list[tuple[str, bytes]]:
    """Same-length copies of a canonical record (no newline), each with one value of the
    wrong JSON type (C2.4): bytes any decoder must refuse (C2.7). Same length, so a
    format that keeps the record's text in a page (SQLite's record column) stays
    well-formed around it, and only the record's own decoding can tell."""
    out = []
    for what, pattern, edit in RETYPES:
        edited = pattern.sub(edit, record, count=1)
        if edited != record:
            assert len(edited) == len(record)
            out.append((what, edited))
    return out


def _restore_damaged(
    backend: Backend, image: DiskImage, out: Outcome
) -> dict[str, HysteresisState] | None:
    """Start the backend on a damaged disk: what it restored, or None where it refused
    (always allowed; a refusal that is a crash, not a `StartupRefused`, is a violation)."""
    with disk(image):
        opened, refusal = _open(backend)
        out.restores += 1
        if opened is None:
            if refusal is not None and is_crash(refusal):
                out.violations += judge_refusal(refusal, expected=None, crashed=False)
            return None
        restored = dict(opened.store.states)
        _close(opened, out)
    return restored


def row_wrong_types_never_restored(backend: Backend) -> Outcome:
    """A value of the wrong JSON type in a record where it lies, in every file that holds
    the record's canonical text: the backend refuses, or restores only states written
    whole, never the damaged record read as if it were right (C2.4, C2.7, 2); a
    line-format backend selects exactly as the contract's reading (R4), whichever of its
    decoding paths (a block at a time, or line by line) the damaged line takes."""
    out = Outcome()
    image = prepared_store(backend, RETYPE_TICKS)
    written_all = [s for tick in RETYPE_TICKS for s in tick]
    damaged_any = False
    for state in RETYPE_TICKS[-1]:
        record = encode_state(state)[:-1]
        written = [s for s in written_all if s is not state]
        for what, edited in retyped(record):
            files = {
                path: data.replace(record, edited) if path.startswith(STATE_DIR + "/") else data
                for path, data in image.files.items()
            }
            if files == dict(image.files):
                continue  # the backend does not keep this record's canonical text
            damaged_any = True
            for blank in (b"", b"\n") if backend.capabilities.line_format else (b"",):
                # (a blank line first: the line is judged on the per-line path)
                if blank:
                    files[STATE_PATH] = blank + files[STATE_PATH]
                expected = (
                    model_restore(files.get(STATE_PATH), CONFIG)
                    if backend.capabilities.line_format
                    else None
                )
                restored = _restore_damaged(backend, DiskImage(files=files, dirs=image.dirs), out)
                if restored is None:
                    continue  # refusing a damaged store is always allowed
                found = judge_restored(
                    restored, Ledger.build((), written=written), expected=expected
                )
                out.violations += [
                    replace(v, message=f"{what} in {state.symbol}'s newest record: {v.message}")
                    for v in found
                ]
    if not damaged_any:
        raise NotApplicable("the backend keeps no record's canonical text in its files")
    return out


def row_crash_damage_not_fatal(backend: Backend) -> Outcome:
    """Each deviation a power cut may leave while the backend writes `TICKS` (linear:
    at the last crash point where it holds) restores without refusing (4), with nothing
    acknowledged lost (1)."""
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
        # one deviation at a time, each at the last crash point where it holds (where
        # the most is acknowledged): the exhaustive combinations are the explorer
        # items'; here they cost a backend with many unsynced files minutes (dbm.dumb:
        # 16,001 states for 282)
        states = [
            (p, st)
            for p in fs.crash_points()
            for st in fs.crash_states(p, exploration=Exploration.LINEAR)
        ]
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


def _beside(backend: Backend, first: OpenedStore, out: Outcome, when: str) -> None:
    """While `first` holds the path a second open is refused; once it closed, one starts."""
    second, second_refusal = _open(backend)
    if second is not None:
        _close(second, out)
    _close(first, out)
    third, third_refusal = _open(backend)
    if third is not None:
        _close(third, out)
    out.restores += 3
    out.violations += [
        replace(v, message=f"{when}: {v.message}")
        for v in judge_single_writer(second_refusal, third_refusal)
    ]


def _failing(backend: Backend) -> FaultPlan:
    """Every write and sync of every file the backend keeps fails (EIO), for good."""
    return FaultPlan(
        tuple(
            FaultRule(op, pattern, 1, "EIO", persistent=True)
            for op in (OpKind.WRITE, OpKind.FSYNC)
            for pattern in backend.capabilities.file_patterns(STATE_PATH)
        )
    )


def check_single_writer(backend: Backend) -> Outcome:
    """While one writer holds the path a second open is refused; after it closed, one
    starts. The first writer healthy on a new store; halted (an append failed: poisoned,
    it still holds the path until it is closed, and its failed bytes may still reach the
    disk from the page cache); and started on a long history (where a compacting backend
    rewrites its file, at the start or offline: the lock must pass to the new file)."""
    if not backend.capabilities.single_writer:
        raise NotApplicable(f"{backend.name} does not declare single_writer")
    out = Outcome()
    with disk(DiskImage(dirs=(STATE_DIR,))) as fs:
        first, refusal = _open(backend)
        if first is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        try:
            first.backend.append(list(TICKS[0]))
        except Exception as exc:
            raise NotApplicable(f"an append failed with no fault injected: {exc}") from exc
        _beside(backend, first, out, "beside a healthy writer")
        halted, _ = _open(backend)
        if halted is not None:
            fs.configure(plan=_failing(backend))
            try:
                halted.backend.append(list(TICKS[1]))
                failed = False
            except Exception:
                failed = True
            fs.configure(plan=FaultPlan())
            if failed:
                _beside(backend, halted, out, "beside a writer whose append failed")
            else:
                out.notes.append("no write or sync of its files was made: nothing failed")
                _close(halted, out)
    for offline in (False, True) if backend.compact is not None else (False,):
        with disk(prepared_store(backend, LONG_HISTORY)):
            if offline:
                _compact(backend, out)
            first, _ = _open(backend)
            if first is not None:
                where = "offline compaction" if offline else "a start on a long history"
                _beside(backend, first, out, f"after {where}")
    return out


def _compact(backend: Backend, out: Outcome) -> None:
    """The backend's offline compaction (`Backend.compact`): a refusal is an answer, any
    other exception is a crash (P)."""
    assert backend.compact is not None
    try:
        backend.compact(STATE_PATH, CONFIG)
    except StartupRefused as exc:
        out.notes.append(f"the offline compaction refused: {exc.reason}")
    except Exception as exc:
        out.violations += judge_refusal(crash_reason(exc), expected=None, crashed=False)


def row_poisoned_refuses_every_symbol(backend: Backend) -> Outcome:
    """After an append failed, the writer refuses every later append (C5.6): of the
    symbols it was writing, and of every other; and it says it is poisoned (6)."""
    out = Outcome()
    with disk(DiskImage(dirs=(STATE_DIR,))) as fs:
        opened, refusal = _open(backend)
        if opened is None:
            raise NotApplicable(f"the backend refused to start on an empty disk: {refusal}")
        out.restores += 1
        writer = opened.backend
        try:
            writer.append(list(TICKS[0]))
        except Exception as exc:
            raise NotApplicable(f"an append failed with no fault injected: {exc}") from exc
        fs.configure(plan=_failing(backend))
        try:
            writer.append([TICKS[1][0]])  # SYM000 only
            failed = False
        except Exception:
            failed = True
        fs.configure(plan=FaultPlan())
        if not failed:
            _close(opened, out)
            raise NotApplicable("no write or sync of its files was made: nothing failed")
        for what, batch in (
            ("another symbol", [TICKS[1][1]]),
            ("the symbol it was writing", [TICKS[1][0]]),
        ):
            try:
                writer.append(batch)
                acked = True
            except Exception:
                acked = False
            out.violations += [
                replace(v, message=f"{v.message} ({what}, after the failed append)")
                for v in judge_append(acked=acked, failed_before=True, poisoned=writer.poisoned)
            ]
        _close(opened, out)
    return out


#: A history compaction can go wrong on: SYM002 written once, first, then idle; SYM000's
#: newest timestamp written twice (a tie: the later record wins, C4.11); a dozen records
#: of SYM000 and SYM001 after it, so a compacting backend finds the file worth compacting.
LONG_HISTORY: tuple[tuple[HysteresisState, ...], ...] = (
    (_state("SYM000", T0), _state("SYM001", T0), _state("SYM002", T0, Regime.TREND_BUILD_UP)),
    *(
        (
            _state("SYM000", T0 + k * 60_000, Regime.CHOP_BALANCED, k % 2),
            _state("SYM001", T0 + k * 60_000, Regime.TREND_BUILD_UP),
        )
        for k in range(1, 12)
    ),
    (_state("SYM000", T0 + 11 * 60_000, Regime.SQUEEZE_UP, 2),),  # the later of a tie
)


def row_compaction_keeps_the_winners(backend: Backend) -> Outcome:
    """A long history with a tie and a long-idle symbol, restored after the backend's
    offline compaction (`Backend.compact`, when declared) and by a plain start (where a
    compacting backend compacts by its own policy), with a torn tail after it for a
    line-format backend: every symbol's winner comes back, the later of a tie (1, R4),
    and an append after the restore is itself restored (nothing glued to a copied tail)."""
    out = Outcome()
    history = [s for tick in LONG_HISTORY for s in tick]
    image = prepared_store(backend, LONG_HISTORY)
    line_format = backend.capabilities.line_format
    disks = [image]
    if line_format:  # a torn tail after the last record (a crash cut an append short)
        torn = dict(image.files)
        torn[STATE_PATH] = torn[STATE_PATH] + _line(_state("SYM001", T0 + 3_600_000))[:40]
        disks.append(DiskImage(files=torn, dirs=image.dirs))
    probe = _state("SYM001", T0 + 7_200_000, Regime.SQUEEZE_DOWN)
    ledger = Ledger.build(history, written=history)
    for offline in (False, True) if backend.compact is not None else (False,):
        for before in disks:
            expected = model_restore(before.get(STATE_PATH), CONFIG) if line_format else None
            with disk(before):
                if offline:
                    _compact(backend, out)
                opened = _judge_start(backend, expected, ledger, out)
                if opened is None:
                    continue
                try:
                    opened.backend.append([probe])
                except Exception as exc:
                    out.violations.append(
                        Violation(
                            Invariant.DURABILITY, f"an append after the restore failed: {exc}"
                        )
                    )
                    _close(opened, out)
                    continue
                _close(opened, out)
                after = Ledger.build([*history, probe], written=[*history, probe])
                again = _judge_start(backend, None, after, out)
                if again is not None:
                    _close(again, out)
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
    "declared-damage": row_declared_damage,
    "wrong-json-types-never-restored": row_wrong_types_never_restored,
    "compaction-keeps-the-winners": row_compaction_keeps_the_winners,
    "poisoned-writer-refuses-every-symbol": row_poisoned_refuses_every_symbol,
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
#: C2.4: A2 and TIE with one value of the wrong JSON type each (the newest line of
#: SYM000, so reading it as right changes the selection)
TRUE_FOR_INT = _line(TIE).replace(b'"progress_current":1', b'"progress_current":true')
NUMBER_FOR_TEXT = _line(A2).replace(b'"schema_version":"1"', b'"schema_version":1')
FALSE_FOR_NULL = _line(A2).replace(
    b'"last_commit_timestamp_ms":null', b'"last_commit_timestamp_ms":false'
)

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
    # a wrong JSON type in an otherwise clean block (restore's block path sees it first),
    # and after a blank line (the block falls back to judging each line: that path too)
    "11-true-for-an-integer": _line(A1) + TRUE_FOR_INT + _line(B1),
    "11-a-number-for-a-string": _line(A1) + NUMBER_FOR_TEXT + _line(B1),
    "11-false-for-a-null": _line(A1) + FALSE_FOR_NULL + _line(B1),
    "11-true-for-an-integer-after-a-blank-line": b"\n" + _line(A1) + TRUE_FOR_INT,
    "11-a-number-for-a-string-after-a-blank-line": b"\n" + _line(A1) + NUMBER_FOR_TEXT,
    "15-a-tie-goes-to-the-later-line": _line(A1) + _line(A2) + _line(TIE),
    "selection-by-timestamp-not-position": _line(A2) + _line(A1),
}


def check_table_row(backend: Backend, row: str) -> Outcome:
    """One row of the restore table on a seeded file: the backend starts or refuses, and
    selects, exactly as the contract's reading says; then an append after the restore is
    itself restored (no append behind a torn tail)."""
    data = TABLE_ROWS[row]
    expected = model_restore(data, CONFIG)
    out = Outcome()
    seeded = list(expected.records)
    image = DiskImage(files={STATE_PATH: data})
    if not backend.capabilities.line_format:
        # Another format holds the row's committed records, not its bytes: blank lines,
        # a torn tail and invalid lines have no form there (a commit cut short reads as
        # never written; damage is the damage rows' part), so the row is its valid
        # records, seeded in file order, restored as the contract selects them.
        if expected.outcome == "fatal":
            raise NotApplicable(
                f"row {row} holds no valid record, only line bytes ({backend.name} does not "
                "declare line_format); its form for another format, a store whose every "
                "record is damaged, is the rows damaged-store-never-empty and declared-damage"
            )
        image = seeded_store(backend, seeded)
    with disk(image):
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
