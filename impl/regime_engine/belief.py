"""Belief: a pure, deterministic map from a snapshot's features to nine probabilities.

Each regime has a signature (the feature values it typically shows). The belief
is a softmax over negative scaled squared distances to those signatures: close
to a signature means likely. Fixed summation order and plain floats keep it bit
for bit reproducible on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from crashkit.regime_engine.contracts import ALL_REGIMES, FEATURE_NAMES, Regime, RegimeInputSnapshot

# Signature per regime, in FEATURE_NAMES order:
# return_window, volatility_z, range_expansion, oi_slope, funding_z, cvd_slope, liquidation_intensity
SIGNATURES: Mapping[Regime, tuple[float, ...]] = {
    Regime.CHOP_BALANCED: (0.0, -0.5, 0.8, 0.0, 0.0, 0.0, 0.1),
    Regime.CHOP_STOPHUNT: (0.0, 1.0, 1.8, 0.0, 0.0, 0.0, 1.0),
    Regime.LIQUIDATION_UP: (2.0, 2.0, 2.5, -1.5, 1.0, 1.0, 3.0),
    Regime.LIQUIDATION_DOWN: (-2.0, 2.0, 2.5, -1.5, -1.0, -1.0, 3.0),
    Regime.SQUEEZE_UP: (1.5, 1.0, 1.5, -1.0, -1.5, 1.5, 1.5),
    Regime.SQUEEZE_DOWN: (-1.5, 1.0, 1.5, -1.0, 1.5, -1.5, 1.5),
    Regime.TREND_BUILD_UP: (1.0, 0.0, 1.2, 1.5, 0.5, 1.0, 0.2),
    Regime.TREND_BUILD_DOWN: (-1.0, 0.0, 1.2, 1.5, -0.5, -1.0, 0.2),
    Regime.TREND_EXHAUSTION: (0.3, 1.0, 1.0, -0.5, 2.0, -0.5, 0.5),
}

# How far (in feature units) a value may sit from a signature and still count as
# "close": one scale unit away costs one unit of log-odds times SHARPNESS / 2.
FEATURE_SCALES: tuple[float, ...] = (0.6, 0.6, 0.5, 0.6, 0.6, 0.6, 0.6)
SHARPNESS = 1.0

assert len(FEATURE_SCALES) == len(FEATURE_NAMES)
assert tuple(SIGNATURES) == ALL_REGIMES


def belief_from_features(features: tuple[float, ...]) -> dict[Regime, float]:
    """Softmax over -SHARPNESS/2 * scaled squared distance to each signature."""
    if len(features) != len(FEATURE_NAMES):
        raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {len(features)}")
    logits: list[float] = []
    for regime in ALL_REGIMES:
        signature = SIGNATURES[regime]
        distance = 0.0
        for value, centre, scale in zip(features, signature, FEATURE_SCALES, strict=True):
            z = (value - centre) / scale
            distance += z * z
        logits.append(-0.5 * SHARPNESS * distance)
    top = max(logits)
    weights = [math.exp(logit - top) for logit in logits]
    total = math.fsum(weights)
    return {regime: w / total for regime, w in zip(ALL_REGIMES, weights, strict=True)}


def belief(snapshot: RegimeInputSnapshot) -> dict[Regime, float]:
    """The belief map of one snapshot (non-negative, sums to 1 within 1e-9)."""
    return belief_from_features(snapshot.features())


def dominant(belief_by_regime: Mapping[Regime, float]) -> Regime:
    """The regime with the highest belief; ties go to the earlier one in enum order."""
    best = ALL_REGIMES[0]
    best_value = belief_by_regime[best]
    for regime in ALL_REGIMES[1:]:
        value = belief_by_regime[regime]
        if value > best_value:
            best, best_value = regime, value
    return best
