"""The CLI as a new user meets it, as a subprocess against real servers: a Directus that is
frozen (SIGSTOP), killed, misconfigured or holds a bad version. Exit codes, stdout and stderr
are asserted separately; report lines go to stdout, stderr carries only the command's own
errors and warnings."""

from __future__ import annotations

import http.server
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.directus import READONLY_EMAIL
from storybench_prompts.cli import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from storybench_prompts.cli.app import EXIT_INTERRUPTED, EXIT_NOT_FRESH, public_logger_name
from tests.test_cli import run

pytestmark = [pytest.mark.directus, pytest.mark.timeout(300)]


def env_for(server: Any, mirror: Path, **extra: str) -> dict[str, str]:
    return {
        "DIRECTUS_URL": server.url,
        "DIRECTUS_TOKEN": server.readonly_token,
        "STORYBENCH_PROMPTS_MIRROR_DIR": str(mirror),
        **extra,
    }


def popen(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert "Aborted!" not in result.stderr


@pytest.fixture
def file_env(directus, tmp_path) -> dict[str, str]:
    return env_for(directus, tmp_path / "mirror")


@pytest.fixture
def synced_env(file_env) -> dict[str, str]:
    synced = run(["sync", "--all"], file_env)
    assert synced.returncode == EXIT_OK, synced.stderr
    return file_env


def json_of(args: list[str], env: dict[str, str]) -> Any:
    result = run([*args, "--json"], env)
    assert result.returncode == EXIT_OK, result.stderr
    return json.loads(result.stdout)


# -- 1. Waiting that is bounded and visible ------------------------------------------------


def test_a_frozen_directus_is_waited_for_within_bounds_and_visibly(own_directus, tmp_path):
    env = env_for(own_directus, tmp_path / "mirror", STORYBENCH_PROMPTS_FALLBACK_AFTER="1")
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    with own_directus.paused():  # a cold start: connections accepted, nothing answered
        checked = run(["check", "--timeout", "2"], env, timeout=60)
        assert checked.returncode == EXIT_FAILURE
        no_traceback(checked)
        lines = checked.stdout.splitlines()
        assert lines[0].startswith("FAIL directus")
        assert "did not answer within 2 s (waited 2." in lines[0]
        assert "FAIL schema (prompts)          skipped: Directus did not answer within 2 s" in lines
        assert any(line.startswith("ok   mirror (prompts)") for line in lines)
        # Every report line on stdout: stderr holds only the command's error.
        assert "FAIL" not in checked.stderr
        assert checked.stderr.startswith("error: check: ")

        report = json.loads(run(["check", "--timeout", "2", "--json"], env, timeout=60).stdout)
        assert report["ok"] is False
        assert report["directus"]["answered"] is False
        assert report["status"]["state"] == "interrupted"
        assert report["status"]["last_error_kind"] == "DirectusTimeoutError"
        assert report["counters"]["origin_requests"] >= 1
        first = report["checks"][0]
        assert first["name"] == "directus"
        assert first["seconds"] >= 2

        # versions: the mirror's side after fallback_after, Directus marked as not answering.
        listed = run(["versions"], env, timeout=60)
        assert listed.returncode == EXIT_FAILURE
        assert "not compared" in listed.stdout
        assert "warning: Directus gave no listing" in listed.stderr
        rows = json.loads(run(["versions", "--json"], env, timeout=60).stdout)
        assert [(r["version"], r["state"]) for r in rows] == [
            (1, "unverified"),
            (2, "unverified"),
            (3, "unverified"),
        ]
        assert all(len(r["mirror_hash"]) == 16 for r in rows)

        # get through the cache: the mirror's copy after fallback_after, and one warning.
        hedged = run(["get", "2"], env, timeout=60)
        assert hedged.returncode == EXIT_OK, hedged.stderr
        assert "Prompt set v2" in hedged.stdout
        assert hedged.stderr.strip().splitlines() == [
            line for line in hedged.stderr.strip().splitlines() if line.startswith("warning: ")
        ]
        assert len(hedged.stderr.strip().splitlines()) == 1
        assert f"Directus at {env['DIRECTUS_URL']} did not answer within 1 s" in hedged.stderr
        strict = run(["get", "2", "--strict"], env, timeout=60)
        assert strict.returncode == EXIT_NOT_FRESH
        assert strict.stdout == ""
        assert "error: --strict" in strict.stderr

        # The commands that keep the long read timeout say why nothing happens.
        slow = {"STORYBENCH_PROMPTS_DIRECTUS_READ_TIMEOUT": "3"}
        direct = run(["get", "2", "--source", "directus"], env | slow, timeout=60)
        assert direct.returncode == EXIT_FAILURE
        assert "waiting for Directus... 1 s" in direct.stderr
        assert direct.stdout == ""
        synced = run(["sync", "--version", "2"], env | slow, timeout=60)
        assert "waiting for Directus..." in synced.stderr
        assert synced.returncode == EXIT_FAILURE
        # On a terminal: one live line, rewritten each second.
        code, drawn = on_a_terminal(["get", "2", "--source", "directus"], env | slow)
        assert code == EXIT_FAILURE
        assert b"\r\x1b[Kwaiting for Directus... 1 s" in drawn
        assert b"\r\x1b[Kwaiting for Directus... 2 s" in drawn

        # Ctrl-C: 130, one line, no traceback, no "Aborted!".
        process = popen(["sync", "--all"], env)
        time.sleep(2.5)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
        assert process.returncode == EXIT_INTERRUPTED
        assert "Traceback" not in err
        assert "Aborted!" not in err
        assert err.strip().splitlines()[-1] == "interrupted"
    strict = run(["get", "2", "--strict"], env)
    assert strict.returncode == EXIT_OK, strict.stderr
    assert strict.stderr == ""


def test_a_killed_directus_shows_the_mirror_and_fails_clearly(own_directus, tmp_path):
    env = env_for(own_directus, tmp_path / "mirror")
    assert run(["warm"], env).returncode == EXIT_OK
    own_directus.kill()
    served = run(["get", "latest", "--json"], env)
    assert served.returncode == EXIT_OK
    assert json.loads(served.stdout)["provenance"]["origin_error"] == "DirectusConnectionError"
    assert served.stderr.strip().splitlines() == [
        served.stderr.strip().splitlines()[0]
    ]  # exactly one line
    assert served.stderr.startswith(
        f"warning: Directus at {env['DIRECTUS_URL']} failed (DirectusConnectionError); "
    )
    assert "served the mirror's copy of prompt set v3" in served.stderr
    strict = run(["get", "latest", "--strict"], env)
    assert strict.returncode == EXIT_NOT_FRESH
    assert strict.stdout == ""
    listed = run(["versions", "--json"], env)
    assert listed.returncode == EXIT_FAILURE
    assert {r["state"] for r in json.loads(listed.stdout)} == {"unverified"}
    checked = run(["check"], env)
    assert checked.returncode == EXIT_FAILURE
    assert checked.stdout.startswith("FAIL directus")
    assert "skipped: the directus check failed" in checked.stdout


# -- 2. Misconfiguration fails loudly ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "localhost:{port}",
            "DIRECTUS_URL must start with http:// or https://, e.g. http://localhost:{port}",
        ),
        (
            "{url}/admin",
            "DIRECTUS_URL must be the base URL of Directus, without /admin: e.g. {url}",
        ),
        (
            "{url}/items",
            "DIRECTUS_URL must be the base URL of Directus, without /items: e.g. {url}",
        ),
        (
            "{url}/items/prompt_set_versions",
            "DIRECTUS_URL must be the base URL of Directus, without /items: e.g. {url}",
        ),
        ("ftp://127.0.0.1:{port}", "DIRECTUS_URL must start with http:// or https://, not ftp://"),
        ("", "DIRECTUS_URL is not set"),
    ],
)
def test_a_wrong_directus_url_is_a_setting_error_even_when_the_mirror_holds_the_set(
    synced_env, directus, url, message
):
    env = synced_env | {"DIRECTUS_URL": url.format(url=directus.url, port=directus.port)}
    expected = message.format(url=directus.url, port=directus.port)
    for args in (["get", "2"], ["check"], ["sync"], ["versions"], ["watch"]):
        result = run(args, env)
        assert result.returncode == EXIT_USAGE, (args, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(f"error: {expected}"), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    # The mirror alone needs no Directus.
    assert run(["get", "2", "--source", "mirror"], env).returncode == EXIT_OK


def test_a_missing_token_names_the_variable_in_the_cli_s_words(synced_env):
    result = run(["get", "2"], synced_env | {"DIRECTUS_TOKEN": ""})
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("error: DIRECTUS_TOKEN is not set")
    assert "token=" not in result.stderr


def test_a_rejected_token_is_a_setting_error_not_an_outage(synced_env):
    env = synced_env | {"DIRECTUS_TOKEN": "not-the-token"}
    for args in (["get", "2"], ["get", "2", "--json"], ["versions"], ["sync"], ["warm"]):
        result = run(args, env)
        assert result.returncode == EXIT_USAGE, (args, result.stdout, result.stderr)
        assert result.stdout == ""  # the mirror's copy does not hide it
        assert "DIRECTUS_TOKEN" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    checked = run(["check"], env)
    assert checked.returncode == EXIT_USAGE
    assert checked.stdout.startswith("FAIL directus")
    assert "DIRECTUS_TOKEN" in checked.stderr


def test_watch_stops_on_a_rejected_token(synced_env):
    result = run(["watch", "--interval", "1"], synced_env | {"DIRECTUS_TOKEN": "nope"}, timeout=60)
    assert result.returncode == EXIT_USAGE
    assert "DIRECTUS_TOKEN" in result.stderr
    no_traceback(result)


def _revoke_readonly_token(server: Any) -> None:
    with server.admin() as admin:
        user = admin.get(
            "/users", params={"filter[email][_eq]": READONLY_EMAIL, "fields": "id"}
        ).json()["data"][0]
        admin.patch(f"/users/{user['id']}", json={"token": "revoked-token"}).raise_for_status()


@pytest.fixture
def html_server() -> Iterator[str]:
    """Something that is not Directus: every path answers 200 with an HTML page."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _refused_as_misconfigured(env: dict[str, str], setting: str) -> None:
    for args in (["get", "2"], ["versions"], ["check"]):
        result = run(args, env)
        assert result.returncode == EXIT_USAGE, (args, result.stdout, result.stderr)
        assert setting in result.stderr
        assert "Prompt set v2" not in result.stdout


def test_an_answer_that_is_not_directus_s_is_a_setting_error(synced_env, html_server):
    _refused_as_misconfigured(synced_env | {"DIRECTUS_URL": html_server}, "DIRECTUS_URL")


def test_https_against_a_plain_http_directus_is_a_setting_error(synced_env, directus):
    url = directus.url.replace("http://", "https://")
    _refused_as_misconfigured(synced_env | {"DIRECTUS_URL": url}, "DIRECTUS_URL")


def test_a_path_directus_does_not_serve_is_a_setting_error(synced_env, directus):
    _refused_as_misconfigured(synced_env | {"DIRECTUS_URL": f"{directus.url}/cms"}, "DIRECTUS_URL")
    # And the mirror is left as it was: nothing was withdrawn on a 404 from the wrong path.
    assert run(["get", "2", "--source", "mirror"], synced_env).returncode == EXIT_OK


# -- 3. Content errors name the things; a refused version fails check and versions ----------


def test_a_bad_published_version_fails_check_and_versions_naming_the_prompt(own_directus, tmp_path):
    env = env_for(own_directus, tmp_path / "mirror")
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    with own_directus.admin() as admin:
        prompt = admin.get(
            "/items/prompts",
            params={"filter[text][_contains]": "(v2)", "limit": "1", "fields": "id,name"},
        ).json()["data"][0]
    own_directus.update_item("prompts", prompt["id"], {"text": "   "})
    named = f'prompt "{prompt["name"]}" (id {prompt["id"]}) > text: empty'

    checked = run(["check"], env)
    assert checked.returncode == EXIT_FAILURE
    content = next(line for line in checked.stdout.splitlines() if "content (prompts)" in line)
    assert content.startswith("FAIL")
    assert "published prompt set v2 is refused: v2 > sequence " in content
    assert named in content
    assert "content (prompts)" in checked.stderr

    listed = run(["versions"], env)
    assert listed.returncode == EXIT_FAILURE
    assert "REFUSED" in listed.stdout
    rows = json.loads(run(["versions", "--json"], env).stdout)
    refused = next(r for r in rows if r["version"] == 2)
    assert refused["state"] == "refused"
    assert named in refused["error"]

    result = run(["sync", "--version", "2", "--json"], env)
    assert result.returncode == EXIT_FAILURE
    outcome = json.loads(result.stdout)["kinds"][0]["results"][0]
    assert outcome["outcome"] == "refused"
    assert outcome["problems"][0]["path"].endswith(
        f'prompt "{prompt["name"]}" (id {prompt["id"]}) > text'
    )


def test_withdrawn_versions_are_listed_and_a_revoked_token_stops_watch(own_directus, tmp_path):
    env = env_for(own_directus, tmp_path / "mirror")
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    with own_directus.admin() as admin:
        v1 = admin.get(
            "/items/prompt_set_versions",
            params={"filter[version_number][_eq]": "1", "fields": "id"},
        ).json()["data"][0]
    own_directus.update_item("prompt_set_versions", v1["id"], {"status": "archived"})
    synced = run(["sync", "--all", "--kind", "prompts"], env)
    assert "prompts v1: withdrawn" in synced.stdout
    rows = json.loads(run(["versions", "--json"], env).stdout)
    assert [(r["version"], r["state"]) for r in rows] == [
        (1, "withdrawn"),
        (2, "same"),
        (3, "same"),
    ]
    assert len(rows[0]["mirror_hash"]) == 16
    table = run(["versions"], env | {"COLUMNS": "160"})
    assert table.returncode == EXIT_OK  # a withdrawn version needs nothing done
    assert "withdrawn (kept as a record)" in table.stdout

    # A token accepted at start and revoked while watching stops it with exit 1.
    watching = popen(["watch", "--interval", "1", "--kind", "prompts", "--json"], env)
    try:
        assert watching.stdout is not None
        first = json.loads(watching.stdout.readline())
        assert first["event"] == "watching"
        time.sleep(3)  # the first reconcile, with the token still valid
        _revoke_readonly_token(own_directus)
        out, err = watching.communicate(timeout=60)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()
    assert watching.returncode == EXIT_FAILURE, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "stopped"
    assert "DIRECTUS_TOKEN" in err
    assert "Traceback" not in err


# -- 4. One CLI convention -----------------------------------------------------------------


def test_every_command_speaks_json(synced_env, tmp_path):
    assert json_of(["get", "2"], synced_env)["version"] == 2
    assert {r["state"] for r in json_of(["versions"], synced_env)} == {"same"}
    assert json_of(["check"], synced_env)["ok"] is True
    assert json_of(["config"], synced_env)["directus_token"] == "***"
    sync = json_of(["sync", "--all"], synced_env)
    assert [k["counts"] for k in sync["kinds"]] == [{"unchanged": 3}, {"unchanged": 3}]
    warm = json_of(["warm"], synced_env)
    assert [(k["kind"], k["held"]) for k in warm["kinds"]] == [("prompts", 3), ("evaluations", 3)]
    assert json_of(["sync-prompts", "--list-versions"], synced_env)[0]["version"] == 1
    assert json_of(["sync-prompts", "--test-connection"], synced_env)["ok"] is True
    lockfile = tmp_path / "run.lock"
    locked = json_of(["lock", "-o", str(lockfile)], synced_env)
    assert [(e["kind"], e["version"]) for e in locked["locked"]] == [
        ("prompts", 3),
        ("evaluations", 3),
    ]
    verified = json_of(["verify", str(lockfile)], synced_env)
    assert verified["ok"] is True
    assert [e["state"] for e in verified["sets"]] == ["ok", "ok"]
    assert [e["config_hash"] for e in verified["sets"]] == [
        e["config_hash"] for e in locked["locked"]
    ]
    exported = json_of(
        ["export", "-o", str(tmp_path / "snapshot"), "--lock", str(lockfile)], synced_env
    )
    assert (
        exported["manifest"]["kinds"]["prompts"][0]["config_hash"]
        == (locked["locked"][0]["config_hash"])
    )
    # watch: one JSON object per line.
    fresh = synced_env | {"STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "fresh")}
    watching = popen(["watch", "--json", "--kind", "prompts"], fresh)
    try:
        assert watching.stdout is not None
        events = [json.loads(watching.stdout.readline()) for _ in range(4)]
        watching.send_signal(signal.SIGTERM)
        rest, _err = watching.communicate(timeout=30)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()
    assert watching.returncode == EXIT_OK
    assert events[0]["event"] == "watching"
    assert [(e["event"], e["version"]) for e in events[1:]] == [("new", 1), ("new", 2), ("new", 3)]
    assert all(len(e["config_hash"]) == 16 for e in events[1:])
    tail = [json.loads(line) for line in rest.splitlines()]
    assert [e["event"] for e in tail][-2:] == ["stopping", "stopped"]
    # Ctrl-C stops it the same way, with the shell's code for an interrupt.
    again = synced_env | {"STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "again")}
    interrupted = popen(["watch", "--json", "--kind", "prompts"], again)
    try:
        assert interrupted.stdout is not None
        started = [json.loads(interrupted.stdout.readline())["event"] for _ in range(2)]
        assert started == ["watching", "new"]  # running: its signal handler is in place
        interrupted.send_signal(signal.SIGINT)
        rest, err = interrupted.communicate(timeout=30)
    finally:
        if interrupted.poll() is None:
            interrupted.kill()
            interrupted.wait()
    assert interrupted.returncode == EXIT_INTERRUPTED
    assert json.loads(rest.splitlines()[-1])["event"] == "stopped"
    assert "Traceback" not in err


def test_hashes_take_a_unique_prefix_as_git_does(synced_env):
    full = json_of(["get", "2"], synced_env)["config_hash"]
    short = run(["get", "--hash", full[:8], "--json"], synced_env)
    assert short.returncode == EXIT_OK, short.stderr
    assert json.loads(short.stdout)["config_hash"] == full
    assert json_of(["get", "--hash", full[:6].upper()], synced_env)["config_hash"] == full

    malformed = run(["get", "--hash", "zzzz"], synced_env)
    assert malformed.returncode == EXIT_USAGE
    assert "16 hex characters" in malformed.stderr
    too_short = run(["get", "--hash", full[:5]], synced_env)
    assert too_short.returncode == EXIT_USAGE
    assert "at least 6" in too_short.stderr

    every = {json_of(["get", str(v)], synced_env)["config_hash"] for v in (1, 2, 3)}
    unknown = next(
        p for p in (f"{i:06x}" for i in range(1 << 24)) if not any(h.startswith(p) for h in every)
    )
    missing = run(["get", "--hash", unknown], synced_env)
    assert missing.returncode == EXIT_FAILURE
    assert unknown in missing.stderr
    assert missing.stdout == ""
    criteria = json_of(["get", "2", "--kind", "evaluations"], synced_env)["config_hash"]
    other_kind = run(["get", "--hash", criteria[:8]], synced_env)
    assert other_kind.returncode == EXIT_FAILURE
    assert "add --kind evaluations" in other_kind.stderr
    assert (
        json_of(["get", "--hash", criteria[:8], "--kind", "evaluations"], synced_env)["config_hash"]
        == criteria
    )

    # Two records sharing a prefix: ambiguous, both listed, a usage error.
    records = Path(synced_env["STORYBENCH_PROMPTS_MIRROR_DIR"]) / "by-hash"
    twin = full[:6] + ("0" * 10 if full[6:] != "0" * 10 else "1" * 10)
    (records / f"prompt-set-{twin}.json").write_bytes(
        (records / f"prompt-set-{full}.json").read_bytes()
    )
    ambiguous = run(["get", "--hash", full[:6]], synced_env)
    assert ambiguous.returncode == EXIT_USAGE
    assert full in ambiguous.stderr
    assert twin in ambiguous.stderr
    assert "give more characters" in ambiguous.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "--interval", "nan"],
        ["watch", "--interval", "inf"],
        ["watch", "--interval", "-5"],
        ["--fallback-after", "nan", "get", "1"],
        ["--fallback-after", "inf", "get", "1"],
        ["--fallback-after", "-1", "get", "1"],
        ["check", "--timeout", "nan"],
        ["check", "--timeout", "0"],
        ["get"],
        ["get", "1", "--hash", "abcdef"],
        ["get", "--hash", "abcdef", "--strict"],
    ],
)
def test_usage_errors_exit_2_without_a_traceback(file_env, args):
    result = run(args, file_env)
    assert result.returncode == EXIT_USAGE, result.stderr
    no_traceback(result)
    assert result.stdout == ""


def test_get_without_an_argument_says_what_to_give(file_env):
    result = run(["get"], file_env)
    assert "say which set: a VERSION (a number or `latest`), --hash HASH or --lock FILE" in (
        result.stderr
    )


def test_tables_keep_whole_hashes_in_80_columns_and_check_prints_no_repr(synced_env):
    table = run(["versions", "--kind", "all"], synced_env | {"COLUMNS": "80"})
    assert table.returncode == EXIT_OK
    for version in (1, 2, 3):
        for kind in ("prompts", "evaluations"):
            full = json_of(["get", str(version), "--kind", kind], synced_env)["config_hash"]
            assert full in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    checked = run(["check"], synced_env)
    assert checked.returncode == EXIT_OK, checked.stdout + checked.stderr
    assert f"file mirror {synced_env['STORYBENCH_PROMPTS_MIRROR_DIR']} is reachable" in (
        checked.stdout
    )
    assert "FileMirror(" not in checked.stdout
    assert checked.stderr == ""


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run the CLI with its stderr on a terminal (a pty); its exit code and what it drew."""
    master, slave = pty.openpty()
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_"))
    }
    full_env |= env | {"COLUMNS": "100"}
    process = subprocess.Popen(
        [sys.executable, "-m", "storybench_prompts", *args],
        env=full_env,
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(timeout=60), seen


def test_the_progress_bar_has_its_total(file_env):
    code, seen = on_a_terminal(["sync", "--all"], file_env)
    assert code == EXIT_OK
    assert b"3/3" in seen
    assert b"syncing prompt sets" in seen


def test_a_misconfiguration_names_the_setting_the_error_names():
    from storybench_prompts import DirectusAuthenticationError, DirectusConfigurationError
    from storybench_prompts.cli.app import hint_for, setting_error, setting_of

    wrong_url = DirectusConfigurationError("an HTML page answered")
    wrong_url.setting = "DIRECTUS_URL"  # type: ignore[attr-defined]
    assert setting_error(wrong_url) is wrong_url
    assert setting_of(wrong_url) == "DIRECTUS_URL"
    assert hint_for(wrong_url) == "check DIRECTUS_URL"
    assert setting_of(DirectusAuthenticationError("401")) == "DIRECTUS_TOKEN"


def test_log_lines_name_public_loggers():
    assert public_logger_name("storybench_prompts._blocking") == "storybench_prompts"
    assert public_logger_name("storybench_prompts.outage") == "storybench_prompts.outage"
    assert public_logger_name("httpx") == "httpx"


# -- 6. get --lock -------------------------------------------------------------------------


def write_lock(path: Path, prompts: dict[str, Any], evaluations: dict[str, Any] | None) -> Path:
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "prompt_set": {
                    "version": prompts["version"],
                    "config_hash": prompts["config_hash"],
                },
                "evaluation_set": (
                    {"version": evaluations["version"], "config_hash": evaluations["config_hash"]}
                    if evaluations
                    else None
                ),
                "directus_url": None,
                "created_at": "2026-01-01T00:00:00+00:00",
                "tool_version": "0",
            }
        )
    )
    return path


