"""The search form: quick filters and a MongoDB filter document, into one filter. Pure.

The filter box takes the same documents as ``find()`` (JSON, with
``{"$date": "2026-01-01T00:00:00Z"}`` for dates, as the CLI reads them); each
quick filter adds one condition, all joined into one document (``$and`` only
for conditions on the same key). What the catalog refuses (unknown operators,
dangerous regexes) comes back from ``find`` as `QueryError`, which the page shows
as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from elliptio._catalog.filters import conjoin
from elliptio._errors import QueryError
from elliptio._extjson import extended_json

__all__ = ["PAGE_SIZE", "SORTS", "SearchForm"]

PAGE_SIZE = 50
# Sortable columns: each a key the catalogs index (creation_time, name, username, datatype).
SORTS = {
    "time": "creation_time",
    "name": "name",
    "user": "username",
    "datatype": "labels.datatype",
}
# Quick filter -> record field, matched exactly.
EXACT = {
    "name": "name",
    "user": "username",
    "datatype": "labels.datatype",
    "project": "labels.project",
    "ticket": "labels.ticket",
}
_MAX_TEXT = 200
_MAX_PAGE = 1_000_000


def _when(text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{what}: {text[:40]!r} is not a date; use 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _until(text: str) -> tuple[str, datetime]:
    """``until`` is inclusive: a plain date reaches to the end of that day."""
    when = _when(text, "until")
    if len(text.strip()) == 10 and when.date() < datetime.max.date():  # YYYY-MM-DD
        return "$lt", when + timedelta(days=1)
    return "$lte", when


@dataclass(frozen=True)
class SearchForm:
    """What the search page was asked, as the query string carries it."""

    q: str = ""
    name: str = ""
    user: str = ""
    datatype: str = ""
    project: str = ""
    ticket: str = ""
    since: str = ""
    until: str = ""
    text: str = ""
    sort: str = "time"
    dir: str = "desc"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SearchForm:
        """Read the query string; unknown sort keys and pages fall back to defaults."""
        fields = {k: params.get(k, "").strip() for k in asdict(cls()) if k != "page"}
        if fields["sort"] not in SORTS:
            fields["sort"] = "time"
        if fields["dir"] not in ("asc", "desc"):
            fields["dir"] = "desc"
        try:
            page = min(max(int(params.get("page", "1")), 1), _MAX_PAGE)
        except ValueError:
            page = 1
        return cls(**fields, page=page)

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this form with ``changes``; defaults left out."""
        form = replace(self, **changes)
        default = asdict(SearchForm())
        return {k: str(v) for k, v in asdict(form).items() if v != default[k]}

    def filter(self) -> dict[str, Any]:
        """The MongoDB filter document.

        Raises:
            QueryError: the filter box is not a JSON object, or a date is unreadable.
        """
        parts: list[dict[str, Any]] = []
        if self.q:
            try:
                given = json.loads(self.q, object_hook=extended_json)
            except QueryError:
                raise  # a bad date inside valid JSON
            except ValueError as err:
                raise QueryError(f"the filter is not valid JSON: {err}") from None
            except RecursionError:
                raise QueryError("the filter nests too deep to be read as JSON") from None
            if not isinstance(given, dict):
                raise QueryError(
                    'the filter must be a JSON object, such as {"labels.datatype": "model"}'
                )
            if given:
                parts.append(given)
        parts.extend(
            {key: getattr(self, field)} for field, key in EXACT.items() if getattr(self, field)
        )
        when: dict[str, datetime] = {}
        if self.since:
            when["$gte"] = _when(self.since, "since")
        if self.until:
            op, value = _until(self.until)
            when[op] = value
        if when:
            parts.append({"creation_time": when})
        if self.text:
            if len(self.text) > _MAX_TEXT:
                raise QueryError(f"the text to search is longer than {_MAX_TEXT} characters")
            pattern = {"$regex": "(?i)" + re.escape(self.text)}
            parts.append({"$or": [{"file_relpaths": pattern}, {"labels.description": pattern}]})
        return conjoin(parts)

    def sort_spec(self) -> list[tuple[str, int]]:
        """``(key, direction)`` pairs for the catalog.

        Ties follow creation time in the same direction, so that one index
        ``(key, creation_time)`` serves the whole sort, read forwards or backwards.
        """
        direction = 1 if self.dir == "asc" else -1
        key = SORTS[self.sort]
        if key == "creation_time":
            return [("creation_time", direction), ("artifact_id", direction)]
        if key == "name":
            return [("name", direction), ("name_version", direction)]
        return [(key, direction), ("creation_time", direction)]

    @property
    def skip(self) -> int:
        """Rows before this page."""
        return (self.page - 1) * PAGE_SIZE
