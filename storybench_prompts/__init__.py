"""storybench-prompts: storybench's prompt sets, cached, mirrored and typed.

from storybench_prompts import build_repository

async with build_repository() as prompts:
    prompt_set = await prompts.latest()
    prompt_set.provenance  # where it came from, how old it is
    prompt_set.config_hash  # storybench's hash of exactly these prompts
"""

from ._caching import CachePolicy, CachingRepository
from ._convert import (
    convert_version,
    parse_version,
    prompt_set_from_storybench,
    validate_prompt_set,
)
from ._directus import DirectusSource, DirectusTimeouts
from ._exceptions import (
    ConfigurationError,
    DirectusAuthenticationError,
    DirectusClientError,
    DirectusConnectionError,
    DirectusError,
    DirectusForbiddenError,
    DirectusInvalidResponseError,
    DirectusNotFoundError,
    DirectusRateLimitedError,
    DirectusRequestError,
    DirectusServerError,
    DirectusTimeoutError,
    InvalidPromptSetError,
    MirrorCorruptError,
    MirrorUnavailableError,
    Problem,
    PromptSetNotFoundError,
    PromptSetUnavailableError,
    SourceUnavailableError,
    StorybenchPromptsError,
)
from ._file_mirror import FileMirror
from ._health import OriginState, OriginStatus, Stats
from ._memory import InMemoryMirror
from ._models import (
    DirectusPrompt,
    DirectusPromptSetVersion,
    DirectusSequence,
    Prompt,
    PromptJunction,
    PromptSet,
    Provenance,
    SequenceJunction,
    Status,
    VersionInfo,
    compute_config_hash,
)
from ._mongo_mirror import MongoMirror
from ._repository import PromptMirror, PromptRepository, SaveOutcome
from ._retry import RetryPolicy
from ._settings import Settings, build_mirror, build_repository, build_source
from ._sync import SyncResult, sync_versions

# The names the interface documents use.
PromptSetNotFound = PromptSetNotFoundError
SourceUnavailable = SourceUnavailableError

__version__ = "0.1.0"

__all__ = [
    "CachePolicy",
    "CachingRepository",
    "ConfigurationError",
    "DirectusAuthenticationError",
    "DirectusClientError",
    "DirectusConnectionError",
    "DirectusError",
    "DirectusForbiddenError",
    "DirectusInvalidResponseError",
    "DirectusNotFoundError",
    "DirectusPrompt",
    "DirectusPromptSetVersion",
    "DirectusRateLimitedError",
    "DirectusRequestError",
    "DirectusSequence",
    "DirectusServerError",
    "DirectusSource",
    "DirectusTimeoutError",
    "DirectusTimeouts",
    "FileMirror",
    "InMemoryMirror",
    "InvalidPromptSetError",
    "MirrorCorruptError",
    "MirrorUnavailableError",
    "MongoMirror",
    "OriginState",
    "OriginStatus",
    "Problem",
    "Prompt",
    "PromptJunction",
    "PromptMirror",
    "PromptRepository",
    "PromptSet",
    "PromptSetNotFound",
    "PromptSetNotFoundError",
    "PromptSetUnavailableError",
    "Provenance",
    "RetryPolicy",
    "SaveOutcome",
    "SequenceJunction",
    "Settings",
    "SourceUnavailable",
    "SourceUnavailableError",
    "Stats",
    "Status",
    "StorybenchPromptsError",
    "SyncResult",
    "VersionInfo",
    "__version__",
    "build_mirror",
    "build_repository",
    "build_source",
    "compute_config_hash",
    "convert_version",
    "parse_version",
    "prompt_set_from_storybench",
    "sync_versions",
    "validate_prompt_set",
]