def test_get_lock_prints_exactly_the_locked_sets(own_directus, tmp_path):
    env = env_for(own_directus, tmp_path / "mirror")
    assert run(["sync", "--all"], env).returncode == EXIT_OK
    prompts = json_of(["get", "2"], env)
    evaluations = json_of(["get", "2", "--kind", "evaluations"], env)
    lock = write_lock(tmp_path / "run.lock", prompts, evaluations)

    locked = json_of(["get", "--lock", str(lock)], env)
    assert locked["config_hash"] == prompts["config_hash"]
    assert locked["sequences"] == prompts["sequences"]
    assert (
        json_of(["get", "--lock", str(lock), "--kind", "evaluations"], env)["criteria"]
        == (evaluations["criteria"])
    )
    readable = run(["get", "--lock", str(lock)], env)
    assert readable.returncode == EXIT_OK
    assert f"config_hash {prompts['config_hash']}" in readable.stdout

    # A mirror that never held it: Directus's v2, because it still holds that hash.
    empty = env | {"STORYBENCH_PROMPTS_MIRROR_DIR": str(tmp_path / "empty")}
    from_directus = json_of(["get", "--lock", str(lock)], empty)
    assert from_directus["config_hash"] == prompts["config_hash"]
    assert from_directus["provenance"]["source"] == "directus"

    # Edited in Directus: the mirror's record still gives the locked content...
    with own_directus.admin() as admin:
        row = admin.get(
            "/items/prompts",
            params={"filter[text][_contains]": "(v2)", "limit": "1", "fields": "id,text"},
        ).json()["data"][0]
    own_directus.update_item("prompts", row["id"], {"text": row["text"] + " Edited."})
    assert json_of(["get", "--lock", str(lock)], env)["sequences"] == prompts["sequences"]
    # ...and where nothing holds it, nothing else is printed: exit 1 naming the hash.
    gone = run(["get", "--lock", str(lock)], empty)
    assert gone.returncode == EXIT_FAILURE
    assert gone.stdout == ""
    assert prompts["config_hash"] in gone.stderr

    malformed = tmp_path / "bad.lock"
    malformed.write_text('{"format": 1, "prompt_set": {"version": 2, "config_hash": "zz"}}')
    bad = run(["get", "--lock", str(malformed)], env)
    assert bad.returncode == EXIT_USAGE
    assert str(malformed) in bad.stderr
    assert bad.stdout == ""
    absent = run(["get", "--lock", str(tmp_path / "nowhere.lock")], env)
    assert absent.returncode == EXIT_USAGE
    assert "nowhere.lock" in absent.stderr

    prompts_only = write_lock(tmp_path / "prompts-only.lock", prompts, None)
    no_evaluations = run(["get", "--lock", str(prompts_only), "--kind", "evaluations"], env)
    assert no_evaluations.returncode == EXIT_FAILURE
    assert "names no evaluation set" in no_evaluations.stderr


def test_exit_codes_are_documented_as_they_are():
    text = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    for code in (EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL, EXIT_NOT_FRESH, EXIT_INTERRUPTED):
        assert f"| {code} |" in text
