"""Translate MongoDB filter documents and sorts into SQLite SQL over JSON documents.

Pure functions, no I/O. `translate` turns a filter into one SQL boolean expression
over the catalog table, `translate_sort` turns a PyMongo sort specification into an
``ORDER BY`` clause, and `translate_query` does both with one parameter list. User
values are always bound as parameters (numbered ``?N`` placeholders); field names
are bound too, except for plain identifier paths, which are written as JSON path
literals so that the catalog's expression indexes can serve them. Filters are
checked first by `filters.check_filter`, the same check every backend runs.

A `Layout` says how the table stores a document: which JSON column holds each
top-level field (``{"field": value}`` objects, so large fields such as
``python_packages`` can live apart and small ones scan fast), which paths have a
plain column of their string or date value, and which top-level array fields have
their strings in a side table. The translator uses those columns where they give
exactly the same answer as the JSON, and falls back to the JSON otherwise.

MongoDB's path semantics are reproduced with JSON1 table-valued functions: for a
dotted path, a chain of correlated common table expressions yields every value
MongoDB would consider (walking into embedded documents and through arrays of
documents, expanding an array at the end of the path into its elements), plus a
"missing" marker wherever the path ends in nothing; each operator then becomes an
``EXISTS`` over those candidates. Type bracketing is enforced with ``json_type``.

Regular expressions run through the SQL function `regexp_sql`, registered on each
connection as ``elliptio_regexp(pattern, flags, value)``; container equality runs
through `canonical_sql` (``elliptio_canonical(json)``), which ignores the
difference between ``1`` and ``1.0`` as MongoDB does.
"""

# SQL here is assembled from fixed fragments; every user value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import json
import math
import re
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from elliptio._catalog import codec, filters, regex_guard
from elliptio._errors import QueryError

__all__ = [
    "CANONICAL_FUNCTION",
    "PLAIN",
    "REGEXP_FUNCTION",
    "SORT_KEY_FUNCTION",
    "Layout",
    "canonical_sql",
    "regexp_sql",
    "register_functions",
    "sort_key_sql",
    "translate",
    "translate_query",
    "translate_sort",
]

REGEXP_FUNCTION = "elliptio_regexp"
CANONICAL_FUNCTION = "elliptio_canonical"
SORT_KEY_FUNCTION = "elliptio_sort_key"

_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE_GLOB = '{"$date":"*'
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_IS_DATE = f"c.t = 'object' AND c.v GLOB '{_DATE_GLOB}'"
_TYPE_PREDICATES = {
    "double": "c.t = 'real'",
    "string": "c.t = 'text'",
    "object": f"c.t = 'object' AND c.v NOT GLOB '{_DATE_GLOB}'",
    "array": "c.t = 'array'",
    "bool": "c.t IN ('true', 'false')",
    "date": _IS_DATE,
    "null": "c.t = 'null'",
    "int": f"c.t = 'integer' AND c.v BETWEEN {_INT32_MIN} AND {_INT32_MAX}",
    "long": f"c.t = 'integer' AND c.v NOT BETWEEN {_INT32_MIN} AND {_INT32_MAX}",
    "number": "c.t IN ('integer', 'real')",
}


def label_indexable(value: Any) -> bool:
    """Whether a label table holds every value equal to ``value`` (see `Layout`):
    strings but the empty one, and numbers that compare exactly (no bool, NaN or
    beyond 2**53)."""
    if isinstance(value, str):
        return value != ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return bool(value == value and abs(value) <= 2**53)


# Letters that Python's and PCRE's case-insensitive matching also pair with a
# non-ASCII letter (K with the Kelvin sign, S with the long s, I with dotted and
# dotless i); LIKE folds ASCII only, so its prefilter leaves them open.
_UNICODE_FOLDS = frozenset("iIkKsS")
_REGEX_META = frozenset(".^$*+?{}[]|()")


def like_prefilter(text: str, flags: str) -> str | None:
    """A LIKE pattern that every string ``text`` (a regex) matches, when the regex
    is a plain literal (``re.escape`` of some text, with or without ``(?i)``);
    ``None`` otherwise. A superset: the regex still decides."""
    if set(flags) - {"i"}:
        return None
    body = text.removeprefix("(?i)")
    literal: list[str] = []
    chars = iter(body)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None or escaped.isalnum() or escaped == "_":
                return None  # \d, \w, a trailing backslash...
            literal.append(escaped)
        elif char in _REGEX_META:
            return None
        else:
            literal.append(char)
    if not literal:
        return None
    out = []
    for char in literal:
        if char in _UNICODE_FOLDS or not char.isascii():
            out.append("_")  # any one character: the regex decides
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "%" + "".join(out) + "%"


