"""The `crashkit` command: the orchestrator's own commands plus the harness's.

`crashkit.orchestrator.cli` owns `run`, `inspect`, `replay`, `synth` and `demo`;
this room adds `explore`, `scenarios` and `merge`. One group, so `crashkit --help` lists all;
a bare `crashkit` prints that help and exits 0.
"""

from __future__ import annotations

import click

from crashkit.harness.cli.explore import explore
from crashkit.harness.cli.merge import merge
from crashkit.harness.cli.scenarios import scenarios
from crashkit.orchestrator import cli as orchestrator_cli


@click.group(
    cls=orchestrator_cli.OutputGuardGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="crashkit", prog_name="crashkit")
@click.pass_context
def main(ctx: click.Context) -> None:
    """crashkit: crash-consistency harness and reference orchestrator."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _command in orchestrator_cli.main.commands.values():
    main.add_command(_command)
main.add_command(explore)
main.add_command(scenarios)
main.add_command(merge)
