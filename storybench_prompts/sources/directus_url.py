"""What a Directus base URL must look like: checked before anything quotes or requests it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx

from .._exceptions import ConfigurationError

__all__ = ["checked_url", "is_loopback"]

# A base URL ending in one of these is a page or endpoint of Directus, not Directus itself.
_NOT_A_BASE = ("/admin", "/items", "/server", "/graphql", "/auth")


def is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(url: str) -> str:
    """``url`` as a Directus base URL, or :class:`ConfigurationError` saying what is wrong."""
    url = url.strip()
    if "@" in url.split("://", 1)[-1].split("/", 1)[0]:  # before any message quotes it
        raise ConfigurationError(
            "DIRECTUS_URL must not hold a user name or password: give the base URL alone and "
            "the static token in DIRECTUS_TOKEN"
        )
    if any(ord(c) < 0x21 or 0x7F <= ord(c) < 0xA0 for c in url):
        raise ConfigurationError("DIRECTUS_URL holds a space or a control character")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6 address
        raise ConfigurationError(f"DIRECTUS_URL does not parse as a URL ({exc})") from None
    if parts.scheme not in {"http", "https"}:
        example = f"http://{url}" if url and "://" not in url else "https://cms.example.org"
        raise ConfigurationError(
            f"DIRECTUS_URL must start with http:// or https:// (e.g. {example})"
        )
    if not parts.hostname:
        raise ConfigurationError("DIRECTUS_URL has no host (e.g. https://cms.example.org)")
    try:
        url.encode("utf-8")  # a lone surrogate
        httpx.URL(url)  # httpx's own check of the host (IDNA)
        for label in parts.hostname.split("."):
            if label.startswith("xn--"):
                label.encode("ascii").decode("idna")  # an A-label must decode
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ConfigurationError(f"DIRECTUS_URL does not hold a valid host name ({exc})") from None
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise ConfigurationError("DIRECTUS_URL has a port out of range") from None
    path = parts.path.rstrip("/")
    if any(path == p or path.endswith(p) or f"{p}/" in path for p in _NOT_A_BASE):
        raise ConfigurationError(
            f"DIRECTUS_URL must be Directus's base URL, not one of its pages or endpoints "
            f"({parts.path!r}); drop the path after the server's address"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError("DIRECTUS_URL must not carry a query or a fragment")
    return url.rstrip("/")
