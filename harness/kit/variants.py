"""Deliberately broken backends and runtimes: the harness must catch every one of them.

Each variant breaks exactly one rule of the contract, the way a plausible bug would,
and names the invariant a check must report for it. The reference must report nothing
on the same workloads. They ship with the package so that `pytest --crashkit-selftest`
proves, on the machine at hand, that the kit catches real bugs; the project's own
tests run them against every driver (explorer, scenario library, both machines).

Every broken backend is a module-level `Backend` here, so an exported regression
scenario can name it (`backend: crashkit.harness.kit.variants:no_fsync`). They are
written on the reference's public hooks only (`writer=`, `fsync_file`, `fsync_directory`, the
restore functions of `store.report`), as an outside author would write them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from crashkit.harness.explore.catalogue import BASE, COMPACTION, EDGES_BY_NAME
from crashkit.harness.explore.catalogue import SMALL_BY_NAME as SMALL
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.kit import sqlite_variants as sv
from crashkit.harness.kit.loose import loose_block, loose_record
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import PersistenceError, RestoreFatal
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.runtime import HysteresisRuntime, RuntimeClass
from crashkit.orchestrator.store import jsonl, sqlite
from crashkit.orchestrator.store.compact import (
    EAGER_POLICY,
    CompactSteps,
    remove_stale_temp,
    temp_path,
)
from crashkit.orchestrator.store.jsonl import (
    JsonlStateBackend,
    compact_store,
    open_jsonl_store,
    read_state_file,
)
from crashkit.orchestrator.store.memory import memory_store
from crashkit.orchestrator.store.protocol import Backend, BackendFactory, OpenedStore
from crashkit.orchestrator.store.report import (
    LineDecoders,
    RestoreReport,
    parse_state_bytes,
    store_from_report,
)
from crashkit.regime_engine.codec import decode_record, record_to_state
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    HysteresisStore,
    Regime,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.engine import run_with_hysteresis

#: The SQLite variants' workload: three transactions (the first creates the table) show
#: each of them, under the class the eight of `BASE` show it; a third of the states
SQLITE_BASE = replace(BASE, ticks=3)

# -- broken writers ---------------------------------------------------------------------------


class NoFsyncWriter(JsonlStateBackend):
    """Acknowledges after write(): the bytes sit in the page cache only."""

    @staticmethod
    def fsync_file(fd: int) -> None:
        pass


class NoTailCutWriter(JsonlStateBackend):
    """Appends after a torn tail instead of cutting it first."""

    def append(self, states: Sequence[HysteresisState]) -> None:
        self._torn_tail_bytes = 0
        super().append(states)


class FsyncSwallowedWriter(JsonlStateBackend):
    """Ignores an fsync error and acknowledges anyway."""

    @staticmethod
    def fsync_file(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.fsync(fd)


class FsyncRetriedWriter(JsonlStateBackend):
    """Retries a failed fsync and carries on when the retry succeeds (the classic bug)."""

    @staticmethod
    def fsync_file(fd: int) -> None:
        for attempt in range(3):
            try:
                os.fsync(fd)
                return
            except OSError:
                if attempt == 2:
                    raise


class NoDirFsyncWriter(JsonlStateBackend):
    """Never makes a directory entry durable: a new state file can vanish whole."""

    @staticmethod
    def fsync_directory(directory: str) -> None:
        pass


class NoLockWriter(JsonlStateBackend):
    """Takes no writer lock: two writers can interleave their lines (C5.9)."""

    @staticmethod
    def lock(fd: int, path: str) -> None:
        pass


class NotPoisonedWriter(JsonlStateBackend):
    """Reports a failed append, then takes the next one as if nothing happened (C5.6)."""

    def _fail(self, what: str, exc: OSError | None, detail: str = "") -> PersistenceError:
        error = super()._fail(what, exc, detail)
        self._poisoned = None
        return error


class CloseRaisesWriter(JsonlStateBackend):
    """Closes its descriptor, then raises: the protocol's close() must return."""

    def close(self) -> None:
        was_open = self._fd is not None
        super().close()
        if was_open:
            raise OSError(errno.EIO, "close reported an error after releasing the writer")


