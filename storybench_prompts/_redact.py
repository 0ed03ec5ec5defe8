"""Masking secrets in what we print: the MongoDB URI's password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_uri", "uri_password"]


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for logs, reprs and errors)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable MongoDB URI>"
    if parts.password is None and "@" not in parts.netloc:
        return uri
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}" if user else f"***@{hosts}"))


def uri_password(uri: str) -> str | None:
    """The password in a URI, if any (so it can be masked wherever it appears)."""
    try:
        return urlsplit(uri).password
    except ValueError:
        return None
