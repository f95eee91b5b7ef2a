"""The embedded SQLite catalog: one JSON document per artifact, MongoDB filters.

All sqlite3 work for a catalog runs on one dedicated worker thread, which owns the
catalog's single connection; coroutines hand it jobs with ``run_in_executor``.
File databases use WAL with ``BEGIN IMMEDIATE`` writes and retry while another
process holds the write lock, so several processes can share one file.
"""

# SQL here is assembled from fixed fragments; every user value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import itertools
import os
import sqlite3
import time
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from elliptio._catalog import codec, query
from elliptio._catalog.base import Catalog, Document, Filter, SortSpec
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    ConfigError,
    InvalidLabelsError,
    QueryError,
)

__all__ = ["SQLiteCatalog", "open_sqlite_catalog"]

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS artifacts ("
    " artifact_id TEXT PRIMARY KEY, creation_time TEXT, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS artifacts_username ON artifacts (json_extract(doc,'$.username'))",
    "CREATE INDEX IF NOT EXISTS artifacts_datatype"
    " ON artifacts (json_extract(doc,'$.labels.datatype'))",
    "CREATE INDEX IF NOT EXISTS artifacts_project"
    " ON artifacts (json_extract(doc,'$.labels.project'))",
    "CREATE INDEX IF NOT EXISTS artifacts_creation_time ON artifacts (creation_time)",
    # Tiny partial indexes on the rare documents where a prefix of an indexed path
    # is an array; with them the translator's "scalar OR array" filters stay indexed.
    *(
        f"CREATE INDEX IF NOT EXISTS artifacts_array_{name} ON artifacts"
        f" (json_type(doc,'{path}')) WHERE json_type(doc,'{path}') = 'array'"
        for name, path in (
            ("username", "$.username"),
            ("labels", "$.labels"),
            ("datatype", "$.labels.datatype"),
            ("project", "$.labels.project"),
            ("creation_time", "$.creation_time"),
        )
    ),
)
_DATE_COLUMNS = {"creation_time": "creation_time"}
_ACCEPTED_URLS = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', 'memory://' or 'memory://name'"
)
_RETRY_SECONDS = 120.0


def open_sqlite_catalog(url: str) -> SQLiteCatalog:
    """Open the SQLite catalog a URL names.

    Accepted forms, as SQLAlchemy spells them: ``sqlite:///relative.db`` (relative
    to the current directory), ``sqlite:////absolute/path.db``, ``memory://`` (a
    fresh private in-memory database) and ``memory://name`` (an in-memory database
    shared by every catalog opened with that name in this process, alive while
    any of them is open).

    Raises:
        ConfigError: the URL is none of the accepted forms.
    """
    if not isinstance(url, str):
        raise ConfigError(f"catalog URL {url!r} is not a string; use {_ACCEPTED_URLS}")
    if url == "memory://":
        return SQLiteCatalog(None)
    if url.startswith("memory://"):
        name = url[len("memory://") :]
        if "/" in name or "?" in name or "#" in name:
            raise ConfigError(
                f"catalog URL {url!r}: an in-memory catalog name cannot contain '/', '?' "
                f"or '#'; use {_ACCEPTED_URLS}"
            )
        return SQLiteCatalog._shared_memory(name)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and "?" not in path and "#" not in path:
            return SQLiteCatalog(os.path.abspath(os.path.expanduser(path)))
    raise ConfigError(f"catalog URL {url!r} is not a SQLite catalog URL; use {_ACCEPTED_URLS}")


def _is_lock_error(err: sqlite3.Error) -> bool:
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _State:
    """What the worker thread owns; kept apart so a finalizer can release it."""

    def __init__(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="elliptio-sqlite"
        )
        self.connection: sqlite3.Connection | None = None
        self.closed = False

    def release(self) -> None:
        self.closed = True
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.executor.shutdown(wait=False)


