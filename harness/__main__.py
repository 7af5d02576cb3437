"""`python -m harness` is the `crashkit` command."""

from harness.cli import main

main()