def prefix_range(text: str, flags: str) -> tuple[str, str] | None:
    """``(low, high)`` with ``low <= s < high`` for every string ``s`` the regex
    ``text`` matches, when it starts with ``^`` and a literal (``^data/part-1``):
    an index range in place of a scan. ``None`` otherwise."""
    if flags or not text.startswith("^") or "|" in text:
        return None
    literal: list[str] = []
    chars = iter(text[1:])
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None or escaped.isalnum() or escaped == "_":
                break
            literal.append(escaped)
        elif char in _REGEX_META:
            if char in "*?{" and literal:
                literal.pop()  # the character before may be absent
            break
        else:
            literal.append(char)
    if not literal or literal[-1] == chr(0x10FFFF):
        return None
    low = "".join(literal)
    following = ord(low[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters: skip them
        following = 0xE000
    return low, low[:-1] + chr(following)


def label_values(labels: Any, skip: Collection[str] = ()) -> list[tuple[str, Any]]:
    """``(path, value)`` rows of a label table for a document's labels; a path is
    dotted below the labels (``infos.seed`` for ``labels.infos.seed``).

    Left out: the empty string (the default of every label field, which no index
    narrows), and the paths of ``skip`` (those a plain column serves; see
    `Layout.label_table`).
    """
    found: dict[tuple[str, Any, bool], None] = {}

    def leaf(value: Any, path: str) -> None:
        if path in skip:
            return
        kind = type(value)
        if kind is not str and kind is not int and kind is not float:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                return
            kind = str if isinstance(value, str) else float if isinstance(value, float) else int
        if kind is str:
            if value:
                found[(path, value, False)] = None
        elif kind is float:
            if value == value:
                found[(path, value, True)] = None
        elif -(2**63) <= value < 2**63:
            found[(path, value, False)] = None
        else:
            found[(path, float(value), True)] = None  # beyond SQLite's integers

    def walk(value: dict[Any, Any], prefix: str) -> None:
        """The members of a document whose paths start with ``prefix``."""
        for key, item in value.items():
            if "." in key:  # no dotted path reaches a key holding a dot
                continue
            path = prefix + key
            if isinstance(item, dict):
                walk(item, path + ".")
            elif isinstance(item, list):
                members(item, path)
            else:
                leaf(item, path)

    def members(items: list[Any], path: str | None) -> None:
        """An array's members: its documents' fields and its scalars (arrays in
        arrays are skipped), as MongoDB reads them; ``None``: the labels' own."""
        prefix = "" if path is None else path + "."
        for item in items:
            if isinstance(item, dict):
                walk(item, prefix)
            elif not isinstance(item, list):
                leaf(item, path or "")

    if isinstance(labels, dict):
        walk(labels, "")
    elif isinstance(labels, list):
        members(labels, None)
    else:
        leaf(labels, "")
    return [(path, value) for path, value, _ in found]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a catalog table stores documents; the translator reads it, never writes.

    Attributes:
        default_column: the JSON column holding every top-level field not in
            ``columns``, as one object.
        columns: top-level field -> the JSON column holding ``{field: value}``.
        text_columns: dotted path -> a column holding the path's value when it
            is a string and no array lies on the path, else NULL.
        date_columns: dotted path -> a column holding ``date_value`` of the
            path's value when it is a datetime and no array lies on the path.
        date_value: what ``date_columns`` hold of a datetime, ordered as the
            datetimes are (`codec.date_text`, or `codec.date_millis`).
        id_field: a top-level field that is always a string, stored in the column
            of the same name.
        side_fields: top-level field -> the ``field`` of its rows in
            ``side_table``: its string values (the value itself, or the strings in
            an array there) are rows ``(field, value, artifact)`` of the side
            table, where ``artifact`` is ``row_id``.
        side_table: the side table's name.
        row_id: the SQL expression of a document's row id.
        flat_paths: paths of ``text_columns`` and ``date_columns`` that, as the
            catalog has checked, no stored document has an array on; filters and
            sorts on them use the plain column alone.
        arrays_column: a column holding `array_paths_text` of the paths (through
            documents only) where the document holds an array; ``None`` to test
            each prefix of a path with ``json_type`` instead.
        array_fields: top-level fields that (nearly) always hold arrays, so the
            ``arrays_column`` leaves them out: a path through one of them is
            taken to meet an array.
        array_flag: the side-table field under which documents with an array on
            a path of ``text_columns`` or ``date_columns`` are listed (the path
            is the value), or ``None``.
        label_table: a table of ``(path, value, artifact)`` rows holding, for each
            document, every non-empty string and every number (not bool) its
            ``label_field`` reaches along dotted paths (below that field:
            ``infos.seed``), arrays passed through as MongoDB does (an array's
            scalar members and the fields of its documents; arrays in arrays
            skipped), except at the paths of ``text_columns``, which never use
            it; equality, ``$in`` and ``$regex`` on such a path use it (a pattern
            that matches the empty string does not).
        label_field: the top-level field indexed in ``label_table``.
        label_paths: a table of ``(id, path)`` rows, when the label table's
            ``path`` holds the path's id there rather than the path itself.
        text_only: paths of ``text_columns`` that, as the catalog has checked,
            no stored document holds anything but a string, null or nothing at;
            sorts on them order by the plain column alone (NULL sorts where
            MongoDB puts null and missing), so an index can give the order.
    """

    default_column: str = "doc"
    columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    text_columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    date_columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    date_value: Callable[[dt.datetime], Any] = codec.date_text
    id_field: str | None = None
    side_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    side_table: str = "side_values"
    row_id: str = "rowid"
    flat_paths: frozenset[str] = frozenset()
    arrays_column: str | None = None
    array_fields: frozenset[str] = frozenset()
    array_flag: str | None = None
    text_only: frozenset[str] = frozenset()
    label_table: str | None = None
    label_paths: str | None = None
    label_field: str = "labels"

    def column(self, field: str) -> str:
        """The JSON column holding a top-level field."""
        return self.columns.get(field, self.default_column)


PLAIN = Layout()
"""One JSON column ``doc`` per row, nothing else."""


def regexp_sql(pattern: str, flags: str, value: object) -> int:
    """Return 1 if ``value`` is a string that ``pattern`` matches anywhere, else 0.

    This is the deterministic SQL function ``elliptio_regexp``; register it with
    ``connection.create_function(REGEXP_FUNCTION, 3, regexp_sql, deterministic=True)``.

    Args:
        pattern: a Python regular expression.
        flags: option letters among ``i``, ``m``, ``s``, ``x``.
        value: the SQL value to test; only strings can match.
    """
    if not isinstance(value, str):
        return 0
    regex_guard.note(pattern)
    return 1 if regex_guard.searcher(pattern, filters.regex_bits(flags)).search(value) else 0


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def canonical_sql(text: object) -> str | None:
    """The JSON text of a container with whole floats written as integers.

    This is the deterministic SQL function ``elliptio_canonical``; MongoDB finds
    ``[1, 2.0]`` equal to ``[1.0, 2]``, so containers compare in this form. Text
    that is no JSON (SQLite may call it on a string element before a type test)
    gives ``None``.
    """
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return json.dumps(_canonical(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# Type ranks of values inside documents and arrays, as MongoDB orders types.
_RANK_NULL, _RANK_NUMBER, _RANK_TEXT = b"\x01", b"\x02", b"\x03"
_RANK_OBJECT, _RANK_ARRAY, _RANK_BOOL, _RANK_DATE = b"\x04", b"\x05", b"\x08", b"\x09"
_END = b"\x00"  # ends a document or an array: the shorter one sorts first
_EXPONENT_BIAS = 2000  # below the smallest double's exponent (-1074)


def _text_key(text: str) -> bytes:
    # UTF-8 bytes order as MongoDB compares strings; NUL escaped, then a terminator,
    # so that a string sorts before every longer string it starts.
    return text.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _number_key(value: float) -> bytes:
    """Bytes ordered as the numbers are, exactly across integers and floats."""
    if value == 0:
        return b"\x80"
    magnitude = abs(value)
    if isinstance(magnitude, int):
        exponent = magnitude.bit_length() - 1
        shift = 63 - exponent
        mantissa = magnitude << shift if shift >= 0 else magnitude >> -shift
    else:
        fraction, binary_exponent = math.frexp(magnitude)
        exponent, mantissa = binary_exponent - 1, int(fraction * 2**64)
    body = (exponent + _EXPONENT_BIAS).to_bytes(2, "big") + mantissa.to_bytes(8, "big")
    if value > 0:
        return b"\x81" + body
    return b"\x7f" + bytes(255 - byte for byte in body)


def _sort_key(value: Any) -> bytes:
    """The type rank and the bytes of a decoded value, ordered as MongoDB orders
    BSON values: documents field by field (the value's type, then the name, then
    the value), arrays element by element."""
    if value is None:
        return _RANK_NULL
    if isinstance(value, bool):
        return _RANK_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int | float):
        return _RANK_NUMBER + _number_key(value)
    if isinstance(value, str):
        return _RANK_TEXT + _text_key(value)
    if isinstance(value, dt.datetime):
        return _RANK_DATE + (codec.date_millis(value) + 2**63).to_bytes(8, "big")
    if isinstance(value, dict):
        parts = [_RANK_OBJECT]
        for name, item in value.items():
            key = _sort_key(item)
            parts += [key[:1], _text_key(name), key[1:]]
        return b"".join([*parts, _END])
    if isinstance(value, list):
        return b"".join([_RANK_ARRAY, *(_sort_key(item) for item in value), _END])
    return _RANK_NULL


def sort_key_sql(text: object) -> bytes | None:
    """Bytes that order the JSON text of documents (dates among them) and arrays
    as MongoDB orders the values: ``{"a": 2}`` before ``{"a": 10}``, a number
    before a string. This is the deterministic SQL function ``elliptio_sort_key``;
    text that is no JSON gives ``None``."""
    if not isinstance(text, str):
        return None
    try:
        return _sort_key(codec.loads(text))
    except (ValueError, TypeError, OverflowError):
        return None


# The length of the array ``c.v``, called on JSON only (see `canonical_sql`).
_ARRAY_LENGTH = "json_array_length(CASE WHEN json_valid(c.v) THEN c.v ELSE '[]' END)"


def array_paths_text(paths: Sequence[str]) -> str:
    """The ``arrays_column`` text of a document's array paths (dotted, newline-framed).

    A key holding ``.`` or a newline can make a path look like another one; that
    only ever sends a document through the exact (slower) path walk.
    """
    return "\n" + "".join(f"{path}\n" for path in paths)


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions translated queries call on a connection.

    Also installs the progress handler through which `regex_guard.time_limit`
    stops a call that evaluates regular expressions for too long.
    """
    conn.create_function(REGEXP_FUNCTION, 3, regexp_sql, deterministic=True)
    conn.create_function(CANONICAL_FUNCTION, 1, canonical_sql, deterministic=True)
    conn.create_function(SORT_KEY_FUNCTION, 1, sort_key_sql, deterministic=True)
    regex_guard.install(conn)


def translate(filter: Any, *, layout: Layout = PLAIN) -> tuple[str, list[Any]]:
    """Translate a MongoDB filter document into an SQL boolean expression.

    Args:
        filter: the filter document; ``None`` or ``{}`` matches every document.
        layout: how the table stores documents.

    Returns:
        The expression over the table's columns and its parameters, in ``?N`` order.

    Raises:
        QueryError: the filter is malformed or uses an unsupported operator; the
            message names the operator or key (see `filters.check_filter`).
    """
    where, _, params = translate_query(filter, None, layout=layout)
    return where, params


def translate_sort(sort: Any, *, layout: Layout = PLAIN) -> tuple[str, list[Any]]:
    """Translate a PyMongo sort specification into an ``ORDER BY`` clause.

    Values order as MongoDB orders types: missing and null, numbers, strings,
    documents, arrays, booleans, dates; an array sorts by its smallest element
    ascending and its largest descending, an empty one below null; documents
    and arrays compare by their members (`sort_key_sql`), not their JSON text.

    Returns:
        ``"ORDER BY ..."`` (``""`` when ``sort`` is empty) and its parameters.

    Raises:
        QueryError: a key is malformed or a direction is not ``1`` or ``-1``.
    """
    _, order, params = translate_query(None, sort, layout=layout)
    return order, params


def translate_query(
    filter: Any, sort: Any, *, layout: Layout = PLAIN
) -> tuple[str, str, list[Any]]:
    """Translate a filter and a sort with one parameter list.

    Returns:
        The WHERE expression, the ORDER BY clause (or ``""``) and the parameters.

    Raises:
        QueryError: the filter or sort is not accepted (see `filters`).
    """
    filter = filters.check_filter(filter)
    pairs = filters.check_sort(sort)
    translator = _Translator(layout)
    where = "1" if filter is None else translator.filter_doc(filter, root=None)
    order = translator.order_by(pairs)
    return where, order, translator.params


def _number_text(value: float) -> str | None:
    """Text that the JSON of every stored number equal to ``value`` holds, if any.

    Stored numbers are written by `codec` as Python writes them: an integer as its
    digits, a float by ``repr``, which spells a whole float below 2**53 as those
    digits and ``.0``; no such text is known for other values.
    """
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return str(value) if abs(value) < 2**53 else None


def _join(op: str, parts: Sequence[str]) -> str:
    """``parts`` joined by ``op`` (AND, OR), grouped as a balanced tree.

    SQLite parses ``a OR b OR c ...`` into a tree as deep as the list is long and
    refuses one deeper than 1,000; grouped in eights, a list of any length (an
    ``$in`` of thousands of ids) stays a few levels deep.
    """
    if len(parts) <= _GROUP:
        return "(" + f" {op} ".join(parts) + ")"
    step = -(-len(parts) // _GROUP)
    return _join(op, [_join(op, parts[i : i + step]) for i in range(0, len(parts), step)])


_GROUP = 8
# Lists longer than this are bound as one JSON array (see `_Translator.listed`).
_LISTED_AS_PARAMS = 100
# Values an $in may list on a path without an index (each is an EXISTS of its
# own): 5,000 such values take about 6 s on the 2-core test machine.
MAX_WALKED_IN = 5_000


def _ordered_value(kind: str, value: str) -> str:
    """SQL of what orders the values of one type rank: documents and arrays by
    their sort key (`sort_key_sql`), never by their JSON text; dates by their
    text, which has a fixed width; scalars as they are."""
    return (
        f"CASE WHEN {kind} = 'array' OR ({kind} = 'object' AND {value} NOT GLOB '{_DATE_GLOB}')"
        f" THEN {SORT_KEY_FUNCTION}({value}) ELSE {value} END"
    )


def _negate(sql: str) -> str:
    # Index-friendly comparisons can be NULL when a field is missing; a negation
    # must still be true there, so test "is not true" instead of NOT.
    return f"(({sql}) IS NOT 1)"


def _quoted_path(segments: Sequence[str]) -> str:
    return "$" + "".join(f'."{segment}"' for segment in segments)


def _json_path(segments: Sequence[str]) -> str:
    return "'$." + ".".join(segments) + "'"


class _Source:
    """Where a predicate looks for candidate values.

    ``build()`` returns a ``WITH`` prefix (or ``""``) and a FROM clause whose alias
    ``c`` has columns ``t`` (json type, NULL when missing), ``v`` (value), ``m``
    (1 for the missing marker) and ``leaf`` (1 for a value at the end of the path,
    0 for an element of an array there). It is called once per use, so nothing
    is bound for a source no predicate reads.
    """

    def __init__(
        self,
        build: Callable[[], tuple[str, str]],
        fast: tuple[str, ...] | None = None,
        column: str = "",
    ) -> None:
        self.build = build
        # Plain identifier segments of a top-level path, or None; and its column.
        self.fast = fast
        self.column = column

    def exists(self, predicate: str) -> str:
        with_sql, from_sql = self.build()
        return f"EXISTS ({with_sql}SELECT 1 FROM {from_sql} WHERE {predicate})"

    @property
    def key(self) -> str | None:
        return ".".join(self.fast) if self.fast is not None else None


class _Translator:
    def __init__(self, layout: Layout) -> None:
        self.params: list[Any] = []
        self.layout = layout
        self._ids = itertools.count()
        # The JSON type of a root other than a record's (an $elemMatch element).
        self.root_types: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"?{len(self.params)}"

    def listed(self, values: Sequence[Any]) -> str:
        """SQL of a list of distinct values, for ``IN (...)``: one parameter each
        or, for a long list of strings and integers, one JSON array read with
        ``json_each`` (SQLite prepares a statement in time quadratic in its number
        of parameters: an ``$in`` of 100,000 ids took 16 s before it ran)."""
        distinct = list(dict.fromkeys(values))
        if len(distinct) > _LISTED_AS_PARAMS and all(
            (type(v) is str and "\x00" not in v) or (type(v) is int and abs(v) <= 2**63 - 1)
            for v in distinct
        ):  # (json_each cuts a string at NUL)
            return f"(SELECT value FROM json_each({self.param(json.dumps(distinct))}))"
        return "(" + ", ".join(self.param(v) for v in distinct) + ")"

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # -- filter documents ----------------------------------------------------

    def filter_doc(self, flt: Mapping[str, Any], *, root: str | None) -> str:
        """Clauses of a filter; ``root`` is None at the top, else a JSON expression."""
        clauses: list[str] = []
        for key, cond in flt.items():
            if key in filters.LOGICAL_OPERATORS:
                clauses.append(self.logical(key, cond, root=root))
            elif key != "$comment":
                clauses.append(self.field(key, cond, root=root))
        return _join("AND", clauses) if clauses else "1"

    def logical(self, op: str, subs: Sequence[Mapping[str, Any]], *, root: str | None) -> str:
        parts = [self.filter_doc(sub, root=root) for sub in subs]
        if op == "$and":
            return _join("AND", parts)
        joined = _join("OR", parts)
        return joined if op == "$or" else _negate(joined)

    def field(self, key: str, cond: Any, *, root: str | None) -> str:
        segments = filters.split_path(key)
        source = self.path_source(segments, root)
        if filters.is_operator_doc(cond):
            return self.operators(key, cond, source)
        if isinstance(cond, re.Pattern):
            return self.regex(cond, None, source)
        return self.eq(cond, source)

    # -- candidate values ----------------------------------------------------

    def path_source(self, segments: list[str], root: str | None) -> _Source:
        fast = None
        if root is None:
            root = self.layout.column(segments[0])
            if all(_IDENTIFIER.fullmatch(s) for s in segments):
                fast = tuple(segments)
        return _Source(functools.partial(self.walk, segments, root), fast, root)

    def walk(self, segments: list[str], root: str) -> tuple[str, str]:
        # Each level reads the previous one exactly once, so the plan stays linear
        # in the path length. Columns: t json type (NULL if missing), v value,
        # m 1 for "missing", k how the value was reached ('f' field, 'i' index).
        prefix = self.name("_n")
        kind = self.root_types.get(root, "'object'")
        ctes = [f"{prefix}_0(t, v, m, k) AS (SELECT {kind}, {root}, 0, 'f')"]
        scalar_dead_end = "(p.t NOT IN ('object', 'array') AND p.k = 'f')"
        for depth, segment in enumerate(segments):
            prev, cur = f"{prefix}_{depth}", f"{prefix}_{depth + 1}"
            key = self.param(segment)
            if segment.isdigit() and segment.isascii():
                # A numeric part indexes an array, or names a document's field.
                index = self.param(int(segment))
                step = (
                    f"SELECT c.type, c.value, c.key IS NULL,"
                    f" CASE WHEN p.t = 'array' THEN 'i' ELSE 'f' END FROM {prev} AS p"
                    f" LEFT JOIN json_each(CASE WHEN p.t IN ('object', 'array') THEN p.v END)"
                    f" AS c ON c.key = CASE WHEN p.t = 'array' THEN {index} ELSE {key} END"
                    f" WHERE p.m = 1 OR p.t = 'object'"
                    f" OR (p.t = 'array' AND c.key IS NOT NULL) OR {scalar_dead_end}"
                )
            else:
                # The field of a document, or of each document in an array; a
                # document without it, or a scalar where the path goes on, is
                # "missing"; scalars inside an array are skipped.
                step = (
                    f"SELECT c.type, c.value, c.key IS NULL, 'f' FROM {prev} AS p"
                    f" LEFT JOIN json_each(CASE WHEN p.t = 'array' THEN p.v END) AS e"
                    f" LEFT JOIN json_each(CASE WHEN p.t = 'object' THEN p.v"
                    f" WHEN e.type = 'object' THEN e.value END) AS c ON c.key = {key}"
                    f" WHERE p.m = 1 OR p.t = 'object' OR e.type = 'object'"
                    f" OR {scalar_dead_end}"
                )
            ctes.append(f"{cur}(t, v, m, k) AS ({step})")
        last = f"{prefix}_{len(segments)}"
        # The values at the end of the path (leaf = 1) and the elements of those
        # that are arrays (leaf = 0).
        ctes.append(
            f"{prefix}(t, v, m, leaf) AS (SELECT"
            f" CASE WHEN w.leaf = 1 THEN p.t ELSE e.type END,"
            f" CASE WHEN w.leaf = 1 THEN p.v ELSE e.value END,"
            f" CASE WHEN w.leaf = 1 THEN p.m ELSE 0 END, w.leaf"
            f" FROM {last} AS p JOIN (SELECT 1 AS leaf UNION ALL SELECT 0) AS w"
            f" LEFT JOIN json_each(CASE WHEN w.leaf = 0 AND p.t = 'array' THEN p.v END) AS e"
            f" WHERE w.leaf = 1 OR e.key IS NOT NULL)"
        )
        return "WITH " + ", ".join(ctes) + " ", f"{prefix} AS c"

    def single_source(self, alias: str) -> _Source:
        """Candidates for an ``$elemMatch`` value condition: the element, and the
        members of an element that is itself an array (as MongoDB matches them)."""
        from_sql = (
            f"(SELECT {alias}.type AS t, {alias}.value AS v, 0 AS m, 1 AS leaf"
            f" UNION ALL SELECT n.type, n.value, 0, 0 FROM json_each(CASE WHEN"
            f" {alias}.type = 'array' THEN {alias}.value END) AS n) AS c"
        )
        return _Source(lambda: ("", from_sql))

    def side(self, source: _Source) -> str | None:
        """The side-table field of a source, when its strings are in the side table."""
        if source.fast is not None and len(source.fast) == 1:
            name = source.fast[0]
            if name in self.layout.side_fields:
                return name
        return None

    def label_path(self, source: _Source) -> str | None:
        """The path in the label table (below the labels) of a source whose
        values it indexes."""
        lay = self.layout
        fast = source.fast
        if lay.label_table is None or fast is None or len(fast) < 2:
            return None
        if fast[0] != lay.label_field or ".".join(fast) in lay.text_columns:
            return None
        return ".".join(fast[1:])

    def label_lookup(self, path: str, values: Sequence[Any]) -> str:
        return (
            f"{self.layout.row_id} IN (SELECT artifact FROM {self.layout.label_table}"
            f" WHERE path = {self.label_key(path)} AND value IN {self.listed(values)})"
        )

    def label_key(self, path: str) -> str:
        """SQL of what the label table's ``path`` holds for ``path``."""
        lay = self.layout
        if lay.label_paths is None:
            return self.param(path)
        return f"(SELECT id FROM {lay.label_paths} WHERE path = {self.param(path)})"

    def side_lookup(self, field: str, condition: str) -> str:
        lay = self.layout
        return (
            f"{lay.row_id} IN (SELECT artifact FROM {lay.side_table}"
            f" WHERE field = {self.param(lay.side_fields[field])} AND {condition})"
        )

    # -- operators -----------------------------------------------------------

    def operators(self, key: str, ops: Mapping[str, Any], source: _Source) -> str:
        parts = [self.operator(key, op, operand, ops, source) for op, operand in ops.items()]
        return _join("AND", [p for p in parts if p])

    def operator(
        self, key: str, op: str, operand: Any, ops: Mapping[str, Any], source: _Source
    ) -> str:
        if op == "$eq":
            return self.eq(operand, source)
        if op == "$ne":
            return _negate(self.eq(operand, source))
        if op in _COMPARISONS:
            return self.compare(op, operand, source)
        if op in ("$in", "$nin"):
            inside = self.in_(operand, source)
            return inside if op == "$in" else _negate(inside)
        if op == "$exists":
            exists = source.exists("c.m = 0")
            return exists if operand else _negate(exists)
        if op == "$type":
            wanted = [_TYPE_PREDICATES.get(n) for n in filters.type_names(operand)]
            known = [f"({p})" for p in wanted if p is not None]
            return source.exists(" OR ".join(known)) if known else "0"
        if op == "$regex":
            return self.regex(operand, ops.get("$options"), source)
        if op == "$options":
            return ""  # consumed by $regex
        if op == "$not":
            if isinstance(operand, re.Pattern):
                return _negate(self.regex(operand, None, source))
            return _negate(self.operators(key, operand, source))
        if op == "$all":
            if not operand:
                return "0"
            parts = []
            for item in operand:
                if isinstance(item, Mapping) and "$elemMatch" in item:
                    parts.append(self.elem_match(item["$elemMatch"], source))
                else:
                    parts.append(self.eq_or_regex(item, source))
            return _join("AND", parts)
        if op == "$size":
            return source.exists(
                # SQLite may call the function before it tests the type (the test
                # is propagated into the CASE), on the text of a string element.
                f"c.leaf = 1 AND c.t = 'array' AND {_ARRAY_LENGTH} = {self.param(operand)}"
            )
        assert op == "$elemMatch", op
        return self.elem_match(operand, source)

    def elem_match(self, inner: Mapping[str, Any], source: _Source) -> str:
        alias = self.name("_e")
        keys = list(inner)
        value_form = bool(keys) and all(
            k.startswith("$") and k not in filters.LOGICAL_OPERATORS for k in keys
        )
        if value_form:
            predicate = self.operators("", inner, self.single_source(alias))
        else:
            # An element that is an array is read as a document whose fields are
            # its indexes ("0", "1", ...), as MongoDB reads it.
            self.root_types[f"{alias}.value"] = f"{alias}.type"
            doc = self.filter_doc(inner, root=f"{alias}.value")
            predicate = f"{alias}.type IN ('object', 'array') AND {doc}"
        return source.exists(
            f"c.leaf = 1 AND c.t = 'array' AND EXISTS (SELECT 1 FROM json_each("
            f"CASE WHEN c.t = 'array' THEN c.v END) AS {alias} WHERE {predicate})"
        )

    def in_(self, operand: Sequence[Any], source: _Source) -> str:
        if not operand:
            return "0"
        label = self.label_path(source)
        indexed = [v for v in operand if label_indexable(v)]
        if label is not None and indexed:
            parts = [self.label_lookup(label, indexed)]
            parts += [self.eq_or_regex(v, source) for v in operand if not label_indexable(v)]
            return _join("OR", parts)
        side = self.side(source)
        strings = [v for v in operand if isinstance(v, str)]
        if side is not None and strings:
            rest = [v for v in operand if not isinstance(v, str)]
            parts = [self.side_lookup(side, f"value IN {self.listed(strings)}")]
            parts += [self.eq_or_regex(v, source) for v in rest]
            return _join("OR", parts)
        lay = self.layout
        if (
            source.fast is not None
            and lay.id_field
            and ".".join(source.fast) == lay.id_field
            and all(isinstance(v, str) for v in operand)
        ):  # the id column: one indexed list, however long
            return f"{lay.id_field} IN {self.listed(operand)}"
        in_column = (
            source.fast is not None
            and ".".join(source.fast) in lay.text_columns
            and all(isinstance(v, str) for v in operand)
        )
        if in_column and len(operand) > _LISTED_AS_PARAMS:  # one list, as for the id
            return self.fast_or_general(
                source, "c.t = 'text'", f"IN {self.listed(operand)}", text=True
            )
        if len(operand) > MAX_WALKED_IN and not in_column:
            raise QueryError(
                f"an $in or $nin of {len(operand):,} values on a field the SQLite catalog "
                f"has no index for: at most {MAX_WALKED_IN:,} are accepted there, as each "
                "is a search of its own; split it into several queries"
            )
        return _join("OR", [self.eq_or_regex(item, source) for item in operand])

    def eq_or_regex(self, value: Any, source: _Source) -> str:
        if isinstance(value, re.Pattern):
            return self.regex(value, None, source)
        return self.eq(value, source)

    # -- leaf predicates -----------------------------------------------------

    def eq(self, value: Any, source: _Source) -> str:
        if value is None:
            general = source.exists("(c.m = 1 OR c.t = 'null')")
            if source.fast is not None and len(source.fast) == 1:
                column = self.layout.columns.get(source.fast[0])
                # A column of the field alone is '{}' when the field is missing.
                if column is not None and list(self.layout.columns.values()).count(column) == 1:
                    return f"({column} = '{{}}' OR {general})"
            return general
        if isinstance(value, bool):
            return self.fast_or_general(source, f"c.t = '{'true' if value else 'false'}'", None)
        if isinstance(value, str):
            side = self.side(source)
            if side is not None:
                return self.side_lookup(side, f"value = {self.param(value)}")
        if label_indexable(value) and (label := self.label_path(source)) is not None:
            return self.label_lookup(label, [value])
        return self.compare_value("=", value, source)

    def compare(self, op: str, value: Any, source: _Source) -> str:
        if value is None:
            # null sorts below everything else and equals only null/missing.
            return self.eq(None, source) if op in ("$gte", "$lte") else "0"
        return self.compare_value(_COMPARISONS[op], value, source)

    def compare_value(self, sql_op: str, value: Any, source: _Source) -> str:
        if isinstance(value, bool):
            param = self.param(int(value))
            return source.exists(f"c.t IN ('true', 'false') AND c.v {sql_op} {param}")
        if isinstance(value, int | float):
            param = self.param(value)
            return self.fast_or_general(
                source,
                "c.t IN ('integer', 'real')",
                f"{sql_op} {param}",
                needle=_number_text(value) if sql_op == "=" else None,
            )
        if isinstance(value, str):
            param = self.param(value)
            return self.fast_or_general(
                source,
                "c.t = 'text'",
                f"{sql_op} {param}",
                text=True,
                needle=codec.to_text(value) if sql_op == "=" else None,
            )
        if isinstance(value, dt.datetime):
            param = self.param(codec.dumps(value))
            kind = "c.t = 'object'" if sql_op == "=" else _IS_DATE
            return self.fast_or_general(
                source, kind, f"{sql_op} {param}", date=(sql_op, self.layout.date_value(value))
            )
        # A list or a document: equal when the canonical JSON texts are.
        kind = "'array'" if isinstance(value, list | tuple) else "'object'"
        param = self.param(canonical_sql(codec.dumps(value)))
        return source.exists(f"c.t = {kind} AND {CANONICAL_FUNCTION}(c.v) = {param}")

    def fast_or_general(
        self,
        source: _Source,
        kind: str,
        comparison: str | None,
        *,
        date: tuple[str, Any] | None = None,
        text: bool = False,
        scalar_test: Callable[[str], str] | None = None,
        needle: str | None = None,
    ) -> str:
        """Return ``EXISTS`` over the candidates, led by an index-friendly test.

        For a top-level path of plain identifiers without arrays on the way, the
        only candidate is ``json_extract(column, '$.a.b')``, or the layout's plain
        column for the path: test it directly (the form the catalog indexes), and
        fall back to the full walk only for documents where some prefix of the
        path is an array.

        ``needle`` is text that the JSON of every matching value holds; as each
        candidate is a piece of the column's JSON text, a document whose column
        lacks it cannot match, and is passed over without parsing its JSON.
        """
        general_pred = f"{kind} AND c.v {comparison}" if comparison else kind
        if scalar_test is not None:
            general_pred = f"{kind} AND {scalar_test('c.v')}"
        if source.fast is None:
            return source.exists(general_pred)
        segments, column = source.fast, source.column
        lay = self.layout
        key = ".".join(segments)
        if key == lay.id_field and text:
            # Always a string, in its own column: no other form to consider.
            if scalar_test is not None:
                return scalar_test(key)
            return f"{key} {comparison}"
        path = _json_path(segments)
        value_sql = f"json_extract({column}, {path})"
        scalar = kind.replace("c.t", f"json_type({column}, {path})").replace("c.v", value_sql)
        # The value test first: it is false for most rows, which then skip the type test.
        if scalar_test is not None:
            scalar = f"{scalar_test(value_sql)} AND {scalar}"
        elif comparison:
            scalar = f"{value_sql} {comparison} AND {scalar}"
        if date is not None and key in lay.date_columns:
            sql_op, stored = date
            scalar = f"{lay.date_columns[key]} {sql_op} {self.param(stored)}"
            needle = None
        elif text and key in lay.text_columns:
            col = lay.text_columns[key]
            scalar = scalar_test(col) if scalar_test is not None else f"{col} {comparison}"
            needle = None
        if key in lay.flat_paths:
            test = scalar
        else:
            # Where an array lies on the path, walk it; the test for that is indexed
            # for promoted paths, so SQLite can still answer by MULTI-INDEX OR.
            involved = self.array_involved(list(segments), column)
            test = f"(({scalar}) OR ({involved} AND {source.exists(general_pred)}))"
        if needle is None:
            return test
        return f"(instr({column}, {self.param(needle)}) > 0 AND {test})"

    def array_involved(self, segments: list[str], column: str) -> str:
        """SQL true when an array lies on the path (possibly, for odd keys)."""
        lay = self.layout
        key = ".".join(segments)
        if lay.array_flag is not None and (key in lay.text_columns or key in lay.date_columns):
            return (
                f"{lay.row_id} IN (SELECT artifact FROM {lay.side_table}"
                f" WHERE field = {self.param(lay.array_flag)} AND value = {self.param(key)})"
            )
        prefixes = [segments[: i + 1] for i in range(len(segments))]
        if lay.arrays_column is not None:
            # The column leaves out the fields of ``array_fields``: their JSON says.
            listed = prefixes[1:] if segments[0] in lay.array_fields else prefixes
            tests = [
                f"instr({lay.arrays_column}, {self.param(array_paths_text(['.'.join(p)]))}) > 0"
                for p in listed
            ]
            if len(tests) > 1:
                # Each test's text starts with "\n" and the first segment: look
                # for that once, as most documents have no array there.
                first = self.param("\n" + segments[0])
                tests = [f"(instr({lay.arrays_column}, {first}) > 0 AND ({' OR '.join(tests)}))"]
            if listed is not prefixes:
                path = self.param(_quoted_path(segments[:1]))
                tests.insert(0, f"json_type({column}, {path}) = 'array'")
        else:
            tests = [
                f"json_type({column}, {self.param(_quoted_path(p))}) = 'array'" for p in prefixes
            ]
        return _join("OR", tests)

    def regex(self, pattern: Any, options: Any, source: _Source) -> str:
        text, flags = filters.regex_parts(pattern, options)
        pattern_param, flags_param = self.param(text), self.param(flags)
        like = like_prefilter(text, flags)
        like_param = self.param(like) if like is not None else None
        span = prefix_range(text, flags)
        low, high = (self.param(span[0]), self.param(span[1])) if span else (None, None)

        def test(value_sql: str) -> str:
            found = f"{REGEXP_FUNCTION}({pattern_param}, {flags_param}, {value_sql})"
            if low is not None:
                # Every string the pattern can match lies in this range (an index range).
                found = f"{value_sql} >= {low} AND {value_sql} < {high} AND {found}"
            if like_param is None:
                return found
            # Passes every string the pattern can match, in C, before the regex runs.
            return f"{value_sql} LIKE {like_param} ESCAPE '\\' AND {found}"

        side = self.side(source)
        if side is not None:
            return self.side_lookup(side, test("value"))
        label = self.label_path(source)
        if label is not None and not regex_guard.searcher(text, filters.regex_bits(flags)).search(
            ""
        ):
            return (
                f"{self.layout.row_id} IN (SELECT artifact FROM {self.layout.label_table}"
                f" WHERE path = {self.label_key(label)} AND typeof(value) = 'text'"
                f" AND {test('value')})"
            )
        return self.fast_or_general(source, "c.t = 'text'", None, text=True, scalar_test=test)

    # -- sort ----------------------------------------------------------------

    def order_by(self, pairs: Sequence[tuple[str, int]]) -> str:
        terms: list[str] = []
        for key, direction in pairs:
            terms.extend(self.sort_terms(key, direction))
        return "ORDER BY " + ", ".join(terms) if terms else ""

    def sort_terms(self, key: str, direction: int) -> list[str]:
        order = "ASC" if direction == 1 else "DESC"
        lay = self.layout
        if key == lay.id_field:
            return [f"{key} {order}"]
        if key in lay.text_only and key in lay.flat_paths and key in lay.text_columns:
            # Strings (rank 3) above null and missing (rank 1), compared bytewise:
            # exactly the column's order with NULLs first ascending, last descending.
            return [f"{lay.text_columns[key]} {order}"]
        if key in lay.date_columns and key in lay.flat_paths:
            # Dates sort above every other type and NULL below every value, so
            # the plain column orders the rows alone (and can come from an index);
            # the rest only breaks ties among rows that hold no date there.
            head = [f"{lay.date_columns[key]} {order}"]
        else:
            head = []
        segments = filters.split_path(key)
        column = lay.column(segments[0])
        path = self.param("$" + "".join(f'."{segment}"' for segment in segments))
        kind = f"json_type({column}, {path})"
        raw = f"json_extract({column}, {path})"
        scalar_rank = (
            f"CASE WHEN {kind} IS NULL OR {kind} = 'null' THEN 1"
            f" WHEN {kind} IN ('integer', 'real') THEN 2"
            f" WHEN {kind} = 'text' THEN 3"
            f" WHEN {kind} = 'object' THEN"
            f" (CASE WHEN {raw} GLOB '{_DATE_GLOB}' THEN 9 ELSE 4 END)"
            f" ELSE 8 END"
        )
        value = _ordered_value(kind, raw)
        if key in lay.flat_paths:
            if head:
                # Only rows without a date there need the JSON to break ties.
                column_sql = lay.date_columns[key]
                scalar_rank = f"CASE WHEN {column_sql} IS NULL THEN {scalar_rank} END"
                value = f"CASE WHEN {column_sql} IS NULL THEN {value} END"
            return [*head, f"{scalar_rank} {order}", f"{value} {order}"]
        # Where an array lies on the path, the key is the smallest candidate
        # ascending, the largest descending; an empty array sorts below null.
        involved = self.array_involved(segments, column)
        rank_of = (
            "CASE WHEN c.m = 1 OR c.t = 'null' THEN 1 WHEN c.t IN ('integer', 'real') THEN 2"
            " WHEN c.t = 'text' THEN 3 WHEN c.t = 'object' THEN"
            f" (CASE WHEN c.v GLOB '{_DATE_GLOB}' THEN 9 ELSE 4 END)"
            " WHEN c.t = 'array' THEN 5 ELSE 8 END"
        )

        def pick(what: str) -> str:
            with_sql, from_sql = self.walk(segments, column)
            empty_with, empty_from = self.walk(segments, column)
            candidates = (
                f"{with_sql}SELECT {rank_of} AS r, {_ordered_value('c.t', 'c.v')} AS v"
                f" FROM {from_sql}"
                " WHERE NOT (c.leaf = 1 AND c.t = 'array')"
                " UNION ALL SELECT 0, NULL FROM"
                f" ({empty_with}SELECT 1 FROM {empty_from} WHERE c.leaf = 1 AND c.t = 'array'"
                f" AND {_ARRAY_LENGTH} = 0)"
            )
            return f"(SELECT {what} FROM ({candidates}) ORDER BY r {order}, v {order} LIMIT 1)"

        rank = f"(CASE WHEN {involved} THEN {pick('r')} ELSE {scalar_rank} END)"
        val = f"(CASE WHEN {involved} THEN {pick('v')} ELSE {value} END)"
        return [*head, f"{rank} {order}", f"{val} {order}"]
