"""Which versions a change in Directus touches: the item keys a version is read from, and the
mapping from a realtime event (collection, event, rows) to the versions it concerns.

A version is read from its own row, its junction rows, the items they link and, nested, their
junction rows and items (:class:`Nest` describes the tree as data, per kind). Every key met
while reading a version is kept with it (:func:`references`): an edit, a delete or a new link
under one of them touches that version, and nothing else does. Directus's events carry the
fields a subscription asks for (:func:`subscription_fields`): a junction row names its parent
(a new link under a cached sequence touches its versions), and a version row its number and
status (a publication touches "latest"). A deleted item's junction rows are kept with a null
key and send no event, so the item's own key, which the version kept, is what maps it.
No I/O here: the cache holds the keys and applies :func:`touches`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Nest",
    "References",
    "parents_of",
    "references",
    "subscription_fields",
    "touches",
    "versions_named",
]

Key = int | str
References = Mapping[str, frozenset[Key]]
"""Directus collection -> the keys of its rows a version was read from."""


@dataclass(frozen=True, slots=True)
class Nest:
    """One nested list of a version's tree: ``field`` holds rows of the junction collection
    ``junction``, each naming its parent by ``parent_field`` and linking an item of
    ``collection`` by ``item_field``; ``children`` nest under that item."""

    field: str
    junction: str
    parent_field: str
    item_field: str
    collection: str
    children: tuple[Nest, ...] = ()


def _key(value: Any) -> Key | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int | str) else None


def references(raw: Mapping[str, Any], root: str, nesting: Iterable[Nest]) -> References:
    """Every key a raw version item (with its nested tree) was read from, by collection."""
    found: dict[str, set[Key]] = {}

    def add(collection: str, value: Any) -> None:
        key = _key(value)
        if key is not None:
            found.setdefault(collection, set()).add(key)

    def walk(node: Mapping[str, Any], nests: Iterable[Nest]) -> None:
        for nest in nests:
            rows = node.get(nest.field)
            for row in rows if isinstance(rows, list) else ():
                if not isinstance(row, Mapping):
                    continue
                add(nest.junction, row.get("id"))
                item = row.get(nest.item_field)
                if isinstance(item, Mapping):
                    add(nest.collection, item.get("id"))
                    walk(item, nest.children)
                else:
                    add(nest.collection, item)

    add(root, raw.get("id"))
    walk(raw, nesting)
    return {collection: frozenset(keys) for collection, keys in found.items()}


def subscription_fields(root: str, nesting: Iterable[Nest]) -> dict[str, list[str]]:
    """The fields to subscribe to per collection, so that events say what they touch."""
    fields: dict[str, list[str]] = {root: ["id", "version_number", "status"]}

    def walk(nests: Iterable[Nest]) -> None:
        for nest in nests:
            fields[nest.junction] = ["id", nest.parent_field, nest.item_field]
            fields.setdefault(nest.collection, ["id"])
            walk(nest.children)

    walk(nesting)
    return fields


def parents_of(root: str, nesting: Iterable[Nest]) -> dict[str, tuple[str, str]]:
    """Junction collection -> (the field naming its parent, the parent's collection)."""
    out: dict[str, tuple[str, str]] = {}

    def walk(parent: str, nests: Iterable[Nest]) -> None:
        for nest in nests:
            out[nest.junction] = (nest.parent_field, parent)
            walk(nest.collection, nest.children)

    walk(root, nesting)
    return out


def versions_named(
    root: str, event: str, rows: Iterable[Mapping[str, Any]]
) -> tuple[set[int], bool]:
    """For an event on the version collection: the version numbers it names, and whether
    "latest" may have moved (a publication, a withdrawal, a deletion, a renumbering)."""
    named: set[int] = set()
    latest = False
    for row in rows:
        number = row.get("version_number")
        if isinstance(number, int) and not isinstance(number, bool):
            named.add(number)
        if event == "create" and row.get("status") not in (None, "published"):
            continue  # a draft or archived version changes nothing that is served
        latest = True
    return named, latest


def touches(
    refs: References | None,
    collection: str,
    event: str,
    rows: Iterable[Mapping[str, Any]],
    parents: Mapping[str, tuple[str, str]],
) -> bool:
    """Whether an event on ``collection`` touches a version read from ``refs`` (None: its keys
    are unknown, so it may be)."""
    if refs is None:
        return True
    held = refs.get(collection, frozenset())
    parent = parents.get(collection)
    for row in rows:
        if _key(row.get("id")) in held:
            return True  # one of its rows changed or went
        if parent is not None and event != "delete":
            field, parent_collection = parent
            if _key(row.get(field)) in refs.get(parent_collection, frozenset()):
                return True  # a new or moved link under one of its rows
    return False
