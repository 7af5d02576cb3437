"""The engine's two public entry points: the truth API and the hysteresis API."""

from __future__ import annotations

import time
from collections.abc import Callable

from crashkit.regime_engine.belief import belief, dominant
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    HysteresisStore,
    RegimeInputSnapshot,
    RegimeOutput,
)
from crashkit.regime_engine.hysteresis import next_state

Clock = Callable[[], int]
"""Milliseconds since the epoch. Injected so tests and replays are deterministic."""


def wall_clock_ms() -> int:
    """The default clock: wall time in milliseconds (diagnostics only, never a decision)."""
    return time.time_ns() // 1_000_000


def run(snapshot: RegimeInputSnapshot) -> RegimeOutput:
    """Truth API: the dominant regime, its belief as confidence, and the full map."""
    beliefs = belief(snapshot)
    regime = dominant(beliefs)
    return RegimeOutput(
        symbol=snapshot.symbol,
        engine_timestamp_ms=snapshot.engine_timestamp_ms,
        regime=regime,
        confidence=beliefs[regime],
        belief_by_regime=beliefs,
    )


def run_with_hysteresis(
    snapshot: RegimeInputSnapshot,
    store: HysteresisStore,
    config: HysteresisConfig,
    *,
    clock: Clock = wall_clock_ms,
) -> HysteresisState:
    """Hysteresis API: read the symbol's previous state, step once, store and return it."""
    output = run(snapshot)
    state = next_state(
        store.states.get(snapshot.symbol),
        symbol=snapshot.symbol,
        engine_timestamp_ms=snapshot.engine_timestamp_ms,
        belief=output.belief_by_regime,
        dominant_regime=output.regime,
        config=config,
        clock=clock,
    )
    store.states[snapshot.symbol] = state
    return state
