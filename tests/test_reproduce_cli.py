"""Reproducing a run with the CLI, against real local Directus servers: lock, verify after an
edit and after tampering, the drop-in under a lock, export and offline serving with no
Directus (zero connections at a listening socket), and diff."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from storybench_prompts import DirectusClient, DirectusClientError, LockedContentNotFoundError
from storybench_prompts.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from tests.test_cli import run
from tests.test_offline import CountingSocket
from tests.test_realtime_cache import prompt_id_of, version_id_of

pytestmark = [pytest.mark.directus, pytest.mark.timeout(300)]


def env_for(server, mirror) -> dict[str, str]:
    return {
        "DIRECTUS_URL": server.url,
        "DIRECTUS_TOKEN": server.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(mirror),
    }


def served(args, env, cwd=None) -> dict:
    result = run_in(args, env, cwd)
    assert result.returncode == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def run_in(args, env, cwd=None):
    if cwd is None:
        return run(args, env)
    import os

    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- lock and verify ---------------------------------------------------------------------------


def test_lock_survives_an_edit_and_tampering_is_caught(own_directus, tmp_path, monkeypatch):
    server = own_directus
    mirror = tmp_path / "mirror"
    env = env_for(server, mirror)
    lockfile = tmp_path / "results" / "prompts.lock.json"
    lockfile.parent.mkdir()

    locked = run(["lock", "-o", str(lockfile)], env)
    assert locked.returncode == EXIT_OK, locked.stderr
    v3 = served(["get", "latest", "--json"], env)
    e3 = served(["get", "latest", "--json", "--kind", "evaluations"], env)
    data = json.loads(lockfile.read_text())
    assert data["format"] == 1
    assert data["prompt_set"] == {"version": 3, "config_hash": v3["config_hash"]}
    assert data["evaluation_set"] == {"version": 3, "config_hash": e3["config_hash"]}
    assert data["directus_url"] == server.url
    assert server.readonly_token not in lockfile.read_text()
    # The mirror holds exactly the locked content, by hash.
    record = mirror / "by-hash" / f"prompt-set-{v3['config_hash']}.json"
    assert json.loads(record.read_text())["config_hash"] == v3["config_hash"]
    assert (mirror / "by-hash" / f"evaluation-set-{e3['config_hash']}.json").is_file()

    # An editor changes v3 in place: Directus no longer holds the locked content.
    server.update_item("prompts", prompt_id_of(server, 3), {"text": "Edited after the run."})
    now = served(["get", "3", "--json"], env)
    assert now["config_hash"] != v3["config_hash"]

    verified = run(["verify", str(lockfile)], env)
    assert verified.returncode == EXIT_OK, verified.stderr
    assert f"ok        prompts v3 {v3['config_hash']} (mirror (file))" in verified.stdout
    assert f"ok        evaluations v3 {e3['config_hash']} (directus)" in verified.stdout
    again = served(["get", "--hash", v3["config_hash"], "--json"], env)
    assert again["sequences"] == v3["sequences"]  # still retrievable, exactly

    # The drop-in under STORYBENCH_PROMPTS_LOCK serves the locked sets as latest.
    monkeypatch.setenv("DIRECTUS_URL", server.url)
    monkeypatch.setenv("DIRECTUS_TOKEN", server.readonly_token)
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(mirror))
    monkeypatch.setenv("STORYBENCH_PROMPTS_LOCK", str(lockfile))
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("STORYBENCH_PROMPTS_OFFLINE", raising=False)

    async def dropin() -> tuple:
        client = DirectusClient()
        latest = await client.fetch_prompts()
        pinned_version = await client.fetch_prompts(3)  # explicit: as usual
        evaluation = await client.get_latest_published_evaluation_version()
        criteria = await client.convert_to_storybench_evaluation_format(evaluation)
        return latest, pinned_version, evaluation, criteria

    import asyncio

    latest, explicit, evaluation, criteria = asyncio.run(dropin())
    assert latest.config_hash == v3["config_hash"]
    assert latest.model_dump(mode="json")["sequences"] == v3["sequences"]
    assert explicit.config_hash == now["config_hash"]
    assert evaluation.version_number == 3
    assert criteria.config_hash == e3["config_hash"]

    # Tamper with the mirror's copy: verify names the hash, the drop-in refuses.
    document = json.loads(record.read_text())
    first = next(iter(document["prompt_set"]["sequences"]))
    document["prompt_set"]["sequences"][first][0]["text"] = "Tampered."
    record.write_text(json.dumps(document))
    snapshot = mirror / "prompt-set-v3.json"
    snapshot.write_text(json.dumps(document))
    tampered = run(["verify", str(lockfile)], env)
    assert tampered.returncode == EXIT_FAILURE
    assert f"MISMATCH  prompts v3 {v3['config_hash']}" in tampered.stderr
    assert f"cannot be retrieved: {v3['config_hash']}" in tampered.stderr
    assert "Traceback" not in tampered.stderr
    with pytest.raises(DirectusClientError) as refused:
        asyncio.run(dropin())
    assert isinstance(refused.value, LockedContentNotFoundError)
    assert v3["config_hash"] in str(refused.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        (
            '{"format": 9, "prompt_set": {"version": 1, "config_hash": "0123456789abcdef"}}',
            "format 9 is not supported",
        ),
        ('{"format": 1}', "missing key: prompt_set"),
        (
            '{"format": 1, "prompt_set": {"version": 1, "config_hash": "XYZ"}}',
            "prompt_set.config_hash must be 16 lowercase hex characters",
        ),
    ],
)
def test_a_bad_lock_file_is_a_usage_error_naming_the_file(tmp_path, content, problem):
    lockfile = tmp_path / "bad.lock"
    lockfile.write_text(content)
    env = {"STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "mirror")}  # no Directus needed
    for args in (
        ["verify", str(lockfile)],
        ["export", "-o", str(tmp_path / "x"), "--lock", str(lockfile)],
    ):
        result = run(args, env)
        assert result.returncode == EXIT_USAGE, result.stderr
        assert f"lock file {lockfile}: " in result.stderr
        assert problem in result.stderr
        assert "Traceback" not in result.stderr
    missing = run(["verify", str(tmp_path / "nope.lock")], env)
    assert missing.returncode == EXIT_USAGE
    assert "does not exist" in missing.stderr


def test_the_drop_in_names_a_bad_lock_file(tmp_path, monkeypatch, directus):
    lockfile = tmp_path / "bad.lock"
    lockfile.write_text("[]")
    monkeypatch.setenv("DIRECTUS_URL", directus.url)
    monkeypatch.setenv("DIRECTUS_TOKEN", directus.readonly_token)
    monkeypatch.setenv("STORYBENCH_PROMPTS_LOCK", str(lockfile))
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(tmp_path / "mirror"))
    import asyncio

    with pytest.raises(DirectusClientError, match=f"lock file {lockfile}: the top level"):
        asyncio.run(DirectusClient().fetch_prompts())


# -- export and offline ------------------------------------------------------------------------

DROP_IN = textwrap.dedent(
    """
    import asyncio, json
    from storybench_prompts import DirectusClient

    async def main():
        client = DirectusClient()
        prompts = await client.fetch_prompts()
        older = await client.fetch_prompts(1)
        missing = await client.fetch_prompts(9)
        evaluation = await client.get_latest_published_evaluation_version()
        criteria = await client.convert_to_storybench_evaluation_format(evaluation)
        print(json.dumps({
            "prompts": [prompts.version, prompts.config_hash],
            "older": older.config_hash,
            "missing": missing,
            "criteria": [criteria.version, criteria.config_hash],
            "connection": await client.test_connection(),
        }))

    asyncio.run(main())
    """
)


def test_export_then_serve_offline_with_no_directus(directus, tmp_path):
    env = env_for(directus, tmp_path / "mirror")
    snapshot = tmp_path / "snapshot"
    exported = run(["export", "-o", str(snapshot)], env)
    assert exported.returncode == EXIT_OK, exported.stderr
    manifest = json.loads((snapshot / "manifest.json").read_text())
    expected = {
        kind: [
            {
                "version": v,
                "config_hash": served(["get", str(v), "--json", "--kind", kind], env)[
                    "config_hash"
                ],
            }
            for v in (1, 2, 3)
        ]
        for kind in ("prompts", "evaluations")
    }
    assert manifest["kinds"] == expected
    assert manifest["tool_version"]
    assert manifest["created_at"]
    assert manifest["directus_url"] == directus.url
    assert sorted(p.name for p in snapshot.glob("*-v*.json")) == sorted(
        [f"prompt-set-v{v}.json" for v in (1, 2, 3)]
        + [f"evaluation-set-v{v}.json" for v in (1, 2, 3)]
    )
    again = run(["export", "-o", str(snapshot)], env)
    assert again.returncode != EXIT_OK
    assert "not empty" in again.stderr

    # A fresh folder, a copy of the snapshot, no Directus: a socket counts connections.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copytree(snapshot, fresh / "prompts")
    listening = CountingSocket()
    try:
        offline = {
            "DIRECTUS_URL": listening.url,  # pointed at the socket: never used
            "STORYBENCH_PROMPTS_OFFLINE": "true",
            "STORYBENCH_PROMPTS_MIRROR_DIR": str(fresh / "prompts"),
        }
        latest = served(["get", "latest", "--json"], offline, cwd=fresh)
        assert (latest["version"], latest["config_hash"]) == (
            3,
            expected["prompts"][2]["config_hash"],
        )
        assert latest["provenance"]["source"] == "mirror"
        criteria = served(["get", "latest", "--json", "--kind", "evaluations"], offline, cwd=fresh)
        assert criteria["config_hash"] == expected["evaluations"][2]["config_hash"]
        lacking = run_in(["get", "7"], offline, cwd=fresh)
        assert lacking.returncode == EXIT_FAILURE
        assert "has no prompt set version 7" in lacking.stderr
        assert "it holds prompt set versions 1, 2, 3" in lacking.stderr

        script = fresh / "run_benchmark.py"
        script.write_text(DROP_IN)
        dropin = subprocess.run(
            [sys.executable, str(script)],
            env={k: v for k, v in run_env(offline).items()},
            cwd=fresh,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dropin.returncode == 0, dropin.stderr
        answer = json.loads(dropin.stdout)
        assert answer == {
            "prompts": [3, expected["prompts"][2]["config_hash"]],
            "older": expected["prompts"][0]["config_hash"],
            "missing": None,
            "criteria": [3, expected["evaluations"][2]["config_hash"]],
            "connection": False,
        }
    finally:
        listening.close()
    assert listening.accepted == 0  # not one connection attempt


def run_env(extra: dict[str, str]) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    env.update(extra)
    return env


def test_export_of_a_lock_holds_just_the_locked_sets(directus, tmp_path):
    env = env_for(directus, tmp_path / "mirror")
    lockfile = tmp_path / "run.lock"
    assert (
        run(
            ["lock", "-o", str(lockfile), "--version", "2", "--evaluation-version", "1"], env
        ).returncode
        == EXIT_OK
    )
    snapshot = tmp_path / "snapshot"
    exported = run(["export", "-o", str(snapshot), "--lock", str(lockfile)], env)
    assert exported.returncode == EXIT_OK, exported.stderr
    manifest = json.loads((snapshot / "manifest.json").read_text())
    lock = json.loads(lockfile.read_text())
    assert manifest["kinds"] == {
        "prompts": [lock["prompt_set"]],
        "evaluations": [lock["evaluation_set"]],
    }
    assert sorted(p.name for p in snapshot.glob("*-v*.json")) == [
        "evaluation-set-v1.json",
        "prompt-set-v2.json",
    ]
    offline = {"STORYBENCH_PROMPTS_OFFLINE": "true", "STORYBENCH_PROMPTS_MIRROR_DIR": str(snapshot)}
    assert run(["verify", str(lockfile)], offline).returncode == EXIT_OK


# -- diff ------------------------------------------------------------------------------------

# v1's prompts end " (v1)", the draft v4's " (draft)"; same sequences, same prompts, same order.
EXPECTED_DIFF_1_4 = """\
prompt set v1 ({h1}) -> v4 ({h4})
15 changes
  ~ FilmNarrative/Initial Concept text changed
      --- v1/FilmNarrative/Initial Concept
      +++ v4/FilmNarrative/Initial Concept
      @@ -1 +1 @@
      -Pitch an original film built around a single unusual object. (v1)
      +Pitch an original film built around a single unusual object. (draft)
  ~ FilmNarrative/Scene Development text changed
      --- v1/FilmNarrative/Scene Development
      +++ v4/FilmNarrative/Scene Development
      @@ -1 +1 @@
      -Write the opening scene of that film, with directions. (v1)
      +Write the opening scene of that film, with directions. (draft)
  ~ FilmNarrative/Visual Realization text changed
      --- v1/FilmNarrative/Visual Realization
      +++ v4/FilmNarrative/Visual Realization
      @@ -1 +1 @@
      -Describe three key frames as a storyboard artist would. (v1)
      +Describe three key frames as a storyboard artist would. (draft)
  ~ LiteraryFiction/Character Sketch text changed
      --- v1/LiteraryFiction/Character Sketch
      +++ v4/LiteraryFiction/Character Sketch
      @@ -1 +1 @@
      -Introduce a character through one ordinary morning. (v1)
      +Introduce a character through one ordinary morning. (draft)
  ~ LiteraryFiction/Turning Point text changed
      --- v1/LiteraryFiction/Turning Point
      +++ v4/LiteraryFiction/Turning Point
      @@ -1 +1 @@
      -Write the moment that morning stops being ordinary. (v1)
      +Write the moment that morning stops being ordinary. (draft)
  ~ LiteraryFiction/Aftermath text changed
      --- v1/LiteraryFiction/Aftermath
      +++ v4/LiteraryFiction/Aftermath
      @@ -1 +1 @@
      -Close the story a year later, in a different voice. (v1)
      +Close the story a year later, in a different voice. (draft)
  ~ CommercialConcept/Product Idea text changed
      --- v1/CommercialConcept/Product Idea
      +++ v4/CommercialConcept/Product Idea
      @@ -1 +1 @@
      -Invent a product nobody asked for but everybody needs. (v1)
      +Invent a product nobody asked for but everybody needs. (draft)
  ~ CommercialConcept/Campaign text changed
      --- v1/CommercialConcept/Campaign
      +++ v4/CommercialConcept/Campaign
      @@ -1 +1 @@
      -Write the thirty-second advert that launches it. (v1)
      +Write the thirty-second advert that launches it. (draft)
  ~ CommercialConcept/Backlash text changed
      --- v1/CommercialConcept/Backlash
      +++ v4/CommercialConcept/Backlash
      @@ -1 +1 @@
      -Write the review that sinks it, then the reply that saves it. (v1)
      +Write the review that sinks it, then the reply that saves it. (draft)
  ~ RegionalThriller/Setting text changed
      --- v1/RegionalThriller/Setting
      +++ v4/RegionalThriller/Setting
      @@ -1 +1 @@
      -Describe a small coastal town with a secret, through its smells. (v1)
      +Describe a small coastal town with a secret, through its smells. (draft)
  ~ RegionalThriller/Inciting Incident text changed
      --- v1/RegionalThriller/Inciting Incident
      +++ v4/RegionalThriller/Inciting Incident
      @@ -1 +1 @@
      -Something washes ashore. Write the first hour. (v1)
      +Something washes ashore. Write the first hour. (draft)
  ~ RegionalThriller/Resolution text changed
      --- v1/RegionalThriller/Resolution
      +++ v4/RegionalThriller/Resolution
      @@ -1 +1 @@
      -Reveal the secret without naming it. (v1)
      +Reveal the secret without naming it. (draft)
  ~ CrossGenre/Fusion Pitch text changed
      --- v1/CrossGenre/Fusion Pitch
      +++ v4/CrossGenre/Fusion Pitch
      @@ -1 +1 @@
      -Combine a western and a cookery show into one premise. (v1)
      +Combine a western and a cookery show into one premise. (draft)
  ~ CrossGenre/Key Scene text changed
      --- v1/CrossGenre/Key Scene
      +++ v4/CrossGenre/Key Scene
      @@ -1 +1 @@
      -Write its most tense scene, with recipes. (v1)
      +Write its most tense scene, with recipes. (draft)
  ~ CrossGenre/Finale text changed
      --- v1/CrossGenre/Finale
      +++ v4/CrossGenre/Finale
      @@ -1 +1 @@
      -End it in a way both genres would accept. (v1)
      +End it in a way both genres would accept. (draft)
