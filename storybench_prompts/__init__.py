"""storybench-prompts: storybench's prompt sets and evaluation criteria, cached, mirrored, typed.

from storybench_prompts import build_repository

async with build_repository() as prompts:
    prompt_set = await prompts.latest()
    prompt_set.provenance  # where it came from, how old it is
    prompt_set.config_hash  # storybench's hash of exactly these prompts
    criteria = await prompts.evaluations.latest()

Names are imported on first use, so ``import storybench_prompts`` costs almost nothing and a
process pays only for what its stack uses (no MongoDB driver without a MongoDB mirror, no HTTP
client for a mirror-only lookup).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._caching import CachePolicy, CachingRepository, Drift
    from ._convert import (
        convert_evaluation_version,
        convert_version,
        parse_evaluation_version,
        parse_version,
        prompt_set_from_storybench,
        validate_prompt_set,
    )
    from ._directus import DirectusSource, DirectusTimeouts
    from ._exceptions import (
        ConfigurationError,
        ContentChangedError,
        DirectusAuthenticationError,
        DirectusClientError,
        DirectusConfigurationError,
        DirectusConnectionError,
        DirectusError,
        DirectusForbiddenError,
        DirectusInvalidResponseError,
        DirectusNotFoundError,
        DirectusRateLimitedError,
        DirectusRequestError,
        DirectusServerError,
        DirectusTimeoutError,
        FetchInterruptedError,
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
    from ._kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
    from ._memory import InMemoryMirror
    from ._models import (
        Criterion,
        DirectusEvaluationVersion,
        DirectusPrompt,
        DirectusPromptSetVersion,
        DirectusSequence,
        EvaluationSet,
        Prompt,
        PromptJunction,
        PromptSet,
        Provenance,
        SequenceJunction,
        Status,
        VersionedContent,
        VersionInfo,
        compute_config_hash,
    )
    from ._mongo_mirror import MongoMirror
    from ._repository import PromptMirror, PromptRepository, SaveOutcome
    from ._retry import RetryPolicy
    from ._settings import Settings, build_mirror, build_repository, build_source
    from ._storybench import DirectusClient
    from ._sync import SyncResult, sync_versions
    from .blocking import BlockingRepository, blocking

    # The names the interface documents use.
    PromptSetNotFound = PromptSetNotFoundError
    SourceUnavailable = SourceUnavailableError

__version__ = "0.2.0"

# name -> the module that defines it (imported on first access).
_WHERE: dict[str, str] = {
    **dict.fromkeys(["CachePolicy", "CachingRepository", "Drift"], "_caching"),
    **dict.fromkeys(
        [
            "convert_evaluation_version",
            "convert_version",
            "parse_evaluation_version",
            "parse_version",
            "prompt_set_from_storybench",
            "validate_prompt_set",
        ],
        "_convert",
    ),
    **dict.fromkeys(["DirectusSource", "DirectusTimeouts"], "_directus"),
    **dict.fromkeys(
        [
            "ConfigurationError",
            "ContentChangedError",
            "DirectusAuthenticationError",
            "DirectusClientError",
            "DirectusConfigurationError",
            "DirectusConnectionError",
            "DirectusError",
            "DirectusForbiddenError",
            "DirectusInvalidResponseError",
            "DirectusNotFoundError",
            "DirectusRateLimitedError",
            "DirectusRequestError",
            "DirectusServerError",
            "DirectusTimeoutError",
            "FetchInterruptedError",
            "InvalidPromptSetError",
            "MirrorCorruptError",
            "MirrorUnavailableError",
            "Problem",
            "PromptSetNotFoundError",
            "PromptSetUnavailableError",
            "SourceUnavailableError",
            "StorybenchPromptsError",
        ],
        "_exceptions",
    ),
    "FileMirror": "_file_mirror",
    **dict.fromkeys(["OriginState", "OriginStatus", "Stats"], "_health"),
    **dict.fromkeys(["EVALUATION_SETS", "PROMPT_SETS", "ContentKind"], "_kinds"),
    "InMemoryMirror": "_memory",
    **dict.fromkeys(
        [
            "Criterion",
            "DirectusEvaluationVersion",
            "DirectusPrompt",
            "DirectusPromptSetVersion",
            "DirectusSequence",
            "EvaluationSet",
            "Prompt",
            "PromptJunction",
            "PromptSet",
            "Provenance",
            "SequenceJunction",
            "Status",
            "VersionedContent",
            "VersionInfo",
            "compute_config_hash",
        ],
        "_models",
    ),
    "MongoMirror": "_mongo_mirror",
    **dict.fromkeys(["PromptMirror", "PromptRepository", "SaveOutcome"], "_repository"),
    "RetryPolicy": "_retry",
    **dict.fromkeys(["Settings", "build_mirror", "build_repository", "build_source"], "_settings"),
    "DirectusClient": "_storybench",
    **dict.fromkeys(["SyncResult", "sync_versions"], "_sync"),
    **dict.fromkeys(["BlockingRepository", "blocking"], "blocking"),
}
_ALIASES = {
    "PromptSetNotFound": "PromptSetNotFoundError",
    "SourceUnavailable": "SourceUnavailableError",
}

__all__ = [
    "EVALUATION_SETS",
    "PROMPT_SETS",
    "BlockingRepository",
    "CachePolicy",
    "CachingRepository",
    "ConfigurationError",
    "ContentChangedError",
    "ContentKind",
    "Criterion",
    "DirectusAuthenticationError",
    "DirectusClient",
    "DirectusClientError",
    "DirectusConfigurationError",
    "DirectusConnectionError",
    "DirectusError",
    "DirectusEvaluationVersion",
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
    "Drift",
    "EvaluationSet",
    "FetchInterruptedError",
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
    "VersionedContent",
    "__version__",
    "blocking",
    "build_mirror",
    "build_repository",
    "build_source",
    "compute_config_hash",
    "convert_evaluation_version",
    "convert_version",
    "parse_evaluation_version",
    "parse_version",
    "prompt_set_from_storybench",
    "sync_versions",
    "validate_prompt_set",
]


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    module = _WHERE.get(target)
    if module is None:
        raise AttributeError(f"module 'storybench_prompts' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    # ``blocking`` is a module named like its function; the module itself is served (it is
    # callable), so every way of importing it gives the same object.
    value = imported if module == target else getattr(imported, target)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
