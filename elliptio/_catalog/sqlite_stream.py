"""Many rows of the SQLite catalog read and decoded at once, on two threads.

The catalog's worker thread selects the matching rows' keys, then their bodies a
chunk at a time, which SQLite concatenates (``group_concat``) without holding the
GIL; meanwhile another thread decodes the chunks already read and turns each
into columns while its objects are still in the CPU's cache (transposing them
all at the end took three times as long). So the SQL of the bodies hides behind
the decoding, and the event loop stays free.

The two sides share a `queue.SimpleQueue`: the producer never waits for the
consumer and marks the start of each attempt (the worker retries while the
database is locked) and the end of a complete one; the caller calls `stop` once
the producer's call is over, however it ended. So the consumer keeps no rows of
an abandoned attempt and never waits for ever.
"""

from __future__ import annotations

import json
import queue
import sqlite3
from collections.abc import Sequence
from typing import Any

from elliptio._catalog import body
from elliptio._errors import CorruptRecordError

__all__ = ["CHUNK", "Stream", "consume", "produce", "stop"]

CHUNK = 1000
Stream = queue.SimpleQueue[Any]
_RESTART, _END, _STOP = object(), object(), object()
# Both aggregates run over the same rows in the same order: the ids say which
# body is where, whatever order SQLite chose.
_BODIES = (
    "SELECT CAST(group_concat(body, '') AS BLOB), group_concat(id) FROM"
    " (SELECT id, body FROM artifact_docs WHERE id IN (SELECT value FROM json_each(?1))"
    " ORDER BY id)"
)
_BODY_ROWS = (
    "SELECT id, body FROM artifact_docs WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
)


def produce(conn: sqlite3.Connection, keys_sql: str, params: Sequence[Any], sink: Stream) -> None:
    """Put on ``sink`` the rows ``keys_sql`` selects, by chunks, each with the
    bodies of its artifacts.

    ``keys_sql`` selects ``id``, ``artifact_id`` and ``creation_time`` first. The
    keys are read whole before the first body: fetching rows one by one while
    the other thread decodes would make each row wait for the GIL. In one read
    transaction, so keys and bodies agree. Runs on the catalog's worker thread,
    which may retry it.
    """
    sink.put(_RESTART)
    conn.execute("BEGIN")
    try:
        keys = conn.execute(keys_sql, params).fetchall()
        for start in range(0, len(keys), CHUNK):
            rows = keys[start : start + CHUNK]
            sink.put((rows, *_bodies(conn, [row[0] for row in rows])))
    finally:
        conn.execute("COMMIT")
    sink.put(_END)


def stop(sink: Stream) -> None:
    """Tell the consumer that the producer's call is over, complete or not."""
    sink.put(_STOP)


def _bodies(conn: sqlite3.Connection, ids: list[int]) -> tuple[list[int], bytes]:
    """The bodies of the artifacts ``ids``, back to back, and the ids in their order."""
    wanted = json.dumps(ids)
    try:
        blob, order = conn.execute(_BODIES, (wanted,)).fetchone()
    except sqlite3.DataError:
        # Longer than SQLite's string limit (huge labels): concatenated here instead.
        rows = conn.execute(_BODY_ROWS, (wanted,)).fetchall()
        return [row[0] for row in rows], b"".join([row[1] for row in rows])
    return [int(i) for i in order.split(",")], blob


def consume(
    sink: Stream, fields: Sequence[str]
) -> tuple[list[tuple[Any, ...]], dict[str, list[Any]]] | None:
    """The key rows put on ``sink`` and their columns (`body.columns`), in order.

    Returns ``None`` when the producer's call ended without a complete attempt;
    that call raises the error. The ``python_packages`` column, if asked for, is
    left to the caller, which has its text in the key rows.

    Raises:
        CorruptRecordError: a body cannot be decoded, or is missing.
    """
    keys: list[tuple[Any, ...]] = []
    table: dict[str, list[Any]] | None = None
    while True:
        item = sink.get()
        if item is _RESTART:
            keys, table = [], None
        elif item is _END:
            return keys, table or body.columns([], [], [], fields)
        elif item is _STOP:
            return None
        else:
            rows, found, blob = item
            part = body.columns(
                [row[1] for row in rows],
                [row[2] for row in rows],
                _arrays([row[0] for row in rows], found, blob),
                fields,
            )
            if table is None:
                table = part
            else:
                for field, column in part.items():
                    table[field] += column
            keys += rows


def _arrays(ids: list[int], found: list[int], blob: bytes) -> list[list[Any]]:
    """The value arrays of the bodies of ``ids``, stored in the order ``found``."""
    values = body.values(blob)
    if found == ids:
        return values
    at = dict(zip(found, values, strict=True))
    missing = [i for i in ids if i not in at]
    if missing:
        raise CorruptRecordError(
            f"catalog rows {missing} have no record body; rebuild the catalog with "
            "'elliptio reindex'"
        )
    return [at[i] for i in ids]
