"""The orchestrator's own commands: `run`, `inspect`, `replay`, `synth`, `demo`.

They need nothing of the harness; the `crashkit` command (`crashkit.harness.cli`)
adds the harness's commands to this group. Exit codes (everywhere, `ExitCode`):
0 done; 1 check failed; 2 usage or config error; 3 refused to start (fatal
restore); 4 halted on a persist failure; 5 finished but at least one symbol was
hard-failed; 6 an output could not be written (the tick was persisted, its events
may not have been published: contract D.39).

User text (paths, reasons, symbols) is printed as `rich.text.Text`, never as
console markup, so `x[red]y` stays `x[red]y`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crashkit.orchestrator.config import OrchestratorConfig, load_config, require_state_path
from crashkit.orchestrator.errors import (
    ConfigError,
    ExitCode,
    PublishError,
    StartupRefused,
    os_error_text,
)
from crashkit.orchestrator.events import JsonlSink, MemorySink
from crashkit.orchestrator.interrupt import Interrupt, signals
from crashkit.orchestrator.replay import full_replay, resume_replay
from crashkit.orchestrator.runtime import (
    CommitClock,
    HysteresisRuntime,
    RunStats,
    RuntimeClass,
    TruthRuntime,
    engine_commit_clock,
    wall_commit_clock,
)
from crashkit.orchestrator.sources import encode_snapshot, read_snapshots
from crashkit.orchestrator.store.compact import COMPACT_NOW, DEFAULT_POLICY
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.protocol import (
    DEFAULT_BACKEND,
    BackendFactory,
    RestoreSummary,
    importable_from,
    load_backend,
    load_backend_factory,
)
from crashkit.orchestrator.store.readonly import BackendReport, inspect_backend
from crashkit.orchestrator.store.report import RestoreReport
from crashkit.regime_engine.contracts import (
    DECISION_FIELDS,
    HysteresisConfig,
    HysteresisState,
    RegimeInputSnapshot,
)
from crashkit.regime_engine.synthetic import generate


class CliConsole(Console):
    """rich's Console, but a closed stdout ends in `OutputGuardGroup`'s exit 6: rich's
    own answer is `SystemExit(1)`, which the README reserves for a failed check."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


err = CliConsole(stderr=True, highlight=False, soft_wrap=True)
#: The runtime `run` drives. Always `HysteresisRuntime` here; the harness's real-process
#: mode swaps in its deliberately broken runtimes (`crashkit.harness.explore.real_child`)
#: to prove it catches them.
RUNTIME: RuntimeClass = HysteresisRuntime
PUBLISH_STOPPED = "stopped: the events output failed"


def _fail(code: int, message: str) -> NoReturn:
    err.print(Text.assemble(("error: ", "bold red"), message))
    sys.exit(code)


def _note(message: str) -> None:
    err.print(Text(message))


def _cell(value: object) -> Text:
    """A table cell: user text as it is, and JSON's `null` for a missing value."""
    return Text("null" if value is None else str(value))


def _quiet_stdout() -> None:
    """Point a closed stdout at /dev/null, so the exit-time flush cannot fail noisily."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


#: What a write to an output that cannot take it fails with (a full disk or /dev/full, a
#: file-size or quota limit, a device error, a closed pipe).
_OUTPUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO})


def _is_stdout(stream: object) -> bool:
    """`stream` is stdout, its buffer, a text wrapper over it, or a console printing to it."""
    stdout = sys.stdout
    if stdout is None:
        return False
    if isinstance(stream, Console):
        stream = stream.file
    buffer = getattr(stdout, "buffer", None)
    if stream is stdout or stream is sys.__stdout__ or (buffer is not None and stream is buffer):
        return True
    return isinstance(stream, io.TextIOWrapper) and buffer is not None and stream.buffer is buffer


def _stdout_failed(exc: OSError) -> bool:
    """The error is a write to stdout that failed: the innermost frame of the traceback
    (click's `echo`, rich's buffer write, a flush) was writing to stdout. Anything else
    is not an output failure and keeps its traceback."""
    if isinstance(exc, BrokenPipeError):
        return True
    if exc.errno not in _OUTPUT_ERRNOS or exc.filename is not None:
        return False
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    return bool(frames) and any(map(_is_stdout, frames[-1].f_locals.values()))


def _output_failed(exc: OSError, result: int | None = None) -> NoReturn:
    """Exit 6 with one line (README "Exit codes"): stdout could not take the output."""
    _quiet_stdout()
    if isinstance(exc, BrokenPipeError):
        _fail(
            ExitCode.OUTPUT_FAILED,
            "stdout was closed before the output was complete (the reader of a pipe "
            "exited): the command's work was done, only its output is cut short",
        )
    done = "" if result is None else f"; the command had finished with exit code {result}"
    _fail(
        ExitCode.OUTPUT_FAILED,
        f"stdout: cannot write the output: {os_error_text(exc)} (the output is incomplete{done})",
    )


def _usage_failed(exc: click.ClickException) -> NoReturn:
    """click's usage error on one line (its three-line "Usage: ... Try ... Error:" block
    is for a terminal session; the README promises one `error:` line), exit 2."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if isinstance(ctx, click.Context):
        message = f"{ctx.command_path}: {message}; see '{ctx.command_path} --help'"
    _fail(ExitCode.USAGE, message)


