"""The coverage table counts what really happened: each rule is counted on the workload
crafted for it and stays at 0 on one that cannot reach it; the `ci` suite holds every
variant's workload, so the explorer alone catches each variant there."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from crashkit.faults import DiskImage
from crashkit.harness.explore import Explorer, Workload
from crashkit.harness.explore import catalogue as cat
from crashkit.harness.explore.coverage import RULES, file_rules, image_rules, seed_rules
from crashkit.harness.explore.suite import SUITES
from crashkit.harness.explore.summary import Summary, coverage_table
from crashkit.harness.judge.model import model_restore
from crashkit.harness.judge.paths import STATE_DIR, STATE_PATH
from crashkit.harness.kit.variants import VARIANTS


def test_file_rules_read_the_ends_of_the_file() -> None:
    assert file_rules(None) == {"C4.2"}
    assert file_rules(b"") == {"C4.8"}
    assert file_rules(b'{"a":1}\n') == set()
    assert file_rules(b'{"a":1}\n{"b"') == {"C3.2"}
    assert file_rules(b'{"b"') == {"C3.2", "C4.8"}
    assert file_rules(b" \n\t\n") == {"C4.8"}
    assert image_rules(DiskImage(dirs=(STATE_DIR, STATE_PATH))) == {"C4.3"}


def test_seed_rules_are_the_contract_reading_of_the_seed() -> None:
    def rules(data: bytes) -> set[str]:
        return set(seed_rules(model_restore(data), data))

    assert rules(cat.TIED) == {"C4.10", "C4.11"}
    assert rules(cat.OUT_OF_ORDER) == {"C4.10"}
    assert rules(cat.ONE_INVALID) == {"C4.6", "C4.10"}
    assert rules(cat.ALL_INVALID) == {"C4.7"}
    assert rules(cat.BLANK_AND_TORN) == {"C3.2", "C4.4", "C4.10"}
    assert rules(cat.ONLY_BLANK) == {"C4.4", "C4.8"}
    assert seed_rules(model_restore(None), None) == frozenset()


def covered(workload: Workload) -> dict[str, int]:
    summary = Explorer().run(workload)
    assert summary.findings == [], [f.violation.message for f in summary.findings[:3]]
    return summary.coverage()


@pytest.mark.parametrize(
    ("workload", "rules"),
    [
        (cat.SMALL_BY_NAME["duplicates"], {"C6.6"}),
        (cat.SMALL_BY_NAME["late-snapshot"], {"C6.5"}),
        (cat.SMALL_BY_NAME["seeded-tie"], {"C4.11", "C6.9"}),
        (cat.SMALL_BY_NAME["directory-at-state-path"], {"C4.3"}),
        (cat.SMALL_BY_NAME["open-fails-at-start"], {"C4.3"}),
        (cat.SMALL_BY_NAME["write-fails-for-good"], {"C5.5", "C5.6", "C6.12"}),
        (cat.SMALL_BY_NAME["fsync-fails-drop"], {"C5.7"}),
        (cat.SMALL_BY_NAME["second-writer"], {"C5.9"}),
        (replace(cat.BASE, restart_window_updates=1, name="w"), {"C1.3"}),
        (replace(cat.BASE, initial_state=cat.RESUME_AND_MISMATCH, name="r"), {"C6.7", "C6.9"}),
        (replace(cat.BASE, initial_state=cat.BLANK_AND_TORN, name="b"), {"C4.4", "C3.2"}),
    ],
    ids=lambda x: x.name if isinstance(x, Workload) else "",
)
def test_each_rule_is_counted_on_the_workload_crafted_for_it(
    workload: Workload, rules: set[str]
) -> None:
    counts = covered(workload)
    assert {rule for rule in rules if counts[rule] == 0} == set()


def test_a_plain_market_does_not_count_what_it_cannot_reach() -> None:
    counts = covered(cat.BASE)
    for rule in ("C1.3", "C4.3", "C4.4", "C4.6", "C4.7", "C4.11", "C5.5", "C5.9", "C6.5", "C6.6"):
        assert counts[rule] == 0, rule
    # and what every crash exploration of it reaches
    for rule in ("C3.2", "C4.2", "C5.3", "C5.4", "C6.3", "C6.7", "C6.8", "C6.11"):
        assert counts[rule] > 0, rule


def test_coverage_survives_the_json_round_trip_and_merge() -> None:
    one = Explorer().run(cat.SMALL_BY_NAME["duplicates"])
    again = Summary.from_dict(one.to_dict())
    assert again.coverage() == one.coverage()
    again.merge(one)
    assert again.coverage()["C6.6"] == 2 * one.coverage()["C6.6"]
    assert set(one.coverage()) == set(RULES)
    assert coverage_table(one).row_count == len(RULES)


def test_every_variant_is_explored_on_a_workload_of_the_ci_suite() -> None:
    """With tests/harness/test_broken_variants.py (the explorer catches each variant on
    its workload), the explorer alone catches every variant on the ci suite: its workload
    is one of the suite's, or one cut to its first ticks (the SQLite variants': the same
    input's first snapshots, the run's first crash points)."""
    crash_workloads = {job.workload for job in SUITES["ci"]() if job.kind == "crash"}

    def in_suite(w: Workload) -> bool:
        longer = [c for c in crash_workloads if c == replace(w, ticks=c.ticks)]
        return any(c.snapshots()[: len(w.snapshots())] == w.snapshots() for c in longer)

    missing = [v.name for v in VARIANTS if not in_suite(v.workload)]
    assert missing == []
    assert all("explorer" in v.caught_by for v in VARIANTS)


def test_shards_merge_to_the_coverage_of_the_whole_run(tmp_path: Path) -> None:
    """`crashkit explore --shard i/n --json` then `crashkit merge`: the coverage adds up
    to the unsharded run's, and the merged table shows it."""
    args = ["--symbols", "2", "--ticks", "5", "--json", "--no-export"]
    whole = json.loads(crashkit("explore", *args).stdout)
    files = []
    for i in range(3):
        path = tmp_path / f"shard{i}.json"
        path.write_text(crashkit("explore", *args, "--shard", f"{i}/3").stdout)
        files.append(str(path))
    merged = json.loads(crashkit("merge", *files, "--json").stdout)
    assert merged["coverage"] == whole["coverage"]
    assert merged["coverage"]["C6.8"] > 0
    shown = crashkit("merge", *files).stdout
    assert "contract rules exercised" in shown and "C6.8" in shown


