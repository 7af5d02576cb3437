"""Shared test helpers: small builders so tests state only what they are about."""

from __future__ import annotations

import os
from collections.abc import Sequence

from hypothesis import settings

from crashkit.orchestrator import events as ev
from crashkit.orchestrator.events import Event
from crashkit.regime_engine.contracts import DECISION_FIELDS, HysteresisState, Regime

#: pytester drives the kit's plugin in subprocesses (tests/kit): the fault layer patches the
#: process, so each run gets its own.
pytest_plugins = ["pytester"]

# Hypothesis profiles, chosen on purpose with HYPOTHESIS_PROFILE (default `dev`); with
# CI set, hypothesis would otherwise load its own built-in `ci` profile. The machines
# in tests/machines run `max_examples` examples of `stateful_step_count` steps per item.
# - dev: quick, random, with the local example database (failures replay first);
# - ci: derandomised (each machine item pins its own seed), no database, no
#   reproduce-blob (failures are exported as scenario files instead); all machine
#   items together stay well under 3 minutes on 2 cores;
# - nightly: 10x the examples of ci, longer runs, random.
# The deadline is off everywhere: a machine example is one long test call.
settings.register_profile("dev", max_examples=25, stateful_step_count=20, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    print_blob=False,
    deadline=None,
)
settings.register_profile("nightly", max_examples=2000, stateful_step_count=40, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def make_state(
    symbol: str = "BTC",
    ts: int = 1_000,
    anchor: Regime = Regime.CHOP_BALANCED,
    candidate: Regime | None = None,
    progress: int = 0,
    last_commit: int | None = None,
    required: int = 3,
) -> HysteresisState:
    return HysteresisState(
        symbol=symbol,
        engine_timestamp_ms=ts,
        anchor_regime=anchor,
        candidate_regime=candidate,
        progress_current=progress,
        progress_required=required,
        last_commit_timestamp_ms=last_commit,
    )


def decisions(
    events: Sequence[Event], *, with_commit: bool = False
) -> dict[str, tuple[object, ...]]:
    """run_id -> decision fields, from decision and restored events (restored = re-announced).

    A run_id published twice with different fields fails the test at once.
    """
    keys = (*DECISION_FIELDS, "last_commit_timestamp_ms") if with_commit else DECISION_FIELDS
    out: dict[str, tuple[object, ...]] = {}
    for event in events:
        if event.event_type in (ev.DECISION_PUBLISHED, ev.STATE_RESTORED):
            state = event.payload["state"]
            assert isinstance(state, dict) and event.run_id is not None
            value = tuple(state[k] for k in keys)
            assert out.setdefault(event.run_id, value) == value, event.run_id
    return out