class PoisonedPerSymbolWriter(JsonlStateBackend):
    """After a failed append refuses only the symbols it was writing, and goes on
    appending every other symbol's states (C5.6 poisons the writer, not a symbol)."""

    failed_symbols: frozenset[str] = frozenset()

    def append(self, states: Sequence[HysteresisState]) -> None:
        symbols = {s.symbol for s in states}
        reason = self._poisoned
        if reason is not None and not symbols & self.failed_symbols:
            self._poisoned = None
            try:
                super().append(states)
            finally:
                self._poisoned = self._poisoned or reason
            return
        try:
            super().append(states)
        except PersistenceError:
            self.failed_symbols |= symbols
            raise


class UnlockedOnPoisonWriter(JsonlStateBackend):
    """Releases the writer lock when an append fails (poisoned, it writes no more): a second
    writer then starts beside it while the failed bytes may still be in its page cache."""

    def _fail(self, what: str, exc: OSError | None, detail: str = "") -> PersistenceError:
        with contextlib.suppress(OSError, PersistenceError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        return super()._fail(what, exc, detail)


def _writer(cls: type[JsonlStateBackend]) -> BackendFactory:
    return functools.partial(open_jsonl_store, writer=cls)


# -- broken restores ----------------------------------------------------------------------------


def restore_with(
    select: str = "timestamp", *, torn_fatal: bool = False, invalid: str = "skip"
) -> BackendFactory:
    """A restore that differs from the contract in one way, then the real writer.

    `select`: "timestamp" (the contract), "file-order" (the last line wins) or
    "first-on-tie" (a tie goes to the earlier line); `torn_fatal`: a torn tail refuses;
    `invalid`: "skip" (the contract), "fatal-one" (one invalid line refuses) or
    "all-empty" (a file of only invalid lines restores as empty)."""

    def factory(path: str, config: HysteresisConfig) -> OpenedStore:
        data = read_state_file(path)
        report = parse_state_bytes(data or b"", path)
        if data is not None and torn_fatal and report.torn_tail_bytes:
            raise RestoreFatal(path, "torn tail")
        if data is not None and invalid == "fatal-one" and report.invalid:
            raise RestoreFatal(path, f"invalid line {report.invalid[0].line}")
        if invalid == "all-empty" and report.outcome == "fatal":  # (its torn tail still cut)
            report = replace(report, outcome="bootstrap", reason=None, invalid=())
        if report.outcome == "fatal":
            raise RestoreFatal(path, report.reason or "fatal")
        store = store_from_report(report, config)
        if select != "timestamp" and data is not None:
            store = HysteresisStore()
            for line in data.split(b"\n")[: report.lines]:
                try:
                    state = record_to_state(decode_record(line), config)
                except ValueError:
                    continue
                best = store.states.get(state.symbol)
                if select == "file-order" or (
                    best is None or state.engine_timestamp_ms > best.engine_timestamp_ms
                ):
                    store.states[state.symbol] = state
        backend = jsonl.open_jsonl_writer(path, report, existed=data is not None)
        return OpenedStore(backend, store, report)

    return factory


def decoding_with(decoders: LineDecoders) -> BackendFactory:
    """The reference's restore with one decoding path loosened (`loose.loose_record`: a
    boolean read as an integer, a number as a string), then the real writer."""

    def factory(path: str, config: HysteresisConfig) -> OpenedStore:
        if os.path.exists(temp_path(path)):  # (as the reference: a crash's temp file goes)
            remove_stale_temp(path, JsonlStateBackend.fsync_directory)
        data = read_state_file(path)
        report = parse_state_bytes(data or b"", path, decoders=decoders)
        if report.outcome == "fatal":
            raise RestoreFatal(path, report.reason or "fatal")
        backend = jsonl.open_jsonl_writer(path, report, existed=data is not None)
        if data is not None:  # (as the reference: the entry durable at every start, D.14)
            try:
                backend.fsync_directory(os.path.dirname(os.path.abspath(path)))
            except OSError as exc:
                backend.close()
                raise RestoreFatal(path, f"directory fsync: {exc.strerror}") from exc
        return OpenedStore(backend, store_from_report(report, config), report)

    return factory


def missing_file_refused(path: str, config: HysteresisConfig) -> OpenedStore:
    """Refuses to start when there is no state file yet (C4.2 says: bootstrap)."""
    if not os.path.exists(path):
        raise RestoreFatal(path, "no state file")
    return open_jsonl_store(path, config)


def special_file_as_empty(path: str, config: HysteresisConfig) -> OpenedStore:
    """Takes a state path that is not a regular file (a directory, a FIFO) as no state
    at all, and runs in memory: a misconfigured path silently resets hysteresis."""
    if os.path.exists(path) and not os.path.isfile(path):
        return memory_store(path=path)
    return open_jsonl_store(path, config)


def open_error_as_empty(path: str, config: HysteresisConfig) -> OpenedStore:
    """Takes a state file it cannot open or read as no state at all (C4.3 says refuse)."""
    try:
        return open_jsonl_store(path, config)
    except RestoreFatal as exc:
        if "cannot open" in exc.reason or "cannot read" in exc.reason:
            return memory_store(path=path)
        raise


def _salvage(line: bytes, config: HysteresisConfig) -> HysteresisState | None:
    """A lenient reading of an invalid line: whatever fields parse, defaults for the rest."""
    try:
        obj = json.loads(line)
        symbol, ts = obj["symbol"], obj["engine_timestamp_ms"]
        anchor = Regime(obj.get("anchor_regime", Regime.CHOP_BALANCED.value))
        progress = int(obj.get("progress_current", 0))
        raw = obj.get("candidate_regime")
        candidate = None if raw is None else Regime(raw)
        return HysteresisState(symbol, ts, anchor, candidate, progress, config.window_updates, None)
    except (ValueError, KeyError, TypeError):
        return None


def lenient_salvage(path: str, config: HysteresisConfig) -> OpenedStore:
    """Repairs invalid lines instead of skipping them (C4.6): it restores states that no
    writer ever wrote."""
    opened = open_jsonl_store(path, config)
    report = opened.report
    if not isinstance(report, RestoreReport) or not report.invalid:
        return opened
    data = read_state_file(path) or b""
    lines = data.split(b"\n")
    for bad in report.invalid:
        state = _salvage(lines[bad.line - 1], config)
        best = opened.store.states.get(state.symbol) if state is not None else None
        if state is not None and (
            best is None or state.engine_timestamp_ms >= best.engine_timestamp_ms
        ):
            opened.store.states[state.symbol] = state
    return opened


# -- broken runtimes -----------------------------------------------------------------------------


class PublishBeforePersist(HysteresisRuntime):
    """Publishes a tick's decisions, then appends them."""

    def _persist_then_publish(
        self,
        snapshots: Sequence[RegimeInputSnapshot],
        out: list[Event],
        new_states: list[HysteresisState],
    ) -> list[Event]:
        self.sink.publish(out)
        if new_states:
            try:
                self.backend.append(new_states)
            except Exception as exc:
                return self._halt(snapshots, exc)
        self.stats.decisions += len(new_states)
        return out


class ContinueAfterFailure(HysteresisRuntime):
    """Reports the failure, then keeps scheduling ticks on the same writer."""

    def _halt(self, snapshots: Sequence[RegimeInputSnapshot], exc: BaseException) -> list[Event]:
        events = super()._halt(snapshots, exc)
        self.stats.halt_reason = None  # (halted is derived from it)
        return events


class DuplicateReapplied(HysteresisRuntime):
    """Forgets the resume point and re-runs the engine on runs it already applied."""

    def _resume_skip(self, snapshot: RegimeInputSnapshot) -> bool | str:
        return False

    def _decide(
        self, snapshots: Sequence[RegimeInputSnapshot]
    ) -> tuple[list[Event], list[HysteresisState]]:
        store = HysteresisStore(self.states)
        out: list[Event] = []
        new: list[HysteresisState] = []
        for snapshot in snapshots:
            prev = store.states.get(snapshot.symbol)
            if prev is not None and snapshot.engine_timestamp_ms < prev.engine_timestamp_ms:
                continue
            state = run_with_hysteresis(
                snapshot,
                store,
                self.config,
                clock=functools.partial(int, snapshot.engine_timestamp_ms),
            )
            new.append(state)
            out.append(ev.state_event(ev.DECISION_PUBLISHED, state))
        return out, new


class DuplicateUnreported(HysteresisRuntime):
    """Skips a run delivered again without saying so (C6.6 asks for an event)."""

    def _decide(
        self, snapshots: Sequence[RegimeInputSnapshot]
    ) -> tuple[list[Event], list[HysteresisState]]:
        out, new = super()._decide(snapshots)
        return [e for e in out if e.event_type != ev.DUPLICATE_SKIPPED], new


class LateSnapshotApplied(HysteresisRuntime):
    """Drops a late snapshot silently instead of hard-failing its symbol (C6.5)."""

    def _halt_symbol(self, out: list[Event], snapshot: RegimeInputSnapshot, reason: str) -> None:
        if reason.startswith("non_monotonic_timestamp"):
            return
        super()._halt_symbol(out, snapshot, reason)


# -- the catalogue ---------------------------------------------------------------------------------


def _compacting(steps: CompactSteps) -> BackendFactory:
    """The reference with the eager compaction policy and one of C8.2's steps left out."""
    return functools.partial(open_jsonl_store, policy=EAGER_POLICY, steps=steps)


def _compactor(name: str, steps: CompactSteps) -> Backend:
    """A broken compaction, at start (eager policy) and offline (`crashkit compact`)."""
    return replace(
        _declared(name, _compacting(steps)),
        compact=functools.partial(compact_store, steps=steps),
    )


def _declared(name: str, factory: BackendFactory) -> Backend:
    """A broken variant of the reference, declared like it (a line file, one writer)."""
    return replace(
        jsonl.BACKEND, name=name, open=factory, restore_only=None, spec=f"{__name__}:{name}"
    )


no_fsync = _declared("no_fsync", _writer(NoFsyncWriter))
no_dir_fsync_on_create = _declared("no_dir_fsync_on_create", _writer(NoDirFsyncWriter))
torn_tail_not_cut = _declared("torn_tail_not_cut", _writer(NoTailCutWriter))
restore_by_file_order = _declared("restore_by_file_order", restore_with("file-order"))
tie_break_to_first = _declared("tie_break_to_first", restore_with("first-on-tie"))
torn_tail_fatal = _declared("torn_tail_fatal", restore_with(torn_fatal=True))
one_invalid_line_fatal = _declared("one_invalid_line_fatal", restore_with(invalid="fatal-one"))
all_invalid_restores_empty = _declared(
    "all_invalid_restores_empty", restore_with(invalid="all-empty")
)
fsync_error_swallowed = _declared("fsync_error_swallowed", _writer(FsyncSwallowedWriter))
fsync_retried_and_carried_on = _declared(
    "fsync_retried_and_carried_on", _writer(FsyncRetriedWriter)
)
no_writer_lock = _declared("no_writer_lock", _writer(NoLockWriter))
missing_file_refuses = _declared("missing_file_refuses", missing_file_refused)
#: C2.4 on the path a line takes when its block cannot be judged at once (any block
#: holding it: the strict block decoder refuses it, and each line is judged again)
wrong_types_accepted_per_line = _declared(
    "wrong_types_accepted_per_line", decoding_with(LineDecoders(line=loose_record))
)
#: C2.4 on the block path only: a block whose lines all read loosely is taken whole
wrong_types_accepted_in_blocks = _declared(
    "wrong_types_accepted_in_blocks", decoding_with(LineDecoders(block=loose_block))
)
close_raises = _declared("close_raises", _writer(CloseRaisesWriter))
writer_not_poisoned = _declared("writer_not_poisoned", _writer(NotPoisonedWriter))
special_file_restores_empty = _declared("special_file_restores_empty", special_file_as_empty)
open_error_restores_empty = _declared("open_error_restores_empty", open_error_as_empty)
invalid_lines_salvaged = _declared("invalid_lines_salvaged", lenient_salvage)
compaction_temp_not_fsynced = _compactor(
    "compaction_temp_not_fsynced", CompactSteps(fsync_temp=False)
)
compaction_folder_not_fsynced = _compactor(
    "compaction_folder_not_fsynced", CompactSteps(fsync_folder=False)
)
compaction_replaced_before_written = _compactor(
    "compaction_replaced_before_written", CompactSteps(write_first=False)
)
compaction_stale_temp_kept = _compactor(
    "compaction_stale_temp_kept", CompactSteps(clean_stale=False)
)
compaction_temp_elsewhere = _compactor("compaction_temp_elsewhere", CompactSteps(temp_beside=False))
#: C8.1 on files where compaction can go wrong: a tie, a long-idle symbol, a torn tail, and
#: the writer lock across the rename (C5.9)
compaction_keeps_first_of_tie = _compactor(
    "compaction_keeps_first_of_tie", CompactSteps(later_tie_wins=False)
)
compaction_drops_idle_symbol = _compactor(
    "compaction_drops_idle_symbol", CompactSteps(keep_idle=False)
)
compaction_copies_torn_tail = _compactor(
    "compaction_copies_torn_tail", CompactSteps(torn_tail_left=False)
)
compaction_unlocked = _compactor("compaction_unlocked", CompactSteps(lock_temp=False))
poisoned_per_symbol = _declared("poisoned_per_symbol", _writer(PoisonedPerSymbolWriter))
unlocked_on_poison = _declared("unlocked_on_poison", _writer(UnlockedOnPoisonWriter))


DRIVERS: frozenset[str] = frozenset({"explorer", "scenarios", "machine"})
KIT = frozenset({"kit"})


@dataclass(frozen=True, slots=True)
class Variant:
    """One deliberate bug: what it breaks, what it plugs in, and the run that exposes it."""

    name: str
    invariant: Invariant
    workload: Workload
    backend: Backend | None = None  # None: the reference backend
    runtime_class: RuntimeClass = HysteresisRuntime
    points: str = "all"
    notes: tuple[str, ...] = field(default=())
    #: The drivers that must catch it: the explorer, the scenario library, a state
    #: machine, the kit's own checks (restore rows, single writer, restore table).
    caught_by: frozenset[str] = DRIVERS
    #: The backend it is a broken copy of, which must pass the same workload (None: the
    #: reference, `crashkit.orchestrator.store.jsonl:BACKEND`).
    reference: Backend | None = None
    #: The invariant the real-process mode (`crashkit explore --real`) names it under,
    #: when that differs from what `real_invariant` derives.
    real_as: Invariant | None = None
    #: Why the real-process mode cannot see it (then it is not run there), or None.
    not_real: str | None = None
    #: The workload it is caught on in real mode, when not `workload`.
    real_workload: Workload | None = None

    @property
    def real_invariant(self) -> Invariant | None:
        """What the real-process mode must name it under (None: not observable there). A
        real process shows what it published, not what it acknowledged: a lost
        acknowledged tick (1-durability) is a published one lost (3-)."""
        if self.not_real is not None:
            return None
        if self.real_as is not None:
            return self.real_as
        if self.invariant is Invariant.DURABILITY:
            return Invariant.PUBLISH_IMPLIES_COMMITTED
        return self.invariant

    @property
    def runtime_spec(self) -> str | None:
        """How a scenario names the runtime (`module:Class`), None for the reference."""
        if self.runtime_class is HysteresisRuntime:
            return None
        return f"{self.runtime_class.__module__}:{self.runtime_class.__qualname__}"


VARIANTS: tuple[Variant, ...] = (
    Variant("no-fsync", Invariant.DURABILITY, BASE, no_fsync),
    Variant("no-dir-fsync-on-create", Invariant.DURABILITY, BASE, no_dir_fsync_on_create),
    Variant("torn-tail-not-cut", Invariant.DURABILITY, BASE, torn_tail_not_cut),
    Variant(
        "restore-by-file-order",
        Invariant.RESTORE_TABLE,
        SMALL["seeded-out-of-order"],
        restore_by_file_order,
    ),
    Variant(
        "tie-break-to-first",
        Invariant.RESTORE_TABLE,
        SMALL["seeded-tie"],
        tie_break_to_first,
    ),
    Variant("torn-tail-fatal", Invariant.CRASH_NOT_FATAL, BASE, torn_tail_fatal),
    Variant(
        "one-invalid-line-fatal",
        Invariant.RESTORE_TABLE,
        SMALL["seeded-one-invalid"],
        one_invalid_line_fatal,
    ),
    Variant(
        "all-invalid-restores-empty",
        Invariant.RESTORE_TABLE,
        SMALL["seeded-all-invalid"],
        all_invalid_restores_empty,
    ),
    Variant(
        "fsync-error-swallowed",
        Invariant.DURABILITY,
        SMALL["fsync-fails-drop"],
        fsync_error_swallowed,
        real_as=Invariant.HALT,  # it publishes the decisions of the failed tick
    ),
    Variant(
        "fsync-retried-and-carried-on",
        Invariant.DURABILITY,
        SMALL["fsync-fails-mark-clean"],
        fsync_retried_and_carried_on,
        real_as=Invariant.HALT,
    ),
    Variant(
        "publish-before-persist",
        Invariant.PUBLISH_IMPLIES_COMMITTED,
        BASE,
        runtime_class=PublishBeforePersist,
    ),
    Variant(
        "scheduling-continues-after-failure",
        Invariant.HALT,
        SMALL["write-fails-for-good"],
        runtime_class=ContinueAfterFailure,
    ),
    Variant(
        "duplicate-reapplied-after-restart",
        Invariant.CONTINUITY,
        BASE,
        runtime_class=DuplicateReapplied,
    ),
    Variant(
        "duplicate-unreported",
        Invariant.CONTINUITY,
        SMALL["duplicates"],
        runtime_class=DuplicateUnreported,
        caught_by=frozenset({"explorer"}),
    ),
    Variant(
        "late-snapshot-dropped",
        Invariant.CONTINUITY,
        SMALL["late-snapshot"],
        runtime_class=LateSnapshotApplied,
        caught_by=frozenset({"explorer"}),
    ),
    Variant(
        "writer-not-poisoned",
        Invariant.HALT,
        SMALL["write-fails-once"],
        writer_not_poisoned,
        caught_by=frozenset({"explorer", "machine"}),
        not_real="the orchestrator halts at the first failed append, so nothing offers the "
        "writer a second one: harmless in a real process, and only the in-process drivers, "
        "which offer it directly, can see it",
    ),
    # compaction (contract §8), each with one of C8.2's steps left out
    *(
        Variant(
            name,
            invariant,
            COMPACTION[0],
            backend,
            caught_by=frozenset({"explorer"}),
            real_as=real_as,
        )
        # (in real mode a seeded state the compaction lost is seen as 5-continuity: the
        # restarted process decides without it; a published decision as 3-)
        for name, invariant, backend, real_as in (
            (
                "compaction-temp-not-fsynced",
                Invariant.DURABILITY,
                compaction_temp_not_fsynced,
                Invariant.CONTINUITY,
            ),
            (
                "compaction-folder-not-fsynced",
                Invariant.DURABILITY,
                compaction_folder_not_fsynced,
                None,
            ),
            (
                "compaction-replaced-before-written",
                Invariant.DURABILITY,
                compaction_replaced_before_written,
                Invariant.CONTINUITY,
            ),
            (
                "compaction-temp-in-another-folder",
                Invariant.PROTOCOL,
                compaction_temp_elsewhere,
                None,
            ),
            ("compaction-stale-temp-kept", Invariant.PROTOCOL, compaction_stale_temp_kept, None),
        )
    ),
    # what the kit's own checks exist for
    Variant(
        "no-writer-lock",
        Invariant.SINGLE_WRITER,
        SMALL["second-writer"],
        no_writer_lock,
        caught_by=frozenset({"explorer", "kit"}),
    ),
    Variant(
        "missing-file-refuses",
        Invariant.RESTORE_TABLE,
        BASE,
        missing_file_refuses,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
    ),
    Variant(
        "close-raises",
        Invariant.PROTOCOL,
        BASE,
        close_raises,
        caught_by=frozenset({"explorer", "scenarios", "machine", "kit"}),
    ),
    Variant(
        "special-file-restores-empty",
        Invariant.RESTORE_TABLE,
        SMALL["directory-at-state-path"],
        special_file_restores_empty,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
    ),
    Variant(
        "open-error-restores-empty",
        Invariant.RESTORE_TABLE,
        SMALL["open-fails-at-start"],
        open_error_restores_empty,
        caught_by=frozenset({"explorer", "kit"}),
        # the kernel fails the open of a missing file itself (the mount never sees it):
        # in real mode the failing open is of a seeded file
        real_workload=replace(
            SMALL["open-fails-at-start"], initial_state=SMALL["seeded-tie"].initial_state
        ),
    ),
    Variant(
        "invalid-lines-salvaged",
        Invariant.NO_INVALID_RESTORED,
        SMALL["seeded-salvageable"],
        invalid_lines_salvaged,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        real_as=Invariant.RESTORE_TABLE,  # its first run restores what the table does not
    ),
    # compaction (C8.1) where it can go wrong: a tie (C4.11), a symbol idle since far
    # back, a torn tail (C5.4), the writer lock across the rename (C5.9); the tie and the
    # idle symbol on the seeded tie, whose SYM000 the input never reaches again (C6.9)
    Variant(
        "compaction-keeps-first-of-tie",
        Invariant.DURABILITY,
        SMALL["seeded-tie"],
        compaction_keeps_first_of_tie,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        real_as=Invariant.CONTINUITY,  # the restarted process decides without it
    ),
    Variant(
        "compaction-drops-idle-symbol",
        Invariant.DURABILITY,
        SMALL["seeded-tie"],
        compaction_drops_idle_symbol,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        real_as=Invariant.CONTINUITY,  # the restarted process decides without it
    ),
    Variant(
        "compaction-copies-torn-tail",
        Invariant.DURABILITY,
        SMALL["seeded-blank-and-torn"],
        compaction_copies_torn_tail,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
    ),
    Variant(
        "compaction-unlocked",
        Invariant.SINGLE_WRITER,
        SMALL["second-writer"],
        compaction_unlocked,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        not_real="the real mode tries its second writer beside a first one started on the "
        "workload's initial disk, before any compaction",
    ),
    # a poisoned writer: every symbol refused (C5.6), the lock kept until close (C5.9)
    Variant(
        "poisoned-per-symbol",
        Invariant.HALT,
        SMALL["write-fails-once"],
        poisoned_per_symbol,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        not_real="the orchestrator halts at the first failed append, so nothing offers the "
        "writer another symbol's states: only the in-process drivers, which offer them "
        "directly, can see it",
    ),
    Variant(
        "unlocked-on-poison",
        Invariant.SINGLE_WRITER,
        SMALL["second-writer"],
        unlocked_on_poison,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        not_real="the real mode tries its second writer beside a healthy first one only",
    ),
    Variant(
        "sqlite-closed-on-poison",
        Invariant.SINGLE_WRITER,
        SMALL["second-writer"],
        sv.closed_on_poison,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
        reference=sqlite.BACKEND,
        not_real="the real mode tries its second writer beside a healthy first one only",
    ),
    # the SQLite backend (orchestrator.store.sqlite), each with one of its durability
    # choices undone (docs/backends.md, "The SQLite backend")
    *(
        Variant(
            f"sqlite-{name}",
            invariant,
            SQLITE_BASE,
            backend,
            caught_by=frozenset({"explorer"}),
            reference=sqlite.BACKEND,
            real_as=real_as,
        )
        # (in real mode an unsynced database is first seen torn at its header: the
        # restart refuses, 4-)
        for name, invariant, backend, real_as in (
            (
                "synchronous-off",
                Invariant.DURABILITY,
                sv.synchronous_off,
                Invariant.CRASH_NOT_FATAL,
            ),
            ("synchronous-full", Invariant.DURABILITY, sv.synchronous_full, None),
            ("journal-off", Invariant.CRASH_NOT_FATAL, sv.journal_off, None),
            ("journal-memory", Invariant.CRASH_NOT_FATAL, sv.journal_memory, None),
            (
                "vfs-sync-does-nothing",
                Invariant.DURABILITY,
                sv.vfs_sync_does_nothing,
                Invariant.CRASH_NOT_FATAL,
            ),
            (
                "vfs-ignores-dirsync-on-delete",
                Invariant.DURABILITY,
                sv.vfs_ignores_dirsync_on_delete,
                None,
            ),
            ("last-commit-after-ack", Invariant.DURABILITY, sv.last_commit_after_ack, None),
        )
    ),
)

#: Variants whose bug only shows on a disk no crash leaves (a value of the wrong JSON
#: type, a damaged database), which the explorer of the ci suite never makes: the kit's
#: damage rows and restore table, the scenario library's `corrupt` steps and seeded files,
#: and the store machine's damage catch them; the explorer catches the line-file ones on
#: the quick suite's seeded workloads (`catalogue.EDGES`). Not in `VARIANTS`, whose every
#: member the ci suite's explorer catches (its job list is pinned by the golden verdicts).
#: why a variant caught only by the kit's own offline damage is not run as a real process
OFFLINE_DAMAGE = "the damage is the kit's own offline check; the real mode writes none"

EDGE_VARIANTS: tuple[Variant, ...] = (
    # values of the wrong JSON type (C2.4, C2.7), read as right on one decoding path
    Variant(
        "wrong-types-accepted-per-line",
        Invariant.RESTORE_TABLE,
        EDGES_BY_NAME["seeded-wrong-json-types-per-line"],
        wrong_types_accepted_per_line,
        caught_by=frozenset({"explorer", "scenarios", "machine", "kit"}),
    ),
    Variant(
        "wrong-types-accepted-in-blocks",
        Invariant.RESTORE_TABLE,
        EDGES_BY_NAME["seeded-wrong-json-types"],
        wrong_types_accepted_in_blocks,
        caught_by=frozenset({"explorer", "scenarios", "kit"}),
    ),
    Variant(
        "sqlite-rows-decoded-loosely",
        Invariant.NO_INVALID_RESTORED,
        BASE,
        sv.rows_decoded_loosely,
        caught_by=frozenset({"kit"}),
        reference=sqlite.BACKEND,
        not_real="a row's record is damaged offline by the kit's own check; the real mode "
        "writes no such damage",
    ),
    # a damaged database (a flipped byte, a zeroed page, a cut file, a damaged journal)
    # served as far as it reads instead of refused
    Variant(
        "sqlite-integrity-unchecked",
        Invariant.RESTORE_TABLE,
        BASE,
        sv.integrity_unchecked,
        caught_by=frozenset({"scenarios", "kit"}),
        reference=sqlite.BACKEND,
        not_real=OFFLINE_DAMAGE,
    ),
    # a damaged page served because the rows still scan (no `PRAGMA quick_check`): only
    # the damage the backend declares fatal (`Backend.damage`) shows it
    Variant(
        "sqlite-damaged-pages-served",
        Invariant.RESTORE_TABLE,
        BASE,
        sv.damaged_pages_served,
        caught_by=frozenset({"kit"}),
        reference=sqlite.BACKEND,
        not_real=OFFLINE_DAMAGE,
    ),
    # an older state written after a newer one wins (the seeded restore table's
    # selection-by-timestamp row; the runtime itself never writes one)
    Variant(
        "sqlite-last-write-wins",
        Invariant.RESTORE_TABLE,
        BASE,
        sv.last_write_wins,
        caught_by=frozenset({"kit"}),
        reference=sqlite.BACKEND,
        not_real="the runtime never writes an older state after a newer one; only the kit's "
        "seeded rows do",
    ),
)

#: Every shipped variant (what `--crashkit-selftest` runs).
ALL_VARIANTS: tuple[Variant, ...] = VARIANTS + EDGE_VARIANTS
BY_NAME: dict[str, Variant] = {v.name: v for v in ALL_VARIANTS}
