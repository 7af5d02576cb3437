"""Scenario files in real mode (`mode: real`): real `crashkit run` processes on a FUSE
mount run the library's real-mode files and pass, they observe what the in-process
runner observes of the same steps, a broken backend or runtime makes them fail under
the invariant it breaks, the loader refuses what a real process cannot run, and
without FUSE a real-mode file does not apply (it never passes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.cli import main
from crashkit.harness.kit.variants import ContinueAfterFailure
from crashkit.harness.scenarios import ScenarioError, load_scenario, real_runner, run_loaded
from crashkit.harness.scenarios.expect import updated_expect
from crashkit.harness.scenarios.results import ScenarioResult
from tests.scenarios.conftest import LIBRARY, write

REAL = sorted((LIBRARY / "real").glob("*.yaml"))
NO_FUSE = fuse_unavailable()
needs_fuse = pytest.mark.skipif(NO_FUSE is not None, reason=f"no FUSE mount here: {NO_FUSE}")


def _file(stem: str) -> Path:
    return next(p for p in REAL if p.stem == stem)


def _problems(result: ScenarioResult) -> str:
    lines = [f"{c.name}: {c.message}" for c in result.failures]
    return "\n".join([result.error or "", *lines, *result.notes])


def test_the_real_library_is_in_real_mode() -> None:
    loaded = [load_scenario(p) for p in REAL]
    assert 3 <= len(loaded) <= 5
    assert all(sc.spec.mode == "real" for sc in loaded)
    assert any(sc.backend.name == "sqlite" for sc in loaded)
    # the in-process library stays in-process
    others = [p for p in LIBRARY.rglob("*.yaml") if p not in REAL]
    assert others and all(load_scenario(p).spec.mode == "in-process" for p in others)


@needs_fuse
@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_scenario_passes_with_real_processes(path: Path) -> None:
    result = run_loaded(load_scenario(path))
    assert result.passed, _problems(result)
    names = {c.name for c in result.checks}
    assert {"startup.outcome", "exit_code", "final_states", "events.by_type"} <= names
    assert "invariant 3-publish-implies-committed" in names
    assert "invariant 1-durability" not in names  # not observable in real mode
    # real processes ran: each boot's trace is what the FUSE mount recorded
    assert result.traces
    assert all(
        any(op.endswith("open /events/events.jsonl (O_CREAT)") for op in t) for t in result.traces
    )


@needs_fuse
def test_each_real_file_pins_its_outcome() -> None:
    """What each file is about is in its observations, not only in its expectations. The
    SQLite file's observed restore report is its final restore's outcome and winners (a
    backend that is not a line file has no line report, but `expect.restore_report`'s
    outcome and winners are judged on every backend: docs/backends.md), no longer empty."""
    torn = run_loaded(load_scenario(_file("real-torn-tail-after-crash-mid-write")))
    assert any("109/444 unsynced bytes kept (torn mid-line)" in n for n in torn.notes)
    assert any("ftruncate /crashkit/state/hysteresis.jsonl" in op for op in torn.traces[1])
    halted = run_loaded(load_scenario(_file("real-fsync-eio-halts-then-restart")))
    assert halted.observed is not None and halted.observed.halted_tick == 1700000120000
    assert any(
        "fsync /crashkit/state/hysteresis.jsonl -> EIO [injected]" in op for op in halted.traces[0]
    )
    assert "exit 4" in halted.notes[0]  # the halted process's own exit code
    sqlite = run_loaded(load_scenario(_file("real-sqlite-power-cut-mid-transaction")))
    assert any("hysteresis.jsonl-journal" in op for op in sqlite.traces[0])
    # not a line file: `inspect`'s line report does not apply, the final restore's outcome
    # and winners do (what `expect.restore_report`'s outcome and winners judge on any backend)
    assert sqlite.observed is not None and sqlite.observed.restore_report == {
        "outcome": "ok",
        "symbols": {
            "SYM000": {
                "anchor_regime": "SQUEEZE_DOWN",
                "candidate_regime": "TREND_EXHAUSTION",
                "progress_current": 1,
                "engine_timestamp_ms": 1700000240000,
            },
            "SYM001": {
                "anchor_regime": "TREND_EXHAUSTION",
                "candidate_regime": None,
                "progress_current": 0,
                "engine_timestamp_ms": 1700000240000,
            },
        },
    }


#: In-process twins: the same steps without `mode: real` observe the same run.
TWINS = ("real-power-cut-after-clean-run", "real-fsync-eio-halts-then-restart")

APPEND = """\
name: appended
description: records appended through the running writer between two ticks
mode: real
input:
  synthetic: {symbols: 2, ticks: 4, seed: 5}
