"""A backend written outside the project, with several defects, as a new user would write
it: the kit names each defect under its invariant, and each finding's replay command
reproduces it. (`make crash`: it runs the kit's quick suite in a subprocess.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kit.helpers import run_kit

#: Its defects: no fsync (1-durability, 3-publish-implies-committed), no poisoning after a
#: failed write (6-halt), a raw OSError instead of StartupRefused (P-backend-protocol), a
#: FIFO and a damaged file read as empty (R4-restore-table).
MYSTORE = """
import json, os

from crashkit.orchestrator.errors import PersistenceError
from crashkit.orchestrator.store.protocol import Backend, OpenedStore, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisState, HysteresisStore, Regime


class Writer:
    def __init__(self, fd):
        self.fd, self.poisoned = fd, False

    def append(self, states):
        if self.poisoned:
            raise PersistenceError("poisoned")
        data = b"".join(
            (json.dumps({"s": s.symbol, "t": s.engine_timestamp_ms, "a": s.anchor_regime.value,
                         "c": s.candidate_regime and s.candidate_regime.value,
                         "p": s.progress_current, "l": s.last_commit_timestamp_ms}) + "\\n").encode()
            for s in states)
        try:
            os.write(self.fd, data)
        except OSError as exc:
            raise PersistenceError(str(exc), exc.errno) from exc

    def close(self):
        os.close(self.fd)


def open_store(path, config):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    store = HysteresisStore()
    if os.path.exists(path):
        with open(path, "rb") as f:
            for line in f.read().split(b"\\n")[:-1]:
                try:
                    r = json.loads(line)
                    st = HysteresisState(r["s"], r["t"], Regime(r["a"]), r["c"] and Regime(r["c"]),
                                         r["p"], config.window_updates, r["l"])
                except Exception:
                    continue
                if r["s"] not in store.states or store.states[r["s"]].engine_timestamp_ms <= r["t"]:
                    store.states[r["s"]] = st
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return OpenedStore(Writer(fd), store, RestoreSummary(path, "ok" if store.states else "bootstrap"))


BACKEND = Backend("mystore", open_store)
"""

DEFECTS = {
    "1-durability",
    "3-publish-implies-committed",
    "6-halt",
    "P-backend-protocol",
    "R4-restore-table",
}


@pytest.mark.crash
def test_each_defect_is_named_under_its_invariant_and_replays(tmp_path: Path) -> None:
    (tmp_path / "mystore.py").write_text(MYSTORE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done, data = run_kit(
        tmp_path, "-n", "2", "--crashkit-backend=mystore:BACKEND", "--crashkit-suite=quick"
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    broken = {name for name, count in data["violations_by_invariant"].items() if count}
    assert broken >= DEFECTS, broken
    assert data["violations_by_invariant"]["W5-single-writer"] == 0  # not declared: not run
    best: dict[str, dict[str, str]] = {}
    for f in data["findings"]:
        if f["invariant"] and (f["invariant"] not in best or f.get("file")):
            best.setdefault(f["invariant"], f)
            if f.get("file"):
                best[f["invariant"]] = f
    bin_dir = str(Path(sys.executable).parent)
    for name in sorted(DEFECTS):
        replay = best[name]["replay"]
        again = subprocess.run(
            replay,
            shell=True,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, "PATH": bin_dir + os.pathsep + env.get("PATH", "")},
        )
        assert again.returncode == 1, (replay, again.stdout[-2000:], again.stderr[-2000:])
        assert name in again.stdout + again.stderr, (replay, again.stdout[-2000:])
