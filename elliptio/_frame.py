"""Catalog documents, or columns of them, to pandas DataFrames. Pure.

A frame is planned (`plan_frame`: which columns to show, which top-level record
fields to fetch for them) and then built (`build_frame`) from the catalog's
columns. Columns may be dotted paths into a record (``labels.infos.seed``); with
``flatten`` the nested ``labels`` become dotted columns of their own, as
`pandas.json_normalize` names them. ``ref`` is derived: ``name:vN``, or the
``artifact_id`` of an artifact without a name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._catalog.base import document_columns
from ._errors import QueryError
from ._models import malformed_field
from ._names import format_ref

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_COLUMNS", "RECORD_FIELDS", "FramePlan", "build_frame", "plan_frame", "to_frame"]

# What a frame shows unless asked otherwise: who made what, when, from what.
DEFAULT_COLUMNS = (
    "ref",
    "name",
    "name_version",
    "creation_time",
    "username",
    "file_relpaths",
    "based_on",
    "run_id",
    "labels",
)
# Every top-level field of a record.
RECORD_FIELDS = (
    "artifact_id",
    "creation_time",
    "username",
    "name",
    "name_version",
    "file_relpaths",
    "argv",
    "based_on",
    "hostname",
    "labels",
    "local_root",
    "log_relpaths",
    "remote_root",
    "run_id",
    "version",
    "python_version",
    "platform",
    "git",
    "files",
    "logs",
    "python_packages",
    "label_history",
    "deleted",
)
_KNOWN = frozenset({*RECORD_FIELDS, "ref"})
_REF_FIELDS = ("name", "name_version")


@dataclass(frozen=True)
class FramePlan:
    """What a frame shows and what it needs from the catalog.

    Attributes:
        columns: the columns asked for, in order (``labels`` expands when flattened).
        fields: the top-level record fields to fetch for them (``artifact_id`` aside).
        flatten: nested ``labels`` become dotted columns.
        default: the default columns were asked for; label columns empty in every
            row are left out then.
    """

    columns: tuple[str, ...]
    fields: tuple[str, ...]
    flatten: bool = True
    default: bool = False


def plan_frame(
    columns: Sequence[str] | str | None = None,
    include_packages: bool = False,
    flatten: bool = True,
) -> FramePlan:
    """Plan a frame: its columns and the record fields they need.

    Args:
        columns: record fields, dotted paths into them (``labels.infos.seed``) or
            ``ref``; default `DEFAULT_COLUMNS`.
        include_packages: also show ``python_packages`` with the default columns.
        flatten: turn nested ``labels`` into dotted columns.

    Raises:
        QueryError: ``columns`` names a field that records do not have.
    """
    default = columns is None
    if columns is None:
        wanted = [*DEFAULT_COLUMNS, *(["python_packages"] if include_packages else [])]
    else:
        if isinstance(columns, str):
            columns = [columns]
        if isinstance(columns, Mapping) or not isinstance(columns, Iterable):
            raise QueryError(
                f"columns must be a list of field names, not {type(columns).__name__}; "
                "e.g. columns=['name', 'labels.infos.seed']"
            )
        columns = list(columns)
        if not all(isinstance(c, str) for c in columns):
            raise QueryError(f"columns must be field names (strings), not {list(columns)!r}")
        unknown = [c for c in columns if c.split(".", 1)[0] not in _KNOWN]
        if unknown:
            raise QueryError(
                f"columns {unknown} are not fields of a record; choose from {sorted(_KNOWN)} "
                "or a dotted path into one, such as labels.infos.seed"
            )
        wanted = [c for c in dict.fromkeys(columns) if c != "artifact_id"]
    fields: dict[str, None] = {}
    for column in wanted:
        for field in _REF_FIELDS if column == "ref" else (column.split(".", 1)[0],):
            fields[field] = None
    return FramePlan(tuple(wanted), tuple(fields), flatten, default)


def to_frame(
    docs: Sequence[dict[str, Any]],
    columns: Sequence[str] | str | None = None,
    include_packages: bool = False,
    flatten: bool = True,
) -> pd.DataFrame:
    """A DataFrame indexed by ``artifact_id``, one row per document, in order.

    Args: as `plan_frame`.

    Raises:
        QueryError: ``columns`` names a field that records do not have.
    """
    plan = plan_frame(columns, include_packages, flatten)
    return build_frame(document_columns(docs, plan.fields), plan)


def build_frame(table: Mapping[str, Sequence[Any]], plan: FramePlan) -> pd.DataFrame:
    """A DataFrame indexed by ``artifact_id`` from `Catalog.find_columns`'s columns.

    Args:
        table: ``artifact_id`` and each field of ``plan.fields``, one sequence
            each (what `Catalog.find_columns` returns).
        plan: what `plan_frame` made of the request.
    """
    import pandas as pd

    ids = list(table["artifact_id"])
    data: dict[str, list[Any]] = {}
    for column in plan.columns:
        if column == "ref":
            names, versions = table["name"], table["name_version"]
            data["ref"] = [
                format_ref(n, v) if n is not None and v is not None else i
                for i, n, v in zip(ids, names, versions, strict=True)
            ]
            continue
        head, _, rest = column.partition(".")
        flat = plan.flatten and head == "labels"
        cells = list(table[head]) if not rest else [_dig(c, rest, flat) for c in table[head]]
        if flat and any(isinstance(c, Mapping) for c in cells):
            expanded = _flatten(column, cells)
            if plan.default:  # the unused labels of the model would only be noise
                expanded = {k: v for k, v in expanded.items() if any(_used(x) for x in v)}
            data.update(expanded)
        elif flat and plan.default and not rest:
            continue  # no labels to show (no rows): no column named "labels" either
        else:
            data[column] = cells
    index = pd.Index(ids, name="artifact_id", dtype=object)
    frame = pd.DataFrame(data, index=index, columns=list(data))
    for column in frame.columns[frame.dtypes == "float64"]:
        # ints with gaps become floats, exact only up to 2**53: keep larger ones whole
        if any(type(v) is int and not -_EXACT <= v <= _EXACT for v in data[column]):
            frame[column] = pd.Series(data[column], index=index, dtype=object)
    if "creation_time" in frame.columns:
        frame["creation_time"] = _creation_times(ids, data["creation_time"], index)
    return frame


def _creation_times(ids: Sequence[str], cells: Sequence[Any], index: pd.Index) -> pd.Series:
    """The ``creation_time`` column as UTC timestamps; a record holding something
    else there (planted in a shared catalog) is `CorruptRecordError` naming it
    (`malformed_field`)."""
    import pandas as pd

    column = pd.Series(cells, index=index, dtype=object)
    if set(map(type, cells)) <= {dt.datetime, type(None)}:  # checked in C: 100k rows
        try:
            return pd.to_datetime(column, utc=True)
        except (ValueError, OverflowError):  # a date pandas cannot hold (year 3000)
            pass
    for artifact_id, cell in zip(ids, cells, strict=True):
        if cell is None:
            continue
        if isinstance(cell, dt.datetime):
            try:
                pd.Timestamp(cell)
                continue
            except (ValueError, OverflowError):
                pass
        raise malformed_field(artifact_id, "creation_time", cell)
    return pd.to_datetime(column, utc=True)


def _dig(value: Any, path: str, flat: bool = False) -> Any:
    """The value at ``path`` in ``value``, or None; with ``flat``, None for a
    mapping without leaves too (it makes no column). Through a list, a number
    picks an item (``file_relpaths.0``) and a name collects that field of its
    mappings (``files.relpath``: a list), as queries read such paths."""
    for key in path.split("."):
        if isinstance(value, list):
            if key.isdigit():
                if int(key) >= len(value):
                    return None
                value = value[int(key)]
            else:
                value = [v[key] for v in value if isinstance(v, Mapping) and key in v]
            continue
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    if flat and isinstance(value, Mapping) and not _has_leaves(value):
        return None
    return value


def _has_leaves(mapping: Mapping[str, Any]) -> bool:
    """Whether `_flatten` makes any column of ``mapping`` (it holds a non-mapping)."""
    return any(not isinstance(value, Mapping) or _has_leaves(value) for value in mapping.values())


def _flatten(prefix: str, cells: Sequence[Any]) -> dict[str, list[Any]]:
    """Dotted columns (``labels.infos.seed``) of the leaves of the mappings among
    ``cells``, None where a row has none, in the order they are first met; cells
    that are not mappings stay in the column ``prefix``. A leaf is what is not a
    mapping (a list is a leaf); an empty mapping has no leaves."""
    n = len(cells)
    made: dict[str, list[Any]] = {}
    # A level of the mappings: its dotted prefix, its leaves' columns by key and
    # its nested levels by key; a leaf costs a lookup by its key alone.
    _Level = tuple[str, dict[str, list[Any]], dict[str, Any]]

    def put(mapping: Mapping[str, Any], row: int, level: _Level) -> None:
        start, leaves, subs = level
        for key, value in mapping.items():
            if type(value) is dict or (type(value) not in _LEAVES and isinstance(value, Mapping)):
                sub = subs.get(key)
                if sub is None:
                    sub = subs[key] = (f"{start}{key}.", {}, {})
                put(value, row, sub)
            else:
                column = leaves.get(key)
                if column is None:
                    # One column per name: {"x.y": 1} and {"x": {"y": 2}} share one.
                    column = leaves[key] = made.setdefault(start + key, [None] * n)
                column[row] = value

    top: _Level = (f"{prefix}.", {}, {})
    loose: _Level = (prefix, {}, {})
    for row, cell in enumerate(cells):
        if type(cell) is dict or isinstance(cell, Mapping):
            put(cell, row, top)
        elif cell is not None:  # a row without the mapping makes no column of its own
            put({"": cell}, row, loose)
    return made


# The largest integers a float64 holds exactly.
_EXACT = 2**53
# Values that are never mappings: tested by type, much cheaper than Mapping.
_LEAVES = frozenset({str, int, float, bool, type(None), list})


def _used(value: Any) -> bool:
    return value is not None and value != ""
