"""Settings from the environment (and a ``.env`` file); ``docs/configuration.md`` lists each.

Read by hand rather than with pydantic-settings (most of a mirror-only start-up): each field
names its variable, and a malformed value is reported under that variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import InitErrorDetails

from ._defaults import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DATABASE,
    DEFAULT_FALLBACK_AFTER,
    DEFAULT_FALLBACK_TTL,
    DEFAULT_LATEST_TTL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STALE,
    DEFAULT_MAXSIZE,
    DEFAULT_MIRROR_TIMEOUT,
    DEFAULT_NOT_FOUND_TTL,
    DEFAULT_PINNED_TTL,
    DEFAULT_PROBE_INITIAL,
    DEFAULT_PROBE_MAX,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRY_DEADLINE,
    DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    DEFAULT_STALE_IF_ERROR,
    DEFAULT_SYNC_CONCURRENCY,
)
from ._exceptions import ConfigurationError
from ._redact import redact_uri
from .mirrors.file import default_mirror_dir

if TYPE_CHECKING:
    from .cache.policy import CachePolicy

__all__ = ["Settings"]

PREFIX = "STORYBENCH_PROMPTS_"


def _read_dotenv(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments, blank lines and ``export`` allowed)."""
    if path is None:
        return {}
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigurationError(
            f"the dotenv file {path} cannot be read ({exc.strerror or exc})"
        ) from None
    # Another tool's .env may hold other encodings: our settings are ASCII, the rest is kept
    # as it reads.
    text = data.decode("utf-8-sig", errors="replace")  # -sig: a BOM (Notepad) is no key
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip().lower()] = value
    return values


def _renamed(
    loc: tuple[int | str, ...], names: dict[str, str], given: dict[str, Any]
) -> tuple[int | str, ...]:
    field = loc[0] if loc else None
    if isinstance(field, str) and field in names and field not in given:
        return (names[field], *loc[1:])
    return loc


