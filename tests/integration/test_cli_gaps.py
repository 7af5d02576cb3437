"""`crashkit run` behaviours that had no test: exit 5 and 4-over-5 (D.36), truth mode and the
empty state path (D.37), the events sink's newline repair (D.35), a halt on a non-persistence
exception (D.30), the commit clock (C6.14, D.23) and a second writer in another process
(C5.9, D.20). See docs/contract.md, section 11.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.harness.cli import main
from crashkit.orchestrator.errors import PersistenceError, WriterLocked
from crashkit.orchestrator.sources import encode_snapshot, ticks
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.protocol import OpenedStore, StateBackend
from crashkit.regime_engine.contracts import (
    HysteresisConfig,
    HysteresisState,
    Regime,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.engine import run as engine_run
from crashkit.regime_engine.synthetic import generate

CRASHKIT = [sys.executable, "-m", "crashkit.harness"]
SNAPSHOTS = list(generate(3, 30, seed=11))
GROUPS = list(ticks(SNAPSHOTS))
HERE = "tests.integration.test_cli_gaps"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def make_config(tmp_path: Path, engine_extra: str = "", rest: str = "") -> Path:
    config = tmp_path / "orchestrator.toml"
    config.write_text(
        '[engine]\nengine_mode = "hysteresis"\nhysteresis_state_path = "state/h.jsonl"\n'
        + engine_extra
        + rest
    )
    return config


def write_input(path: Path, snapshots: Sequence[RegimeInputSnapshot]) -> Path:
    path.write_bytes(b"".join(encode_snapshot(s) for s in snapshots))
    return path


def read_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def of_type(events: list[dict[str, object]], event_type: str) -> list[dict[str, object]]:
    return [e for e in events if e["event_type"] == event_type]


def state_of(event: dict[str, object]) -> dict[str, object]:
    payload = event["payload"]
    assert isinstance(payload, dict)
    state = payload["state"]
    assert isinstance(state, dict)
    return state


@pytest.fixture
def market(tmp_path: Path) -> Path:
    return write_input(tmp_path / "snapshots.jsonl", SNAPSHOTS)


def run(tmp_path: Path, config: Path, input_path: Path, events: str = "events.jsonl") -> int:
    """`crashkit run` with events to tmp_path/events; the output is shown when it fails."""
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(input_path),
        "--events",
        str(tmp_path / events),
    )
    if code != 0:
        print(output)
    return code


# --- backends named by `module:callable` in the config (D.30, D.36) -------------------------


class FailingBackend:
    """Wraps the JSONL backend; append number `fail_at` raises `exc` instead."""

    def __init__(self, inner: StateBackend, fail_at: int, exc: BaseException) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.exc = exc
        self.calls = 0

    @property
    def poisoned(self) -> bool:
        return self.inner.poisoned

    def append(self, states: Sequence[HysteresisState]) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.exc
        self.inner.append(states)

    def close(self) -> None:
        self.inner.close()


def runtime_error_on_third_append(path: str, config: HysteresisConfig) -> OpenedStore:
    opened = open_jsonl_store(path, config)
    bug = RuntimeError("backend bug: connection reset by peer")
    return dataclasses.replace(opened, backend=FailingBackend(opened.backend, 3, bug))


def enospc_on_append_12(path: str, config: HysteresisConfig) -> OpenedStore:
    opened = open_jsonl_store(path, config)
    full = PersistenceError("write failed: No space left on device", errno.ENOSPC)
    return dataclasses.replace(opened, backend=FailingBackend(opened.backend, 12, full))


def _shift(snapshot: RegimeInputSnapshot, ts: int) -> RegimeInputSnapshot:
    return dataclasses.replace(snapshot, engine_timestamp_ms=ts)


def _flat(groups: Sequence[Sequence[RegimeInputSnapshot]]) -> list[RegimeInputSnapshot]:
    return [s for g in groups for s in g]


# SYM001 gets a late snapshot (tick 2's time) after tick 10: its own tick, no append; the
# 12th append (tick 11) is the one `enospc_on_append_12` fails.
LATE_BEFORE_HALT = [
    *_flat(GROUPS[:11]),
    _shift(GROUPS[11][1], GROUPS[2][0].engine_timestamp_ms),
    *_flat(GROUPS[11:]),
]
# SYM001 jumps ahead to tick 11's time alone (append 11), then is late inside tick 10,
# whose append (the 12th) is the one that fails: its symbol_halted is dropped (D.29).
LATE_IN_FAILED_TICK = [*_flat(GROUPS[:10]), GROUPS[11][1], *_flat(GROUPS[10:])]


# --- D.36: exit 5, and 4 over 5 ----------------------------------------------------------


@pytest.mark.parametrize("feed", ["late_before_halt", "late_in_failed_tick"])
def test_exit_5_when_a_symbol_is_hard_failed(tmp_path: Path, feed: str) -> None:
    snapshots = LATE_BEFORE_HALT if feed == "late_before_halt" else LATE_IN_FAILED_TICK
    input_path = write_input(tmp_path / "in.jsonl", snapshots)
    code, output = invoke(
        "run",
        "--config",
        str(make_config(tmp_path)),
        "--input",
        str(input_path),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 5, output
    assert "halted SYM001" in output and "non_monotonic_timestamp" in output
    events = read_events(tmp_path / "e.jsonl")
    halted = of_type(events, "symbol_halted")
    assert [e["symbol"] for e in halted] == ["SYM001"]
    assert str(halted[0]["payload"]["reason"]).startswith("non_monotonic_timestamp")  # type: ignore[index]
    assert not of_type(events, "scheduling_halted")
    last_ts = SNAPSHOTS[-1].engine_timestamp_ms
    decided = of_type(events, "hysteresis_decision_published")
    last = {e["symbol"]: e["engine_timestamp_ms"] for e in decided}
    assert last["SYM000"] == last["SYM002"] == last_ts  # the others ran to the end
    stopped = GROUPS[10] if feed == "late_before_halt" else GROUPS[11]
    assert last["SYM001"] == stopped[0].engine_timestamp_ms  # SYM001 stopped at the late one


@pytest.mark.parametrize("feed", ["late_before_halt", "late_in_failed_tick"])
def test_exit_4_wins_over_5(tmp_path: Path, feed: str) -> None:
    snapshots = LATE_BEFORE_HALT if feed == "late_before_halt" else LATE_IN_FAILED_TICK
    input_path = write_input(tmp_path / "in.jsonl", snapshots)
    config = make_config(tmp_path, f'backend = "{HERE}:enospc_on_append_12"\n')
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(input_path),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 4, output
    assert "halted SYM001" in output  # the symbol was hard-failed too ...
    events = read_events(tmp_path / "e.jsonl")
    assert events[-1]["event_type"] == "scheduling_halted"  # ... but the halt decides the code
    assert events[-1]["payload"]["errno"] == "ENOSPC"  # type: ignore[index]
    failed_ts = events[-1]["engine_timestamp_ms"]
    assert not [e for e in events[:-1] if e["engine_timestamp_ms"] == failed_ts]
    halted = of_type(events, "symbol_halted")
    if feed == "late_before_halt":
        assert [e["symbol"] for e in halted] == ["SYM001"]
    else:  # D.29: the failed tick's symbol_halted is dropped with its decisions
        assert halted == [] and failed_ts == GROUPS[10][0].engine_timestamp_ms
    published = len(of_type(events, "hysteresis_decision_published"))
    assert restore_report(str(tmp_path / "state" / "h.jsonl")).valid == published


# --- D.30: a halt on an exception that is not a PersistenceError ---------------------------


def test_non_persistence_exception_halts_with_scheduling_halted(
    tmp_path: Path, market: Path
) -> None:
    config = make_config(tmp_path, f'backend = "{HERE}:runtime_error_on_third_append"\n')
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(market),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 4, output
    assert "persist_failed" in output  # the summary's scheduling row (wrapped by the table)
    events = read_events(tmp_path / "e.jsonl")
    last = events[-1]
    assert last["event_type"] == "scheduling_halted"
    assert (last["symbol"], last["run_id"]) == (None, None)
    assert last["engine_timestamp_ms"] == GROUPS[2][0].engine_timestamp_ms
    assert last["payload"] == {
        "reason": "persist_failed",
        "error": "backend bug: connection reset by peer",
        "errno": None,
    }
    assert len(of_type(events, "scheduling_halted")) == 1
    assert len(of_type(events, "hysteresis_decision_published")) == 6  # two ticks, then halt
    assert restore_report(str(tmp_path / "state" / "h.jsonl")).valid == 6


# --- D.37: truth mode, empty state path ----------------------------------------------------


def test_truth_mode_publishes_engine_run_completed_and_keeps_no_state(
    tmp_path: Path, market: Path
) -> None:
    config = tmp_path / "truth.toml"
    config.write_text('[engine]\nengine_mode = "truth"\n')  # no state path needed
    before = sorted(p.name for p in tmp_path.iterdir())
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(market),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "e.jsonl"])
    events = read_events(tmp_path / "e.jsonl")
    assert len(events) == len(SNAPSHOTS)
    assert {e["event_type"] for e in events} == {"engine_run_completed"}
    for event, snapshot in zip(events, SNAPSHOTS, strict=True):
        truth = engine_run(snapshot)
        assert event["run_id"] == f"{snapshot.symbol}:{snapshot.engine_timestamp_ms}"
        assert event["payload"] == {"regime": truth.regime.value, "confidence": truth.confidence}
    assert {e["payload"]["regime"] for e in events} <= {r.value for r in Regime}  # type: ignore[index]


def test_truth_mode_on_the_configured_market(tmp_path: Path) -> None:
    config = tmp_path / "truth.toml"
    config.write_text(
        '[engine]\nengine_mode = "truth"\n[market]\nsymbols = 2\nticks = 5\nseed = 1\n'
    )
    code, output = invoke("run", "--config", str(config), "--events", str(tmp_path / "e.jsonl"))
    assert code == 0, output
    events = read_events(tmp_path / "e.jsonl")
    assert [e["run_id"] for e in events] == [
        f"{s.symbol}:{s.engine_timestamp_ms}" for s in generate(2, 5, 1)
    ]


@pytest.mark.parametrize("mode", ["hysteresis", "truth"])
def test_empty_state_path_is_a_config_error(tmp_path: Path, market: Path, mode: str) -> None:
    config = tmp_path / "empty.toml"
    config.write_text(f'[engine]\nengine_mode = "{mode}"\nhysteresis_state_path = ""\n')
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(market),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 2
    assert "empty.toml" in output and "[engine] hysteresis_state_path: must not be empty" in output
    assert not (tmp_path / "e.jsonl").exists()


def test_empty_state_flag_is_a_config_error_not_the_config_path(
    tmp_path: Path, market: Path
) -> None:
    config = make_config(tmp_path)  # names state/h.jsonl: an empty --state must not fall back
    code, output = invoke(
        "run",
        "--config",
        str(config),
        "--input",
        str(market),
        "--state",
        "",
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert code == 2
    assert "--state must not be empty" in output and "orchestrator.toml" in output
    assert not (tmp_path / "state").exists() and not (tmp_path / "e.jsonl").exists()


# --- D.35: the events file's newline repair ------------------------------------------------


@pytest.mark.parametrize(
    "previous",
    [
        b'{"schema":"orchestrator_event","event_type":"hysteresis_deci',  # killed mid-line
        b'{"a":1}\n{"b":2}\n{"c"',
        b'{"a":1}\n',  # already ends in a newline: nothing added
    ],
)
def test_events_file_ending_in_a_torn_line_gets_a_newline_first(
    tmp_path: Path, market: Path, previous: bytes
) -> None:
    events_path = tmp_path / "e.jsonl"
    events_path.write_bytes(previous)
    assert run(tmp_path, make_config(tmp_path), market, "e.jsonl") == 0
    data = events_path.read_bytes()
    repaired = previous if previous.endswith(b"\n") else previous + b"\n"
    assert data.startswith(repaired)
    new = data[len(repaired) :].splitlines()
    assert len(new) == 3 * len(GROUPS)  # every new event is a whole line of its own
    for line in new:
        assert json.loads(line)["schema"] == "orchestrator_event"


# --- C6.14 / D.23: the commit clock ---------------------------------------------------------


def _switches(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        state_of(e)
        for e in of_type(events, "hysteresis_decision_published")
        if "commit_switch" in state_of(e)["reason_codes"]  # type: ignore[operator]
    ]


def test_commit_clock_engine_stamps_the_engine_time_and_is_deterministic(
    tmp_path: Path, market: Path
) -> None:
    config = make_config(tmp_path, 'commit_clock = "engine"\n')
    assert run(tmp_path, config, market, "a.jsonl") == 0
    (tmp_path / "state").rename(tmp_path / "first")
    assert run(tmp_path, config, market, "b.jsonl") == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "first" / "h.jsonl").read_bytes() == (
        tmp_path / "state" / "h.jsonl"
    ).read_bytes()
    switches = _switches(read_events(tmp_path / "a.jsonl"))
    assert len(switches) >= 3
    assert all(s["last_commit_timestamp_ms"] == s["engine_timestamp_ms"] for s in switches)
    # replay reads the same key
    code, _ = invoke(
        "replay",
        "--config",
        str(config),
        "--input",
        str(market),
        "--events",
        str(tmp_path / "r.jsonl"),
    )
    assert code == 0
    assert _switches(read_events(tmp_path / "r.jsonl")) == switches


def test_commit_clock_defaults_to_the_wall_clock(
    tmp_path: Path, market: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crashkit.orchestrator.runtime

    wall = 4_102_444_800_000  # 2100-01-01: no engine timestamp of the input is near it
    monkeypatch.setattr(crashkit.orchestrator.runtime, "wall_clock_ms", lambda: wall)
    config = make_config(tmp_path)  # no commit_clock key
    assert run(tmp_path, config, market) == 0
    switches = _switches(read_events(tmp_path / "events.jsonl"))
    assert len(switches) >= 3
    assert {s["last_commit_timestamp_ms"] for s in switches} == {wall}
    report = restore_report(str(tmp_path / "state" / "h.jsonl"))
    stamps = {rec.last_commit_timestamp_ms for _, rec in report.winners.values()}
    assert stamps <= {wall, None} and wall in stamps


def test_wall_clock_default_reads_real_time(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path, 'commit_clock = "wall"\n')
    before = time.time_ns() // 1_000_000
    assert run(tmp_path, config, market) == 0
    after = time.time_ns() // 1_000_000
    switches = _switches(read_events(tmp_path / "events.jsonl"))
    assert len(switches) >= 3
    for state in switches:
        assert before <= state["last_commit_timestamp_ms"] <= after  # type: ignore[operator]
        assert state["last_commit_timestamp_ms"] != state["engine_timestamp_ms"]


def test_unknown_commit_clock_is_a_config_error(tmp_path: Path, market: Path) -> None:
    config = make_config(tmp_path, 'commit_clock = "monotonic"\n')
    code, output = invoke("run", "--config", str(config), "--input", str(market))
    assert code == 2 and "commit_clock" in output


# --- C5.9 / D.20: a second writer in another process -----------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from crashkit.orchestrator.store.jsonl import open_jsonl_store
    from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime

    opened = open_jsonl_store(sys.argv[1], HysteresisConfig())
    opened.backend.append(
        [HysteresisState("HOLD", 1, Regime.CHOP_BALANCED, None, 0, 3, None)]
    )
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes our stdin
    opened.backend.close()
    print("released", flush=True)
    """
)


