"""The real `storybench-prompts` entry point, as a subprocess, against real servers."""

import json
import os
import subprocess
import sys

import pytest

from storybench_prompts.cli import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

pytestmark = [pytest.mark.directus]


def run(args, env, timeout=120):
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def storybench_active(uri: str, db_name: str) -> list[int]:
    """What storybench's own reader would find: versions with is_active true."""
    from pymongo import MongoClient

    with MongoClient(uri) as client:
        return sorted(d["version"] for d in client[db_name]["prompts"].find({"is_active": True}))


@pytest.fixture
def file_env(directus, tmp_path):
    return {
        "DIRECTUS_URL": directus.url,
        "DIRECTUS_TOKEN": directus.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror"),
    }


def test_sync_all_then_nothing_changes(file_env):
    first = run(["sync", "--all"], file_env)
    assert first.returncode == EXIT_OK, first.stderr
    assert "prompts v1: new" in first.stdout
    assert "prompts v3: new" in first.stdout
    assert "prompts: 3 new" in first.stdout
    assert "evaluations: 3 new" in first.stdout  # both kinds by default
    again = run(["sync", "--all"], file_env)
    assert again.returncode == EXIT_OK
    assert "prompts: 3 unchanged" in again.stdout
    assert "evaluations: 3 unchanged" in again.stdout
    dry = run(["sync", "--version", "2", "--dry-run"], file_env)
    assert "dry run: prompts: 1 unchanged" in dry.stdout


def test_sync_missing_version_is_partial(file_env):
    result = run(["sync", "--version", "1", "--version", "999"], file_env)
    assert result.returncode == EXIT_PARTIAL
    # Every report line on stdout; stderr only says the command did not fully succeed.
    assert "v999: not_found" in result.stdout
    assert "v1: new" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: sync: 1 of 2 version(s) not synced (v999 not_found)"
    ]


def test_versions_marks_missing_and_json_parses(file_env):
    run(["sync", "--version", "1"], file_env)
    table = run(["versions"], file_env)
    assert table.returncode == EXIT_FAILURE, table.stderr  # a MISSING row needs attention
    assert "MISSING" in table.stdout
    assert "error: versions: 2 version(s) need attention" in table.stderr
    listed = run(["versions", "--json"], file_env)
    assert listed.returncode == EXIT_FAILURE
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["state"]) for r in rows] == [
        (1, "same"),
        (2, "missing"),
        (3, "missing"),
    ]


def test_get_json_carries_the_flat_format_and_provenance(file_env):
    result = run(["get", "latest", "--json"], file_env)
    assert result.returncode == EXIT_OK, result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == 3
    assert set(data["sequences"]) == {
        "FilmNarrative",
        "LiteraryFiction",
        "CommercialConcept",
        "RegionalThriller",
        "CrossGenre",
    }
    assert data["provenance"]["source"] == "directus"
    assert len(data["config_hash"]) == 16
    readable = run(["get", "2"], file_env)
    assert "Prompt set v2" in readable.stdout
    assert "1. Initial Concept" in readable.stdout


def test_get_unknown_and_bad_arguments(file_env):
    missing = run(["get", "999"], file_env)
    assert missing.returncode == EXIT_FAILURE
    assert "error:" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert run(["get", "abc"], file_env).returncode == EXIT_USAGE
    assert run(["sync", "--all", "--version", "1"], file_env).returncode == EXIT_USAGE


def test_bad_token_fails_clearly_without_leaking_it(file_env):
    token = "wrong-token-7c1d9e"
    env = file_env | {"DIRECTUS_TOKEN": token}
    for args in (["sync"], ["--verbose", "get", "1", "--source", "directus"], ["check"]):
        result = run(args, env)
        assert result.returncode == EXIT_USAGE, args  # a misconfiguration, not an outage
        assert token not in result.stdout + result.stderr
    result = run(["get", "1", "--source", "directus"], env)
    assert "DIRECTUS_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_reports_every_part(file_env):
    run(["sync", "--all"], file_env)
    result = run(["check"], file_env)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "ok   directus " in result.stdout
    for name in ("schema", "mirror", "freshness"):
        for kind in ("prompts", "evaluations"):
            assert f"ok   {name} ({kind})" in result.stdout


