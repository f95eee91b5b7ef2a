"""Catalog documents, or columns of them, to pandas DataFrames. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ._catalog.base import document_columns
from ._errors import QueryError

__all__ = ["DEFAULT_COLUMNS", "frame_columns", "from_columns", "to_frame"]

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
_KNOWN = frozenset({*DEFAULT_COLUMNS, "python_packages", "artifact_id", "label_history", "deleted"})


def frame_columns(
    columns: Sequence[str] | str | None = None, include_packages: bool = False
) -> list[str]:
    """The record fields a frame shows, in order (``artifact_id`` is its index).

    Args:
        columns: top-level fields to keep (default: all but ``python_packages``).
        include_packages: also keep ``python_packages`` with the default columns.

    Raises:
        QueryError: ``columns`` names a field that records do not have.
    """
    if columns is None:
        return list(DEFAULT_COLUMNS) + (["python_packages"] if include_packages else [])
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in _KNOWN]
    if unknown:
        raise QueryError(
            f"columns {unknown} are not fields of a record; choose from {sorted(_KNOWN)}"
        )
    return [c for c in dict.fromkeys(columns) if c != "artifact_id"]


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
    wanted = frame_columns(columns, include_packages)
    return _build(document_columns(docs, wanted), wanted)


def from_columns(table: Mapping[str, Sequence[Any]], wanted: Sequence[str]) -> pd.DataFrame:
    """A DataFrame indexed by ``artifact_id`` from `Catalog.find_columns`'s columns.

    Args:
        table: ``artifact_id`` and each field of ``wanted``, one sequence each.
        wanted: the fields, in order, as `frame_columns` gives them.
    """
    return _build(table, wanted)


def _build(table: Mapping[str, Sequence[Any]], wanted: Sequence[str]) -> pd.DataFrame:
    index = pd.Index(table["artifact_id"], name="artifact_id", dtype=object)
    frame = pd.DataFrame({c: table[c] for c in wanted}, index=index, columns=list(wanted))
    if "creation_time" in frame.columns:
        frame["creation_time"] = pd.to_datetime(frame["creation_time"], utc=True)
    return frame
