"""`crashkit explore`: the crash explorer from the command line, with progress and a summary.

Exit codes: 0 no violation; 1 at least one violation; 2 a usage error (a bad
`--backend` or `--shard`, options `--suite` ignores, a backend whose I/O the fault
layer cannot see), 130/143 (SIGINT/SIGTERM: the summary of what was explored so
far). `--exec` adds 3 (the command changed nothing under $CRASHKIT_DIR),
and 4 (inconclusive: a budget ran out, nothing refused):
`crashkit.harness.explore.exec_mode.ExecExit`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crashkit.faults import PREFIX, PROFILE_NAMES, TornMode, profile_named
from crashkit.faults.crash import Exploration
from crashkit.harness.explore import Explorer
from crashkit.harness.explore.explorer import NotApplicable
from crashkit.harness.explore.probe import InvisibleIO, require_visible
from crashkit.harness.explore.suite import (
    SUITES,
    Job,
    applicable_jobs,
    parse_shard,
    run_jobs,
    single,
)
from crashkit.harness.explore.summary import (
    Finding,
    Summary,
    capped_lines,
    coverage_table,
    minimal_findings,
    summary_table,
)
from crashkit.harness.explore.workload import Workload
from crashkit.harness.judge.limits import LIMITS
from crashkit.harness.judge.vulnerabilities import Vulnerability, headline, report_lines
from crashkit.harness.scenarios.export import (
    backend_spec,
    export_finding,
    export_findings,
    exportable,
)
from crashkit.orchestrator.cli import CliConsole
from crashkit.orchestrator.errors import ConfigError, ExitCode, os_error_text
from crashkit.orchestrator.interrupt import Interrupt, signals
from crashkit.orchestrator.store.protocol import (
    DEFAULT_BACKEND,
    Backend,
    importable_from,
    load_backend,
)

if TYPE_CHECKING:
    from crashkit.harness.explore.exec_mode import ExecProgress

#: Options that shape the one workload, which `--suite` replaces.
WORKLOAD_OPTIONS = ("symbols", "ticks", "seed", "window", "sweep", "models")
DEFAULT_MAX_FINDINGS = 20


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from exc


def _run(
    progress: Progress, explorer: Explorer, jobs: Sequence[Job], label: str, started: list[int]
) -> Summary:
    """The jobs on one explorer, with a progress bar (labelled by profile, if several);
    `started[0]` counts the jobs begun."""
    prefix = f"{label}: " if label else ""
    task = progress.add_task(f"{prefix}jobs", total=len(jobs), states=0)
    explorer.on_progress = lambda n: progress.update(
        task, states=progress.tasks[task].fields["states"] + n
    )
    done = [0]

    def on_job(job: Job) -> None:
        progress.update(
            task, completed=done[0], description=f"{prefix}{job.kind} {job.workload.name}"
        )
        done[0] += 1
        started[0] += 1

    summary = run_jobs(explorer, jobs, on_job)
    ended = "interrupted" if explorer.interrupted else "done"
    progress.update(task, completed=done[0] if explorer.interrupted else len(jobs))
    progress.update(task, description=f"{prefix}{ended}")
    return summary


def _report_profiles(summaries: dict[str, Summary], as_json: bool, title: str) -> None:
    """`--profile all`: one row per profile (JSON: each profile's summary)."""
    if as_json:
        data = {name: s.to_dict() for name, s in summaries.items()}
        click.echo(json.dumps({"profiles": data}, sort_keys=True, indent=2))
        return
    table = Table(title=escape(f"{title}, every file-system profile"))
    for column in ("profile", "crash states", "violations", "known limits of the v1 format"):
        table.add_column(
            column, justify="left" if column == "profile" else "right", overflow="fold"
        )
    for name, s in summaries.items():
        broken = ", ".join(f"{k} {v}" for k, v in s.violations_by_invariant().items() if v)
        limits = ", ".join(f"{k} {v}" for k, v in sorted(s.limits.items()))
        table.add_row(name, f"{s.states_checked:,}", broken or "0", limits or "none")
    CliConsole(stderr=True).print(table)
    for limit_id in sorted({k for s in summaries.values() for k in s.limits}):
        limit = LIMITS[limit_id]
        CliConsole(stderr=True).print(
            f"known limit {limit_id} ({limit.invariant}): {limit.why}. A later format would "
            f"add {limit.v2} (docs/contract.md, D.40).",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """The options only `--exec` takes (their values as given)."""

    exploration: Exploration
    budget: int
    time_budget: float
    ignore: tuple[str, ...]
    jobs: int | None
    keep: bool
    ack: tuple[str, ...] = ()
    only: str | None = None
    stacks: bool = False


#: The options only --exec takes (parameter name: flag), refused without it.
EXEC_ONLY = {
    "exhaustive": "--exhaustive",
    "exploration": "--exploration",
    "budget": "--budget",
    "time_budget": "--time-budget",
    "ignore": "--ignore",
    "exec_jobs": "--jobs",
    "keep": "--keep",
    "ack": "--ack",
    "only": "--only",
    "stacks": "--stacks",
}


def _exec_progress(
    err: CliConsole, time_budget: float
) -> tuple[Progress, Callable[[ExecProgress], None]]:
    """A progress line for a terminal: states done of those found so far, states/s, time
    left (extrapolated from the crash points enumerated, within the time budget)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[states]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[left]}"),
        console=err,
        transient=True,
    )
    task = progress.add_task("recording the command", total=None, states="", rate="", left="")

    def show(now: ExecProgress) -> None:
        total = now.found
        if 0 < now.points_enumerated < now.points_total:
            total = round(now.found * now.points_total / now.points_enumerated)
        rate = now.done / now.elapsed if now.elapsed > 0 else 0.0
        left = (total - now.done) / rate if rate > 0 else float("inf")
        left = min(left, max(0.0, time_budget - now.elapsed))
        progress.update(
            task,
            description=f"crash points {now.points_enumerated:,}/{now.points_total:,}",
            completed=now.done,
            total=max(total, now.done, 1),
            states=f"{now.done:,}/{total:,} states",
            rate=f"{rate:,.0f} states/s",
            left=f"~{left:,.0f} s left" if left != float("inf") else "",
        )

    return progress, show


def _explore_exec(
    ctx: click.Context,
    err: CliConsole,
    command: str | None,
    check: str | None,
    profile: str,
    torn: str,
    max_findings: int,
    as_json: bool,
    options: ExecOptions,
) -> NoReturn:
    """`--exec CMD --check CHECK`: any program, recorded on a FUSE mount. Exit codes:
    `crashkit.harness.explore.exec_mode.ExecExit` (0 clean, 1 a finding or CMD failed,
    2 a usage error, no FUSE or a checker that cannot judge, 3 CMD changed nothing under
    $CRASHKIT_DIR, 4 a budget ran out (inconclusive), 130/143 SIGINT/SIGTERM)."""
    from crashkit.harness.explore.exec_mode import (
        CheckerUnusable,
        UnknownVulnerability,
        explore_exec,
        finding_lines,
        vulnerability_notes,
    )

    if command is None or check is None:
        _usage(err, "--exec and --check go together")
    others = [
        f"--{name}"
        for name in ("backend", "suite", *WORKLOAD_OPTIONS, "shard", "full", "export_dir")
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if others:
        _usage(err, f"--exec explores its own program; it cannot be combined with {others[0]}")
    _one_profile_on_fuse(err, "--exec", profile)
    progress: Progress | None = None
    hook: Callable[[ExecProgress], None] | None = None
    if sys.stderr.isatty():
        progress, hook = _exec_progress(err, options.time_budget)
    try:
        with progress if progress is not None else contextlib.nullcontext():
            summary = explore_exec(
                command,
                check,
                profile=profile,
                torn=torn,
                exploration=options.exploration,
                ignore=options.ignore,
                budget=options.budget,
                time_budget=options.time_budget,
                jobs=options.jobs,
                max_findings=max_findings,
                keep=options.keep,
                ack=options.ack,
                on_progress=hook,
                only=options.only,
                stacks=options.stacks,
            )
    except CheckerUnusable as exc:
        _usage(err, f"--check: {exc}")
    except UnknownVulnerability as exc:
        _usage(err, f"--only: {exc}")
    recording = summary.recording
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True, indent=2))
    else:
        title = f"explore --exec {command} (profile {summary.profile}, {summary.exploration})"
        table = Table(title=escape(title))
        table.add_column("")
        table.add_column("", justify="right")
        table.add_row("calls recorded", f"{len(recording.trace):,}")
        table.add_row("exit code of the command", str(recording.returncode))
        table.add_row(
            "crash points explored", f"{summary.points_explored:,} of {summary.points_total:,}"
        )
        table.add_row("crash states checked", f"{summary.states:,}")
        table.add_row("distinct disks checked", f"{summary.checked:,}")
        if summary.unchecked or summary.stopped is not None:
            table.add_row("crash states left unchecked", f"{summary.unchecked:,}")
        table.add_row("refused by the check", f"{summary.failed:,}")
        table.add_row("checkers at once", str(summary.jobs))
        table.add_row("seconds", f"{summary.seconds:.1f}")
        err.print(table)
        notes = list(summary.stop_lines())
        if summary.recorded and recording.returncode != 0:
            notes.append(
                f"the command itself failed (exit {recording.returncode}): "
                f"{recording.stderr.strip()[-500:] or '(no output)'}"
            )
        if summary.nothing_recorded is not None:
            notes.append(summary.nothing_recorded)
        notes += [f"not recorded: {call}" for call in recording.unsupported]
        notes += [f"note: {note}" for note in recording.notes]
        notes += vulnerability_notes(summary, max_findings)
        notes += finding_lines(summary)
        if summary.kept is not None:
            notes.append(f"the refused disks are kept under {summary.kept} (--keep)")
        for line in notes:
            err.print(escape(line), highlight=False, soft_wrap=True)
    sys.exit(summary.exit_code)


def _print_vulnerabilities(
    err: CliConsole, vulns: Sequence[Vulnerability], refused: str, cap: int
) -> None:
    """The refused states by cause, under the summary table (nothing when none)."""
    if not vulns:
        return
    for line in [headline(vulns, refused), *report_lines(vulns, cap)]:
        err.print(line, highlight=False, soft_wrap=True, markup=False)


def _export_vulnerabilities(
    summary: Summary, folder: Path, declared: Backend, explorer: Explorer
) -> list[tuple[int, Path]]:
    """Each vulnerability's example as a regression scenario (the numbers of the lines
    printed above), where a scenario can replay it."""
    out = []
    for number, vuln in enumerate(summary.vulnerabilities, start=1):
        repro = vuln.example.reproduction
        if repro is None:
            continue
        finding = Finding.from_dict(repro)
        if exportable(finding):
            spec = backend_spec(declared)
            out.append((number, export_finding(finding, folder, backend=spec, explorer=explorer)))
    return out


def _explore_real(
    ctx: click.Context,
    err: CliConsole,
    backend: str,
    workload: Workload,
    *,
    sweep: bool,
    models: bool,
    max_findings: int,
    as_json: bool,
) -> NoReturn:
    """`--real`: `crashkit run` as a real process on a FUSE mount (exit 0 no violation, 1 a
    violation, 2 no FUSE or a usage error)."""
    from crashkit.harness.explore import real_mode

    importable_from(Path.cwd())  # as the child processes will (explore_real's PYTHONPATH)
    try:
        load_backend(backend)
    except ConfigError as exc:
        _usage(err, f"--backend: {exc}")
    _one_profile_on_fuse(err, "--real", workload.profile)
    # the explorer's defaults are for the in-process one: a real restart is a process
    given = {
        name
        for name in ("symbols", "ticks", "seed", "window")
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }
    d = real_mode.DEFAULT
    workload = replace(
        workload,
        symbols=workload.symbols if "symbols" in given else d.symbols,
        ticks=workload.ticks if "ticks" in given else d.ticks,
        seed=workload.seed if "seed" in given else d.seed,
        window_updates=workload.window_updates if "window" in given else d.window_updates,
        name="real",
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("crash states (real restarts)", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = real_mode.explore_real(
            backend, workload, max_findings=max_findings, on_progress=advance
        )
        count = 0

        def ran(_: real_mode.RealSummary) -> None:
            nonlocal count
            count += 1
            progress.update(task, completed=count)

        clean = summary.recording
        for flag, name, faulty in (
            (sweep, "I/O-error sweep", real_mode.sweep_real),
            (models, "fsync-failure models", real_mode.fsync_model_real),
        ):
            if not flag or summary.stopped:
                continue
            progress.update(task, description=f"{name} (real runs)", completed=0, total=None)
            left = max_findings - len(summary.findings) if max_findings else 0
            summary.merge(faulty(backend, workload, clean, max_findings=left, on_run=ran))
    if as_json:
        data = summary.to_dict()
        click.echo(json.dumps(data, sort_keys=True, indent=2))
        sys.exit(ExitCode.OK if summary.violations == 0 else ExitCode.CHECK_FAILED)
    w = summary.workload
    table = Table(title=escape(f"explore --real {backend} (profile {summary.profile})"))
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("workload", f"{w.symbols} symbols x {w.ticks} ticks, seed {w.seed}")
    if summary.runs > 1:
        table.add_row("recorded runs (with faults: --sweep, --models)", f"{summary.runs:,}")
    table.add_row("calls recorded", f"{len(summary.recording.trace):,}")
    table.add_row("exit code of the recorded run", str(summary.recording.returncode))
    table.add_row("crash points", f"{summary.points:,}")
    table.add_row("crash states", f"{summary.states:,}")
    table.add_row("real restarts (distinct disks)", f"{summary.restarts:,}")
    if summary.writer_checked:
        table.add_row("second writer checked (C5.9)", "yes")
    for name, count in sorted(summary.violated.items()):
        table.add_row(f"violations {name}", f"{count:,}")
    if summary.stopped:
        table.add_row("stopped at the findings cap", f"{max_findings} (--max-findings)")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    rate = summary.states / summary.seconds if summary.seconds else 0.0
    table.add_row("crash states/s", f"{rate:,.0f}")
    err.print(table)
    _print_vulnerabilities(
        err, summary.vulnerabilities, "refused runs and crash states", max_findings
    )
    for f in summary.findings:
        err.print(
            escape(f"violation {f.violation.invariant.value}: {f.violation.message}"),
            highlight=False,
            soft_wrap=True,
        )
        where = (
            f"  in {f.after}"
            if f.cut == real_mode.NO_CRASH
            else f"  crash after {f.after}: {f.cut}"
        )
        err.print(escape(where), highlight=False, soft_wrap=True)
    sys.exit(ExitCode.OK if summary.violations == 0 else ExitCode.CHECK_FAILED)


def _one_profile_on_fuse(err: CliConsole, flag: str, profile: str) -> None:
    """What `--exec` and `--real` need: one known profile, and a FUSE mount (else exit 2)."""
    from crashkit.faults.real import fuse_unavailable

    if profile == "all":
        _usage(err, f"--profile all is for the in-process explorer; {flag} takes one profile")
    try:
        profile_named(profile)
    except ValueError as exc:
        _usage(err, f"--profile: {exc}")
    reason = fuse_unavailable()
    if reason is not None:
        _usage(err, f"{flag} needs a FUSE mount, and there is none here: {reason}")


def _usage(err: CliConsole, message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(ExitCode.USAGE)


@click.command()
@click.option("--backend", default=DEFAULT_BACKEND, show_default=True, help="module:attribute")
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
    type=click.Choice([TornMode.DEFAULT.value, TornMode.ALL.value]),
    default=TornMode.DEFAULT.value,
    show_default=True,
    help="Cuts inside un-synced lines: a few per line, or every byte.",
)
@click.option(
    "--profile",
    default=PREFIX.name,
    show_default=True,
    metavar="NAME[:BLOCK]|all",
    help=f"File-system profile of the crash states ({', '.join(PROFILE_NAMES)}; "
    "NAME:BLOCK for another block size, e.g. posix:512), or all: each in turn, one row "
    "per profile.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--max-findings",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_FINDINGS,
    show_default=True,
    help="Keep at most N findings per invariant, then stop judging it (0: no cap).",
)
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write each invariant's smallest finding as a scenario into DIR (without it, "
    "nothing is written).",
)
@click.option("--no-export", is_flag=True, help="Do not write regression scenarios (the default).")
@click.option(
    "--exec",
    "exec_command",
    default=None,
    metavar="CMD",
    help="Crash-test any program: run CMD on a FUSE mount ($CRASHKIT_DIR), record it, and "
    "run --check on the disks a power cut could leave (docs/backends.md). Exit 0 every "
    "state passed; 1 a state refused or CMD failed; 2 usage error, no FUSE, or a checker "
    "that cannot run or refuses CMD's clean end; 3 CMD changed nothing under "
    "$CRASHKIT_DIR; 4 inconclusive (--budget or --time-budget ran out, nothing refused); "
    "130/143 interrupted by SIGINT/SIGTERM (partial summary).",
)
@click.option(
    "--check",
    "check_command",
    default=None,
    metavar="CHECK",
    help="With --exec: the checker, run on each crash state ($CRASHKIT_DIR); exit 0 = fine.",
)
@click.option(
    "--exploration",
    type=click.Choice([e.value for e in Exploration]),
    default=None,
    help="With --exec: which crash states to check. linear (the default): the in-order "
    "state at every crash point and each deviation from it alone, once, at the last crash "
    "point where it holds; bounded: each deviation at every crash point; exhaustive: every "
    "combination at each point (under a cap).",
)
@click.option(
    "--exhaustive",
    is_flag=True,
    help="With --exec: the same as --exploration exhaustive.",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    metavar="N",
    help="With --exec: check at most N distinct disks, then stop (exit 4 if nothing failed).",
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="With --exec: stop after this long, recording included (exit 4 if nothing failed).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="PATTERN",
    help="With --exec: a file no checker reads (a glob on its path under the mount, e.g. "
    "/db/LOG or '*/LOG*', or from its root, db/LOG): its crash variants are not explored. "
    "Repeatable.",
)
@click.option(
    "-j",
    "--jobs",
    "exec_jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --exec: checkers run at once, each on its own folder [default: CPU count].",
)
@click.option(
    "--ack",
    multiple=True,
    metavar="PATTERN",
    help="With --exec: a file where CMD records what it acknowledged (a glob on its path "
    "under the mount, /acked, or from its root, acked; repeatable): a call lost while a later write to it persisted is a "
    "durability vulnerability (acknowledged before durable), not an ordering one.",
)
@click.option(
    "--keep",
    is_flag=True,
    help="With --exec: keep the disk of each listed finding and of each vulnerability's "
    "example as a folder (printed), with the command that reruns it (--only).",
)
@click.option(
    "--only",
    default=None,
    metavar="ID",
    help="With --exec: rerun one vulnerability alone (its id, printed beside it): check "
    "only the crash states that can show it, smallest first.",
)
@click.option(
    "--stacks",
    is_flag=True,
    help="With --exec: run CMD under strace -f -k so that each call of a vulnerability "
    "names its native frame (function+offset, file:line with addr2line); slower.",
)
@click.option(
    "--real",
    is_flag=True,
    help="Run `crashkit run` as a real process on a FUSE mount (any backend, one on the "
    "stdlib sqlite3 module too), judge the run and restart it on every crash state; with "
    "--sweep and --models also runs whose calls fail. Default workload 2 symbols x 6 "
    "ticks; --max-findings caps the findings in all.",
)
@click.pass_context
def explore(
    ctx: click.Context,
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
    profile: str,
    as_json: bool,
    max_findings: int,
    export_dir: str | None,
    no_export: bool,
    exec_command: str | None,
    check_command: str | None,
    exhaustive: bool,
    exploration: str | None,
    budget: int,
    time_budget: float,
    ignore: tuple[str, ...],
    exec_jobs: int | None,
    ack: tuple[str, ...],
    keep: bool,
    only: str | None,
    stacks: bool,
    real: bool,
) -> None:
    """Crash a workload at every point, restart it on every disk a power cut may leave,
    and check every invariant of the contract (exit 1 on any violation)."""
    err = CliConsole(stderr=True)
    if exec_command is not None or check_command is not None:
        chosen = Exploration.EXHAUSTIVE if exhaustive else Exploration(exploration or "linear")
        options = ExecOptions(
            chosen, budget, time_budget, ignore, exec_jobs, keep, ack, only, stacks
        )
        _explore_exec(
            ctx, err, exec_command, check_command, profile, torn, max_findings, as_json, options
        )
    given_exec = [
        flag
        for name, flag in EXEC_ONLY.items()
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given_exec:
        _usage(err, f"{given_exec[0]} is an option of --exec")
    if real:
        workload = Workload(
            symbols, ticks, seed, window_updates=window, torn=TornMode(torn), profile=profile
        )
        _explore_real(
            ctx,
            err,
            backend,
            workload,
            sweep=sweep,
            models=models,
            max_findings=max_findings,
            as_json=as_json,
        )
    given = [
        f"--{name}"
        for name in WORKLOAD_OPTIONS
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if suite is not None and given:
        _usage(
            err, f"--suite runs its own workloads; it cannot be combined with {', '.join(given)}"
        )
    if no_export and export_dir is not None:
        _usage(err, "--export-dir and --no-export exclude each other")
    importable_from(Path.cwd())  # a backend module in the current folder, as `python -m` finds it
    try:
        declared = load_backend(backend)
    except ConfigError as exc:
        _usage(err, f"--backend: {exc}")
    try:
        require_visible(declared)
    except InvisibleIO as exc:
        _usage(err, str(exc))
    shard_ix = _shard(shard)
    if profile == "all":
        profiles = list(PROFILE_NAMES)
    else:
        try:
            profiles = [profile_named(profile).name]
        except ValueError as exc:
            _usage(err, f"--profile: {exc}")
    jobs: tuple[Job, ...]
    if suite is not None:
        runnable, skipped = applicable_jobs(SUITES[suite](), declared)
        jobs = tuple(runnable)
        title = f"explore --suite {suite} ({backend}, shard {shard})"
        if skipped:
            err.print(
                f"not applicable: {len(skipped)} job(s) of seeded state files "
                f"({', '.join(j.workload.name for j in skipped[:3])}"
                f"{', ...' if len(skipped) > 3 else ''}): {declared.name} does not "
                "declare line_format",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
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
    summaries: dict[str, Summary] = {}
    explorer: Explorer | None = None
    interrupt = Interrupt()  # SIGINT, SIGTERM: stop at the next crash state, then report
    started = [0]  # jobs started, over every profile
    try:
        with progress, signals(interrupt.on_signal):
            for name in profiles:
                if interrupt.asked:
                    break
                explorer = Explorer(
                    declared,
                    full=full,
                    torn=TornMode(torn),
                    profile=name,
                    shard=shard_ix,
                    max_findings=max_findings or None,
                    interrupt=interrupt,
                )
                label = name if len(profiles) > 1 else ""
                summaries[name] = _run(progress, explorer, jobs, label, started)
    except (InvisibleIO, NotApplicable) as exc:
        _usage(err, str(exc))
    assert explorer is not None
    summary = Summary()
    for one in summaries.values():
        summary.merge(one)
    stopped = _stopped_line(interrupt, summary, started[0], len(jobs) * len(profiles))
    if len(profiles) > 1:
        _report_profiles(summaries, as_json, title)
    elif as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True, indent=2))
    else:
        CliConsole(stderr=True).print(summary_table(summary, escape(title)))
        CliConsole(stderr=True).print(coverage_table(summary))
        for limit_id in sorted(summary.limits):
            limit = LIMITS[limit_id]
            err.print(
                f"known limit {limit_id} ({limit.invariant}, {summary.limits[limit_id]} "
                f"state(s)): {limit.why}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
        states = sum(v.states for v in summary.vulnerabilities)
        _print_vulnerabilities(
            err, summary.vulnerabilities, f"{states:,} refused states", max_findings
        )
        for finding, count in minimal_findings(summary.findings):
            err.print(
                f"[bold red]violation[/] {finding.violation.invariant} ({count} kept): "
                f"{escape(finding.violation.message)}",
                highlight=False,
                soft_wrap=True,
            )
            reproduction = json.dumps(finding.to_dict()["reproduction"], sort_keys=True)
            err.print(reproduction, soft_wrap=True, markup=False, highlight=False)
        for line in capped_lines(summary):
            err.print(line, highlight=False, soft_wrap=True, markup=False)
    if stopped is not None:
        err.print(stopped, highlight=False, soft_wrap=True, markup=False)
    if summary.findings and not no_export:
        _export(err, summary, export_dir, declared, explorer)
    if interrupt.asked:
        sys.exit(interrupt.exit_code)
    sys.exit(ExitCode.CHECK_FAILED if summary.violations else ExitCode.OK)


def _stopped_line(interrupt: Interrupt, summary: Summary, started: int, total: int) -> str | None:
    """What a signal left unexplored (None: the run ended by itself)."""
    if not interrupt.asked:
        return None
    return (
        f"stopped early: {interrupt.line()}. Explored {summary.states_checked:,} crash states "
        f"of {summary.crash_points:,} crash points in {started:,} of {total:,} jobs; "
        f"{summary.states_left:,} crash states found and left unchecked, "
        f"{total - started:,} jobs not run. The findings above are those found so far."
    )


def _export(
    err: CliConsole,
    summary: Summary,
    export_dir: str | None,
    declared: Backend,
    explorer: Explorer,
) -> None:
    """Each invariant's smallest finding (and each vulnerability's example) as a
    scenario into `--export-dir`; without it nothing is written (no folder is left behind),
    and one line says how. A folder that cannot be written is one `error:` line: the
    violations above still stand, and decide the exit code."""
    if export_dir is None:
        err.print(
            "to write each finding as a regression scenario (replayed by crashkit scenarios "
            "run FILE --trace), run again with --export-dir DIR",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        return
    folder = Path(export_dir)
    try:
        paths = export_findings(
            summary.findings, folder, backend=backend_spec(declared), explorer=explorer
        )
        examples = _export_vulnerabilities(summary, folder, declared, explorer)
    except OSError as exc:
        err.print(
            f"[bold red]error:[/] {escape(f'--export-dir {folder}: cannot write: {os_error_text(exc)}')}"
            " (no scenario written; the violations above stand)",
            highlight=False,
            soft_wrap=True,
        )
        return
    for path in paths:
        err.print(
            f"regression scenario written: {escape(str(path))}  "
            f"(replay: crashkit scenarios run {escape(str(path))} --trace)",
            highlight=False,
            soft_wrap=True,
        )
    for number, path in examples:
        err.print(
            f"V{number}'s example as a scenario: {escape(str(path))}  "
            f"(replay: crashkit scenarios run {escape(str(path))} --trace)",
            highlight=False,
            soft_wrap=True,
        )
    if not all(exportable(f) for f in summary.findings):
        err.print(
            "W5-single-writer: no scenario written (a scenario drives one process at a "
            "time); the kit replays it: pytest --crashkit-backend=SPEC -k test_single_writer",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
