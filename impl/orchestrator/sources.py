"""Where snapshots come from: a recorded JSONL file or the seeded synthetic market.

A snapshot line is one JSON object: `symbol`, `engine_timestamp_ms` and the
seven features of `crashkit.regime_engine.contracts.FEATURE_NAMES`, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import IO

import msgspec

from crashkit.orchestrator.errors import ConfigError
from crashkit.regime_engine.contracts import FEATURE_NAMES, ContractError, RegimeInputSnapshot


class _SnapshotLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    symbol: str
    engine_timestamp_ms: int
    return_window: float
    volatility_z: float
    range_expansion: float
    oi_slope: float
    funding_z: float
    cvd_slope: float
    liquidation_intensity: float


_DECODER = msgspec.json.Decoder(_SnapshotLine)


def snapshot_to_dict(snapshot: RegimeInputSnapshot) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": snapshot.symbol,
        "engine_timestamp_ms": snapshot.engine_timestamp_ms,
    }
    for name in FEATURE_NAMES:
        out[name] = getattr(snapshot, name)
    return out


def encode_snapshot(snapshot: RegimeInputSnapshot) -> bytes:
    return (json.dumps(snapshot_to_dict(snapshot), separators=(",", ":")) + "\n").encode()


def decode_snapshot(line: bytes, where: str = "<snapshot>") -> RegimeInputSnapshot:
    try:
        raw = _DECODER.decode(line)
        return RegimeInputSnapshot(**{f: getattr(raw, f) for f in raw.__struct_fields__})
    except (msgspec.DecodeError, ContractError) as exc:
        raise ConfigError(f"{where}: not a valid snapshot: {exc}") from exc


def read_snapshots(path: str) -> Iterator[RegimeInputSnapshot]:
    """Stream snapshots from a JSONL file; blank lines are skipped; errors name file:line.

    The file is opened here, so a missing input is an error before anything starts."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read snapshots: {exc.strerror}") from exc
    return _decode_lines(handle, path)


def _decode_lines(handle: IO[bytes], path: str) -> Iterator[RegimeInputSnapshot]:
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield decode_snapshot(line, f"{path}:{number}")


def ticks(snapshots: Iterable[RegimeInputSnapshot]) -> Iterator[list[RegimeInputSnapshot]]:
    """A tick is a run of consecutive snapshots sharing one engine timestamp."""
    for _, group in groupby(snapshots, key=lambda s: s.engine_timestamp_ms):
        yield list(group)
