"""Translate MongoDB filter documents into SQLite SQL over JSON documents.

Pure functions, no I/O. `translate` turns a filter into one SQL boolean expression
over a table whose ``doc`` column holds `codec.dumps` text; `translate_sort` turns
a PyMongo sort specification into an ``ORDER BY`` clause. User values are always
bound as parameters (numbered ``?N`` placeholders); field names are bound too,
except for plain identifier paths, which are written as JSON path literals so the
catalog's expression indexes can serve them.

MongoDB's path semantics are reproduced with JSON1 table-valued functions: for a
dotted path, a chain of correlated common table expressions yields every value
MongoDB would consider (walking into embedded documents and through arrays of
documents, expanding an array at the end of the path into its elements), plus a
"missing" marker wherever the path ends in nothing; each operator then becomes an
``EXISTS`` over those candidates. Type bracketing is enforced with ``json_type``.

Regular expressions run through the SQL function `regexp_sql`, registered on each
connection as ``elliptio_regexp(pattern, flags, value)``.
"""

# SQL here is assembled from fixed fragments; every user value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from elliptio._catalog import codec
from elliptio._errors import QueryError

__all__ = ["REGEXP_FUNCTION", "regexp_sql", "translate", "translate_sort"]

REGEXP_FUNCTION = "elliptio_regexp"

_SERVER_SIDE = frozenset({"$where", "$function", "$accumulator", "$expr"})
_LOGICAL = frozenset({"$and", "$or", "$nor"})
_FIELD_OPERATORS = frozenset(
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
        "$regex",
        "$options",
        "$not",
        "$all",
        "$size",
        "$elemMatch",
    }
)
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE_GLOB = '{"$date":"*'
_SORT_SEGMENT_FORBIDDEN = re.compile(r'["\\\x00-\x1f]')


@functools.lru_cache(maxsize=512)
def _compile(pattern: str, flags: str) -> re.Pattern[str]:
    bits = 0
    for letter in flags:
        bits |= _REGEX_FLAGS[letter]
    return re.compile(pattern, bits)


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
    return 1 if _compile(pattern, flags).search(value) else 0