def _flush_stdout() -> None:
    """Push what is buffered for stdout now, while a failure can still be reported (a
    stdout a command closed itself, as the events sink does, has nothing left to push)."""
    stream = sys.stdout
    if stream is not None and not stream.closed:
        stream.flush()


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A usage error as one line (exit 2); a failed write to stdout as one line (exit 6)."""
    try:
        yield
    except click.ClickException as exc:
        _usage_failed(exc)
    except OSError as exc:
        if not _stdout_failed(exc):
            raise
        _output_failed(exc)


class OutputGuardGroup(click.Group):
    """A group whose commands end in one `error:` line and the documented exit code, never
    in a traceback or click's usage block: 2 for a usage error (a bad option, a missing
    argument, an unknown command), 6 when stdout cannot take the output (`> /dev/full`,
    `| head -1`), also for `--help` and `--version`. `--help` itself prints as click's."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _user_errors():  # the group's own options: --help, --version, a bad option
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _user_errors():
            try:
                result = super().invoke(ctx)
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else None
                try:
                    _flush_stdout()
                except OSError as exc:
                    if not _stdout_failed(exc):
                        raise
                    _output_failed(exc, code)
                raise
            _flush_stdout()
            return result


def _clock(config: OrchestratorConfig) -> CommitClock:
    return engine_commit_clock if config.commit_clock == "engine" else wall_commit_clock


def _snapshots(config: OrchestratorConfig, input_path: str | None) -> Iterator[RegimeInputSnapshot]:
    if input_path is not None:
        return read_snapshots(input_path)
    if config.market is None:
        raise ConfigError(
            f"{config.source}: no input: pass --input SNAPSHOTS.jsonl or add a [market] section"
        )
    m = config.market
    return generate(m.symbols, m.ticks, m.seed)


def _backend(config: OrchestratorConfig) -> BackendFactory:
    if config.backend == DEFAULT_BACKEND and config.compaction is not DEFAULT_POLICY:
        return functools.partial(open_jsonl_store, policy=config.compaction)
    try:
        return load_backend_factory(config.backend)
    except ConfigError as exc:
        raise config.error(["engine", "backend"], str(exc)) from exc


def _sink(events_path: str | None) -> JsonlSink:
    """The events output; one that cannot be opened is a usage error, found before any tick."""
    if events_path is None:
        return JsonlSink(sys.stdout.buffer, "stdout")
    try:
        return JsonlSink.open(events_path)
    except OSError as exc:
        raise ConfigError(
            f"--events {events_path}: cannot open for appending: {os_error_text(exc)}"
        ) from exc


def _exit_code(stats: RunStats) -> int:
    if stats.halted:
        return ExitCode.HALTED
    if stats.halted_symbols:
        return ExitCode.SYMBOL_FAILED
    return ExitCode.OK


def _summarise(stats: RunStats, title: str, stopped: str | None = None) -> None:
    table = Table(title=Text(title), show_header=False)
    table.add_row("ticks", str(stats.ticks))
    table.add_row("decisions published", str(stats.decisions))
    table.add_row("symbols restored", str(stats.restored))
    table.add_row("duplicate runs skipped", str(stats.duplicates))
    table.add_row("already-applied snapshots skipped", str(stats.resume_skipped))
    for symbol, reason in sorted(stats.halted_symbols.items()):
        table.add_row(Text(f"halted {symbol}"), Text(reason))
    table.add_row("scheduling", Text(stats.halt_reason or stopped or "ran to the end"))
    err.print(table)