class SQLiteCatalog(Catalog):
    """A catalog in one SQLite database file, or in memory.

    Documents are stored as `codec.dumps` JSON in table ``artifacts`` with
    expression indexes on the common filter fields; filters are translated to SQL
    by `query.translate`.

    Args:
        path: the database file (its parent directories are created on first
            use), or ``None`` for a private in-memory database.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._uri = False
        if path is None:
            self._target = ":memory:"
            self._display = "memory://"
        else:
            self._target = os.fspath(path)
            self._display = f"sqlite:///{self._target}"
        self._state = _State()
        self._finalizer = weakref.finalize(self, _State.release, self._state)

    @classmethod
    def _shared_memory(cls, name: str) -> SQLiteCatalog:
        catalog = cls(None)
        quoted = urllib.parse.quote(f"elliptio-memory-{name}", safe="")
        catalog._target = f"file:{quoted}?mode=memory&cache=shared"
        catalog._uri = True
        catalog._display = f"memory://{name}"
        return catalog

    def __repr__(self) -> str:
        return f"SQLiteCatalog({self._display!r})"

    # -- worker thread -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._state.closed:
            raise CatalogError(
                f"catalog {self._display} is closed; open a new catalog to keep working"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._state.executor, functools.partial(self._call, fn, *args)
        )

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the worker, retrying while locked."""
        deadline = time.monotonic() + _RETRY_SECONDS
        for attempt in itertools.count():
            try:
                return fn(self._connection(), *args)
            except sqlite3.Error as err:
                conn = self._state.connection
                if conn is not None and conn.in_transaction:
                    conn.rollback()
                if not _is_lock_error(err) or time.monotonic() > deadline:
                    raise self._translate(err) from err
                time.sleep(min(0.005 * 2**attempt, 0.25))
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, err: sqlite3.Error) -> CatalogError:
        return CatalogError(
            f"SQLite catalog {self._display} failed ({err}); check that the database "
            "file and its directory are writable and not corrupted, and that no other "
            "program holds a long write lock on it; then retry."
        )

    def _connection(self) -> sqlite3.Connection:
        conn = self._state.connection
        if conn is not None:
            return conn
        if not self._uri and self._target != ":memory:":
            parent = os.path.dirname(self._target)
            if parent:
                try:
                    os.makedirs(parent, exist_ok=True)
                except OSError as err:
                    raise CatalogError(
                        f"SQLite catalog {self._display}: cannot create directory "
                        f"{parent!r} ({err}); choose a writable location"
                    ) from err
        conn = sqlite3.connect(
            self._target,
            uri=self._uri,
            timeout=30.0,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.create_function(query.REGEXP_FUNCTION, 3, query.regexp_sql, deterministic=True)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            if self._target != ":memory:" and not self._uri:
                conn.execute("PRAGMA journal_mode=WAL")
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._state.connection = conn
        return conn

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this release understands "
                f"({SCHEMA_VERSION}); upgrade elliptio"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    # -- encoding ------------------------------------------------------------

    def _row(self, doc: Document) -> tuple[str, str | None, str]:
        artifact_id = doc.get("artifact_id")
        if not isinstance(artifact_id, str) or not artifact_id:
            raise CatalogError(
                f"cannot insert into catalog {self._display}: the document has no "
                "string 'artifact_id'"
            )
        try:
            text = codec.dumps(doc)
        except TypeError as err:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r} cannot be stored in catalog {self._display}: {err}"
            ) from err
        created = doc.get("creation_time")
        created_text = codec.date_text(created) if isinstance(created, dt.datetime) else None
        return artifact_id, created_text, text

    # -- Catalog interface ---------------------------------------------------

    async def insert(self, doc: Document) -> None:
        """Insert one document.

        Raises:
            ArtifactExistsError: a document with the same ``artifact_id`` exists.
            InvalidLabelsError: a value in the document cannot be stored.
        """
        await self.insert_many([doc])

    async def insert_many(self, docs: Sequence[Document]) -> None:
        """Insert several documents in one transaction: all of them or none.

        Raises:
            ArtifactExistsError: an ``artifact_id`` exists already or repeats.
            InvalidLabelsError: a value in a document cannot be stored.
        """
        rows = [self._row(doc) for doc in docs]
        if rows:
            await self._run(self._insert_rows, rows)

    def _insert_rows(
        self, conn: sqlite3.Connection, rows: list[tuple[str, str | None, str]]
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                try:
                    conn.execute("INSERT INTO artifacts VALUES (?, ?, ?)", row)
                except sqlite3.IntegrityError as err:
                    raise ArtifactExistsError(
                        f"artifact {row[0]!r} exists already in catalog {self._display}; "
                        "artifacts are immutable, so commit a new one instead"
                    ) from err
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    async def get(self, artifact_id: str) -> Document:
        """Return the document with this id.

        Raises:
            ArtifactNotFoundError: no document has this id.
        """
        text = await self._run(self._get_text, artifact_id)
        if text is None:
            raise ArtifactNotFoundError(
                f"no artifact {artifact_id!r} in catalog {self._display}; check the id, "
                "or search with find()"
            )
        doc: Document = codec.loads(text)
        return doc

    @staticmethod
    def _get_text(conn: sqlite3.Connection, artifact_id: str) -> str | None:
        row = conn.execute(
            "SELECT doc FROM artifacts WHERE artifact_id = ?", (artifact_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    async def find(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Document]:
        """Return the documents matching ``filter``.

        Args:
            filter: a MongoDB filter document; ``None`` or ``{}`` matches all.
            sort: ``(key, direction)`` pairs, direction ``1`` or ``-1``. Without
                it documents come in insertion order.
            skip: number of matching documents to leave out first.
            limit: maximum number of documents; ``0`` means no limit.

        Raises:
            QueryError: the filter, sort, skip or limit is malformed or unsupported.
        """
        for name, value in (("skip", skip), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise QueryError(f"{name} must be a non-negative integer, not {value!r}")
        where, params = query.translate(filter, date_columns=_DATE_COLUMNS)
        order = query.translate_sort(sort)
        order = f"{order}, artifact_id" if order else "ORDER BY rowid"
        n = len(params)
        sql = f"SELECT doc FROM artifacts WHERE {where} {order} LIMIT ?{n + 1} OFFSET ?{n + 2}"
        texts = await self._run(self._select, sql, [*params, limit or -1, skip])
        return [codec.loads(text) for text in texts]

    @staticmethod
    def _select(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[str]:
        return [row[0] for row in conn.execute(sql, params)]

    async def count(self, filter: Filter | None = None) -> int:
        """Return how many documents match ``filter``.

        Raises:
            QueryError: the filter is malformed or uses an unsupported operator.
        """
        where, params = query.translate(filter, date_columns=_DATE_COLUMNS)
        return await self._run(self._count, f"SELECT count(*) FROM artifacts WHERE {where}", params)

    @staticmethod
    def _count(conn: sqlite3.Connection, sql: str, params: list[Any]) -> int:
        (n,) = conn.execute(sql, params).fetchone()
        return int(n)

    async def delete(self, artifact_id: str) -> None:
        """Remove the document with this id, if any (maintenance only)."""
        await self._run(self._delete, artifact_id)

    @staticmethod
    def _delete(conn: sqlite3.Connection, artifact_id: str) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM artifacts WHERE artifact_id = ?", (artifact_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    async def close(self) -> None:
        """Close the connection on its thread and stop the thread; idempotent."""
        state = self._state
        if state.closed:
            return
        state.closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(state.executor, self._close_connection)
        finally:
            state.executor.shutdown(wait=True)
            self._finalizer.detach()

    def _close_connection(self) -> None:
        conn = self._state.connection
        self._state.connection = None
        if conn is not None:
            conn.close()
