"""What is wrong with DIRECTUS_URL or DIRECTUS_TOKEN, as far as can be told without a request
(every command that asks Directus checks this first and exits 2 naming the setting)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._settings import Settings

__all__ = ["USERINFO_PROBLEM", "directus_settings_problem", "has_userinfo"]


def has_userinfo(url: str) -> bool:
    """Whether a URL holds a user name or password (``user:pass@host``)."""
    return "@" in url.split("://", 1)[-1].split("/", 1)[0]


USERINFO_PROBLEM = (
    "DIRECTUS_URL must not hold a user name or password: give the base URL alone and the "
    "static token in DIRECTUS_TOKEN"
)


def directus_settings_problem(settings: Settings) -> str | None:
    """What is wrong with DIRECTUS_URL or DIRECTUS_TOKEN, as far as can be told without a
    request; None when nothing is."""
    url = (settings.directus_url or "").strip()
    if not url:
        return (
            "DIRECTUS_URL is not set: give the base URL of your Directus, "
            "e.g. export DIRECTUS_URL=https://cms.example.org"
        )
    if has_userinfo(url):  # checked first: every message below may quote the URL
        return USERINFO_PROBLEM
    if "://" not in url:
        return f"DIRECTUS_URL must start with http:// or https://, e.g. http://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "DIRECTUS_URL is not a valid URL (check the host and the port)"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        rest = url.split("://", 1)[1]
        return (
            f"DIRECTUS_URL must start with http:// or https://, not {scheme}://, e.g. http://{rest}"
        )
    if not parts.hostname:
        return "DIRECTUS_URL has no host, e.g. https://cms.example.org"
    path = parts.path.rstrip("/")
    for part in ("/admin", "/items"):
        at = path.find(part + "/") if part == "/items" else -1
        if path.endswith(part) or at >= 0:
            base_path = path[: at if at >= 0 else len(path) - len(part)]
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            base = f"{scheme}://{host}{f':{port}' if port else ''}{base_path}"
            return f"DIRECTUS_URL must be the base URL of Directus, without {part}: e.g. {base}"
    token = settings.directus_token.get_secret_value() if settings.directus_token else ""
    if not token.strip():
        return (
            "DIRECTUS_TOKEN is not set: give the static token of a read-only Directus user "
            "(see docs/configuration.md)"
        )
    return None
