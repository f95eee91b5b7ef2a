"""MongoDB Extended JSON dates in filters that people type (CLI, web UI). Pure.

``{"$date": "2026-01-01T00:00:00Z"}`` as mongosh prints it (a date without a time
zone is UTC), or milliseconds since 1970: ``{"$date": 0}``,
``{"$date": {"$numberLong": "0"}}``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ._errors import QueryError

__all__ = ["extended_json"]


def extended_json(obj: dict[str, Any]) -> Any:
    """A `json.loads` object hook: ``{"$date": ...}`` as a datetime, else ``obj``.

    Raises:
        QueryError: a ``$date`` that is no date, naming it.
    """
    if set(obj) != {"$date"}:
        return obj
    value = obj["$date"]
    if isinstance(value, dict) and set(value) == {"$numberLong"}:
        value = value["$numberLong"]
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise QueryError(f"{value!r} is not a number of milliseconds") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)
        except (OverflowError, ValueError):
            raise QueryError(f"{value!r} milliseconds since 1970 is no date") from None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(
                f"{value!r} is not a date: use ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
            ) from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise QueryError(
        f"{{'$date': {value!r}}} is no date: give an ISO 8601 text or milliseconds since 1970"
    )