steps:
  - run: {ticks: 2}
  - append:
      records:
        - {symbol: SYM000, engine_timestamp_ms: 1700000090000, anchor_regime: CHOP_BALANCED}
  - run: {ticks: 1}
  - crash: {point: last, cut: last}
  - restart: {}
expect:
  invariants: [all]
"""


@needs_fuse
@pytest.mark.parametrize("stem", [*TWINS, "appended"])
def test_real_mode_observes_what_the_in_process_runner_does(stem: str, tmp_path: Path) -> None:
    text = APPEND if stem == "appended" else _file(stem).read_text(encoding="utf-8")
    real = run_loaded(load_scenario(write(tmp_path, stem, text)))
    (tmp_path / "twin").mkdir()
    twin = write(tmp_path / "twin", stem, text.replace("mode: real\n", ""))
    in_process = run_loaded(load_scenario(twin))
    assert real.passed, _problems(real)
    assert in_process.passed, _problems(in_process)
    assert real.observed is not None and in_process.observed is not None
    assert updated_expect(None, real.observed) == updated_expect(None, in_process.observed)
    if stem == "appended":  # the record went in between the 2nd and the 3rd tick
        assert real.observed.restore_report["lines"] == 2 * 3 + 1
        ops = real.traces[0]

        def at(text: str) -> int:
            return next(i for i, op in enumerate(ops) if text in op)

        second_published = at("write /events/events.jsonl (872 bytes at 872)")
        appended = at("write /crashkit/state/hysteresis.jsonl (221 bytes at 888)")
        third = at("write /crashkit/state/hysteresis.jsonl (444 bytes at 1109)")
        assert second_published < appended < third


NO_FSYNC = "backend: crashkit.harness.kit.variants:no_fsync\n"


@needs_fuse
def test_a_backend_that_never_fsyncs_fails_the_power_cut_scenario(tmp_path: Path) -> None:
    """The same file on `no_fsync`: the power cut keeps nothing unsynced, so what was
    published is gone after the restart, and the CLI exits 1 saying so."""
    source = _file("real-power-cut-after-clean-run")
    text = source.read_text(encoding="utf-8").replace("mode: real\n", "mode: real\n" + NO_FSYNC)
    path = write(tmp_path, source.stem, text)
    result = run_loaded(load_scenario(path))
    assert result.failed
    failed = {c.name for c in result.failures}
    # the restart found nothing (it started empty) and decided everything again
    assert {"invariant 3-publish-implies-committed", "startup.outcome"} <= failed
    done = CliRunner().invoke(main, ["scenarios", "run", str(path)])
    assert done.exit_code == 1, done.output
    assert "3-publish-implies-committed" in done.output and "0 passed, 1 failed" in done.output


@needs_fuse
def test_a_runtime_that_goes_on_after_a_failed_persist_breaks_the_halt_rule(
    tmp_path: Path,
) -> None:
    """`runtime:` runs in the child through real_child; replaced in the loaded file, it
    is named from its class."""
    source = _file("real-fsync-eio-halts-then-restart")
    spec = "crashkit.harness.kit.variants:ContinueAfterFailure"
    text = source.read_text(encoding="utf-8").replace(
        "mode: real\n", f"mode: real\nruntime: {spec}\n"
    )
    by_file = run_loaded(load_scenario(write(tmp_path, source.stem, text)))
    by_class = run_loaded(replace(load_scenario(source), runtime_class=ContinueAfterFailure))
    for result in (by_file, by_class):
        assert "invariant 6-halt" in {c.name for c in result.failures}, _problems(result)
        assert "exit 0" in result.notes[0]  # it swallowed the failure


@needs_fuse
def test_a_step_that_cannot_happen_fails_and_skips_the_rest(tmp_path: Path) -> None:
    text = APPEND.replace("point: last, cut: last", "point: 999, cut: last")
    result = run_loaded(load_scenario(write(tmp_path, "appended", text)))
    assert result.failed
    (bad,) = [c for c in result.failures if c.name.startswith("steps[")]
    assert bad.name == "steps[3].crash.point"
    assert "no op 999: the trace since the disk last booted has" in bad.message
    assert "the 1 step(s) after it were not run" in bad.message
    assert all(c.name.startswith(("steps[", "invariant ")) for c in result.checks)


def test_without_fuse_a_real_scenario_does_not_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_runner, "fuse_unavailable", lambda: "no /dev/fuse (test)")
    result = run_loaded(load_scenario(_file("real-power-cut-after-clean-run")))
    assert not result.passed and not result.failed
    assert result.status == "n/a"
    assert (
        result.first_failure == "not applicable: mode: real needs a FUSE mount: no /dev/fuse (test)"
    )


BASE = """\
name: refused
description: why this scenario exists
mode: real
input:
  synthetic: {symbols: 1, ticks: 2, seed: 1}
