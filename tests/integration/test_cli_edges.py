"""Every CLI path a user can hit ends cleanly: a real `crashkit` process, its exit code
(README "Exit codes") and its message asserted, and never a traceback.

Covers a failing events output (exit 6, contract D.39), user text kept verbatim (no
console markup), the mistakes that used to end in a traceback, what a run that stopped
on bad input had done, `inspect`/`replay` on missing and non-regular files, config
errors that name the line and the allowed values, and the scenario runner's edges.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from crashkit.orchestrator.errors import ExitCode
from crashkit.orchestrator.sources import encode_snapshot
from crashkit.regime_engine.synthetic import generate

CRASHKIT = [sys.executable, "-m", "crashkit.harness"]
STATE_CONFIG = '[engine]\nhysteresis_state_path = "state/h.jsonl"\ncommit_clock = "engine"\n'


def crashkit(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run `crashkit ARGS` in a fresh process; assert it did not end in a traceback."""
    proc = subprocess.run(
        [*CRASHKIT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        **kw,  # type: ignore[call-overload]
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    return proc  # type: ignore[no-any-return]


def run(
    config: Path, snapshots: Path, *extra: str, **kw: object
) -> subprocess.CompletedProcess[str]:
    """`crashkit run --config CONFIG --input SNAPSHOTS EXTRA...`"""
    return crashkit("run", "--config", str(config), "--input", str(snapshots), *extra, **kw)  # type: ignore[arg-type]


def config_file(tmp_path: Path, body: str = STATE_CONFIG) -> Path:
    path = tmp_path / "o.toml"
    path.write_text(body)
    return path


def market(tmp_path: Path, symbols: int = 2, ticks: int = 4, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(encode_snapshot(s) for s in generate(symbols, ticks, 3)))
    return path


def events_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == kind]


def states(events: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """symbol -> the last state payload of `kind` events."""
    return {e["symbol"]: e["payload"]["state"] for e in of_type(events, kind)}


def lines_of(path: Path) -> int:
    return len(path.read_bytes().splitlines())


# -- a failing events output: exit 6, the tick persisted, the restart republishes -------------


def test_events_to_dev_full_exits_6_and_the_restart_republishes_the_persisted_tick(
    tmp_path: Path,
) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path)
    state = tmp_path / "state" / "h.jsonl"
    proc = run(config, snapshots, "--events", "/dev/full")
    assert proc.returncode == ExitCode.OUTPUT_FAILED
    assert int(ExitCode.OUTPUT_FAILED) == 6  # the README's table
    assert "error: /dev/full: cannot publish events: No space left on device" in proc.stderr
    assert f"already persisted to {state}" in proc.stderr
    assert "hysteresis_state_restored" in proc.stderr
    assert "stopped: the events output failed" in proc.stderr
    assert lines_of(state) == 2  # the first tick (two symbols) was persisted, then it stopped
    events = tmp_path / "events.jsonl"
    again = run(config, snapshots, "--events", str(events))
    assert again.returncode == 0, again.stderr
    published = events_of(events)
    restored = states(published, "hysteresis_state_restored")
    first_tick = [json.loads(line) for line in state.read_bytes().splitlines()[:2]]
    key = ("engine_timestamp_ms", "anchor_regime", "candidate_regime", "progress_current")
    assert {symbol: tuple(st[k] for k in key) for symbol, st in restored.items()} == {
        record["symbol"]: tuple(record[k] for k in key) for record in first_tick
    }
    assert len(of_type(published, "hysteresis_decision_published")) == 2 * 3  # the rest, once


def test_events_at_the_file_size_limit_exits_6_with_the_tick_persisted(tmp_path: Path) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path)
    events = tmp_path / "events.jsonl"
    limit = 20_000
    events.write_bytes(b"x" * (limit - 10) + b"\n")  # the next tick's events cross the limit

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run(
        config,
        snapshots,
        "--events",
        str(events),
        preexec_fn=limit_files,
    )
    assert proc.returncode == 6, proc.stderr
    assert f"error: {events}: cannot publish events: File too large" in proc.stderr
    assert lines_of(tmp_path / "state" / "h.jsonl") == 2