def _applied(message: str, stats: RunStats | None, *, persisted: str | None) -> str:
    """An error that stopped a started run, with what the run had done before it."""
    if stats is None:
        return message
    if stats.ticks == 0:
        unchanged = f"; {persisted} is unchanged" if persisted else ""
        return f"{message}; no tick was run before it{unchanged}"
    done = f"{stats.ticks} tick(s) were run before it ({stats.decisions} decision(s)"
    if persisted:
        return (
            f"{message}; {done} persisted to {persisted} and published); "
            "a restart resumes after them"
        )
    return f"{message}; {done} published; nothing was persisted)"


def _publish_failed(exc: PublishError, stats: RunStats, *, persisted: str | None) -> NoReturn:
    """Contract D.39: the tick was persisted before publishing; a restart republishes."""
    if exc.output == "stdout":
        _quiet_stdout()
    if persisted is None:
        meaning = "nothing is persisted by this command; run it again to get every event"
    else:
        meaning = (
            f"the tick being published was already persisted to {persisted}, so its events may "
            "be missing downstream; a restart resumes after it and publishes each symbol's "
            "latest state as hysteresis_state_restored"
        )
    code = ExitCode.HALTED if stats.halted else ExitCode.OUTPUT_FAILED
    _fail(code, f"{exc}; scheduling stopped at tick {stats.ticks}: {meaning}")


