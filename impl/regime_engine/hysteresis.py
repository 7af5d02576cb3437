"""The hysteresis rules of engine.md: one pure step from (previous state, belief) to the next.

Pure on purpose: the clock is a parameter, the previous state an argument, so
the same inputs always give the same state. Storage lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

# Reason codes (rule 7). Stable strings: tests and events rely on them.
CANDIDATE_SELECTED = "candidate_selected"
CANDIDATE_NONE = "candidate_none"
CANDIDATE_SAME_AS_ANCHOR = "candidate_same_as_anchor"
GATE_ENTER_THRESHOLD = "gate_enter_threshold_failed"
GATE_MIN_LEAD = "gate_min_lead_failed"
PROGRESS_INC = "progress_inc"
PROGRESS_RESET = "progress_reset"
PROGRESS_DECAY = "progress_decay"
COMMIT_SWITCH = "commit_switch"
COMMIT_BLOCKED = "commit_blocked"

REASON_CODES: tuple[str, ...] = (
    CANDIDATE_SELECTED,
    CANDIDATE_NONE,
    CANDIDATE_SAME_AS_ANCHOR,
    GATE_ENTER_THRESHOLD,
    GATE_MIN_LEAD,
    PROGRESS_INC,
    PROGRESS_RESET,
    PROGRESS_DECAY,
    COMMIT_SWITCH,
    COMMIT_BLOCKED,
)


def top_allowed(belief: Mapping[Regime, float], allowed: tuple[Regime, ...]) -> Regime | None:
    """Rule 2: the allowed regime with the highest belief, ties to the earlier one."""
    best: Regime | None = None
    best_value = 0.0
    for regime in allowed:
        value = belief.get(regime, 0.0)
        if best is None or value > best_value:
            best, best_value = regime, value
    return best


def next_state(
    prev: HysteresisState | None,
    *,
    symbol: str,
    engine_timestamp_ms: int,
    belief: Mapping[Regime, float],
    dominant_regime: Regime,
    config: HysteresisConfig,
    clock: Callable[[], int],
) -> HysteresisState:
    """Apply rules 1-7 once. `clock` is read only when the anchor switches (rule 5)."""
    window = config.window_updates
    reasons: list[str] = []

    # Rule 1: the anchor carries over, or starts at this belief's dominant regime.
    anchor = prev.anchor_regime if prev is not None else dominant_regime
    prev_candidate = prev.candidate_regime if prev is not None else None
    prev_progress = prev.progress_current if prev is not None else 0
    last_commit = prev.last_commit_timestamp_ms if prev is not None else None

    # Rule 2: the candidate is the top allowed regime unless it is the anchor.
    top = top_allowed(belief, config.allowed)
    candidate: Regime | None
    if top is None:
        candidate = None
        reasons.append(CANDIDATE_NONE)
    elif top == anchor:
        candidate = None
        reasons.append(CANDIDATE_SAME_AS_ANCHOR)
    else:
        candidate = top
        reasons.append(CANDIDATE_SELECTED)

    # Rule 3: eligibility gates.
    eligible = False
    if candidate is not None:
        eligible = True
        value = belief.get(candidate, 0.0)
        if value < config.enter_threshold:
            eligible = False
            reasons.append(GATE_ENTER_THRESHOLD)
        lead = config.min_lead_over_anchor
        if lead is not None and value - belief.get(anchor, 0.0) < lead:
            eligible = False
            reasons.append(GATE_MIN_LEAD)

    # Rule 4: progress moves up, resets or decays.
    new_candidate: Regime | None
    if eligible and candidate is not None:
        if candidate == prev_candidate:
            progress = min(prev_progress + 1, window)
            reasons.append(PROGRESS_INC)
        else:
            progress = 1
            reasons.append(PROGRESS_RESET)
        new_candidate = candidate
    else:
        progress = max(0, prev_progress - config.decay_step)
        if prev_progress > 0:
            reasons.append(PROGRESS_DECAY)
        new_candidate = prev_candidate if progress > 0 else None

    # Rule 5: commit when the window is full and the candidate is strong enough now.
    if new_candidate is not None and progress >= window:
        if belief.get(new_candidate, 0.0) >= config.commit_threshold:
            anchor = new_candidate
            new_candidate = None
            progress = 0
            last_commit = clock()
            reasons.append(COMMIT_SWITCH)
        else:
            reasons.append(COMMIT_BLOCKED)

    # Rule 6: clamp.
    progress = max(0, min(progress, window))

    return HysteresisState(
        symbol=symbol,
        engine_timestamp_ms=engine_timestamp_ms,
        anchor_regime=anchor,
        candidate_regime=new_candidate,
        progress_current=progress,
        progress_required=window,
        last_commit_timestamp_ms=last_commit,
        reason_codes=tuple(reasons),
        debug={"belief_by_regime": {r.value: v for r, v in belief.items()}},
    )
