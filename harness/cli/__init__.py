"""The `crashkit` command: the orchestrator's own commands plus the harness's.

`crashkit.orchestrator.cli` owns `run`, `inspect`, `replay`, `synth` and `demo`;
this room adds `explore`, `scenarios` and `merge`. One group, so `crashkit --help` lists all;
a bare `crashkit` prints that help and exits 0. The harness's commands are imported only
when named (or listed by `--help`): `crashkit run` or `--version` does not load the fault
layer and pyfakefs, which is most of the start-up time and memory.
"""

from __future__ import annotations

import importlib

import click

from crashkit.orchestrator import cli as orchestrator_cli

#: name -> (module, attribute) of the harness's commands, loaded on first use.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "explore": ("crashkit.harness.cli.explore", "explore"),
    "scenarios": ("crashkit.harness.cli.scenarios", "scenarios"),
    "merge": ("crashkit.harness.cli.merge", "merge"),
}


class CrashkitGroup(orchestrator_cli.OutputGuardGroup):
    """The orchestrator's commands at once, the harness's when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=CrashkitGroup,
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
