"""`crashkit merge SHARD.json...`: one verdict and one table from the shards of a run.

Each file is what one machine of a CI matrix wrote: `crashkit explore --shard i/n --json`
or `pytest --crashkit-shard i/n --crashkit-json FILE`. Exit codes: 0 no violation in any
shard; 1 at least one; 2 a file that cannot be read or is not such a summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape
from rich.text import Text

from crashkit.harness.kit.report import merged
from crashkit.orchestrator.cli import CliConsole, err
from crashkit.orchestrator.errors import ExitCode

#: Keys every shard file has, whichever command wrote it.
REQUIRED = ("violations_by_invariant", "seconds")


def _bad_file(message: str) -> NoReturn:
    """A file that is not a shard summary: one line, exit 2 (not click's usage block: the
    command line was right, the file is not)."""
    err.print(Text.assemble(("error: ", "bold red"), message))
    sys.exit(ExitCode.USAGE)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _bad_file(f"{path}: cannot read: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _bad_file(f"{path}: not JSON: {exc}")
    if not isinstance(data, dict) or any(key not in data for key in REQUIRED):
        _bad_file(
            f"{path}: not a shard summary (expected the output of `crashkit explore --json` "
            "or `pytest --crashkit-json`)"
        )
    return data


@click.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the merged summary as JSON.")
def merge(files: tuple[Path, ...], as_json: bool) -> None:
    """Add up shard summaries into one verdict (exit 1 on any violation)."""
    report = merged(_read(path) for path in files)
    if as_json:
        click.echo(json.dumps(report.to_json(shards=len(files)), indent=2, sort_keys=True))
    else:
        console = CliConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
        console.print(
            report.table(f"crashkit merge: {len(files)} shard(s), {report.items} item(s)")
        )
        if report.coverage:
            console.print(report.coverage_table())
        for line in report.not_applicable_lines():
            console.print(f"not applicable: {escape(line)}", highlight=False)
        verdict = "[red]violations found[/]" if report.violations else "[green]no violation[/]"
        console.print(f"{report.violations} violation(s): {verdict}")
    sys.exit(ExitCode.CHECK_FAILED if report.violations else ExitCode.OK)
