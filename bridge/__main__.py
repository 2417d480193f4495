"""`python -m bridge` is the `bridge` command."""

from .ops.cli import main

main()
