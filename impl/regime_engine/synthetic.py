"""A seeded synthetic market: hidden Markov regimes, features drawn around signatures.

Gives demos, scenarios and benchmarks real-looking input with known ground
truth. Each symbol has its own `random.Random` seeded by the string
"SEED:SYMBOL" (string seeds hash with SHA-512, identical on every platform),
and features are rounded to 6 decimals, so the same arguments give the same
bytes everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from crashkit.regime_engine.belief import SIGNATURES
from crashkit.regime_engine.contracts import ALL_REGIMES, FEATURE_NAMES, Regime, RegimeInputSnapshot

START_MS = 1_700_000_000_000
STEP_MS = 60_000
STAY_PROBABILITY = 0.8  # chance the hidden regime persists to the next tick
NOISE = 0.25  # standard deviation of each feature around its signature
AMBIGUITY = 0.15  # chance a tick blends the true signature with another regime's


def symbol_names(count: int) -> list[str]:
    """SYM000, SYM001, ... (sortable, fixed width)."""
    if count < 0:
        raise ValueError(f"symbol count must be >= 0, got {count}")
    return [f"SYM{i:03d}" for i in range(count)]


@dataclass(frozen=True, slots=True)
class LabelledSnapshot:
    """A snapshot with the hidden regime that generated it (the ground truth)."""

    snapshot: RegimeInputSnapshot
    hidden_regime: Regime


def _features(rng: random.Random, regime: Regime) -> tuple[float, ...]:
    centre = SIGNATURES[regime]
    if rng.random() < AMBIGUITY:
        other = SIGNATURES[ALL_REGIMES[rng.randrange(len(ALL_REGIMES))]]
        mix = rng.uniform(0.3, 0.6)
        centre = tuple(a * (1 - mix) + b * mix for a, b in zip(centre, other, strict=True))
    values = [rng.gauss(c, NOISE) for c in centre]
    values[6] = max(0.0, values[6])  # liquidation intensity is never negative
    values[2] = max(0.0, values[2])  # neither is range expansion
    return tuple(round(v, 6) for v in values)


def generate_labelled(
    symbols: int | Sequence[str],
    ticks: int,
    seed: int,
    *,
    start_ms: int = START_MS,
    step_ms: int = STEP_MS,
) -> Iterator[LabelledSnapshot]:
    """Tick by tick, one snapshot per symbol, all sharing the tick's timestamp."""
    if ticks < 0:
        raise ValueError(f"ticks must be >= 0, got {ticks}")
    if step_ms < 1:
        raise ValueError(f"step_ms must be >= 1, got {step_ms}")
    names = symbol_names(symbols) if isinstance(symbols, int) else list(symbols)
    rngs = [random.Random(f"{seed}:{name}") for name in names]
    hidden = [ALL_REGIMES[rng.randrange(len(ALL_REGIMES))] for rng in rngs]
    for tick in range(ticks):
        ts = start_ms + tick * step_ms
        for i, (name, rng) in enumerate(zip(names, rngs, strict=True)):
            if tick > 0 and rng.random() >= STAY_PROBABILITY:
                hidden[i] = ALL_REGIMES[rng.randrange(len(ALL_REGIMES))]
            values = _features(rng, hidden[i])
            snapshot = RegimeInputSnapshot(name, ts, *values)
            yield LabelledSnapshot(snapshot, hidden[i])


def generate(
    symbols: int | Sequence[str],
    ticks: int,
    seed: int,
    *,
    start_ms: int = START_MS,
    step_ms: int = STEP_MS,
) -> Iterator[RegimeInputSnapshot]:
    """The snapshot stream of `generate_labelled` without the labels."""
    for labelled in generate_labelled(symbols, ticks, seed, start_ms=start_ms, step_ms=step_ms):
        yield labelled.snapshot


assert len(FEATURE_NAMES) == 7
