"""Contract rules that had no test: C1.5, C1.6, C6.11, D.21, D.23 (config side), D.30.

Each test states the rule it pins; see docs/contract.md, section 11.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import msgspec
import pytest

from crashkit.orchestrator import events as ev
from crashkit.orchestrator.config import parse_config, require_state_path
from crashkit.orchestrator.errors import ConfigError, HaltedError, RestoreFatal, StartupRefused
from crashkit.orchestrator.events import MemorySink
from crashkit.orchestrator.replay import full_replay
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.protocol import OpenedStore
from crashkit.orchestrator.store.report import parse_state_bytes
from crashkit.regime_engine.codec import decode_record, encode_record, encode_state
from crashkit.regime_engine.contracts import (
    ALL_REGIMES,
    HysteresisConfig,
    HysteresisState,
    Regime,
)
from crashkit.regime_engine.synthetic import generate
from tests.conftest import decisions, make_state

CONFIG = HysteresisConfig()
SNAPSHOTS = list(generate(3, 40, seed=11))
GROUPS = list(ticks(SNAPSHOTS))


def reference() -> dict[str, tuple[object, ...]]:
    sink = MemorySink()
    full_replay(CONFIG, SNAPSHOTS, sink, clock=engine_commit_clock)
    return decisions(sink.events)


def runtime(path: Path, sink: MemorySink, factory: object = open_jsonl_store) -> HysteresisRuntime:
    return HysteresisRuntime(
        config=CONFIG,
        state_path=str(path),
        sink=sink,
        backend_factory=factory,  # type: ignore[arg-type]
        clock=engine_commit_clock,
    )


# --- C1.6 ------------------------------------------------------------------


def test_regime_has_exactly_the_nine_values_in_canonical_order() -> None:
    expected = [
        "CHOP_BALANCED",
        "CHOP_STOPHUNT",
        "LIQUIDATION_UP",
        "LIQUIDATION_DOWN",
        "SQUEEZE_UP",
        "SQUEEZE_DOWN",
        "TREND_BUILD_UP",
        "TREND_BUILD_DOWN",
        "TREND_EXHAUSTION",
    ]
    assert [r.value for r in Regime] == expected
    assert [r.name for r in Regime] == expected  # written as its name (C2.3)
    assert [r.value for r in ALL_REGIMES] == expected
    assert [r.value for r in CONFIG.allowed] == expected  # the engine's tie-break order


# --- C1.5 ------------------------------------------------------------------


def _with_last_commit(data: bytes, value: Callable[[int], int | None]) -> bytes:
    """The same records, line for line, with only last_commit_timestamp_ms rewritten."""
    out = []
    for number, line in enumerate(data.splitlines(keepends=True)):
        record = decode_record(line)
        out.append(
            encode_record(msgspec.structs.replace(record, last_commit_timestamp_ms=value(number)))
        )
    return b"".join(out)


LAST_COMMIT_VARIANTS: dict[str, Callable[[int], int | None]] = {
    "all null": lambda n: None,
    "falling": lambda n: 10**15 - n,  # later lines carry smaller commit times
    "far future": lambda n: 2**62 + n,  # above every engine timestamp of the input
    "zero": lambda n: 0,
}


def _live_file(path: Path, upto_tick: int) -> bytes:
    rt = runtime(path, MemorySink())
    rt.start()
    for group in GROUPS[:upto_tick]:
        rt.tick(group)
    rt.close()
    return path.read_bytes()


@pytest.mark.parametrize("variant", sorted(LAST_COMMIT_VARIANTS))
def test_last_commit_timestamp_never_changes_selection(variant: str) -> None:
    # Out of timestamp order, with a tie (A@200 twice) and a blank line (slow path) or not.
    records = [
        make_state("A", 200, Regime.SQUEEZE_UP),
        make_state("B", 300, Regime.TREND_BUILD_UP),
        make_state("A", 100, Regime.CHOP_STOPHUNT),
        make_state("A", 200, Regime.SQUEEZE_DOWN),
        make_state("B", 250, Regime.LIQUIDATION_UP),
    ]
    base = _with_last_commit(b"".join(encode_state(s) for s in records), lambda n: 1_000 * (n + 1))
    changed = _with_last_commit(base, LAST_COMMIT_VARIANTS[variant])
    assert changed != base
    for a, b in ((base, changed), (base + b"\n", changed + b"\n")):  # fast and slow path
        ra, rb = parse_state_bytes(a), parse_state_bytes(b)
        assert (rb.outcome, rb.valid, rb.ties) == (ra.outcome, ra.valid, ra.ties) == ("ok", 5, 1)
        lines_a = {s: line for s, (line, _) in ra.winners.items()}
        lines_b = {s: line for s, (line, _) in rb.winners.items()}
        assert lines_a == lines_b == {"A": 4, "B": 2}


@pytest.mark.parametrize("variant", sorted(LAST_COMMIT_VARIANTS))
def test_last_commit_timestamp_never_changes_the_continued_run(
    tmp_path: Path, variant: str
) -> None:
    original = _live_file(tmp_path / "original.jsonl", 17)
    changed_path = tmp_path / "changed.jsonl"
    changed_path.write_bytes(_with_last_commit(original, LAST_COMMIT_VARIANTS[variant]))
    assert changed_path.read_bytes() != original
    results = []
    for path in (tmp_path / "original.jsonl", changed_path):
        sink = MemorySink()
        rt = runtime(path, sink)
        report = rt.start()
        stats = rt.run(SNAPSHOTS)  # the recorded input from its start (resume rule)
        rt.close()
        assert not stats.halted_symbols and not stats.halted
        assert report.valid == 17 * 3
        results.append((decisions(sink.events), stats.decisions, stats.resume_skipped))
    assert results[0] == results[1]
    assert results[0][1] == 3 * (len(GROUPS) - 17)
    # and both continuations are the uninterrupted run's decisions
    expected = reference()
    assert results[0][0] == {k: v for k, v in expected.items() if k in results[0][0]}
    assert len(results[0][0]) == 3 + results[0][1]  # restored states + new decisions


def test_restored_last_commit_is_carried_not_interpreted(tmp_path: Path) -> None:
    """A restored commit time far in the future neither trips the guard nor stops decisions."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(_with_last_commit(_live_file(tmp_path / "o.jsonl", 5), lambda n: 2**62))
    sink = MemorySink()
    rt = runtime(path, sink)
    rt.start()
    stats = rt.run(SNAPSHOTS)
    rt.close()
    assert not stats.halted_symbols and stats.decisions == 3 * (len(GROUPS) - 5)
    restored = [e for e in sink.events if e.event_type == ev.STATE_RESTORED]
    assert [e.payload["state"]["last_commit_timestamp_ms"] for e in restored] == [2**62] * 3  # type: ignore[index]


