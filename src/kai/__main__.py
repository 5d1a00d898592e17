"""`python -m kai`, the same as the `kai` command."""

from kai.cli import main

main()
