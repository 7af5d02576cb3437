"""`harness/judge/runtime_model.py` against the runtime it must agree with, and disagree
with when the runtime is wrong.

The model is the explorer's reference for continuity (5-continuity) and for the
answers that are not decisions (duplicates, hard-failed symbols). Here both run the
same inputs, with duplicates, late snapshots, restored seeds that match the input
or not, and any window: every event must be equal (a `symbol_halted` or
`duplicate_run_skipped` by its symbol, timestamp and reason category). Then a runtime
with one rule broken must differ from the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from crashkit.harness.judge.runtime_model import comparable, model_run
from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event, MemorySink
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock, seeded_factory
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.memory import memory_store
from crashkit.regime_engine.codec import record_to_state, state_to_record
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    Regime,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.synthetic import generate


def runtime_events(
    config: HysteresisConfig,
    seed: dict[str, HysteresisState],
    snapshots: Sequence[RegimeInputSnapshot],
    runtime_class: type[HysteresisRuntime] = HysteresisRuntime,
) -> list[Event]:
    sink = MemorySink()
    opened = memory_store()
    # seeded as the backend's restore maps a record (the codec), not by the model's mapping
    opened.store.states.update(
        {s: record_to_state(state_to_record(st), config) for s, st in seed.items()}
    )
    runtime = runtime_class(
        config=config,
        state_path="<test>",
        sink=sink,
        backend_factory=seeded_factory(opened),
        clock=engine_commit_clock,
    )
    runtime.start()
    for group in ticks(snapshots):
        runtime.tick(group)
    return sink.events


@st.composite
def inputs(
    draw: st.DrawFn,
) -> tuple[HysteresisConfig, dict[str, HysteresisState], list[RegimeInputSnapshot]]:
    symbols = draw(st.integers(1, 3))
    market = list(generate(symbols, draw(st.integers(1, 8)), draw(st.integers(0, 50))))
    config = HysteresisConfig(window_updates=draw(st.integers(1, 3)))
    groups = list(ticks(market))
    # seeds: what an earlier process committed, at a tick of this input or at a time it has not
    seed: dict[str, HysteresisState] = {}
    if groups and draw(st.booleans()):
        earlier = runtime_events(config, {}, market)
        decided = [e for e in earlier if e.event_type == ev.DECISION_PUBLISHED]
        for event in draw(st.lists(st.sampled_from(decided), max_size=3)) if decided else []:
            state = event.payload["state"]
            assert isinstance(state, dict)
            restored = restore_state(state)
            if draw(st.booleans()):
                restored = replace(restored, engine_timestamp_ms=restored.engine_timestamp_ms + 7)
            seed[restored.symbol] = restored
    # input edits: a tick delivered again, a snapshot of an earlier tick arriving late
    edited: list[RegimeInputSnapshot] = []
    for i, group in enumerate(groups):
        edited.extend(group)
        if draw(st.integers(0, 4)) == 0:
            edited.extend(group)
        if i and draw(st.integers(0, 5)) == 0:
            edited.append(draw(st.sampled_from(groups[i - 1])))
    return config, seed, edited


def restore_state(payload: dict[str, object]) -> HysteresisState:
    candidate = payload["candidate_regime"]
    return HysteresisState(
        symbol=str(payload["symbol"]),
        engine_timestamp_ms=int(payload["engine_timestamp_ms"]),  # type: ignore[call-overload]
        anchor_regime=Regime(payload["anchor_regime"]),
        candidate_regime=None if candidate is None else Regime(candidate),
        progress_current=int(payload["progress_current"]),  # type: ignore[call-overload]
        progress_required=3,
        last_commit_timestamp_ms=payload["last_commit_timestamp_ms"],  # type: ignore[arg-type]
    )


@settings(max_examples=200)
@given(inputs())
def test_the_model_publishes_what_the_runtime_publishes(
    case: tuple[HysteresisConfig, dict[str, HysteresisState], list[RegimeInputSnapshot]],
) -> None:
    config, seed, snapshots = case
    model = model_run(config, seed, snapshots)
    assert comparable(model.events) == comparable(runtime_events(config, seed, snapshots))


def test_the_inputs_reach_every_rule() -> None:
    """Not vacuous: the edits above make duplicates, late snapshots and both resume outcomes."""
    market = list(generate(2, 6, 3))
    groups = list(ticks(market))
    config = HysteresisConfig()
    first = runtime_events(config, {}, market)
    decided = [e for e in first if e.event_type == ev.DECISION_PUBLISHED]
    state = decided[3].payload["state"]
    assert isinstance(state, dict)
    matching = restore_state(state)
    other = replace(restore_state(decided[4].payload["state"]), engine_timestamp_ms=1)  # type: ignore[arg-type]
    seed = {matching.symbol: matching}
    if other.symbol != matching.symbol:
        seed[other.symbol] = other
    edited = [*groups[0], *groups[1], *groups[1], *groups[2], groups[1][0], *groups[3]]
    model = model_run(config, seed, edited)
    kinds = {(s.event_type, s.category) for s in model.skips}
    assert (ev.DUPLICATE_SKIPPED, "") in kinds
    assert (ev.SYMBOL_HALTED, "non_monotonic_timestamp") in kinds or (
        ev.SYMBOL_HALTED,
        "resume_point_not_found",
    ) in kinds
    assert comparable(model.events) == comparable(runtime_events(config, seed, edited))


class ReappliesDuplicates(HysteresisRuntime):
    """A runtime that forgets C6.6 and runs the engine again on a re-delivered snapshot."""

    def _decide(  # type: ignore[override]
        self, snapshots: Sequence[RegimeInputSnapshot]
    ) -> tuple[list[Event], list[HysteresisState]]:
        out, new = super()._decide(snapshots)
        return [e for e in out if e.event_type != ev.DUPLICATE_SKIPPED], new


def test_a_runtime_that_drops_duplicate_events_disagrees_with_the_model() -> None:
    market = list(generate(2, 4, 1))
    groups = list(ticks(market))
    edited = [*groups[0], *groups[1], *groups[1], *groups[2]]
    config = HysteresisConfig()
    model = comparable(model_run(config, {}, edited).events)
    assert model == comparable(runtime_events(config, {}, edited))
    assert model != comparable(runtime_events(config, {}, edited, ReappliesDuplicates))
