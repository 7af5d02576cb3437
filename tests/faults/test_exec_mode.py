"""`crashkit explore --exec`: bounded by default, budgets that stop it and say so, files
left out with --ignore, several checkers at once with the same verdicts, signals that end
it with a partial summary and no scratch folder left, and honest failures (a checker that
cannot run, a command that changed nothing).

The runs need a FUSE mount to record (skipped with the reason where there is none); the
scratch folder and the checker's command line do not."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.faults import DiskImage
from crashkit.faults.crash import DeviationKind, Exploration
from crashkit.faults.real import fuse_unavailable, read_folder
from crashkit.harness.cli import main
from crashkit.harness.explore.exec_mode import (
    FIXED_MTIME_NS,
    ExecExit,
    ExecSummary,
    Stopped,
    _checker_argv,
    _Scratch,
    explore_exec,
    finding_lines,
)

UNAVAILABLE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no FUSE here: {UNAVAILABLE}")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAFE = f"{sys.executable} {EXAMPLES / 'atomic_write.py'}"
UNSAFE = f"{SAFE} --no-fsync"
CHECKER = f"{sys.executable} {EXAMPLES / 'check_config.py'}"

#: Appends 3 records to `data` (each synced) and a line to `LOG` before each (never synced).
LOGGED = """
import os
d = os.environ["CRASHKIT_DIR"]
log = os.open(os.path.join(d, "LOG"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
data = os.open(os.path.join(d, "data"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(3):
    os.write(log, f"writing record {i}\\n".encode())
    os.write(data, f"record {i}\\n".encode())
    os.fsync(data)
os.close(log)
os.close(data)
"""

#: Refuses a `LOG` that ends inside a line.
LOG_CHECK = """
import os, sys
path = os.path.join(os.environ["CRASHKIT_DIR"], "LOG")
text = open(path, "rb").read() if os.path.exists(path) else b""
if text and not text.endswith(b"\\n"):
    print("LOG ends mid-line")
    sys.exit(1)
"""


@functools.cache
def unsafe_every(exploration: str = "linear", jobs: int = 1) -> ExecSummary:
    """The worked example without its fsync, every refused state listed: explored once
    per worker for the tests below that read the same run."""
    return explore_exec(UNSAFE, CHECKER, max_findings=0, exploration=exploration, jobs=jobs)


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return f"{sys.executable} {path}"


# -- bounded by default, exhaustive on request ------------------------------------------


@needs_fuse
def test_the_linear_default_catches_the_unsafe_writer_and_passes_the_safe_one() -> None:
    safe = explore_exec(SAFE, CHECKER)
    assert safe.exploration is Exploration.LINEAR
    assert (safe.exit_code, safe.states, safe.failed, safe.findings) == (ExecExit.OK, 48, 0, [])
    assert (safe.points_explored, safe.points_total, safe.unchecked) == (15, 15, 0)
    unsafe = unsafe_every()
    assert unsafe.exit_code is ExecExit.FINDINGS
    assert (unsafe.states, unsafe.checked, unsafe.failed) == (117, 71, 72)
    first = unsafe.findings[0]
    # the renamed file's lost data: explored right after the rename (the next call
    # creates a name in its folder) and at the last crash point where it holds
    assert first.after == "#3 rename /config.tmp (-> /config)"
    assert first.cut == "/config: none of 111 unsynced bytes kept"
    assert [(d.kind, d.path) for d in first.deviations] == [(DeviationKind.DATA_LOST, "/config")]
    assert "config holds 0 bytes that no writer wrote whole" in first.output


@needs_fuse
def test_linear_checks_a_subset_of_bounded_and_finds_the_same_vulnerabilities() -> None:
    linear, bounded = unsafe_every(), unsafe_every("bounded")
    assert (bounded.states, bounded.failed) == (138, 90)
    assert {(f.after, f.cut) for f in linear.findings} < {
        (f.after, f.cut) for f in bounded.findings
    }
    assert [v.key for v in linear.vulnerabilities] == [v.key for v in bounded.vulnerabilities]
    assert [v.states for v in linear.vulnerabilities] == [72]


@needs_fuse
def test_exhaustive_explores_more_states_with_the_same_verdicts() -> None:
    runner = CliRunner()
    safe = runner.invoke(main, ["explore", "--exec", SAFE, "--check", CHECKER, "--exhaustive"])
    assert safe.exit_code == 0, safe.output
    caught = runner.invoke(
        main, ["explore", "--exec", UNSAFE, "--check", CHECKER, "--exhaustive", "--json"]
    )
    assert caught.exit_code == 1
    data = json.loads(caught.stdout)
    assert (data["exploration"], data["states"], data["failed"]) == ("exhaustive", 346, 298)
    assert (data["stopped"], data["unchecked"], data["more_findings"]) == (None, 0, 278)


@needs_fuse
def test_the_text_output_shows_the_cut_the_disk_the_deviation_and_the_checker() -> None:
    result = CliRunner().invoke(
        main,
        [
            *("explore", "--exec", UNSAFE, "--check", CHECKER, "--max-findings", "1"),
            "--exploration",
            "bounded",
        ],
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    at = lines.index(
        "crash after #3 rename /config.tmp (-> /config): /config: none of 111 unsynced bytes kept"
    )
    assert lines[at + 1 : at + 5] == [
        "  disk: /config (0 bytes)",
        "  deviation data-lost: /config: none of 111 unsynced bytes kept",
        "  check exited 1: config holds 0 bytes that no writer wrote whole: b''",
        "... and 89 more refused crash state(s) not listed (--max-findings 0 lists every one)",
    ]


# -- budgets -------------------------------------------------------------------------


@needs_fuse
def test_a_budget_of_3_checks_3_disks_then_stops_inconclusive() -> None:
    result = CliRunner().invoke(
        main,
        [
            *("explore", "--exec", SAFE, "--check", CHECKER, "--budget", "3", "--json"),
            "--exploration",
            "bounded",
        ],
    )
    assert result.exit_code == 4 and int(ExecExit.INCONCLUSIVE) == 4
    data = json.loads(result.stdout)
    assert (data["checked"], data["stopped"], data["budget"]) == (3, "budget", 3)
    assert (data["points_explored"], data["points_total"]) == (1, 15)
    assert data["unchecked"] == 8  # the second crash point's states past the budget
    text = CliRunner().invoke(
        main, ["explore", "--exec", SAFE, "--check", CHECKER, "--budget", "3"]
    )
    assert text.exit_code == 4
    assert "stopped early: the budget of 3 distinct disks ran out. Explored 1 of 15" in text.stderr


@needs_fuse
def test_a_finding_wins_over_a_budget_that_ran_out() -> None:
    summary = explore_exec(UNSAFE, CHECKER, budget=40)
    assert summary.stopped is Stopped.BUDGET and summary.checked == 40
    assert summary.failed > 0 and summary.exit_code is ExecExit.FINDINGS


@needs_fuse
def test_the_time_budget_stops_the_run_and_kills_the_checker_in_flight() -> None:
    # quick on the clean end (no temp file), 10 s on a disk that holds the temp file
    slow = '[ -e "$CRASHKIT_DIR/config.tmp" ] && sleep 10; exit 0'
    started = time.monotonic()
    summary = explore_exec(SAFE, slow, time_budget=1.0, jobs=2)
    took = time.monotonic() - started
    assert summary.stopped is Stopped.TIME and summary.exit_code is ExecExit.INCONCLUSIVE
    assert summary.unchecked > 0 and summary.points_explored < summary.points_total
    assert took < 8.0  # the checkers in flight were killed, not waited for


@needs_fuse
def test_a_checker_past_its_timeout_is_killed_and_its_disk_is_a_finding() -> None:
    slow = '[ -e "$CRASHKIT_DIR/config.tmp" ] && sleep 10; exit 0'
    started = time.monotonic()
    summary = explore_exec(SAFE, slow, timeout=0.5, budget=4, max_findings=1)
    assert time.monotonic() - started < 8.0
    assert summary.failed > 0 and summary.exit_code is ExecExit.FINDINGS
    (first,) = summary.findings
    assert first.returncode == -signal.SIGKILL
    assert first.output == "(the checker did not finish in 0.5 s: killed)"
    assert first.cut == "in order: everything up to the crash persisted"


@needs_fuse
def test_the_time_budget_bounds_the_recording_too() -> None:
    summary = explore_exec("sleep 5", "true", time_budget=1.0)
    assert (summary.stopped, summary.recorded, summary.exit_code) == (
        Stopped.TIME,
        False,
        ExecExit.INCONCLUSIVE,
    )
    assert summary.stop_lines() == [
        "stopped while recording the command: the time budget of 1 s ran out; nothing was checked"
    ]


# -- ignore, dedupe, parallel ----------------------------------------------------------


@needs_fuse
def test_ignore_leaves_the_files_variants_out_and_keeps_it_whole(tmp_path: Path) -> None:
    command = _script(tmp_path, "logged.py", LOGGED)
    check = _script(tmp_path, "log_check.py", LOG_CHECK)
    every = explore_exec(command, check, max_findings=0, exploration="bounded")
    assert (every.states, every.checked, every.exit_code) == (128, 67, ExecExit.FINDINGS)
    assert {d.path for f in every.findings for d in f.deviations} == {"/LOG"}
    for pattern in ("/LOG", "*/L*"):
        ignored = explore_exec(command, check, ignore=[pattern], exploration="bounded")
        assert (ignored.states, ignored.checked, ignored.failed) == (36, 23, 0), pattern
        assert ignored.exit_code is ExecExit.OK
    exhaustive = explore_exec(command, check, ignore=["/LOG"], exploration="exhaustive")
    assert (exhaustive.states, exhaustive.failed) == (36, 0)


@needs_fuse
def test_two_checkers_at_once_give_the_same_states_and_verdicts_as_one() -> None:
    one, two = unsafe_every("bounded"), unsafe_every("bounded", jobs=2)
    assert (one.jobs, two.jobs) == (1, 2)
    counts = ("states", "checked", "failed", "points_explored", "unchecked")
    assert [getattr(two, c) for c in counts] == [getattr(one, c) for c in counts]
    assert [getattr(one, c) for c in counts] == [138, 85, 90, 12, 0]
    assert two.findings == one.findings and len(one.findings) == 90


@needs_fuse
def test_max_findings_lists_that_many_and_counts_the_rest() -> None:
    capped = explore_exec(UNSAFE, CHECKER, max_findings=2, exploration="bounded")
    assert (len(capped.findings), capped.failed, capped.more_findings) == (2, 90, 88)
    assert finding_lines(capped)[-1].startswith("... and 88 more refused crash state(s)")
    every = unsafe_every("bounded")
    assert (len(every.findings), every.more_findings) == (90, 0)
    assert every.findings[:2] == capped.findings  # the first ones, in crash order


@needs_fuse
def test_keep_leaves_each_listed_findings_disk_to_rerun_the_checker_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(
        main,
        ["explore", "--exec", UNSAFE, "--check", CHECKER, "--keep", "--max-findings", "2"],
    )
    assert result.exit_code == 1
    (root,) = tmp_path.glob("crashkit-exec-*")
    assert f"the refused disks are kept under {root} (--keep)" in result.stderr
    disks = sorted(p for p in root.iterdir() if p.name.startswith("disk-"))
    assert len(disks) == 2
    # and the example of each vulnerability, with the command that reruns it alone
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith("disk-")) == ["V1"]
    assert f"   disk kept: CRASHKIT_DIR={root / 'V1'} {CHECKER}" in result.stderr
    (rerun_line,) = [line for line in result.stderr.splitlines() if line.startswith("   rerun:")]
    assert rerun_line.startswith(f"   rerun: crashkit explore --exec '{UNSAFE}' --check ")
    assert rerun_line.split()[-2] == "--only"
    for disk in disks:
        rerun = subprocess.run(
            CHECKER, shell=True, env={**os.environ, "CRASHKIT_DIR": str(disk)}, check=False
        )
        assert rerun.returncode == 1
        assert f"  disk kept: CRASHKIT_DIR={disk} {CHECKER}" in result.stderr


# -- honest failures -----------------------------------------------------------------


@needs_fuse
def test_a_missing_checker_is_a_usage_error_naming_it() -> None:
    result = CliRunner().invoke(
        main, ["explore", "--exec", SAFE, "--check", "no-such-checker-crashkit"]
    )
    assert result.exit_code == 2
    assert "the checker cannot run (exit 127): 'no-such-checker-crashkit'" in result.stderr
    direct = CliRunner().invoke(main, ["explore", "--exec", SAFE, "--check", "/no/such/checker"])
    assert direct.exit_code == 2 and "'/no/such/checker'" in direct.stderr


@needs_fuse
def test_a_checker_that_refuses_the_clean_end_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        main, ["explore", "--exec", SAFE, "--check", f"{sys.executable} /no/such/check.py"]
    )
    assert result.exit_code == 2
    assert "refuses the disk the command left when it ended cleanly (exit 2)" in result.stderr


@needs_fuse
def test_a_command_that_makes_no_call_on_the_mount_is_reported(tmp_path: Path) -> None:
    elsewhere = f"{sys.executable} -c \"open('{tmp_path / 'out'}', 'w').write('x')\""
    result = CliRunner().invoke(main, ["explore", "--exec", elsewhere, "--check", "true"])
    assert result.exit_code == 3 and int(ExecExit.NOTHING_RECORDED) == 3
    assert "the command made no file-system call under $CRASHKIT_DIR" in result.stderr
    data = json.loads(
        CliRunner()
        .invoke(main, ["explore", "--exec", elsewhere, "--check", "true", "--json"])
        .stdout
    )
    assert (data["calls"], data["exit_code"]) == (0, 3)
    assert data["nothing_recorded"].startswith("the command made no file-system call")


@needs_fuse
def test_a_command_that_fails_says_its_exit_code_and_stderr() -> None:
    failing = f"{sys.executable} -c \"import sys; sys.exit('broken on purpose')\""
    result = CliRunner().invoke(main, ["explore", "--exec", failing, "--check", "true"])
    assert result.exit_code == 1
    assert "the command itself failed (exit 1): broken on purpose" in result.stderr


def test_exec_options_without_exec_are_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["explore", "--budget", "3"])
    assert result.exit_code == 2 and "--budget is an option of --exec" in result.output
    result = CliRunner().invoke(main, ["explore", "-j", "2"])
    assert result.exit_code == 2 and "--jobs is an option of --exec" in result.output


# -- signals ---------------------------------------------------------------------------


@needs_fuse
@pytest.mark.parametrize(
    ("sig", "code", "as_json"), [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)]
)
def test_a_signal_mid_run_gives_the_partial_summary_and_leaves_nothing_behind(
    tmp_path: Path, sig: signal.Signals, code: int, as_json: bool
) -> None:
    temp, marks = tmp_path / "tmp", tmp_path / "marks"
    temp.mkdir()
    marks.mkdir()
    check = f"touch {marks}/start.$$; sleep 0.4; touch {marks}/end.$$"
    argv = [sys.executable, "-m", "crashkit.harness", "explore", "--exec", UNSAFE]
    argv += ["--check", check, "-j", "2", *(["--json"] if as_json else [])]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(list(marks.glob("start.*"))) < 3:  # the clean end, then the first states
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if as_json:
        data = json.loads(out)
        assert (data["stopped"], data["exit_code"], data["points_total"]) == (
            "interrupted",
            code,
            12,
        )
        assert data["points_explored"] < 12 and data["unchecked"] > 0
    else:
        assert f"stopped early: interrupted by signal {int(sig)}. Explored" in err
    assert list(temp.iterdir()) == []  # no crashkit-exec-* (nor crashkit-real-*) left
    ends = set(marks.glob("end.*"))
    time.sleep(0.8)  # a checker still running (0.4 s each) would now write its end mark
    assert set(marks.glob("end.*")) == ends


# -- the scratch folder and the checker line (no FUSE needed) ---------------------------


def test_the_scratch_folder_rewrites_only_what_differs_and_undoes_the_checker(
    tmp_path: Path,
) -> None:
    scratch = _Scratch(str(tmp_path / "w"))
    big = b"x" * 10_000
    first = DiskImage({"/a/log": b"one\n", "/a/big": big, "/gone": b"g"}, ("/empty",))
    scratch.write(first)
    assert read_folder(scratch.folder) == first
    big_path = tmp_path / "w" / "a" / "big"
    inode = big_path.stat().st_ino
    assert big_path.stat().st_mtime_ns == FIXED_MTIME_NS
    # a checker that recovers: rewrites a file (same size), adds a lock, removes a folder
    (tmp_path / "w" / "a" / "log").write_bytes(b"ONE\n")
    (tmp_path / "w" / "a" / "lock").write_bytes(b"")
    (tmp_path / "w" / "empty").rmdir()
    scratch.repair()
    second = DiskImage({"/a/log": b"one\ntwo\n", "/a/big": big, "/b": b"new"}, ("/empty",))
    scratch.write(second)
    assert read_folder(scratch.folder) == second
    assert big_path.stat().st_ino == inode  # unchanged: not rewritten
    scratch.repair()
    scratch.write(first)  # what the checker changed the first time is rewritten, too
    assert read_folder(scratch.folder) == first
    third = DiskImage({"/a": b"a file where a folder was"})
    scratch.write(third)
    assert read_folder(scratch.folder) == third


def test_a_checker_line_without_shell_syntax_runs_without_a_shell() -> None:
    argv = _checker_argv("true --flag=1")
    assert argv is not None and argv[0].endswith("/true") and argv[1:] == ["--flag=1"]
    for line in (
        "sleep 1; exit 0",
        "FOO=1 true",
        "test -f $CRASHKIT_DIR/x",
        "true > out",
        "nosuch-x",
    ):
        assert _checker_argv(line) is None, line
