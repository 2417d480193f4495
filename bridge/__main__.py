"""`python -m bridge` is the `bridge` command."""

from .cli import main

main()
