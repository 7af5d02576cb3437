"""The explorer's own guarantees: early stop changes no verdict, shards partition the work,
same workload same result, and the CLI's contract (exit codes, JSON keys)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crashkit.harness.explore import Explorer, Summary, Workload
from crashkit.harness.explore.explorer import SEEDED_START
from crashkit.harness.judge.invariants import INVARIANTS
from crashkit.harness.judge.vulnerabilities import VulnClass
from crashkit.harness.kit.variants import VARIANTS

SMALL = Workload(symbols=2, ticks=8, seed=5, name="small")
BY_NAME = {v.name: v for v in VARIANTS}


def verdicts(summary: Summary) -> dict[tuple[int | None, str | None], set[str]]:
    out: dict[tuple[int | None, str | None], set[str]] = {}
    for f in summary.findings:
        out.setdefault((f.crash_point, f.cut), set()).add(f.violation.invariant)
    return out


@pytest.mark.parametrize(
    "name", [None, "no-fsync", "torn-tail-not-cut", "duplicate-reapplied-after-restart"]
)
def test_early_stop_and_full_give_the_same_verdicts(name: str | None) -> None:
    variant = BY_NAME[name] if name else None
    kwargs = (
        {}
        if variant is None
        else {"backend": variant.backend, "runtime_class": variant.runtime_class}
    )
    workload = SMALL if variant is None else variant.workload
    quick = Explorer(**kwargs).run(workload)  # type: ignore[arg-type]
    full = Explorer(full=True, **kwargs).run(workload)  # type: ignore[arg-type]
    assert quick.states_checked == full.states_checked > 0
    assert verdicts(quick) == verdicts(full)
    if variant is not None:
        assert verdicts(quick), "the variant must be caught for the comparison to mean anything"


def test_shards_partition_the_states_and_the_findings() -> None:
    variant = BY_NAME["no-fsync"]
    whole = Explorer(variant.backend).run(variant.workload)
    parts = [Explorer(variant.backend, shard=(i, 3)).run(variant.workload) for i in range(3)]
    assert sum(p.states_checked for p in parts) == whole.states_checked
    assert sum(p.crash_points for p in parts) == whole.crash_points
    assert sum(p.workloads for p in parts) == 1
    merged: dict[tuple[int | None, str | None], set[str]] = {}
    for p in parts:
        for key, value in verdicts(p).items():
            merged.setdefault(key, set()).update(value)
    assert merged == verdicts(whole)


def test_same_workload_same_summary() -> None:
    a = Explorer().run(SMALL).to_dict()
    b = Explorer().run(SMALL).to_dict()
    for volatile in ("seconds", "states_per_second"):
        a.pop(volatile)
        b.pop(volatile)
    assert a == b


def test_sweep_and_fsync_models_pass_on_the_reference() -> None:
    explorer = Explorer()
    sweep = explorer.sweep(Workload(symbols=1, ticks=3, seed=2, name="tiny"))
    models = explorer.fsync_models(Workload(symbols=1, ticks=3, seed=2, name="tiny"))
    assert sweep.sweep_runs > 0 and models.sweep_runs > 0
    assert sweep.outcomes["halted"] > 0 and sweep.outcomes["refused"] > 0
    assert sweep.findings == [] and models.findings == []


def crashkit(
    *args: str, cwd: Path | None = None, env_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": env_path}
    return subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "explore", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def documented_json_keys() -> set[str]:
    """The keys docs/backends.md's `crashkit explore --json` table lists."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "backends.md").read_text("utf-8")
    section = doc.split("## `crashkit explore --json`", 1)[1].split("\n## ", 1)[0]
    table = section.split("A finding:", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE))


def test_cli_json_on_the_reference_exits_0_with_the_documented_keys() -> None:
    done = crashkit("--symbols", "2", "--ticks", "4", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == documented_json_keys()
    assert data["violations"] == 0 and data["states_checked"] > 0
    assert list(data["violations_by_invariant"]) == list(INVARIANTS)


OUTSIDE_BACKEND = '''
"""A backend that lives outside the project: it forgets to fsync (public hooks only)."""
import os
from crashkit.orchestrator.store.jsonl import JsonlStateBackend, open_jsonl_store
from crashkit.regime_engine.codec import encode_state


class Lazy(JsonlStateBackend):
    def append(self, states):
        os.write(self.fd, b"".join(encode_state(s) for s in states))


def open_lazy(path, config):
    return open_jsonl_store(path, config, writer=Lazy)
'''

SQLITE_BACKEND = '''
"""A backend on the standard sqlite3 module: its I/O happens in C."""
import os, sqlite3
from crashkit.orchestrator.store.protocol import OpenedStore, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisStore


def open_sqlite(path, config):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path)
    return OpenedStore(conn, HysteresisStore(), RestoreSummary(path, "bootstrap"))
'''


def test_cli_outside_backend_violation_exits_1_with_a_reproduction(tmp_path: Path) -> None:
    (tmp_path / "lazy_backend.py").write_text(textwrap.dedent(OUTSIDE_BACKEND))
    root = str(Path(__file__).resolve().parents[2])
    done = crashkit(
        "--backend",
        "lazy_backend:open_lazy",
        "--symbols",
        "2",
        "--ticks",
        "4",
        "--export-dir",
        str(tmp_path / "regressions"),
        env_path=f"{tmp_path}:{root}",
    )
    assert done.returncode == 1
    exported = sorted((tmp_path / "regressions").glob("1-durability-*.yaml"))
    assert exported and "backend: lazy_backend:open_lazy" in exported[0].read_text()
    assert "violation 1-durability" in done.stderr
    assert '"crash_point"' in done.stderr and '"fault_plan"' in done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--backend", "nomodule"), "module:attribute"),
        (("--backend", "no_such_module_xyz:f"), "cannot import"),
        (("--shard", "3/2"), "0 <= i < n"),
    ],
)
def test_cli_usage_errors_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = crashkit(*args)
    assert done.returncode == 2
    assert needle in done.stderr