def test_events_into_a_closed_pipe_exits_6_without_noise(tmp_path: Path) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path, symbols=20, ticks=200)
    proc = subprocess.Popen(
        [*CRASHKIT, "run", "--config", str(config), "--input", str(snapshots)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())  # `| head -1`
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 6, stderr
    assert first["event_type"] == "hysteresis_decision_published"
    assert "error: stdout: cannot publish events: Broken pipe" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert lines_of(tmp_path / "state" / "h.jsonl") >= 20  # at least the first tick persisted


def test_events_path_that_cannot_be_opened_is_a_usage_error_before_anything(
    tmp_path: Path,
) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run(config, snapshots, "--events", f"{blocker}/e.jsonl")
    assert proc.returncode == 2
    assert f"--events {blocker}/e.jsonl: cannot open for appending: {blocker} is a file" in (
        proc.stderr
    )
    assert not (tmp_path / "state").exists()  # refused before the state file was opened


def test_synth_into_a_closed_pipe_or_a_full_disk_exits_6(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CRASHKIT, "synth", "--symbols", "20", "--ticks", "2000", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 6, stderr
    assert "error: stdout: cannot write snapshots: Broken pipe (the output is incomplete)" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    full = crashkit("synth", "--symbols", "2", "--ticks", "3", "--seed", "1", "--out", "/dev/full")
    assert full.returncode == 6
    assert "/dev/full: cannot write snapshots: No space left on device" in full.stderr


def test_any_command_whose_stdout_is_closed_exits_6_not_rich_s_1() -> None:
    library = str(Path(__file__).parents[2] / "scenarios" / "torn")
    proc = subprocess.Popen(
        [*CRASHKIT, "scenarios", "run", library],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it printed anything: its first line meets a closed pipe
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 6, stderr
    assert stderr == (
        "error: stdout was closed before the output was complete (the reader of a pipe "
        "exited): the command's work was done, only its output is cut short\n"
    )


# -- user text stays as typed ----------------------------------------------------------------


def test_square_brackets_in_messages_and_paths_are_kept(tmp_path: Path) -> None:
    no_input = crashkit("run", "--config", str(config_file(tmp_path)))
    assert no_input.returncode == 2
    assert "pass --input SNAPSHOTS.jsonl or add a [market] section" in no_input.stderr

    odd = tmp_path / "x[red]y"
    (odd / "s.jsonl").mkdir(parents=True)  # a directory where the state file should be
    refused = run(
        config_file(tmp_path),
        market(tmp_path),
        "--state",
        str(odd / "s.jsonl"),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert refused.returncode == 3
    assert f"refusing to start: {odd}/s.jsonl: state path is a directory" in refused.stderr

    shown = crashkit("inspect", str(odd / "s.jsonl"))
    assert shown.returncode == 3
    assert shown.stdout.startswith(f"restore report: {odd}/s.jsonl\n")

    named = scenario(tmp_path, "a[red]b", STEPS, "exit_code: 4\n")  # fails: it exits 0
    ran = crashkit("scenarios", "run", str(named))
    assert ran.returncode == 1
    assert "│ a[red]b │ FAIL" in ran.stdout
    assert f"a[red]b ({named})" in ran.stdout


# -- no traceback for these mistakes ---------------------------------------------------------


def test_synth_creates_the_out_folder_and_reports_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "s.jsonl"
    proc = crashkit("synth", "--symbols", "2", "--ticks", "5", "--seed", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert lines_of(out) == 10
    assert proc.stderr == f"synth: 10 snapshots (2 symbols x 5 ticks, seed 1) to {out}\n"
    to_stdout = crashkit("synth", "--symbols", "2", "--ticks", "5", "--seed", "1")
    assert to_stdout.stdout.encode() == out.read_bytes()
    assert to_stdout.stderr == "synth: 10 snapshots (2 symbols x 5 ticks, seed 1) to stdout\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = crashkit(
        "synth", "--symbols", "1", "--ticks", "1", "--seed", "1", "--out", f"{blocker}/s"
    )
    assert bad.returncode == 2
    assert f"error: --out {blocker}/s: cannot write: {blocker} is a file, not a folder" in (
        bad.stderr
    )


def test_junit_xml_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    library = Path(__file__).parents[2] / "scenarios" / "torn"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = crashkit("scenarios", "run", str(library), "--junit-xml", f"{blocker}/out.xml")
    assert proc.returncode == 2
    assert f"--junit-xml {blocker}/out.xml: cannot write: {blocker} is a file" in proc.stderr
    nested = tmp_path / "reports" / "scenarios.xml"  # a missing folder is created
    ok = crashkit("scenarios", "run", str(library), "--junit-xml", str(nested))
    assert ok.returncode == 0, ok.stdout
    assert nested.read_text().startswith("<?xml")


def test_config_backend_of_the_wrong_signature_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "wrongsig.py").write_text("def bad(path):\n    return None\n")
    config = config_file(tmp_path, STATE_CONFIG + 'backend = "wrongsig:bad"\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = run(config, market(tmp_path), env=env)
    assert proc.returncode == 2
    assert (
        f"{config}:4: [engine] backend: backend 'wrongsig:bad': 'bad' must take (path, config)"
        in (proc.stderr)
    )


def test_scenarios_run_on_a_missing_or_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    missing = crashkit("scenarios", "run", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert f"bad scenario: {tmp_path}/nope: no such file or folder" in missing.stdout
    (tmp_path / "empty").mkdir()
    empty = crashkit("scenarios", "run", str(tmp_path / "empty"))
    assert empty.returncode == 2
    assert f"bad scenario: {tmp_path}/empty: no scenario files (*.yaml, *.yml) here" in empty.stdout


def test_explore_suite_with_workload_options_is_a_usage_error() -> None:
    proc = crashkit("explore", "--suite", "ci", "--ticks", "3", "--seed", "2")
    assert proc.returncode == 2
    assert "--suite runs its own workloads; it cannot be combined with --ticks, --seed" in (
        proc.stderr
    )


# -- bad input found after some ticks: what was already done ---------------------------------


def test_a_bad_snapshot_line_mid_run_says_what_was_persisted_and_published(
    tmp_path: Path,
) -> None:
    snapshots = market(tmp_path, symbols=2, ticks=3)
    with snapshots.open("ab") as out:
        out.write(b'{"symbol": "SYM000"}\n')
    config, events = config_file(tmp_path), tmp_path / "e.jsonl"
    state = tmp_path / "state" / "h.jsonl"
    proc = run(config, snapshots, "--events", str(events))
    assert proc.returncode == 2
    assert f"error: {snapshots}:7: not a valid snapshot" in proc.stderr
    assert (
        # the third tick ends where the bad line is read: it was not run
        f"2 tick(s) were run before it (4 decision(s) persisted to {state} and published); "
        "a restart resumes after them"
    ) in proc.stderr
    assert lines_of(state) == 4
    assert len(of_type(events_of(events), "hysteresis_decision_published")) == 4
    replay = crashkit("replay", "--config", str(config), "--input", str(snapshots))
    assert replay.returncode == 2
    assert "2 tick(s) were run before it (4 decision(s) published; nothing was persisted)" in (
        replay.stderr
    )
    first = tmp_path / "first-bad.jsonl"
    first.write_bytes(b"not json\n")
    fresh = run(
        config,
        first,
        "--state",
        str(tmp_path / "new.jsonl"),
    )
    assert fresh.returncode == 2
    assert f"no tick was run before it; {tmp_path}/new.jsonl is unchanged" in fresh.stderr


# -- inspect and replay on missing, non-regular and unreadable files -------------------------


def test_inspect_a_missing_file_says_so_and_prints_null(tmp_path: Path) -> None:
    proc = crashkit("inspect", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 0
    assert (
        proc.stderr
        == f"no file at {tmp_path}/none.jsonl: a restore starts empty (outcome bootstrap)\n"
    )
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in proc.stdout.splitlines()
        if line.count("│") == 3
    }
    assert rows["outcome"] == "bootstrap"
    assert rows["reason"] == "null"
    assert "None" not in proc.stdout
    as_json = crashkit("inspect", str(tmp_path / "none.jsonl"), "--json")
    assert json.loads(as_json.stdout)["outcome"] == "bootstrap"


def test_inspect_an_unreadable_file_exits_3() -> None:
    proc = crashkit("inspect", "/proc/self/mem")  # a regular file whose read fails (EIO)
    assert proc.returncode == 3
    assert "cannot read state file: Input/output error" in proc.stdout.replace("\n", "")


def test_replay_from_a_missing_or_non_regular_state_is_an_error(tmp_path: Path) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path)
    base = ("replay", "--config", str(config), "--input", str(snapshots), "--at", "1")
    missing = crashkit(*base, "--from-state", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2
    assert f"--from-state {tmp_path}/none.jsonl: no such file" in missing.stderr
    assert missing.stdout == ""  # not a silent full replay
    (tmp_path / "adir").mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path / "adir", fifo):
        refused = crashkit(*base, "--from-state", str(path))
        assert refused.returncode == 3, refused.stderr
        assert f"refusing to replay: {path}:" in refused.stderr
        assert refused.stdout == ""


# -- config errors name the line and what is allowed; --version; bare crashkit ---------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            STATE_CONFIG + "bogus = 1\n",
            "o.toml:4: [engine] bogus: unknown key `bogus`; allowed keys: engine_mode, "
            "hysteresis_state_path, commit_clock, backend",
        ),
        (
            '[engine]\n\nengine_mode = "fast"\n',
            "o.toml:3: [engine] engine_mode: invalid enum value 'fast'; "
            "expected 'hysteresis' or 'truth'",
        ),
        (
            STATE_CONFIG.replace('"engine"', '"cpu"'),
            "o.toml:3: [engine] commit_clock: invalid enum value 'cpu'; "
            "expected 'wall' or 'engine'",
        ),
        (
            STATE_CONFIG + '[hysteresis]\nallowed_regimes = ["CHOP_BALANCED", "SIDEWAYS"]\n',
            "o.toml:5: [hysteresis] allowed_regimes[1]: invalid enum value 'SIDEWAYS'; "
            "expected one of CHOP_BALANCED, CHOP_STOPHUNT,",
        ),
        (
            STATE_CONFIG + "[hysteresis]\n# the window\nwindow_updates = 0\n",
            "o.toml:6: [hysteresis] window_updates: must be an int >= 1, got 0",
        ),
        (
            STATE_CONFIG + "[market]\nsymbols = 0\n",
            "o.toml:5: [market] symbols: expected int >= 1",
        ),
        (
            STATE_CONFIG + "[markets]\n",
            "o.toml:4: unknown section or top-level key `markets`; "
            "allowed sections: engine, hysteresis, market",
        ),
        ("[hysteresis]\n", "o.toml: missing the [engine] section"),
    ],
    ids=["key", "engine_mode", "commit_clock", "regime", "bound", "market", "section", "missing"],
)
def test_config_errors_name_the_line_and_the_allowed_values(
    tmp_path: Path, body: str, message: str
) -> None:
    proc = crashkit("run", "--config", str(config_file(tmp_path, body)), "--input", "x.jsonl")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {tmp_path}/{message}"), proc.stderr


def test_version_and_bare_crashkit() -> None:
    version = crashkit("--version")
    assert version.returncode == 0
    assert version.stdout == f"crashkit, version {importlib.metadata.version('crashkit')}\n"
    bare = crashkit()
    assert bare.returncode == 0
    assert bare.stdout.startswith("Usage: ")
    for command in ("run", "inspect", "replay", "explore", "scenarios", "merge"):
        assert f"  {command} " in bare.stdout
    group = crashkit("scenarios")
    assert group.returncode == 0
    assert group.stdout.startswith("Usage: ") and "  run " in group.stdout


# -- run says what restore skipped -----------------------------------------------------------


def test_run_reports_invalid_lines_and_the_torn_tail_it_will_cut(tmp_path: Path) -> None:
    config, snapshots = config_file(tmp_path), market(tmp_path, ticks=2)
    assert (
        run(
            config,
            snapshots,
            "--events",
            str(tmp_path / "e"),
        ).returncode
        == 0
    )
    state = tmp_path / "state" / "h.jsonl"
    lines = state.read_bytes().splitlines(keepends=True)
    state.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]) + b'{"torn')
    proc = run(config, snapshots, "--events", str(tmp_path / "e"))
    assert proc.returncode == 0, proc.stderr
    assert f"restore of {state}: line 2 skipped: not_json" in proc.stderr
    assert f"restore of {state}: torn tail of 6 byte(s) after the last complete line ignored" in (
        proc.stderr
    )


