"""The kit on a pure-Python standard-library backend, in process: `examples/shelve_store.py`
(shelve over dbm.dumb) passes the quick suite with nothing refused as invisible I/O, and
its planted defect (`NO_FSYNC`: the files never fsynced) is named under `1-durability`.
Run as a user runs it: pytest in a subprocess from the repository root, where
`examples.shelve_store` is importable (docs/backends.md)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.kit.helpers import run_kit

REPO = Path(__file__).resolve().parents[2]
GOOD = "examples.shelve_store:BACKEND"
BROKEN = "examples.shelve_store:NO_FSYNC"


def kit(tmp_path: Path, spec: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`pytest --crashkit-backend=SPEC --crashkit-suite=quick` from the repository root (the
    kit's items only), and the summary it wrote."""
    return run_kit(
        REPO,
        *("-p", "no:randomly", f"--crashkit-backend={spec}", "--crashkit-suite=quick"),
        *args,
        "tests/kit/__init__.py",  # (no test of the project's own: the kit's items alone)
        out=tmp_path,
        timeout=3600,
    )


def test_the_shelve_backend_passes_the_restore_rows_and_the_single_writer(
    tmp_path: Path,
) -> None:
    """The fast part of the quick suite (every restore row, the single writer): no refusal
    as invisible I/O, no violation. (Its state machines, 25 s here, run in the whole
    suite below.)"""
    done, data = kit(tmp_path, GOOD, "-k", "restore_row or single_writer")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    assert "cannot see" not in text
    assert data["violations"] == 0
    assert data["checked_by_invariant"]["R4-restore-table"] > 0
    assert data["checked_by_invariant"]["4-crash-damage-not-fatal"] > 0
    assert data["checked_by_invariant"]["W5-single-writer"] >= 1


@pytest.mark.slow
def test_the_shelve_backend_passes_the_whole_quick_suite(tmp_path: Path) -> None:
    """Every item of the quick suite, the crash explorer included: 96 pass, 18 n/a, 64
    CPU-minutes, 34 min on 2 cores (dbm.dumb rewrites its index and backup at every
    append: many crash points, many unsynced files at each), so `pytest -m slow`, not CI."""
    done, data = kit(tmp_path, GOOD, "-n", "2")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    assert "cannot see" not in text
    assert data["violations"] == 0
    assert data["checked_by_invariant"]["1-durability"] > 1000


def test_the_shelve_backend_without_fsync_is_named_under_durability(tmp_path: Path) -> None:
    """The restore rows' crash states (each deviation a power cut may leave while two ticks
    are written) lose what it acknowledged. (The explorer items name it too, in minutes.)"""
    done, data = kit(tmp_path, BROKEN, "-k", "restore_row")
    text = done.stdout + done.stderr
    assert done.returncode == 1, text[-4000:]
    assert "cannot see" not in text
    assert "1-durability: acknowledged" in done.stdout
    assert data["violations_by_invariant"]["1-durability"] > 0


SCENARIO = """\
name: {name}
description: every {op} of {suffix} fails at start
backend: {spec}
fsync_model: keep-dirty
config:
  window_updates: 3
input:
  synthetic:
    symbols: 2
    ticks: 4
    seed: 1
initial_state:
  missing_dir: true
steps:
- fault:
    op: {op}
    path: /crashkit/state/hysteresis.jsonl{suffix}
    nth: 1
    errno: EIO
    persistent: true
- run:
    ticks: all
expect:
  invariants:
  - all
"""


@pytest.mark.parametrize(
    ("op", "suffix"), [("close", ".dat"), ("close", ".dir"), ("fsync", ".dat"), ("fsync", ".dir")]
)
def test_a_failed_call_at_start_is_a_refusal_not_a_crash(
    tmp_path: Path, op: str, suffix: str
) -> None:
    """The quick suite's I/O-error sweep found it (`P-backend-protocol`): every close of
    `.dat` failing, the start's cleanup closed the lock's descriptor again, and that
    second EIO escaped as `OSError` instead of `StartupRefused`. The sweep takes half an
    hour on this backend; its scenario, and its neighbours, take milliseconds."""
    from crashkit.harness.scenarios import load_scenario, run_loaded

    name = f"start-{op}-{suffix[1:]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, spec=GOOD, op=op, suffix=suffix))
    result = run_loaded(load_scenario(path))
    assert result.error is None, result.error
    assert result.passed, [check for check in result.checks if not check.ok]