def test_second_writer_in_another_process_is_refused(tmp_path: Path, market: Path) -> None:
    state = tmp_path / "state" / "h.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        held = state.read_bytes()
        # the library call ...
        with pytest.raises(WriterLocked, match="another process holds the writer lock"):
            open_jsonl_store(str(state), HysteresisConfig())
        # ... the CLI in this process ...
        config = make_config(tmp_path)
        code, output = invoke(
            "run",
            "--config",
            str(config),
            "--input",
            str(market),
            "--events",
            str(tmp_path / "a.jsonl"),
        )
        assert code == 3 and "another process holds the writer lock" in output
        # ... and the CLI in a third process
        proc = subprocess.run(
            [
                *CRASHKIT,
                "run",
                "--config",
                str(config),
                "--input",
                str(market),
                "--events",
                str(tmp_path / "b.jsonl"),
            ],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 3, proc.stderr
        assert b"another process holds the writer lock" in proc.stderr
        assert state.read_bytes() == held  # nobody but the holder wrote
        for name in ("a.jsonl", "b.jsonl"):
            path = tmp_path / name
            assert not path.exists() or path.read_bytes() == b""  # nothing was published
    finally:
        stdin_of_holder = holder.stdin
        assert stdin_of_holder is not None
        stdin_of_holder.close()
        assert holder.stdout is not None and holder.stdout.readline() == "released\n"
        assert holder.wait(timeout=30) == 0
    # once the holder is gone, a run starts, restores the holder's record and goes on
    assert run(tmp_path, make_config(tmp_path), market, "c.jsonl") == 0
    report = restore_report(str(state))
    assert set(report.winners) == {"HOLD", "SYM000", "SYM001", "SYM002"}
