"""The public corpus (examples/real/): each real program, run through the CLI as its
README says, gets the verdict that README documents for it.

Each test records the program on a FUSE mount and checks the crash states its profile
allows (`crashkit explore --exec ... --json`, bounded, one checker: pytest -n runs the
tests side by side), so each needs FUSE (skipped with the reason where it is missing)
and whatever its program needs (plyvel, git). The workloads are small (three
operations, one git commit): the file takes about 35 s of CPU, half a minute of wall
time on 2 cores shared with other jobs.
"""

from __future__ import annotations

import importlib
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crashkit.faults.real import fuse_unavailable

ROOT = Path(__file__).resolve().parents[2]
PYTHON = shlex.quote(sys.executable)

NO_FUSE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(NO_FUSE is not None, reason=f"no FUSE mount: {NO_FUSE}")


def _import_error(module: str) -> str | None:
    """Why `module` cannot be imported here (None: it can)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)
    return None


NO_PLYVEL = _import_error("plyvel")
needs_plyvel = pytest.mark.skipif(
    NO_PLYVEL is not None,
    reason=f"plyvel cannot be imported ({NO_PLYVEL}): pip install -e '.[real]'",
)
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="no git on PATH")

pytestmark = needs_fuse


@dataclass(frozen=True)
class Run:
    """What one `crashkit explore --exec --json` said."""

    exit_code: int
    data: dict[str, Any]

    @property
    def outputs(self) -> list[str]:
        """What the checker said on each refused disk."""
        return [f["output"] for f in self.data["findings"]]


def explore(program: str, args: str, profile: str, timeout: float = 300) -> Run:
    """Explore examples/real/PROGRAM's workload (with ARGS) under PROFILE, every finding
    listed, from the repository root as the READMEs say."""
    folder = f"examples/real/{program}"
    command = [
        sys.executable,
        "-m",
        "crashkit.harness",
        "explore",
        "--exec",
        f"{PYTHON} {folder}/workload.py {args}".strip(),
        "--check",
        f"{PYTHON} {folder}/check.py",
        "--ack",
        "acked",
        "--profile",
        profile,
        "--max-findings",
        "0",
        "--jobs",
        "1",  # pytest -n runs the tests side by side: one checker each
        "--json",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.stdout.strip(), f"exit {done.returncode}, no JSON: {done.stderr[-2000:]}"
    run = Run(done.returncode, json.loads(done.stdout))
    assert run.data["returncode"] == 0, f"the workload itself failed: {done.stderr[-2000:]}"
    assert run.data["stopped"] is None, f"stopped early ({run.data['stopped']})"
    return run


def assert_passes(run: Run) -> None:
    """Every crash state explored was one the program lives with."""
    assert (run.exit_code, run.data["failed"]) == (0, 0), run.outputs[:3]
    assert run.data["checked"] > 0


# posix lets a crash keep any subset of what was not synced, prefix only a prefix of
# it: what survives posix survives prefix (its figures are in examples/real/README.md),
# what is lost under prefix is lost under posix


@pytest.mark.parametrize("profile", ["ext4-ordered", "posix"])
def test_config_written_right_survives_every_power_cut(profile: str) -> None:
    assert_passes(explore("config", "right", profile))


@pytest.mark.parametrize("profile", ["prefix", "ext4-ordered"])
def test_config_renamed_before_its_fsync_can_be_left_empty(profile: str) -> None:
    run = explore("config", "no-fsync", profile)
    assert run.exit_code == 1 and run.data["failed"] > 0
    assert "etc/config holds 0 bytes no writer wrote whole: b''" in run.outputs


def test_config_without_the_folder_fsync_loses_an_acknowledged_version() -> None:
    run = explore("config", "no-dir-fsync", "posix")
    assert run.exit_code == 1
    assert "etc/config is missing, but version=1 was acknowledged" in run.outputs
    # no rename is ever made durable: even after the last one, the name can be gone
    assert "etc/config is missing, but version=3 was acknowledged" in run.outputs
    assert all("wrote whole" not in out for out in run.outputs)  # bytes synced: never torn


def test_shelve_loses_synced_keys() -> None:
    """shelve's sync() (dbm.dumb) never fsyncs: even under ext4-ordered a key whose
    sync() returned is lost, and the shelf can be left unreadable."""
    run = explore("shelve", "", "ext4-ordered")
    assert run.exit_code == 1
    assert "acknowledged key1 is missing (keys: [])" in run.outputs
    assert any(out.startswith("the shelf does not open or read") for out in run.outputs)


@pytest.mark.parametrize(
    ("journal", "synchronous", "profile"),
    [
        ("wal", "full", "prefix"),
        # (DELETE + EXTRA, and DELETE + FULL that loses a commit: tests/faults/
        # test_exec_vulnerabilities.py, a program printing each commit, its vulnerability)
        ("truncate", "full", "prefix"),
        ("persist", "normal", "prefix"),
    ],
)
def test_sqlite_durable_modes_keep_every_commit(
    journal: str, synchronous: str, profile: str
) -> None:
    assert_passes(explore("sqlite", f"{journal} {synchronous}", profile))


@pytest.mark.parametrize(
    ("journal", "synchronous", "profile", "lost"),
    [
        # WAL + NORMAL: consistent, not durable (SQLite's documentation)
        ("wal", "normal", "ext4-ordered", "acknowledged row=3 missing (rows present: [1, 2])"),
        # TRUNCATE + NORMAL: the journal's truncation is not synced, it can come back (on
        # ext4 too: the same 28 refused states as posix, of fewer explored)
        ("truncate", "normal", "ext4-ordered", "acknowledged row=2 missing (rows present: [1])"),
    ],
)
def test_sqlite_modes_that_lose_an_acknowledged_commit(
    journal: str, synchronous: str, profile: str, lost: str
) -> None:
    run = explore("sqlite", f"{journal} {synchronous}", profile)
    assert run.exit_code == 1
    assert lost in run.outputs
    # never corrupt: every refused disk opens and passes integrity_check, a commit is lost
    assert all("missing" in out for out in run.outputs), run.outputs


@needs_plyvel
def test_leveldb_keeps_synced_puts_but_a_power_cut_while_creating_breaks_it() -> None:
    """Every put with sync=True survives; what fails is the database created a moment
    before (MANIFEST-000001 never synced, google/leveldb issue 189): it does not open."""
    run = explore("leveldb", "", "ext4-ordered")
    assert run.exit_code == 1
    assert set(run.outputs) == {
        "LevelDB does not open: b'Corruption: no meta-nextfile entry in descriptor'"
    }
    assert all("/acked (0 bytes)" in f["files"] for f in run.data["findings"])


@needs_plyvel
def test_leveldb_creating_its_folder_is_three_vulnerabilities_each_with_its_fix() -> None:
    """LevelDB creating `db/` itself, on unordered directories: the refused states are
    three causes, each with its fix: the first MANIFEST's bytes not synced before
    CURRENT names it (upstream issue 189); the folder not synced after the MANIFEST's
    creation and CURRENT's rename (the old MANIFEST's unlink persisting first); `db/`
    itself never synced in its parent before a put was acknowledged."""
    run = explore("leveldb", "--leveldb-creates-db", "posix")
    assert run.exit_code == 1
    got = [(v["class"], v["ops"], v["hint"]) for v in run.data["vulnerabilities"]]
    assert got == [
        (
            "ordering",
            [
                "write /db/MANIFEST-* not durable",
                "create /db/*.dbtmp persisted before it",
            ],
            "fsync `/db/MANIFEST-*` before create /db/*.dbtmp",
        ),
        (
            "ordering",
            [
                "create /db/MANIFEST-* not durable",
                "rename /db/*.dbtmp -> /db/CURRENT persisted before it",
                "rename /db/*.dbtmp -> /db/CURRENT not durable",
                "unlink /db/MANIFEST-* persisted before it",
            ],
            "fsync the folder `/db` after create /db/MANIFEST-*, rename /db/*.dbtmp -> /db/CURRENT",
        ),
        ("durability", ["mkdir /db not durable"], "fsync the folder `/` after mkdir /db"),
    ]
    assert sum(v["states"] for v in run.data["vulnerabilities"]) == run.data["failed"]
    # where directory operations persist in any order, the old MANIFEST's unlink persists
    # without CURRENT's rename to the new one: acknowledged puts unreachable
    after_acks = [f["output"] for f in run.data["findings"] if "/acked (0 bytes)" not in f["files"]]
    assert any("CURRENT points to a non-existent file" in out for out in after_acks)
    assert not any(out.startswith("acknowledged") for out in run.outputs)


@needs_git
def test_git_default_fsync_loses_an_acknowledged_commit() -> None:
    """Unset, core.fsync syncs packs, not loose objects, refs or the index."""
    run = explore("git", "--commits 1", "ext4-ordered", timeout=900)
    assert run.exit_code == 1
    assert any(out.startswith("git fsck: error: object file") for out in run.outputs)
