"""``storybench-prompts``: the command line, a thin shell over the library."""

from .app import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, cli, main

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "cli", "main"]
