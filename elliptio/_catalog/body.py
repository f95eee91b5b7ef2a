"""The BSON body of a document in the SQLite catalog: values in a fixed order.

A record's top-level fields are known, so the body stores their values as one
BSON array in the order of `FIELDS`, led by a bit mask of the fields present:
``{"r": [mask, value, ...]}``, plus ``"x": {...}`` for any other top-level field
and ``"o": [key, ...]`` when the keys came in another order than that.
The lifecycle fields (``label_history``, ``deleted``), which only relabeled or
deleted records have, are such extras: bodies written before them stay valid.
Decoding then makes no key strings for the top-level fields, and a column of a
DataFrame is one position of every array, with no document built at all.

Three slots hold ``None`` and are filled from elsewhere on reading: the
``artifact_id`` (a column of its own), ``creation_time`` when it is a datetime
(its column, as fixed-width text) and ``python_packages`` (read from its own JSON
only when asked for). Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import bson
import bson.errors
from bson.codec_options import CodecOptions

from elliptio._catalog import codec
from elliptio._errors import CorruptRecordError

__all__ = [
    "FIELDS",
    "OPTIONS",
    "columns",
    "decode_docs",
    "encode",
    "legacy_document",
    "values",
]

Document = dict[str, Any]

# The record's top-level fields, in the order records list them.
FIELDS = (
    "version",
    "artifact_id",
    "run_id",
    "creation_time",
    "username",
    "hostname",
    "argv",
    "python_version",
    "platform",
    "python_packages",
    "git",
    "labels",
    "files",
    "file_relpaths",
    "logs",
    "log_relpaths",
    "based_on",
    "remote_root",
    "local_root",
    "name",
    "name_version",
)
OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=dt.UTC)

_KNOWN = frozenset(FIELDS)
_BITS = tuple(1 << i for i in range(len(FIELDS)))
_ALL = (1 << len(FIELDS)) - 1
# Position in the array (after the mask) of each field.
_SLOT = {field: i + 1 for i, field in enumerate(FIELDS)}
_CREATED = _SLOT["creation_time"]
# Bodies decoded per call: batches amortise per-call costs, chunks bound the copies.
_CHUNK = 1000


def encode(doc: Document) -> bytes:
    """The body of a storable document (see `codec.storable`).

    The ``creation_time`` slot is left empty when it holds a datetime: the
    caller keeps that in its column, as `codec.date_text`.
    """
    mask = 0
    values: list[Any] = [0]
    for field, bit in zip(FIELDS, _BITS, strict=True):
        if field in doc:
            mask |= bit
            value = doc[field]
            if field in ("artifact_id", "python_packages") or (
                field == "creation_time" and isinstance(value, dt.datetime)
            ):
                value = None
            values.append(value)
        else:
            values.append(None)
    values[0] = mask
    body: dict[str, Any] = {"r": values}
    extra = {key: value for key, value in doc.items() if key not in _KNOWN}
    if extra:
        body["x"] = extra
    order = list(doc)
    if order != [field for field in FIELDS if field in doc] + list(extra):
        body["o"] = order  # keys in an order of their own, kept as given
    return bson.encode(body, codec_options=OPTIONS)


@contextlib.contextmanager
def _corrupt_as_error() -> Iterator[None]:
    """Report a body that is not what `encode` writes as `CorruptRecordError`
    (never as a bare ``KeyError``, which callers could take for a missing id)."""
    try:
        yield
    except (bson.errors.BSONError, LookupError, TypeError, ValueError) as err:
        raise CorruptRecordError(
            f"a record body in the catalog cannot be decoded ({err!r}); restore the "
            "catalog file from a backup or rebuild it with 'elliptio reindex'"
        ) from err


def _decode(bodies: Sequence[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(bodies), _CHUNK):
        out += bson.decode_all(b"".join(bodies[start : start + _CHUNK]), OPTIONS)
    return out


def _created(text: str | None, stored: Any) -> Any:
    return codec.parse_date(text) if text is not None else stored


def decode_docs(
    rows: Sequence[tuple[Any, ...]],
    packages: Sequence[Any] | None = None,
) -> list[Document]:
    """Documents from ``(artifact_id, creation_time text, body)`` rows, in order.

    Args:
        rows: ``(artifact_id, creation_time text, body, ...)``: what `encode`
            stored and the two columns it left to the caller.
        packages: the ``python_packages`` of each row (placed where a document
            has the field), or ``None`` to leave the field out.

    Raises:
        CorruptRecordError: a body is not what `encode` writes.
    """
    with _corrupt_as_error():
        return _documents(rows, packages)


def _documents(rows: Sequence[tuple[Any, ...]], packages: Sequence[Any] | None) -> list[Document]:
    docs: list[Document] = []
    bodies = _decode([row[2] for row in rows])
    for i, (row, body) in enumerate(zip(rows, bodies, strict=True)):
        artifact_id, created = row[0], row[1]
        values = body["r"]
        mask = values[0]
        if mask == _ALL:
            doc = dict(zip(FIELDS, values[1:], strict=True))
        else:
            doc = {
                field: value
                for field, value, bit in zip(FIELDS, values[1:], _BITS, strict=True)
                if mask & bit
            }
        doc["artifact_id"] = artifact_id
        if "creation_time" in doc:
            doc["creation_time"] = _created(created, values[_CREATED])
        if "python_packages" in doc:
            if packages is None:
                del doc["python_packages"]
            else:
                doc["python_packages"] = packages[i]
        if len(body) > 1:
            doc.update(body.get("x", ()))
            order = body.get("o")
            if order is not None:
                doc = {key: doc[key] for key in order if key in doc}
        docs.append(doc)
    return docs


def values(blob: bytes) -> list[list[Any]]:
    """The value arrays (mask first) of bodies stored back to back, in order.

    Raises:
        CorruptRecordError: a body is not what `encode` writes.
    """
    with _corrupt_as_error():
        return [body["r"] for body in bson.decode_all(blob, OPTIONS)]


def columns(
    ids: Sequence[str],
    created: Sequence[str | None],
    arrays: Sequence[list[Any]],
    fields: Sequence[str],
    packages: Sequence[Any] | None = None,
) -> dict[str, list[Any]]:
    """``artifact_id`` and each of ``fields`` (all in `FIELDS`) as columns.

    A cell is what ``doc.get(field)`` gives for the document `decode_docs` would
    make, with no document made: each column is one slot of every array.

    Args:
        ids: the ``artifact_id`` of each row.
        created: the ``creation_time`` column of each row (``None``: not a datetime).
        arrays: the value arrays of the rows' bodies (`values`).
        fields: top-level fields, each one of `FIELDS`.
        packages: the ``python_packages`` of each row (``None`` where a document
            has none), needed when it is one of ``fields``.
    """
    slots = list(zip(*arrays, strict=True)) if arrays else [()] * (len(FIELDS) + 1)
    table: dict[str, list[Any]] = {"artifact_id": list(ids)}
    for field in fields:
        if field == "artifact_id":
            continue
        if field == "creation_time":
            parse = dt.datetime.fromisoformat  # reads what codec.date_text writes
            table[field] = [
                value if text is None else parse(text)
                for text, value in zip(created, slots[_CREATED], strict=True)
            ]
        elif field == "python_packages":
            table[field] = list(packages) if packages is not None else [None] * len(ids)
        else:
            table[field] = list(slots[_SLOT[field]])
    return table


def legacy_document(body: bytes, git: Any) -> Document:
    """A document from a version-3 body (a BSON document holding a placeholder
    for ``git`` and ``python_packages``) and its ``git`` value."""
    doc: Document = bson.decode(body, codec_options=OPTIONS)
    if "git" in doc:
        doc["git"] = git
    return doc
