"""What a new user hit first (a fresh clone, the README, a backend of their own): each rough
edge ends in one clear `error:` line on stderr, the documented exit code (README "Exit
codes") and nothing left in the temporary folder.

Covers a full or closed stdout under any command (exit 6), a backend module in the current
folder for `crashkit run`, `crashkit inspect --backend` (any backend's state, read through
the protocol, never written), an unreadable state path (exit 3), a typo in a backend's
module, a factory that returns nothing, click's usage errors on one line, and the kit's
hint when no backend was given.
"""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crashkit.faults.real import fuse_unavailable
from crashkit.harness.cli import main
from crashkit.orchestrator.errors import ExitCode
from crashkit.orchestrator.sources import encode_snapshot
from crashkit.orchestrator.store.sqlite import open_sqlite_store
from crashkit.regime_engine.codec import encode_states
from crashkit.regime_engine.contracts import HysteresisConfig, HysteresisState, Regime
from crashkit.regime_engine.synthetic import generate

#: The console script a user runs (not `python -m`, which puts the current folder on
#: sys.path by itself and so hides item 4).
SCRIPT = str(Path(sys.executable).parent / "crashkit")
SQLITE = "crashkit.orchestrator.store.sqlite:BACKEND"
REPO = Path(__file__).parents[2]


