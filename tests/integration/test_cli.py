"""The `crashkit` command line: exact interfaces, exit codes, and the process-level acceptance.

SIGKILL and the file-size limit need real processes; the rest runs in-process.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.harness.cli import main
from crashkit.regime_engine.codec import encode_state
from crashkit.regime_engine.contracts import DECISION_FIELDS, Regime
from tests.conftest import make_state

CRASHKIT = [sys.executable, "-m", "crashkit.harness"]


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr, interleaved)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def invoke_stdout(*args: str) -> tuple[int, str]:
    """Exit code and stdout alone (what a pipe would get)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


def make_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "orchestrator.toml"
    config.write_text(
        '[engine]\nengine_mode = "hysteresis"\nhysteresis_state_path = "state/h.jsonl"\n' + extra
    )
    return config


def read_events(path: Path) -> list[dict[str, object]]:
    """Events of one run; a killed run may leave one torn last line, which is skipped."""
    out = []
    for line in path.read_bytes().split(b"\n"):
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def decisions(events: list[dict[str, object]]) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for event in events:
        if event["event_type"] in ("hysteresis_decision_published", "hysteresis_state_restored"):
            state = event["payload"]["state"]  # type: ignore[index]
            value = tuple(state[k] for k in DECISION_FIELDS)  # type: ignore[index]
            run_id = event["run_id"]
            assert isinstance(run_id, str)
            assert out.setdefault(run_id, value) == value
    return out


#: decisions in the market below: 4 symbols x 400 ticks, each run fsyncing once per tick
#: (SQLite: a transaction per tick), so a run takes a second or two, not a minute
EVENTS = 1600


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market") / "snapshots.jsonl"
    assert (
        invoke("synth", "--symbols", "4", "--ticks", "400", "--seed", "3", "--out", str(path))[0]
        == 0
    )
    return path


