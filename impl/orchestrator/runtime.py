"""The hysteresis-mode runtime (contract §6): restore, tick, persist, then publish; halt on failure.

The single `HysteresisStore` restored at startup is the only state holder; the
last applied timestamp of a symbol is read from it, never kept beside it.
"""

from __future__ import annotations

import errno as errno_module
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import HaltedError, RestoreFatal
from crashkit.orchestrator.events import Event, EventSink
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.protocol import (
    BackendFactory,
    OpenedStore,
    RestoreSummary,
    StateBackend,
)
from crashkit.orchestrator.store.report import ENGINE_SCHEMA
from crashkit.regime_engine import contracts
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, RegimeInputSnapshot
from crashkit.regime_engine.engine import run, run_with_hysteresis, wall_clock_ms

# Given the engine timestamp being processed, the value for last_commit_timestamp_ms.
CommitClock = Callable[[int], int]

RESUME_POINT_NOT_FOUND = "resume_point_not_found"
NON_MONOTONIC = "non_monotonic_timestamp"


def wall_commit_clock(_engine_timestamp_ms: int) -> int:
    """The default: real wall-clock time of the switch (diagnostics only)."""
    return wall_clock_ms()


def engine_commit_clock(engine_timestamp_ms: int) -> int:
    """Deterministic: the switch is stamped with the engine time that caused it."""
    return engine_timestamp_ms


@dataclass(slots=True)
class RunStats:
    ticks: int = 0
    decisions: int = 0
    duplicates: int = 0
    resume_skipped: int = 0
    ignored_after_halt: int = 0
    restored: int = 0
    halted_symbols: dict[str, str] = field(default_factory=dict)
    halt_reason: str | None = None

    @property
    def halted(self) -> bool:
        return self.halt_reason is not None


def check_engine_schema() -> None:
    """Contract §4: refuse when the engine expects another HysteresisState schema."""
    expected = (contracts.HYSTERESIS_STATE_SCHEMA, contracts.HYSTERESIS_STATE_SCHEMA_VERSION)
    if expected != ENGINE_SCHEMA:
        raise RestoreFatal(
            "<engine>",
            f"engine expects HysteresisState schema {expected[0]!r} version {expected[1]!r}; "
            f"the store holds {ENGINE_SCHEMA[0]!r} version {ENGINE_SCHEMA[1]!r} "
            "(no silent upgrade or downgrade)",
        )