# -- the scenario runner's edges -------------------------------------------------------------

HEAD = """\
name: {name}
description: "an edge of the runner"
{backend}input:
  synthetic: {{symbols: 1, ticks: 2, seed: 1}}
steps:
{steps}expect:
{expect}"""


def scenario(tmp_path: Path, name: str, steps: str, expect: str, backend: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        HEAD.format(
            name=name,
            backend=f"backend: {backend}\n" if backend else "",
            steps=textwrap.indent(textwrap.dedent(steps), "  "),
            expect=textwrap.indent(textwrap.dedent(expect), "  "),
        )
    )
    return path


STEPS = "- run: {ticks: 1}\n- crash: {point: last, cut: last}\n- restart: {}\n- run: {ticks: 1}\n"


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        (
            "exit_code: 7\n",
            "expect.exit_code: invalid enum value 7; expected 0 or 1 or 3 or 4 or 5 or null",
        ),
        (
            "startup: {outcome: ok, exit_code: 4}\n",
            "expect.startup.exit_code: invalid enum value 4; expected 0 or 1 or 3",
        ),
    ],
)
def test_scenario_exit_codes_are_checked_against_the_documented_ones(
    tmp_path: Path, expect: str, message: str
) -> None:
    path = scenario(tmp_path, "codes", STEPS, expect)
    proc = crashkit("scenarios", "run", str(path))
    assert proc.returncode == 2
    assert f"bad scenario: {path}:" in proc.stdout and message in proc.stdout


