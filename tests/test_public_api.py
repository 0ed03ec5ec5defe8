"""The public surface changes only on purpose."""

import storybench_prompts
from storybench_prompts import PROMPT_SETS

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
    "EVALUATION_SETS",
    "EvaluationSet",
    "FetchInterruptedError",
    "FileMirror",
    "InMemoryMirror",
    "InvalidPromptSetError",
    "Lock",
    "LockFileError",
    "LockedContentNotFoundError",
    "LockedSet",
    "PinnedRun",
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
    "RunDrift",
    "SaveOutcome",
    "SetDiff",
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

    source = DirectusSource("https://x.example.org", "t", kind=PROMPT_SETS)
    assert isinstance(source, PromptRepository)
    for mirror in (
        FileMirror(tmp_path, kind=PROMPT_SETS),
        InMemoryMirror(kind=PROMPT_SETS),
        MongoMirror("mongodb://127.0.0.1:1/", server_selection_timeout=0.1, kind=PROMPT_SETS),
    ):
        assert isinstance(mirror, PromptMirror), mirror


def test_py_typed_is_shipped():
    from importlib.resources import files

    assert files("storybench_prompts").joinpath("py.typed").is_file()


def test_no_class_name_is_defined_twice_in_the_package():
    import ast
    import pathlib

    root = pathlib.Path(storybench_prompts.__file__).parent
    where: dict[str, list[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(str(path.relative_to(root)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_one_version_number():
    import importlib.metadata
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert importlib.metadata.version("storybench-prompts") == storybench_prompts.__version__
    cli = subprocess.run(
        [sys.executable, "-m", "storybench_prompts", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert cli.stdout.split()[-1] == storybench_prompts.__version__