# --- C6.11 -----------------------------------------------------------------


def test_tick_persisted_for_some_symbols_only_is_valid_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 6th tick's write reaches the disk for SYM000 only (plus a torn piece of SYM001)."""
    path = tmp_path / "s.jsonl"
    first = MemorySink()
    rt = runtime(path, first)
    rt.start()
    for group in GROUPS[:5]:
        rt.tick(group)
    real_write = os.write
    torn: list[bytes] = []

    def partial(fd: int, data: bytes) -> int:
        cut = data.index(b"\n") + 1 + 20  # one whole line and 20 bytes of the next
        torn.append(data)
        return real_write(fd, data[:cut])

    monkeypatch.setattr(os, "write", partial)
    rt.tick(GROUPS[5])
    monkeypatch.undo()
    rt.close()
    assert rt.stats.halted and len(torn) == 1 and torn[0].count(b"\n") == 3
    assert first.events[-1].event_type == ev.SCHEDULING_HALTED

    report = restore_report(str(path))
    assert (report.outcome, report.valid, report.torn_tail_bytes) == ("ok", 16, 20)
    restored_at = {s: rec.engine_timestamp_ms for s, (_, rec) in report.winners.items()}
    t4, t5 = GROUPS[4][0].engine_timestamp_ms, GROUPS[5][0].engine_timestamp_ms
    assert restored_at == {"SYM000": t5, "SYM001": t4, "SYM002": t4}

    second = MemorySink()
    rt = runtime(path, second)
    rt.start()
    stats = rt.run(SNAPSHOTS)
    rt.close()
    assert not stats.halted and not stats.halted_symbols
    assert stats.resume_skipped == 6 + 5 + 5
    # SYM000's unpublished state of the failed tick is announced on restart (C6.3), and
    # together the two processes published exactly the uninterrupted run's decisions.
    assert decisions(first.events + second.events) == reference()
    assert restore_report(str(path)).valid == 3 * len(GROUPS)


# --- D.21 ------------------------------------------------------------------


@pytest.mark.parametrize("change", ["appended", "truncated", "deleted", "created"])
def test_writer_refuses_when_the_file_changed_between_restore_and_lock(
    tmp_path: Path, change: str
) -> None:
    """`open_jsonl_writer` (the writer after a restore done elsewhere) re-checks the size."""
    path = tmp_path / "s.jsonl"
    line = encode_state(make_state("A", 100))
    if change != "created":
        path.write_bytes(line + encode_state(make_state("A", 200)))
    data = jsonl.read_state_file(str(path))  # restore sees the file as it was ...
    report = parse_state_bytes(data or b"", str(path))
    if change == "truncated":
        os.truncate(path, len(line))
    elif change == "deleted":
        path.unlink()
    else:
        with open(path, "ab") as f:  # ... then another writer appends or creates it
            f.write(encode_state(make_state("B", 300)))
    before_fds = len(os.listdir("/proc/self/fd"))
    expected = "vanished while starting" if change == "deleted" else "changed while starting"
    with pytest.raises(RestoreFatal, match=expected) as info:
        jsonl.open_jsonl_writer(str(path), report, existed=data is not None)
    assert "another" in str(info.value) and info.value.path == str(path)
    assert len(os.listdir("/proc/self/fd")) == before_fds  # the writer's descriptor was closed
    if change == "deleted":
        assert not path.exists()  # refused without creating anything
    after = path.read_bytes() if path.exists() else None
    # and the lock was released: a normal start now succeeds, on the intruder's bytes
    opened = open_jsonl_store(str(path), CONFIG)
    opened.backend.close()
    if after is not None:
        assert path.read_bytes() == after


