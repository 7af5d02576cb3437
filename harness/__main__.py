"""`python -m crashkit.harness` is the `crashkit` command."""

from crashkit.harness.cli import main

main()
