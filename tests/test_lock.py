"""ops.lock: round trips, strict loading with precise errors, no credentials, atomic writes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import storybench_prompts
from storybench_prompts._exceptions import ConfigurationError
from storybench_prompts.ops.lock import Lock, LockedSet, LockFileError, clean_url
from tests.factories import flat_evaluation_set, flat_set

MOMENT = datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)


def lock(**changes: Any) -> Lock:
    return Lock.from_sets(
        flat_set(3),
        flat_evaluation_set(2),
        directus_url=changes.pop("directus_url", "https://cms.example.org"),
        created_at=changes.pop("created_at", MOMENT),
    )


def valid_json() -> dict[str, Any]:
    return lock().as_json()


def write(tmp_path: Path, content: Any, *, raw: bool = False) -> Path:
    path = tmp_path / "prompts.lock"
    path.write_text(content if raw else json.dumps(content), encoding="utf-8")
    return path


def load_error(path: Path) -> LockFileError:
    with pytest.raises(LockFileError) as info:
        Lock.load(path)
    assert info.value.path == path
    assert str(path) in str(info.value)
    return info.value


# -- building and round trips -----------------------------------------------------------------


def test_from_sets_records_versions_hashes_tool_version_and_now() -> None:
    prompts, criteria = flat_set(3), flat_evaluation_set(2)
    before = datetime.now(UTC)
    made = Lock.from_sets(prompts, criteria, directus_url="https://cms.example.org")
    assert made.prompt_set == LockedSet(3, prompts.config_hash)
    assert made.evaluation_set == LockedSet(2, criteria.config_hash)
    assert made.tool_version == storybench_prompts.__version__
    assert made.format == 1
    assert made.created_at.tzinfo is not None
    assert before <= made.created_at <= datetime.now(UTC)


def test_round_trip(tmp_path: Path) -> None:
    original = lock()
    path = tmp_path / "prompts.lock"
    original.dump(path)
    assert Lock.load(path) == original
    assert Lock.load(str(path)) == original


def test_file_format(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    lock().dump(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "format": 1,\n')
    assert text.endswith("}\n")
    assert json.loads(text) == {
        "format": 1,
        "prompt_set": {"version": 3, "config_hash": flat_set(3).config_hash},
        "evaluation_set": {"version": 2, "config_hash": flat_evaluation_set(2).config_hash},
        "directus_url": "https://cms.example.org",
        "created_at": "2025-06-01T10:00:00.123456+00:00",
        "tool_version": storybench_prompts.__version__,
    }


def test_round_trip_without_evaluation_set_or_url(tmp_path: Path) -> None:
    original = Lock.from_sets(flat_set(1), None, directus_url=None, created_at=MOMENT)
    path = tmp_path / "prompts.lock"
    original.dump(path)
    data = json.loads(path.read_text())
    assert data["evaluation_set"] is None
    assert data["directus_url"] is None
    assert Lock.load(path) == original


def test_created_at_round_trips_as_an_aware_datetime(tmp_path: Path) -> None:
    elsewhere = datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=-5)))
    path = tmp_path / "prompts.lock"
    lock(created_at=elsewhere).dump(path)
    loaded = Lock.load(path).created_at
    assert loaded == elsewhere
    assert loaded.utcoffset() == timedelta(hours=-5)


def test_z_suffix_is_read_as_utc(tmp_path: Path) -> None:
    data = valid_json()
    data["created_at"] = "2025-06-01T10:00:00Z"
    loaded = Lock.load(write(tmp_path, data)).created_at
    assert loaded == datetime(2025, 6, 1, 10, tzinfo=UTC)


def test_unknown_extra_keys_are_ignored(tmp_path: Path) -> None:
    data = valid_json()
    data["comment"] = "written by the nightly run"
    data["prompt_set"]["note"] = 1
    assert Lock.load(write(tmp_path, data)) == lock()


def test_dump_overwrites_and_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    lock(created_at=MOMENT - timedelta(days=1)).dump(path)
    path.chmod(0o640)
    lock().dump(path)
    assert Lock.load(path) == lock()
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_new_file_is_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    lock().dump(path)
    assert path.stat().st_mode & 0o777 == 0o644


def test_from_sets_rejects_swapped_kinds() -> None:
    with pytest.raises(TypeError, match="prompt_set must be a PromptSet"):
        Lock.from_sets(flat_evaluation_set(1), None, directus_url=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="evaluation_set must be an EvaluationSet"):
        Lock.from_sets(flat_set(1), flat_set(2), directus_url=None)  # type: ignore[arg-type]


def test_a_naive_created_at_or_a_bad_locked_set_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="aware"):
        lock(created_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="positive integer"):
        LockedSet(0, "0123456789abcdef")
    with pytest.raises(ValueError, match="16 lowercase hex"):
        LockedSet(1, "0123456789ABCDEF")


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://admin:s3cret-token@cms.example.org/", "https://cms.example.org/"),
        ("https://s3cret-token@cms.example.org:8055", "https://cms.example.org:8055"),
        ("https://cms.example.org/api?access_token=s3cret-token", "https://cms.example.org/api"),
        ("https://u:p%40ss@cms.example.org#s3cret-token", "https://cms.example.org"),
        ("HTTP://cms.example.org", "http://cms.example.org"),
    ],
)
def test_no_credentials_reach_the_file(tmp_path: Path, url: str, stored: str) -> None:
    path = tmp_path / "prompts.lock"
    made = lock(directus_url=url)
    assert made.directus_url == stored
    made.dump(path)
    text = path.read_text()
    for secret in ("s3cret-token", "admin", "p%40ss", "access_token", "@"):
        assert secret not in text
    assert Lock.load(path).directus_url == stored


def test_a_hand_written_url_with_credentials_is_cleaned_on_load(tmp_path: Path) -> None:
    data = valid_json()
    data["directus_url"] = "https://admin:s3cret@cms.example.org"
    assert Lock.load(write(tmp_path, data)).directus_url == "https://cms.example.org"


@pytest.mark.parametrize(
    "url", ["admin:s3cret@cms.example.org", "cms.example.org", "ftp://cms.example.org", "https://"]
)
def test_a_url_that_is_not_absolute_http_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="absolute http") as info:
        clean_url(url)
    assert url not in str(info.value)


def test_an_unparseable_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError, match="not a valid URL") as info:
        clean_url("https://s3cret@[::1")
    assert "s3cret" not in str(info.value)


# -- strict loading ---------------------------------------------------------------------------


def test_lock_file_error_is_a_configuration_error(tmp_path: Path) -> None:
    assert issubclass(LockFileError, ConfigurationError)
    error = load_error(tmp_path / "absent.lock")
    assert "does not exist" in error.problem


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "prompts.lock"
    directory.mkdir()
    error = load_error(directory)
    assert "cannot be read" in str(error)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission(tmp_path: Path) -> None:
    path = write(tmp_path, valid_json())
    path.chmod(0)
    try:
        assert "cannot be read: Permission denied" in str(load_error(path))
    finally:
        path.chmod(0o644)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    path.write_bytes(b'{"format": 1, "x": "\xff"}')
    assert "not UTF-8" in str(load_error(path))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "is not valid JSON: Expecting value at line 1 column 1"),
        ('{"format": 1,', "is not valid JSON"),
        ("{'format': 1}", "is not valid JSON"),
        ('{"format": 1, "format": 1}', "duplicate key 'format'"),
    ],
)
def test_invalid_json(tmp_path: Path, content: str, problem: str) -> None:
    assert problem in str(load_error(write(tmp_path, content, raw=True)))


@pytest.mark.parametrize(
    ("content", "kind"),
    [([], "an array"), ("lock", "a string"), (1, "a number"), (None, "null"), (True, "a boolean")],
)
def test_top_level_not_an_object(tmp_path: Path, content: Any, kind: str) -> None:
    error = load_error(write(tmp_path, content))
    assert f"the top level must be a JSON object, not {kind}" in str(error)


@pytest.mark.parametrize("key", ["format", "prompt_set"])
def test_format_and_prompt_set_are_required(tmp_path: Path, key: str) -> None:
    data = valid_json()
    del data[key]
    assert f"missing key: {key}" in str(load_error(write(tmp_path, data)))


def test_every_missing_key_is_named(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, {"evaluation_set": None}))
    assert "missing keys: format, prompt_set" in error.problem


@pytest.mark.parametrize("key", ["evaluation_set", "directus_url", "created_at", "tool_version"])
def test_the_other_keys_may_be_missing_or_null(tmp_path: Path, key: str) -> None:
    data = valid_json()
    del data[key]
    assert getattr(Lock.load(write(tmp_path, data)), key) is None
    data[key] = None
    assert getattr(Lock.load(write(tmp_path, data)), key) is None


def test_a_minimal_hand_written_lock(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"format": 1, "prompt_set": {"version": 3, "config_hash": "0123456789abcdef"}}
    )
    loaded = Lock.load(path)
    assert loaded.prompt_set == LockedSet(3, "0123456789abcdef")
    assert (loaded.evaluation_set, loaded.created_at, loaded.tool_version) == (None, None, None)
    loaded.dump(tmp_path / "again.json")
    assert Lock.load(tmp_path / "again.json") == loaded


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (2, "format 2 is not supported (known formats: 1)"),
        (0, "format 0 is not supported (known formats: 1)"),
        (True, "format must be an integer, not true"),
        ("1", 'format must be an integer, not "1"'),
        (1.0, "format must be an integer, not 1.0"),
    ],
)
def test_format(tmp_path: Path, value: Any, problem: str) -> None:
    data = valid_json()
    data["format"] = value
    assert str(load_error(write(tmp_path, data))).endswith(problem)


@pytest.mark.parametrize(
    ("where", "value", "problem"),
    [
        ("prompt_set", None, "prompt_set must be an object, not null"),
        ("prompt_set", [3, "0123456789abcdef"], "prompt_set must be an object, not [3,"),
        ("prompt_set", {"config_hash": "0123456789abcdef"}, "prompt_set.version is missing"),
        ("prompt_set", {"version": 3}, "prompt_set.config_hash is missing"),
        ("evaluation_set", "v2", 'evaluation_set must be an object, not "v2"'),
        ("evaluation_set", {"version": 2}, "evaluation_set.config_hash is missing"),
    ],
)
def test_malformed_locked_set(tmp_path: Path, where: str, value: Any, problem: str) -> None:
    data = valid_json()
    data[where] = value
    assert problem in str(load_error(write(tmp_path, data)))


@pytest.mark.parametrize("where", ["prompt_set", "evaluation_set"])
@pytest.mark.parametrize(
    ("version", "shown"),
    [
        (0, "0"),
        (-1, "-1"),
        (True, "true"),
        (False, "false"),
        (1.0, "1.0"),
        ("3", '"3"'),
        (None, "null"),
    ],
)
def test_version_must_be_a_positive_int(
    tmp_path: Path, where: str, version: Any, shown: str
) -> None:
    data = valid_json()
    data[where]["version"] = version
    error = load_error(write(tmp_path, data))
    assert error.problem == f"{where}.version must be a positive integer, not {shown}"


@pytest.mark.parametrize("where", ["prompt_set", "evaluation_set"])
@pytest.mark.parametrize(
    "config_hash",
    [
        "0123456789ABCDEF",  # upper case
        "0123456789abcde",  # 15
        "0123456789abcdef0",  # 17
        "0123456789abcdeg",  # not hex
        "0123456789abcdef\n",  # a trailing newline
        "",
        1234567890123456,
        None,
    ],
)
def test_config_hash_must_be_16_lowercase_hex(tmp_path: Path, where: str, config_hash: Any) -> None:
    data = valid_json()
    data[where]["config_hash"] = config_hash
    error = load_error(write(tmp_path, data))
    assert error.problem.startswith(f"{where}.config_hash must be 16 lowercase hex characters, not")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("created_at", "yesterday", "created_at is not an ISO-8601 date and time"),
        ("created_at", "2025-06-01T10:00:00", "created_at has no time zone"),
        ("created_at", 1748772000, "created_at must be an ISO-8601 string, not 1748772000"),
        ("directus_url", 8055, "directus_url must be a string or null, not 8055"),
        ("directus_url", "cms.example.org", "directus_url: not an absolute http(s) URL"),
        ("tool_version", "", 'tool_version must be a non-empty string or null, not ""'),
        ("tool_version", 3, "tool_version must be a non-empty string or null, not 3"),
    ],
)
def test_other_fields(tmp_path: Path, key: str, value: Any, problem: str) -> None:
    data = valid_json()
    data[key] = value
    assert problem in str(load_error(write(tmp_path, data)))


def test_a_long_value_is_cut_short_in_the_message(tmp_path: Path) -> None:
    data = valid_json()
    data["prompt_set"]["config_hash"] = "x" * 10_000
    error = load_error(write(tmp_path, data))
    assert len(str(error)) < 200 + len(str(error.path))
    assert error.problem.endswith("...")


# -- atomic writes ----------------------------------------------------------------------------


def test_dump_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.lock"
    lock().dump(path)
    lock().dump(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.lock"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prompts.lock"
    old = lock(created_at=MOMENT - timedelta(days=1))
    old.dump(path)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(LockFileError, match="cannot be written: Input/output error") as info:
        lock().dump(path)
    assert info.value.path == path
    monkeypatch.undo()
    assert Lock.load(path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.lock"]


def test_an_interrupted_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prompts.lock"

    def interrupted(src: str, dst: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock().dump(path)
    assert list(tmp_path.iterdir()) == []


def test_dump_into_a_missing_directory_is_a_lock_file_error(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "prompts.lock"
    with pytest.raises(LockFileError, match="cannot be written") as info:
        lock().dump(path)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("content", "what"),
    [("[" * 100_000 + "]" * 100_000, "RecursionError"), ('{"format": 1' + "1" * 5000 + "}", "")],
)
def test_a_lock_nested_too_deep_or_with_a_huge_number_is_a_lock_file_error(
    tmp_path: Path, content: str, what: str
) -> None:
    path = tmp_path / "odd.lock"
    path.write_text(content)
    with pytest.raises(LockFileError, match=what or "not"):
        Lock.load(path)