def test_synth_is_byte_stable_and_well_formed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    invoke("synth", "--symbols", "3", "--ticks", "5", "--seed", "9", "--out", str(a))
    invoke("synth", "--symbols", "3", "--ticks", "5", "--seed", "9", "--out", str(b))
    assert a.read_bytes() == b.read_bytes()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(rows) == 15
    stamps = [r["engine_timestamp_ms"] for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    code, stdout = invoke_stdout("synth", "--symbols", "3", "--ticks", "5", "--seed", "9")
    assert code == 0 and stdout.encode() == a.read_bytes()
    assert invoke_stdout("synth", "--symbols", "3", "--ticks", "5", "--seed", "10")[1] != stdout


def test_run_minimal_config_relative_state_and_events(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path)
    events = tmp_path / "events.jsonl"
    code, _ = invoke(
        "run", "--config", str(config), "--input", str(market), "--events", str(events)
    )
    assert code == 0
    state = tmp_path / "state" / "h.jsonl"  # relative to the config's folder
    assert state.exists()
    published = read_events(events)
    assert {e["schema"] for e in published} == {"orchestrator_event"}
    assert (
        len([e for e in published if e["event_type"] == "hysteresis_decision_published"]) == EVENTS
    )
    first = published[0]
    assert sorted(first) == sorted(
        [
            "schema",
            "schema_version",
            "event_type",
            "symbol",
            "engine_timestamp_ms",
            "run_id",
            "payload",
        ]
    )
    assert first["run_id"] == f"{first['symbol']}:{first['engine_timestamp_ms']}"
    assert sorted(first["payload"]["state"]) == sorted(  # type: ignore[index]
        [*DECISION_FIELDS, "last_commit_timestamp_ms", "progress_required", "reason_codes"]
    )


def test_state_flag_overrides_config(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path)
    other = tmp_path / "elsewhere" / "s.jsonl"
    code, _ = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(market),
        "--state",
        str(other),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 0 and other.exists() and not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[engine]\nengine_mode = "hysteresis"\n', "hysteresis_state_path is required"),
        (
            '[engine]\nengine_mode = "fast"\nhysteresis_state_path = "s"\n',
            "bad.toml:2: [engine] engine_mode: invalid enum value 'fast'; "
            "expected 'hysteresis' or 'truth'",
        ),
        ('[engine]\nhysteresis_state_path = "s"\nbogus = 1\n', "bogus"),
        (
            '[engine]\nhysteresis_state_path = "s"\n[hysteresis]\nwindow_updates = 0\n',
            "window_updates",
        ),
        ("[engine\n", "not valid TOML"),
        ('[engine]\nhysteresis_state_path = "s"\nbackend = "nomodule"\n', "module:attribute"),
    ],
)
def test_config_errors_exit_2_naming_file_and_key(
    tmp_path: Path, market: Path, body: str, needle: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    code, output = invoke("run", "--config", str(config), "--input", str(market))
    assert code == 2
    assert needle in output and "bad.toml" in output


@pytest.mark.parametrize("kind", ["directory", "device", "fifo"])
def test_non_regular_state_path_refused_with_exit_3(
    tmp_path: Path, market: Path, kind: str
) -> None:
    if kind == "directory":
        state = tmp_path / "adir"
        state.mkdir()
    elif kind == "device":
        state = Path("/dev/zero")
    else:
        state = tmp_path / "fifo"
        os.mkfifo(state)
    proc = subprocess.run(
        [
            *CRASHKIT,
            "run",
            "--config",
            str(make_config(tmp_path)),
            "--input",
            str(market),
            "--state",
            str(state),
            "--events",
            str(tmp_path / "e.jsonl"),
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert b"not a regular file" in proc.stderr
    assert not (tmp_path / "e.jsonl").exists() or read_events(tmp_path / "e.jsonl") == []


#: `crashkit run` on each shipped backend: (the config line naming it, the state file name)
BACKENDS = {
    "jsonl": ("", "h.jsonl"),
    "sqlite": ('backend = "crashkit.orchestrator.store.sqlite:BACKEND"\n', "h.db"),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_sigkill_at_any_moment_then_restart_equals_uninterrupted(
    tmp_path: Path, market: Path, backend: str
) -> None:
    line, name = BACKENDS[backend]
    config = make_config(tmp_path, line)
    reference_events = tmp_path / "reference.jsonl"
    code, _ = invoke(
        "replay", "--config", str(config), "--input", str(market), "--events", str(reference_events)
    )
    assert code == 0
    expected = decisions(read_events(reference_events))
    assert len(expected) == EVENTS
    killed_mid_run = 0
    # Kill once before anything is published, then once the events file holds about k
    # events (polled, so a slow or loaded machine still kills mid-run).
    for attempt, events_before_kill in enumerate((0, 80, 800, 1520)):
        state = tmp_path / f"s{attempt}" / name
        first, second = tmp_path / f"a{attempt}.jsonl", tmp_path / f"b{attempt}.jsonl"
        args = [
            *CRASHKIT,
            "run",
            "--config",
            str(config),
            "--input",
            str(market),
            "--state",
            str(state),
        ]
        proc = subprocess.Popen([*args, "--events", str(first)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while events_before_kill and proc.poll() is None and time.monotonic() < deadline:
            if first.exists() and first.stat().st_size >= events_before_kill * 300:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if first.exists() and 0 < len(read_events(first)) < EVENTS:
            killed_mid_run += 1
        done = subprocess.run([*args, "--events", str(second)], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        events = (read_events(first) if first.exists() else []) + read_events(second)
        assert decisions(events) == expected, f"kill after about {events_before_kill} events"
        assert state.read_bytes().startswith(b"SQLite format 3\0") == (backend == "sqlite")
    assert killed_mid_run >= 2  # the test really interrupted runs, not only before or after


def test_file_size_limit_halts_with_exit_4(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path)
    state = tmp_path / "state" / "h.jsonl"
    limit = 150_000  # bytes: hit mid-run, mid-line

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [*CRASHKIT, "run", "--config", str(config), "--input", str(market)],
        capture_output=True,
        timeout=120,
        preexec_fn=limit_files,
    )
    assert proc.returncode == 4, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    halted = events[-1]
    assert halted["event_type"] == "scheduling_halted"
    assert halted["payload"]["reason"] == "persist_failed"
    failed_ts = halted["engine_timestamp_ms"]
    assert not [e for e in events[:-1] if e["engine_timestamp_ms"] == failed_ts]
    published = {e["run_id"] for e in events if e["event_type"] == "hysteresis_decision_published"}
    code, output = invoke("inspect", str(state), "--json")
    report = json.loads(output)
    assert (code, report["outcome"]) == (0, "ok")
    assert os.path.getsize(state) <= limit
    assert len(published) == report["valid"]  # every published decision is committed
    # and a restart without the limit resumes cleanly
    proc = subprocess.run(
        [*CRASHKIT, "run", "--config", str(config), "--input", str(market)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


A1 = encode_state(make_state("A", 100, Regime.CHOP_BALANCED))
B1 = encode_state(make_state("B", 150, Regime.TREND_BUILD_UP))


@pytest.mark.parametrize(
    ("content", "outcome", "code"),
    [
        (None, "bootstrap", 0),  # missing file
        (b"", "bootstrap", 0),
        (b"\n \n", "bootstrap", 0),
        (A1[:30], "bootstrap", 0),  # only a torn tail
        (A1 + b"\n\n" + B1, "ok", 0),  # blank lines ignored
        (A1 + B1[:-1], "ok", 0),  # torn tail ignored
        (A1 + b"junk\n", "ok", 0),  # invalid line ignored
        (b"junk\n[1]\n", "fatal", 3),  # only invalid lines
    ],
)
def test_inspect_every_row_of_the_restore_table(
    tmp_path: Path, content: bytes | None, outcome: str, code: int
) -> None:
    path = tmp_path / "state.jsonl"
    if content is not None:
        path.write_bytes(content)
    exit_code, output = invoke_stdout("inspect", str(path), "--json")
    report = json.loads(output)
    assert (report["outcome"], exit_code) == (outcome, code)
    assert (report["reason"] is None) == (outcome != "fatal")
    if content is not None:
        assert path.read_bytes() == content  # read-only


def test_inspect_unreadable_paths_are_fatal(tmp_path: Path) -> None:
    for path in (str(tmp_path), "/dev/zero"):
        code, output = invoke("inspect", path, "--json")
        assert code == 3 and json.loads(output)["outcome"] == "fatal"


def test_inspect_human_output_names_invalid_lines(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_bytes(A1 + b"junk\n" + B1)
    code, output = invoke("inspect", str(path))
    assert code == 0 and "not_json" in output and "TREND_BUILD_UP" in output


def test_replay_mid_stream_cli(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path)
    live_events = tmp_path / "live.jsonl"
    assert (
        invoke(
            "run", "--config", str(config), "--input", str(market), "--events", str(live_events)
        )[0]
        == 0
    )
    live = decisions(read_events(live_events))
    at = 1_700_000_000_000 + 200 * 60_000
    out = tmp_path / "replay.jsonl"
    code, _ = invoke(
        "replay",
        "--config",
        str(config),
        "--input",
        str(market),
        "--from-state",
        str(tmp_path / "state" / "h.jsonl"),
        "--at",
        str(at),
        "--events",
        str(out),
    )
    assert code == 0
    replayed = decisions(read_events(out))
    after = {k: v for k, v in live.items() if int(k.split(":")[1]) > at}
    assert {k: v for k, v in replayed.items() if int(k.split(":")[1]) > at} == after
    assert len(after) == 4 * 199
    assert invoke("replay", "--config", str(config), "--input", str(market), "--at", "5")[0] == 2
