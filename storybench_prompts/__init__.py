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
    from ._blocking import BlockingRepository, blocking
    from ._compose import DirectusStack, build_mirror, build_repository, build_source, build_stack
    from ._events import OriginState, OriginStatus
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
        DirectusPoolTimeoutError,
        DirectusRateLimitedError,
        DirectusRequestError,
        DirectusServerError,
        DirectusTimeoutError,
        FetchInterruptedError,
        InvalidPromptSetError,
        LockedContentNotFoundError,
        MirrorCorruptError,
        MirrorUnavailableError,
        Problem,
        PromptSetNotFoundError,
        PromptSetUnavailableError,
        SourceUnavailableError,
        StorybenchPromptsError,
    )
    from ._settings import Settings
    from .cache.drift import Drift
    from .cache.engine import CachingRepository
    from .cache.pinned import PinnedRun, RunDrift
    from .cache.policy import CachePolicy
    from .cache.stats import Stats
    from .compat.storybench.client import DirectusClient
    from .compat.storybench.errors import (
        DirectusInvalidContentError,
        DirectusLockedContentError,
        DirectusUnavailableError,
    )
    from .compat.storybench.models import (
        DirectusEvaluationVersion,
        DirectusPrompt,
        DirectusPromptSetVersion,
    )
    from .compat.storybench.models import DirectusPromptSequence as DirectusSequence
    from .compat.storybench.models import PromptInSequence as PromptJunction
    from .compat.storybench.models import SequenceInSet as SequenceJunction
    from .content.evaluation_sets import convert_evaluation_version, parse_evaluation_version
    from .content.kinds import EVALUATION_SETS, PROMPT_SETS, ContentKind
    from .content.models import (
        Criterion,
        EvaluationSet,
        Prompt,
        PromptSet,
        Provenance,
        Status,
        VersionedContent,
        VersionInfo,
        compute_config_hash,
    )
    from .content.prompt_sets import (
        convert_version,
        parse_version,
        prompt_set_from_storybench,
        validate_prompt_set,
    )
    from .mirrors.base import PromptMirror, SaveOutcome
    from .mirrors.file import FileMirror
    from .mirrors.memory import InMemoryMirror
    from .mirrors.mongo import MongoMirror
    from .ops.diff import SetDiff, diff_sets, render_diff
    from .ops.lock import Lock, LockedSet, LockFileError
    from .ops.sync import SyncResult, sync_versions
    from .sources.base import PromptRepository
    from .sources.directus import DirectusSource, DirectusTimeouts
    from .sources.retry import RetryPolicy

    # The names the interface documents use.
    PromptSetNotFound = PromptSetNotFoundError
    SourceUnavailable = SourceUnavailableError

from ._version import __version__

# name -> the module that defines it (imported on first access).
_WHERE: dict[str, str] = {
    "CachePolicy": "cache.policy",
    "CachingRepository": "cache.engine",
    "Drift": "cache.drift",
    **dict.fromkeys(
        ["convert_evaluation_version", "parse_evaluation_version"], "content.evaluation_sets"
    ),
    **dict.fromkeys(
        ["convert_version", "parse_version", "prompt_set_from_storybench", "validate_prompt_set"],
        "content.prompt_sets",
    ),
    # storybench's shapes, as the drop-in returns them (one class per name).
    **dict.fromkeys(
        ["DirectusEvaluationVersion", "DirectusPrompt", "DirectusPromptSetVersion"],
        "compat.storybench.models",
    ),
    **dict.fromkeys(["DirectusSource", "DirectusTimeouts"], "sources.directus"),
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
            "DirectusPoolTimeoutError",
            "DirectusRateLimitedError",
            "DirectusRequestError",
            "DirectusServerError",
            "DirectusTimeoutError",
            "FetchInterruptedError",
            "InvalidPromptSetError",
            "LockedContentNotFoundError",
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
    "FileMirror": "mirrors.file",
    **dict.fromkeys(["OriginState", "OriginStatus"], "_events"),
    "Stats": "cache.stats",
    **dict.fromkeys(["EVALUATION_SETS", "PROMPT_SETS", "ContentKind"], "content.kinds"),
    "InMemoryMirror": "mirrors.memory",
    **dict.fromkeys(
        [
            "Criterion",
            "EvaluationSet",
            "Prompt",
            "PromptSet",
            "Provenance",
            "Status",
            "VersionedContent",
            "VersionInfo",
            "compute_config_hash",
        ],
        "content.models",
    ),
    "MongoMirror": "mirrors.mongo",
    **dict.fromkeys(["PromptMirror", "SaveOutcome"], "mirrors.base"),
    "PromptRepository": "sources.base",
    "RetryPolicy": "sources.retry",
    "Settings": "_settings",
    **dict.fromkeys(
        ["DirectusStack", "build_mirror", "build_repository", "build_source", "build_stack"],
        "_compose",
    ),
    "DirectusClient": "compat.storybench.client",
    **dict.fromkeys(
        [
            "DirectusInvalidContentError",
            "DirectusLockedContentError",
            "DirectusUnavailableError",
        ],
        "compat.storybench.errors",
    ),
    **dict.fromkeys(
        ["DirectusPromptSequence", "PromptInSequence", "SequenceInSet"], "compat.storybench.models"
    ),
    **dict.fromkeys(["SyncResult", "sync_versions"], "ops.sync"),
    **dict.fromkeys(["SetDiff", "diff_sets", "render_diff"], "ops.diff"),
    **dict.fromkeys(["Lock", "LockFileError", "LockedSet"], "ops.lock"),
    **dict.fromkeys(["PinnedRun", "RunDrift"], "cache.pinned"),
    **dict.fromkeys(["BlockingRepository", "blocking"], "_blocking"),
}
_ALIASES = {
    "PromptSetNotFound": "PromptSetNotFoundError",
    "SourceUnavailable": "SourceUnavailableError",
    "DirectusSequence": "DirectusPromptSequence",
    "PromptJunction": "PromptInSequence",
    "SequenceJunction": "SequenceInSet",
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
    "DirectusInvalidContentError",
    "DirectusInvalidResponseError",
    "DirectusLockedContentError",
    "DirectusNotFoundError",
    "DirectusPoolTimeoutError",
    "DirectusPrompt",
    "DirectusPromptSetVersion",
    "DirectusRateLimitedError",
    "DirectusRequestError",
    "DirectusSequence",
    "DirectusServerError",
    "DirectusSource",
    "DirectusStack",
    "DirectusTimeoutError",
    "DirectusTimeouts",
    "DirectusUnavailableError",
    "Drift",
    "EvaluationSet",
    "FetchInterruptedError",
    "FileMirror",
    "InMemoryMirror",
    "InvalidPromptSetError",
    "Lock",
    "LockFileError",
    "LockedContentNotFoundError",
    "LockedSet",
    "MirrorCorruptError",
    "MirrorUnavailableError",
    "MongoMirror",
    "OriginState",
    "OriginStatus",
    "PinnedRun",
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
    "RunDrift",
    "SaveOutcome",
    "SequenceJunction",
    "SetDiff",
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
    "build_stack",
    "compute_config_hash",
    "convert_evaluation_version",
    "convert_version",
    "diff_sets",
    "parse_evaluation_version",
    "parse_version",
    "prompt_set_from_storybench",
    "render_diff",
    "sync_versions",
    "validate_prompt_set",
]


def __getattr__(name: str) -> Any:
    target = _ALIASES.get(name, name)
    module = _WHERE.get(target)
    if module is None:
        raise AttributeError(f"module 'storybench_prompts' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), target)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
