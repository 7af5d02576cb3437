"""`crashkit scenarios run`: execute scenario files, show a summary, optionally write JUnit XML.

Exit codes: 0 every scenario passed (or does not apply to the backend); 1 at least one
failed; 2 a scenario file is bad (it cannot be run as written) or a usage error, which
wins over 1 so it gets fixed first; 130/143 SIGINT/SIGTERM stopped it after the scenario in
progress (the summary is of the scenarios run so far, and says how many were not run).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from crashkit.faults import profile_named
from crashkit.harness.scenarios.expect import updated_expect
from crashkit.harness.scenarios.junit import write_junit
from crashkit.harness.scenarios.library import library_path
from crashkit.harness.scenarios.loader import ScenarioError, load_scenario, parse_yaml
from crashkit.harness.scenarios.results import INVARIANT_CHECK, STEP_CHECK, ScenarioResult
from crashkit.harness.scenarios.runner import run_loaded
from crashkit.harness.scenarios.update import rewrite_expect
from crashkit.orchestrator.cli import CliConsole
from crashkit.orchestrator.errors import ConfigError, ExitCode, os_error_text
from crashkit.orchestrator.interrupt import Interrupt, signals
from crashkit.orchestrator.store.protocol import Backend, importable_from, load_backend

SUFFIXES = (".yaml", ".yml")


def collect(paths: tuple[str, ...]) -> tuple[list[Path], list[ScenarioError]]:
    """Scenario files under the given files and folders, sorted, each once; a given path
    that does not exist or holds no scenario file is an error (exit 2)."""
    files: list[Path] = []
    errors: list[ScenarioError] = []
    for raw in paths or (str(library_path()),):
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES)
            if not found and paths:  # the library's empty regressions/ folder is no error
                errors.append(ScenarioError(raw, None, "no scenario files (*.yaml, *.yml) here"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(ScenarioError(raw, None, "no such file or folder"))
    return list(dict.fromkeys(files)), errors


def run_files(
    files: list[Path],
    *,
    update: bool = False,
    backend: Backend | None = None,
    profile: str | None = None,
    interrupt: Interrupt | None = None,
) -> tuple[list[ScenarioResult], list[ScenarioError], list[Path]]:
    """Load and run each file (on `backend` instead of the one it names, under `profile`
    instead of its own, if given); with `update`, rewrite the expect blocks that differ.
    Once `interrupt` is asked, no further file is run (each file run gives one result or
    one error: the files left are the others)."""
    results: list[ScenarioResult] = []
    errors: list[ScenarioError] = []
    updated: list[Path] = []
    names: dict[str, Path] = {}
    for path in files:
        if interrupt is not None and interrupt.asked:
            break
        try:
            loaded = load_scenario(path)
            if loaded.name in names:
                raise loaded.error(["name"], f"already used by {names[loaded.name]}")
            names[loaded.name] = path
            result = run_loaded(loaded, backend=backend, profile=profile)
        except ScenarioError as exc:
            errors.append(exc)
            continue
        results.append(result)
        if (
            update
            and result.observed is not None
            and backend is None
            and profile is None
            and not _broken(result)
        ):
            data, _ = parse_yaml(loaded.text, str(path))
            original = data.get("expect") if isinstance(data, dict) else None
            text = rewrite_expect(loaded.text, updated_expect(original, result.observed))
            if text != loaded.text:
                path.write_text(text, encoding="utf-8")
                updated.append(path)
    return results, errors, updated


def _broken(result: ScenarioResult) -> bool:
    """A run `--update` must not record: it raised, or a step failed (the run is not the
    one the file describes). A violated invariant still lets the other keys be rewritten."""
    return result.error is not None or any(c.name.startswith(STEP_CHECK) for c in result.failures)


def summary_table(results: list[ScenarioResult], errors: list[ScenarioError]) -> Table:
    table = Table(title="scenarios")
    table.add_column("name")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("first failure", overflow="ellipsis", no_wrap=True, max_width=90)
    styles = {"pass": "[green]pass[/]", "n/a": "[dim]n/a[/]"}
    for r in results:
        verdict = styles.get(r.status, f"[red]{r.status}[/]")
        table.add_row(escape(r.name), verdict, f"{r.seconds:.3f}", escape(r.first_failure))
    for e in errors:
        table.add_row(escape(Path(e.file).stem), "[red]BAD FILE[/]", "-", escape(str(e)))
    return table


@click.group("scenarios", invoke_without_command=True)
@click.pass_context
def scenarios(ctx: click.Context) -> None:
    """Scenario files: named, human-readable crash and fault regressions (docs/scenarios.md)."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@scenarios.command("run")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--update", is_flag=True, help="Rewrite each file's expect block with what was observed."
)
@click.option(
    "--junit-xml", "junit", type=click.Path(dir_okay=False), default=None, help="JUnit XML file."
)
@click.option("--trace", "show_trace", is_flag=True, help="Print each scenario's op trace.")
@click.option(
    "--backend",
    "backend_spec",
    default=None,
    metavar="MODULE:ATTR",
    help="Run every file on this backend instead of the one it names (default: the file's).",
)
@click.option(
    "--profile",
    "profile",
    default=None,
    metavar="NAME[:BLOCK]",
    help="Run every crash step under this file-system profile instead of the file's.",
)
def run_cmd(
    paths: tuple[str, ...],
    update: bool,
    junit: str | None,
    show_trace: bool,
    backend_spec: str | None,
    profile: str | None,
) -> None:
    """Run scenario files (PATHs are files or folders; default: the shipped library)."""
    # CI logs are not terminals: give the table room instead of rich's 80 columns
    console = CliConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    err = CliConsole(stderr=True, soft_wrap=True)
    importable_from(Path.cwd())  # backends named by --backend or a file, beside it
    backend: Backend | None = None
    if backend_spec is not None:
        if update:
            err.print(
                "[bold red]error:[/] --update rewrites a file's expectations from the backend it "
                "was written for; run it without --backend",
                highlight=False,
            )
            sys.exit(ExitCode.USAGE)
        try:
            backend = load_backend(backend_spec)
        except ConfigError as exc:
            err.print(f"[bold red]error:[/] --backend: {escape(str(exc))}", highlight=False)
            sys.exit(ExitCode.USAGE)
    if profile is not None:
        if update:
            err.print(
                "[bold red]error:[/] --update rewrites a file's expectations under its own "
                "profile; run it without --profile",
                highlight=False,
            )
            sys.exit(ExitCode.USAGE)
        try:
            profile = profile_named(profile).name
        except ValueError as exc:
            err.print(f"[bold red]error:[/] --profile: {escape(str(exc))}", highlight=False)
            sys.exit(ExitCode.USAGE)
    files, errors = collect(paths)
    interrupt = Interrupt()  # SIGINT, SIGTERM: stop after the scenario in progress
    with signals(interrupt.on_signal):
        results, bad, updated = run_files(
            files, update=update, backend=backend, profile=profile, interrupt=interrupt
        )
    not_run = len(files) - len(results) - len(bad)
    errors += bad
    console.print(summary_table(results, errors))
    for r in results:
        if show_trace:
            console.rule(escape(r.name))
            for note in r.notes:
                console.print(escape(note), highlight=False)
            for boot, trace in enumerate(r.traces):
                console.print(f"boot {boot}:", highlight=False)
                for op in trace:
                    console.print(f"  {escape(op)}", highlight=False)
        if r.passed or r.not_applicable is not None or (update and not r.stuck):
            continue
        console.print(f"[bold red]{escape(r.name)}[/] ({escape(r.path)})")
        if r.error:
            console.print(escape(r.error), highlight=False)
        for check in r.failures:
            if update and not check.name.startswith((STEP_CHECK, INVARIANT_CHECK)):
                continue  # a value --update rewrote
            console.print(f"  {escape(check.name)}: {escape(check.message)}", highlight=False)
    for e in errors:
        console.print(f"[bold red]bad scenario:[/] {escape(str(e))}", highlight=False)
    for path in updated:
        console.print(f"updated {escape(str(path))}", highlight=False)
    if junit:
        try:
            write_junit(junit, results, errors)
        except OSError as exc:
            err.print(
                Text.assemble(
                    ("error: ", "bold red"),
                    f"--junit-xml {junit}: cannot write: {os_error_text(exc)}"
                    " (the results above are complete)",
                )
            )
            sys.exit(ExitCode.USAGE)
    passed = sum(1 for r in results if r.passed)
    skipped = sum(1 for r in results if r.not_applicable is not None)
    failed = len(results) - passed - skipped
    seconds = sum(r.seconds for r in results)
    console.print(
        f"{passed} passed, {failed} failed, {skipped} not applicable, {len(errors)} bad "
        f"file(s) in {seconds:.2f} s",
        highlight=False,
    )
    if interrupt.asked:
        console.print(
            f"stopped early: {interrupt.line()} after the scenario in progress; "
            f"{not_run} of {len(files)} scenario file(s) not run",
            highlight=False,
        )
        sys.exit(interrupt.exit_code)
    if errors:
        sys.exit(ExitCode.USAGE)
    if update:
        # what --update cannot rewrite: runner errors, failed steps, violated invariants
        stuck = [r for r in results if r.stuck]
        for r in stuck:
            console.print(
                f"still failing after --update: {escape(r.name)} (it records observed values, "
                "never a violated invariant, a failed step or a runner error)",
                highlight=False,
            )
        sys.exit(ExitCode.CHECK_FAILED if stuck else ExitCode.OK)
    sys.exit(ExitCode.CHECK_FAILED if failed else ExitCode.OK)