class HysteresisRuntime:
    """One orchestrator process's life: `start()`, then `tick()`s or `run()`, then `close()`."""

    def __init__(
        self,
        *,
        config: HysteresisConfig,
        state_path: str,
        sink: EventSink,
        backend_factory: BackendFactory,
        clock: CommitClock = wall_commit_clock,
        resume_from_input: bool = True,
        stats: RunStats | None = None,
    ) -> None:
        self.config = config
        self.state_path = state_path
        self.sink = sink
        self._factory = backend_factory
        self._clock = clock
        self._resume_from_input = resume_from_input
        self._opened: OpenedStore | None = None
        self._resume_at: dict[str, int] = {}
        self.stats = RunStats() if stats is None else stats  # given: the caller sees it grow

    @property
    def backend(self) -> StateBackend:
        if self._opened is None:
            raise RuntimeError("runtime not started")
        return self._opened.backend

    @property
    def states(self) -> dict[str, HysteresisState]:
        if self._opened is None:
            raise RuntimeError("runtime not started")
        return self._opened.store.states

    @property
    def pending_resume(self) -> int:
        """Symbols whose already-applied prefix of a recorded input is still being skipped."""
        return len(self._resume_at)

    def start(self) -> RestoreSummary:
        """Restore or refuse (raises StartupRefused); then publish one restored event per symbol."""
        check_engine_schema()
        self._opened = self._factory(self.state_path, self.config)
        restored = self._opened.store.states
        if self._resume_from_input:
            self._resume_at = {s: st.engine_timestamp_ms for s, st in restored.items()}
        self.stats.restored = len(restored)
        self.sink.publish(
            [ev.state_event(ev.STATE_RESTORED, restored[s]) for s in sorted(restored)]
        )
        return self._opened.report

    def _halt_symbol(self, out: list[Event], snapshot: RegimeInputSnapshot, reason: str) -> None:
        self.stats.halted_symbols[snapshot.symbol] = reason
        out.append(
            Event(
                ev.SYMBOL_HALTED, snapshot.symbol, snapshot.engine_timestamp_ms, {"reason": reason}
            )
        )

    def tick(self, snapshots: Sequence[RegimeInputSnapshot]) -> list[Event]:
        """Run one tick; returns the events published. Raises HaltedError once halted."""
        if self.stats.halted:
            raise HaltedError(f"scheduling halted: {self.stats.halt_reason}")
        out, new_states = self._decide(snapshots)
        self.stats.ticks += 1
        return self._persist_then_publish(snapshots, out, new_states)

    def _resume_skip(self, snapshot: RegimeInputSnapshot) -> bool | str:
        """The resume rule for a recorded input: True = already applied, skip; False = go on;
        a string = the input does not match the state file (hard-fail the symbol)."""
        resume_at = self._resume_at.get(snapshot.symbol)
        if resume_at is None:
            return False
        ts = snapshot.engine_timestamp_ms
        if ts < resume_at:
            return True
        del self._resume_at[snapshot.symbol]
        if ts == resume_at:
            return True
        return (
            f"{RESUME_POINT_NOT_FOUND}: input reached {ts} before the restored "
            f"timestamp {resume_at}; the input does not match the state file"
        )

    def _decide(
        self, snapshots: Sequence[RegimeInputSnapshot]
    ) -> tuple[list[Event], list[HysteresisState]]:
        """Guard, skip and run the engine for one tick; nothing leaves the process here."""
        opened = self._opened
        if opened is None:
            raise RuntimeError("runtime not started")
        store = opened.store
        states = store.states
        clock = self._clock
        out: list[Event] = []
        new_states: list[HysteresisState] = []
        halted_symbols = self.stats.halted_symbols
        for snapshot in snapshots:
            symbol = snapshot.symbol
            ts = snapshot.engine_timestamp_ms
            if symbol in halted_symbols:
                self.stats.ignored_after_halt += 1
                continue
            skip = self._resume_skip(snapshot)
            if skip is True:
                self.stats.resume_skipped += 1
                continue
            if isinstance(skip, str):
                self._halt_symbol(out, snapshot, skip)
                continue
            prev = states.get(symbol)
            if prev is not None:
                last = prev.engine_timestamp_ms
                if ts < last:
                    self._halt_symbol(
                        out, snapshot, f"{NON_MONOTONIC}: {ts} is before the last applied {last}"
                    )
                    continue
                if ts == last:
                    self.stats.duplicates += 1
                    out.append(
                        Event(
                            ev.DUPLICATE_SKIPPED, symbol, ts, {"reason": "same run delivered again"}
                        )
                    )
                    continue
            state = run_with_hysteresis(
                snapshot, store, self.config, clock=functools.partial(clock, ts)
            )
            new_states.append(state)
            out.append(ev.state_event(ev.DECISION_PUBLISHED, state))
        return out, new_states

    def _persist_then_publish(
        self,
        snapshots: Sequence[RegimeInputSnapshot],
        out: list[Event],
        new_states: list[HysteresisState],
    ) -> list[Event]:
        """Contract §6: one durable append for the tick, and only then publish."""
        if new_states:
            try:
                self.backend.append(new_states)
            except Exception as exc:  # any persist failure halts: no fallback, no retry
                return self._halt(snapshots, exc)
        self.sink.publish(out)  # PublishError propagates: the tick is persisted (D.39)
        self.stats.decisions += len(new_states)
        return out

    def _halt(self, snapshots: Sequence[RegimeInputSnapshot], exc: BaseException) -> list[Event]:
        code = getattr(exc, "errno_code", None) or getattr(exc, "errno", None)
        reason = f"persist_failed: {exc}"
        self.stats.halt_reason = reason
        halted = Event(
            ev.SCHEDULING_HALTED,
            None,
            snapshots[0].engine_timestamp_ms if snapshots else None,
            {
                "reason": "persist_failed",
                "error": str(exc),
                "errno": errno_module.errorcode.get(code) if isinstance(code, int) else None,
            },
        )
        self.sink.publish([halted])
        return [halted]

    def run(
        self, snapshots: Iterable[RegimeInputSnapshot], stop: Callable[[], bool] | None = None
    ) -> RunStats:
        """Tick through a snapshot stream until it ends, scheduling halts, or `stop()` says
        to stop (asked before each tick: a tick is never cut between its append and its
        publish, so a stop publishes nothing that was not persisted)."""
        for group in ticks(snapshots):
            if stop is not None and stop():
                break
            self.tick(group)
            if self.stats.halted:
                break
        return self.stats

    def close(self) -> None:
        if self._opened is not None:
            self._opened.backend.close()


#: How the harness names "a HysteresisRuntime or a subclass of it" (broken variants).
RuntimeClass = Callable[..., HysteresisRuntime]


class TruthRuntime:
    """Truth mode: the plain engine, one `engine_run_completed` event per snapshot, no state."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.stats = RunStats()

    def run(
        self, snapshots: Iterable[RegimeInputSnapshot], stop: Callable[[], bool] | None = None
    ) -> RunStats:
        """As `HysteresisRuntime.run`: until the stream ends or `stop()` before a tick."""
        for group in ticks(snapshots):
            if stop is not None and stop():
                break
            out = []
            for snapshot in group:
                result = run(snapshot)
                out.append(
                    Event(
                        ev.ENGINE_RUN_COMPLETED,
                        snapshot.symbol,
                        snapshot.engine_timestamp_ms,
                        {"regime": result.regime.value, "confidence": result.confidence},
                    )
                )
            self.stats.ticks += 1
            self.stats.decisions += len(out)
            self.sink.publish(out)
        return self.stats


def seeded_factory(opened: OpenedStore) -> BackendFactory:
    """A factory that hands out an already opened store (replays, harness reference runs)."""

    def factory(path: str, config: HysteresisConfig) -> OpenedStore:
        return opened

    return factory
