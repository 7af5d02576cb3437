"""The orchestrator in hysteresis mode (contract §6) on real files."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from crashkit.orchestrator import events as ev
from crashkit.orchestrator.errors import HaltedError, PersistenceError, RestoreFatal, StartupRefused
from crashkit.orchestrator.events import Event, MemorySink
from crashkit.orchestrator.replay import full_replay
from crashkit.orchestrator.runtime import HysteresisRuntime, engine_commit_clock
from crashkit.orchestrator.sources import ticks
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.protocol import OpenedStore
from crashkit.regime_engine import contracts
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, RegimeInputSnapshot
from crashkit.regime_engine.synthetic import generate
from tests.conftest import decisions as shared_decisions

CONFIG = HysteresisConfig()
SNAPSHOTS = list(generate(3, 40, seed=11))


def decisions(events: Sequence[Event]) -> dict[str, tuple[object, ...]]:
    """Decisions including the commit timestamp (the engine clock makes it deterministic)."""
    return shared_decisions(events, with_commit=True)


def reference(
    snapshots: Sequence[RegimeInputSnapshot], config: HysteresisConfig = CONFIG
) -> MemorySink:
    sink = MemorySink()
    full_replay(config, snapshots, sink, clock=engine_commit_clock)
    return sink


def runtime(
    path: Path, sink: MemorySink, factory: object = open_jsonl_store, **kw: object
) -> HysteresisRuntime:
    return HysteresisRuntime(
        config=kw.pop("config", CONFIG),  # type: ignore[arg-type]
        state_path=str(path),
        sink=sink,
        backend_factory=factory,  # type: ignore[arg-type]
        clock=engine_commit_clock,
        **kw,  # type: ignore[arg-type]
    )


def test_reference_workload_has_real_hysteresis() -> None:
    codes = [
        code
        for e in reference(SNAPSHOTS).events
        if e.event_type == ev.DECISION_PUBLISHED
        for code in e.payload["state"]["reason_codes"]  # type: ignore[index]
    ]
    assert codes.count("commit_switch") >= 3


@pytest.mark.parametrize("crash_tick", range(0, 41, 1))
def test_restart_after_any_tick_equals_uninterrupted_run(tmp_path: Path, crash_tick: int) -> None:
    expected = decisions(reference(SNAPSHOTS).events)
    path = tmp_path / "state.jsonl"
    groups = list(ticks(SNAPSHOTS))
    first, second = MemorySink(), MemorySink()
    rt = runtime(path, first)
    rt.start()
    for group in groups[:crash_tick]:
        rt.tick(group)
    rt.close()
    rt = runtime(path, second)
    rt.start()
    rt.run(SNAPSHOTS)  # the same recorded input, from its start
    rt.close()
    assert decisions(first.events + second.events) == expected
    assert not rt.stats.halted_symbols
    # the second process published no decision the first had already made
    published_first = {e.run_id for e in first.events if e.event_type == ev.DECISION_PUBLISHED}
    published_second = {e.run_id for e in second.events if e.event_type == ev.DECISION_PUBLISHED}
    assert not published_first & published_second


def test_restored_events_come_first_one_per_symbol(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    rt = runtime(path, MemorySink())
    rt.start()
    rt.run(SNAPSHOTS[:12])
    rt.close()
    sink = MemorySink()
    rt = runtime(path, sink)
    rt.start()
    restored = [e for e in sink.events]
    assert [e.event_type for e in restored] == [ev.STATE_RESTORED] * 3
    assert [e.symbol for e in restored] == ["SYM000", "SYM001", "SYM002"]
    assert [e.engine_timestamp_ms for e in restored] == [SNAPSHOTS[9].engine_timestamp_ms] * 3
    rt.close()


class FailingBackend:
    """Wraps a real backend; the Nth append fails like a full disk."""

    def __init__(self, inner: OpenedStore, fail_at: int) -> None:
        self.inner = inner.backend
        self.calls = 0
        self.fail_at = fail_at

    @property
    def poisoned(self) -> bool:
        return self.inner.poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise PersistenceError("write failed: No space left on device", errno.ENOSPC)
        self.inner.append(states)

    def close(self) -> None:
        self.inner.close()


def test_persist_failure_halts_and_publishes_nothing_of_the_tick(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    sink = MemorySink()

    def factory(p: str, config: HysteresisConfig) -> OpenedStore:
        opened = open_jsonl_store(p, config)
        return dataclasses.replace(opened, backend=FailingBackend(opened, fail_at=5))

    rt = runtime(path, sink, factory)
    rt.start()
    stats = rt.run(SNAPSHOTS)
    failed_ts = list(ticks(SNAPSHOTS))[4][0].engine_timestamp_ms
    assert stats.halted and stats.ticks == 5
    last = sink.events[-1]
    assert last.event_type == ev.SCHEDULING_HALTED
    assert last.payload["errno"] == "ENOSPC" and last.engine_timestamp_ms == failed_ts
    assert not [e for e in sink.events if e.engine_timestamp_ms == failed_ts and e is not last]
    with pytest.raises(HaltedError):
        rt.tick(list(ticks(SNAPSHOTS))[5])
    rt.close()
    # every published decision is committed in the file
    committed = restore_report(str(path))
    assert committed.valid == len([e for e in sink.events if e.event_type == ev.DECISION_PUBLISHED])


def test_real_enospc_halts_with_every_published_decision_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.jsonl"
    sink = MemorySink()
    rt = runtime(path, sink)
    rt.start()
    for group in list(ticks(SNAPSHOTS))[:3]:
        rt.tick(group)
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        return real_write(fd, data[:7])  # a short write, as at a size limit

    monkeypatch.setattr(os, "write", full_disk)
    rt.tick(list(ticks(SNAPSHOTS))[3])
    monkeypatch.undo()
    rt.close()
    assert rt.stats.halted and "short write" in (rt.stats.halt_reason or "")
    published = [e for e in sink.events if e.event_type == ev.DECISION_PUBLISHED]
    report = restore_report(str(path))
    assert report.torn_tail_bytes == 7 and report.valid == len(published) == 9


def test_fatal_restore_refuses_to_start_and_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_bytes(b"corrupt\n")
    sink = MemorySink()
    rt = runtime(path, sink)
    with pytest.raises(RestoreFatal, match="no valid record"):
        rt.start()
    assert sink.events == []
    assert path.read_bytes() == b"corrupt\n"


def test_engine_schema_mismatch_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contracts, "HYSTERESIS_STATE_SCHEMA_VERSION", "2")
    with pytest.raises(StartupRefused, match="no silent upgrade"):
        runtime(tmp_path / "s.jsonl", MemorySink()).start()
    assert not (tmp_path / "s.jsonl").exists()


def _shift(snapshot: RegimeInputSnapshot, ts: int) -> RegimeInputSnapshot:
    return dataclasses.replace(snapshot, engine_timestamp_ms=ts)


def test_late_snapshot_hard_fails_only_that_symbol(tmp_path: Path) -> None:
    groups = list(ticks(SNAPSHOTS))
    late = _shift(groups[5][1], groups[2][0].engine_timestamp_ms)
    feed = [s for g in groups[:6] for s in g] + [late] + [s for g in groups[6:] for s in g]
    sink = MemorySink()
    rt = runtime(tmp_path / "s.jsonl", sink)
    rt.start()
    stats = rt.run(feed)
    rt.close()
    assert list(stats.halted_symbols) == ["SYM001"]
    assert stats.halted_symbols["SYM001"].startswith("non_monotonic_timestamp")
    halted = [e for e in sink.events if e.event_type == ev.SYMBOL_HALTED]
    assert [(e.symbol, e.engine_timestamp_ms) for e in halted] == [
        ("SYM001", late.engine_timestamp_ms)
    ]
    last_ts = SNAPSHOTS[-1].engine_timestamp_ms
    assert rt.states["SYM001"].engine_timestamp_ms == groups[5][0].engine_timestamp_ms
    assert rt.states["SYM000"].engine_timestamp_ms == last_ts
    assert rt.states["SYM002"].engine_timestamp_ms == last_ts


def test_duplicate_snapshot_is_skipped_and_changes_nothing(tmp_path: Path) -> None:
    groups = list(ticks(SNAPSHOTS))
    feed = [s for g in groups[:4] for s in g] + [groups[3][0]] + [s for g in groups[4:] for s in g]
    sink = MemorySink()
    rt = runtime(tmp_path / "s.jsonl", sink)
    rt.start()
    stats = rt.run(feed)
    rt.close()
    assert stats.duplicates == 1 and not stats.halted_symbols
    dup = [e for e in sink.events if e.event_type == ev.DUPLICATE_SKIPPED]
    assert [e.run_id for e in dup] == [f"SYM000:{groups[3][0].engine_timestamp_ms}"]
    assert decisions(sink.events) == decisions(reference(SNAPSHOTS).events)


def test_duplicate_and_late_input_survive_restart_identically(tmp_path: Path) -> None:
    groups = list(ticks(SNAPSHOTS))
    late = _shift(groups[20][2], groups[10][0].engine_timestamp_ms)
    feed = (
        [s for g in groups[:8] for s in g]
        + [groups[7][1]]
        + [s for g in groups[8:21] for s in g]
        + [late]
        + [s for g in groups[21:] for s in g]
    )
    uninterrupted = MemorySink()
    full_replay(CONFIG, feed, uninterrupted, clock=engine_commit_clock)
    expected = decisions(uninterrupted.events)
    for cut in (5, 8, 9, 15, 21, 22, 30):
        path = tmp_path / f"s{cut}.jsonl"
        a, b = MemorySink(), MemorySink()
        rt = runtime(path, a)
        rt.start()
        for group in list(ticks(feed))[:cut]:
            rt.tick(group)
        rt.close()
        rt = runtime(path, b)
        rt.start()
        stats = rt.run(feed)
        rt.close()
        assert decisions(a.events + b.events) == expected, cut
        assert list(stats.halted_symbols) == ["SYM002"], cut


def test_input_that_does_not_match_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rt = runtime(path, MemorySink())
    rt.start()
    rt.run(SNAPSHOTS[:30])
    rt.close()
    other = [_shift(s, s.engine_timestamp_ms + 1) for s in SNAPSHOTS]  # never hits the restored ts
    sink = MemorySink()
    rt = runtime(path, sink)
    rt.start()
    stats = rt.run(other)
    rt.close()
    assert set(stats.halted_symbols) == {"SYM000", "SYM001", "SYM002"}
    assert all(r.startswith("resume_point_not_found") for r in stats.halted_symbols.values())


def test_one_write_and_one_fsync_per_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime(tmp_path / "s.jsonl", MemorySink())
    rt.start()
    counts = {"write": 0, "fsync": 0}
    for name in counts:
        real = getattr(os, name)

        def wrapped(*args: object, _real: object = real, _name: str = name) -> object:
            counts[_name] += 1
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(os, name, wrapped)
    rt.run(SNAPSHOTS[:30])
    rt.close()
    assert counts == {"write": 10, "fsync": 10}


def test_window_change_between_restarts_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rt = runtime(path, MemorySink())
    rt.start()
    rt.run(SNAPSHOTS[:60])
    rt.close()
    sink = MemorySink()
    rt = runtime(path, sink, config=HysteresisConfig(window_updates=1))
    rt.start()
    rt.run(SNAPSHOTS)
    rt.close()
    states = [e.payload["state"] for e in sink.events if e.event_type == ev.DECISION_PUBLISHED]
    assert states and all(s["progress_required"] == 1 for s in states)  # type: ignore[index]
    assert all(s["progress_current"] <= 1 for s in states)  # type: ignore[index]
