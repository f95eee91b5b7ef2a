"""JSON encoding of catalog documents that round-trips exactly.

Documents hold ``dict`` (``str`` keys), ``list``, ``str``, ``int``, finite ``float``,
``bool``, ``None`` and tz-aware ``datetime``. Datetimes are stored in UTC as
``{"$date": "YYYY-MM-DDTHH:MM:SS.ffffffZ"}``; the string has a fixed width, so
comparing two encoded dates as strings compares them in time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

__all__ = ["DATE_KEY", "INT64_MAX", "INT64_MIN", "date_text", "dumps", "loads", "parse_date"]

DATE_KEY = "$date"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def date_text(value: dt.datetime) -> str:
    """Return the fixed-width UTC text of a tz-aware datetime.

    Raises:
        TypeError: ``value`` is naive (has no timezone).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"naive datetime {value.isoformat()} cannot be stored; give it a tzinfo")
    text = value.astimezone(dt.UTC).strftime(_DATE_FORMAT)
    # strftime does not zero-pad years below 1000 on every platform.
    return text.rjust(len("0001-01-01T00:00:00.000000Z"), "0")


def parse_date(text: str) -> dt.datetime:
    """Parse the text written by `date_text` into a tz-aware UTC datetime."""
    return dt.datetime.strptime(text, _DATE_FORMAT).replace(tzinfo=dt.UTC)


def _encode(value: Any, where: str) -> Any:
    # bool before int: bool is a subclass of int.
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise TypeError(f"integer at {where or 'top'} does not fit in 64 bits: {value}")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"float at {where or 'top'} is not finite: {value}")
        return float(value)
    if isinstance(value, dt.datetime):
        return {DATE_KEY: date_text(value)}
    if isinstance(value, list | tuple):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"key {key!r} at {where or 'top'} is not a string")
            if key.startswith("$"):
                raise TypeError(f"key {key!r} at {where or 'top'} starts with '$'; rename it")
            out[key] = _encode(item, f"{where}.{key}" if where else key)
        return out
    raise TypeError(f"value at {where or 'top'} of type {type(value).__name__} cannot be stored")


def dumps(doc: Any) -> str:
    """Encode a document (or any storable value) as compact JSON text.

    Raises:
        TypeError: a value cannot be stored: naive datetime, non-finite float,
            integer outside 64 bits, non-string key, key starting with ``$``, or
            an unsupported type. The message names where the value sits.
    """
    return json.dumps(_encode(doc, ""), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get(DATE_KEY), str):
        return parse_date(obj[DATE_KEY])
    return obj


def loads(text: str) -> Any:
    """Decode text written by `dumps`; ``{"$date": ...}`` becomes a UTC datetime."""
    return json.loads(text, object_hook=_decode_hook)