def translate(
    filter: Mapping[str, Any] | None,
    *,
    date_columns: Mapping[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """Translate a MongoDB filter document into an SQL boolean expression.

    Args:
        filter: the filter document; ``None`` or ``{}`` matches every document.
        date_columns: top-level field names mapped to columns of the same table
            that hold the field's `codec.date_text` when the field is a datetime
            and NULL otherwise; comparisons with datetimes then use the column
            (and its index).

    Returns:
        The expression over column ``doc`` and its parameters, in ``?N`` order.

    Raises:
        QueryError: the filter is malformed or uses an unsupported operator; the
            message names the operator or key.
    """
    translator = _Translator(date_columns or {})
    if filter is None:
        return "1", []
    sql = translator.filter_doc(filter, root="doc", where="filter")
    return sql, translator.params


def translate_sort(sort: Sequence[tuple[str, int]] | None) -> str:
    """Translate a PyMongo sort specification into an ``ORDER BY`` clause.

    Values order as MongoDB orders types: missing and null, numbers, strings,
    documents, arrays, booleans, dates. An array sorts as a whole rather than by
    its smallest or largest element.

    Args:
        sort: ``(dotted key, direction)`` pairs, direction ``1`` or ``-1``.

    Returns:
        ``"ORDER BY ..."`` over column ``doc``, or ``""`` when ``sort`` is empty.

    Raises:
        QueryError: a key is malformed or a direction is not ``1`` or ``-1``.
    """
    if not sort:
        return ""
    if isinstance(sort, str | bytes) or not isinstance(sort, Sequence):
        raise QueryError(f"sort must be a list of (key, direction) pairs, not {sort!r}")
    terms: list[str] = []
    for item in sort:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise QueryError(f"sort entry {item!r} is not a (key, direction) pair")
        key, direction = item
        if not isinstance(key, str):
            raise QueryError(f"sort key {key!r} is not a string")
        segments = _split_path(key)
        if isinstance(direction, bool) or direction not in (1, -1):
            raise QueryError(f"sort direction for {key!r} must be 1 or -1, not {direction!r}")
        for segment in segments:
            if _SORT_SEGMENT_FORBIDDEN.search(segment):
                raise QueryError(
                    f"sort key {key!r} contains a quote, backslash or control character"
                )
        path = "'$" + "".join(f'."{segment}"' for segment in segments) + "'"
        order = "ASC" if direction == 1 else "DESC"
        kind = f"json_type(doc, {path})"
        value = f"json_extract(doc, {path})"
        rank = (
            f"CASE WHEN {kind} IS NULL OR {kind} = 'null' THEN 1"
            f" WHEN {kind} IN ('integer', 'real') THEN 2"
            f" WHEN {kind} = 'text' THEN 3"
            f" WHEN {kind} = 'object' THEN"
            f" (CASE WHEN {value} GLOB '{_DATE_GLOB}' THEN 9 ELSE 4 END)"
            f" WHEN {kind} = 'array' THEN 5 ELSE 8 END"
        )
        terms.append(f"{rank} {order}, {value} {order}")
    return "ORDER BY " + ", ".join(terms)


def _split_path(key: str) -> list[str]:
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


def _is_operator_doc(value: Any) -> bool:
    return isinstance(value, Mapping) and any(
        isinstance(k, str) and k.startswith("$") for k in value
    )


def _negate(sql: str) -> str:
    # Index-friendly comparisons can be NULL when a field is missing; a negation
    # must still be true there, so test "is not true" instead of NOT.
    return f"(({sql}) IS NOT 1)"


def _refuse_server_side(op: str) -> QueryError:
    return QueryError(
        f"{op} is refused: elliptio never runs server-side code in queries; "
        "filter with field conditions instead"
    )


class _Source:
    """Where a predicate looks for candidate values.

    ``build()`` returns a ``WITH`` prefix (or ``""``) and a FROM clause whose alias
    ``c`` has columns ``t`` (json type, NULL when missing), ``v`` (value), ``m``
    (1 for the missing marker) and ``leaf`` (1 for a value at the end of the path,
    0 for an element of an array there). It is called once per use, so nothing
    is bound for a source no predicate reads.
    """

    def __init__(self, build: Callable[[], tuple[str, str]], fast: tuple[str, ...] | None) -> None:
        self.build = build
        # Plain identifier segments of a top-level path, or None.
        self.fast = fast

    def exists(self, predicate: str) -> str:
        with_sql, from_sql = self.build()
        return f"EXISTS ({with_sql}SELECT 1 FROM {from_sql} WHERE {predicate})"


class _Translator:
    def __init__(self, date_columns: Mapping[str, str]) -> None:
        self.params: list[Any] = []
        self.date_columns = date_columns
        self._ids = itertools.count()

    # -- helpers -----------------------------------------------------------

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"?{len(self.params)}"

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def encode(self, value: Any, where: str) -> str:
        try:
            return codec.dumps(value)
        except (TypeError, ValueError) as err:
            raise QueryError(f"value for {where!r} cannot be queried: {err}") from err

    # -- filter documents ----------------------------------------------------

    def filter_doc(self, flt: Any, *, root: str, where: str) -> str:
        if not isinstance(flt, Mapping):
            raise QueryError(
                f"{where} must be a mapping (a filter document), not {type(flt).__name__}"
            )
        clauses: list[str] = []
        for key, cond in flt.items():
            if not isinstance(key, str):
                raise QueryError(f"field name {key!r} in {where} is not a string")
            if key in _SERVER_SIDE:
                raise _refuse_server_side(key)
            if key in _LOGICAL:
                clauses.append(self.logical(key, cond, root=root))
            elif key == "$comment":
                continue
            elif key.startswith("$"):
                raise QueryError(
                    f"unsupported top-level operator {key!r}; use $and, $or, $nor "
                    "or field conditions"
                )
            else:
                clauses.append(self.field(key, cond, root=root))
        return "(" + " AND ".join(clauses) + ")" if clauses else "1"

    def logical(self, op: str, subs: Any, *, root: str) -> str:
        if not isinstance(subs, list | tuple) or not subs:
            raise QueryError(f"{op} needs a non-empty list of filter documents, not {subs!r}")
        parts = [self.filter_doc(sub, root=root, where=f"an entry of {op}") for sub in subs]
        if op == "$and":
            return "(" + " AND ".join(parts) + ")"
        joined = "(" + " OR ".join(parts) + ")"
        return joined if op == "$or" else _negate(joined)

    def field(self, key: str, cond: Any, *, root: str) -> str:
        segments = _split_path(key)
        source = self.path_source(segments, root)
        if _is_operator_doc(cond):
            return self.operators(key, cond, source, root=root)
        if isinstance(cond, re.Pattern):
            return self.regex(key, cond, None, source)
        return self.eq(key, cond, source)

    # -- candidate values ----------------------------------------------------

    def path_source(self, segments: list[str], root: str) -> _Source:
        fast = None
        if root == "doc" and all(_IDENTIFIER.fullmatch(s) for s in segments):
            fast = tuple(segments)
        return _Source(functools.partial(self.walk, segments, root), fast)

    def walk(self, segments: list[str], root: str) -> tuple[str, str]:
        # Each level reads the previous one exactly once, so the plan stays linear
        # in the path length. Columns: t json type (NULL if missing), v value,
        # m 1 for "missing", k how the value was reached ('f' field, 'i' index).
        prefix = self.name("_n")
        ctes = [f"{prefix}_0(t, v, m, k) AS (SELECT 'object', {root}, 0, 'f')"]
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
        """Candidates for an ``$elemMatch`` value condition: just the element."""
        from_sql = f"(SELECT {alias}.type AS t, {alias}.value AS v, 0 AS m, 1 AS leaf) AS c"
        return _Source(lambda: ("", from_sql), None)

    # -- operators -----------------------------------------------------------

    def operators(self, key: str, ops: Mapping[str, Any], source: _Source, *, root: str) -> str:
        for op in ops:
            if not (isinstance(op, str) and op.startswith("$")):
                raise QueryError(
                    f"condition for {key!r} mixes operators and field names ({op!r}); "
                    "use either {'$op': value, ...} or a document to compare with"
                )
        if "$options" in ops and "$regex" not in ops:
            raise QueryError(f"$options for {key!r} needs $regex next to it")
        parts: list[str] = []
        for op, operand in ops.items():
            if op in _SERVER_SIDE:
                raise _refuse_server_side(op)
            if op not in _FIELD_OPERATORS:
                raise QueryError(
                    f"unsupported operator {op!r} for {key!r}; supported: "
                    + ", ".join(sorted(_FIELD_OPERATORS))
                )
            parts.append(self.operator(key, op, operand, ops, source, root=root))
        return "(" + " AND ".join(p for p in parts if p) + ")"

    def operator(
        self,
        key: str,
        op: str,
        operand: Any,
        ops: Mapping[str, Any],
        source: _Source,
        *,
        root: str,
    ) -> str:
        where = f"{key}.{op}"
        if op == "$eq":
            if isinstance(operand, re.Pattern):
                raise QueryError(f"{where}: $eq cannot take a regular expression; use $regex")
            return self.eq(where, operand, source)
        if op == "$ne":
            if isinstance(operand, re.Pattern):
                raise QueryError(f"{where}: $ne cannot take a regular expression; use $not")
            return _negate(self.eq(where, operand, source))
        if op in _COMPARISONS:
            return self.compare(where, op, operand, source)
        if op in ("$in", "$nin"):
            inside = self.in_(where, operand, source)
            return inside if op == "$in" else _negate(inside)
        if op == "$exists":
            if not isinstance(operand, bool | int) or (
                not isinstance(operand, bool) and operand not in (0, 1)
            ):
                raise QueryError(f"{where} needs true or false, not {operand!r}")
            exists = source.exists("c.m = 0")
            return exists if operand else _negate(exists)
        if op == "$regex":
            options = ops.get("$options")
            return self.regex(where, operand, options, source)
        if op == "$options":
            return ""  # consumed by $regex
        if op == "$not":
            if isinstance(operand, re.Pattern):
                return _negate(self.regex(where, operand, None, source))
            if not _is_operator_doc(operand):
                raise QueryError(
                    f"{where} needs a regular expression or an operator document "
                    f"such as {{'$gt': 1}}, not {operand!r}"
                )
            return _negate(self.operators(key, operand, source, root=root))
        if op == "$all":
            if not isinstance(operand, list | tuple):
                raise QueryError(f"{where} needs a list, not {type(operand).__name__}")
            if not operand:
                return "0"
            parts = []
            for i, item in enumerate(operand):
                if isinstance(item, Mapping) and "$elemMatch" in item:
                    if len(item) != 1:
                        raise QueryError(f"{where}[{i}]: $elemMatch must stand alone")
                    parts.append(self.elem_match(f"{where}[{i}]", item["$elemMatch"], source))
                elif _is_operator_doc(item):
                    raise QueryError(f"{where}[{i}]: only $elemMatch may appear inside $all")
                else:
                    parts.append(self.eq_or_regex(f"{where}[{i}]", item, source))
            return "(" + " AND ".join(parts) + ")"
        if op == "$size":
            if isinstance(operand, bool) or not isinstance(operand, int) or operand < 0:
                raise QueryError(f"{where} needs a non-negative integer, not {operand!r}")
            return source.exists(
                f"c.leaf = 1 AND c.t = 'array' AND json_array_length(c.v) = {self.param(operand)}"
            )
        assert op == "$elemMatch"
        return self.elem_match(where, operand, source)

    def elem_match(self, where: str, inner: Any, source: _Source) -> str:
        if not isinstance(inner, Mapping):
            raise QueryError(f"{where} needs a filter document, not {type(inner).__name__}")
        alias = self.name("_e")
        keys = [k for k in inner if isinstance(k, str)]
        value_form = bool(keys) and all(k.startswith("$") and k not in _LOGICAL for k in keys)
        if value_form:
            if len(keys) != len(inner):
                raise QueryError(f"{where} has a field name that is not a string")
            predicate = self.operators(where, inner, self.single_source(alias), root="")
        else:
            doc = self.filter_doc(inner, root=f"{alias}.value", where=where)
            predicate = f"{alias}.type = 'object' AND {doc}"
        return source.exists(
            f"c.leaf = 1 AND c.t = 'array' AND EXISTS (SELECT 1 FROM json_each("
            f"CASE WHEN c.t = 'array' THEN c.v END) AS {alias} WHERE {predicate})"
        )

    def in_(self, where: str, operand: Any, source: _Source) -> str:
        if not isinstance(operand, list | tuple):
            raise QueryError(f"{where} needs a list, not {type(operand).__name__}")
        if not operand:
            return "0"
        parts = []
        for i, item in enumerate(operand):
            if _is_operator_doc(item):
                raise QueryError(f"{where}[{i}]: operators cannot appear inside $in / $nin")
            parts.append(self.eq_or_regex(f"{where}[{i}]", item, source))
        return "(" + " OR ".join(parts) + ")"

    def eq_or_regex(self, where: str, value: Any, source: _Source) -> str:
        if isinstance(value, re.Pattern):
            return self.regex(where, value, None, source)
        return self.eq(where, value, source)

    # -- leaf predicates -----------------------------------------------------

    def eq(self, where: str, value: Any, source: _Source) -> str:
        if value is None:
            return source.exists("(c.m = 1 OR c.t = 'null')")
        if isinstance(value, bool):
            return self.fast_or_general(
                source, f"c.t = '{'true' if value else 'false'}'", None, None
            )
        return self.compare_value(where, "=", value, source)

    def compare(self, where: str, op: str, value: Any, source: _Source) -> str:
        if value is None:
            # null sorts below everything else and equals only null/missing.
            return self.eq(where, None, source) if op in ("$gte", "$lte") else "0"
        if isinstance(value, re.Pattern | list | tuple | Mapping):
            raise QueryError(
                f"{where}: comparing with a {type(value).__name__} is not supported; "
                "compare with a number, string, boolean or datetime"
            )
        return self.compare_value(where, _COMPARISONS[op], value, source)

    def compare_value(self, where: str, sql_op: str, value: Any, source: _Source) -> str:
        if isinstance(value, bool):
            param = self.param(int(value))
            return source.exists(f"c.t IN ('true', 'false') AND c.v {sql_op} {param}")
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise QueryError(f"{where}: {value} cannot be queried; use a finite number")
            if isinstance(value, int) and not codec.INT64_MIN <= value <= codec.INT64_MAX:
                raise QueryError(f"{where}: {value} does not fit in 64 bits")
            param = self.param(value)
            return self.fast_or_general(
                source, "c.t IN ('integer', 'real')", f"{sql_op} {param}", None
            )
        if isinstance(value, str):
            param = self.param(value)
            return self.fast_or_general(source, "c.t = 'text'", f"{sql_op} {param}", None)
        if isinstance(value, dt.datetime):
            try:
                text = codec.date_text(value)
            except TypeError as err:
                raise QueryError(f"{where}: {err}") from err
            param = self.param(codec.dumps(value))
            kind = (
                "c.t = 'object'" if sql_op == "=" else f"c.t = 'object' AND c.v GLOB '{_DATE_GLOB}'"
            )
            return self.fast_or_general(source, kind, f"{sql_op} {param}", (sql_op, text))
        if isinstance(value, list | tuple | Mapping):
            if sql_op != "=":
                raise QueryError(f"{where}: ordering comparisons with {type(value).__name__}")
            kind = "'array'" if isinstance(value, list | tuple) else "'object'"
            param = self.param(self.encode(value, where))
            return source.exists(f"c.t = {kind} AND c.v = {param}")
        raise QueryError(
            f"value for {where!r} of type {type(value).__name__} cannot be queried; use "
            "str, int, float, bool, None, tz-aware datetime, list or dict"
        )

    def fast_or_general(
        self,
        source: _Source,
        kind: str,
        comparison: str | None,
        date: tuple[str, str] | None,
    ) -> str:
        """Return ``EXISTS`` over the candidates, led by an index-friendly test.

        For a top-level path of plain identifiers without arrays on the way, the
        only candidate is ``json_extract(doc, '$.a.b')``: test it directly (the
        form the catalog indexes), and fall back to the full walk only for
        documents where some prefix of the path is an array.
        """
        general_pred = f"{kind} AND c.v {comparison}" if comparison else kind
        if source.fast is None:
            return source.exists(general_pred)
        segments = source.fast
        path = "'$." + ".".join(segments) + "'"
        scalar = kind.replace("c.t", f"json_type(doc, {path})").replace(
            "c.v", f"json_extract(doc, {path})"
        )
        if comparison:
            scalar += f" AND json_extract(doc, {path}) {comparison}"
        if date is not None and len(segments) == 1 and segments[0] in self.date_columns:
            sql_op, text = date
            scalar = f"{self.date_columns[segments[0]]} {sql_op} {self.param(text)}"
        # One OR term per prefix that may be an array, so that with an index per
        # term (the catalog's partial indexes) SQLite can answer by MULTI-INDEX OR.
        terms = [scalar] + [
            "json_type(doc, '$."
            + ".".join(segments[: i + 1])
            + "') = 'array' AND "
            + source.exists(general_pred)
            for i in range(len(segments))
        ]
        return "(" + " OR ".join(f"({term})" for term in terms) + ")"

    def regex(self, where: str, pattern: Any, options: Any, source: _Source) -> str:
        flags = ""
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise QueryError(f"{where}: a bytes regular expression cannot be used")
            flags = "".join(letter for letter, bit in _REGEX_FLAGS.items() if pattern.flags & bit)
            text = pattern.pattern
        elif isinstance(pattern, str):
            text = pattern
        else:
            raise QueryError(f"{where}: $regex needs a string or re.Pattern, not {pattern!r}")
        if options is not None:
            if not isinstance(options, str) or set(options) - set(_REGEX_FLAGS):
                raise QueryError(
                    f"{where}: $options must be letters among i, m, s, x, not {options!r}"
                )
            flags += options
        flags = "".join(sorted(set(flags)))
        try:
            _compile(text, flags)
        except re.error as err:
            raise QueryError(f"{where}: invalid regular expression {text!r}: {err}") from err
        return source.exists(
            f"c.t = 'text' AND {REGEXP_FUNCTION}({self.param(text)}, {self.param(flags)}, c.v)"
        )