def test_store_restores_under_the_writer_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`open_jsonl_store` locks before it reads: nobody can append between restore and writer."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(encode_state(make_state("A", 100)))
    real_read = jsonl._read_chunks
    seen: list[bool] = []

    def read_while_probing_the_lock(fd: int, p: str) -> Iterator[bytes]:
        probe = os.open(p, os.O_RDONLY)
        try:
            import fcntl

            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(False)  # we got the lock: the store did not hold it
        except BlockingIOError:
            seen.append(True)
        finally:
            os.close(probe)
        return real_read(fd, p)

    monkeypatch.setattr(jsonl, "_read_chunks", read_while_probing_the_lock)
    opened = open_jsonl_store(str(path), CONFIG)
    opened.backend.close()
    assert seen == [True]


def test_runtime_start_refused_when_the_file_appears_while_creating_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.jsonl"
    real_make_parents = jsonl._make_parents

    def make_parents_then_intrude(directory: str, fsync_dir: Callable[[str], None]) -> None:
        real_make_parents(directory, fsync_dir)
        path.write_bytes(b"x")  # another process creates the file first

    monkeypatch.setattr(jsonl, "_make_parents", make_parents_then_intrude)
    sink = MemorySink()
    with pytest.raises(StartupRefused, match="changed while starting"):
        runtime(path, sink).start()
    assert sink.events == [] and path.read_bytes() == b"x"


# --- D.23 / D.37 (config side) ----------------------------------------------


def test_commit_clock_defaults_to_wall_and_accepts_engine() -> None:
    base: dict[str, object] = {"engine": {"hysteresis_state_path": "s"}}
    assert parse_config(base).commit_clock == "wall"
    engine: dict[str, object] = {"engine": {"hysteresis_state_path": "s", "commit_clock": "engine"}}
    assert parse_config(engine).commit_clock == "engine"
    with pytest.raises(ConfigError, match="commit_clock"):
        parse_config({"engine": {"hysteresis_state_path": "s", "commit_clock": "monotonic"}})


def test_empty_state_path_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"x\.toml: \[engine\] hysteresis_state_path: must not be empty"
    ):
        parse_config({"engine": {"hysteresis_state_path": ""}}, "x.toml")
    config = parse_config({"engine": {"hysteresis_state_path": "s"}}, "y.toml")
    with pytest.raises(ConfigError, match=r"y\.toml: --state must not be empty"):
        require_state_path(config, "")  # an empty override never falls back to the config
    assert require_state_path(config, "other") == "other"
    assert require_state_path(config) == "s"


# --- D.30 ------------------------------------------------------------------


class BuggyBackend:
    """A backend whose third append raises something that is not a PersistenceError."""

    def __init__(self, inner: OpenedStore, exc: BaseException) -> None:
        self.inner = inner.backend
        self.calls = 0
        self.exc = exc

    @property
    def poisoned(self) -> bool:
        return self.inner.poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        self.calls += 1
        if self.calls == 3:
            raise self.exc
        self.inner.append(states)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    ("exc", "errno_name"),
    [
        (RuntimeError("backend bug: lost connection"), None),
        (ValueError("bad record"), None),
        (OSError(5, "Input/output error"), "EIO"),  # a raw OSError, not wrapped
    ],
)
def test_any_append_exception_halts_with_scheduling_halted(
    tmp_path: Path, exc: BaseException, errno_name: str | None
) -> None:
    sink = MemorySink()
    backends: list[BuggyBackend] = []

    def factory(p: str, config: HysteresisConfig) -> OpenedStore:
        opened = open_jsonl_store(p, config)
        backends.append(BuggyBackend(opened, exc))
        return dataclasses.replace(opened, backend=backends[-1])

    rt = runtime(tmp_path / "s.jsonl", sink, factory)
    rt.start()
    stats = rt.run(SNAPSHOTS)
    failed_ts = GROUPS[2][0].engine_timestamp_ms
    assert stats.halted and stats.ticks == 3 and stats.decisions == 6
    assert stats.halt_reason == f"persist_failed: {exc}"
    last = sink.events[-1]
    assert (last.event_type, last.symbol, last.engine_timestamp_ms) == (
        ev.SCHEDULING_HALTED,
        None,
        failed_ts,
    )
    assert dict(last.payload) == {
        "reason": "persist_failed",
        "error": str(exc),
        "errno": errno_name,
    }
    assert not [e for e in sink.events[:-1] if e.engine_timestamp_ms == failed_ts]
    assert backends[0].calls == 3  # no retry
    with pytest.raises(HaltedError):
        rt.tick(GROUPS[3])
    assert backends[0].calls == 3  # and no further append
    rt.close()
    assert restore_report(str(tmp_path / "s.jsonl")).valid == 6
