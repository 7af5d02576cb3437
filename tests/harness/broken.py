"""Deliberately broken backends and runtimes: the harness must catch every one of them.

Each variant breaks exactly one rule of the contract, the way a plausible bug
would. `VARIANTS` names the invariant the explorer must report for it and the
workload that exposes it. The reference implementation must report nothing on
the same workloads (see test_broken_variants.py).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from crashkit.faults import FaultPlan, FaultRule, FsyncModel
from crashkit.harness.explore import Workload
from crashkit.harness.judge.invariants import Invariant
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import PersistenceError, RestoreFatal
from crashkit.orchestrator.events import Event
from crashkit.orchestrator.runtime import HysteresisRuntime, RuntimeClass
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.jsonl import JsonlStateBackend, open_jsonl_store, read_state_file
from crashkit.orchestrator.store.protocol import BackendFactory, OpenedStore
from crashkit.orchestrator.store.report import RestoreReport, parse_state_bytes, store_from_report
from crashkit.regime_engine.codec import decode_record, encode_state, record_to_state
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    HysteresisStore,
    Regime,
    RegimeInputSnapshot,
)

# -- broken writers ---------------------------------------------------------------------------


class NoFsyncBackend(JsonlStateBackend):
    """Acknowledges after write(): the bytes sit in the page cache only."""

    def append(self, states: Sequence[HysteresisState]) -> None:
        assert self._fd is not None
        os.write(self._fd, b"".join(encode_state(s) for s in states))


class NoTailCutBackend(JsonlStateBackend):
    """Appends after a torn tail instead of cutting it first."""

    def append(self, states: Sequence[HysteresisState]) -> None:
        self._torn_tail_bytes = 0
        super().append(states)


class FsyncSwallowedBackend(JsonlStateBackend):
    """Ignores an fsync error and acknowledges anyway."""

    def append(self, states: Sequence[HysteresisState]) -> None:
        assert self._fd is not None
        os.write(self._fd, b"".join(encode_state(s) for s in states))
        with contextlib.suppress(OSError):
            os.fsync(self._fd)


class FsyncRetriedBackend(JsonlStateBackend):
    """Retries a failed fsync and carries on when the retry succeeds (the classic bug)."""

    def append(self, states: Sequence[HysteresisState]) -> None:
        assert self._fd is not None
        os.write(self._fd, b"".join(encode_state(s) for s in states))
        for _ in range(3):
            try:
                os.fsync(self._fd)
                return
            except OSError as exc:
                last = exc
        raise PersistenceError(f"fsync kept failing: {last}", last.errno)


def _with_backend(cls: type[JsonlStateBackend]) -> BackendFactory:
    def factory(path: str, config: HysteresisConfig) -> OpenedStore:
        opened = open_jsonl_store(path, config)
        good = opened.backend
        assert isinstance(good, JsonlStateBackend)
        bad = cls(good.path, good._fd or -1, good._committed_bytes, good._torn_tail_bytes)
        good._fd = None  # hand the descriptor (and its lock) over
        return OpenedStore(bad, opened.store, opened.report)

    return factory


def no_dir_fsync_factory(path: str, config: HysteresisConfig) -> OpenedStore:
    """Creates the state file without making its directory entry durable."""
    real = jsonl._fsync_dir
    created = not os.path.exists(path)
    try:
        if created:
            jsonl._fsync_dir = lambda _path: None
        return open_jsonl_store(path, config)
    finally:
        jsonl._fsync_dir = real


# -- broken restores ----------------------------------------------------------------------------


def _restore_with(
    select: str = "timestamp", *, torn_fatal: bool = False, invalid: str = "skip"
) -> BackendFactory:
    """A restore that differs from the contract in one way, then the real writer."""

    def factory(path: str, config: HysteresisConfig) -> OpenedStore:
        data = read_state_file(path)
        report = parse_state_bytes(data or b"", path)
        if data is not None and torn_fatal and report.torn_tail_bytes:
            raise RestoreFatal(path, "torn tail")
        if data is not None and invalid == "fatal-one" and report.invalid:
            raise RestoreFatal(path, f"invalid line {report.invalid[0].line}")
        if invalid == "all-empty" and report.outcome == "fatal":
            report = RestoreReport(path=path, outcome="bootstrap", file_bytes=len(data or b""))
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
        backend = jsonl.open_jsonl_writer(path, report)
        return OpenedStore(backend, store, report)

    return factory


# -- broken runtimes -----------------------------------------------------------------------------


class PublishBeforePersist(HysteresisRuntime):
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
        states = self.states
        out: list[Event] = []
        new: list[HysteresisState] = []
        from crashkit.regime_engine.engine import run_with_hysteresis

        assert self._opened is not None
        for snapshot in snapshots:
            prev = states.get(snapshot.symbol)
            if prev is not None and snapshot.engine_timestamp_ms < prev.engine_timestamp_ms:
                continue
            state = run_with_hysteresis(
                snapshot,
                self._opened.store,
                self.config,
                clock=functools.partial(int, snapshot.engine_timestamp_ms),
            )
            new.append(state)
            out.append(ev.state_event(ev.DECISION_PUBLISHED, state))
        return out, new


# -- the catalogue ---------------------------------------------------------------------------------

STATE = HysteresisState


def _line(symbol: str, ts: int, anchor: Regime, progress: int = 0) -> bytes:
    candidate = Regime.SQUEEZE_UP if progress else None
    if candidate == anchor:
        candidate = Regime.SQUEEZE_DOWN
    return encode_state(STATE(symbol, ts, anchor, candidate, progress, 3, None))


T0 = 1_700_000_000_000 - 60_000  # one tick before the synthetic market starts
OUT_OF_ORDER = _line("SYM000", T0, Regime.TREND_BUILD_UP) + _line(
    "SYM000", T0 - 60_000, Regime.CHOP_BALANCED
)
TIED = _line("SYM000", T0, Regime.TREND_BUILD_UP) + _line("SYM000", T0, Regime.CHOP_BALANCED, 1)
ONE_INVALID = (
    _line("SYM000", T0 - 60_000, Regime.TREND_BUILD_UP)
    + b"garbage\n"
    + _line("SYM000", T0, Regime.CHOP_BALANCED)
)
ALL_INVALID = b"garbage\n{}\n"

# A fault on the 4th fsync of the state file: mid-run, after some acknowledged ticks.
FSYNC_FAULT = FaultPlan((FaultRule("fsync", "*/hysteresis.jsonl", nth=4, errno="EIO"),))
WRITE_FAULT = FaultPlan(
    (FaultRule("write", "*/hysteresis.jsonl", nth=4, errno="ENOSPC", persistent=True),)
)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    invariant: str
    workload: Workload
    factory: BackendFactory | None = None
    runtime_class: RuntimeClass = HysteresisRuntime
    points: str = "all"
    notes: tuple[str, ...] = field(default=())


BASE = Workload(symbols=2, ticks=8, seed=5, name="broken")

VARIANTS: tuple[Variant, ...] = (
    Variant("no-fsync", Invariant.DURABILITY, BASE, _with_backend(NoFsyncBackend)),
    Variant("no-dir-fsync-on-create", Invariant.DURABILITY, BASE, no_dir_fsync_factory),
    Variant("torn-tail-not-cut", Invariant.DURABILITY, BASE, _with_backend(NoTailCutBackend)),
    Variant(
        "restore-by-file-order",
        Invariant.RESTORE_TABLE,
        replace(BASE, initial_state=OUT_OF_ORDER),
        _restore_with("file-order"),
    ),
    Variant(
        "tie-break-to-first",
        Invariant.RESTORE_TABLE,
        replace(BASE, initial_state=TIED),
        _restore_with("first-on-tie"),
    ),
    Variant("torn-tail-fatal", Invariant.CRASH_NOT_FATAL, BASE, _restore_with(torn_fatal=True)),
    Variant(
        "one-invalid-line-fatal",
        Invariant.RESTORE_TABLE,
        replace(BASE, initial_state=ONE_INVALID),
        _restore_with(invalid="fatal-one"),
    ),
    Variant(
        "all-invalid-restores-empty",
        Invariant.RESTORE_TABLE,
        replace(BASE, initial_state=ALL_INVALID),
        _restore_with(invalid="all-empty"),
    ),
    Variant(
        "fsync-error-swallowed",
        Invariant.DURABILITY,
        replace(BASE, plan=FSYNC_FAULT, model=FsyncModel.DROP),
        _with_backend(FsyncSwallowedBackend),
    ),
    Variant(
        "fsync-retried-and-carried-on",
        Invariant.DURABILITY,
        replace(BASE, plan=FSYNC_FAULT, model=FsyncModel.MARK_CLEAN),
        _with_backend(FsyncRetriedBackend),
    ),
    Variant(
        "publish-before-persist",
        Invariant.PUBLISH_IMPLIES_COMMITTED,
        BASE,
        None,
        PublishBeforePersist,
    ),
    Variant(
        "scheduling-continues-after-failure",
        Invariant.HALT,
        replace(BASE, plan=WRITE_FAULT),
        None,
        ContinueAfterFailure,
    ),
    Variant(
        "duplicate-reapplied-after-restart", Invariant.CONTINUITY, BASE, None, DuplicateReapplied
    ),
)

assert errno.EIO  # the fault plans above name errnos by their symbolic names
