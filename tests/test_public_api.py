"""The public surface changes only on purpose."""

import storybench_prompts

EXPECTED = [
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
    "EVALUATION_SETS",
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
    "PROMPT_SETS",
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


def test_exported_names():
    assert sorted(storybench_prompts.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert hasattr(storybench_prompts, name), name


def test_every_error_shares_one_base():
    for name in EXPECTED:
        obj = getattr(storybench_prompts, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, storybench_prompts.StorybenchPromptsError), name


def test_sources_and_mirrors_implement_the_protocols(tmp_path):
    from storybench_prompts import (
        DirectusSource,
        FileMirror,
        InMemoryMirror,
        MongoMirror,
        PromptMirror,
        PromptRepository,
    )

    source = DirectusSource("https://x.example.org", "t")
    assert isinstance(source, PromptRepository)
    for mirror in (
        FileMirror(tmp_path),
        InMemoryMirror(),
        MongoMirror("mongodb://127.0.0.1:1/", server_selection_timeout=0.1),
    ):
        assert isinstance(mirror, PromptMirror), mirror


def test_py_typed_is_shipped():
    from importlib.resources import files

    assert files("storybench_prompts").joinpath("py.typed").is_file()
