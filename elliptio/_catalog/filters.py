"""What every catalog accepts: filters, sort, paging, projection. Pure, no I/O.

Each backend calls these checks before it does anything else, so a filter that one
backend refuses is refused by every backend, with the same `QueryError` message,
and nothing is ever sent to a server for a filter that is not accepted here. The
SQLite translator (`elliptio._catalog.query`) relies on them: it only ever sees
filters that passed `check_filter`.

The accepted language is MongoDB's filter language without server-side code:
comparison ``$eq $ne $gt $gte $lt $lte $in $nin``, logical ``$and $or $nor $not``,
element ``$exists $type``, array ``$all $elemMatch $size``, ``$regex`` with
``$options`` (``i m s x``) or compiled `re.Pattern` objects, and ``$comment``.
``$where``, ``$function``, ``$accumulator`` and ``$expr`` are always refused, and
so are regular expressions whose matching could take exponential or high polynomial
time (`regex_guard.refusal`), since no backend can stop a match once it runs.

A filter may nest at most `MAX_DEPTH` levels: each document, operator document and
array is a level (the entries of ``$and``, ``$or`` and ``$nor`` one level below the
operator), and the operand of an ``$elemMatch`` counts `ELEM_MATCH_LEVELS` levels.
The numbers are what SQLite's parser (a fixed 100-entry stack in SQLite 3.40) runs
for every shape of that depth, measured with some room to spare; an ``$elemMatch``
becomes two nested subqueries there, hence its weight.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from elliptio._catalog import codec, regex_guard
from elliptio._errors import QueryError
from elliptio._scalars import plain_tree

__all__ = [
    "ELEM_MATCH_LEVELS",
    "FIELD_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_DEPTH",
    "REGEX_FLAGS",
    "SERVER_SIDE_OPERATORS",
    "TYPE_ALIASES",
    "check_fields",
    "check_filter",
    "check_paging",
    "check_sort",
    "compile_regex",
    "conjoin",
    "is_operator_doc",
    "regex_parts",
    "shape",
    "split_path",
    "type_names",
]

SERVER_SIDE_OPERATORS = frozenset({"$where", "$function", "$accumulator", "$expr"})


def conjoin(parts: Sequence[Any]) -> dict[str, Any]:
    """The filter matching what every one of ``parts`` matches.

    Documents whose keys differ are merged into one (their keys are ANDed), so
    elliptio's own conditions (not deleted, the UI's quick filters) cost a filter
    no level of `MAX_DEPTH`; only parts sharing a key are put under ``$and``.
    """
    parts = [part for part in parts if part != {}]
    if not parts:
        return {}
    merged: dict[str, Any] = {}
    rest: list[Any] = []
    for part in parts:
        if isinstance(part, Mapping) and not merged.keys() & part.keys():
            merged.update(part)
        else:
            rest.append(part)
    return {"$and": [merged, *rest]} if rest else merged


LOGICAL_OPERATORS = frozenset({"$and", "$or", "$nor"})
FIELD_OPERATORS = frozenset(
    {
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$exists",
        "$type",
        "$regex",
        "$options",
        "$not",
        "$all",
        "$size",
        "$elemMatch",
    }
)
COMPARISONS = frozenset({"$gt", "$gte", "$lt", "$lte"})
MAX_DEPTH = 16
"""How deep a filter may nest; see the module docstring for how levels count."""
ELEM_MATCH_LEVELS = 5
"""The levels the operand of one ``$elemMatch`` counts."""
REGEX_FLAGS: dict[str, re.RegexFlag] = {
    "i": re.IGNORECASE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "x": re.VERBOSE,
}
# Flags a compiled pattern may carry: ours, plus the UNICODE flag every str pattern has.
_PATTERN_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.UNICODE

# BSON type aliases and their numeric codes, as ``$type`` takes them. Documents
# only ever hold the first group; the others are valid names that match nothing.
TYPE_ALIASES: dict[str, int] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "bool": 8,
    "date": 9,
    "null": 10,
    "int": 16,
    "long": 18,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "timestamp": 17,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
_CODES = {code: name for name, code in TYPE_ALIASES.items()}
# "_environment" holds a record's environment on MongoDB (`mongo.ENVIRONMENT`).
_RESERVED_TOP_FIELDS = frozenset({"_id", "_environment"})
_SORT_SEGMENT_FORBIDDEN = re.compile(r'["\\\x00-\x1f]')


def split_path(key: str) -> list[str]:
    """Split a dotted field name into its parts.

    Raises:
        QueryError: the name is empty, has an empty part, or a part starting with ``$``.
    """
    if not key:
        raise QueryError("a field name is empty; name the field to filter on")
    segments = key.split(".")
    for segment in segments:
        if not segment:
            raise QueryError(f"field name {key!r} has an empty part between dots")
        if segment.startswith("$"):
            raise QueryError(
                f"field name {key!r} has a part starting with '$' ({segment!r}); "
                "operators go inside the field's condition, e.g. {'a': {'$gt': 1}}"
            )
    return segments


def _top_path(key: str) -> list[str]:
    segments = split_path(key)
    if segments[0] in _RESERVED_TOP_FIELDS:
        raise QueryError(
            f"field {key!r} is internal to the catalog and differs between backends; "
            "use 'artifact_id' to name an artifact"
        )
    return segments


def is_operator_doc(value: Any) -> bool:
    """Tell whether a condition is an operator document such as ``{"$gt": 1}``."""
    return isinstance(value, Mapping) and any(
        isinstance(k, str) and k.startswith("$") for k in value
    )


@functools.lru_cache(maxsize=512)
def regex_bits(flags: str) -> int:
    """The `re` flags of MongoDB option letters (``i``, ``m``, ``s``, ``x``)."""
    bits = 0
    for letter in flags:
        bits |= REGEX_FLAGS[letter]
    return bits


def compile_regex(pattern: str, flags: str) -> re.Pattern[str]:
    """Compile a pattern with MongoDB option letters (``i``, ``m``, ``s``, ``x``)."""
    return re.compile(pattern, regex_bits(flags))


def regex_parts(pattern: str | re.Pattern[str], options: str | None) -> tuple[str, str]:
    """The pattern text and sorted option letters of an accepted ``$regex``."""
    if isinstance(pattern, re.Pattern):
        flags = "".join(letter for letter, bit in REGEX_FLAGS.items() if pattern.flags & bit)
        text = pattern.pattern
    else:
        flags, text = "", pattern
    flags += options or ""
    return text, "".join(sorted(set(flags)))


def type_names(operand: Any) -> list[str]:
    """The BSON type names a checked ``$type`` operand asks for (``number`` kept)."""
    items = operand if isinstance(operand, list | tuple) else [operand]
    names = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        else:
            names.append(_CODES[int(item)])
    return names


def _refuse_server_side(op: str) -> QueryError:
    return QueryError(
        f"{op} is refused: elliptio never runs server-side code in queries; "
        "filter with field conditions instead"
    )


def check_filter(flt: Any) -> Any:
    """Check that a filter document is one every catalog accepts.

    Args:
        flt: the filter; ``None`` matches every document.

    Returns:
        The filter to run: numpy and pandas scalars in it replaced by their plain
        Python values (`elliptio._scalars`); ``flt`` itself when it holds none.

    Raises:
        QueryError: the filter is malformed, uses an unsupported operator or
            server-side code, or holds a value that cannot be queried; the
            message names the operator, field or value.
    """
    if flt is None:
        return None
    _check_depth(flt)  # first: bounds the recursion of everything after it
    flt = plain_tree(flt)
    _filter_doc(flt, "filter", top=True)
    _encodable(flt, "filter")
    return flt


def shape(flt: Any) -> Any:
    """The filter with every value replaced by ``"?"``: fields and operators only,
    for a log line that shows a query's plan without its values."""
    if isinstance(flt, Mapping):
        return {str(k): shape(v) for k, v in flt.items()}
    if isinstance(flt, list | tuple):
        return [shape(v) for v in flt]
    return "?"


