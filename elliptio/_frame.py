"""Catalog documents to pandas DataFrames. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ._errors import QueryError
from ._gc import collector_paused

__all__ = ["DEFAULT_COLUMNS", "to_frame"]

# The seed notebook's columns first, then the rest of the record.
DEFAULT_COLUMNS = (
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
)


def to_frame(
    docs: Sequence[dict[str, Any]],
    columns: Sequence[str] | None = None,
    include_packages: bool = False,
) -> pd.DataFrame:
    """A DataFrame indexed by ``artifact_id``, one row per document, in order.

    Args:
        docs: catalog documents.
        columns: top-level fields to keep (default: all but ``python_packages``).
        include_packages: also keep ``python_packages`` with the default columns.

    Raises:
        QueryError: ``columns`` names a field that records do not have.
    """
    if columns is None:
        wanted = list(DEFAULT_COLUMNS) + (["python_packages"] if include_packages else [])
    else:
        if isinstance(columns, str):
            columns = [columns]
        known = {*DEFAULT_COLUMNS, "python_packages", "artifact_id"}
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise QueryError(
                f"columns {unknown} are not fields of a record; choose from {sorted(known)}"
            )
        wanted = [c for c in columns if c != "artifact_id"]
    with collector_paused():
        return _build(docs, wanted)


def _build(docs: Sequence[dict[str, Any]], wanted: list[str]) -> pd.DataFrame:
    # One pass over the documents, looking up every column of each in C, then the
    # rows turned into columns: cheaper than one pass per column.
    rows = [(d["artifact_id"], *map(d.get, wanted)) for d in docs]
    ids, *values = zip(*rows, strict=True) if rows else [()] * (len(wanted) + 1)
    del rows
    index = pd.Index(list(ids), name="artifact_id", dtype=object)
    data = {c: list(column) for c, column in zip(wanted, values, strict=True)}
    frame = pd.DataFrame(data, index=index, columns=wanted)
    if "creation_time" in frame.columns:
        frame["creation_time"] = pd.to_datetime(frame["creation_time"], utc=True)
    return frame
