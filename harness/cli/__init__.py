"""The `crashkit` command: the orchestrator's own commands plus the harness's.

`crashkit.orchestrator.cli` owns `run`, `inspect`, `replay`, `synth` and `demo`;
this room adds `explore`, `scenarios` and `merge`. One group, so `crashkit --help` lists all.
"""

from __future__ import annotations

import click

from crashkit.harness.cli.explore import explore
from crashkit.harness.cli.merge import merge
from crashkit.harness.cli.scenarios import scenarios
from crashkit.orchestrator import cli as orchestrator_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """crashkit: crash-consistency harness and reference orchestrator."""


for _command in orchestrator_cli.main.commands.values():
    main.add_command(_command)
main.add_command(explore)
main.add_command(scenarios)
main.add_command(merge)
