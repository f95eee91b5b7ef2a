"""Which fields a filter names, and the known fields close to a misspelled one. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["close_fields", "filter_fields"]

_LOGICAL = ("$and", "$or", "$nor")


def filter_fields(query: Mapping[str, Any]) -> list[str]:
    """The field paths a MongoDB filter names, in order, operators left out.

    Example: ``filter_fields({"$or": [{"a": 1}, {"labels.x": {"$gt": 2}}]})``
    is ``["a", "labels.x"]``.
    """
    found: dict[str, None] = {}
    for key, value in query.items():
        if key in _LOGICAL and isinstance(value, list | tuple):
            for part in value:
                if isinstance(part, Mapping):
                    found.update(dict.fromkeys(filter_fields(part)))
        elif not key.startswith("$"):
            found[key] = None
    return list(found)


def close_fields(field: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``known`` that look like ``field``, closest first (difflib)."""
    return difflib.get_close_matches(field, list(dict.fromkeys(known)), n=n, cutoff=0.6)
