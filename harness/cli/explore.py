"""`crashkit explore`: the crash explorer from the command line, with progress and a summary."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from crashkit.harness.explore import Explorer
from crashkit.harness.explore.suite import SUITES, Job, run_jobs, single
from crashkit.harness.explore.summary import minimal_findings, summary_table
from crashkit.harness.explore.workload import Workload
from crashkit.harness.scenarios.export import export_findings
from crashkit.orchestrator.errors import ConfigError, ExitCode
from crashkit.orchestrator.store.protocol import DEFAULT_BACKEND, load_backend


def parse_shard(text: str) -> tuple[int, int]:
    """`i/n` with 0 <= i < n (shards are numbered from 0)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise click.BadParameter(f"{text!r} is not i/n with 0 <= i < n (for example 0/2)")
    return i, n


@click.command()
@click.option("--backend", default=DEFAULT_BACKEND, show_default=True, help="module:factory")
@click.option("--symbols", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--ticks", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="window_updates of the hysteresis config.",
)
@click.option(
    "--suite",
    type=click.Choice(sorted(SUITES)),
    default=None,
    help="Run a named suite instead of one workload (ci = make crash).",
)
@click.option("--sweep", is_flag=True, help="Add the I/O-error sweep on the workload.")
@click.option("--models", is_flag=True, help="Add the fsync-failure models on the workload.")
@click.option("--shard", default="0/1", show_default=True, help="Run shard i of n (i from 0).")
@click.option("--full", is_flag=True, help="Never stop a resumed run early.")
@click.option(
    "--torn",
    type=click.Choice(["default", "all"]),
    default="default",
    show_default=True,
    help="Cuts inside un-synced lines: a few per line, or every byte.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--export-dir",
    default="scenarios/regressions",
    show_default=True,
    help="Where each invariant's smallest finding is written as a regression scenario.",
)
@click.option("--no-export", is_flag=True, help="Do not write regression scenarios.")
def explore(
    backend: str,
    symbols: int,
    ticks: int,
    seed: int,
    window: int,
    suite: str | None,
    sweep: bool,
    models: bool,
    shard: str,
    full: bool,
    torn: str,
    as_json: bool,
    export_dir: str,
    no_export: bool,
) -> None:
    """Crash a workload at every point, restart it on every disk a power cut may leave,
    and check every invariant of the contract (exit 1 on any violation)."""
    err = Console(stderr=True)
    try:
        declared = load_backend(backend)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] --backend: {exc}", highlight=False, soft_wrap=True)
        sys.exit(ExitCode.USAGE)
    shard_ix = parse_shard(shard)
    jobs: tuple[Job, ...]
    if suite is not None:
        jobs = SUITES[suite]()
        title = f"explore --suite {suite} ({backend}, shard {shard})"
    else:
        workload = Workload(symbols, ticks, seed, window_updates=window, name="cli")
        jobs = single(workload, sweep=sweep, models=models)
        title = f"explore {symbols} symbols x {ticks} ticks, seed {seed} ({backend}, shard {shard})"

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]:,} states"),
        TimeElapsedColumn(),
        console=err,
        transient=as_json,
    )
    with progress:
        task = progress.add_task("jobs", total=len(jobs), states=0)
        explorer = Explorer(
            declared,
            full=full,
            torn=torn,
            shard=shard_ix,
            on_progress=lambda n: progress.update(
                task, states=progress.tasks[0].fields["states"] + n
            ),
        )
        done = [0]

        def on_job(job: Job) -> None:
            progress.update(task, completed=done[0], description=f"{job.kind} {job.workload.name}")
            done[0] += 1

        summary = run_jobs(explorer, jobs, on_job)
        progress.update(task, completed=len(jobs), description="done")
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True, indent=2))
    else:
        Console(stderr=True).print(summary_table(summary, title))
        for finding, count in minimal_findings(summary.findings):
            err.print(
                f"[bold red]violation[/] {finding.violation.invariant} ({count} in all): "
                f"{finding.violation.message}",
                highlight=False,
                soft_wrap=True,
            )
            err.print(json.dumps(finding.to_dict()["reproduction"], sort_keys=True), soft_wrap=True)
    if summary.findings and not no_export:
        spec = None if backend == DEFAULT_BACKEND else backend
        paths = export_findings(summary.findings, export_dir, backend=spec, explorer=explorer)
        for path in paths:
            err.print(f"regression scenario written: {path}", highlight=False, soft_wrap=True)
    sys.exit(ExitCode.CHECK_FAILED if summary.findings else ExitCode.OK)
