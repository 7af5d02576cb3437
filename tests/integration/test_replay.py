"""Replays (contract §7) reproduce the live run and never touch the state file."""

from __future__ import annotations

import os
from pathlib import Path

from crashkit.orchestrator.events import MemorySink
from crashkit.orchestrator.replay import full_replay, resume_replay
from crashkit.orchestrator.runtime import engine_commit_clock
from crashkit.orchestrator.store.jsonl import open_jsonl_store
from crashkit.regime_engine.contracts import HysteresisConfig
from tests.integration.test_runtime import CONFIG, SNAPSHOTS, decisions, runtime


def live(path: Path) -> MemorySink:
    sink = MemorySink()
    rt = runtime(path, sink)
    rt.start()
    rt.run(SNAPSHOTS)
    rt.close()
    return sink


def test_full_replay_equals_live(tmp_path: Path) -> None:
    live_sink = live(tmp_path / "s.jsonl")
    replayed = MemorySink()
    full_replay(CONFIG, SNAPSHOTS, replayed, clock=engine_commit_clock)
    assert decisions(replayed.events) == decisions(live_sink.events)


def test_mid_stream_replay_equals_live_after_t(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    live_decisions = decisions(live(path).events)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    stamps = sorted({s.engine_timestamp_ms for s in SNAPSHOTS})
    for at in (stamps[0], stamps[7], stamps[20] + 1, stamps[-2]):
        sink = MemorySink()
        resume_replay(
            CONFIG, SNAPSHOTS, sink, state_path=str(path), at_ms=at, clock=engine_commit_clock
        )
        got = decisions(sink.events)
        assert got == {
            k: v for k, v in live_decisions.items() if int(k.split(":")[1]) > at or k in got
        }
        assert {k for k in live_decisions if int(k.split(":")[1]) > at} <= set(got)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before
    # the live file is not locked by a replay: a writer can still open it
    open_jsonl_store(str(path), HysteresisConfig()).backend.close()
