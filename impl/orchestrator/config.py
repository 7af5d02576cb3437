"""Orchestrator configuration, read from TOML with strict, path-naming errors.

Relative paths resolve against the config file's folder, so a config and its
state file can move together.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from crashkit.orchestrator.errors import ConfigError
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND
from crashkit.regime_engine.contracts import ContractError, HysteresisConfig, Regime

EngineMode = Literal["hysteresis", "truth"]
CommitClock = Literal["wall", "engine"]


class _EngineSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    engine_mode: EngineMode = "hysteresis"
    hysteresis_state_path: str | None = None
    commit_clock: CommitClock = "wall"
    backend: str = DEFAULT_BACKEND


class _HysteresisSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    window_updates: int = 3
    enter_threshold: float = 0.6
    commit_threshold: float = 0.6
    min_lead_over_anchor: float | None = None
    decay_step: int = 1
    allowed_regimes: list[Regime] | None = None


class _MarketSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    symbols: int = 4
    ticks: int = 200
    seed: int = 7


class _ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    engine: _EngineSection
    hysteresis: _HysteresisSection = _HysteresisSection()
    market: _MarketSection | None = None


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """The seeded synthetic market used when no recorded input is given."""

    symbols: int
    ticks: int
    seed: int


@dataclass(frozen=True, slots=True)
class OrchestratorConfig:
    engine_mode: EngineMode
    hysteresis_state_path: str | None
    commit_clock: CommitClock
    backend: str
    hysteresis: HysteresisConfig
    market: MarketConfig | None
    source: str = "<memory>"


def parse_config(
    data: dict[str, object], source: str = "<memory>", base_dir: Path | None = None
) -> OrchestratorConfig:
    """Validate a decoded TOML document; every error names the source and the key path."""
    try:
        raw = msgspec.convert(data, _ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    h = raw.hysteresis
    try:
        hysteresis = HysteresisConfig(
            window_updates=h.window_updates,
            enter_threshold=h.enter_threshold,
            commit_threshold=h.commit_threshold,
            min_lead_over_anchor=h.min_lead_over_anchor,
            decay_step=h.decay_step,
            allowed_regimes=None if h.allowed_regimes is None else tuple(h.allowed_regimes),
        )
    except ContractError as exc:
        raise ConfigError(f"{source}: [hysteresis] {exc}") from exc
    market = None
    if raw.market is not None:
        m = raw.market
        if m.symbols < 1 or m.ticks < 0:
            raise ConfigError(f"{source}: [market] needs symbols >= 1 and ticks >= 0")
        market = MarketConfig(symbols=m.symbols, ticks=m.ticks, seed=m.seed)
    state_path = raw.engine.hysteresis_state_path
    if state_path is not None:
        if not state_path:
            raise ConfigError(f"{source}: [engine] hysteresis_state_path must not be empty")
        if base_dir is not None and not Path(state_path).is_absolute():
            state_path = str(base_dir / state_path)
    return OrchestratorConfig(
        engine_mode=raw.engine.engine_mode,
        hysteresis_state_path=state_path,
        commit_clock=raw.engine.commit_clock,
        backend=raw.engine.backend,
        hysteresis=hysteresis,
        market=market,
        source=source,
    )


def load_config(path: str | Path) -> OrchestratorConfig:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path), path.resolve().parent)


def require_state_path(config: OrchestratorConfig, override: str | None = None) -> str:
    """Hysteresis mode cannot run without a state file (contract §6)."""
    if override is not None and not override:
        raise ConfigError(f"{config.source}: --state must not be empty")
    path = override or config.hysteresis_state_path
    if config.engine_mode == "hysteresis" and not path:
        raise ConfigError(
            f"{config.source}: [engine] hysteresis_state_path is required when "
            'engine_mode = "hysteresis" (or pass --state PATH)'
        )
    return path or ""
