"""Frozen data contracts of the regime engine.

These types are the engine's public vocabulary. The persistence layer maps
`HysteresisState` to records; nothing here knows about files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

HYSTERESIS_STATE_SCHEMA = "hysteresis_state"
HYSTERESIS_STATE_SCHEMA_VERSION = "1"


class Regime(StrEnum):
    """The nine market regimes, in their canonical (tie-break) order."""

    CHOP_BALANCED = "CHOP_BALANCED"
    CHOP_STOPHUNT = "CHOP_STOPHUNT"
    LIQUIDATION_UP = "LIQUIDATION_UP"
    LIQUIDATION_DOWN = "LIQUIDATION_DOWN"
    SQUEEZE_UP = "SQUEEZE_UP"
    SQUEEZE_DOWN = "SQUEEZE_DOWN"
    TREND_BUILD_UP = "TREND_BUILD_UP"
    TREND_BUILD_DOWN = "TREND_BUILD_DOWN"
    TREND_EXHAUSTION = "TREND_EXHAUSTION"


ALL_REGIMES: tuple[Regime, ...] = tuple(Regime)

# The market features a snapshot carries, in a fixed order. Kept few on purpose:
# each one moves at least two regimes apart (see belief.py for the signatures).
FEATURE_NAMES: tuple[str, ...] = (
    "return_window",  # signed return over the look-back window, in window-vol units
    "volatility_z",  # realised volatility z-score against its own history
    "range_expansion",  # high-low range over its median (1.0 = normal)
    "oi_slope",  # open-interest slope, normalised
    "funding_z",  # funding-rate z-score
    "cvd_slope",  # cumulative volume delta slope, normalised
    "liquidation_intensity",  # liquidated notional over its median (0 = none)
)


class ContractError(ValueError):
    """A value breaks one of the engine's data contracts."""


def _check_symbol(symbol: object) -> None:
    if not isinstance(symbol, str) or not symbol:
        raise ContractError(f"symbol must be a non-empty str, got {symbol!r}")


def _check_non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ContractError(f"{name} must be an int >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class RegimeInputSnapshot:
    """One symbol's market features at one engine timestamp."""

    symbol: str
    engine_timestamp_ms: int
    return_window: float
    volatility_z: float
    range_expansion: float
    oi_slope: float
    funding_z: float
    cvd_slope: float
    liquidation_intensity: float

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check_non_negative_int("engine_timestamp_ms", self.engine_timestamp_ms)
        for name in FEATURE_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ContractError(f"feature {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ContractError(f"feature {name} must be finite, got {value!r}")

    def features(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class RegimeOutput:
    """The truth output: the dominant regime and the full belief map."""

    symbol: str
    engine_timestamp_ms: int
    regime: Regime
    confidence: float
    belief_by_regime: Mapping[Regime, float]


@dataclass(frozen=True, slots=True)
class HysteresisConfig:
    """Knobs of the hysteresis wrapper (defaults from the engine spec)."""

    window_updates: int = 3
    enter_threshold: float = 0.6
    commit_threshold: float = 0.6
    min_lead_over_anchor: float | None = None
    decay_step: int = 1
    allowed_regimes: tuple[Regime, ...] | None = None

    def __post_init__(self) -> None:
        if (
            not isinstance(self.window_updates, int)
            or isinstance(self.window_updates, bool)
            or self.window_updates < 1
        ):
            raise ContractError(f"window_updates must be an int >= 1, got {self.window_updates!r}")
        for name in ("enter_threshold", "commit_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ContractError(f"{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ContractError(f"{name} must be in [0, 1], got {value!r}")
        lead = self.min_lead_over_anchor
        if lead is not None and (
            isinstance(lead, bool) or not isinstance(lead, int | float) or not math.isfinite(lead)
        ):
            raise ContractError(
                f"min_lead_over_anchor must be a finite number or None, got {lead!r}"
            )
        if (
            not isinstance(self.decay_step, int)
            or isinstance(self.decay_step, bool)
            or self.decay_step < 1
        ):
            raise ContractError(f"decay_step must be an int >= 1, got {self.decay_step!r}")
        if self.allowed_regimes is not None:
            if not self.allowed_regimes:
                raise ContractError("allowed_regimes must be None (all) or non-empty")
            for regime in self.allowed_regimes:
                if not isinstance(regime, Regime):
                    raise ContractError(f"allowed_regimes holds a non-Regime: {regime!r}")
            if len(set(self.allowed_regimes)) != len(self.allowed_regimes):
                raise ContractError("allowed_regimes holds duplicates")

    @property
    def allowed(self) -> tuple[Regime, ...]:
        """Allowed regimes in tie-break order (None means all nine, enum order)."""
        return ALL_REGIMES if self.allowed_regimes is None else self.allowed_regimes


#: The six fields of a `HysteresisState` that are stored (contract C1.1), in the order
#: `persisted_fields()` gives them.
PERSISTED_FIELDS: tuple[str, ...] = (
    "symbol",
    "engine_timestamp_ms",
    "anchor_regime",
    "candidate_regime",
    "progress_current",
    "last_commit_timestamp_ms",
)
#: What a decision is judged by: the persisted fields without the wall clock (C7.3).
DECISION_FIELDS: tuple[str, ...] = PERSISTED_FIELDS[:5]


@dataclass(frozen=True, slots=True)
class HysteresisState:
    """Per-symbol hysteresis state. Only some fields are persisted (contract §1)."""

    symbol: str
    engine_timestamp_ms: int
    anchor_regime: Regime
    candidate_regime: Regime | None
    progress_current: int
    progress_required: int
    last_commit_timestamp_ms: int | None
    reason_codes: tuple[str, ...] = ()
    debug: Mapping[str, object] | None = None
    schema: str = HYSTERESIS_STATE_SCHEMA
    schema_version: str = HYSTERESIS_STATE_SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_symbol(self.symbol)
        _check_non_negative_int("engine_timestamp_ms", self.engine_timestamp_ms)
        if not isinstance(self.anchor_regime, Regime):
            raise ContractError(f"anchor_regime must be a Regime, got {self.anchor_regime!r}")
        if self.candidate_regime is not None and not isinstance(self.candidate_regime, Regime):
            raise ContractError(
                f"candidate_regime must be a Regime or None, got {self.candidate_regime!r}"
            )
        _check_non_negative_int("progress_current", self.progress_current)
        if (
            not isinstance(self.progress_required, int)
            or isinstance(self.progress_required, bool)
            or self.progress_required < 1
        ):
            raise ContractError(
                f"progress_required must be an int >= 1, got {self.progress_required!r}"
            )
        if self.last_commit_timestamp_ms is not None:
            _check_non_negative_int("last_commit_timestamp_ms", self.last_commit_timestamp_ms)

    def persisted_fields(self) -> tuple[object, ...]:
        """The six persisted fields, for equality checks that ignore the rest."""
        return (
            self.symbol,
            self.engine_timestamp_ms,
            self.anchor_regime,
            self.candidate_regime,
            self.progress_current,
            self.last_commit_timestamp_ms,
        )

    def decision(self) -> tuple[object, ...]:
        """The fields a decision is judged by: persisted ones without the wall clock."""
        return (
            self.symbol,
            self.engine_timestamp_ms,
            self.anchor_regime,
            self.candidate_regime,
            self.progress_current,
        )


@dataclass(slots=True)
class HysteresisStore:
    """The per-symbol states the hysteresis wrapper reads and writes.

    Mutable on purpose: it is the single holder of state between updates (no
    in-memory shadow beside it), and the orchestrator seeds it from restore.
    """

    states: dict[str, HysteresisState] = field(default_factory=dict)
