"""The orchestrator's own commands: `run`, `inspect`, `replay`, `synth`, `demo`.

They need nothing of the harness; the `crashkit` command (`crashkit.harness.cli`)
adds the harness's commands to this group. Exit codes (everywhere): 0 done; 1 check
failed; 2 usage or config error; 3 refused to start (fatal restore); 4 halted on a
persist failure; 5 finished but at least one symbol was hard-failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
from rich.console import Console
from rich.table import Table

from crashkit.orchestrator.config import OrchestratorConfig, load_config, require_state_path
from crashkit.orchestrator.errors import ConfigError, ExitCode, StartupRefused
from crashkit.orchestrator.events import JsonlSink, MemorySink
from crashkit.orchestrator.replay import full_replay, resume_replay
from crashkit.orchestrator.runtime import (
    CommitClock,
    HysteresisRuntime,
    RunStats,
    TruthRuntime,
    engine_commit_clock,
    wall_commit_clock,
)
from crashkit.orchestrator.sources import encode_snapshot, read_snapshots
from crashkit.orchestrator.store.jsonl import open_jsonl_store, restore_report
from crashkit.orchestrator.store.protocol import BackendFactory, load_backend_factory
from crashkit.orchestrator.store.report import RestoreReport
from crashkit.regime_engine.contracts import DECISION_FIELDS, HysteresisConfig, RegimeInputSnapshot
from crashkit.regime_engine.synthetic import generate

err = Console(stderr=True)


def _fail(code: int, message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(code)


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
    try:
        return load_backend_factory(config.backend)
    except ConfigError as exc:
        raise ConfigError(f"{config.source}: [engine] {exc}") from exc


def _sink(events_path: str | None) -> JsonlSink:
    if events_path is None:
        return JsonlSink(sys.stdout.buffer)
    return JsonlSink.open(events_path)


def _exit_code(stats: RunStats) -> int:
    if stats.halted:
        return ExitCode.HALTED
    if stats.halted_symbols:
        return ExitCode.SYMBOL_FAILED
    return ExitCode.OK


def _summarise(stats: RunStats, title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("ticks", str(stats.ticks))
    table.add_row("decisions published", str(stats.decisions))
    table.add_row("symbols restored", str(stats.restored))
    table.add_row("duplicate runs skipped", str(stats.duplicates))
    table.add_row("already-applied snapshots skipped", str(stats.resume_skipped))
    for symbol, reason in sorted(stats.halted_symbols.items()):
        table.add_row(f"halted {symbol}", reason)
    table.add_row("scheduling", stats.halt_reason or "ran to the end")
    err.print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The reference orchestrator: run, inspect, replay, synth, demo."""


@main.command()
@click.option("--symbols", type=click.IntRange(min=1), required=True, help="Number of symbols.")
@click.option("--ticks", type=click.IntRange(min=0), required=True, help="Number of ticks.")
@click.option("--seed", type=int, required=True, help="Seed: same arguments, same bytes.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="File (default stdout).")
def synth(symbols: int, ticks: int, seed: int, out: str | None) -> None:
    """Write a seeded synthetic market as snapshots JSONL."""
    stream: IO[bytes] = open(out, "wb") if out else sys.stdout.buffer  # noqa: SIM115
    try:
        for snapshot in generate(symbols, ticks, seed):
            stream.write(encode_snapshot(snapshot))
    finally:
        if out:
            stream.close()
        else:
            stream.flush()


@main.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--input", "input_path", default=None, type=click.Path(dir_okay=False))
@click.option("--events", "events_path", default=None, type=click.Path(dir_okay=False))
@click.option("--state", "state_path", default=None, help="Overrides hysteresis_state_path.")
def run_cmd(
    config_path: str, input_path: str | None, events_path: str | None, state_path: str | None
) -> None:
    """Run the orchestrator on a recorded input (or the config's synthetic market)."""
    try:
        config = load_config(config_path)
        snapshots = _snapshots(config, input_path)
        if config.engine_mode == "truth":
            sink = _sink(events_path)
            stats = TruthRuntime(sink).run(snapshots)
            _summarise(stats, "truth run")
            sys.exit(ExitCode.OK)
        path = require_state_path(config, state_path)
        factory = _backend(config)
        sink = _sink(events_path)
        runtime = HysteresisRuntime(
            config=config.hysteresis,
            state_path=path,
            sink=sink,
            backend_factory=factory,
            clock=_clock(config),
        )
        runtime.start()
        try:
            stats = runtime.run(snapshots)
        finally:
            runtime.close()
    except ConfigError as exc:
        _fail(ExitCode.USAGE, str(exc))
    except StartupRefused as exc:
        _fail(ExitCode.REFUSED, f"refusing to start: {exc}")
    _summarise(stats, f"run of {path}")
    sys.exit(_exit_code(stats))


@main.command()
@click.argument("state_path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def inspect(state_path: str, as_json: bool) -> None:
    """Read-only fsck of a state file: the restore report (exit 3 if restore would be fatal)."""
    report = restore_report(state_path)
    if as_json:
        click.echo(json.dumps(report.to_json(), sort_keys=True, indent=2))
    else:
        data = report.to_json()
        table = Table(title=f"restore report: {state_path}", show_header=False)
        for key in ("outcome", "reason", "lines", "valid", "blank", "torn_tail_bytes", "ties"):
            table.add_row(key, str(data[key]))
        console = Console()
        console.print(table)
        if report.invalid:
            bad = Table("line", "reason", title="invalid lines")
            for item in report.invalid:
                bad.add_row(str(item.line), item.reason)
            console.print(bad)
        if report.winners:
            won = Table("symbol", "ts", "anchor", "candidate", "progress", "line", title="restored")
            symbols = data["symbols"]
            assert isinstance(symbols, dict)
            for symbol, fields in symbols.items():
                won.add_row(
                    symbol,
                    str(fields["engine_timestamp_ms"]),
                    str(fields["anchor_regime"]),
                    str(fields["candidate_regime"]),
                    str(fields["progress_current"]),
                    str(fields["line"]),
                )
            console.print(won)
    sys.exit(ExitCode.REFUSED if report.outcome == "fatal" else ExitCode.OK)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False))
@click.option("--from-state", "from_state", default=None, type=click.Path(dir_okay=False))
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
    try:
        config = load_config(config_path)
        sink = _sink(events_path)
        snapshots = read_snapshots(input_path)
        if from_state is None or at_ms is None:
            stats = full_replay(config.hysteresis, snapshots, sink, clock=_clock(config))
        else:
            stats = resume_replay(
                config.hysteresis,
                snapshots,
                sink,
                state_path=from_state,
                at_ms=at_ms,
                clock=_clock(config),
            )
    except ConfigError as exc:
        _fail(ExitCode.USAGE, str(exc))
    except StartupRefused as exc:
        _fail(ExitCode.REFUSED, f"refusing to replay: {exc}")
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
        err.print(f"restore on restart: {report.outcome}{records}, {stats.restored} symbols")
        same = seen == expected
        err.print(
            f"decisions over both runs: {len(seen)}; uninterrupted run: {len(expected)}; "
            + ("[green]identical[/]" if same else "[red]DIFFERENT[/]")
        )
        sys.exit(ExitCode.OK if same else ExitCode.CHECK_FAILED)