def test_cli_a_backend_whose_io_is_invisible_exits_2_naming_the_call(tmp_path: Path) -> None:
    (tmp_path / "sql_backend.py").write_text(textwrap.dedent(SQLITE_BACKEND))
    done = crashkit("--backend", "sql_backend:open_sqlite", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "sqlite3.connect('/crashkit/state/hysteresis.jsonl')" in done.stderr
    assert "cannot see" in done.stderr and "Traceback" not in done.stderr


def test_cli_findings_are_written_only_where_asked(tmp_path: Path) -> None:
    (tmp_path / "lazy_backend.py").write_text(textwrap.dedent(OUTSIDE_BACKEND))
    done = crashkit(
        "--backend", "lazy_backend:open_lazy", "--symbols", "1", "--ticks", "3", cwd=tmp_path
    )
    assert done.returncode == 1
    assert not re.findall(r"regression scenario written: (\S+)", done.stderr)
    assert "run again with --export-dir DIR" in done.stderr
    assert {p.name for p in tmp_path.iterdir()} <= {"__pycache__", "lazy_backend.py"}


def test_the_findings_cap_bounds_the_work_on_a_broken_backend() -> None:
    from crashkit.harness.kit.variants import no_fsync

    workload = Workload(symbols=2, ticks=8, seed=5, name="capped")
    full = Explorer(no_fsync).run(workload)
    capped = Explorer(no_fsync, max_findings=1).run(workload)
    kept = {f.violation.invariant for f in capped.findings}
    assert all(sum(f.violation.invariant == i for f in capped.findings) == 1 for i in kept)
    assert capped.violations >= len(capped.findings) and capped.states_skipped > 0
    assert capped.states_checked < full.states_checked
    assert kept <= {f.violation.invariant for f in full.findings}
    assert capped.to_dict()["findings_cap"] == 1


def test_a_crash_after_the_last_change_of_the_disk_holds_every_acknowledged_tick() -> None:
    """An SQLite commit ends on calls that change nothing (the folder's close after its
    fsync), so its acknowledgement comes after the trace's last crash point: that point
    must still count it (a crash there comes at any moment up to the end of the run).
    Before, the last tick was taken as in flight there, and a restore that lost it passed."""
    from crashkit.orchestrator.store import sqlite

    workload = Workload(symbols=2, ticks=3, seed=1, name="last-tick")
    explorer = Explorer(sqlite.BACKEND)
    assert explorer.run(workload).violations == 0
    (last,) = explorer._per_point.values()  # the facts of the last crash point judged
    final = max(s.engine_timestamp_ms for s in workload.snapshots())
    assert {s.engine_timestamp_ms for s in last.ledger.latest_acked.values()} == {final}
    assert last.ledger.later == frozenset()


def test_the_start_on_a_seeded_file_is_judged_as_a_restart() -> None:
    """A seeded file is what an earlier crash left: the run's start on it is checked as
    every restart is (its first acknowledged append, then a clean reopen). A compaction
    that copies the seed's torn tail glues that append to it: lost with no new crash, the
    run's own finding; the reference (it cuts the tail first) passes the same workload."""
    variant = next(v for v in VARIANTS if v.name == "compaction-copies-torn-tail")
    summary = Explorer(variant.backend).run(variant.workload)
    seeded = [f for f in summary.findings if f.cut == SEEDED_START]
    assert seeded and all(f.crash_point is None for f in seeded)
    assert seeded[0].violation.invariant.value == "1-durability"
    assert [v.kind for v in summary.vulnerabilities] == [VulnClass.BEHAVIOUR]
    clean = Explorer("crashkit.orchestrator.store.jsonl:COMPACTING_BACKEND").run(variant.workload)
    assert clean.findings == [] and clean.states_checked > 0