def test_update_never_records_a_violated_invariant_and_exits_1(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "lossy",
        STEPS,
        "exit_code: 3\ninvariants: [all]\n",
        backend="crashkit.harness.kit.variants:no_fsync",
    )
    proc = crashkit("scenarios", "run", str(path), "--update")
    assert proc.returncode == 1, proc.stdout
    text = path.read_text()
    assert "  exit_code: 0\n" in text  # the value was recorded
    assert "  invariants: [all]\n" in text  # the invariant was not narrowed away
    assert "invariant 1-durability: steps[2]: acknowledged SYM000" in proc.stdout
    assert "  exit_code: want 3" not in proc.stdout  # what --update fixed is not listed
    assert "still failing after --update: lossy" in proc.stdout
    assert crashkit("scenarios", "run", str(path)).returncode == 1


def test_a_failed_step_is_reported_once_not_as_a_cascade(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "short",
        "- run: {ticks: 5}\n- crash: {point: last, cut: last}\n- restart: {}\n- run: {ticks: 1}\n",
        "exit_code: 0\nhalted_tick: null\nevents: {by_type: {hysteresis_decision_published: 9}}\n",
    )
    proc = crashkit("scenarios", "run", str(path))
    assert proc.returncode == 1
    failures = [line for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert failures == [
        "  steps[0].run.ticks: process 0 has read 0 of the input's 2 ticks: only 2 left; "
        "the 3 step(s) after it were not run and the expectations not judged"
    ]
