"""Every row of the restore table (contract §4), selection and the report, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crashkit.orchestrator.errors import RestoreFatal
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.report import fast_records, parse_state_bytes
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import HysteresisConfig, Regime
from tests.conftest import make_state

A1 = encode_state(make_state("A", 100, Regime.CHOP_BALANCED))
A2 = encode_state(make_state("A", 200, Regime.SQUEEZE_UP, Regime.SQUEEZE_DOWN, 1))
B1 = encode_state(make_state("B", 150, Regime.TREND_BUILD_UP))


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "state.jsonl"
    path.write_bytes(data)
    return str(path)


def test_missing_file_is_bootstrap(tmp_path: Path) -> None:
    report = restore_report(str(tmp_path / "nope.jsonl"))
    assert report.outcome == "bootstrap" and report.reason is None and report.lines == 0


def test_missing_folder_is_bootstrap(tmp_path: Path) -> None:
    assert restore_report(str(tmp_path / "a" / "b" / "s.jsonl")).outcome == "bootstrap"


def test_directory_is_fatal(tmp_path: Path) -> None:
    report = restore_report(str(tmp_path))
    assert report.outcome == "fatal"
    assert "a directory" in (report.reason or "")


def test_fifo_is_fatal_and_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    report = restore_report(str(fifo))
    assert report.outcome == "fatal" and "a FIFO" in (report.reason or "")


def test_device_is_fatal() -> None:
    report = restore_report("/dev/zero")
    assert report.outcome == "fatal" and "character device" in (report.reason or "")


def test_unreadable_file_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, A1)

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    report = restore_report(path)
    assert report.outcome == "fatal" and "Permission denied" in (report.reason or "")


def test_read_error_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, A1)

    def eio(*args: object) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "read", eio)
    report = restore_report(path)
    assert report.outcome == "fatal" and "errno 5" in (report.reason or "")


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    # lines: "", A1, "   ", "\t", B1, "\r"
    report = restore_report(write(tmp_path, b"\n" + A1 + b"   \n\t\n" + B1 + b"\r\n"))
    assert report.outcome == "ok"
    assert (report.lines, report.valid, report.blank, report.invalid) == (6, 2, 4, ())
    assert report.winners["B"][0] == 5


@pytest.mark.parametrize("tail", [A2[:-1], A2[:10], b"{", b"garbage"])
def test_torn_tail_is_ignored_even_if_it_parses(tmp_path: Path, tail: bytes) -> None:
    report = restore_report(write(tmp_path, A1 + tail))
    assert report.outcome == "ok"
    assert report.torn_tail_bytes == len(tail)
    assert report.winners["A"][1].engine_timestamp_ms == 100


def test_invalid_lines_ignored_and_reported_with_line_numbers(tmp_path: Path) -> None:
    data = A1 + b"not json\n" + B1 + b'{"x":1}\n' + b"\xff\n"
    report = restore_report(write(tmp_path, data))
    assert report.outcome == "ok"
    assert [(bad.line, bad.reason.split(":")[0]) for bad in report.invalid] == [
        (2, "not_json"),
        (4, "schema"),
        (5, "not_utf8"),
    ]
    assert sorted(report.winners) == ["A", "B"]


def test_only_invalid_lines_is_fatal(tmp_path: Path) -> None:
    report = restore_report(write(tmp_path, b"garbage\n\n[1]\n"))
    assert report.outcome == "fatal"
    assert "no valid record" in (report.reason or "") and "line 1" in (report.reason or "")


def test_invalid_lines_plus_torn_tail_only_is_fatal(tmp_path: Path) -> None:
    assert restore_report(write(tmp_path, b"garbage\n" + A1[:-1])).outcome == "fatal"


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", A1[:-1], b"\n" + A1[:20]])
def test_no_complete_line_is_bootstrap(tmp_path: Path, data: bytes) -> None:
    report = restore_report(write(tmp_path, data))
    assert report.outcome == "bootstrap" and not report.winners


def test_engine_schema_mismatch_is_fatal() -> None:
    report = parse_state_bytes(A1, engine_schema=("hysteresis_state", "2"))
    assert report.outcome == "fatal" and "version '2'" in (report.reason or "")


def test_selection_highest_timestamp_not_file_order() -> None:
    report = parse_state_bytes(A2 + A1 + B1)
    assert report.winners["A"][1].engine_timestamp_ms == 200
    assert report.winners["A"][0] == 1


def test_tie_goes_to_the_later_line_and_is_counted() -> None:
    first = encode_state(make_state("A", 300, Regime.CHOP_BALANCED))
    second = encode_state(make_state("A", 300, Regime.TREND_EXHAUSTION))
    report = parse_state_bytes(first + B1 + second)
    assert report.winners["A"][1].anchor_regime == Regime.TREND_EXHAUSTION
    assert report.winners["A"][0] == 3
    assert report.ties == 1


def test_fast_and_slow_paths_agree() -> None:
    clean = A1 + A2 + B1 + A1
    with_blank = A1 + A2 + b"\n" + B1 + A1
    fast, slow = parse_state_bytes(clean), parse_state_bytes(with_blank)
    assert {s: r for s, (_, r) in fast.winners.items()} == {
        s: r for s, (_, r) in slow.winners.items()
    }
    assert fast.ties == slow.ties == 0


def test_max_timestamp_limits_selection_only() -> None:
    report = parse_state_bytes(A1 + A2 + B1, max_timestamp_ms=150)
    assert report.winners["A"][1].engine_timestamp_ms == 100
    assert report.winners["B"][1].engine_timestamp_ms == 150
    assert report.valid == 3


def test_report_json_shape(tmp_path: Path) -> None:
    report = restore_report(write(tmp_path, A1 + b"bad\n" + A2 + b"{"))
    assert report.to_json() == {
        "path": report.path,
        "outcome": "ok",
        "reason": None,
        "lines": 3,
        "valid": 2,
        "blank": 0,
        "torn_tail_bytes": 1,
        "ties": 0,
        "invalid": [{"line": 2, "reason": report.invalid[0].reason}],
        "symbols": {
            "A": {
                "symbol": "A",
                "engine_timestamp_ms": 200,
                "anchor_regime": "SQUEEZE_UP",
                "candidate_regime": "SQUEEZE_DOWN",
                "progress_current": 1,
                "last_commit_timestamp_ms": None,
                "line": 3,
            }
        },
    }


def test_restore_never_writes(tmp_path: Path) -> None:
    path = write(tmp_path, A1 + b"bad\n" + A2[:-3])
    before = (Path(path).read_bytes(), os.stat(path).st_mtime_ns, sorted(os.listdir(tmp_path)))
    restore_report(path)
    opened = open_jsonl_store(path, HysteresisConfig())
    opened.backend.close()
    after = (Path(path).read_bytes(), os.stat(path).st_mtime_ns, sorted(os.listdir(tmp_path)))
    assert before == after


def test_open_refuses_fatal_file_naming_path_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, b"junk\n")
    with pytest.raises(RestoreFatal) as info:
        open_jsonl_store(path, HysteresisConfig())
    assert info.value.path == path and "no valid record" in info.value.reason
    assert Path(path).read_bytes() == b"junk\n"


def test_open_restores_states_with_active_config(tmp_path: Path) -> None:
    opened = open_jsonl_store(write(tmp_path, A1 + A2 + B1), HysteresisConfig(window_updates=5))
    opened.backend.close()
    assert (
        opened.store.states["A"].persisted_fields()
        == make_state("A", 200, Regime.SQUEEZE_UP, Regime.SQUEEZE_DOWN, 1).persisted_fields()
    )
    assert {s.progress_required for s in opened.store.states.values()} == {5}


# -- C2.4 through restore: a value of the wrong JSON type, on each decoding path ---------------

#: (the record's canonical text, the same record with one value of the wrong JSON type)
WRONG_TYPES = {
    "true for an integer": (b'"progress_current":1', b'"progress_current":true'),
    "false for an integer": (b'"engine_timestamp_ms":200', b'"engine_timestamp_ms":false'),
    "the number 1 for a string": (b'"schema_version":"1"', b'"schema_version":1'),
    "a number for a regime": (b'"anchor_regime":"SQUEEZE_UP"', b'"anchor_regime":1'),
    "null for an integer": (b'"progress_current":1', b'"progress_current":null'),
}


@pytest.mark.parametrize("wrong", WRONG_TYPES, ids=list(WRONG_TYPES))
@pytest.mark.parametrize("blank", [False, True], ids=["clean-block", "after-a-blank-line"])
def test_a_wrong_json_type_is_skipped_on_every_decoding_path(wrong: str, blank: bool) -> None:
    """A2 (A's newest line) with one value of the wrong type is invalid (C2.7): restore
    reports it and selects A1. In a clean block the block decoder sees it first and hands
    the block to the per-line decoder; after a blank line the block goes straight there.
    Both paths refuse it, whatever the chunking."""
    old, new = WRONG_TYPES[wrong]
    assert old in A2
    data = (b"\n" if blank else b"") + A1 + A2.replace(old, new) + B1
    line = 3 if blank else 2
    for chunk_bytes in (len(data), 7):
        report = parse_state_bytes(data, chunk_bytes=chunk_bytes)
        assert report.outcome == "ok" and report.valid == 2
        assert [(bad.line, bad.reason.split(":")[0]) for bad in report.invalid] == [
            (line, "schema")
        ]
        assert report.winners["A"][1].engine_timestamp_ms == 100


def test_a_wrong_json_type_takes_a_block_off_the_fast_path() -> None:
    """The block decoder refuses the whole block rather than read the line loosely."""
    good = A1 + B1
    assert fast_records(good, 2) is not None
    for old, new in WRONG_TYPES.values():
        assert fast_records(A1 + A2.replace(old, new), 2) is None


def test_a_file_of_only_wrong_types_is_fatal(tmp_path: Path) -> None:
    """C4.7: wrong types make lines invalid, and only invalid lines refuse the start."""
    path = write(tmp_path, A2.replace(*WRONG_TYPES["true for an integer"]))
    with pytest.raises(RestoreFatal, match="1 invalid line"):
        open_jsonl_store(path, HysteresisConfig())
