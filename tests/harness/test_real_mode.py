"""`crashkit explore --real`: `crashkit run` as a real process on a FUSE mount, restarted
on every crash state and judged by the explorer's oracles. The reference and the SQLite
backend pass, a broken variant is caught, and a backend on the stdlib `sqlite3` module
(whose I/O the in-process layer cannot see) is crash-tested: correct, it passes; with
`synchronous=OFF`, it is named. Skipped, with the reason, where no FUSE mount can be made.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crashkit.faults import CrashState, DiskImage
from crashkit.faults.real import Recording, fuse_unavailable
from crashkit.harness.explore import Explorer, Workload, real_mode
from crashkit.harness.explore.real_mode import explore_real
from crashkit.harness.explore.warm import WarmRunner
from crashkit.harness.kit.sqlite_variants import synchronous_full
from crashkit.harness.kit.variants import VARIANTS, no_fsync
from crashkit.orchestrator.store import jsonl, sqlite
from crashkit.orchestrator.store.protocol import Backend

UNAVAILABLE = fuse_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")

#: A backend on the stdlib sqlite3 module, as a new user would write it (one row per
#: symbol, an upsert per tick, each folder's entry made durable when it is created: with
#: only the last level synced, the real mode finds a crash losing `/crashkit` whole).
STDSQLITE = """
import os, sqlite3
from crashkit.orchestrator.errors import PersistenceError, RestoreFatal
from crashkit.orchestrator.store.protocol import Backend, Capabilities, OpenedStore, RestoreSummary
from crashkit.regime_engine.codec import decode_record, encode_state, record_to_state
from crashkit.regime_engine.contracts import HysteresisStore

SYNCHRONOUS = os.environ.get("STDSQLITE_SYNCHRONOUS", "EXTRA")


class Writer:
    def __init__(self, db):
        self.db, self.poisoned = db, False

    def append(self, states):
        if self.poisoned:
            raise PersistenceError("poisoned after an earlier failure")
        rows = [(s.symbol, s.engine_timestamp_ms, encode_state(s)[:-1]) for s in states]
        try:
            with self.db:
                self.db.executemany(
                    "INSERT INTO state VALUES (?, ?, ?) ON CONFLICT (symbol) DO UPDATE SET "
                    "ts = excluded.ts, record = excluded.record WHERE excluded.ts >= state.ts",
                    rows,
                )
        except sqlite3.Error as exc:
            self.poisoned = True
            raise PersistenceError(f"commit failed: {exc}") from exc

    def close(self):
        self.db.close()


def make_folders(folder):  # each new folder's entry made durable in its parent
    if os.path.isdir(folder):
        return
    make_folders(os.path.dirname(folder))
    os.mkdir(folder)
    fd = os.open(os.path.dirname(folder), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)


def open_store(path, config):
    make_folders(os.path.dirname(path))
    try:
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
        db.execute("CREATE TABLE IF NOT EXISTS state (symbol TEXT PRIMARY KEY, ts INTEGER, record BLOB)")
        db.commit()
        store = HysteresisStore()
        for (record,) in db.execute("SELECT record FROM state"):
            state = record_to_state(decode_record(record), config)
            store.states[state.symbol] = state
    except (sqlite3.Error, ValueError) as exc:
        raise RestoreFatal(path, f"cannot restore: {exc}") from exc
    return OpenedStore(Writer(db), store, RestoreSummary(path, "ok" if store.states else "bootstrap"))


