"""`--crashkit-profile`: the kit's explorer items and state machines crash under another
file-system profile, and what v1 cannot hold there is said as a known limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.helpers import run_kit

REFERENCE = "--crashkit-backend=crashkit.orchestrator.store.jsonl:BACKEND"
#: The kit's items that crash under `--crashkit-profile` (`crashkit.harness.kit.suite`).
PROFILED = "crash_exploration or io_error_sweep or fsync_failure_models or state_machine"


def test_an_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    done, _ = run_kit(tmp_path, REFERENCE, "--crashkit-profile=zfs", "--crashkit-suite=quick")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]  # pytest usage error
    assert "--crashkit-profile: unknown file-system profile 'zfs'" in done.stderr


@pytest.mark.crash
def test_the_reference_under_sectors_passes_and_names_the_v1_limit(tmp_path: Path) -> None:
    # Only the items a profile changes: the restore rows, the table and the scenarios
    # never crash under it (`make crash` runs them on the reference).
    done, data = run_kit(
        tmp_path,
        REFERENCE,
        "--crashkit-profile=posix:512",
        "--crashkit-suite=quick",
        "-k",
        PROFILED,
        "-n",
        "2",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert data["violations"] == 0
    assert data["known_limits"]["v1-lost-first-block"] > 0
    assert "known limit v1-lost-first-block" in done.stdout
    assert "profile posix:512" in done.stdout