def crashkit(
    *args: str, cwd: Path, tmp: Path, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """`crashkit ARGS` as a fresh process with its own temporary folder."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error(stderr: str, *parts: str) -> str:
    """Exactly one `error:` line, no traceback, no click usage block; returns the line."""
    assert "Traceback" not in stderr and "Usage:" not in stderr and "Try '" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """The temporary folder the command is given (TMPDIR): it must be empty afterwards."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    return folder


@pytest.fixture
def cli_tmp(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same for an in-process run (CliRunner)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


STATES = [
    HysteresisState("AAA", 1_700_000_000_000, Regime.CHOP_BALANCED, None, 0, 3, None),
    HysteresisState("BBB", 1_700_000_060_000, Regime.TREND_BUILD_UP, Regime.CHOP_BALANCED, 1, 3, 5),
]


# -- 1. a full output ---------------------------------------------------------------------------


FULL_OUTPUT = {
    "help": ["--help"],
    "version": ["--version"],
    "bare": [],
    "inspect": ["inspect", "missing.jsonl"],
    "inspect-json": ["inspect", "--json", "missing.jsonl"],
    "scenarios-run": [
        "scenarios",
        "run",
        str(REPO / "scenarios" / "restore" / "directory-at-state-path-fatal.yaml"),
    ],
    "explore-json": ["explore", "--json", "--symbols", "1", "--ticks", "2", "--no-export"],
    "inspect-help": ["inspect", "--help"],
}


@pytest.mark.parametrize("args", FULL_OUTPUT.values(), ids=FULL_OUTPUT.keys())
def test_a_full_stdout_is_exit_6_and_one_line(args: list[str], tmp_path: Path, tmp: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = crashkit(*args, cwd=tmp_path, tmp=tmp, stdout=full.fileno())
    assert proc.returncode == ExitCode.OUTPUT_FAILED, proc.stderr
    line = assert_one_error(proc.stderr, "stdout", "No space left on device")
    assert proc.stderr.rstrip("\n").splitlines()[-1] == line
    assert not list(tmp.iterdir())


# -- 4. a backend module in the current folder ----------------------------------------------------


def test_run_imports_a_backend_module_from_the_current_folder(tmp_path: Path, tmp: Path) -> None:
    (tmp_path / "newuser_store.py").write_text(
        "from crashkit.orchestrator.store.jsonl import open_jsonl_store as open_store\n"
    )
    (tmp_path / "orchestrator.toml").write_text(
        '[engine]\nhysteresis_state_path = "state/h.jsonl"\n'
        'backend = "newuser_store:open_store"\n[market]\nsymbols = 2\nticks = 3\n'
    )
    proc = crashkit(
        "run", "--config", "orchestrator.toml", "--events", "e.jsonl", cwd=tmp_path, tmp=tmp
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert len((tmp_path / "state" / "h.jsonl").read_bytes().splitlines()) == 6
    assert not list(tmp.iterdir())


# -- 6. inspect --backend ------------------------------------------------------------------------

#: A backend of its own format, as docs/backends.md's "A backend from scratch" writes one: a
#: bare factory, no `restore_only`, so `inspect --backend` opens it on a copy of its files.
OWN_FORMAT = """
import json, os

from crashkit.orchestrator.errors import StartupRefused
from crashkit.orchestrator.store.protocol import OpenedStore, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisState, HysteresisStore, Regime


class Writer:
    poisoned = False

    def __init__(self, fd):
        self.fd = fd

    def append(self, states):
        for s in states:
            row = [s.symbol, s.engine_timestamp_ms, s.anchor_regime.value,
                   s.candidate_regime and s.candidate_regime.value, s.progress_current,
                   s.last_commit_timestamp_ms]
            os.write(self.fd, (json.dumps(row) + "\\n").encode())
        os.fsync(self.fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def open_store(path, config):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    store = HysteresisStore()
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    for line in data.splitlines():
        if line == b"BROKEN":
            os.close(fd)
            raise StartupRefused(path, "a broken line")
        sym, ts, anchor, cand, progress, commit = json.loads(line)
        store.states[sym] = HysteresisState(
            sym, ts, Regime(anchor), cand and Regime(cand), progress, config.window_updates,
            commit,
        )
    return OpenedStore(Writer(fd), store, RestoreSummary(path, "ok" if store.states else "bootstrap"))
"""


def own_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """A module `name` in the current folder (tmp_path), importable; returns its spec."""
    (tmp_path / f"{name}.py").write_text(OWN_FORMAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # (undone after the test, unlike the CLI's)
    return f"{name}:open_store"


def write_own(tmp_path: Path, name: str) -> Path:
    module = __import__(name)
    state = tmp_path / "state" / "own.db"
    opened = module.open_store(str(state), HysteresisConfig())
    opened.backend.append(STATES)
    opened.backend.close()
    return state


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_plain_inspect_of_another_backend_s_file_points_at_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tmp: Path
) -> None:
    own_backend(tmp_path, monkeypatch, "newuser_own_a")
    state = write_own(tmp_path, "newuser_own_a")
    result = invoke("inspect", str(state))
    assert result.exit_code == ExitCode.REFUSED  # read as the reference's lines: all invalid
    assert "--backend MODULE:ATTR" in result.stderr, result.stderr


def test_inspect_backend_opens_a_bare_factory_on_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tmp: Path
) -> None:
    spec = own_backend(tmp_path, monkeypatch, "newuser_own_b")
    state = write_own(tmp_path, "newuser_own_b")
    before = listing(tmp_path / "state")
    result = invoke("inspect", "--backend", spec, "--json", str(state))
    assert result.exit_code == ExitCode.OK, result.output
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok" and report["backend"] == spec
    assert report["lines"] is None and report["valid"] is None  # not a line file
    assert report["symbols"]["BBB"] == {
        "symbol": "BBB",
        "engine_timestamp_ms": 1_700_000_060_000,
        "anchor_regime": "TREND_BUILD_UP",
        "candidate_regime": "CHOP_BALANCED",
        "progress_current": 1,
        "last_commit_timestamp_ms": 5,
        "line": None,
    }
    assert listing(tmp_path / "state") == before  # nothing written, nothing created
    assert not list(cli_tmp.iterdir())
    human = invoke("inspect", "--backend", spec, str(state))
    assert human.exit_code == ExitCode.OK and "TREND_BUILD_UP" in human.stdout
    missing = invoke("inspect", "--backend", spec, "--json", str(tmp_path / "none" / "x.db"))
    assert missing.exit_code == ExitCode.OK
    assert json.loads(missing.stdout)["outcome"] == "bootstrap"
    assert not (tmp_path / "none").exists() and not list(cli_tmp.iterdir())


def test_inspect_backend_refusal_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tmp: Path
) -> None:
    spec = own_backend(tmp_path, monkeypatch, "newuser_own_c")
    state = tmp_path / "state.db"
    state.write_bytes(b"BROKEN\n")
    result = invoke("inspect", "--backend", spec, "--json", str(state))
    assert result.exit_code == ExitCode.REFUSED
    report = json.loads(result.stdout)
    assert report["outcome"] == "fatal" and report["reason"] == "a broken line"
    assert state.read_bytes() == b"BROKEN\n" and not list(cli_tmp.iterdir())


DECLARED = """
from crashkit.orchestrator.store import jsonl
from crashkit.orchestrator.store.protocol import Backend, RestoreSummary

RESTORE_ONLY = Backend("r", jsonl.open_jsonl_store, restore_only=jsonl.restore_only)
SUMMARY_ONLY = Backend(
    "s",
    jsonl.open_jsonl_store,
    restore_only=jsonl.restore_only,
    report=lambda path: RestoreSummary(path, "ok"),
)
"""


def test_inspect_backend_uses_restore_only_or_a_declared_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tmp: Path
) -> None:
    (tmp_path / "newuser_declared.py").write_text(DECLARED)
    monkeypatch.syspath_prepend(str(tmp_path))
    state = tmp_path / "h.jsonl"
    state.write_bytes(encode_states(STATES))
    for attr in ("RESTORE_ONLY", "SUMMARY_ONLY"):
        result = invoke("inspect", "--backend", f"newuser_declared:{attr}", "--json", str(state))
        assert result.exit_code == ExitCode.OK, result.output
        assert "copy" not in result.stderr  # read-only calls: no copy was needed
        report = json.loads(result.stdout)
        assert report["outcome"] == "ok" and report["lines"] is None
        assert sorted(report["symbols"]) == ["AAA", "BBB"]
        assert report["symbols"]["AAA"]["line"] is None
    assert not list(cli_tmp.iterdir())


def test_inspect_backend_reads_an_sqlite_database_with_its_counts(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    opened = open_sqlite_store(str(db), HysteresisConfig())
    opened.backend.append(STATES)
    opened.backend.close()
    result = invoke("inspect", "--backend", SQLITE, "--json", str(db))
    assert result.exit_code == ExitCode.OK, result.output
    report = json.loads(result.stdout)
    assert (report["backend"], report["outcome"], report["lines"]) == (SQLITE, "ok", 2)
    assert sorted(report["symbols"]) == ["AAA", "BBB"] and report["symbols"]["AAA"]["line"] == 1


def test_inspect_backend_that_cannot_be_loaded_is_one_line(tmp_path: Path) -> None:
    result = invoke("inspect", "--backend", "nosuchmodule_xyz:BACKEND", str(tmp_path / "x"))
    assert result.exit_code == ExitCode.USAGE
    assert_one_error(result.stderr, "--backend", "cannot import module 'nosuchmodule_xyz'")


def test_the_docs_backend_runs_and_is_inspected_from_its_folder(tmp_path: Path, tmp: Path) -> None:
    """docs/backends.md's "A backend from scratch", as a new user runs it: `mystore.py` in
    the current folder, named in the config, then its state inspected as it reads it."""
    page = (REPO / "docs" / "backends.md").read_text(encoding="utf-8")
    section = page.split("## A backend from scratch", 1)[1]
    (tmp_path / "mystore.py").write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    (tmp_path / "orchestrator.toml").write_text(
        '[engine]\nhysteresis_state_path = "state/my.jsonl"\nbackend = "mystore:BACKEND"\n'
        "[market]\nsymbols = 3\nticks = 4\n"
    )
    run = crashkit(
        "run", "--config", "orchestrator.toml", "--events", "e.jsonl", cwd=tmp_path, tmp=tmp
    )
    assert run.returncode == ExitCode.OK, run.stderr
    state = tmp_path / "state"
    before = listing(state)
    plain = crashkit("inspect", "state/my.jsonl", cwd=tmp_path, tmp=tmp)
    assert plain.returncode == ExitCode.REFUSED and "--backend MODULE:ATTR" in plain.stderr
    mine = crashkit(
        "inspect", "--backend", "mystore:BACKEND", "--json", "state/my.jsonl", cwd=tmp_path, tmp=tmp
    )
    assert mine.returncode == ExitCode.OK, mine.stderr
    report = json.loads(mine.stdout)
    assert report["outcome"] == "ok" and sorted(report["symbols"]) == ["SYM000", "SYM001", "SYM002"]
    assert listing(state) == before and not list(tmp.iterdir())


# -- 7. an unreadable state path --------------------------------------------------------------


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder whose entries cannot be looked up (mode 0o600 for a non-root user):
    stat and open of anything under it fail with EACCES."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "h.jsonl").write_bytes(b"")
    prefix = str(folder) + os.sep

    def denied(real: Callable[..., object]) -> Callable[..., object]:
        def call(path: object, *args: object, **kwargs: object) -> object:
            if isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(prefix):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    for name in ("stat", "lstat", "open"):
        monkeypatch.setattr(os, name, denied(getattr(os, name)))
    yield folder


def test_compact_on_a_directory_is_refused_with_exit_3(tmp_path: Path) -> None:
    result = invoke("compact", str(tmp_path))
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert_one_error(result.stderr, "not a regular file")


def test_an_unreadable_state_path_is_refused_with_exit_3(locked: Path, tmp_path: Path) -> None:
    state = str(locked / "h.jsonl")
    snapshots = tmp_path / "s.jsonl"
    snapshots.write_bytes(b"".join(encode_snapshot(s) for s in generate(1, 2, 1)))
    config = tmp_path / "o.toml"
    config.write_text('[engine]\nhysteresis_state_path = "x.jsonl"\n')
    events = str(tmp_path / "events.jsonl")
    replay = invoke(
        "replay", "--config", str(config), "--input", str(snapshots),
        "--from-state", state, "--at", "1700000000000", "--events", events,
    )  # fmt: skip
    assert replay.exit_code == ExitCode.REFUSED, replay.output
    assert_one_error(replay.stderr, "Permission denied")
    compact = invoke("compact", state)
    assert compact.exit_code == ExitCode.REFUSED, compact.output
    assert_one_error(compact.stderr, "Permission denied")
    inspect = invoke("inspect", "--json", state)
    assert inspect.exit_code == ExitCode.REFUSED
    assert "no file at" not in inspect.stderr  # it is there, only unreadable
    assert "Permission denied" in json.loads(inspect.stdout)["reason"]
    run = invoke(
        "run", "--config", str(config), "--input", str(snapshots), "--state", state,
        "--events", events,
    )  # fmt: skip
    assert run.exit_code == ExitCode.REFUSED
    assert_one_error(run.stderr, "Permission denied")


# -- 9. a typo in the backend's module -------------------------------------------------------


def test_a_typo_in_the_backend_module_is_named_not_compaction(tmp_path: Path) -> None:
    config = tmp_path / "o.toml"
    config.write_text(
        '[engine]\nhysteresis_state_path = "h.jsonl"\n'
        'backend = "crashkit.orchestrator.store.jsnl:BACKEND"\n'
        "[compaction]\nenabled = false\n"
    )
    result = invoke("run", "--config", str(config))
    assert result.exit_code == ExitCode.USAGE
    line = assert_one_error(
        result.stderr,
        f"{config}:3: [engine] backend",
        "cannot import module 'crashkit.orchestrator.store.jsnl'",
        "did you mean 'crashkit.orchestrator.store.jsonl'?",
    )
    assert "[compaction]" not in line


def test_a_backend_module_that_fails_to_import_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "newuser_broken.py").write_text("def open_store(path, config)\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("inspect", "--backend", "newuser_broken:open_store", str(tmp_path / "x"))
    assert result.exit_code == ExitCode.USAGE
    assert_one_error(result.stderr, "importing module 'newuser_broken' failed", "SyntaxError")


# -- 11. a factory that returns None ---------------------------------------------------------

NONE_FACTORY = "def open_store(path, config):\n    return None\n"


def test_a_factory_that_returns_none_is_told_so(tmp_path: Path, tmp: Path) -> None:
    (tmp_path / "newuser_none.py").write_text(NONE_FACTORY)
    (tmp_path / "o.toml").write_text(
        '[engine]\nhysteresis_state_path = "h.jsonl"\nbackend = "newuser_none:open_store"\n'
        "[market]\nsymbols = 1\nticks = 2\n"
    )
    run = crashkit("run", "--config", "o.toml", cwd=tmp_path, tmp=tmp)
    assert run.returncode == ExitCode.USAGE, run.stderr
    assert_one_error(
        run.stderr, "newuser_none:open_store", "returned None, not an OpenedStore", "return"
    )
    assert "sqlite3" not in run.stderr and "in C" not in run.stderr
    explore = crashkit(
        "explore", "--backend", "newuser_none:open_store", "--symbols", "1", "--ticks", "1",
        "--no-export", cwd=tmp_path, tmp=tmp,
    )  # fmt: skip
    assert "returned None, not an OpenedStore" in explore.stderr, explore.stderr
    assert "sqlite3" not in explore.stderr  # no hint about I/O in C: the factory is wrong
    assert not list(tmp.iterdir())


# -- 14. usage errors on one line ------------------------------------------------------------

USAGE_ERRORS = {
    "no-such-option": (["inspect", "--bogus", "x"], "no such option"),
    "missing-option": (["run"], "--config"),
    "out-of-range": (["synth", "--symbols", "0", "--ticks", "1", "--seed", "1"], "--symbols"),
    "no-such-command": (["nosuch"], "nosuch"),
    "group-option": (["--bogus"], "no such option"),
    "merge-missing": (["merge", "missing.json"], "missing.json: cannot read"),
    "explore-shard": (["explore", "--shard", "x"], "--shard"),
    "scenarios-option": (["scenarios", "run", "--bogus"], "no such option"),
    "missing-argument": (["inspect"], "STATE_PATH"),
}


@pytest.mark.parametrize("args, part", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_every_usage_error_is_one_line_exit_2(args: list[str], part: str) -> None:
    result = invoke(*args)
    assert result.exit_code == ExitCode.USAGE, result.output
    line = assert_one_error(result.stderr)
    assert part.lower() in line.lower()
    assert result.stderr == line + "\n" and result.stdout == ""


def test_help_is_still_click_s() -> None:
    result = invoke("inspect", "--help")
    assert result.exit_code == ExitCode.OK
    assert result.stdout.startswith("Usage: main inspect [OPTIONS] STATE_PATH")
    assert "--backend" in result.stdout


# -- 16. the kit without a backend -------------------------------------------------------------

HINT = "--crashkit-backend=module:BACKEND"


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_kit_without_a_backend_says_how_to_name_one(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # its own rootdir, not ours
    empty = pytest_in(tmp_path)
    assert empty.returncode == 5  # pytest's "no tests collected", as documented
    assert [line for line in empty.stdout.splitlines() if HINT in line] != [], empty.stdout
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    mine = pytest_in(tmp_path)
    assert mine.returncode == 0 and HINT not in mine.stdout  # a project's own tests: no noise
    asked = pytest_in(tmp_path, "--crashkit-suite", "quick")
    assert asked.returncode == 0 and HINT in asked.stdout


# -- 8. Ctrl-C or SIGTERM in the middle of an in-process explore -----------------------------


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """What a terminal (pty master `fd`) showed, up to `needle` (or EOF, or `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_explore_prints_a_partial_summary_and_exits_128_plus_it(
    sig: signal.Signals, tmp_path: Path, tmp: Path
) -> None:
    master, slave = pty.openpty()  # a terminal on stderr: the progress bar shows
    proc = subprocess.Popen(
        [SCRIPT, "explore", "--suite", "ci", "--export-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    try:
        before = read_until(master, b" states", timeout=120)
        assert b" states" in before, before[-2000:]
        proc.send_signal(sig)
        shown = (before + read_until(master, b"\0never", timeout=120)).decode(errors="replace")
        returncode = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert returncode == 128 + sig, shown[-3000:]
    assert "Aborted!" not in shown and "Traceback" not in shown
    assert "crash states checked" in shown  # the summary table, of what was explored
    assert "contract rules exercised" in shown
    (line,) = [x for x in shown.splitlines() if x.startswith("stopped early:")]
    assert f"interrupted by {sig.name}" in line and "jobs not run" in line, line
    assert not list(tmp.iterdir())


# -- 8. the same for `crashkit run` and `crashkit scenarios run` -------------------------------


def stopped_by(
    sig: signal.Signals, proc: subprocess.Popen[str], started: Callable[[], bool]
) -> tuple[int, str, str]:
    """Send `sig` once `started()` holds (the command is mid-run), then wait for the end:
    (exit code, stdout, stderr)."""
    try:
        deadline = time.monotonic() + 120
        while not started() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "it ended before it could be interrupted"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def assert_stopped(returncode: int, sig: signal.Signals, out: str, err: str) -> str:
    """128 + the signal, no click "Aborted!", no traceback; returns the `stopped early:` line."""
    assert returncode == 128 + sig, (out[-2000:], err[-3000:])
    assert "Aborted!" not in out + err and "Traceback" not in out + err, err[-3000:]
    (line,) = [x for x in (out + err).splitlines() if x.startswith("stopped early:")]
    assert f"interrupted by {sig.name}" in line, line
    return line


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_ends_it_between_ticks_with_where_it_stopped(
    sig: signal.Signals, tmp_path: Path, tmp: Path
) -> None:
    (tmp_path / "o.toml").write_text(
        '[engine]\nhysteresis_state_path = "h.jsonl"\n[market]\nsymbols = 2\nticks = 100000\n'
    )
    state = tmp_path / "h.jsonl"
    proc = subprocess.Popen(
        [SCRIPT, "run", "--config", "o.toml", "--events", "e.jsonl"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    returncode, out, err = stopped_by(
        sig, proc, lambda: state.exists() and state.read_bytes().count(b"\n") >= 6
    )
    line = assert_stopped(returncode, sig, out, err)
    found = re.fullmatch(
        rf"stopped early: interrupted by {sig.name}; (\d+) tick\(s\) were run before it "
        rf"\((\d+) decision\(s\) persisted to {re.escape(str(state))} and published\); "
        "a restart resumes after them",
        line,
    )
    assert found, line
    ticks, decisions = int(found[1]), int(found[2])
    assert 3 <= ticks < 100000 and decisions == 2 * ticks  # every symbol decides each tick
    assert f"stopped: interrupted by {sig.name}" in err  # the summary's scheduling row
    # persisted, then published, tick by tick: no tick cut between the two
    assert len(state.read_bytes().splitlines()) == decisions
    events = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert sum(e["event_type"] == "hysteresis_decision_published" for e in events) == decisions
    assert not list(tmp.iterdir())


#: A backend that is the reference, but slow to open (NEWUSER_SLOW seconds), so that a
#: scenario is still in progress when the signal comes; it says so on the real stderr.
SLOW_BACKEND = """
import os, sys, time
from dataclasses import replace

from crashkit.orchestrator.store.jsonl import BACKEND as REFERENCE


def open_store(path, config):
    sys.__stderr__.write("newuser_slow: opening\\n")
    sys.__stderr__.flush()
    time.sleep(float(os.environ.get("NEWUSER_SLOW", "0")))
    return REFERENCE.open(path, config)


BACKEND = replace(REFERENCE, name="newuser-slow", open=open_store, spec="newuser_slow:BACKEND")
"""

#: Three in-process scenarios that apply to any backend with the reference's capabilities.
IN_PROCESS = ("restart/crash-every-tick", "input/duplicate-input-skipped", "replay/replay-full")


def scenarios_run(tmp_path: Path, tmp: Path, names: Sequence[str]) -> subprocess.Popen[str]:
    (tmp_path / "newuser_slow.py").write_text(SLOW_BACKEND)
    files = [str(REPO / "scenarios" / f"{name}.yaml") for name in names]
    return subprocess.Popen(
        [SCRIPT, "scenarios", "run", "--backend", "newuser_slow:BACKEND", *files],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp), "NEWUSER_SLOW": "0.2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def opening(proc: subprocess.Popen[str]) -> Callable[[], bool]:
    """True once the slow backend said it is opening (read from the command's stderr)."""
    assert proc.stderr is not None

    def said() -> bool:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 0)
        return bool(ready) and "newuser_slow: opening" in proc.stderr.readline()

    return said


def test_sigint_mid_scenarios_run_ends_after_the_scenario_with_a_partial_summary(
    tmp_path: Path, tmp: Path
) -> None:
    proc = scenarios_run(tmp_path, tmp, IN_PROCESS)
    returncode, out, err = stopped_by(signal.SIGINT, proc, opening(proc))
    line = assert_stopped(returncode, signal.SIGINT, out, err)
    assert line == (
        "stopped early: interrupted by SIGINT after the scenario in progress; "
        "2 of 3 scenario file(s) not run"
    )
    assert "1 passed, 0 failed, 0 not applicable, 0 bad file(s)" in out  # the first one ran
    assert "crash-every-tick" in out and "replay-full" not in out
    assert not list(tmp.iterdir())


@pytest.mark.skipif(fuse_unavailable() is not None, reason="real mode needs a FUSE mount")
def test_sigterm_mid_a_real_scenario_removes_its_temporary_folder(
    tmp_path: Path, tmp: Path
) -> None:
    proc = scenarios_run(
        tmp_path,
        tmp,
        ("real/real-power-cut-after-clean-run", "real/real-fsync-eio-halts-then-restart"),
    )
    returncode, out, err = stopped_by(
        signal.SIGTERM, proc, lambda: any(tmp.glob("crashkit-scenario-real-*"))
    )
    line = assert_stopped(returncode, signal.SIGTERM, out, err)
    assert line.endswith("; 1 of 2 scenario file(s) not run"), line
    assert "real-power-cut-after-clean-run" in out and "1 passed" in out, out
    assert not list(tmp.iterdir())  # the real runner's scratch and mount folders: removed


# -- 12. coverage of a backend that writes by rename: n/a with why, not 0 ----------------------

#: A correct backend that keeps its state as one JSON object, replaced whole by rename.
RENAME_BACKEND = """
import json, os

from crashkit.orchestrator.store.protocol import Backend, Capabilities, OpenedStore, RestoreSummary
from crashkit.regime_engine.contracts import HysteresisState, HysteresisStore, Regime


def _sync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    poisoned = False

    def __init__(self, path, rows):
        self.path, self.rows = path, rows

    def append(self, states):
        rows = dict(self.rows)
        for s in states:
            rows[s.symbol] = [s.engine_timestamp_ms, s.anchor_regime.value,
                              s.candidate_regime and s.candidate_regime.value,
                              s.progress_current, s.last_commit_timestamp_ms]
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, json.dumps(rows).encode())
            os.fsync(fd)  # SYNC
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _sync_dir(os.path.dirname(self.path))
        self.rows = rows

    def close(self):
        pass


def open_store(path, config):
    folder, made = os.path.dirname(path), []
    while folder and not os.path.isdir(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    for new in reversed(made):
        os.mkdir(new)
        _sync_dir(os.path.dirname(new))
    if os.path.exists(path + ".tmp"):
        os.remove(path + ".tmp")
    store, rows = HysteresisStore(), {}
    if os.path.exists(path):
        with open(path, "rb") as f:
            rows = json.loads(f.read())
    for sym, (ts, anchor, cand, progress, commit) in rows.items():
        store.states[sym] = HysteresisState(
            sym, ts, Regime(anchor), cand and Regime(cand), progress, config.window_updates, commit
        )
    return OpenedStore(Writer(path, rows), store, RestoreSummary(path, "ok" if rows else "bootstrap"))


BACKEND = Backend("rename", open_store, capabilities=Capabilities(temp_files=("{path}.tmp",)))
"""

EXPLORE_SMALL = ("--symbols", "2", "--ticks", "4")


def explore_json(spec: str, *args: str, cwd: Path, tmp: Path) -> dict[str, object]:
    proc = crashkit("explore", "--backend", spec, *EXPLORE_SMALL, "--json", *args, cwd=cwd, tmp=tmp)
    assert proc.returncode in (ExitCode.OK, ExitCode.CHECK_FAILED), proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_coverage_of_a_backend_that_writes_by_rename_says_na_and_why(
    tmp_path: Path, tmp: Path
) -> None:
    (tmp_path / "newuser_rename.py").write_text(RENAME_BACKEND)
    (tmp_path / "newuser_rename_early.py").write_text(  # renames before its data is durable
        RENAME_BACKEND.replace("os.fsync(fd)  # SYNC", "pass")
    )
    (tmp_path / "newuser_inplace.py").write_text(OWN_FORMAT)  # appends in place
    data = explore_json("newuser_rename:BACKEND", cwd=tmp_path, tmp=tmp)
    assert data["violations"] == 0
    coverage, na = data["coverage"], data["coverage_not_applicable"]
    assert isinstance(coverage, dict) and isinstance(na, dict)
    for rule in ("C4.8", "C6.11", "C5.9", "C6.9", "C3.2"):
        assert rule not in coverage and rule in na, rule  # not counted against it
    assert "rename" in na["C4.8"] and "rename" in na["C6.11"]
    assert "single_writer" in na["C5.9"] and "seeded" in na["C6.9"]
    assert coverage["C5.3"] >= 1  # its rename created the state file
    table = crashkit(
        "explore", "--backend", "newuser_rename:BACKEND", *EXPLORE_SMALL, cwd=tmp_path, tmp=tmp
    )
    rows = {line.split("│")[1].strip(): line for line in table.stderr.splitlines() if "│ C" in line}
    assert "n/a (writes by rename" in rows["C6.11"] and "0 (not exercised)" not in rows["C6.11"]
    # what it did decides: a rename that outruns its data leaves an empty file (counted)
    early = explore_json(
        "newuser_rename_early:BACKEND", "--profile", "ext4-writeback", cwd=tmp_path, tmp=tmp
    )
    assert early["violations"] and early["coverage"]["C4.8"] > 0  # type: ignore[index]
    assert "C4.8" not in early["coverage_not_applicable"]  # type: ignore[operator]
    inplace = explore_json("newuser_inplace:open_store", cwd=tmp_path, tmp=tmp)
    assert "C6.11" in inplace["coverage"] and "C4.8" in inplace["coverage"]  # type: ignore[operator]
    assert not list(tmp.iterdir())


# -- 13. an --export-dir that cannot be written does not mask the violations -------------------

NO_FSYNC = "crashkit.harness.kit.variants:no_fsync"


def test_an_unwritable_export_dir_keeps_the_violations_and_their_exit_code(
    tmp_path: Path, tmp: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = crashkit(
        "explore", "--backend", NO_FSYNC, "--symbols", "1", "--ticks", "2",
        "--export-dir", f"{blocker}/findings", cwd=tmp_path, tmp=tmp,
    )  # fmt: skip
    assert proc.returncode == ExitCode.CHECK_FAILED, proc.stderr
    assert "violation 1-durability" in proc.stderr and "violations 1-durability" in proc.stderr
    assert_one_error(
        proc.stderr, f"--export-dir {blocker}/findings", "cannot write", "Not a directory"
    )
    assert not list(tmp.iterdir())


# -- 15. the findings cap says how many more ---------------------------------------------------


def test_the_findings_cap_says_how_many_more_and_0_shows_all(tmp_path: Path, tmp: Path) -> None:
    args = ("explore", "--backend", NO_FSYNC, "--symbols", "2", "--ticks", "6")
    capped = crashkit(*args, "--max-findings", "2", cwd=tmp_path, tmp=tmp)
    assert capped.returncode == ExitCode.CHECK_FAILED, capped.stderr
    (more,) = [x for x in capped.stderr.splitlines() if x.startswith("... and 1-durability")]
    left = int(more.split("not judged on ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert left > 0 and "--max-findings 0" in more, more
    every = crashkit(*args, "--max-findings", "0", "--json", cwd=tmp_path, tmp=tmp)
    data = json.loads(every.stdout)
    assert data["violations_by_invariant"]["1-durability"] > 2
    assert data["unjudged_by_invariant"] == {}  # nothing left unjudged without a cap
    shown = crashkit(*args, "--max-findings", "0", cwd=tmp_path, tmp=tmp)
    assert not [x for x in shown.stderr.splitlines() if x.startswith("... and")]
    kept = data["violations_by_invariant"]["1-durability"]
    assert f"violation 1-durability ({kept} kept)" in shown.stderr


# -- 17. nothing left in the temporary folder --------------------------------------------------


def test_explore_leaves_nothing_in_the_temporary_folder(tmp_path: Path, tmp: Path) -> None:
    work = tmp_path / "work"  # the current folder: nothing written there either
    work.mkdir()
    found = crashkit(
        "explore", "--backend", NO_FSYNC, "--symbols", "1", "--ticks", "2", cwd=work, tmp=tmp
    )
    assert found.returncode == ExitCode.CHECK_FAILED, found.stderr
    assert not list(tmp.iterdir()) and not list(work.iterdir())
    assert "--export-dir DIR" in found.stderr  # how to keep the scenarios: ask for them
    clean = crashkit("explore", "--symbols", "1", "--ticks", "2", cwd=work, tmp=tmp)
    assert clean.returncode == ExitCode.OK, clean.stderr
    error = crashkit("explore", "--backend", "nosuch_xyz:B", cwd=work, tmp=tmp)
    assert error.returncode == ExitCode.USAGE
    kept = crashkit(
        "explore", "--backend", NO_FSYNC, "--symbols", "1", "--ticks", "2",
        "--export-dir", "mine", cwd=work, tmp=tmp,
    )  # fmt: skip
    assert kept.returncode == ExitCode.CHECK_FAILED
    assert list((work / "mine").glob("1-durability-*.yaml"))  # asked for: kept
    assert not list(tmp.iterdir())
