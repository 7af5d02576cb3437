"""Orchestrator configuration, read from TOML with strict errors that say where.

Every error names the file, the line when it can be found, the section and key, and
what is allowed there (the keys of the section, the values of an enum). Relative
paths resolve against the config file's folder, so a config and its state file can
move together.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from crashkit.orchestrator.errors import ConfigError
from crashkit.orchestrator.store.compact import DEFAULT_POLICY, CompactPolicy
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, load_backend
from crashkit.orchestrator.validation import PathPart, explain, key_path
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
    symbols: Annotated[int, msgspec.Meta(ge=1)] = 4
    ticks: Annotated[int, msgspec.Meta(ge=0)] = 200
    seed: int = 7


class _CompactionSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a start of the reference backend compacts the state file (contract §8, D.38)."""

    enabled: bool = True
    ratio: Annotated[float, msgspec.Meta(gt=1.0)] = DEFAULT_POLICY.ratio
    min_lines: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_POLICY.min_lines


class _ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    engine: _EngineSection
    hysteresis: _HysteresisSection = _HysteresisSection()
    market: _MarketSection | None = None
    compaction: _CompactionSection | None = None


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
    #: the reference backend's startup compaction (None: never); the default policy
    #: unless a [compaction] section says otherwise
    compaction: CompactPolicy | None = DEFAULT_POLICY
    source: str = "<memory>"
    text: str | None = None  # the TOML as read, where error lines are looked up

    def error(self, parts: Sequence[PathPart], message: str) -> ConfigError:
        """An error about a key of this config, naming its file, line and section."""
        return _error(self.source, self.text, parts, message)


_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]")
_KEY = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


def toml_line(text: str, parts: Sequence[PathPart]) -> int | None:
    """The 1-based line of `[section]` (one part) or of `key =` inside it (two or more)."""
    names = [part for part in parts if isinstance(part, str)][:2]
    if not names:
        return None
    section, key = (None, names[0]) if len(names) == 1 else (names[0], names[1])
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            if len(names) == 1 and current == key:
                return number
            continue
        found = _KEY.match(line)
        if found and current == section and found.group(1).strip('"') == key:
            return number
    return None


def _error(source: str, text: str | None, parts: Sequence[PathPart], message: str) -> ConfigError:
    """`FILE:LINE: [section] key: message`, in the file's own TOML terms."""
    line = toml_line(text, parts) if text is not None else None
    where = source if line is None else f"{source}:{line}"
    if not parts:
        return ConfigError(f"{where}: {message}")
    if len(parts) == 1 and message.startswith("unknown key"):
        message = message.replace("unknown key", "unknown section or top-level key", 1)
        return ConfigError(f"{where}: {message.replace('allowed keys', 'allowed sections')}")
    section, rest = parts[0], parts[1:]
    return ConfigError(f"{where}: [{section}]{' ' + key_path(rest) if rest else ''}: {message}")


def _check_backend(spec: str, source: str, text: str | None) -> None:
    """A backend that cannot be loaded is the error to report, not what follows from it
    (a typo of the reference's module is not "another backend" that [compaction] misses)."""
    try:
        load_backend(spec)
    except ConfigError as exc:
        raise _error(source, text, ["engine", "backend"], str(exc)) from exc


def parse_config(
    data: dict[str, object],
    source: str = "<memory>",
    base_dir: Path | None = None,
    text: str | None = None,
) -> OrchestratorConfig:
    """Validate a decoded TOML document (`text`, if given, is where lines are looked up)."""
    try:
        raw = msgspec.convert(data, _ConfigFile, strict=True)
    except msgspec.ValidationError as exc:
        parts, message = explain(exc, data, _ConfigFile)
        if message.startswith("missing required key `engine`"):
            message = "missing the [engine] section (it holds hysteresis_state_path)"
        raise _error(source, text, parts, message) from exc
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
        message = str(exc)
        field = message.split(" ", 1)[0]
        where: list[PathPart] = ["hysteresis"]
        if field in _HysteresisSection.__struct_fields__:
            where.append(field)
            message = message[len(field) :].lstrip()
        raise _error(source, text, where, message) from exc
    market = None
    if raw.market is not None:
        m = raw.market
        market = MarketConfig(symbols=m.symbols, ticks=m.ticks, seed=m.seed)
    compaction: CompactPolicy | None = DEFAULT_POLICY
    if raw.compaction is not None:
        if raw.engine.backend != DEFAULT_BACKEND:
            _check_backend(raw.engine.backend, source, text)
            raise _error(
                source,
                text,
                ["compaction"],
                f"applies to the reference backend ({DEFAULT_BACKEND}) only; "
                f"backend {raw.engine.backend!r} compacts (or not) on its own",
            )
        c = raw.compaction
        compaction = CompactPolicy(c.ratio, c.min_lines) if c.enabled else None
    state_path = raw.engine.hysteresis_state_path
    if state_path is not None:
        if not state_path:
            raise _error(source, text, ["engine", "hysteresis_state_path"], "must not be empty")
        if base_dir is not None and not Path(state_path).is_absolute():
            state_path = str(base_dir / state_path)
    return OrchestratorConfig(
        engine_mode=raw.engine.engine_mode,
        hysteresis_state_path=state_path,
        commit_clock=raw.engine.commit_clock,
        backend=raw.engine.backend,
        hysteresis=hysteresis,
        market=market,
        compaction=compaction,
        source=source,
        text=text,
    )


def load_config(path: str | Path) -> OrchestratorConfig:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    try:
        decoded = text.decode("utf-8")
        data = tomllib.loads(decoded)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path), path.resolve().parent, decoded)


def require_state_path(config: OrchestratorConfig, override: str | None = None) -> str:
    """Hysteresis mode cannot run without a state file (contract §6)."""
    if override is not None and not override:
        raise ConfigError(f"{config.source}: --state must not be empty")
    path = override or config.hysteresis_state_path
    if config.engine_mode == "hysteresis" and not path:
        raise config.error(
            ["engine"],
            'hysteresis_state_path is required when engine_mode = "hysteresis" '
            "(or pass --state PATH)",
        )
    return path or ""