BACKEND = Backend("stdsqlite", open_store, capabilities=Capabilities(files=("{path}", "{path}-journal")))
"""


WORKLOAD = Workload(symbols=2, ticks=3, seed=1, window_updates=3, name="agree")
SMALL = Workload(symbols=2, ticks=2, seed=1, window_updates=3, name="small")
#: one symbol: the fewest restarts (14) that still show both variants compared below
ONE_SYMBOL = replace(SMALL, symbols=1, name="one-symbol")


def _images_by_point(states: list[tuple[int, CrashState]]) -> list[frozenset[DiskImage]]:
    by_point: dict[int, set[DiskImage]] = {}
    for point, state in states:
        by_point.setdefault(point, set()).add(state.image)
    return [frozenset(by_point[p]) for p in sorted(by_point)]


@pytest.mark.parametrize("backend", [jsonl.BACKEND, sqlite.BACKEND], ids=["jsonl", "sqlite"])
def test_both_modes_agree_on_every_crash_state_and_the_verdict(backend: Backend) -> None:
    """The same workload in both modes: the same crash states point for point (the real
    mode's events file adds points of its own, each the same disk as the point before:
    a publish changes nothing of the state), and no violation in either."""
    assert backend.spec is not None
    real = explore_real(backend.spec, WORKLOAD, max_findings=3)
    assert real.recording.returncode == 0, real.recording.stderr
    assert real.states > 0 and real.violations == 0, [f.to_dict() for f in real.findings]
    inside = Explorer(backend)
    summary = inside.run(WORKLOAD)
    assert summary.states_checked > 0 and summary.violations == 0

    trace = real.recording.trace
    states = real_mode.crash_states(real.recording, real.start, WORKLOAD)
    assert len(states) == real.states
    by_point: dict[int, set[DiskImage]] = {}
    for index, _, state in states:
        by_point.setdefault(index, set()).add(state.image)
    kept: list[frozenset[DiskImage]] = []
    for index in sorted(by_point):
        images = frozenset(by_point[index])
        if trace[index].path.startswith("/events/"):
            assert images == (kept[-1] if kept else frozenset({DiskImage()})), trace[index]
        else:
            kept.append(images)
    assert kept == _images_by_point(inside.crash_states(WORKLOAD))
    assert summary.crash_points == len(kept)


@pytest.mark.parametrize("variant", [no_fsync, synchronous_full], ids=lambda b: b.name)
def test_a_broken_variant_is_caught_in_both_modes(variant: Backend) -> None:
    """What was published is not on disk after the crash, in both modes: no fsync (the
    reference's), and DELETE mode under FULL, where the journal's unlink is not synced (a
    crash brings it back; the real mode missed it while its replay dropped a file only a
    durable entry still named)."""
    assert variant.spec is not None
    real = explore_real(variant.spec, WORKLOAD, max_findings=1)
    assert "3-publish-implies-committed" in real.violated
    inside = Explorer(variant).run(WORKLOAD)
    assert "3-publish-implies-committed" in {f.violation.invariant.value for f in inside.findings}


def test_the_real_mode_names_the_cause_as_the_in_process_explorer_does() -> None:
    """No fsync: the refused restarts are one durability vulnerability in both modes,
    the state file's write not durable when it was published."""
    assert no_fsync.spec is not None
    real = explore_real(no_fsync.spec, WORKLOAD, max_findings=0)
    inside = Explorer(no_fsync).run(WORKLOAD)
    expected = [("durability", ("write /crashkit/state/hysteresis.jsonl not durable",))]
    assert [v.key for v in inside.vulnerabilities] == expected
    assert [v.key for v in real.vulnerabilities] == expected
    assert real.vulnerabilities[0].states == len(real.failures) > 1
    assert real.to_dict()["vulnerabilities"][0]["class"] == "durability"


def test_a_stdlib_sqlite3_backend_written_outside_is_crash_tested_for_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "stdsqlite.py").write_text(STDSQLITE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    small = Workload(symbols=1, ticks=2, seed=1, name="stdsqlite")
    good = explore_real("stdsqlite:BACKEND", small)
    assert good.recording.returncode == 0, good.recording.stderr
    assert good.states > 0 and good.violations == 0, [f.to_dict() for f in good.findings]
    monkeypatch.setenv("STDSQLITE_SYNCHRONOUS", "OFF")
    broken = explore_real("stdsqlite:BACKEND", small, max_findings=1)
    assert broken.violations > 0
    assert broken.findings[0].violation.invariant.value in (
        "3-publish-implies-committed",
        "4-crash-damage-not-fatal",
    )


def _scrubbed(value: object) -> str:
    """`value` as text, without the scratch folder's name (a temporary folder's)."""
    return re.sub(r"crashkit-real-run-[^/]+", "SCRATCH", str(value))


def _verdicts(summary: real_mode.RealSummary) -> dict[str, str]:
    """A summary as judged, without its timing and its scratch folder's name."""
    found = summary.to_dict()
    del found["seconds"]
    return {k: _scrubbed(v) for k, v in found.items()}


@pytest.mark.parametrize("name", ["torn-tail-fatal", "duplicate-reapplied-after-restart"])
def test_warm_workers_and_new_processes_give_the_same_verdicts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One recording (a real run's trace may vary between runs), its restarts judged
    three ways: warm workers two at a time, the fallback where the server cannot start
    (no fork: `subprocess.run`, one at a time), and warm with the findings cap: the same
    verdicts, finding for finding, the same exit codes and outputs behind them (a
    backend variant whose restarts refuse, a runtime variant through `real_child`)."""
    variant = next(v for v in VARIANTS if v.name == name)
    spec = (variant.backend or jsonl.BACKEND).spec
    assert spec is not None
    recorded: list[tuple[Recording, DiskImage]] = []
    record = real_mode.record

    def once(*args: Any, **kwargs: Any) -> tuple[Recording, DiskImage]:
        if not recorded:
            recorded.append(record(*args, **kwargs))
        return recorded[0]

    monkeypatch.setattr(real_mode, "record", once)
    runtime = variant.runtime_spec

    def explore(runner: WarmRunner, workers: int, cap: int = 0) -> real_mode.RealSummary:
        with runner:
            return explore_real(
                spec, ONE_SYMBOL, runtime=runtime, max_findings=cap, runner=runner, workers=workers
            )

    warm = real_mode.warm_runner(spec, runtime)
    warm_summary = explore(warm, workers=2)
    assert warm.why_cold == "closed" and warm.cold_runs == 0
    assert warm.warm_runs == warm_summary.restarts > 0
    assert variant.real_invariant is not None  # caught: something to agree on
    assert variant.real_invariant.value in warm_summary.violated
    with monkeypatch.context() as no_fork:
        no_fork.delattr(os, "fork")
        cold = real_mode.warm_runner(spec, runtime)
        cold_summary = explore(cold, workers=1)
    assert cold.why_cold == "no os.fork on this platform" and cold.warm_runs == 0
    assert cold.cold_runs == cold_summary.restarts
    assert _verdicts(warm_summary) == _verdicts(cold_summary)
    capped = explore(real_mode.warm_runner(spec, runtime), workers=2, cap=1)
    assert capped.stopped and len(capped.findings) == 1
    assert _verdicts(capped)["findings"] == _scrubbed([cold_summary.findings[0].to_dict()])


def test_a_backend_in_the_current_folder_runs_in_warm_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend module only the children can import (the current folder leads their
    path, not this process's): the server imports it too, and the store is reopened
    after each restart by one more warm run on no input, not in this process."""
    (tmp_path / "herestore.py").write_text(STDSQLITE)
    monkeypatch.chdir(tmp_path)
    small = Workload(symbols=1, ticks=2, seed=1, name="here")
    with real_mode.warm_runner("herestore:BACKEND", None) as runner:
        summary = explore_real("herestore:BACKEND", small, runner=runner)
        assert runner.cold_runs == 0, runner.why_cold
        assert runner.warm_runs == 2 * summary.restarts > 0  # each restart, then its reopen
    assert summary.recording.returncode == 0, summary.recording.stderr
    assert summary.violations == 0, [f.to_dict() for f in summary.findings]
