"""Default timings and limits of the cache, the Directus source and the MongoDB mirror.

Kept apart from those modules so that settings can name them without importing the cache, an
HTTP client or a database driver (start-up time of mirror-only processes).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DATABASE",
    "DEFAULT_FALLBACK_AFTER",
    "DEFAULT_FALLBACK_TTL",
    "DEFAULT_INITIAL_BACKOFF",
    "DEFAULT_LATEST_TTL",
    "DEFAULT_MAXSIZE",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_MAX_STALE",
    "DEFAULT_MIRROR_TIMEOUT",
    "DEFAULT_MONGO_CONNECT_TIMEOUT",
    "DEFAULT_NOT_FOUND_TTL",
    "DEFAULT_PINNED_TTL",
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_PROBE_INITIAL",
    "DEFAULT_PROBE_MAX",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RECONNECT_SPREAD",
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_REVALIDATION_DEBOUNCE",
    "DEFAULT_REVALIDATION_SPACING",
    "DEFAULT_SERVER_SELECTION_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "DEFAULT_STALE_IF_ERROR",
    "DEFAULT_SYNC_CONCURRENCY",
    "DEFAULT_WRITE_TIMEOUT",
]

# -- the cache ------------------------------------------------------------------------------
DEFAULT_PINNED_TTL = 3600.0
DEFAULT_LATEST_TTL = 60.0
DEFAULT_MAX_STALE = 3600.0
DEFAULT_STALE_IF_ERROR = 7 * 24 * 3600.0
DEFAULT_NOT_FOUND_TTL = 30.0
DEFAULT_FALLBACK_AFTER = 2.0
DEFAULT_FALLBACK_TTL = 10.0
DEFAULT_MIRROR_TIMEOUT = 3.0
DEFAULT_MAXSIZE = 512
# Recovery probes while Directus is failing: the first after about half a second, doubling to
# half a minute, so an outage costs Directus one request per interval whatever the load.
DEFAULT_PROBE_INITIAL = 0.5
DEFAULT_PROBE_MAX = 30.0
DEFAULT_SYNC_CONCURRENCY = 4
# Revalidation after realtime changes: events are gathered for a moment before a round, and
# rounds start at least this far apart, so a burst of edits costs a few rounds; after a
# (re)connect each process waits a random part of the spread, so workers do not arrive at once.
DEFAULT_REVALIDATION_DEBOUNCE = 0.02
DEFAULT_REVALIDATION_SPACING = 0.5
DEFAULT_RECONNECT_SPREAD = 2.0

# -- Directus -------------------------------------------------------------------------------
DEFAULT_CONNECT_TIMEOUT = 10.0
# A serverless Directus can take most of a minute to wake; a shorter read timeout would fail
# requests that would have succeeded. The cache's hedge, not this timeout, keeps callers fast.
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 20
# Versions read in one request when many are needed (a revalidation, sync, warm): each is
# read whole (the nested limits hold); 100 versions of ~15 prompts are ~400 kB, far below
# DEFAULT_MAX_RESPONSE_BYTES, so one page covers most deployments.
DEFAULT_BATCH_SIZE = 100
# Retries of one Directus call: attempts, exponential backoff with full jitter, a server's
# Retry-After honoured up to a cap, and one deadline for the whole call.
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_INITIAL_BACKOFF = 0.2
DEFAULT_MAX_BACKOFF = 5.0
DEFAULT_MAX_RETRY_AFTER = 30.0
DEFAULT_RETRY_DEADLINE = 150.0

# -- MongoDB --------------------------------------------------------------------------------
DEFAULT_DATABASE = "storybench"
# Short on purpose: the mirror is the fallback path, and a fallback that hangs is no fallback.
DEFAULT_SERVER_SELECTION_TIMEOUT = 2.0
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_MONGO_CONNECT_TIMEOUT = 2.0

# How often `watch` reconciles in full (realtime or not), and how long `check` waits.
DEFAULT_WATCH_INTERVAL = 300.0
DEFAULT_CHECK_TIMEOUT = 10.0
