import pytest

from storybench_prompts import (
    PROMPT_SETS,
    CachingRepository,
    ConfigurationError,
    FileMirror,
    MongoMirror,
    Settings,
    build_mirror,
    build_repository,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for key in list(os.environ):
        if key.startswith(("DIRECTUS_", "MONGODB_", "STORYBENCH_PROMPTS_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "DIRECTUS_URL=https://from-dotenv.example.org\nSTORYBENCH_PROMPTS_FALLBACK_AFTER=0.75\n"
    )
    monkeypatch.setenv("DIRECTUS_TOKEN", "tok")
    monkeypatch.setenv("STORYBENCH_PROMPTS_PINNED_TTL", "10")
    settings = Settings()
    assert settings.directus_url == "https://from-dotenv.example.org"
    assert settings.fallback_after == 0.75
    assert settings.cache_policy().pinned_ttl == 10
    assert settings.cache_policy().fallback_after == 0.75
    assert Settings(fallback_after=3).fallback_after == 3


def test_describe_masks_secrets(monkeypatch):
    monkeypatch.setenv("DIRECTUS_TOKEN", "very-secret-token")
    monkeypatch.setenv("MONGODB_URI", "mongodb://me:hunter2@db.example.org/")
    text = repr(Settings()) + str(Settings().describe())
    assert "very-secret-token" not in text
    assert "hunter2" not in text
    assert "me:***@db.example.org" in text


def test_mirror_choice_follows_mongodb_uri(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYBENCH_PROMPTS_MIRROR_DIR", str(tmp_path / "m"))
    mirror = build_mirror(None, PROMPT_SETS)
    assert isinstance(mirror, FileMirror)
    assert mirror.directory == tmp_path / "m"
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/")
    monkeypatch.setenv("STORYBENCH_PROMPTS_MONGODB_DATABASE", "other")
    mongo = build_mirror(None, PROMPT_SETS)
    assert isinstance(mongo, MongoMirror)
    assert mongo._db.name == "other"


async def test_build_repository_needs_directus(monkeypatch):
    with pytest.raises(ConfigurationError, match="DIRECTUS_URL"):
        build_repository()
    monkeypatch.setenv("DIRECTUS_URL", "https://cms.example.org")
    monkeypatch.setenv("DIRECTUS_TOKEN", "t")
    repo = build_repository()
    assert isinstance(repo, CachingRepository)
    async with repo:
        assert repo.status().state.value == "initializing"


def test_invalid_values_are_refused(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("STORYBENCH_PROMPTS_FALLBACK_AFTER", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_the_default_file_mirror_is_one_folder_per_directus(monkeypatch, tmp_path):
    monkeypatch.delenv("STORYBENCH_PROMPTS_MIRROR_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    one = Settings(directus_url="https://cms.example.org", _env_file=None).resolved_mirror_dir()
    again = Settings(directus_url="https://cms.example.org/", _env_file=None).resolved_mirror_dir()
    other = Settings(directus_url="http://127.0.0.1:60981", _env_file=None).resolved_mirror_dir()
    port = Settings(directus_url="http://127.0.0.1:60982", _env_file=None).resolved_mirror_dir()
    assert one == again
    assert len({one, other, port}) == 3
    assert one.parent == other.parent
    assert other.name.startswith("127.0.0.1-60981-")
    # An explicit folder is used as it is, whatever the URL.
    explicit = Settings(
        directus_url="https://cms.example.org", mirror_dir=tmp_path / "m", _env_file=None
    )
    assert explicit.resolved_mirror_dir() == tmp_path / "m"


@pytest.mark.anyio
async def test_a_mirror_of_another_directus_is_never_served(monkeypatch, tmp_path):
    from storybench_prompts import FileMirror
    from tests.factories import flat_set

    monkeypatch.delenv("STORYBENCH_PROMPTS_MIRROR_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    elsewhere = Settings(directus_url="http://127.0.0.1:60981", _env_file=None)
    await FileMirror(elsewhere.resolved_mirror_dir(), kind=PROMPT_SETS).save(flat_set(4))
    dead = Settings(directus_url="http://127.0.0.1:1", _env_file=None)
    mirror = FileMirror(dead.resolved_mirror_dir(), kind=PROMPT_SETS)
    assert await mirror.versions() == []


def test_a_password_in_directus_url_is_refused_and_never_shown():
    from storybench_prompts import PROMPT_SETS, ConfigurationError, DirectusSource, Settings
    from storybench_prompts.mirrors.file import mirror_key

    url = "http://user:hunter2pw@127.0.0.1:8055"
    settings = Settings(directus_url=url, directus_token="t", _env_file=None)
    assert "hunter2pw" not in repr(settings)
    assert "hunter2pw" not in str(settings.describe())
    with pytest.raises(ConfigurationError, match="must not hold a user name or password") as info:
        DirectusSource(url, "t", kind=PROMPT_SETS)
    assert "hunter2pw" not in str(info.value)
    # A URL that does not parse still keys a mirror folder of its own, without an error.
    assert mirror_key("http://127.0.0.1:99999") != mirror_key("http://[::1")


@pytest.mark.parametrize("value", ["inf", "1e300", "nan"])
def test_a_mongodb_timeout_out_of_range_names_its_setting(monkeypatch, value):
    from pydantic import ValidationError

    from storybench_prompts import PROMPT_SETS, ConfigurationError, MongoMirror, Settings

    monkeypatch.setenv("STORYBENCH_PROMPTS_MONGODB_SOCKET_TIMEOUT", value)
    with pytest.raises(ValidationError, match="STORYBENCH_PROMPTS_MONGODB_SOCKET_TIMEOUT"):
        Settings(_env_file=None)
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        MongoMirror("mongodb://127.0.0.1:1", kind=PROMPT_SETS, socket_timeout=float(value))


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://bob:Hunter#Secret99@127.0.0.1:1/",
        "mongodb://bob:a?Secret99@127.0.0.1:1/db?x=1",
        "mongodb://bob:a/Secret99@127.0.0.1:1/db",
    ],
)
def test_a_mongodb_password_with_url_delimiters_is_masked(uri):
    from storybench_prompts import PROMPT_SETS, MongoMirror
    from storybench_prompts._redact import redact_uri

    assert "Secret99" not in redact_uri(uri)
    if "#" in uri:  # PyMongo takes this one unescaped (it refuses the others)
        assert "Secret99" not in repr(MongoMirror(uri, kind=PROMPT_SETS))


@pytest.mark.parametrize(
    ("options", "secret"),
    [
        ("tlsCertificateKeyFilePassword=Secret99", "Secret99"),
        ("TLSCertificateKeyFilePassword=a%26Secret99&x=1", "a&Secret99"),
        ("authMechanismProperties=AWS_SESSION_TOKEN:Secret99", "Secret99"),
        ("tlsCertificateKeyFilePassword=abc#Secret99&tls=true", "abc#Secret99"),
        ("authMechanismProperties=AWS_SESSION_TOKEN:t#Secret99", "t#Secret99"),
    ],
)
def test_secrets_in_mongodb_uri_options_are_masked(options, secret, monkeypatch):
    from storybench_prompts._redact import redact_uri
    from storybench_prompts.cli.app import State

    uri = f"mongodb://127.0.0.1:1/db?{options}"
    assert "Secret99" not in redact_uri(uri)
    monkeypatch.setenv("MONGODB_URI", uri)
    state = State(Settings(_env_file=None), verbose=False, quiet=True)
    for shown in (options, secret):  # as in the URI, and as a driver would print it
        assert "Secret99" not in state.redact(f"failed: {shown} was refused")


def test_a_dotenv_file_in_another_encoding_still_gives_our_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("DIRECTUS_URL", raising=False)
    env = tmp_path / ".env"
    env.write_bytes(b"OTHER_TOOL_NOTE=caf\xe9\nDIRECTUS_URL=https://cms.example.org\n")
    assert Settings(_env_file=env).directus_url == "https://cms.example.org"


def test_a_dotenv_file_that_cannot_be_read_is_a_configuration_error(tmp_path):
    env = tmp_path / ".env"
    env.symlink_to(env)  # a loop: unreadable for every user, root too
    with pytest.raises(ConfigurationError, match=r"dotenv file .*\.env cannot be read"):
        Settings(_env_file=env)


def test_a_dotenv_file_with_a_byte_order_mark_keeps_its_first_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("DIRECTUS_URL", raising=False)
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfDIRECTUS_URL=https://cms.example.org\n")  # as Notepad saves
    assert Settings(_env_file=env).directus_url == "https://cms.example.org"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STORYBENCH_PROMPTS_MIRROR_DIR", "/tmp/a\x00b"),
        ("STORYBENCH_PROMPTS_LOCK", "run\x00.lock"),
    ],
)
def test_a_path_holding_a_nul_names_its_variable(variable, value, tmp_path):
    from pydantic import ValidationError

    env = tmp_path / ".env"
    env.write_bytes(f"{variable}={value}\n".encode())
    with pytest.raises(ValidationError, match=variable):
        Settings(_env_file=env)


@pytest.mark.parametrize(
    "url",
    [
        "https://cms.example\u00ad.org",  # a soft hyphen
        "https://\uff43ms.example.org",  # a full-width letter
        "https://xn--zz.example.org",  # an A-label that does not decode
        "https://cms.example.org/x\udcff",  # a lone surrogate
    ],
)
def test_a_directus_url_whose_host_httpx_cannot_encode_is_a_configuration_error(url):
    from storybench_prompts import PROMPT_SETS, DirectusSource

    with pytest.raises(ConfigurationError, match="DIRECTUS_URL does not hold a valid host"):
        DirectusSource(url, "token", kind=PROMPT_SETS)


def test_an_international_host_name_is_a_directus_url():
    from storybench_prompts import PROMPT_SETS, DirectusSource

    assert DirectusSource("https://bücher.example", "t", kind=PROMPT_SETS).url == (
        "https://bücher.example"
    )


def test_an_env_file_name_too_long_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "storybench_prompts", "--env-file", "a" * 300, "config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--env-file" in done.stderr
    assert "Traceback" not in done.stderr
