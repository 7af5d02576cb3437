"""The explorer under file-system profiles: `--profile` and `--profile all`, what v1
cannot hold said as a known limit (never a pass, never hiding a real bug), and the
profile carried into findings and scenario files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crashkit.faults import PROFILE_NAMES
from crashkit.harness.explore import Explorer, Workload
from crashkit.harness.judge.invariants import Invariant
from crashkit.harness.judge.limits import LIMITS
from crashkit.harness.kit import variants
from crashkit.harness.scenarios import load_scenario
from crashkit.harness.scenarios.loader import ScenarioError

LIMIT = "v1-lost-first-block"


def explore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "explore", *args, "--no-export"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_sectors_that_persist_out_of_order_meet_the_v1_limit_said_as_such() -> None:
    done = explore("--profile", "posix:512", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["violations"] == 0
    assert data["known_limits"][LIMIT] > 0
    shown = explore("--profile", "posix:512")
    assert f"known limit {LIMIT}" in shown.stderr and "C4.7" in shown.stderr


def test_every_profile_in_one_run_one_row_each() -> None:
    done = explore("--symbols", "2", "--ticks", "4", "--profile", "all", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    profiles = json.loads(done.stdout)["profiles"]
    assert set(profiles) == set(PROFILE_NAMES)
    assert all(p["states_checked"] > 0 and p["violations"] == 0 for p in profiles.values())
    table = explore("--symbols", "2", "--ticks", "4", "--profile", "all").stderr
    assert all(name in table for name in PROFILE_NAMES)


def test_an_unknown_profile_is_a_usage_error_naming_the_allowed_ones() -> None:
    done = explore("--profile", "ntfs")
    assert done.returncode == 2
    assert "unknown file-system profile 'ntfs'" in done.stderr and "posix" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_limit_hides_no_real_bug() -> None:
    """A backend that makes crash damage fatal is still caught under the weakest profile:
    only the states the limit describes are set aside."""
    summary = Explorer(variants.torn_tail_fatal, profile="posix:512").run(Workload())
    assert summary.violations_by_invariant()[Invariant.CRASH_NOT_FATAL] > 0
    reference = Explorer(profile="posix:512").run(Workload())
    assert reference.violations == 0 and reference.limits[LIMIT] > 0
    assert LIMITS[LIMIT].invariant == Invariant.CRASH_NOT_FATAL


def test_findings_carry_their_profile_into_the_scenario_file(tmp_path: Path) -> None:
    from crashkit.harness.scenarios.export import export_findings

    summary = Explorer(variants.no_fsync, profile="xfs").run(Workload(2, 4))
    assert summary.findings and all(f.workload.profile == "xfs" for f in summary.findings)
    paths = export_findings(
        summary.findings, tmp_path, backend="crashkit.harness.kit.variants:no_fsync"
    )
    assert paths and all("profile: xfs" in p.read_text() for p in paths)
    assert load_scenario(paths[0]).profile == "xfs"


def test_a_scenario_with_an_unknown_profile_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad-profile.yaml"
    path.write_text(
        "name: bad-profile\ndescription: a profile that does not exist\n"
        "profile: zfs\ninput: {synthetic: {symbols: 1, ticks: 2, seed: 1}}\n"
        "steps:\n  - run: {ticks: all}\n"
    )
    try:
        load_scenario(path)
    except ScenarioError as exc:
        text = str(exc)
        assert "profile" in text and "zfs" in text and ":3" in text
    else:
        raise AssertionError("the bad profile was accepted")


def test_the_library_runs_under_another_profile() -> None:
    """`crashkit scenarios run --profile` judges every file's contract-level expectations
    and invariants under that profile's crash states; exact cuts are not applicable."""
    done = subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "scenarios", "run", "--profile", "posix"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " 0 failed" in done.stdout and "not applicable" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "scenarios", "run", "--profile", "zfs"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown file-system profile 'zfs'" in bad.stderr