def test_invalid_content_is_refused_with_its_reasons_and_the_mirror_keeps_its_copy(
    own_directus, tmp_path
):
    env = {
        "DIRECTUS_URL": own_directus.url,
        "DIRECTUS_TOKEN": own_directus.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror"),
    }
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    kept = json.loads(run(["get", "2", "--json", "--source", "mirror"], env).stdout)
    with own_directus.admin() as admin:
        prompt = admin.get(
            "/items/prompts",
            params={"filter[text][_contains]": "(v2)", "limit": "1", "fields": "id,name"},
        ).json()["data"][0]
    own_directus.update_item("prompts", prompt["id"], {"text": "   "})

    result = run(["sync", "--all"], env)
    assert result.returncode == EXIT_PARTIAL
    output = result.stdout + result.stderr
    assert "v2: refused" in output
    # The problem names the version, the prompt by name and its Directus id.
    assert f'prompt "{prompt["name"]}" (id {prompt["id"]}) > text: empty' in output
    assert "v2 > sequence " in output
    assert "v1: unchanged" in output
    mirror_copy = json.loads(run(["get", "2", "--json", "--source", "mirror"], env).stdout)
    assert mirror_copy["config_hash"] == kept["config_hash"]
    assert mirror_copy["sequences"] == kept["sequences"]


def test_directus_down_get_served_from_mirror_and_sync_fails(own_directus, tmp_path):
    env = {
        "DIRECTUS_URL": own_directus.url,
        "DIRECTUS_TOKEN": own_directus.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror"),
    }
    warmed = run(["warm"], env)
    assert warmed.returncode == EXIT_OK, warmed.stderr
    added = [line.split(" (")[0] for line in warmed.stdout.splitlines() if line.startswith("added")]
    assert added == [
        *(f"added prompts v{v}" for v in (1, 2, 3)),
        *(f"added evaluations v{v}" for v in (1, 2, 3)),
    ]
    assert "mirror holds 3 of 3 prompt set version(s); added 3" in warmed.stdout
    assert "mirror holds 3 of 3 evaluation set version(s); added 3" in warmed.stdout
    own_directus.kill()
    served = run(["get", "latest", "--json"], env)
    assert served.returncode == EXIT_OK, served.stderr
    data = json.loads(served.stdout)
    assert data["version"] == 3
    assert data["provenance"]["source"] == "mirror"
    sync = run(["sync", "--all"], env)
    assert sync.returncode == EXIT_FAILURE
    assert "Directus" in sync.stderr


@pytest.mark.mongodb
def test_mongodb_mirror_and_storybench_spelling(directus, nx_server, unique_db_name):
    secret = "pw-9f8e7d"
    env = {
        "DIRECTUS_URL": directus.url,
        "DIRECTUS_TOKEN": directus.readonly_token,
        "MONGODB_URI": nx_server.uri,
        "STORYBENCH_PROMPTS_MONGODB_DATABASE": unique_db_name,
    }
    assert run(["sync-prompts", "--test-connection"], env).returncode == EXIT_OK
    listing = run(["sync-prompts", "--list-versions"], env)
    assert "v3:" in listing.stdout
    synced = run(["sync-prompts", "-v", "2"], env)
    assert synced.returncode == EXIT_OK, synced.stderr
    assert "v2: new" in synced.stdout
    assert "active: v2" in synced.stdout
    assert storybench_active(nx_server.uri, unique_db_name) == [2]
    latest = run(["sync-prompts"], env)
    assert "v3: new" in latest.stdout
    assert storybench_active(nx_server.uri, unique_db_name) == [3]
    pinned = run(["sync", "--version", "1", "--no-activate"], env)
    assert pinned.returncode == EXIT_OK
    assert storybench_active(nx_server.uri, unique_db_name) == [3]
    from_mirror = json.loads(run(["get", "2", "--json", "--source", "mirror"], env).stdout)
    assert from_mirror["provenance"]["source"] == "mirror"
    # A MongoDB that is not there: the password never shows.
    down = env | {
        "MONGODB_URI": f"mongodb://u:{secret}@127.0.0.1:1/",
        "STORYBENCH_PROMPTS_MONGODB_SERVER_SELECTION_TIMEOUT": "0.3",
    }
    for args in (["--verbose", "sync"], ["check"], ["config"]):
        result = run(args, down)
        assert secret not in result.stdout + result.stderr, args
    assert run(["sync"], down).returncode == EXIT_FAILURE
