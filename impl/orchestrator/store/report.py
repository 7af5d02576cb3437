"""Restore (read side, contract §4) as a pure function of the file's bytes.

Kept free of I/O so that `crashkit inspect`, every backend that stores lines,
the replay seeding and the harness oracles all judge bytes the same way.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import compress, islice

from crashkit.orchestrator.store.protocol import RestoreSummary
from crashkit.regime_engine.codec import (
    RecordError,
    StoreRecord,
    decode_lines_fast,
    decode_record,
    encode_lines,
    record_fields,
    record_to_state,
)
from crashkit.regime_engine.contracts import (
    HYSTERESIS_STATE_SCHEMA,
    HYSTERESIS_STATE_SCHEMA_VERSION,
    HysteresisConfig,
    HysteresisStore,
)

ENGINE_SCHEMA: tuple[str, str] = (HYSTERESIS_STATE_SCHEMA, HYSTERESIS_STATE_SCHEMA_VERSION)


@dataclass(frozen=True, slots=True)
class InvalidLine:
    line: int  # 1-based
    reason: str


@dataclass(frozen=True, slots=True)
class RestoreReport(RestoreSummary):
    """What restore of a line file saw: the summary plus the line-level counts
    (contract C4.12). `winners` maps symbol -> (1-based line, record)."""

    lines: int = 0
    valid: int = 0
    blank: int = 0
    invalid: tuple[InvalidLine, ...] = ()
    torn_tail_bytes: int = 0
    ties: int = 0
    file_bytes: int = 0
    winners: Mapping[str, tuple[int, StoreRecord]] = field(default_factory=dict)

    def notes(self) -> tuple[str, ...]:
        """What restore passed over: each invalid line with its reason, the torn tail."""
        out = [f"line {bad.line} skipped: {bad.reason}" for bad in self.invalid]
        if self.torn_tail_bytes:
            out.append(
                f"torn tail of {self.torn_tail_bytes} byte(s) after the last complete line "
                "ignored (cut before the next append)"
            )
        return tuple(out)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted(self.winners))

    @property
    def committed_bytes(self) -> int:
        """Length of the file up to its last `\\n`: where an append must start."""
        return self.file_bytes - self.torn_tail_bytes

    def to_json(self) -> dict[str, object]:
        """The stable `crashkit inspect --json` shape."""
        symbols: dict[str, object] = {}
        for symbol in sorted(self.winners):
            line, record = self.winners[symbol]
            fields = record_fields(record)
            symbols[symbol] = {
                "symbol": fields["symbol"],
                "engine_timestamp_ms": fields["engine_timestamp_ms"],
                "anchor_regime": fields["anchor_regime"],
                "candidate_regime": fields["candidate_regime"],
                "progress_current": fields["progress_current"],
                "last_commit_timestamp_ms": fields["last_commit_timestamp_ms"],
                "line": line,
            }
        return {
            "path": self.path,
            "outcome": self.outcome,
            "reason": self.reason,
            "lines": self.lines,
            "valid": self.valid,
            "blank": self.blank,
            "torn_tail_bytes": self.torn_tail_bytes,
            "ties": self.ties,
            "invalid": [{"line": bad.line, "reason": bad.reason} for bad in self.invalid],
            "symbols": symbols,
        }


def _select(
    winners: dict[str, tuple[int, StoreRecord]],
    number: int,
    record: StoreRecord,
    max_ts: int | None,
) -> int:
    """Apply the selection rule for one valid record; returns 1 on a timestamp tie."""
    ts = record.engine_timestamp_ms
    if max_ts is not None and ts > max_ts:
        return 0
    best = winners.get(record.symbol)
    if best is None:
        winners[record.symbol] = (number, record)
        return 0
    best_ts = best[1].engine_timestamp_ms
    if ts > best_ts:
        winners[record.symbol] = (number, record)
        return 0
    if ts == best_ts:
        winners[record.symbol] = (number, record)  # later in the file wins
        return 1
    return 0


_INVARIANT_FIELDS = operator.attrgetter("candidate_regime", "progress_current", "anchor_regime")
_TIMESTAMP = operator.attrgetter("engine_timestamp_ms")
_SYMBOL = operator.attrgetter("symbol")


def _select_loop(
    symbols: list[str], stamps: list[int], max_ts: int | None
) -> tuple[dict[str, int], int]:
    """The selection rule in file order: highest timestamp wins, a tie goes to the later line."""
    best_ts: dict[str, int] = {}
    best_line: dict[str, int] = {}
    ties = 0
    limit = max_ts if max_ts is not None else float("inf")
    get = best_ts.get
    for number, (symbol, ts) in enumerate(zip(symbols, stamps, strict=True), start=1):
        if ts > limit:
            continue
        best = get(symbol)
        if best is None or ts > best:
            best_ts[symbol] = ts
            best_line[symbol] = number
        elif ts == best:
            best_line[symbol] = number
            ties += 1
    return best_line, ties


def _select_monotone(symbols: list[str], stamps: list[int]) -> tuple[dict[str, int], int]:
    """The same rule, in C, for files whose timestamps never go down (one writer's output).

    Each symbol's last line then holds its highest timestamp (and wins ties), and
    a record ties exactly when its symbol already appeared in its run of equal
    timestamps, so only runs longer than one line need a look.
    """
    n = len(symbols)
    best_line = dict(zip(symbols, range(1, n + 1), strict=True))
    starts = [0, *compress(range(1, n), map(operator.ne, islice(stamps, 1, None), stamps)), n]
    ties = 0
    if len(starts) < n + 1:  # some timestamp repeats
        for begin, end in itertools.pairwise(starts):
            if end - begin > 1:
                ties += end - begin - len(set(symbols[begin:end]))
    return best_line, ties


def _fast_select(
    body: bytes, max_ts: int | None
) -> tuple[dict[str, tuple[int, StoreRecord]], int, int] | None:
    """Restore of a clean file in one C decode plus one tight loop; None means "take the slow path".

    Taken only when the body is exactly the canonical encoding of its records
    (re-encoded in C and compared): that proves there is no blank line (record i
    is line i+1) and no duplicated key, which msgspec alone would not reject.
    Anything else (whitespace, other key order, escapes) gets the exact per-line path.
    Returns (winners, ties, lines).
    """
    if not body:
        return None
    records = decode_lines_fast(body)
    if records is None or encode_lines(records) != body:
        return None
    # The engine invariant over the few distinct (candidate, progress, anchor)
    # triples, collected in C, rather than per record in Python.
    for candidate, progress, anchor in set(map(_INVARIANT_FIELDS, records)):
        if (candidate is None) != (progress == 0) or candidate is anchor:
            return None
    symbols = list(map(_SYMBOL, records))
    stamps = list(map(_TIMESTAMP, records))
    if max_ts is None and all(map(operator.le, stamps, islice(stamps, 1, None))):
        best_line, ties = _select_monotone(symbols, stamps)
    else:
        best_line, ties = _select_loop(symbols, stamps, max_ts)
    winners = {symbol: (line, records[line - 1]) for symbol, line in best_line.items()}
    return winners, ties, len(records)


def parse_state_bytes(
    data: bytes,
    path: str = "<bytes>",
    *,
    engine_schema: tuple[str, str] = ENGINE_SCHEMA,
    max_timestamp_ms: int | None = None,
) -> RestoreReport:
    """Judge a state file's bytes. Never raises for bad content: the outcome says it.

    `max_timestamp_ms` restricts selection to records at or before T (mid-stream
    replay); validity and fatality are still judged on the whole file.
    """
    if engine_schema != ENGINE_SCHEMA:
        return RestoreReport(
            path=path,
            outcome="fatal",
            reason=(
                f"engine expects HysteresisState schema {engine_schema[0]!r} version "
                f"{engine_schema[1]!r}; this store holds {ENGINE_SCHEMA[0]!r} version "
                f"{ENGINE_SCHEMA[1]!r} (no silent upgrade or downgrade)"
            ),
            file_bytes=len(data),
        )
    end = data.rfind(b"\n") + 1
    torn = len(data) - end
    body = data[:end]
    fast = _fast_select(body, max_timestamp_ms)
    invalid: list[InvalidLine] = []
    if fast is not None:
        winners, ties, n_lines = fast
        valid, blank = n_lines, 0
    else:
        n_lines = body.count(b"\n")
        winners, blank, ties, valid = {}, 0, 0, 0
        for number, line in enumerate(body.split(b"\n")[:-1], start=1):
            if not line.strip():
                blank += 1
                continue
            try:
                record = decode_record(line)
            except RecordError as exc:
                invalid.append(InvalidLine(number, exc.reason))
                continue
            valid += 1
            ties += _select(winners, number, record, max_timestamp_ms)

    report = RestoreReport(
        path=path,
        outcome="ok" if valid else "bootstrap",
        lines=n_lines,
        valid=valid,
        blank=blank,
        invalid=tuple(invalid),
        torn_tail_bytes=torn,
        ties=ties,
        file_bytes=len(data),
        winners=winners,
    )
    if invalid and valid == 0:
        first = invalid[0]
        return replace(
            report,
            outcome="fatal",
            reason=(
                f"{len(invalid)} invalid line(s) and no valid record (first: line {first.line}: "
                f"{first.reason}); refusing to reset hysteresis state"
            ),
        )
    return report


def store_from_report(report: RestoreReport, config: HysteresisConfig) -> HysteresisStore:
    """The restored store: one state per winning record, mapped with the active config."""
    return HysteresisStore(
        states={
            symbol: record_to_state(record, config)
            for symbol, (_, record) in report.winners.items()
        }
    )
