"""The harness's own reading of the runtime rules (contract §6), kept apart from the runtime.

Deliberately plain and separate, as `model.py` is for restore: it exists to disagree
with a broken runtime, so a bug in `crashkit.orchestrator.runtime` cannot cancel itself
out by also being in the reference the explorer compares with. The engine step is the
engine's pure `next_state` over its belief (the engine is frozen and is not what is
under test); every rule around it is re-derived here from the contract text:

- C6.3: at start, one restored event per restored symbol, in symbol order;
- C6.7 / C6.9: on a recorded input read from its start, each restored symbol skips
  every snapshot up to and including the first at its restored timestamp; a later
  timestamp arriving first means the input does not match (the symbol is hard-failed);
- C6.5: a timestamp below the symbol's last one hard-fails the symbol for good;
- C6.6: a timestamp equal to the symbol's last one is a duplicate: skipped, reported;
- C1.3: restored states carry `progress_required` of the active config;
- C6.14: the commit clock is the engine time of the snapshot (what the harness injects).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby

from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event
from crashkit.regime_engine.belief import belief, dominant
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, RegimeInputSnapshot
from crashkit.regime_engine.hysteresis import next_state

#: The reason categories of `symbol_halted` (contract §6 event table): the text before `:`.
NON_MONOTONIC = "non_monotonic_timestamp"
RESUME_MISMATCH = "resume_point_not_found"


@dataclass(frozen=True, slots=True)
class Skip:
    """A snapshot the runtime must answer with an event but no decision: a duplicate
    (`duplicate_run_skipped`) or a hard-failed symbol (`symbol_halted`, with its reason
    category). Compared by these fields only: the reason's detail is free text."""

    event_type: str
    symbol: str
    engine_timestamp_ms: int
    category: str = ""


def skip_of(event: Event) -> Skip | None:
    """The `Skip` an event reports, or None for any other event type."""
    if event.event_type == ev.DUPLICATE_SKIPPED:
        category = ""
    elif event.event_type == ev.SYMBOL_HALTED:
        category = str(event.payload.get("reason", "")).split(":", 1)[0]
    else:
        return None
    assert event.symbol is not None and event.engine_timestamp_ms is not None
    return Skip(event.event_type, event.symbol, event.engine_timestamp_ms, category)


@dataclass(frozen=True, slots=True)
class ModelRun:
    """What one correct, never interrupted process publishes for an input."""

    events: tuple[Event, ...]  # in publication order
    states: dict[str, HysteresisState]  # each symbol's last state
    skips: tuple[Skip, ...]  # the duplicate and hard-fail answers, in order


def comparable(events: Iterable[Event]) -> list[Event | Skip]:
    """Events as the contract fixes them: decision and restored events whole, the others
    (a duplicate, a hard-failed symbol) by symbol, timestamp and reason category."""
    return [skip_of(e) or e for e in events]


def restored_state(state: HysteresisState, config: HysteresisConfig) -> HysteresisState:
    """A state as restore hands it over: the six persisted fields, `progress_required`
    of the config active now (C1.3), no reasons, no debug (C1.4)."""
    return HysteresisState(
        symbol=state.symbol,
        engine_timestamp_ms=state.engine_timestamp_ms,
        anchor_regime=state.anchor_regime,
        candidate_regime=state.candidate_regime,
        progress_current=state.progress_current,
        progress_required=config.window_updates,
        last_commit_timestamp_ms=state.last_commit_timestamp_ms,
    )


def _at(ts: int) -> Callable[[], int]:
    """The commit clock the harness injects: the engine time of the snapshot (C6.14)."""
    return lambda: ts


def model_run(
    config: HysteresisConfig,
    seed: Mapping[str, HysteresisState],
    snapshots: Iterable[RegimeInputSnapshot],
) -> ModelRun:
    """Start from the restored `seed`, read the recorded input from its start, never stop."""
    states = {symbol: restored_state(seed[symbol], config) for symbol in sorted(seed)}
    events: list[Event] = [ev.state_event(ev.STATE_RESTORED, states[s]) for s in states]
    resume_at = {symbol: state.engine_timestamp_ms for symbol, state in states.items()}
    failed: set[str] = set()
    skips: list[Skip] = []

    def hard_fail(snapshot: RegimeInputSnapshot, category: str, detail: str) -> Event:
        failed.add(snapshot.symbol)
        skips.append(
            Skip(ev.SYMBOL_HALTED, snapshot.symbol, snapshot.engine_timestamp_ms, category)
        )
        return Event(
            ev.SYMBOL_HALTED,
            snapshot.symbol,
            snapshot.engine_timestamp_ms,
            {"reason": f"{category}: {detail}"},
        )

    for _, tick in groupby(snapshots, key=lambda s: s.engine_timestamp_ms):
        for snapshot in tick:
            symbol, ts = snapshot.symbol, snapshot.engine_timestamp_ms
            if symbol in failed:
                continue
            if symbol in resume_at:  # C6.7: still inside the already-applied prefix
                restored_ts = resume_at[symbol]
                if ts < restored_ts:
                    continue
                del resume_at[symbol]
                if ts == restored_ts:
                    continue
                events.append(
                    hard_fail(snapshot, RESUME_MISMATCH, f"{ts} came before {restored_ts}")
                )
                continue
            last = states.get(symbol)
            if last is not None and ts < last.engine_timestamp_ms:
                events.append(
                    hard_fail(snapshot, NON_MONOTONIC, f"{ts} < {last.engine_timestamp_ms}")
                )
                continue
            if last is not None and ts == last.engine_timestamp_ms:
                skips.append(Skip(ev.DUPLICATE_SKIPPED, symbol, ts))
                events.append(Event(ev.DUPLICATE_SKIPPED, symbol, ts, {"reason": "duplicate"}))
                continue
            beliefs = belief(snapshot)
            state = next_state(
                last,
                symbol=symbol,
                engine_timestamp_ms=ts,
                belief=beliefs,
                dominant_regime=dominant(beliefs),
                config=config,
                clock=_at(ts),
            )
            states[symbol] = state
            events.append(ev.state_event(ev.DECISION_PUBLISHED, state))
    return ModelRun(tuple(events), states, tuple(skips))
