"""Restore (read side, contract §4) as a pure function of the file's bytes.

Kept free of I/O so that `crashkit inspect`, every backend that stores lines,
the replay seeding and the harness oracles all judge bytes the same way. The bytes
come as chunks, judged a block of complete lines at a time: memory does not grow
with the file. Each block takes the C-level path (one decode of all its lines) when
that judges exactly as the per-line path would, and the per-line path otherwise.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress, islice

from crashkit.orchestrator.store.protocol import RestoreSummary
from crashkit.regime_engine.codec import (
    RecordError,
    StoreRecord,
    decode_lines_fast,
    decode_record,
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


#: How much of a state file restore holds at once: memory stays bounded by this (plus one
#: line, plus the winners), whatever the file's history. Also the size of each `read`.
CHUNK_BYTES = 1 << 20

_INVARIANT_FIELDS = operator.attrgetter("candidate_regime", "progress_current", "anchor_regime")
_TIMESTAMP = operator.attrgetter("engine_timestamp_ms")
_SYMBOL = operator.attrgetter("symbol")
_CANDIDATE = operator.attrgetter("candidate_regime")
#: Quote characters in a record line without a candidate and with a quote-free symbol:
#: 8 keys and the 4 string values (anchor, schema, schema_version, symbol).
_BASE_QUOTES = 24


def fast_records(block: bytes, lines: int) -> list[StoreRecord] | None:
    """Every line of the block decoded and checked in C-level calls, or None ("judge each
    line"). Judges exactly as `decode_record` line by line does when it returns records:

    - one record per line (no blank line: a record's index is its line);
    - no duplicate key: each valid line has at least its expected number of `"` and one
      more key adds two, so equal totals mean equal lines (`\\u` escapes can hide a
      quote, so a block with one takes the exact path);
    - the engine invariant, over the few distinct (candidate, progress, anchor) triples.
    """
    records = decode_lines_fast(block)
    if records is None or len(records) != lines:
        return None
    escaped = b"\\" in block  # one memchr; canonical lines of plain symbols have none
    if escaped and b"\\u" in block:
        return None
    for candidate, progress, anchor in set(map(_INVARIANT_FIELDS, records)):
        if (candidate is None) != (progress == 0) or candidate is anchor:
            return None
    candidates = list(map(_CANDIDATE, records)).count(None)
    expected = _BASE_QUOTES * lines + 2 * (lines - candidates)
    if escaped:  # a symbol may hold quotes (`\\"`): they count too
        expected += sum(symbol.count('"') for symbol in map(_SYMBOL, records))
    if block.count(b'"') != expected:
        return None
    return records


@dataclass(frozen=True, slots=True)
class LineDecoders:
    """How restore decodes a file's lines: a block at a time (`block`: every record of the
    block, or None to judge each line) and one line at a time (`line`, raising
    RecordError). `STRICT` is the contract's (C2.7) and what every backend here uses; the
    hook exists for the self-test's broken variants, which loosen one path to show that
    the kit catches it."""

    block: Callable[[bytes, int], list[StoreRecord] | None] = fast_records
    line: Callable[[bytes], StoreRecord] = decode_record


STRICT = LineDecoders()


class _Restore:
    """Restore's running state over a file's complete lines, fed a block at a time.

    Only the per-symbol winners and the counts are kept, so memory does not grow with
    the file. The selection rule: per symbol the highest timestamp at or before
    `max_ts` wins; a tie goes to the later line and is counted.
    """

    def __init__(self, max_ts: int | None, decoders: LineDecoders = STRICT) -> None:
        self.fast = decoders.block
        self.decode = decoders.line
        self.max_ts = max_ts
        self.winners: dict[str, tuple[int, StoreRecord]] = {}
        self.lines = 0
        self.valid = 0
        self.blank = 0
        self.ties = 0
        self.invalid: list[InvalidLine] = []
        self.newest = -1  # the highest timestamp selected so far: monotone blocks start there

    def feed(self, block: bytes) -> None:
        """Judge a block of complete lines (it ends with `\\n`)."""
        lines = block.count(b"\n")
        records = self.fast(block, lines)
        if records is None:
            self._judge_each_line(block)
        else:
            stamps = list(map(_TIMESTAMP, records))
            if (
                self.max_ts is None
                and stamps[0] >= self.newest
                and all(map(operator.le, stamps, islice(stamps, 1, None)))
            ):
                self._select_monotone(records, stamps)
            else:
                self._select_each(records, stamps)
            self.valid += lines
        self.lines += lines

    def _judge_each_line(self, block: bytes) -> None:
        first = self.lines + 1
        for number, line in enumerate(block.split(b"\n")[:-1], start=first):
            if not line.strip():
                self.blank += 1
                continue
            try:
                record = self.decode(line)
            except RecordError as exc:
                self.invalid.append(InvalidLine(number, exc.reason))
                continue
            self.valid += 1
            self._select_each([record], [record.engine_timestamp_ms], number)

    def _select_each(
        self, records: list[StoreRecord], stamps: list[int], first: int | None = None
    ) -> None:
        """The rule record by record, in file order (`first`: the first record's line)."""
        winners = self.winners
        limit = self.max_ts
        number = self.lines + 1 if first is None else first
        for record, ts in zip(records, stamps, strict=True):
            if limit is None or ts <= limit:
                best = winners.get(record.symbol)
                if best is None or ts > best[1].engine_timestamp_ms:
                    winners[record.symbol] = (number, record)
                elif ts == best[1].engine_timestamp_ms:
                    winners[record.symbol] = (number, record)  # later in the file wins
                    self.ties += 1
                if ts > self.newest:
                    self.newest = ts
            number += 1

    def _select_monotone(self, records: list[StoreRecord], stamps: list[int]) -> None:
        """The same rule, in C, for a block whose timestamps never go down and start at or
        after everything selected so far (one writer's output).

        Each symbol's last line in the block then holds its highest timestamp (and wins
        ties), and a record ties exactly when its symbol already appeared in its run of
        equal timestamps, so only runs longer than one line need a look; the first run
        also ties with a winner of an earlier block that has its timestamp.
        """
        symbols = list(map(_SYMBOL, records))
        n = len(symbols)
        last = dict(zip(symbols, range(n), strict=True))
        starts = [0, *compress(range(1, n), map(operator.ne, islice(stamps, 1, None), stamps)), n]
        if len(starts) < n + 1:  # some timestamp repeats
            for begin, end in itertools.pairwise(starts):
                if end - begin > 1:
                    self.ties += end - begin - len(set(symbols[begin:end]))
        winners = self.winners
        if stamps[0] == self.newest:
            for symbol in set(symbols[: starts[1]]):
                best = winners.get(symbol)
                if best is not None and best[1].engine_timestamp_ms == self.newest:
                    self.ties += 1
        offset = self.lines + 1
        for symbol, index in last.items():
            winners[symbol] = (offset + index, records[index])
        self.newest = stamps[-1]


def _blocks(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """Blocks of complete lines from chunks cut anywhere, with the bytes consumed so far;
    the last item is the torn tail (what follows the last `\\n`, maybe empty) with the total.
    """
    carry: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            carry.append(chunk)  # a line longer than a chunk: held until its end
            continue
        head = chunk if end == len(chunk) else chunk[:end]
        if carry:
            carry.append(head)
            head = b"".join(carry)
            carry = []
        yield head, total
        if end < len(chunk):
            carry.append(chunk[end:])
    yield b"".join(carry), total


def parse_state_stream(
    chunks: Iterable[bytes],
    path: str = "<bytes>",
    *,
    engine_schema: tuple[str, str] = ENGINE_SCHEMA,
    max_timestamp_ms: int | None = None,
    decoders: LineDecoders = STRICT,
) -> RestoreReport:
    """Judge a state file read as chunks (cut anywhere). Never raises for bad content: the
    outcome says it. Memory is bounded by a chunk, the longest line and the winners.

    `max_timestamp_ms` restricts selection to records at or before T (mid-stream
    replay); validity and fatality are still judged on the whole file. `decoders`: the
    contract's strict decoding (a broken variant's hook, `LineDecoders`).
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
            file_bytes=sum(map(len, chunks)),
        )
    state = _Restore(max_timestamp_ms, decoders)
    torn, total = b"", 0
    for block, consumed in _blocks(chunks):
        total = consumed
        if block.endswith(b"\n"):
            state.feed(block)
        else:
            torn = block
    report = RestoreReport(
        path=path,
        outcome="ok" if state.valid else "bootstrap",
        lines=state.lines,
        valid=state.valid,
        blank=state.blank,
        invalid=tuple(state.invalid),
        torn_tail_bytes=len(torn),
        ties=state.ties,
        file_bytes=total,
        winners=state.winners,
    )
    if state.invalid and state.valid == 0:
        first = state.invalid[0]
        return replace(
            report,
            outcome="fatal",
            reason=(
                f"{len(state.invalid)} invalid line(s) and no valid record (first: line "
                f"{first.line}: {first.reason}); refusing to reset hysteresis state"
            ),
        )
    return report


def parse_state_bytes(
    data: bytes,
    path: str = "<bytes>",
    *,
    engine_schema: tuple[str, str] = ENGINE_SCHEMA,
    max_timestamp_ms: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    decoders: LineDecoders = STRICT,
) -> RestoreReport:
    """`parse_state_stream` of bytes already in memory, cut into `chunk_bytes` pieces."""
    view = memoryview(data)
    chunks = (bytes(view[i : i + chunk_bytes]) for i in range(0, len(data), chunk_bytes))
    return parse_state_stream(
        chunks,
        path,
        engine_schema=engine_schema,
        max_timestamp_ms=max_timestamp_ms,
        decoders=decoders,
    )


def store_from_report(report: RestoreReport, config: HysteresisConfig) -> HysteresisStore:
    """The restored store: one state per winning record, mapped with the active config."""
    return HysteresisStore(
        states={
            symbol: record_to_state(record, config)
            for symbol, (_, record) in report.winners.items()
        }
    )
