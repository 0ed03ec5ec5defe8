"""The structured fields every log record of this package carries, for JSON log formatters.

Each record has ``kind``, ``version``, ``source`` and ``error_kind`` attributes (None when
they do not apply), so a formatter can rely on one schema: the package's loggers come from
:func:`get_logger`, and a call names what it knows with ``extra=fields(...)``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["fields", "get_logger"]


def fields(
    *,
    kind: str | None = None,
    version: int | None = None,
    source: str | None = None,
    error: BaseException | None = None,
    error_kind: str | None = None,
) -> dict[str, object]:
    """``extra`` for a log call: the content kind's name, the version, where it was read
    (``directus``, ``mirror``, ``file``, ``mongodb``, ``cache``) and the error's type name."""
    return {
        "kind": kind,
        "version": version,
        "source": source,
        "error_kind": error_kind or (type(error).__name__ if error is not None else None),
    }


class _WithFields(logging.LoggerAdapter[logging.Logger]):
    """Adds the four fields to every record; a call's own ``extra`` wins over the defaults."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def get_logger(name: str, *, source: str | None = None) -> logging.LoggerAdapter[logging.Logger]:
    """The package's logger ``name``, every record of which carries the four fields
    (``source`` as given unless a call says otherwise)."""
    return _WithFields(logging.getLogger(name), fields(source=source))
