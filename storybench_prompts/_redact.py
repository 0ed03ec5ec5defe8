"""Masking secrets in what we print: a URI's password, and the URI options that hold one."""

from __future__ import annotations

import re

__all__ = ["redact_uri", "uri_password", "uri_secrets"]

# MongoDB URI options whose value is (or holds) a secret: a key file's password, and the
# mechanism properties (AWS_SESSION_TOKEN:..., OIDC's). Matched case-insensitively, as PyMongo
# reads them; a value runs to the next option (PyMongo takes '#' as part of it).
_SECRET_OPTIONS = ("tlscertificatekeyfilepassword", "ssl_pem_passphrase", "authmechanismproperties")
_OPTION = re.compile(r"([?&;])(" + "|".join(_SECRET_OPTIONS) + r")=([^&;]*)", re.IGNORECASE)


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
    """The URI with any password, and the value of any option holding a secret, replaced by
    ``***`` (for logs, reprs and errors)."""
    uri = _OPTION.sub(lambda m: f"{m[1]}{m[2]}=***", uri)
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


def uri_secrets(uri: str) -> list[str]:
    """Every secret a URI holds (its password, the values of secret options), so each can be
    masked wherever it appears."""
    from urllib.parse import unquote

    found = [m[3] for m in _OPTION.finditer(uri) if m[3]]
    for value in list(found):  # a mechanism property's value alone (AWS_SESSION_TOKEN:...)
        found.extend(v for _, _, v in (p.partition(":") for p in value.split(",")) if v)
    password = uri_password(uri)
    if password:
        found.append(password)
    return list(dict.fromkeys([*found, *(unquote(s) for s in found)]))  # as sent, as decoded
