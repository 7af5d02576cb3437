"""Compaction (contract §8): restore is the same before and after, ties included; the
policy, `crashkit compact` and the startup clean-up of a stale temp file; and the
reference's compaction clean under every file-system profile while each broken
variant of it is caught."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit.faults import PROFILE_NAMES, CrashFS, DiskImage
from crashkit.harness.explore import Explorer
from crashkit.harness.explore.catalogue import COMPACTABLE, COMPACTION, TIED
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.kit import variants
from crashkit.orchestrator.store.compact import (
    DEFAULT_POLICY,
    EAGER_POLICY,
    compacted_bytes,
    temp_path,
)
from crashkit.orchestrator.store.jsonl import COMPACTING_BACKEND, open_jsonl_store
from crashkit.orchestrator.store.report import parse_state_bytes
from crashkit.regime_engine.contracts import HysteresisConfig

STATE = "/crashkit/state/hysteresis.jsonl"
CONFIG = HysteresisConfig()


@pytest.mark.parametrize("data", [COMPACTABLE, TIED + COMPACTABLE, COMPACTABLE + TIED])
def test_the_compacted_file_restores_the_same_winners_ties_included(data: bytes) -> None:
    before = parse_state_bytes(data)
    after = parse_state_bytes(compacted_bytes(before, CONFIG))
    assert {s: r for s, (_, r) in after.winners.items()} == {
        s: r for s, (_, r) in before.winners.items()
    }
    assert after.lines == len(before.winners) and after.ties == 0


def test_the_policy_compacts_only_big_files_with_history() -> None:
    report = parse_state_bytes(COMPACTABLE)  # 12 lines, 3 symbols
    assert EAGER_POLICY.due(report) and not DEFAULT_POLICY.due(report)
    assert not EAGER_POLICY.due(parse_state_bytes(b"garbage\n"))  # fatal: never


def test_a_start_removes_a_stale_temp_file_durably_then_compacts() -> None:
    image = DiskImage(
        files={STATE: COMPACTABLE, temp_path(STATE): b"half a compaction"},
        dirs=("/crashkit/state",),
    )
    with CrashFS(record=True) as fs:
        fs.restart(image)
        opened = COMPACTING_BACKEND.open(STATE, CONFIG)
        opened.backend.close()
        assert not os.path.exists(temp_path(STATE))
        with open(STATE, "rb") as f:
            assert f.read().count(b"\n") == 3
        # durable: no crash state after the start brings the temp file back
        assert all(temp_path(STATE) not in s.image.files for s in fs.crash_states())


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_the_reference_compaction_is_clean_under_every_profile(profile: str) -> None:
    for workload in COMPACTION:
        summary = Explorer(COMPACTING_BACKEND, profile=profile).run(workload)
        assert summary.states_checked > 0
        assert summary.findings == [], [f.violation.message for f in summary.findings[:3]]


@pytest.mark.parametrize(
    "backend",
    [
        variants.compaction_temp_not_fsynced,
        variants.compaction_folder_not_fsynced,
        variants.compaction_replaced_before_written,
    ],
    ids=lambda b: b.name,
)
def test_each_broken_compaction_loses_acknowledged_state(backend: object) -> None:
    summary = Explorer(backend).run(COMPACTION[0])  # type: ignore[arg-type]
    assert summary.violations_by_invariant()[Invariant.DURABILITY] > 0


def crashkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crashkit.harness", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=cwd,
    )


def test_crashkit_compact_refuses_what_must_not_be_compacted(tmp_path: Path) -> None:
    missing = crashkit("compact", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 2 and "no state file to compact" in missing.stderr
    fatal = tmp_path / "fatal.jsonl"
    fatal.write_bytes(b"garbage\n")
    refused = crashkit("compact", "fatal.jsonl", cwd=tmp_path)
    assert refused.returncode == 3 and "not compacted" in refused.stderr
    assert fatal.read_bytes() == b"garbage\n"
    held = tmp_path / "held.jsonl"
    held.write_bytes(COMPACTABLE)
    opened = open_jsonl_store(str(held), CONFIG)  # this process holds the writer lock
    try:
        locked = crashkit("compact", "held.jsonl", cwd=tmp_path)
    finally:
        opened.backend.close()
    assert locked.returncode == 3 and "writer lock" in locked.stderr
    assert held.read_bytes() == COMPACTABLE
    done = crashkit("compact", "held.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "compacted 12 line(s)" in done.stderr and held.read_bytes().count(b"\n") == 3
    assert not (tmp_path / "held.jsonl.compacting").exists()
    again = crashkit("compact", "held.jsonl", cwd=tmp_path)
    assert again.returncode == 0 and "already compact" in again.stderr


def test_every_io_error_during_a_compacting_start_is_refused_or_survived() -> None:
    """The I/O-error sweep and the fsync-failure models on a start that compacts: each
    fault leaves a refusal or a run that loses nothing (once: closing the replaced file
    with EIO escaped as a crash)."""
    sweep = Explorer(COMPACTING_BACKEND).sweep(COMPACTION[0], errnos=("EIO", "ENOSPC"))
    assert sweep.sweep_runs > 50 and sweep.findings == [], [
        (f.violation.message, f.workload.name) for f in sweep.findings[:3]
    ]
    models = Explorer(COMPACTING_BACKEND).fsync_models(COMPACTION[0])
    assert models.sweep_runs > 0 and models.findings == []


def test_a_compaction_section_sets_the_startup_policy(tmp_path: Path) -> None:
    """`[compaction]` in the config: the second run compacts its 150-line history to one
    line per symbol; a bad value or a backend that is not the reference is a config error
    naming the file and line."""
    synth = crashkit(
        "synth", "--symbols", "3", "--ticks", "50", "--seed", "1", "--out", "in.jsonl", cwd=tmp_path
    )
    assert synth.returncode == 0, synth.stderr
    config = tmp_path / "c.toml"
    config.write_text(
        '[engine]\nhysteresis_state_path = "state.jsonl"\n[compaction]\nratio = 2\nmin_lines = 10\n'
    )
    for _ in range(2):
        ran = crashkit("run", "--config", "c.toml", "--input", "in.jsonl", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "state.jsonl").read_bytes().count(b"\n") == 3
    bad = tmp_path / "bad.toml"
    bad.write_text('[engine]\nhysteresis_state_path = "s.jsonl"\n[compaction]\nratio = 0.5\n')
    refused = crashkit("run", "--config", "bad.toml", "--input", "in.jsonl", cwd=tmp_path)
    assert refused.returncode == 2 and "bad.toml:4: [compaction] ratio" in refused.stderr
    other = tmp_path / "other.toml"
    other.write_text(
        '[engine]\nhysteresis_state_path = "s.jsonl"\n'
        'backend = "crashkit.harness.kit.variants:no_fsync"\n[compaction]\nratio = 2\n'
    )
    mixed = crashkit("run", "--config", "other.toml", "--input", "in.jsonl", cwd=tmp_path)
    assert mixed.returncode == 2 and "applies to the reference backend" in mixed.stderr


def test_a_rename_that_fails_leaves_the_old_file_in_charge() -> None:
    """EXDEV (a temp folder on another mount) or EIO on the rename: nothing was renamed,
    so the start goes on with the old file, uncompacted, and the temp file is gone."""
    from crashkit.faults import FaultPlan, FaultRule, OpKind

    image = DiskImage(files={STATE: COMPACTABLE}, dirs=("/crashkit/state",))
    with CrashFS(record=True) as fs:
        fs.configure(plan=FaultPlan((FaultRule(OpKind.REPLACE, "*", errno="EXDEV"),)))
        fs.restart(image)
        opened = COMPACTING_BACKEND.open(STATE, CONFIG)
        assert len(opened.store.states) == 3
        opened.backend.close()
        assert not os.path.exists(temp_path(STATE))
        with open(STATE, "rb") as f:
            assert f.read() == COMPACTABLE


def test_a_mid_history_compaction_exports_a_scenario_that_replays_it(tmp_path: Path) -> None:
    """`Workload.compact_after`: stop, `crashkit compact`, a second process. A broken
    compaction is caught there, and its scenario (`compact: {}` step) fails the same way;
    the reference's is clean."""
    from crashkit.harness.scenarios import load_scenario, run_loaded
    from crashkit.harness.scenarios.export import export_findings

    workload = COMPACTION[2]
    assert workload.compact_after is not None
    assert Explorer().run(workload).findings == []
    broken = variants.compaction_temp_not_fsynced
    explorer = Explorer(broken)
    summary = explorer.run(workload)
    assert summary.violations_by_invariant()[Invariant.DURABILITY] > 0
    spec = "crashkit.harness.kit.variants:compaction_temp_not_fsynced"
    paths = export_findings(summary.findings, tmp_path, backend=spec, explorer=explorer)
    durability = [p for p in paths if p.stem.startswith(Invariant.DURABILITY)]
    assert durability and "compact: {}" in durability[0].read_text()
    result = run_loaded(load_scenario(durability[0]))
    assert f"invariant {Invariant.DURABILITY}" in [c.name for c in result.failures]
