"""JSON encoding of catalog documents that round-trips exactly.

Documents hold ``dict`` (``str`` keys), ``list``, ``str``, ``int``, finite ``float``,
``bool``, ``None`` and tz-aware ``datetime``. Datetimes are stored in UTC as
``{"$date": "YYYY-MM-DDTHH:MM:SS.ffffffZ"}``, truncated to milliseconds like BSON
dates; the string has a fixed width, so comparing two encoded dates as strings
compares them in time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Collection, Sequence
from typing import Any

__all__ = [
    "DATE_KEY",
    "INT64_MAX",
    "INT64_MIN",
    "date_millis",
    "date_text",
    "dumps",
    "encode",
    "from_millis",
    "loads",
    "loads_many",
    "normalize",
    "parse_date",
    "storable",
    "to_text",
]

DATE_KEY = "$date"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def date_text(value: dt.datetime) -> str:
    """Return the fixed-width UTC text of a tz-aware datetime.

    Raises:
        TypeError: ``value`` is naive (has no timezone), or outside years 1 to 9999
            in UTC.
    """
    # BSON dates hold milliseconds; every catalog truncates the UTC time to them, as
    # PyMongo does (an offset with microseconds would otherwise leave some).
    text = dt.datetime.isoformat(_utc(value), "T", "milliseconds")  # truncates
    return f"{text[:23]}000Z"


def _utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; raises as `date_text`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"naive datetime {value.isoformat()} cannot be stored; give it a tzinfo")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise TypeError(
            f"datetime {value.isoformat()} is outside the dates a catalog holds (years 1 "
            "to 9999 in UTC); use a date inside them"
        ) from None


def parse_date(text: str) -> dt.datetime:
    """Parse the text written by `date_text` into a tz-aware UTC datetime."""
    return dt.datetime.fromisoformat(text)  # the trailing "Z" means UTC


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)


def date_millis(value: dt.datetime) -> int:
    """Return the milliseconds since 1970 (UTC) of a tz-aware datetime as `date_text`
    holds it: two dates' integers compare as their texts do, in 6 bytes, not 27.

    Raises:
        TypeError: as `date_text`.
    """
    return (_utc(value) - _EPOCH) // _MILLISECOND  # floored to milliseconds, as `date_text`


def from_millis(millis: int) -> dt.datetime:
    """The UTC datetime of `date_millis`'s integer.

    Raises:
        OverflowError: ``millis`` lies outside years 1 to 9999.
        TypeError: ``millis`` is not a number.
    """
    if type(millis) is int and 0 <= millis < _FLOAT_EXACT:
        # Up to 2106 a float of the seconds is within 0.24 us of them, so the
        # microseconds come out exact; three times faster than adding a timedelta.
        return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
    return _EPOCH + dt.timedelta(milliseconds=millis)


_FLOAT_EXACT = 2**32 * 1000


def _storable_str(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_STR_ONLY = {str}


def _all_storable(items: Collection[Any]) -> bool:
    if set(map(type, items)) == _STR_ONLY:  # e.g. file names, python_packages
        return _storable_str("".join(items))
    for item in items:
        kind = type(item)
        if kind is str:
            if not item.isascii() and not _storable_str(item):
                return False
        elif kind is not bool and item is not None and not storable(item):
            return False
    return True


def storable(value: Any) -> bool:
    """Tell, quickly, whether a value is stored exactly as it is.

    True for ``dict`` (``str`` keys not starting with ``$``, without NUL), ``list``,
    ``str``, 64-bit ``int``, finite ``float``, ``bool``, ``None`` and tz-aware
    ``datetime`` of exactly these types; anything else goes through `encode`,
    which converts (tuples, subclasses) or explains what cannot be stored.
    """
    kind = type(value)
    if kind is str:
        return _storable_str(value)
    if kind is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if kind is float:
        return bool(value - value == 0.0)  # finite
    if kind is bool or value is None:
        return True
    if kind is dict:
        if not value:
            return True
        # The keys checked at once, in C loops: strings, none holding a NUL or
        # starting with "$" (a key holding a newline may make one look so).
        if set(map(type, value)) != _STR_ONLY:
            return False
        keys = "\n" + "\n".join(value)
        if "\x00" in keys or not _storable_str(keys):
            return False
        if "\n$" in keys and any(key[:1] == "$" for key in value):
            return False
        return _all_storable(value.values())
    if kind is list:
        return _all_storable(value)
    if kind is dt.datetime:
        return value.tzinfo is not None and value.utcoffset() is not None
    return False


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {DATE_KEY: date_text(value)}
    raise TypeError(f"value of type {type(value).__name__} cannot be stored")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,
    default=_default,
)


def _encode(value: Any, where: str) -> Any:
    # bool before int: bool is a subclass of int.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise TypeError(f"string at {where or 'top'} is not valid Unicode: {err}") from None
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
            if "\x00" in key:
                raise TypeError(f"key {key!r} at {where or 'top'} holds a NUL character")
            if not _storable_str(key):
                raise TypeError(f"key {key!r} at {where or 'top'} is not valid Unicode")
            out[key] = _encode(item, f"{where}.{key}" if where else key)
        return out
    raise TypeError(f"value at {where or 'top'} of type {type(value).__name__} cannot be stored")


def encode(doc: Any) -> Any:
    """Check a document (or any storable value) and return it as JSON-ready data.

    Every catalog backend stores exactly the documents this accepts.

    Raises:
        TypeError: a value cannot be stored: naive datetime, non-finite float,
            integer outside 64 bits, non-string key, key starting with ``$`` or
            holding a NUL, a string that is not valid Unicode, or an unsupported
            type. The message names where the value sits.
    """
    return _encode(doc, "")


def to_text(value: Any) -> str:
    """Compact JSON text of data returned by `encode`, or of a `storable` value."""
    return _ENCODER.encode(value)


def dumps(doc: Any) -> str:
    """Encode a document (or any storable value) as compact JSON text.

    Raises:
        TypeError: as `encode`.
    """
    return _ENCODER.encode(doc if storable(doc) else _encode(doc, ""))


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get(DATE_KEY), str):
        return parse_date(obj[DATE_KEY])
    return obj


_DECODER = json.JSONDecoder(object_hook=_decode_hook)
# Every date object's text holds this, so text without it parses with no hook.
_DATE_MARK = f'"{DATE_KEY}"'


def loads(text: str) -> Any:
    """Decode text written by `dumps`; ``{"$date": ...}`` becomes a UTC datetime.

    Raises:
        ValueError: the text is not JSON, or nested too deeply to decode (text
            planted in a catalog: `dumps` never writes it).
    """
    try:
        if _DATE_MARK not in text:
            return json.loads(text)
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def loads_many(texts: Sequence[str]) -> list[Any]:
    """Decode many texts written by `dumps` at once: ``[loads(t) for t in texts]``."""
    if not texts:
        return []
    # One parse of one array: the per-call overhead is paid once.
    values: list[Any] = loads("[" + ",".join(texts) + "]")
    return values


def normalize(doc: Any) -> Any:
    """The document as every catalog returns it: datetimes in UTC milliseconds,
    tuples as lists.

    Raises:
        TypeError: as `encode`.
    """
    return loads(dumps(doc))