def crashkit(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "crashkit.harness", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_suite_skips_seeded_files_for_a_backend_of_another_format(tmp_path: Path) -> None:
    """`crashkit explore --suite` on a backend without `line_format` runs every other job
    and says which it left out (it is not a usage error)."""
    (tmp_path / "ownformat.py").write_text(
        "from dataclasses import replace\n"
        "from crashkit.orchestrator.store import jsonl\n"
        "from crashkit.orchestrator.store.protocol import Capabilities\n"
        "BACKEND = replace(jsonl.BACKEND, name='ownformat', restore_only=None, spec=None,\n"
        "                  capabilities=Capabilities(line_format=False, single_writer=True))\n"
    )
    args = ["--backend", "ownformat:BACKEND", "--suite", "quick", "--shard", "0/16", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "crashkit.harness", "explore", *args, "--no-export"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seeded = [j for j in SUITES["quick"]() if j.workload.initial_state is not None]
    assert f"not applicable: {len(seeded)} job(s) of seeded state files" in done.stderr
    assert json.loads(done.stdout)["states_checked"] > 0


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_job_of_a_suite_has_its_own_name(suite: str) -> None:
    """Job names key the pinned verdicts, the progress bar and exported findings."""
    keys = [f"{job.kind}:{job.workload.name}" for job in SUITES[suite]()]
    assert len(keys) == len(set(keys))