def _check_depth(flt: Any) -> None:
    # Iterative and stopping at the limit: the recursive checks below, the
    # translators and the drivers only ever see a filter of bounded depth.
    stack: list[tuple[Any, int]] = [(flt, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(
                f"the filter nests deeper than {MAX_DEPTH} levels, the most every catalog "
                "can run (each document, operator and array is a level, an $elemMatch counts "
                f"{ELEM_MATCH_LEVELS}); flatten it, e.g. one $and or $or listing all conditions"
            )
        if isinstance(node, Mapping):
            items: Any = node.items()
        elif isinstance(node, list | tuple):
            items = ((None, item) for item in node)
        else:
            continue
        for key, value in items:
            if key in LOGICAL_OPERATORS and isinstance(value, list | tuple):
                stack.extend((entry, depth + 1) for entry in value)
            elif isinstance(value, Mapping | list | tuple):
                step = ELEM_MATCH_LEVELS if key == "$elemMatch" else 1
                stack.append((value, depth + step))


def _encodable(value: Any, where: str) -> None:
    # Lone surrogates cannot become UTF-8, so no backend could send or store them.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise QueryError(
                f"{where} holds the string {value!r}, which is not valid Unicode "
                "(a lone surrogate); fix how the text was decoded"
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _encodable(key, where)
            _encodable(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, list | tuple):
        for item in value:
            _encodable(item, where)


def _filter_doc(flt: Any, where: str, *, top: bool) -> None:
    if not isinstance(flt, Mapping):
        raise QueryError(f"{where} must be a mapping (a filter document), not {type(flt).__name__}")
    for key, cond in flt.items():
        if not isinstance(key, str):
            raise QueryError(f"field name {key!r} in {where} is not a string")
        if key in SERVER_SIDE_OPERATORS:
            raise _refuse_server_side(key)
        if key in LOGICAL_OPERATORS:
            if not isinstance(cond, list | tuple) or not cond:
                raise QueryError(f"{key} needs a non-empty list of filter documents, not {cond!r}")
            for sub in cond:
                _filter_doc(sub, f"an entry of {key}", top=top)
        elif key == "$comment":
            continue
        elif key.startswith("$"):
            raise QueryError(
                f"unsupported top-level operator {key!r}; use $and, $or, $nor or field conditions"
            )
        else:
            if top:
                _top_path(key)
            else:
                split_path(key)
            _condition(key, cond)


def _condition(key: str, cond: Any) -> None:
    if is_operator_doc(cond):
        _operators(key, cond)
    elif isinstance(cond, re.Pattern):
        _regex(key, cond, None)
    else:
        _value(key, cond)


def _operators(key: str, ops: Mapping[str, Any]) -> None:
    for op in ops:
        if not (isinstance(op, str) and op.startswith("$")):
            raise QueryError(
                f"condition for {key!r} mixes operators and field names ({op!r}); "
                "use either {'$op': value, ...} or a document to compare with"
            )
    if "$options" in ops and "$regex" not in ops:
        raise QueryError(f"$options for {key!r} needs $regex next to it")
    for op, operand in ops.items():
        if op in SERVER_SIDE_OPERATORS:
            raise _refuse_server_side(op)
        if op not in FIELD_OPERATORS:
            raise QueryError(
                f"unsupported operator {op!r} for {key!r}; supported: "
                + ", ".join(sorted(FIELD_OPERATORS))
            )
        _operator(key, op, operand, ops)


def _operator(key: str, op: str, operand: Any, ops: Mapping[str, Any]) -> None:
    where = f"{key}.{op}"
    if op == "$eq":
        if isinstance(operand, re.Pattern):
            raise QueryError(f"{where}: $eq cannot take a regular expression; use $regex")
        _value(where, operand)
    elif op == "$ne":
        if isinstance(operand, re.Pattern):
            raise QueryError(f"{where}: $ne cannot take a regular expression; use $not")
        _value(where, operand)
    elif op in COMPARISONS:
        if operand is not None and isinstance(operand, re.Pattern | list | tuple | Mapping):
            raise QueryError(
                f"{where}: comparing with a {type(operand).__name__} is not supported; "
                "compare with a number, string, boolean or datetime"
            )
        _value(where, operand)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise QueryError(f"{where} needs a list, not {type(operand).__name__}")
        if all(type(item) is str for item in operand):
            return  # a list of ids or names, however long: nothing to check
        for i, item in enumerate(operand):
            if is_operator_doc(item):
                raise QueryError(f"{where}[{i}]: operators cannot appear inside $in / $nin")
            _value_or_regex(f"{where}[{i}]", item)
    elif op == "$exists":
        if not isinstance(operand, bool | int) or (
            not isinstance(operand, bool) and operand not in (0, 1)
        ):
            raise QueryError(f"{where} needs true or false, not {operand!r}")
    elif op == "$type":
        _type(where, operand)
    elif op == "$regex":
        _regex(where, operand, ops.get("$options"))
    elif op == "$not":
        if isinstance(operand, re.Pattern):
            _regex(where, operand, None)
        elif is_operator_doc(operand):
            _operators(key, operand)
        else:
            raise QueryError(
                f"{where} needs a regular expression or an operator document "
                f"such as {{'$gt': 1}}, not {operand!r}"
            )
    elif op == "$all":
        if not isinstance(operand, list | tuple):
            raise QueryError(f"{where} needs a list, not {type(operand).__name__}")
        for i, item in enumerate(operand):
            if isinstance(item, Mapping) and "$elemMatch" in item:
                if len(item) != 1:
                    raise QueryError(f"{where}[{i}]: $elemMatch must stand alone")
                _elem_match(f"{where}[{i}]", item["$elemMatch"])
            elif is_operator_doc(item):
                raise QueryError(f"{where}[{i}]: only $elemMatch may appear inside $all")
            else:
                _value_or_regex(f"{where}[{i}]", item)
    elif op == "$size":
        if isinstance(operand, bool) or not isinstance(operand, int) or operand < 0:
            raise QueryError(f"{where} needs a non-negative integer, not {operand!r}")
    elif op == "$elemMatch":
        _elem_match(where, operand)
    # "$options" is checked with "$regex".


def _elem_match(where: str, inner: Any) -> None:
    if not isinstance(inner, Mapping):
        raise QueryError(f"{where} needs a filter document, not {type(inner).__name__}")
    keys = [k for k in inner if isinstance(k, str)]
    if len(keys) != len(inner):
        raise QueryError(f"{where} has a field name that is not a string")
    if keys and all(k.startswith("$") and k not in LOGICAL_OPERATORS for k in keys):
        _operators(where, inner)
    else:
        _filter_doc(inner, where, top=False)


def _type(where: str, operand: Any) -> None:
    items = operand if isinstance(operand, list | tuple) else [operand]
    if not items:
        raise QueryError(f"{where} needs a type name, a type number or a non-empty list of them")
    for item in items:
        if isinstance(item, str):
            if item != "number" and item not in TYPE_ALIASES:
                raise QueryError(
                    f"{where}: unknown type name {item!r}; use one of "
                    + ", ".join(sorted([*TYPE_ALIASES, "number"]))
                )
        elif isinstance(item, int | float) and not isinstance(item, bool):
            if item != int(item) or int(item) not in _CODES:
                raise QueryError(f"{where}: unknown type number {item!r}")
        else:
            raise QueryError(f"{where} needs a type name or number, not {item!r}")


def _value_or_regex(where: str, value: Any) -> None:
    if isinstance(value, re.Pattern):
        _regex(where, value, None)
    else:
        _value(where, value)


def _value(where: str, value: Any) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not codec.INT64_MIN <= value <= codec.INT64_MAX:
            raise QueryError(f"{where}: {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"{where}: {value} cannot be queried; use a finite number")
        return
    if isinstance(value, dt.datetime):
        try:
            codec.date_text(value)
        except TypeError as err:
            raise QueryError(f"{where}: {err}") from err
        return
    if isinstance(value, list | tuple | Mapping):
        try:
            codec.dumps(value)
        except (TypeError, ValueError) as err:
            raise QueryError(f"value for {where!r} cannot be queried: {err}") from err
        return
    raise QueryError(
        f"value for {where!r} of type {type(value).__name__} cannot be queried; use "
        "str, int, float, bool, None, tz-aware datetime, list or dict"
    )


# A pattern's escapes, and those of Python's `re` that MongoDB's PCRE refuses
# (\u00e9, \U0001F600, \N{EM DASH}): refused on every backend alike.
_ESCAPE = re.compile(r"\\(.)", re.S)
_PYTHON_ESCAPES = frozenset("uUN")


def _regex(where: str, pattern: Any, options: Any) -> None:
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise QueryError(f"{where}: a bytes regular expression cannot be used")
        if pattern.flags & ~_PATTERN_FLAGS:
            raise QueryError(
                f"{where}: the pattern's flags cannot be sent to MongoDB; use only "
                "re.IGNORECASE, re.MULTILINE, re.DOTALL and re.VERBOSE"
            )
    elif not isinstance(pattern, str):
        raise QueryError(f"{where}: $regex needs a string or re.Pattern, not {pattern!r}")
    if options is not None and (not isinstance(options, str) or set(options) - set(REGEX_FLAGS)):
        raise QueryError(f"{where}: $options must be letters among i, m, s, x, not {options!r}")
    text, flags = regex_parts(pattern, options)
    if "\x00" in text:
        raise QueryError(f"{where}: a regular expression cannot contain a NUL character")
    try:
        compiled = compile_regex(text, flags)
    except re.error as err:
        raise QueryError(f"{where}: invalid regular expression {text!r}: {err}") from err
    escape = next((m[1] for m in _ESCAPE.finditer(text) if m[1] in _PYTHON_ESCAPES), None)
    if escape is not None:
        raise QueryError(
            f"{where}: the escape \\{escape} of {text!r} is Python's, which MongoDB's "
            "PCRE refuses; write the character itself ('é' for \\u00e9)"
        )
    reason = regex_guard.refusal(text, compiled.flags)
    if reason is not None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise QueryError(f"{where}: the regular expression {shown!r} is refused: {reason}")


def check_sort(sort: Any) -> list[tuple[str, int]]:
    """Check a sort specification as PyMongo takes it and return it as pairs.

    Args:
        sort: ``(dotted key, direction)`` pairs, direction ``1`` or ``-1``; ``None``
            or empty for no sort.

    Raises:
        QueryError: a key is malformed or a direction is not ``1`` or ``-1``.
    """
    if sort is None:
        return []
    if isinstance(sort, str | bytes) or not isinstance(sort, Sequence):
        raise QueryError(f"sort must be a list of (key, direction) pairs, not {sort!r}")
    pairs: list[tuple[str, int]] = []
    for item in sort:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise QueryError(f"sort entry {item!r} is not a (key, direction) pair")
        key, direction = item
        if not isinstance(key, str):
            raise QueryError(f"sort key {key!r} is not a string")
        segments = _top_path(key)
        if isinstance(direction, bool) or direction not in (1, -1):
            raise QueryError(f"sort direction for {key!r} must be 1 or -1, not {direction!r}")
        for segment in segments:
            if _SORT_SEGMENT_FORBIDDEN.search(segment):
                raise QueryError(
                    f"sort key {key!r} contains a quote, backslash or control character"
                )
        if any(key == k for k, _ in pairs):
            raise QueryError(f"sort key {key!r} appears twice")
        pairs.append((key, int(direction)))
    return pairs


def check_paging(skip: Any, limit: Any) -> None:
    """Check ``skip`` and ``limit`` (``0`` = no limit).

    Raises:
        QueryError: either is not a non-negative integer.
    """
    for name, value in (("skip", skip), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise QueryError(f"{name} must be a non-negative integer, not {value!r}")
        if value > codec.INT64_MAX:
            raise QueryError(f"{name} {value} does not fit in 64 bits")


def check_fields(fields: Any) -> list[str] | None:
    """Check a projection: top-level field names to return (``artifact_id`` always is).

    Returns:
        The names without repeats, in order, or ``None`` for whole documents.

    Raises:
        QueryError: ``fields`` is not a list of top-level field names.
    """
    if fields is None:
        return None
    if isinstance(fields, str | bytes) or not isinstance(fields, Sequence):
        raise QueryError(f"fields must be a list of top-level field names, not {fields!r}")
    names: list[str] = []
    for name in fields:
        if not isinstance(name, str) or not name or "." in name or name.startswith("$"):
            raise QueryError(
                f"field {name!r} cannot be projected; name a top-level field of the "
                "record, such as 'labels' or 'username'"
            )
        if name in _RESERVED_TOP_FIELDS:
            raise QueryError(f"field {name!r} is internal to the catalog; it cannot be projected")
        if name not in names:
            names.append(name)
    return names