"""


def test_diff_of_two_versions_matches_the_expectation(own_directus, tmp_path):
    server = own_directus
    server.update_item("prompt_set_versions", version_id_of(server, 4), {"status": "published"})
    env = env_for(server, tmp_path / "mirror")
    h1 = served(["get", "1", "--json"], env)["config_hash"]
    h4 = served(["get", "4", "--json"], env)["config_hash"]

    report = run(["diff", "1", "4"], env)
    assert report.returncode == 1, report.stderr  # they differ, as diff says it
    assert report.stdout == EXPECTED_DIFF_1_4.format(h1=h1, h4=h4)
    assert "\x1b[" not in report.stdout  # not a terminal: no colours

    as_json = run(["diff", "1", "4", "--json"], env)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["identical"] is False
    assert [(c["sequence"], c["prompt"], c["change"]) for c in data["changes"]][:2] == [
        ("FilmNarrative", "Initial Concept", "changed"),
        ("FilmNarrative", "Scene Development", "changed"),
    ]
    assert len(data["changes"]) == 15

    same = run(["diff", "2", "2"], env)
    assert same.returncode == 0, same.stderr
    assert same.stdout.endswith("identical: no changes\n")
    assert json.loads(run(["diff", "3", "3", "--json"], env).stdout) == {
        "identical": True,
        "changes": [],
    }

    # Two recorded hashes, from the mirror (the gets above wrote it through).
    by_hash = run(["diff", h1, h4], env)
    assert by_hash.returncode == 1
    assert by_hash.stdout == report.stdout
    by_prefix = run(["diff", h1[:8], h4[:7]], env)  # unique prefixes, as git takes them
    assert by_prefix.returncode == 1, by_prefix.stderr
    assert by_prefix.stdout == report.stdout
    mixed = run(["diff", "1", h4[:6]], env)
    assert mixed.returncode == 1, mixed.stderr
    assert mixed.stdout == report.stdout
    criteria = run(["diff", "1", "3", "--kind", "evaluations"], env)
    assert criteria.returncode == 1
    assert "criterion conceptual_depth added" in criteria.stdout

    trouble = run(["diff", "1", "99"], env)
    assert trouble.returncode == 2
    assert "Traceback" not in trouble.stderr
    assert run(["diff", "1", "abc"], env).returncode == 2


# -- found by review ---------------------------------------------------------------------------


def test_lock_refuses_a_latest_that_came_from_a_copy_and_verify_refuses_a_rejected_token(
    own_directus, tmp_path
):
    server = own_directus
    mirror = tmp_path / "mirror"
    env = env_for(server, mirror)
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    lockfile = tmp_path / "run.lock"
    assert run(["lock", "-o", str(lockfile)], env).returncode == EXIT_OK
    # A lock whose version and hash disagree is refused by get --lock, as verify refuses it.
    data = json.loads(lockfile.read_text())
    wrong = tmp_path / "wrong.lock"
    wrong.write_text(json.dumps({**data, "prompt_set": {**data["prompt_set"], "version": 2}}))
    mismatched = run(["get", "--lock", str(wrong)], env)
    assert mismatched.returncode == EXIT_FAILURE
    assert "as version 3, not 2" in mismatched.stderr
    # A rejected token: verify exits 2 naming it, whatever the mirror holds.
    rejected = run(["verify", str(lockfile)], env | {"DIRECTUS_TOKEN": "wrong-token"})
    assert rejected.returncode == EXIT_USAGE, rejected.stdout + rejected.stderr
    assert "DIRECTUS_TOKEN" in rejected.stderr
    # Directus down: "the latest" cannot be known, so no lock names the mirror's.
    server.kill()
    refused = run(["lock", "-o", str(tmp_path / "later.lock")], env)
    assert refused.returncode == EXIT_FAILURE
    assert "cannot lock the latest prompt set" in refused.stderr
    assert "--version 3" in refused.stderr
    assert not (tmp_path / "later.lock").exists()
    pinned = run(["lock", "-o", str(tmp_path / "pinned.lock"), "--version", "3",
                  "--evaluation-version", "3"], env)  # fmt: skip
    assert pinned.returncode == EXIT_OK, pinned.stderr
