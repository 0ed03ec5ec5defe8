"""Reading a whole listing of versions from Directus, whatever its ``QUERY_LIMIT_MAX``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._exceptions import DirectusInvalidResponseError

__all__ = ["read_whole"]

_MAX_PAGES = 10_000  # far beyond any QUERY_LIMIT_MAX a Directus of prompt sets would have


def _count(meta: Any) -> int | None:
    """The answer's ``filter_count`` (a number, or digits as some databases give it)."""
    value = meta.get("filter_count") if isinstance(meta, dict) else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if type(value) is int and value >= 0:
        return value
    return None


async def read_whole(
    ask: Callable[[dict[str, str]], Awaitable[dict[str, Any]]],
    params: Mapping[str, str],
    what: str,
) -> list[Any]:
    """Every item a listing matches, lowest ``version_number`` first.

    Directus cuts ``limit=-1`` to its ``QUERY_LIMIT_MAX`` without saying so. Each answer's
    ``filter_count`` says how many items match; while a page holds fewer, the next asks for
    the versions above the last one read (by key, not by offset: a version unpublished or
    published meanwhile shifts nothing). One request when nothing is cut. ``ask`` sends one
    page. A page that does not move on, or a count that cannot be reached, is refused: a
    version missing from a listing would be taken for withdrawn.
    """
    rows: list[Any] = []
    last: int | None = None
    for _ in range(_MAX_PAGES):
        page = {**params, "sort": "version_number", "limit": "-1", "meta": "filter_count"}
        if last is not None:
            page["filter[version_number][_gt]"] = str(last)
        payload = await ask(page)
        data = payload["data"]
        if not isinstance(data, list):
            raise DirectusInvalidResponseError(f"Directus answer to {what}: 'data' is not a list")
        count = _count(payload.get("meta"))
        if count is None and last is None:
            return data  # no count (an older Directus, a proxy): the answer as it is
        found = [r.get("version_number") if isinstance(r, Mapping) else None for r in data]
        numbers = [n for n in found if type(n) is int]
        if len(numbers) != len(found) or numbers != sorted(set(numbers)):
            raise DirectusInvalidResponseError(
                f"Directus answered {what} with items out of version order"
            )
        if last is not None and numbers and numbers[0] <= last:
            raise DirectusInvalidResponseError(
                f"Directus answered {what} with versions already read (it ignored the filter)"
            )
        rows.extend(data)
        if count is None or (count > len(data) and not data):
            raise DirectusInvalidResponseError(
                f"Directus answered {what} with {len(rows)} items and counts "
                f"{'none' if count is None else count} more"
            )
        if len(data) >= count:
            return rows
        last = numbers[-1]
    raise DirectusInvalidResponseError(f"Directus answered {what} in more than {_MAX_PAGES} pages")
