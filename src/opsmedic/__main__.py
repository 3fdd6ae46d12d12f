"""`python -m opsmedic` runs the CLI."""

from opsmedic.cli import main

main()
