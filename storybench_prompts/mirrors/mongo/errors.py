"""The driver's errors mapped to ours, in one place; messages never carry the URI's password."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import bson.errors
import pymongo.errors

from ..._exceptions import MirrorUnavailableError

__all__ = ["map_pymongo_errors"]


@contextlib.contextmanager
def map_pymongo_errors(what: str, where: str) -> Iterator[None]:
    """Turn the driver's errors into ours. Messages never include the URI's credentials.

    BSON's ``InvalidDocument`` and ``DocumentTooLarge`` are not ``PyMongoError`` subclasses,
    nor is the ``OverflowError`` of an integer wider than 8 bytes; they are mapped too, so
    nothing from the driver escapes untyped.
    """
    try:
        yield
    except pymongo.errors.OperationFailure as exc:
        raise MirrorUnavailableError(
            f"MongoDB refused {what} at {where}: code {exc.code}: {scrub(str(exc))}"
        ) from None
    except pymongo.errors.PyMongoError as exc:
        # Timeouts, refused connections, server selection failures: all mean "cannot answer".
        raise MirrorUnavailableError(
            f"MongoDB unavailable for {what} at {where}: {type(exc).__name__}: {scrub(str(exc))}"
        ) from None
    except (bson.errors.BSONError, OverflowError) as exc:
        # OverflowError: BSON's integers are 8 bytes at most ("can only handle up to 8-byte ints").
        raise MirrorUnavailableError(
            f"MongoDB cannot store or read {what} at {where}: {type(exc).__name__}: "
            f"{scrub(str(exc))}"
        ) from None


def scrub(text: str) -> str:
    # PyMongo's messages name hosts, not credentials; cut them short all the same.
    first = text.split(", Timeout:")[0]
    return first[:300]
