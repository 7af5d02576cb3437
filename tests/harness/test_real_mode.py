"""`crashkit explore --real`: `crashkit run` as a real process on a FUSE mount, restarted
on every crash state and judged by the explorer's oracles. The reference and the SQLite
backend pass, a broken variant is caught, and a backend on the stdlib `sqlite3` module
(whose I/O the in-process layer cannot see) is crash-tested: correct, it passes; with
`synchronous=OFF`, it is named. Skipped, with the reason, where no FUSE mount can be made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crashkit.faults import CrashState, DiskImage
from crashkit.faults.real import fuse_unavailable
from crashkit.harness.explore import Explorer, Workload, real_mode
from crashkit.harness.explore.real_mode import explore_real
from crashkit.harness.kit.sqlite_variants import synchronous_full
from crashkit.harness.kit.variants import no_fsync
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


def test_a_stdlib_sqlite3_backend_written_outside_is_crash_tested_for_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "stdsqlite.py").write_text(STDSQLITE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    small = Workload(symbols=2, ticks=2, seed=1, name="stdsqlite")
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