@click.group(cls=OutputGuardGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The reference orchestrator: run, inspect, replay, synth, demo."""


@main.command()
@click.option("--symbols", type=click.IntRange(min=1), required=True, help="Number of symbols.")
@click.option("--ticks", type=click.IntRange(min=0), required=True, help="Number of ticks.")
@click.option("--seed", type=int, required=True, help="Seed: same arguments, same bytes.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="File, its folders created (default stdout).",
)
def synth(symbols: int, ticks: int, seed: int, out: str | None) -> None:
    """Write a seeded synthetic market as snapshots JSONL."""
    stream: IO[bytes] = sys.stdout.buffer
    if out:
        try:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            stream = open(out, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            _fail(ExitCode.USAGE, f"--out {out}: cannot write: {os_error_text(exc)}")
    written = 0
    try:
        for snapshot in generate(symbols, ticks, seed):
            stream.write(encode_snapshot(snapshot))
            written += 1
        stream.flush()
    except OSError as exc:
        if not out:
            _quiet_stdout()
        _fail(
            ExitCode.OUTPUT_FAILED,
            f"{out or 'stdout'}: cannot write snapshots: {os_error_text(exc)} "
            "(the output is incomplete)",
        )
    finally:
        if out:
            with contextlib.suppress(OSError):
                stream.close()
    _note(
        f"synth: {written} snapshots ({symbols} symbols x {ticks} ticks, seed {seed}) "
        f"to {out or 'stdout'}"
    )


@main.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--input", "input_path", default=None, type=click.Path(dir_okay=False))
@click.option("--events", "events_path", default=None, type=click.Path(dir_okay=False))
@click.option("--state", "state_path", default=None, help="Overrides hysteresis_state_path.")
def run_cmd(
    config_path: str, input_path: str | None, events_path: str | None, state_path: str | None
) -> None:
    """Run the orchestrator on a recorded input (or the config's synthetic market)."""
    stats: RunStats | None = None  # set once ticks may run: errors then say what was done
    persisted: str | None = None
    importable_from(Path.cwd())  # `backend = "mystore:BACKEND"` beside it (docs/backends.md)
    interrupt = Interrupt()  # SIGINT, SIGTERM: no tick after it; closed as at the input's end
    try:
        with signals(interrupt.on_signal):
            config = load_config(config_path)
            snapshots = _snapshots(config, input_path)
            if config.engine_mode == "truth":
                sink = _sink(events_path)
                truth = TruthRuntime(sink)
                stats = truth.stats
                try:
                    truth.run(snapshots, stop=lambda: interrupt.asked)
                finally:
                    sink.close()
                _summarise(stats, "truth run", _stopped_row(interrupt))
                _stop_if_asked(interrupt, stats, persisted=None)
                sys.exit(ExitCode.OK)
            path = require_state_path(config, state_path)
            factory = _backend(config)
            sink = _sink(events_path)
            runtime = RUNTIME(
                config=config.hysteresis,
                state_path=path,
                sink=sink,
                backend_factory=factory,
                clock=_clock(config),
            )
            try:
                report = runtime.start()
                stats, persisted = runtime.stats, path
                _restore_notes(report)
                runtime.run(snapshots, stop=lambda: interrupt.asked)
            finally:
                runtime.close()  # the backend closed, its writer lock released
                sink.close()
    except ConfigError as exc:
        _fail(ExitCode.USAGE, _applied(str(exc), stats, persisted=persisted))
    except StartupRefused as exc:
        _fail(ExitCode.REFUSED, f"refusing to start: {exc}")
    except PublishError as exc:
        if stats is None:  # the restored events of start(): nothing was scheduled
            _fail(
                ExitCode.OUTPUT_FAILED,
                f"{exc}; no tick was run, and the next start publishes the restored states again",
            )
        _summarise(stats, f"run of {persisted}" if persisted else "truth run", PUBLISH_STOPPED)
        _publish_failed(exc, stats, persisted=persisted)
    halted = runtime.stats.halted  # a halt ended the run, not the signal: exit 4 stands
    _summarise(runtime.stats, f"run of {path}", None if halted else _stopped_row(interrupt))
    if not halted:
        _stop_if_asked(interrupt, runtime.stats, persisted=path)
    sys.exit(_exit_code(runtime.stats))


def _stopped_row(interrupt: Interrupt) -> str | None:
    """The summary's `scheduling` row of a run a signal stopped (None: it was not)."""
    return f"stopped: {interrupt.line()}" if interrupt.asked else None


def _stop_if_asked(interrupt: Interrupt, stats: RunStats, *, persisted: str | None) -> None:
    """After a signal: one line saying where the run stopped, then exit 130 or 143."""
    if not interrupt.asked:
        return
    _note(_applied(f"stopped early: {interrupt.line()}", stats, persisted=persisted))
    sys.exit(interrupt.exit_code)


def _restore_notes(report: RestoreSummary) -> None:
    """What restore passed over (invalid lines, a torn tail to cut), as `inspect` shows it."""
    for note in report.notes():
        _note(f"restore of {report.path}: {note}")


#: The first bytes of every SQLite database (`store.sqlite.SQLITE_MAGIC`; repeated here so
#: that a command on a line file does not import SQLite).
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: str) -> bool:
    """The path is a regular file that starts as an SQLite database does."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _state_report(state_path: str) -> RestoreReport:
    """The restore report of a state file: a line file's, or an SQLite state database's
    (the same shape: `lines` and `valid` count its rows, one per symbol)."""
    if _is_sqlite(state_path):
        from crashkit.orchestrator.store import sqlite

        return sqlite.restore_report(state_path)
    return restore_report(state_path)


def _missing(path: str) -> bool:
    """Nothing at `path`: a restore starts empty. A path that cannot be looked up
    (a folder without permission, a file where a folder should be) is not missing: a
    restore refuses it, and so must every command (exit 3, not "no such file")."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


#: Said when the reference's reading finds no valid line: the file may be another backend's.
OTHER_BACKEND_HINT = (
    "{path}: no line is a state record of the reference's; if it is another backend's "
    "state, read it as that backend does: crashkit inspect --backend MODULE:ATTR {path}"
)


def _state_json(state: HysteresisState) -> dict[str, object]:
    """A restored state in `inspect --json`'s shape (no line: not every backend has lines)."""
    return {
        "symbol": state.symbol,
        "engine_timestamp_ms": state.engine_timestamp_ms,
        "anchor_regime": state.anchor_regime.value,
        "candidate_regime": None
        if state.candidate_regime is None
        else state.candidate_regime.value,
        "progress_current": state.progress_current,
        "last_commit_timestamp_ms": state.last_commit_timestamp_ms,
        "line": None,
    }


def _backend_json(result: BackendReport, spec: str) -> dict[str, object]:
    """`inspect --backend --json`: the reference's keys (null where the backend does not
    tell), plus `backend` and `notes`."""
    summary = result.summary
    notes = list(summary.notes())
    if isinstance(summary, RestoreReport):
        return {**summary.to_json(), "backend": spec, "notes": notes}
    states = result.states
    symbols = None if states is None else {s: _state_json(states[s]) for s in sorted(states)}
    return {
        "path": summary.path,
        "outcome": summary.outcome,
        "reason": summary.reason,
        "lines": None,
        "valid": None,
        "blank": None,
        "torn_tail_bytes": None,
        "ties": None,
        "invalid": None,
        "symbols": symbols,
        "backend": spec,
        "notes": notes,
    }


@main.command()
@click.argument("state_path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option(
    "--backend",
    "backend_spec",
    default=None,
    metavar="MODULE:ATTR",
    help="Read the state as this backend does (a module in the current folder is "
    "importable). Default: a line file, or an SQLite state database by its first bytes.",
)
def inspect(state_path: str, as_json: bool, backend_spec: str | None) -> None:
    """Read-only fsck of a state file: the restore report (exit 3 if restore would be fatal).

    A line file or an SQLite state database (told apart by its first bytes); any other
    backend's state with --backend, read through the backend protocol, never written."""
    if backend_spec is not None:
        importable_from(Path.cwd())
        try:
            backend = load_backend(backend_spec)
        except ConfigError as exc:
            _fail(ExitCode.USAGE, f"--backend: {exc}")
        result = inspect_backend(backend, state_path)
        summary: RestoreSummary = result.summary
        if result.how == "copy":
            _note(
                f"{backend_spec} declares no read-only restore: opened it on a copy of its "
                "files in a temporary folder (removed); the files themselves were not touched"
            )
        data = _backend_json(result, backend_spec)
    else:
        report = _state_report(state_path)
        summary = report
        if _is_sqlite(state_path):
            _note(f"{state_path}: an SQLite state database; lines and valid count its rows")
        elif report.outcome == "fatal" and report.invalid and not report.valid:
            _note(OTHER_BACKEND_HINT.format(path=state_path))
        data = report.to_json()
    if summary.outcome == "bootstrap" and _missing(state_path):
        _note(f"no file at {state_path}: a restore starts empty (outcome bootstrap)")
    code = ExitCode.REFUSED if summary.outcome == "fatal" else ExitCode.OK
    if as_json:
        click.echo(json.dumps(data, sort_keys=True, indent=2))
        sys.exit(code)
    _print_report(state_path, data, summary, backend_spec)
    sys.exit(code)


def _print_report(
    state_path: str, data: dict[str, object], summary: RestoreSummary, backend: str | None
) -> None:
    """`inspect`'s tables: the counts (those the backend tells), invalid lines, notes, and
    the state each symbol would restore."""
    console = CliConsole(highlight=False)
    by = f" (backend {backend})" if backend else ""
    console.print(Text(f"restore report: {state_path}{by}"), soft_wrap=True)  # never cut short
    table = Table(show_header=False)
    for key in ("outcome", "reason", "lines", "valid", "blank", "torn_tail_bytes", "ties"):
        if key in ("outcome", "reason") or data[key] is not None:
            table.add_row(key, _cell(data[key]))
    console.print(table)
    if isinstance(summary, RestoreReport) and summary.invalid:
        bad = Table("line", "reason", title="invalid lines")
        for item in summary.invalid:
            bad.add_row(str(item.line), _cell(item.reason))
        console.print(bad)
    elif not isinstance(summary, RestoreReport) and summary.notes():
        notes = Table("note", title="notes")
        for note in summary.notes():
            notes.add_row(_cell(note))
        console.print(notes)
    symbols = data["symbols"]
    if isinstance(symbols, dict) and symbols:
        won = Table("symbol", "ts", "anchor", "candidate", "progress", "line", title="restored")
        for symbol, fields in symbols.items():
            won.add_row(
                _cell(symbol),
                *(
                    _cell(fields[key])
                    for key in (
                        "engine_timestamp_ms",
                        "anchor_regime",
                        "candidate_regime",
                        "progress_current",
                        "line",
                    )
                ),
            )
        console.print(won)


@main.command()
@click.argument("state_path", type=click.Path())
def compact(state_path: str) -> None:
    """Rewrite a state file to hold only each symbol's winning record (contract §8): under
    the writer lock, through a temp file, fsync, replace, folder fsync. Restore gives the
    same states before and after. Exit 3 if the file is refused (fatal, locked)."""
    if _missing(state_path):
        _fail(ExitCode.USAGE, f"{state_path}: no state file to compact")
    if _is_sqlite(state_path):
        _fail(
            ExitCode.USAGE,
            f"{state_path}: an SQLite state database holds one row per symbol already; "
            "there is nothing to compact",
        )
    before = restore_report(state_path)
    if before.outcome == "fatal":  # not a regular file, unreadable, nothing valid: refused
        _fail(ExitCode.REFUSED, f"{state_path}: not compacted: {before.reason}")
    try:
        opened = open_jsonl_store(state_path, HysteresisConfig(), policy=COMPACT_NOW)
    except StartupRefused as exc:
        _fail(ExitCode.REFUSED, f"{state_path}: not compacted: {exc.reason}")
    after = opened.report
    opened.backend.close()
    assert isinstance(after, RestoreReport)
    if after.lines > len(after.winners):
        _fail(
            ExitCode.REFUSED,
            f"{state_path}: compaction failed before the rename; the file is unchanged",
        )
    if before.lines == after.lines:
        _note(f"{state_path}: already compact ({after.lines} line(s), one per symbol)")
        return
    _note(
        f"{state_path}: compacted {before.lines:,} line(s), {before.file_bytes:,} bytes -> "
        f"{after.lines:,} record(s), {after.file_bytes:,} bytes"
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option("--from-state", "from_state", default=None, type=click.Path())
@click.option("--at", "at_ms", type=int, default=None, help="Resume at engine time T (ms).")
@click.option("--events", "events_path", default=None, type=click.Path(dir_okay=False))
def replay(
    config_path: str,
    input_path: str,
    from_state: str | None,
    at_ms: int | None,
    events_path: str | None,
) -> None:
    """Replay decisions: in full from empty, or mid-stream from a state file's records <= T."""
    if (from_state is None) != (at_ms is None):
        _fail(ExitCode.USAGE, "--from-state and --at go together")
    if from_state is not None and _missing(from_state):
        _fail(
            ExitCode.USAGE,
            f"--from-state {from_state}: no such file (a mid-stream replay seeds from an "
            "existing state file; for a replay from empty, leave out --from-state and --at)",
        )
    stats = RunStats()
    try:
        config = load_config(config_path)
        sink = _sink(events_path)
        snapshots = read_snapshots(input_path)
        try:
            if from_state is None or at_ms is None:
                full_replay(config.hysteresis, snapshots, sink, clock=_clock(config), stats=stats)
            else:
                resume_replay(
                    config.hysteresis,
                    snapshots,
                    sink,
                    state_path=from_state,
                    at_ms=at_ms,
                    clock=_clock(config),
                    stats=stats,
                )
        finally:
            sink.close()
    except ConfigError as exc:
        _fail(ExitCode.USAGE, _applied(str(exc), stats if stats.ticks else None, persisted=None))
    except StartupRefused as exc:
        _fail(ExitCode.REFUSED, f"refusing to replay: {exc}")
    except PublishError as exc:
        _summarise(stats, "replay", PUBLISH_STOPPED)
        _publish_failed(exc, stats, persisted=None)
    _summarise(stats, "replay")
    sys.exit(_exit_code(stats))


def _decision(payload: object) -> tuple[object, ...]:
    """A published state reduced to what a decision is judged by (no wall clock, no reasons)."""
    assert isinstance(payload, dict)
    state = payload["state"]
    return tuple(state[k] for k in DECISION_FIELDS)


@main.command()
@click.option("--symbols", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--ticks", type=click.IntRange(min=2), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(symbols: int, ticks: int, seed: int) -> None:
    """Run, crash half-way (process gone), restart, and compare with an uninterrupted run."""
    config = HysteresisConfig()
    snapshots = list(generate(symbols, ticks, seed))
    with tempfile.TemporaryDirectory(prefix="crashkit-demo-") as tmp:
        reference = MemorySink()
        full_replay(config, snapshots, reference, clock=engine_commit_clock)
        expected = {e.run_id: _decision(e.payload) for e in reference.events if e.run_id}

        state = str(Path(tmp) / "state" / "hysteresis.jsonl")
        seen: dict[str | None, tuple[object, ...]] = {}
        half = len(snapshots) // 2
        for part in (snapshots[:half], snapshots):
            sink = MemorySink()
            runtime = HysteresisRuntime(
                config=config,
                state_path=state,
                sink=sink,
                backend_factory=open_jsonl_store,
                clock=engine_commit_clock,
            )
            report = runtime.start()
            stats = runtime.run(part)
            runtime.close()  # the first pass stops mid-stream: a restart follows
            for event in sink.events:
                if event.event_type in (
                    "hysteresis_decision_published",
                    "hysteresis_state_restored",
                ):
                    seen[event.run_id] = _decision(event.payload)
        _summarise(
            stats, f"demo: {symbols} symbols x {ticks} ticks, restarted at tick {ticks // 2}"
        )
        records = f", {report.valid} records" if isinstance(report, RestoreReport) else ""
        _note(f"restore on restart: {report.outcome}{records}, {stats.restored} symbols")
        same = seen == expected
        err.print(
            Text.assemble(
                f"decisions over both runs: {len(seen)}; uninterrupted run: {len(expected)}; ",
                ("identical", "green") if same else ("DIFFERENT", "red"),
            )
        )
        sys.exit(ExitCode.OK if same else ExitCode.CHECK_FAILED)