def _from_environment(
    model: type[BaseModel], env_file: str | os.PathLike[str] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Field values named in the environment (first), else in the dotenv file; and for each,
    the variable it came from."""
    environ = {k.lower(): v for k, v in os.environ.items()}
    dotenv = _read_dotenv(env_file)
    found: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or name]
        for source, where in ((environ, ""), (dotenv, " (in the .env file)")):
            match = next((c for c in choices if isinstance(c, str) and c.lower() in source), None)
            if match is not None:
                found[name] = source[match.lower()]
                names[name] = f"{match.upper()}{where}"
                break
    return found, names


def _env(name: str, *, prefixed: bool = True) -> Any:
    names = [f"{PREFIX}{name}"] if prefixed else [name, f"{PREFIX}{name}"]
    return AliasChoices(*names)


class Settings(BaseModel):
    """Every setting, read from arguments, the environment, then ``.env``.

    ``Settings(field=value, ...)`` overrides what the environment says; ``_env_file`` names the
    dotenv file (``.env`` in the working directory by default; a missing file is no error).
    Environment names are matched without regard to case, as shells on some systems differ.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    def __init__(self, _env_file: str | os.PathLike[str] | None = ".env", **values: Any) -> None:
        found, names = _from_environment(type(self), _env_file)
        found.update(values)
        try:
            super().__init__(**found)
        except ValidationError as exc:
            # Name the variable a person set, not our field name.
            details: list[InitErrorDetails] = []
            for error in exc.errors():
                detail = InitErrorDetails(
                    type=error["type"],
                    loc=_renamed(error["loc"], names, values),
                    input=error["input"],
                )
                if "ctx" in error:
                    detail["ctx"] = error["ctx"]
                details.append(detail)
            raise ValidationError.from_exception_data("Settings", details) from None

    directus_url: str | None = Field(None, validation_alias=_env("DIRECTUS_URL", prefixed=False))
    directus_token: SecretStr | None = Field(
        None, validation_alias=_env("DIRECTUS_TOKEN", prefixed=False)
    )
    directus_connect_timeout: float = Field(
        DEFAULT_CONNECT_TIMEOUT, gt=0, validation_alias=_env("DIRECTUS_CONNECT_TIMEOUT")
    )
    directus_read_timeout: float = Field(
        DEFAULT_READ_TIMEOUT, gt=0, validation_alias=_env("DIRECTUS_READ_TIMEOUT")
    )
    directus_max_attempts: int = Field(
        DEFAULT_MAX_ATTEMPTS, ge=1, validation_alias=_env("DIRECTUS_MAX_ATTEMPTS")
    )
    directus_retry_deadline: float = Field(
        DEFAULT_RETRY_DEADLINE, gt=0, validation_alias=_env("DIRECTUS_RETRY_DEADLINE")
    )
    directus_max_response_bytes: int = Field(
        DEFAULT_MAX_RESPONSE_BYTES, gt=0, validation_alias=_env("DIRECTUS_MAX_RESPONSE_BYTES")
    )

    mongodb_uri: SecretStr | None = Field(
        None, validation_alias=_env("MONGODB_URI", prefixed=False)
    )
    mongodb_database: str = Field(DEFAULT_DATABASE, validation_alias=_env("MONGODB_DATABASE"))
    mongodb_server_selection_timeout: float = Field(
        DEFAULT_SERVER_SELECTION_TIMEOUT,
        gt=0,
        le=86_400,  # PyMongo takes milliseconds as an integer: a day is plenty
        validation_alias=_env("MONGODB_SERVER_SELECTION_TIMEOUT"),
    )
    mongodb_socket_timeout: float = Field(
        DEFAULT_SOCKET_TIMEOUT, gt=0, le=86_400, validation_alias=_env("MONGODB_SOCKET_TIMEOUT")
    )
    mirror_dir: Path | None = Field(None, validation_alias=_env("MIRROR_DIR"))

    pinned_ttl: float = Field(DEFAULT_PINNED_TTL, ge=0, validation_alias=_env("PINNED_TTL"))
    latest_ttl: float = Field(DEFAULT_LATEST_TTL, ge=0, validation_alias=_env("LATEST_TTL"))
    max_stale: float = Field(DEFAULT_MAX_STALE, ge=0, validation_alias=_env("MAX_STALE"))
    stale_if_error: float = Field(
        DEFAULT_STALE_IF_ERROR, ge=0, validation_alias=_env("STALE_IF_ERROR")
    )
    not_found_ttl: float = Field(
        DEFAULT_NOT_FOUND_TTL, ge=0, validation_alias=_env("NOT_FOUND_TTL")
    )
    fallback_after: float = Field(
        DEFAULT_FALLBACK_AFTER, ge=0, validation_alias=_env("FALLBACK_AFTER")
    )
    fallback_ttl: float = Field(DEFAULT_FALLBACK_TTL, ge=0, validation_alias=_env("FALLBACK_TTL"))
    mirror_timeout: float = Field(
        DEFAULT_MIRROR_TIMEOUT, gt=0, validation_alias=_env("MIRROR_TIMEOUT")
    )
    cache_maxsize: int = Field(DEFAULT_MAXSIZE, ge=1, validation_alias=_env("CACHE_MAXSIZE"))
    probe_initial: float = Field(
        DEFAULT_PROBE_INITIAL, gt=0, validation_alias=_env("PROBE_INITIAL")
    )
    probe_max: float = Field(DEFAULT_PROBE_MAX, gt=0, validation_alias=_env("PROBE_MAX"))
    realtime: Literal["auto", "on", "off"] = Field("auto", validation_alias=_env("REALTIME"))
    otel: Literal["auto", "on", "off"] = Field("auto", validation_alias=_env("OTEL"))
    """OpenTelemetry metrics and traces: ``auto`` when the API is installed (the ``otel``
    extra), ``on`` (an error without it), ``off`` (nothing of it imported)."""
    concurrency: int = Field(DEFAULT_SYNC_CONCURRENCY, ge=1, validation_alias=_env("CONCURRENCY"))
    shared_cache: bool = Field(True, validation_alias=_env("SHARED_CACHE"))
    """The drop-in ``DirectusClient``: share one cached repository per event loop (False: every
    call goes to Directus, as storybench's own client does)."""
    offline: bool = Field(False, validation_alias=_env("OFFLINE"))
    """Serve from the mirror alone (an exported snapshot, say): no Directus URL or token is
    needed, nothing connects to Directus and there is no realtime channel; what the mirror
    lacks is a clear error."""
    lock: Path | None = Field(None, validation_alias=_env("LOCK"))
    """The drop-in ``DirectusClient``: a lockfile whose sets are served as the latest
    (``fetch_prompts()``, the latest evaluation version), whatever Directus has published
    since; explicit versions are served as usual."""

    @field_validator("mirror_dir", "lock")
    @classmethod
    def _no_nul(cls, value: Path | None) -> Path | None:
        if value is not None and "\0" in str(value):
            raise ValueError("a path cannot hold a NUL character")
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The URL with any password masked (the token and the MongoDB URI are SecretStr).
        for name, value in super().__repr_args__():
            if name == "directus_url" and isinstance(value, str):
                value = redact_uri(value)
            yield name, value

    def describe(self) -> dict[str, object]:
        """Every setting with secrets masked (the MongoDB URI keeps its host, not its password)."""
        out = self.model_dump()
        out["directus_token"] = "***" if self.directus_token else None
        out["directus_url"] = redact_uri(self.directus_url) if self.directus_url else None
        out["mongodb_uri"] = (
            redact_uri(self.mongodb_uri.get_secret_value()) if self.mongodb_uri else None
        )
        out["mirror_dir"] = str(self.resolved_mirror_dir())
        out["lock"] = str(self.lock) if self.lock is not None else None
        return out

    def resolved_mirror_dir(self) -> Path:
        """``mirror_dir``, else the default folder of this Directus (keyed by its URL)."""
        if self.mirror_dir:
            return self.mirror_dir.expanduser()
        return default_mirror_dir(self.directus_url)

    def cache_policy(self) -> CachePolicy:
        from .cache.policy import CachePolicy

        return CachePolicy(
            pinned_ttl=self.pinned_ttl,
            latest_ttl=self.latest_ttl,
            max_stale=self.max_stale,
            stale_if_error=self.stale_if_error,
            not_found_ttl=self.not_found_ttl,
            fallback_after=self.fallback_after,
            fallback_ttl=self.fallback_ttl,
            mirror_timeout=self.mirror_timeout,
            maxsize=self.cache_maxsize,
            warm_concurrency=self.concurrency,
            probe_initial=self.probe_initial,
            probe_max=self.probe_max,
        )
