"""`python -m opsmedic` runs the CLI, through the same front door as the console script."""

from opsmedic.entry import main

main()
