"""Shared test helpers: small builders so tests state only what they are about."""

from __future__ import annotations

from regime_engine.contracts import HysteresisState, Regime


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