steps:
  - run: {ticks: 1}
  - restart: {}
  - run: {ticks: all}
"""

# (case, the file's text, line, key path, words the message must hold)
REFUSED: list[tuple[str, str, int, str, tuple[str, ...]]] = [
    (
        "replay",
        BASE + "  - replay: {}\n",
        10,
        "steps[3].replay",
        ("not run in real mode", "live runtime's decisions"),
    ),
    (
        "compact",
        BASE + "  - compact: {}\n",
        10,
        "steps[3].compact",
        ("not run in real mode", "crashkit compact"),
    ),
    (
        "fault-after-restart",
        BASE.replace(
            "  - run: {ticks: all}\n", '  - fault: {op: fsync, path: "*/hysteresis.jsonl"}\n'
        ),
        9,
        "steps[2].fault",
        ("armed for a whole process from its start", "started at steps[1]"),
    ),
    (
        "fault-matches-events",
        BASE.replace("steps:\n", "steps:\n  - fault: {op: write}\n"),
        7,
        "steps[0].fault.path",
        ("'*' also matches /events/events.jsonl", "its events and its input"),
    ),
    (
        "fault-then-restart",
        BASE.replace(
            "  - restart: {}\n",
            '  - crash: {}\n  - fault: {op: fsync, path: "*/h*"}\n  - restart: {}\n',
        ),
        9,
        "steps[2].fault",
        ("the restart at steps[3] disarms it",),
    ),
    (
        "unobservable-invariant",
        BASE + "expect:\n  invariants: [3-publish-implies-committed, 1-durability]\n",
        11,
        "expect.invariants[1]",
        ("1-durability is not observable in real mode", "acknowledgements"),
    ),
    (
        "fifo",
        BASE + "initial_state: {kind: fifo}\n",
        10,
        "initial_state.kind",
        ("not in real mode", "no FIFO"),
    ),
    (
        "run-after-corrupt",
        BASE.replace("  - restart: {}\n", "  - corrupt: {line: 1, with: garbage}\n"),
        9,
        "steps[2].run",
        ("exited at the corrupt step", "a restart starts the next"),
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "line", "key", "words"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_the_loader_refuses_what_a_real_process_cannot_run(
    case: str, text: str, line: int, key: str, words: tuple[str, ...], tmp_path: Path
) -> None:
    path = write(tmp_path, "refused", text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    error = caught.value
    assert (error.file, error.line, error.key) == (str(path), line, key), str(error)
    for word in words:
        assert word in error.message, error.message
    # the same file in-process is fine (but for what only the real mode refuses)
    if case in ("fault-matches-events", "fault-then-restart"):
        load_scenario(write(tmp_path, "refused", text.replace("mode: real\n", "")))
