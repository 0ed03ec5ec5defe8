"""``storybench-prompts``: the command line, a thin shell over the library.

``app`` holds the group and what every command shares; each other module is one group of
commands: ``sync`` (sync, warm, sync-prompts), ``watch``, ``get``, ``versions``,
``check`` (check, config), ``lock`` (lock, verify, export) and ``diff``.
"""

from . import check, diff, get, lock, sync, versions, watch  # noqa: F401  (each registers its commands)
from .app import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, cli, main

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "cli", "main"]
