"""Default timeouts and limits of the Directus source and the MongoDB mirror.

Kept apart from those modules so that settings can name them without importing an HTTP client
or a database driver (start-up time of mirror-only processes).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DATABASE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MONGO_CONNECT_TIMEOUT",
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SERVER_SELECTION_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "DEFAULT_WRITE_TIMEOUT",
]

# -- Directus -------------------------------------------------------------------------------
DEFAULT_CONNECT_TIMEOUT = 10.0
# A serverless Directus can take most of a minute to wake; a shorter read timeout would fail
# requests that would have succeeded. The cache's hedge, not this timeout, keeps callers fast.
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

# -- MongoDB --------------------------------------------------------------------------------
DEFAULT_DATABASE = "storybench"
# Short on purpose: the mirror is the fallback path, and a fallback that hangs is no fallback.
DEFAULT_SERVER_SELECTION_TIMEOUT = 2.0
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_MONGO_CONNECT_TIMEOUT = 2.0
