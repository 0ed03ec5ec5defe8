"""Masking secrets in what we print: the MongoDB URI's password."""

from __future__ import annotations

__all__ = ["redact_uri", "uri_password"]


def _userinfo(uri: str) -> tuple[str, str, str] | None:
    """``(scheme://, userinfo, rest)`` when the URI holds a user (or password), else None.

    Split by hand, not with urlsplit: a password may hold ``#``, ``?`` or ``/`` unescaped
    (PyMongo accepts them), which would end the netloc early and hide it from urlsplit. The
    last ``@`` is taken as the end of the userinfo: masking too much is safe, too little not.
    """
    head, sep, rest = uri.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo, _, hosts = rest.rpartition("@")
    return f"{head}://", userinfo, hosts


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for logs, reprs and errors)."""
    found = _userinfo(uri)
    if found is None:
        return uri
    head, userinfo, hosts = found
    user = userinfo.split(":", 1)[0] if ":" in userinfo else userinfo
    if "/" in user or "?" in user or "#" in user:
        user = ""  # not a user name after all: mask it too
    return f"{head}{user}:***@{hosts}" if user else f"{head}***@{hosts}"


def uri_password(uri: str) -> str | None:
    """The password in a URI, if any (so it can be masked wherever it appears)."""
    found = _userinfo(uri)
    if found is None or ":" not in found[1]:
        return None
    return found[1].split(":", 1)[1] or None
