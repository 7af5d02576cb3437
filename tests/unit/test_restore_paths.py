"""The streamed restore judges exactly as the plain per-line reading of contract §4.

`parse_state_bytes` reads a file as chunks, a block of complete lines at a time, and
judges a block in C-level calls when it can (`fast_records`, `_select_monotone`). Here
it is compared with a per-line reference, written out in full below, on random and on
crafted files, at chunk sizes that cut lines, ties and runs of equal timestamps
anywhere. Every field of the report must be equal: the outcome and reason, the counts,
each invalid line with its reason, the torn tail and each symbol's winning line.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crashkit.orchestrator.store import report as restore
from crashkit.orchestrator.store.report import (
    InvalidLine,
    RestoreReport,
    parse_state_bytes,
)
from crashkit.regime_engine.codec import (
    RecordError,
    StoreRecord,
    decode_record,
    encode_record,
    record_fields,
)
from crashkit.regime_engine.contracts import ALL_REGIMES, Regime

CHUNKS = (1, 2, 7, 64, 301, 1 << 20)


def per_line(data: bytes, max_ts: int | None = None) -> RestoreReport:
    """The reference: every line on its own, in file order (what restore did before it
    streamed), with the selection rule of contract §4 written out."""
    end = data.rfind(b"\n") + 1
    winners: dict[str, tuple[int, StoreRecord]] = {}
    invalid: list[InvalidLine] = []
    blank = valid = ties = 0
    lines = data[:end].split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            record = decode_record(line)
        except RecordError as exc:
            invalid.append(InvalidLine(number, exc.reason))
            continue
        valid += 1
        ts = record.engine_timestamp_ms
        if max_ts is not None and ts > max_ts:
            continue
        best = winners.get(record.symbol)
        if best is None or ts > best[1].engine_timestamp_ms:
            winners[record.symbol] = (number, record)
        elif ts == best[1].engine_timestamp_ms:
            winners[record.symbol] = (number, record)
            ties += 1
    report = RestoreReport(
        path="<bytes>",
        outcome="ok" if valid else "bootstrap",
        lines=len(lines),
        valid=valid,
        blank=blank,
        invalid=tuple(invalid),
        torn_tail_bytes=len(data) - end,
        ties=ties,
        file_bytes=len(data),
        winners=winners,
    )
    if invalid and not valid:
        first = invalid[0]
        report = replace(
            report,
            outcome="fatal",
            reason=(
                f"{len(invalid)} invalid line(s) and no valid record (first: line "
                f"{first.line}: {first.reason}); refusing to reset hysteresis state"
            ),
        )
    return report


def assert_same(data: bytes, max_ts: int | None = None) -> None:
    want = per_line(data, max_ts)
    for chunk in CHUNKS:
        got = parse_state_bytes(data, max_timestamp_ms=max_ts, chunk_bytes=chunk)
        assert got == want, f"chunk_bytes={chunk}"


def fields(
    symbol: str = "SYM",
    ts: int = 100,
    anchor: Regime = Regime.CHOP_BALANCED,
    candidate: Regime | None = None,
    progress: int = 0,
) -> dict[str, object]:
    return {
        "anchor_regime": anchor.value,
        "candidate_regime": None if candidate is None else candidate.value,
        "engine_timestamp_ms": ts,
        "last_commit_timestamp_ms": None,
        "progress_current": progress,
        "schema": "hysteresis_store_record",
        "schema_version": "1",
        "symbol": symbol,
    }


def canonical(**kw: object) -> bytes:
    return (json.dumps(fields(**kw), sort_keys=True, separators=(",", ":")) + "\n").encode()  # type: ignore[arg-type]


# -- random files ----------------------------------------------------------------------------

SYMBOLS = st.sampled_from(["A", "B", "SYM000", 'q"t', "b\\s", "é", "\x01", "A B"])


@st.composite
def record_lines(draw: st.DrawFn) -> bytes:
    """A record line in one of the ways a file may hold one: canonical, other key order,
    spaces, raw UTF-8, a `\\u` escape, a duplicated key, a key missing or added, and with
    field values that may break the engine invariant."""
    candidate = draw(st.none() | st.sampled_from(ALL_REGIMES))
    data = fields(
        symbol=draw(SYMBOLS),
        ts=draw(st.integers(0, 4)),
        anchor=draw(st.sampled_from(ALL_REGIMES)),
        candidate=candidate,
        progress=draw(st.integers(0, 2)),
    )
    form = draw(
        st.sampled_from(
            [
                "canonical",
                "canonical",
                "canonical",
                "reordered",
                "spaced",
                "raw",
                "escaped",
                "duplicate",
                "missing",
                "extra",
            ]
        )
    )
    if form == "missing":
        data.pop(draw(st.sampled_from(sorted(data))))
    if form == "extra":
        data["extra"] = 1
    if form == "reordered":
        text = json.dumps(dict(reversed(list(data.items()))), separators=(",", ":"))
    elif form == "spaced":
        text = json.dumps(data, sort_keys=True)
    elif form == "raw":
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    elif form == "escaped":
        text = json.dumps(data, sort_keys=True, separators=(",", ":")).replace(
            '"symbol"', '"\\u0073ymbol"'
        )
    elif form == "duplicate":
        key = draw(st.sampled_from(sorted(data)))
        other = draw(st.sampled_from([None, 0, "CHOP_BALANCED", "x"]))
        body = json.dumps(data, sort_keys=True, separators=(",", ":"))
        text = body[:-1] + "," + json.dumps(key) + ":" + json.dumps(other) + "}"
    else:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


OTHER_LINES = st.sampled_from(
    [
        b"\n",
        b"   \n",
        b"\t\r\n",
        b"\x0c\n",
        b"garbage\n",
        b"[1]\n",
        b"{}\n",
        b"\xff\xfe\n",
        b"null\n",
    ]
)


@settings(max_examples=300)
@given(
    lines=st.lists(record_lines() | OTHER_LINES, max_size=30),
    tail=st.sampled_from([b"", b'{"anch', b"x", b"\xff"]),
    max_ts=st.none() | st.integers(0, 4),
)
def test_random_files_judge_as_line_by_line(
    lines: list[bytes], tail: bytes, max_ts: int | None
) -> None:
    assert_same(b"".join(lines) + tail, max_ts)


@settings(max_examples=200)
@given(
    ticks=st.lists(
        st.lists(st.sampled_from(["A", "B", "C", 'q"t']), min_size=1, max_size=4), max_size=20
    ),
    step=st.integers(0, 2),
)
def test_writer_shaped_files_judge_as_line_by_line(ticks: list[list[str]], step: int) -> None:
    """One writer's output: timestamps never go down, a symbol may repeat in a tick (a
    tie): the C-level selection, with runs cut by chunks anywhere."""
    data = b"".join(
        canonical(symbol=symbol, ts=100 + i * step)
        for i, tick in enumerate(ticks)
        for symbol in tick
    )
    assert_same(data)


# -- crafted files ---------------------------------------------------------------------------


def test_a_duplicate_key_cannot_hide_behind_a_missing_candidate() -> None:
    """`"candidate_regime"` given twice (a value, then null): the extra key's quotes must
    not be balanced by the candidate the last value removed."""
    twice = (
        b'{"anchor_regime":"CHOP_BALANCED","candidate_regime":"TREND_BUILD_UP",'
        b'"candidate_regime":null,"engine_timestamp_ms":5,"last_commit_timestamp_ms":null,'
        b'"progress_current":0,"schema":"hysteresis_store_record","schema_version":"1",'
        b'"symbol":"A"}\n'
    )
    data = canonical(symbol="B", ts=1, candidate=Regime.SQUEEZE_UP, progress=1) + twice
    assert_same(data)
    assert per_line(data).invalid[0].reason.startswith("duplicate_key")


def test_an_escaped_quote_in_one_line_cannot_pay_for_a_duplicate_key_in_another() -> None:
    quote_free_but_escaped = canonical(symbol='"').replace(b'"\\""', b'"\\u0022"')
    duplicate = canonical(symbol="A").replace(
        b',"symbol"', b',"schema":"hysteresis_store_record","symbol"'
    )
    assert_same(quote_free_but_escaped + duplicate)
    assert [bad.line for bad in per_line(quote_free_but_escaped + duplicate).invalid] == [2]


def test_a_tie_across_a_chunk_boundary_is_counted_once() -> None:
    first, second = (
        canonical(symbol="A", ts=7),
        canonical(symbol="A", ts=7, anchor=Regime.SQUEEZE_UP),
    )
    data = canonical(symbol="B", ts=7) + first + second
    for cut in range(1, len(data)):
        got = parse_state_bytes(data, chunk_bytes=cut)
        assert (got.ties, got.winners["A"][0]) == (1, 3), cut


def test_a_timestamp_going_back_in_a_later_block_is_not_taken_as_the_newest() -> None:
    data = canonical(symbol="A", ts=9) + canonical(symbol="A", ts=3) + canonical(symbol="B", ts=9)
    assert_same(data)
    assert parse_state_bytes(data, chunk_bytes=1).winners["A"][0] == 1


def test_a_line_longer_than_a_chunk_is_judged_whole() -> None:
    long_symbol = "S" * 5000
    data = canonical(symbol=long_symbol, ts=1) + b"x" * 3000 + b"\n" + canonical(symbol="B")
    for chunk in (16, 1000, 4096):
        got = parse_state_bytes(data, chunk_bytes=chunk)
        assert got.winners[long_symbol][0] == 1 and [b.line for b in got.invalid] == [2]


def test_canonical_writer_output_takes_the_c_level_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only equal but fast: a clean file never reaches the per-line path."""

    def per_line_path(self: object, block: bytes) -> None:
        raise AssertionError(f"per-line path taken for {block[:60]!r}")

    monkeypatch.setattr(restore._Restore, "_judge_each_line", per_line_path)
    data = b"".join(
        canonical(symbol=f"SYM{i % 5}", ts=100 + i // 5, candidate=Regime.SQUEEZE_UP, progress=1)
        for i in range(2000)
    )
    report = parse_state_bytes(data, chunk_bytes=4096)
    assert report.valid == 2000 and len(report.winners) == 5
    encoded = encode_record(decode_record(canonical(symbol="A")[:-1]))
    assert encoded == canonical(symbol="A")  # the golden form the writer produces
    assert record_fields(decode_record(encoded[:-1]))["symbol"] == "A"
