"""The embedded SQLite catalog: one JSON document per artifact, MongoDB filters.

All sqlite3 work for a catalog runs on one dedicated worker thread, which owns the
catalog's single connection; coroutines hand it jobs with ``run_in_executor``.
File databases use WAL with ``BEGIN IMMEDIATE`` writes and retry while another
process holds the write lock, so several processes can share one file. A file
removed or replaced while its connection is open takes no more writes: each
raises `CatalogLostError` (see `SQLiteCatalog._check_file`).
"""

# SQL here is assembled from fixed fragments; every user value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

from elliptio import _progress
from elliptio._catalog import codec, filters, query, regex_guard
from elliptio._catalog.base import (
    Catalog,
    CatalogLostError,
    Document,
    Filter,
    Lease,
    SortSpec,
    alias_version,
    exists_error,
    grouped_aliases,
    lease_lost_error,
    packages_environment,
    read_lease,
    record_revision,
    version_taken_error,
)
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    ConfigError,
    CorruptRecordError,
    ElliptioError,
    InvalidLabelsError,
    QueryError,
)
from elliptio._names import VERSION_CEILING
from elliptio._workers import Workers, to_thread

__all__ = ["SQLiteCatalog", "open_sqlite_catalog", "register_functions"]

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMA_VERSION = 12

# Each record is stored once, split over two rows joined on ``id``:
# - ``artifacts``, narrow, is what filters scan: the id, plain columns of the
#   common filter fields, the paths where the record holds arrays, the
#   ``labels`` and ``deleted`` fields (so that a scan of ``labels.infos.*`` reads
#   and parses little), the fields a default frame shows (`_HEAD`, so that
#   ``find()`` parses little) and the id of the record's Python environment;
# - ``packed_docs`` holds every other top-level field as one JSON object, with
#   a placeholder where a field kept elsewhere was, so that keys keep their order,
#   deflated (`_pack`); SQL reads it through the function ``eio_doc``.
# The ``python_packages`` of a record, the same for every record made in one
# environment, are stored once per distinct content in ``environments``, keyed by
# their sha256. JSON columns hold ``{"field": value}`` objects, so paths read the
# same everywhere. The side tables (array members, label values, file contents)
# are keyed by what they are looked up by; a record's rows there are deleted by
# their whole key, computed again from the record, so they need no index by artifact.
_ENVIRONMENT = (
    "coalesce((SELECT e.packages FROM environments AS e WHERE e.id = artifacts.environment), '{}')"
)
# What a default ``find()`` frame shows besides labels and the creation time.
_HEAD = ("name", "name_version", "username", "file_relpaths", "based_on", "run_id")
_MOVED = {
    "labels": "labels_json",
    "deleted": "deleted_json",
    "python_packages": _ENVIRONMENT,
    **dict.fromkeys(_HEAD, "head_json"),
}


# The JSON columns of a record.
_JSON_COLUMNS = frozenset({"doc", "labels_json", "deleted_json", "head_json"})


def _column_sql(column: str) -> str:
    if column == "doc":
        stored = "(SELECT doc FROM packed_docs WHERE packed_docs.id = artifacts.id)"
        return f"{_UNPACK_SQL}({stored})"
    return column


# A document is stored deflated against a preset dictionary of what every record
# spells out (its keys, the frame of its values), behind a byte that names the
# dictionary: a record of about a kilobyte of JSON takes a few hundred bytes.
# Stored documents need this dictionary as it is: another one takes another byte.
_PACKED = b"\x01"
_DICTIONARY = (
    b'"diff":"","diff_truncated":false},"labels":0,"files":[{"relpath":"","url":"s3://'
    b'","size":0,"sha256":""}],"file_relpaths":0,"logs":[],"log_relpaths":[],"based_on":0,'
    b'"label_history":[],"remote_root":"","local_root":"/home/","name":0,"name_version":0}'
    b'{"version":2,"artifact_id":"artifact_","run_id":0,"creation_time":{"$date":"'
    b'T00:00:00.000000Z"},"username":0,"hostname":"","argv":["python","-m","--"],'
    b'"python_version":"3.1","platform":"Linux-x86_64-with-glibc2.","python_packages":0,'
    b'"git":{"commit":"","branch":"main","dirty":false,"remote":"https://github.com/'
)
_UNPACK_SQL = "eio_doc"


# A blob inflates to at most this many times its size, or this many bytes, and
# never past the longest text SQLite takes (its default SQLITE_MAX_LENGTH): more
# is a planted "zip bomb", read as damaged. A document `_pack` would shrink
# further is stored as text instead, so every document written reads back.
_INFLATE_RATIO = 100
_INFLATE_FLOOR = 64 * 2**20
_INFLATE_CEILING = 1_000_000_000


def _inflate_limit(blob_size: int) -> int:
    return min(_INFLATE_CEILING, max(_INFLATE_FLOOR, _INFLATE_RATIO * blob_size))


def _pack(text: str) -> bytes | str:
    raw = text.encode("utf-8")
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_DICTIONARY)
    packed = _PACKED + packer.compress(raw) + packer.flush()
    return packed if len(raw) <= _inflate_limit(len(packed)) else text


def _unpack(blob: Any) -> str:
    """The JSON text of a stored document. Text is taken as it is (`_pack` keeps
    some documents as text). For a blob `_pack` did not write, a text that is not
    JSON, so that reading it is a `CorruptRecordError`."""
    if isinstance(blob, str):
        return blob
    if isinstance(blob, bytes) and blob[:1] == _PACKED:
        unpacker = zlib.decompressobj(-15, zdict=_DICTIONARY)
        with contextlib.suppress(zlib.error, UnicodeDecodeError):
            text = unpacker.decompress(blob[1:], _inflate_limit(len(blob)))
            if unpacker.eof and not unpacker.unused_data and not unpacker.unconsumed_tail:
                return text.decode("utf-8")
    return "damaged"


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions this catalog's statements call on a connection."""
    query.register_functions(conn)
    conn.create_function(_UNPACK_SQL, 1, _Unpacker(), deterministic=True)


class _Unpacker:
    """`_unpack` for one connection's SQL function: a query reads a document at
    several of its paths, each a call with the same blob, inflated once."""

    def __init__(self) -> None:
        self._blob: Any = None
        self._text = ""

    def __call__(self, blob: Any) -> str:
        if blob != self._blob:
            self._text = _unpack(blob)
            self._blob = blob
        return self._text


# Paths with a plain column of their string (or date) value; side-table array fields.
_TEXT = {
    "username": "username",
    "labels.datatype": "datatype",
    "labels.project": "project",
    "name": "name",
}
_DATES = {"creation_time": "creation_ms"}
# The ``field`` of an array field's members in the side table: a letter, not the
# field's name, in each of a record's rows there.
_SIDE = {"based_on": "b", "file_relpaths": "f"}
# Label paths a column of their own serves: the label table leaves them out.
_COLUMN_LABELS = frozenset(p.removeprefix("labels.") for p in _TEXT if p.startswith("labels."))
# Fields every record holds arrays at: the ``arrays`` column does not list them.
_ARRAY_FIELDS = frozenset(
    {"argv", "files", "file_relpaths", "logs", "log_relpaths", "based_on", "label_history"}
)
# Side-table field under which documents with an array on a promoted path are listed.
_ARRAY_FLAG = ""
# Side-table field under which documents holding something other than a string,
# null or nothing (no array: that is _ARRAY_FLAG) at a promoted text path are
# listed; a path nobody is listed under sorts by its plain column (an index).
_OTHER_FLAG = "\x01"
LAYOUT = query.Layout(
    default_column=_column_sql("doc"),
    columns=_MOVED,
    text_columns=_TEXT,
    date_columns=_DATES,
    date_value=codec.date_millis,
    id_field="artifact_id",
    side_fields=_SIDE,
    side_table="side_index",
    row_id="artifacts.id",
    arrays_column="arrays",
    array_fields=_ARRAY_FIELDS,
    array_flag=_ARRAY_FLAG,
    label_table="label_rows",
    label_paths="label_paths",
)
_PROMOTED = (*_TEXT, *_DATES)
_SCHEMA = (
    "CREATE TABLE artifacts ("
    # AUTOINCREMENT: the id of a deleted record is never given to another.
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " artifact_id TEXT NOT NULL UNIQUE,"
    " creation_ms INTEGER, username TEXT, datatype TEXT, project TEXT,"
    " arrays TEXT NOT NULL, labels_json TEXT NOT NULL, name TEXT, name_version INTEGER,"
    " deleted_json TEXT NOT NULL DEFAULT '{}', environment INTEGER,"
    " head_json TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE packed_docs (id INTEGER PRIMARY KEY, doc BLOB NOT NULL)",
    "CREATE TABLE environments (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,"
    " packages TEXT NOT NULL)",
    "CREATE TABLE side_index ("
    " field TEXT NOT NULL, value TEXT NOT NULL, artifact INTEGER NOT NULL,"
    " PRIMARY KEY (field, value, artifact)) WITHOUT ROWID",
    # Every string and number of a record's labels, by dotted path, so that
    # equality, $in and $all on any label path (labels.infos.seed) are index
    # lookups; not the empty string, nor datatype and project, which have columns
    # (see query.Layout). ``value`` has no declared type: numbers stay numbers.
    # ``path`` is the id of the path in ``label_paths``, which never forgets one.
    "CREATE TABLE label_paths (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)",
    "CREATE TABLE label_rows (path INTEGER NOT NULL, value NOT NULL, artifact INTEGER NOT NULL,"
    " PRIMARY KEY (path, value, artifact)) WITHOUT ROWID",
    # The contents (size, sha256) and URLs of committed files, which deduplication
    # and deletes look up: the texts by a 32-bit hash each (`_key`), the record
    # holds them whole, so a lookup reads the candidates' records to confirm.
    "CREATE TABLE file_keys (size INTEGER NOT NULL, sha_key INTEGER NOT NULL,"
    " url_key INTEGER NOT NULL, artifact INTEGER NOT NULL,"
    " PRIMARY KEY (size, sha_key, artifact, url_key)) WITHOUT ROWID",
    "CREATE INDEX file_keys_url ON file_keys (url_key)",
    "CREATE INDEX artifacts_creation_time ON artifacts (creation_ms)",
    "CREATE INDEX artifacts_username ON artifacts (username, creation_ms)",
    "CREATE INDEX artifacts_datatype ON artifacts (datatype, creation_ms)",
    "CREATE INDEX artifacts_project ON artifacts (project, creation_ms)",
    "CREATE UNIQUE INDEX artifacts_name_version ON artifacts (name, name_version)"
    " WHERE name_version IS NOT NULL",
    "CREATE INDEX artifacts_name ON artifacts (name, creation_ms)",
    # Names with versions and their aliases, commit leases, what each run read.
    "CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS aliases (name TEXT NOT NULL, alias TEXT NOT NULL,"
    " version INTEGER NOT NULL, PRIMARY KEY (name, alias)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS leases (artifact_id TEXT PRIMARY KEY, prefix TEXT NOT NULL,"
    " started TEXT NOT NULL, state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS run_inputs (run_id TEXT NOT NULL, artifact_id TEXT NOT NULL,"
    " PRIMARY KEY (run_id, artifact_id))",
)
# Tables an upgrade builds anew from the records of the old ones; the others
# (names, aliases, leases, run_inputs) have kept their form since they came.
_REBUILT = (
    "artifacts",
    "artifact_docs",  # schemas 2 to 10; packed_docs from 11 on
    "artifact_extras",
    "environments",
    "side_values",  # schemas 2 to 11; side_index from 12 on
    "side_index",
    "label_values",  # schemas 7 to 9; label_index from 10 on
    "label_index",  # schemas 10 and 11; label_rows from 12 on
    "label_rows",
    "label_paths",
    "file_objects",  # schemas 8 to 11; file_keys from 12 on
    "file_keys",
)
_ACCEPTED_URLS = (
    "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db', 'memory://' or 'memory://name'"
)
# SQLite errors about the size of a statement rather than about the database.
_TOO_LARGE = (
    "parser stack overflow",
    "Expression tree is too large",
    "tables in a join",
    "too many references to",
    "variable number must be between",
    "too many SQL variables",
)
_RETRY_SECONDS = 120.0
# SQLite's words for a file that is no database or is damaged (SQLITE_NOTADB,
# SQLITE_CORRUPT): no retry helps.
_DAMAGED = ("file is not a database", "database disk image is malformed")
# How long a process opening a file of an earlier schema waits for another one
# that holds it locked (upgrading it) before it gives up.
_UPGRADE_WAIT_SECONDS = 3600.0
# The highest version of name ?1 the records hold (0: none); a planted one past
# ?2 (where 1 more would leave 64 bits) is not counted.
_HELD = (
    "(SELECT coalesce(max(name_version), 0) FROM artifacts"
    " WHERE name = ?1 AND name_version BETWEEN 1 AND ?2)"
)
# A named record's version, as `_name_version` writes it: a whole number of 1 or
# more (a planted text or real there is no version; it sorted above them all).
_NAMED = "typeof(a.name_version) = 'integer' AND a.name_version >= 1"
_MMAP_BYTES = 1 << 31
_CACHE_KIB = 64 * 1024


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


def _of_another_user(uid: int) -> bool:
    """Whether a file owned by ``uid`` is another user's; never where the OS has
    no user ids (Windows: ``os.geteuid`` is missing, ``st_uid`` is 0)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and uid != geteuid()


def _owner_name(uid: int) -> str:
    """``user 'name'`` of ``uid``, or its number when it has no name here."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r}"
    except (ImportError, KeyError):
        return f"the user of uid {uid}"


def _is_lock_error(err: sqlite3.Error) -> bool:
    text = str(err).lower()
    return isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class _ForkGate:
    """Keeps ``fork`` out of SQLite calls, and SQLite calls out of ``fork``.

    SQLite keeps the locks of a process's connections in one table per database
    file, in the process's memory. A child forked while a thread of its parent
    was inside a transaction inherits that table saying "locked by a connection
    of this process", a connection that does not exist there, so its own
    connection waits for that lock in vain; a thread inside SQLite may also hold
    one of its process-wide mutexes, which the child would wait for for ever. A
    fork therefore waits until no other thread's call is inside SQLite (calls
    run concurrently otherwise), however long that takes (a call waiting for
    another process's lock may take the busy timeout), and no call starts until
    the fork is done. A fork made from inside a call (a logging handler, a
    callback) does not wait for its own thread, which it could never see leave.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside: dict[int, int] = {}  # thread -> calls it is inside

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            self._inside[me] = self._inside.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                if self._inside[me] == 1:
                    del self._inside[me]
                    self._cond.notify_all()
                else:
                    self._inside[me] -= 1

    def before_fork(self) -> None:
        self._cond.acquire()  # held across the fork: no call can start
        me = threading.get_ident()
        self._cond.wait_for(lambda: not self._inside.keys() - {me})

    def after_fork_in_parent(self) -> None:
        self._cond.release()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's threads are not here


_fork_gate = _ForkGate()
os.register_at_fork(
    before=_fork_gate.before_fork,
    after_in_parent=_fork_gate.after_fork_in_parent,
    after_in_child=_fork_gate.after_fork_in_child,
)


class _State:
    """What the worker thread owns; kept apart so a finalizer can release it.

    It belongs to the process that made it: a child created by ``fork`` inherits a
    copy whose thread does not exist there and whose connection SQLite forbids
    it to use, so the child leaves it untouched and makes its own.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.executor = Workers(max_workers=1, thread_name_prefix="elliptio-sqlite")
        self.connection: sqlite3.Connection | None = None
        # (st_dev, st_ino) of the database file the connection opened.
        self.identity: tuple[int, int] | None = None
        self.closed = False
        # Calls queued or running on the worker: at exit the close is waited for
        # only when none is (it then runs at once, and the database file is left
        # whole, its WAL checkpointed and removed).
        self.pending = 0
        self.lock = threading.Lock()

    def count(self, step: int) -> None:
        with self.lock:
            self.pending += step

    def release(self) -> None:
        self.closed = True
        if self.pid != os.getpid():
            return  # the parent's, inherited through fork
        # On the worker, after the calls it has: at interpreter exit it may still
        # run a daemon thread's call, and a connection closed under a call crashes
        # the interpreter. (Here when the worker itself dropped the catalog.) At
        # exit (the main thread is gone) nothing waits for it behind a call: that
        # call may wait for another process's lock as long as that process holds
        # it, and the interpreter does not wait for daemon threads. With no call
        # the close is waited for: else the interpreter ends first and leaves the
        # last records in the -wal file, not in the database file.
        if not self.executor.runs(threading.current_thread()):
            with contextlib.suppress(RuntimeError):  # shut down: no call runs
                closed = self.executor.submit(self._close)
                if threading.main_thread().is_alive() or not self.pending:
                    closed.result()
                self.executor.shutdown(wait=False)
                return
        self._close()
        self.executor.shutdown(wait=False)

    def _close(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            conn.close()


class SQLiteCatalog(Catalog):
    """A catalog in one SQLite database file, or in memory.

    Each record is stored once, as `codec.dumps` JSON split over a narrow row and
    a document row (see the tables above), with plain indexed columns of the
    common filter fields and side tables for arrays and labels; filters are
    translated to SQL by `query.translate`.

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
        state = self._state
        if state.closed:
            raise CatalogError(
                f"catalog {self._display} is closed (its handler was closed); open a new "
                "Handler to keep working"
            )
        if state.pid != os.getpid():
            state = self._reopen_after_fork()
        state.count(1)
        try:
            future = state.executor.submit(functools.partial(self._call, fn, *args))
        except BaseException:
            state.count(-1)  # not queued
            raise
        # Counted off once done: run, failed, or cancelled while still queued.
        future.add_done_callback(lambda _: state.count(-1))
        return await asyncio.wrap_future(future)

    def _reopen_after_fork(self) -> _State:
        """In a child made by ``fork``: this process's own worker and connection."""
        if self._target == ":memory:" or self._uri:
            raise CatalogError(
                f"catalog {self._display} lives in the memory of the process that "
                "opened it, and this process is a fork of it; use a catalog file "
                "(sqlite:///path.db) or MongoDB to share a catalog between processes"
            )
        state = self._state = _State()
        self._finalizer = weakref.finalize(self, _State.release, state)
        return state

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` on the worker, retrying while locked."""
        deadline = time.monotonic() + _RETRY_SECONDS
        for attempt in itertools.count():
            try:
                with _fork_gate.call():
                    try:
                        live = self._connection()
                        # Stops a call that keeps evaluating $regex; raises QueryError.
                        with regex_guard.time_limit(live):
                            return fn(live, *args)
                    except BaseException:
                        conn = self._state.connection
                        if conn is not None and conn.in_transaction:
                            conn.rollback()  # before a fork may copy its locks
                        raise
            except sqlite3.Error as err:
                if not _is_lock_error(err) or time.monotonic() > deadline:
                    raise self._translate(err) from err
                log.debug("catalog %s is locked (%s); retry %d", self._display, err, attempt + 1)
                time.sleep(min(0.005 * 2**attempt, 0.25))
        raise AssertionError("unreachable")  # pragma: no cover

    def _refuse_unwritable_file(self) -> None:
        """Refuse a catalog file, or its ``-wal`` or ``-shm``, this user may not write.

        SQLite reads a WAL database through a shared index (``-shm``) and a log
        (``-wal``) beside it, made by whoever opens it first with the file's mode:
        a reader without write rights either cannot open it or makes files that
        nobody can then write (the owner included, once the file is writable
        again), which breaks every later commit. A ``-wal`` or ``-shm`` left so
        fails every commit too. So nothing is opened.
        """
        try:
            st = os.stat(self._target)
        except OSError:
            return  # not there yet: made by this user
        if _of_another_user(st.st_uid) and not os.access(self._target, os.W_OK):
            raise CatalogError(
                f"SQLite catalog {self._display} belongs to another user and this one may "
                "not write it. An embedded catalog is opened only by users who may write "
                "the file and its folder: SQLite keeps its log and shared index beside "
                "it, and files a reader made there would lock its owner out. Share it "
                "through a group with write rights, or give readers a MongoDB catalog "
                "with find rights"
            )
        # SQLite keeps them beside the file a symbolic link names, not beside the link.
        real = os.path.realpath(self._target)
        for path in (self._target, f"{real}-wal", f"{real}-shm"):
            try:
                owner = os.stat(path).st_uid
            except OSError:
                continue  # not there
            if os.access(path, os.W_OK):
                continue
            if _of_another_user(owner):
                # Left by another user's reader (the sqlite3 shell): only that
                # user or an administrator may change or remove it.
                who = _owner_name(owner)
                raise CatalogError(
                    f"SQLite catalog {self._display}: {path} belongs to {who} and this "
                    "user may not write it, so nothing is opened (SQLite keeps its log and "
                    "shared index there: every commit would fail). Only the owner or an "
                    f"administrator can change it: {who} can give this user write rights "
                    f"on it (chmod g+w {path!r}, with both users in its group); a -shm, or "
                    "an empty -wal, may instead be removed once no process has the catalog "
                    "open"
                )
            raise CatalogError(
                f"SQLite catalog {self._display}: {path} is not writable by this user, "
                "so nothing is opened. An embedded catalog is opened only by users who "
                "may write the file, its -wal and -shm and its folder: SQLite would "
                "make its log and shared index beside it read-only, and every later "
                f"commit would fail. Give this user write rights on it (chmod u+w "
                f"{path!r}), or read a writable copy of the catalog"
            )

    def _identity(self) -> tuple[int, int]:
        """``(st_dev, st_ino)`` of the database file ``sqlite3.connect`` just opened."""
        try:
            st = os.stat(self._target)
        except OSError as err:
            raise CatalogError(
                f"SQLite catalog file {self._target!r} vanished as it was opened ({err}); retry"
            ) from err
        return (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Raise `CatalogLostError` if the database file is gone or another file.

        SQLite keeps working on the file it opened after that file was unlinked
        (``rm catalog.db*``) or replaced (``mv other.db catalog.db``): records
        written then would be in no file anyone can open. One ``stat`` of the
        path against the file the connection opened tells.
        """
        identity = self._state.identity
        if identity is None:  # in memory
            return
        try:
            st = os.stat(self._target)
        except (FileNotFoundError, NotADirectoryError):
            what, stale = "was removed", ""
        except OSError as err:
            raise CatalogError(
                f"SQLite catalog file {self._target!r} cannot be checked ({err}); make it "
                "and its directory accessible again, then retry"
            ) from err
        else:
            if (st.st_dev, st.st_ino) == identity:
                return
            # SQLite leaves the old file's WAL at the path and would read it as the
            # new file's (an empty new file is safe: SQLite drops a WAL then).
            name = os.path.basename(self._target)
            what, stale = (
                "was replaced by another file",
                (
                    f" The {name}-wal and {name}-shm files beside it belong to the old file: "
                    "close every handler on it and remove them before the new file is opened."
                ),
            )
        raise CatalogLostError(
            f"SQLite catalog file {self._target!r} {what} while this handler had it open, "
            f"so this handler writes nothing more to it.{stale} Open a new handler "
            "on the catalog you mean to use; records missing from it can be restored from "
            "the sidecars in storage with `elliptio reindex`."
        )

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        """Begin a write transaction, on the file this catalog opened only.

        The file is checked once the write lock is held, so that a wait for
        another process's lock cannot hide a file lost meanwhile.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._check_file()
        except BaseException:
            conn.rollback()
            raise

    @contextlib.contextmanager
    def _writing(self, conn: sqlite3.Connection) -> Iterator[None]:
        """A write transaction (see `_begin_write`), committed when the block ends
        unless the block rolled it back, and rolled back when the block raises."""
        self._begin_write(conn)
        try:
            yield
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    def _write(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        with self._writing(conn):
            return int(conn.execute(sql, params).rowcount)

    def _write_returning(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """Run one write statement with RETURNING in its own transaction."""
        with self._writing(conn):
            return conn.execute(sql, params).fetchall()

    def _translate(self, err: sqlite3.Error) -> ElliptioError:
        if any(text in str(err) for text in _TOO_LARGE):
            # The SQL of a filter that passed `filters.check_filter` is too large for
            # SQLite (an $in or $or of ~1,000 entries, a path of 31 or more parts):
            # the query is at fault, not the file.
            return QueryError(
                f"the filter is too large for SQLite catalog {self._display} ({err}); "
                "split it into several queries with fewer $in values or $or entries, "
                "or use shorter field paths"
            )
        if "malformed JSON" in str(err):
            return _corrupt(err)
        if isinstance(err, sqlite3.DatabaseError) and any(text in str(err) for text in _DAMAGED):
            return CatalogError(
                f"SQLite catalog {self._display} is damaged or is no SQLite database "
                f"({err}); elliptio leaves it as it is. Restore it from a backup, or "
                "move it aside and rebuild the catalog from the sidecars in storage "
                "into a new file: elliptio reindex --catalog sqlite:///NEW.db (add "
                "--aliases to set the aliases again)"
            )
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
        if not self._uri and self._target != ":memory:":
            self._refuse_unwritable_file()
        conn = sqlite3.connect(
            self._target,
            uri=self._uri,
            timeout=30.0,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if self._target != ":memory:" and not self._uri:
                self._state.identity = self._identity()
            register_functions(conn)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Pages of the indexes a write touches stay in memory between writes.
            conn.execute(f"PRAGMA cache_size={-_CACHE_KIB}")
            # Before anything changes the file.
            self._refuse_foreign(conn)
            self._refuse_newer(conn)
            if self._target != ":memory:" and not self._uri:
                conn.execute("PRAGMA journal_mode=WAL")
                # Reads from the OS page cache without a copy or a system call per
                # page; SQLite caps the size at its build's limit (often 2 GiB).
                conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._state.connection = conn
        return conn

    def _refuse_newer(self, conn: sqlite3.Connection) -> None:
        """Raise `CatalogError` if a newer release wrote the file: its schema is not
        this release's to read or change."""
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            from elliptio import __version__

            raise CatalogError(
                f"SQLite catalog {self._display} has schema {version}, written by a newer "
                f"release of elliptio than this one ({__version__}, which reads schema "
                f"{SCHEMA_VERSION} and earlier); the file is left as it was. Open it with "
                "that release: upgrade elliptio (pip install -U elliptio)"
            )

    def _refuse_foreign(self, conn: sqlite3.Connection) -> None:
        """Raise `CatalogError` if the file is a SQLite database of another program:
        elliptio makes its catalog in a new or empty file only, never beside another
        program's tables (a path given by a slip would gain them). A file of a schema
        version elliptio wrote (another program may set one too, higher ones as well)
        holds the ``artifacts`` table with its ``artifact_id`` column, as every
        schema has.

        One statement reads the version and the tables, so both come from one state
        of the file: another process making the catalog commits its tables and its
        version at once, between two statements."""
        version, listed, ours = conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT "
            "json_group_array(name) FROM (SELECT name FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY 1)), EXISTS (SELECT 1 FROM "
            "pragma_table_info('artifacts') WHERE name = 'artifact_id')"
        ).fetchone()
        names: list[str] = json.loads(listed)
        if version > SCHEMA_VERSION:
            # A newer release's (see `_refuse_newer`) keeps its ``artifacts`` table.
            foreign = bool(names) and "artifacts" not in names
        else:
            foreign = bool(names) if version == 0 else not ours
        if version == 0 and ours:
            # elliptio sets the version in the transaction that makes its tables.
            raise CatalogError(
                f"SQLite catalog {self._display} holds the tables of an elliptio catalog "
                "but no schema version (a copy restored from the sqlite3 shell's .dump, "
                "or Python's iterdump, loses it); the file is left as it was, since "
                "which schema its tables are of is not known. Open the file the copy "
                "was made from, or rebuild the catalog from the sidecars in storage "
                "into a new file: elliptio reindex --catalog sqlite:///NEW.db (add "
                "--aliases to set the aliases again)"
            )
        if foreign:
            shown = ", ".join(repr(name) for name in names[:5])
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            holds = f"holds {shown}{more}" if names else f"is of version {version}"
            raise CatalogError(
                f"SQLite catalog {self._display} is a database of another program (it "
                f"{holds} and no elliptio catalog); the file is left as it "
                "was. elliptio makes its catalog in a new or empty file only: give the "
                "path of the catalog, or of a file that does not exist yet"
            )

    def _lock_for_upgrade(self, conn: sqlite3.Connection, version: int) -> bool:
        """Begin the write transaction that brings a file of schema ``version`` to
        this one; False if the file is of this schema once the lock is free.

        A process upgrading a large file holds the lock for minutes (about 35 s per
        100,000 records): the others wait for it as long as the file is not of this
        schema yet, not only as long as the lock retries of other calls last.
        """
        deadline = time.monotonic() + _UPGRADE_WAIT_SECONDS
        waiting = False
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as err:
                if not _is_lock_error(err) or time.monotonic() > deadline:
                    raise
            with contextlib.suppress(sqlite3.OperationalError):  # read locked out
                if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    return False
            if not waiting:
                waiting = True
                log.warning(
                    "catalog %s (schema %d) is locked by another process, most likely "
                    "upgrading it to schema %d (about 35 s per 100,000 records); waiting",
                    self._display,
                    version,
                    SCHEMA_VERSION,
                )
            time.sleep(0.05)

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        self._refuse_newer(conn)
        if not self._lock_for_upgrade(conn, version):
            return  # another process upgraded it meanwhile
        try:
            self._refuse_newer(conn)  # a newer release may have been first
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:  # another process may have been first
                self._refuse_foreign(conn)  # made meanwhile by another program
                if version == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                else:
                    _upgrade(conn, version, self._display)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise

    # -- Catalog interface ---------------------------------------------------

    def _encode(self, doc: Document) -> _Row:
        artifact_id = doc.get("artifact_id") if isinstance(doc, dict) else None
        if not isinstance(artifact_id, str) or not artifact_id:
            raise CatalogError(
                f"cannot insert into catalog {self._display}: the document has no "
                "string 'artifact_id'"
            )
        if "_environment" in doc:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r}: field '_environment' is internal to the "
                "catalog; rename it"
            )
        try:
            return _row(doc)
        except TypeError as err:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r} cannot be stored in catalog {self._display}: {err}"
            ) from err

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
        docs = list(docs)
        if docs:
            # Encoded on the worker: a batch of 10,000 records takes over a second,
            # which would hold up every other task of the event loop.
            await self._run(self._insert_docs, docs)

    def _insert_docs(self, conn: sqlite3.Connection, docs: list[Document]) -> None:
        rows = [self._encode(doc) for doc in docs]
        self._begin_write(conn)
        self._insert_in_transaction(conn, rows)

    def _insert_in_transaction(self, conn: sqlite3.Connection, rows: list[_Row]) -> None:
        """Write ``rows`` and commit the transaction the caller began; roll back on error."""
        try:
            seen: set[str] = set()
            for row in rows:
                if row.artifact_id in seen:
                    raise exists_error(self._display, row.artifact_id)
                seen.add(row.artifact_id)
            try:
                _write_rows(conn, rows)
            except sqlite3.IntegrityError as err:
                conn.rollback()  # then see which id was there before this batch
                taken = _taken(conn, [row.artifact_id for row in rows])
                if taken is None:
                    named = _taken_version(conn, rows)
                    if named is not None:
                        raise version_taken_error(self._display, *named) from err
                raise exists_error(self._display, taken or rows[0].artifact_id) from err
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
        found = await self._run(
            self._select_docs,
            f"SELECT {_LOAD} FROM artifacts WHERE artifact_id = ?1",
            [artifact_id],
        )
        if not found[0]:
            raise ArtifactNotFoundError(
                f"no artifact {artifact_id!r} in catalog {self._display}; check the id, "
                "or search with find()"
            )
        return _load_all(*found, None)[0]

    @staticmethod
    def _select(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    @staticmethod
    def _select_docs(conn: sqlite3.Connection, sql: str, params: list[Any]) -> _Loaded:
        """Rows selected with `_LOAD`, and the packages of their environments."""
        rows = conn.execute(sql, params).fetchall()
        return rows, _environment_texts(conn, {row[0] for row in rows})

    async def find(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        fields: Sequence[str] | None = None,
    ) -> list[Document]:
        """Return the documents matching ``filter``.

        Args:
            filter: a MongoDB filter document; ``None`` or ``{}`` matches all.
            sort: ``(key, direction)`` pairs, direction ``1`` or ``-1``. Ties and
                an empty sort come in insertion order.
            skip: number of matching documents to leave out first.
            limit: maximum number of documents; ``0`` means no limit.
            fields: top-level fields to return (``artifact_id`` always is);
                ``None`` returns whole documents.

        Raises:
            QueryError: the filter, sort, skip, limit or fields are not accepted.
        """
        pairs, names = _checked(filter, sort, skip, limit, fields)
        wanted = None if names is None else ["artifact_id", *names]
        sql, params = self._matching(filter, pairs, skip, limit, _LOAD)
        rows, envs = await self._run(self._select_docs_matching, sql, params)
        if len(rows) < _DECODE_OFF_LOOP:
            return _load_all(rows, envs, wanted)
        # Decoding many documents takes long enough to stall other tasks.
        return await to_thread(_load_all, rows, envs, wanted)

    def _select_docs_matching(
        self, conn: sqlite3.Connection, sql: Callable[[sqlite3.Connection], str], params: list[Any]
    ) -> _Loaded:
        return self._select_docs(conn, sql(conn), params)

    async def find_columns(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        fields: Sequence[str],
    ) -> dict[str, list[Any]]:
        """The matching documents as columns; see `Catalog.find_columns`.

        SQLite picks the wanted fields out of the JSON document (``json_extract``
        with several paths copies their texts as stored) and hands over the small
        JSON columns (labels, the fields of `_HEAD`) as they are, so only those
        texts are parsed in Python, and no document is built.
        """
        pairs, names = _checked(filter, sort, skip, limit, fields)
        if names is None:
            raise QueryError("find_columns needs a list of fields")
        wanted = [n for n in names if n != "artifact_id"]
        # A JSON path cannot name these (quotes, escapes): read whole records.
        if any('"' in n or "\\" in n or not n.isprintable() for n in wanted):
            return await super().find_columns(
                filter, sort=pairs, skip=skip, limit=limit, fields=fields
            )
        groups: dict[str, list[str]] = {}
        for n in wanted:
            column = _MOVED.get(n, "doc")
            if n != "creation_time" and column in _JSON_COLUMNS:
                groups.setdefault(column, []).append(n)
        # The small columns come whole; only the document is worth picking from,
        # with two paths at least, so that json_extract always returns an array:
        # a lone field is followed by '$."$"', which names no key (keys never
        # start with "$").
        in_doc = groups.get("doc", [])
        paths = [f'$."{n}"' for n in (in_doc if len(in_doc) != 1 else [*in_doc, "$"])]

        def select(first: int) -> str:
            """The select list, its JSON paths bound from parameter ``first`` on."""
            marks = ", ".join(f"?{first + 1 + i}" for i in range(len(paths)))
            doc = _column_sql("doc")
            return (
                "environment, artifact_id, creation_ms, CASE WHEN creation_ms IS NULL THEN"
                f" json_extract({doc}, '$.creation_time', ?{first}) END"
                + "".join(
                    f", json_extract({doc}, {marks})" if column == "doc" else f", {column}"
                    for column in groups
                )
            )

        sql, params = self._matching(filter, pairs, skip, limit, select, ['$."$"', *paths])
        rows, envs = await self._run(self._select_docs_matching, sql, params)
        return await to_thread(_columns, rows, envs, wanted, groups)

    def _matching(
        self,
        flt: Filter | None,
        pairs: list[tuple[str, int]],
        skip: int,
        limit: int,
        columns: str | Callable[[int], str],
        column_params: Sequence[Any] = (),
    ) -> tuple[Callable[[sqlite3.Connection], str], list[Any]]:
        """The SQL (made on the worker, which knows the layout) selecting ``columns``
        of the matching rows in order, and its parameters (filled in then).
        ``columns`` may bind ``column_params``: it is called with the number of
        the first parameter they are bound from."""
        params: list[Any] = []

        def sql(conn: sqlite3.Connection) -> str:
            where, order, values = query.translate_query(flt, pairs, layout=self._layout(conn))
            order = f"{order}, artifacts.id" if order else "ORDER BY artifacts.id"
            n = len(values)
            params[:] = [*values, limit or -1, skip, *column_params]
            listed = columns if isinstance(columns, str) else columns(n + 3)
            text = (
                f"SELECT {listed} FROM artifacts WHERE {where} {order}"
                f" LIMIT ?{n + 1} OFFSET ?{n + 2}"
            )
            log.debug("query plan: %s", text)
            return text

        return sql, params

    @staticmethod
    def _layout(conn: sqlite3.Connection) -> query.Layout:
        """The layout, telling which promoted paths no document has an array on.

        Documents with an array on a promoted path are listed in the side table,
        so each probe is one index lookup.
        """

        def unlisted(flag: str, path: str) -> bool:
            return not conn.execute(
                "SELECT 1 FROM side_index WHERE field = ? AND value = ? LIMIT 1", (flag, path)
            ).fetchone()

        flat = frozenset(path for path in _PROMOTED if unlisted(_ARRAY_FLAG, path))
        text = frozenset(path for path in _TEXT if unlisted(_OTHER_FLAG, path))
        return dataclasses.replace(LAYOUT, flat_paths=flat, text_only=text)

    async def count(self, filter: Filter | None = None) -> int:
        """Return how many documents match ``filter``.

        Raises:
            QueryError: the filter is malformed or uses an unsupported operator.
        """
        filters.check_filter(filter)
        return await self._run(self._count, filter)

    def _count(self, conn: sqlite3.Connection, flt: Filter | None) -> int:
        where, params = query.translate(flt, layout=self._layout(conn))
        sql = f"SELECT count(*) FROM artifacts WHERE {where}"
        log.debug("query plan: %s", sql)
        (n,) = conn.execute(sql, params).fetchone()
        return int(n)

    async def delete(self, artifact_id: str) -> None:
        """Remove the document with this id, if any (maintenance only)."""
        await self._run(self._delete, artifact_id)

    def _delete(self, conn: sqlite3.Connection, artifact_id: str) -> None:
        with self._writing(conn):
            stored = _stored(conn, artifact_id)
            if stored is not None:
                row_id, doc = stored
                _forget_side(conn, row_id, doc)
                conn.execute("DELETE FROM artifacts WHERE id = ?", (row_id,))
                conn.execute("DELETE FROM packed_docs WHERE id = ?", (row_id,))

    # -- changing a record -------------------------------------------------------

    async def replace(self, doc: Document, revision: tuple[bool, int]) -> bool:
        """Replace a record that still has ``revision``; see `Catalog.replace`."""
        row = self._encode(doc)
        return await self._run(self._replace_row, row, revision)

    def _replace_row(self, conn: sqlite3.Connection, row: _Row, revision: tuple[bool, int]) -> bool:
        with self._writing(conn):
            stored = _stored(conn, row.artifact_id)
            if stored is None or stored[1] is None or record_revision(stored[1]) != tuple(revision):
                conn.rollback()
                return False
            row_id, old = stored
            _forget_side(conn, row_id, old)
            envs = _environments(conn, [row])
            conn.execute(
                "UPDATE artifacts SET creation_ms = ?, username = ?, datatype = ?, project = ?,"
                " arrays = ?, labels_json = ?, name = ?, name_version = ?, deleted_json = ?,"
                " environment = ?, head_json = ? WHERE id = ?",
                (
                    *row[1:7],
                    row.name,
                    row.name_version,
                    row.deleted_json,
                    _env_id(envs, row),
                    row.head_json,
                    row_id,
                ),
            )
            conn.execute("UPDATE packed_docs SET doc = ? WHERE id = ?", (row.doc, row_id))
            _write_side(conn, [(row_id, row)])
        return True

    async def object_users(self, urls: Sequence[str]) -> dict[str, set[str]]:
        """The ids of the records naming each of ``urls``; see `Catalog.object_users`."""
        wanted = list(dict.fromkeys(urls))
        if not wanted:
            return {}
        return await self._run(self._object_users, wanted)

    @staticmethod
    def _object_users(conn: sqlite3.Connection, urls: list[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for start in range(0, len(urls), 500):
            by_key: dict[int, list[str]] = {}
            for url in urls[start : start + 500]:
                by_key.setdefault(_key(url), []).append(url)
            marks = ", ".join(["?"] * len(by_key))
            users: dict[int, tuple[str, set[str]]] = {}
            for row_id, artifact_id, key in conn.execute(
                "SELECT f.artifact, a.artifact_id, f.url_key FROM file_keys f JOIN artifacts a"
                f" ON a.id = f.artifact WHERE f.url_key IN ({marks})",
                list(by_key),
            ):
                users.setdefault(row_id, (str(artifact_id), set()))[1].update(by_key[key])
            for row_id, (artifact_id, candidates) in users.items():
                objects = _stored_objects(conn, row_id)
                # A record that cannot be read back is taken to use them all.
                named = candidates if objects is None else {url for _, _, url in objects}
                for url in candidates & named:
                    found.setdefault(url, set()).add(artifact_id)
        return found

    # -- commit leases ------------------------------------------------------------

    async def open_lease(self, artifact_id: str, prefix: str, started: dt.datetime) -> None:
        """Note that ``artifact_id`` is being written under ``prefix``."""
        await self._run(self._open_lease, (artifact_id, prefix, codec.date_text(started)))

    def _open_lease(self, conn: sqlite3.Connection, lease: tuple[str, str, str]) -> None:
        self._write(
            conn,
            "INSERT INTO leases (artifact_id, prefix, started, state) VALUES (?, ?, ?, 'open')",
            lease,
        )

    async def open_lease_finding(
        self,
        artifact_id: str,
        prefix: str,
        started: dt.datetime,
        keys: Sequence[tuple[str, int]],
        url_prefix: str,
    ) -> dict[tuple[str, int], str]:
        """`open_lease` and `find_objects` in one job: the lease is the job's last
        step, so it is not open if the job fails."""
        lease = (artifact_id, prefix, codec.date_text(started))
        return await self._run(self._lease_finding, lease, list(dict.fromkeys(keys)), url_prefix)

    def _lease_finding(
        self,
        conn: sqlite3.Connection,
        lease: tuple[str, str, str],
        keys: list[tuple[str, int]],
        url_prefix: str,
    ) -> dict[tuple[str, int], str]:
        found = self._find_objects(conn, keys, url_prefix)
        self._open_lease(conn, lease)
        return found

    async def get_lease(self, artifact_id: str) -> Lease | None:
        """The lease of ``artifact_id``, if any."""
        rows = await self._run(
            self._select,
            "SELECT artifact_id, prefix, started, state FROM leases WHERE artifact_id = ?",
            [artifact_id],
        )
        if not rows:
            return None
        return read_lease(*rows[0])

    async def claim_lease(
        self,
        artifact_id: str,
        state: Literal["committing", "condemned"],
        *,
        started_before: dt.datetime | None = None,
    ) -> bool:
        """Atomically move an ``open`` lease to ``state``; see `Catalog.claim_lease`."""
        sql = "UPDATE leases SET state = ? WHERE artifact_id = ? AND state = 'open'"
        params: tuple[Any, ...] = (state, artifact_id)
        if started_before is not None:
            sql += " AND started < ?"
            params = (*params, codec.date_text(started_before))
        return await self._run(self._write, sql, params) == 1

    async def close_lease(self, artifact_id: str) -> None:
        """Forget the lease of ``artifact_id``, if any."""
        await self._run(self._write, "DELETE FROM leases WHERE artifact_id = ?", (artifact_id,))

    async def old_leases(self, started_before: dt.datetime) -> list[Lease]:
        """Every lease started before ``started_before``, oldest first."""
        rows = await self._run(
            self._select,
            "SELECT artifact_id, prefix, started, state FROM leases WHERE started < ?"
            " ORDER BY started, artifact_id",
            [codec.date_text(started_before)],
        )
        return [read_lease(*row) for row in rows]

    # -- run inputs ---------------------------------------------------------------

    async def add_run_inputs(self, run_id: str, artifact_ids: Sequence[str]) -> None:
        """Note that ``artifact_ids`` were read in run ``run_id``; see `Catalog.add_run_inputs`."""
        if artifact_ids:
            await self._run(self._add_run_inputs, run_id, list(artifact_ids))

    def _add_run_inputs(self, conn: sqlite3.Connection, run_id: str, ids: list[str]) -> None:
        with self._writing(conn):
            conn.executemany(
                "INSERT OR IGNORE INTO run_inputs (run_id, artifact_id) VALUES (?, ?)",
                [(run_id, artifact_id) for artifact_id in ids],
            )

    async def run_inputs(self, run_id: str) -> list[str]:
        """The artifact ids read in run ``run_id``, first read first."""
        rows = await self._run(
            self._select,
            "SELECT artifact_id FROM run_inputs WHERE run_id = ? ORDER BY rowid",
            [run_id],
        )
        return [row[0] for row in rows]

    async def commit(self, doc: Document) -> None:
        """Claim the lease, insert the record and close the lease in one transaction.

        Raises:
            CommitError: gc condemned the lease first; nothing was inserted.
            ArtifactExistsError: the id, or the name and version, exist already.
        """
        row = self._encode(doc)
        await self._run(self._commit_row, row)

    def _commit_row(self, conn: sqlite3.Connection, row: _Row) -> None:
        self._begin_write(conn)
        try:
            claimed = conn.execute(
                "DELETE FROM leases WHERE artifact_id = ? AND state = 'open'", (row.artifact_id,)
            ).rowcount
            if claimed != 1:
                raise lease_lost_error(row.artifact_id)
        except BaseException:
            conn.rollback()
            raise
        # _insert_docs would begin its own transaction: continue this one instead.
        try:
            self._insert_in_transaction(conn, [row])
        except ArtifactExistsError:
            # Exactly this record is in already (restored from this writer's own
            # sidecar): it is committed, and the lease is done with.
            stored = _stored(conn, row.artifact_id)
            if stored is None or stored[1] is None or not _same(_row(stored[1]), row):
                raise
            self._write(conn, "DELETE FROM leases WHERE artifact_id = ?", (row.artifact_id,))

    # -- names, versions and aliases ---------------------------------------------

    async def reserve_version(self, name: str) -> int:
        """Reserve the next version number of ``name``; see `Catalog.reserve_version`."""
        rows = await self._run(
            self._write_returning,
            # Never below a version the records hold, whatever the counter says (a
            # row planted in a shared catalog would otherwise block the name).
            f"INSERT INTO names (name, last_version) VALUES (?1, 1 + {_HELD}) ON CONFLICT (name)"
            " DO UPDATE SET last_version = 1 + max(CASE WHEN typeof(last_version) = 'integer'"
            f" AND last_version BETWEEN 0 AND ?2 THEN last_version ELSE 0 END, {_HELD})"
            " RETURNING last_version",
            (name, VERSION_CEILING),
        )
        return int(rows[0][0])

    async def version_id(self, name: str, version: int | None = None) -> str | None:
        """The artifact id of ``name:v<version>``, or of its highest version."""
        if version is None:
            sql = (
                "SELECT a.artifact_id FROM artifacts a"
                f" WHERE a.name = ? AND {_NAMED} AND {_LIVE}"
                " ORDER BY a.name_version DESC LIMIT 1"
            )
            rows = await self._run(self._select, sql, [name])
        else:
            sql = "SELECT artifact_id FROM artifacts WHERE name = ? AND name_version = ?"
            rows = await self._run(self._select, sql, [name, version])
        return str(rows[0][0]) if rows else None

    async def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``name:alias`` at ``version``; return the version it pointed at."""
        return await self._run(self._set_alias, name, alias, version)

    def _set_alias(
        self, conn: sqlite3.Connection, name: str, alias: str, version: int
    ) -> int | None:
        with self._writing(conn):
            row = conn.execute(
                "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)
            ).fetchone()
            conn.execute(
                "INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?) ON CONFLICT"
                " (name, alias) DO UPDATE SET version = excluded.version",
                (name, alias, version),
            )
        return None if row is None else alias_version(name, alias, row[0])

    async def remove_alias(self, name: str, alias: str) -> int | None:
        """Remove ``name:alias``; return the version it pointed at, if any."""
        rows = await self._run(
            self._write_returning,
            "DELETE FROM aliases WHERE name = ? AND alias = ? RETURNING version",
            (name, alias),
        )
        return alias_version(name, alias, rows[0][0]) if rows else None

    async def aliases(self, name: str) -> dict[str, int]:
        """The aliases of ``name``, each with the version it points at."""
        rows = await self._run(
            self._select, "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", [name]
        )
        return grouped_aliases((name, alias, version) for alias, version in rows).get(name, {})

    async def all_aliases(self) -> dict[str, dict[str, int]]:
        """Every name's aliases, in one query; see `Catalog.all_aliases`."""
        rows = await self._run(
            self._select, "SELECT name, alias, version FROM aliases ORDER BY name, alias", []
        )
        return grouped_aliases(rows)

    async def names(self) -> list[tuple[str, int, int]]:
        """Every name with committed artifacts: ``(name, count, latest version)``."""
        rows = await self._run(
            self._select,
            "SELECT a.name, count(*), max(a.name_version) FROM artifacts a"
            f" WHERE {_NAMED} AND {_LIVE}"
            " GROUP BY a.name ORDER BY a.name",
            [],
        )
        return [(str(n), int(c), int(v)) for n, c, v in rows]

    # -- deduplication -------------------------------------------------------------

    async def known_sizes(self, sizes: Sequence[int]) -> set[int]:
        """Which of ``sizes`` some committed file has."""
        wanted = sorted(set(sizes))
        found: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(["(?)"] * len(chunk))
            # One index probe per size: DISTINCT would read every file of a common size.
            rows = await self._run(
                self._select,
                f"SELECT column1 FROM (VALUES {marks}) WHERE EXISTS"
                " (SELECT 1 FROM file_keys WHERE size = column1)",
                chunk,
            )
            found.update(int(r[0]) for r in rows)
        return found

    async def find_objects(
        self, keys: Sequence[tuple[str, int]], url_prefix: str
    ) -> dict[tuple[str, int], str]:
        """A committed file's URL for each ``(sha256, size)`` that has one under
        ``url_prefix``; see `Catalog.find_objects`."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._run(self._find_objects, wanted, url_prefix)

    @staticmethod
    def _find_objects(
        conn: sqlite3.Connection, keys: list[tuple[str, int]], url_prefix: str
    ) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        for sha, size in keys:
            candidates = conn.execute(
                "SELECT DISTINCT artifact FROM file_keys WHERE size = ? AND sha_key = ?"
                " ORDER BY artifact",
                (size, _key(sha)),
            ).fetchall()
            urls = (
                url
                for (row_id,) in candidates
                for (their_size, their_sha, url) in _stored_objects(conn, row_id) or ()
                if their_size == size and their_sha == sha and url.startswith(url_prefix)
            )
            url = next(urls, None)
            if url is not None:
                found[(sha, size)] = url
        return found

    async def close(self) -> None:
        """Close the connection on its thread and stop the thread; idempotent."""
        state = self._state
        if state.closed:
            return
        state.closed = True
        if state.pid != os.getpid():
            return  # the parent's, inherited through fork: nothing of this process
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


# -- rows -----------------------------------------------------------------------

_PLACEHOLDER = 0
_CONTAINERS = {dict, list}
# A record that is not a tombstone (`elliptio._lifecycle`), on ``artifacts a``.
_LIVE = "json_extract(a.deleted_json, '$.deleted') IS NULL"


class _Row(NamedTuple):
    artifact_id: str
    creation_ms: int | None
    username: str | None
    datatype: str | None
    project: str | None
    arrays: str
    labels_json: str
    deleted_json: str
    doc: bytes | str
    # ``{"python_packages": ...}`` as JSON and its sha256, or ``None``.
    packages: str | None
    packages_sha: str | None
    side: list[tuple[str, str]]
    name: str | None
    name_version: int | None
    objects: list[tuple[int, int, int]]
    labels: list[tuple[str, Any]]
    head_json: str


def _plain(encoded: Any, path: str) -> tuple[Any, bool]:
    """The value at a dotted path, and whether an array lies on the path (or is it)."""
    value: Any = encoded
    for segment in path.split("."):
        if isinstance(value, list):
            return None, True
        if not isinstance(value, dict):
            return None, False
        value = value.get(segment)
    return value, isinstance(value, list)


def _array_paths(value: Any, prefix: str, out: list[str]) -> None:
    """Every path through documents only whose value is an array."""
    if not _CONTAINERS & set(map(type, value.values())):
        return  # e.g. python_packages: nothing to walk
    for key, item in value.items():
        if isinstance(item, dict):
            _array_paths(item, f"{prefix}{key}.", out)
        elif isinstance(item, list):
            out.append(f"{prefix}{key}")


def _row(doc: Document) -> _Row:
    """The table rows of a document; raises TypeError when it cannot be stored."""
    environment = packages_environment(doc["python_packages"]) if "python_packages" in doc else None
    packages, packages_sha = environment[1:] if environment else (None, None)
    body = {k: v for k, v in doc.items() if k != "python_packages"} if packages else doc
    source: dict[str, Any] = body if codec.storable(body) else codec.normalize(body)
    plain = {path: _plain(source, path) for path in _PROMOTED}
    side: list[tuple[str, str]] = [(_ARRAY_FLAG, p) for p, (_, arr) in plain.items() if arr]
    side.extend(
        (_OTHER_FLAG, p)
        for p in _TEXT
        if not plain[p][1] and plain[p][0] is not None and not isinstance(plain[p][0], str)
    )
    for field in sorted(_SIDE):
        value = source.get(field)
        items = value if isinstance(value, list) else [value]
        code = _SIDE[field]
        side.extend((code, item) for item in dict.fromkeys(i for i in items if isinstance(i, str)))
    paths: list[str] = []
    _array_paths(source, "", paths)
    if environment is not None and "[" in environment[1]:  # an array's JSON has one
        _array_paths({"python_packages": environment[0]}, "", paths)
    moved = {
        field: codec.to_text({field: source[field]}) if field in source else "{}"
        for field in ("labels", "deleted")
    }
    rest = {k: (_PLACEHOLDER if k in _MOVED else source[k]) for k in doc}
    head = {k: source[k] for k in _HEAD if k in source}
    created = plain["creation_time"][0]
    labels = query.label_values(source["labels"], _COLUMN_LABELS) if "labels" in source else []
    return _Row(
        artifact_id=source["artifact_id"],
        creation_ms=codec.date_millis(created) if isinstance(created, dt.datetime) else None,
        username=_text_or_none(plain["username"][0]),
        datatype=_text_or_none(plain["labels.datatype"][0]),
        project=_text_or_none(plain["labels.project"][0]),
        arrays=query.array_paths_text([p for p in paths if p not in _ARRAY_FIELDS]),
        labels_json=moved["labels"],
        deleted_json=moved["deleted"],
        doc=_pack(codec.to_text(rest)),
        packages=packages,
        packages_sha=packages_sha,
        side=side,
        name=_text_or_none(plain["name"][0]),
        name_version=_name_version(source),
        objects=[(size, _key(sha), _key(url)) for size, sha, url in _objects(source)],
        labels=list(dict.fromkeys(labels)),
        head_json=codec.to_text(head),
    )


def _name_version(doc: Document) -> int | None:
    """The version of a named record (both ``name`` and an int ``name_version`` >= 1)."""
    version = doc.get("name_version")
    if isinstance(doc.get("name"), str) and type(version) is int and version >= 1:
        return version
    return None


def _objects(doc: Document) -> list[tuple[int, str, str]]:
    """``(size, sha256, url)`` of every well-formed file and log record of a document."""
    found: dict[tuple[int, str, str], None] = {}
    for field in ("files", "logs"):
        items = doc.get(field)
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            sha, size, url = item.get("sha256"), item.get("size"), item.get("url")
            if isinstance(sha, str) and type(size) is int and isinstance(url, str):
                found[(size, sha, url)] = None
    return list(found)


def _key(text: str) -> int:
    """A text's 32-bit key in ``file_keys``: equal texts, equal keys. The first half
    of the 64-bit key of schemas 8 to 11 (``file_objects``), so those carry over."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _stored_objects(conn: sqlite3.Connection, row_id: int) -> list[tuple[int, str, str]] | None:
    """`_objects` of a stored record, read from its document; None when the
    document cannot be read (damaged)."""
    try:
        found = conn.execute(
            f"SELECT json_extract({_UNPACK_SQL}(doc), '$.files', '$.logs') FROM packed_docs"
            " WHERE id = ?",
            (row_id,),
        ).fetchone()
        files, logs = codec.loads(found[0])
    except (sqlite3.OperationalError, ValueError, TypeError, LookupError):
        return None
    return _objects({"files": files, "logs": logs})


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _environments(conn: sqlite3.Connection, rows: Sequence[_Row]) -> dict[str, int]:
    """The id of each distinct environment of ``rows``, stored once per content."""
    distinct = {row.packages_sha: row.packages for row in rows if row.packages_sha is not None}
    if not distinct:
        return {}
    conn.executemany(
        "INSERT OR IGNORE INTO environments (sha256, packages) VALUES (?, ?)", distinct.items()
    )
    ids: dict[str, int] = {}
    for sha in distinct:
        (env_id,) = conn.execute("SELECT id FROM environments WHERE sha256 = ?", (sha,)).fetchone()
        ids[sha] = int(env_id)
    return ids


def _env_id(envs: dict[str, int], row: _Row) -> int | None:
    return None if row.packages_sha is None else envs[row.packages_sha]


def _write_rows(conn: sqlite3.Connection, rows: Sequence[_Row]) -> None:
    """Insert rows and their side values; the caller holds the write transaction."""
    # The highest id ever given (sqlite_sequence keeps it past deletes), so that
    # no side row a deleted record left could ever belong to a new one.
    (top,) = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'artifacts'), 0),"
        " coalesce((SELECT max(id) FROM artifacts), 0))"
    ).fetchone()
    ids = range(top + 1, top + 1 + len(rows))
    envs = _environments(conn, rows)
    conn.executemany(
        "INSERT INTO artifacts (id, artifact_id, creation_ms, username, datatype, project,"
        " arrays, labels_json, name, name_version, deleted_json, environment, head_json)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                *row[:7],
                row.name,
                row.name_version,
                row.deleted_json,
                _env_id(envs, row),
                row.head_json,
            )
            for i, row in zip(ids, rows, strict=True)
        ],
    )
    conn.executemany(
        "INSERT INTO packed_docs (id, doc) VALUES (?, ?)",
        [(i, row.doc) for i, row in zip(ids, rows, strict=True)],
    )
    _write_side(conn, list(zip(ids, rows, strict=True)))
    conn.executemany(
        "INSERT INTO names (name, last_version) VALUES (?, ?) ON CONFLICT (name)"
        " DO UPDATE SET last_version = max(last_version, excluded.last_version)",
        [(row.name, row.name_version) for row in rows if row.name_version is not None],
    )


# The side rows of a record: table, its columns and the SQL of each one's value
# (a label path is stored as its id in ``label_paths``), and the row's values.
_PATH_ID = "(SELECT id FROM label_paths WHERE path = ?)"
_SIDE_ROWS: tuple[
    tuple[str, tuple[str, ...], tuple[str, ...], Callable[[_Row], Sequence[tuple[Any, ...]]]], ...
] = (
    ("side_index", ("field", "value"), ("?", "?"), lambda row: row.side),
    ("label_rows", ("path", "value"), (_PATH_ID, "?"), lambda row: row.labels),
    ("file_keys", ("size", "sha_key", "url_key"), ("?", "?", "?"), lambda row: row.objects),
)


def _write_side(conn: sqlite3.Connection, rows: Sequence[tuple[int, _Row]]) -> None:
    """Insert the side rows of ``(row id, row)`` pairs, one statement per table."""
    paths = {path: None for _, row in rows for path, _ in row.labels}
    conn.executemany("INSERT OR IGNORE INTO label_paths (path) VALUES (?)", [(p,) for p in paths])
    for table, columns, sql, values in _SIDE_ROWS:
        conn.executemany(
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}, artifact)"
            f" VALUES ({', '.join(sql)}, ?)",
            [(*value, row_id) for row_id, row in rows for value in values(row)],
        )


def _same(a: _Row, b: _Row) -> bool:
    """Whether two rows store the same record."""
    fields = ("doc", "labels_json", "deleted_json", "head_json", "packages_sha")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def _stored(conn: sqlite3.Connection, artifact_id: str) -> tuple[int, Document | None] | None:
    """The row id and record of ``artifact_id`` (``None`` for a record that cannot be
    decoded), or ``None`` when there is none."""
    found = conn.execute(
        f"SELECT artifacts.id, {_LOAD} FROM artifacts WHERE artifact_id = ?", (artifact_id,)
    ).fetchone()
    if found is None:
        return None
    try:
        [doc] = _load_all([found[1:]], _environment_texts(conn, {found[1]}), None)
    except CorruptRecordError:
        return int(found[0]), None
    return int(found[0]), doc


def _forget_side(conn: sqlite3.Connection, row_id: int, doc: Document | None) -> None:
    """Delete a record's side rows: by their keys, computed from the record, or
    (a record that cannot be decoded) by looking through the side tables."""
    if doc is not None:
        try:
            _delete_side(conn, row_id, _row(doc))
            return
        except (TypeError, RecursionError):  # planted: nested too deeply to encode
            pass
    for table, _, _, _ in _SIDE_ROWS:
        conn.execute(f"DELETE FROM {table} WHERE artifact = ?", (row_id,))


def _delete_side(conn: sqlite3.Connection, row_id: int, row: _Row) -> None:
    for table, columns, sql, values in _SIDE_ROWS:
        where = " AND ".join(f"{c} = {v}" for c, v in zip(columns, sql, strict=True))
        conn.executemany(
            f"DELETE FROM {table} WHERE {where} AND artifact = ?",
            [(*value, row_id) for value in values(row)],
        )


def _upgrade(conn: sqlite3.Connection, version: int, display: str) -> None:
    """Bring a catalog of an older schema to this one, in the caller's transaction.

    The tables that hold records are built anew from the old tables' records, in
    their order, so every version takes the same path; names, aliases, leases and
    the inputs of runs are kept as they are. Large files show progress. Schemas 9
    and 10 are changed in place: schema 9 holds rows in the label table that no
    query reads, which are deleted; both hold documents as JSON text, which are
    packed (`_pack`); schemas 9 to 11 hold creation times as text, which become
    integers (`codec.date_millis`). Each changed table or column takes a new name,
    so that a process of the old schema with the file open fails loudly on its next
    query instead of missing rows or misreading documents.
    """
    if version in (9, 10, 11):
        if version == 9:
            marks = ", ".join("?" * len(_COLUMN_LABELS))
            conn.execute(
                f"DELETE FROM label_values WHERE value = '' OR path IN ({marks})",
                sorted(_COLUMN_LABELS),
            )
            conn.execute("ALTER TABLE label_values RENAME TO label_index")
        if version in (9, 10):
            conn.execute("ALTER TABLE artifact_docs RENAME TO packed_docs")
            _pack_documents(conn, display)
        _schema_12(conn, display)
        log.info(
            "upgraded catalog %s from schema %d to %d; the space the old forms no longer"
            " take is reused by new records ('sqlite3 FILE VACUUM' gives it back now)",
            display,
            version,
            SCHEMA_VERSION,
        )
        return
    old = {
        r[0]
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if r[0] in _REBUILT
    }
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({', '.join('?' * len(old))})",
        sorted(old),
    ).fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    for table in old:
        conn.execute(f'ALTER TABLE "{table}" RENAME TO "old_{table}"')
    for statement in _SCHEMA:
        conn.execute(statement)
    (total,) = conn.execute("SELECT count(*) FROM old_artifacts").fetchone()
    log.info(
        "upgrading catalog %s from schema %d to %d: %d records",
        display,
        version,
        SCHEMA_VERSION,
        total,
    )
    if version == 1:  # whole documents in one column
        select = "SELECT doc FROM old_artifacts ORDER BY rowid"
    elif version == 8:  # python_packages in environments
        select = (
            "SELECT d.doc, a.labels_json, a.deleted_json, coalesce((SELECT e.packages"
            " FROM old_environments AS e WHERE e.id = a.environment), '{}')"
            " FROM old_artifacts a JOIN old_artifact_docs d ON d.id = a.id ORDER BY a.id"
        )
    else:  # versions 2 to 7: the same tables, with ``deleted`` kept apart from version 6
        deleted = "a.deleted_json" if version >= 6 else "'{}'"
        select = (
            f"SELECT d.doc, a.labels_json, e.git_json, e.packages_json, {deleted}"
            " FROM old_artifacts a JOIN old_artifact_docs d ON d.id = a.id"
            " JOIN old_artifact_extras e ON e.id = a.id ORDER BY a.id"
        )
    bar = (
        _progress.counting_bar(f"upgrade {display}", total) if total >= _UPGRADE_PROGRESS else None
    )
    cursor = conn.execute(select)
    try:
        while batch := cursor.fetchmany(_UPGRADE_BATCH):
            texts = [text for row in batch for text in row]
            values = iter(codec.loads_many(texts))
            docs = [_merged([next(values) for _ in row]) for row in batch]
            try:
                rows = [_row(doc) for doc in docs]
            except TypeError as err:
                raise CatalogError(
                    f"catalog {display}: a record of schema {version} cannot be carried over "
                    f"to schema {SCHEMA_VERSION} ({err}); the file is left as it was. Open "
                    "it with the release that wrote it and fix or delete that record, or "
                    "rebuild the catalog from storage with 'elliptio reindex'"
                ) from err
            _write_rows(conn, rows)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    for table in old:
        conn.execute(f'DROP TABLE "old_{table}"')
    log.info("upgraded catalog %s to schema %d", display, SCHEMA_VERSION)


def _schema_12(conn: sqlite3.Connection, display: str) -> None:
    """Bring the tables of schemas 9 to 11 to schema 12: ``artifacts``, whose
    ``creation_time`` column held `codec.date_text`, is built anew with
    ``creation_ms`` (`codec.date_millis`) instead, keeping its row ids and the
    highest id ever given; the side table's rows name array fields by their
    letters (`_SIDE`) in ``side_index``; the label table's rows name their paths
    by ids (``label_paths``) in ``label_rows``; files are keyed by 32 bits of
    their texts' hashes, not 64 (`_key`), in ``file_keys``."""
    for statement in _SCHEMA:
        if statement.startswith("CREATE TABLE side_index "):
            conn.execute(statement)
    letters = " ".join(f"WHEN '{field}' THEN '{code}'" for field, code in _SIDE.items())
    conn.execute(
        f"INSERT INTO side_index (field, value, artifact) SELECT CASE field {letters}"
        " ELSE field END, value, artifact FROM side_values ORDER BY field, value, artifact"
    )
    conn.execute("DROP TABLE side_values")
    for statement in _SCHEMA:
        if statement.startswith(("CREATE TABLE label_paths ", "CREATE TABLE label_rows ")):
            conn.execute(statement)
    conn.execute("INSERT INTO label_paths (path) SELECT DISTINCT path FROM label_index ORDER BY 1")
    conn.execute(
        "INSERT INTO label_rows (path, value, artifact) SELECT p.id, l.value, l.artifact"
        " FROM label_index l JOIN label_paths p ON p.path = l.path ORDER BY 1, 2, 3"
    )
    conn.execute("DROP TABLE label_index")
    for statement in _SCHEMA:
        if "file_keys" in statement:
            conn.execute(statement)
    conn.execute(
        "INSERT OR IGNORE INTO file_keys (size, sha_key, url_key, artifact)"
        " SELECT size, sha_key >> 32, url_key >> 32, artifact FROM file_objects"
        " ORDER BY size, sha_key, artifact, url_key"
    )
    conn.execute("DROP TABLE file_objects")
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name = 'artifacts'"
    ).fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    (top,) = conn.execute(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'artifacts'), 0)"
    ).fetchone()
    conn.execute("ALTER TABLE artifacts RENAME TO old_artifacts")
    conn.create_function("eio_millis", 1, _millis_of_text, deterministic=True)
    columns = (
        "id, artifact_id, {}, username, datatype, project, arrays, labels_json, name,"
        " name_version, deleted_json, environment, head_json"
    )
    for statement in _SCHEMA:
        if statement.startswith("CREATE TABLE artifacts "):
            conn.execute(statement)
    (last, total) = conn.execute(
        "SELECT coalesce(max(id), 0), count(*) FROM old_artifacts"
    ).fetchone()
    bar = (
        _progress.counting_bar(f"upgrade {display}", total) if total >= _UPGRADE_PROGRESS else None
    )
    try:
        for start in range(0, last, _UPGRADE_BATCH):
            copied = conn.execute(
                f"INSERT INTO artifacts ({columns.format('creation_ms')})"
                f" SELECT {columns.format('eio_millis(creation_time)')} FROM old_artifacts"
                " WHERE id > ? AND id <= ? ORDER BY id",
                (start, start + _UPGRADE_BATCH),
            ).rowcount
            if bar is not None:
                bar.update(copied)
    finally:
        if bar is not None:
            bar.close()
    conn.execute("DROP TABLE old_artifacts")
    (top,) = conn.execute("SELECT max(?, coalesce(max(id), 0)) FROM artifacts", (top,)).fetchone()
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'artifacts'")
    if top:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('artifacts', ?)", (top,))
    for statement in _SCHEMA:
        if " INDEX " in statement and " ON artifacts " in statement:
            conn.execute(statement)


def _millis_of_text(text: Any) -> int | None:
    """`codec.date_millis` of a `codec.date_text` column's value; NULL for anything else."""
    try:
        return codec.date_millis(codec.parse_date(text))
    except (TypeError, ValueError, OverflowError):
        return None


def _pack_documents(conn: sqlite3.Connection, display: str) -> None:
    """Replace each JSON text in ``packed_docs`` by its `_pack` form, in place.
    Its column keeps its declared type TEXT, which leaves a blob as it is."""
    (total,) = conn.execute("SELECT count(*) FROM packed_docs").fetchone()
    bar = (
        _progress.counting_bar(f"upgrade {display}", total) if total >= _UPGRADE_PROGRESS else None
    )
    last = -1
    try:
        while batch := conn.execute(
            "SELECT id, doc FROM packed_docs WHERE id > ? ORDER BY id LIMIT ?",
            (last, _UPGRADE_BATCH),
        ).fetchall():
            conn.executemany(
                "UPDATE packed_docs SET doc = ? WHERE id = ?",
                [(_pack(doc), row_id) for row_id, doc in batch],
            )
            last = batch[-1][0]
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()


def _merged(parts: list[Any]) -> Document:
    """A record from its old parts: the document, then ``{field: value}`` objects of
    the fields kept apart, each put back where the document holds its placeholder."""
    doc, *moved = parts
    for part in moved:
        for key, value in part.items():
            doc[key] = value
    return doc  # type: ignore[no-any-return]


_UPGRADE_BATCH = 10_000
# From this many records on, an upgrade draws a progress bar when someone watches.
_UPGRADE_PROGRESS = 50_000


def _taken_version(conn: sqlite3.Connection, rows: Sequence[_Row]) -> tuple[str, int] | None:
    seen: set[tuple[str, int]] = set()
    for row in rows:
        if row.name is None or row.name_version is None:
            continue
        key = (row.name, row.name_version)
        if (
            key in seen
            or conn.execute(
                "SELECT 1 FROM artifacts WHERE name = ? AND name_version = ?", key
            ).fetchone()
        ):
            return key
        seen.add(key)
    return None


def _taken(conn: sqlite3.Connection, ids: list[str]) -> str | None:
    for artifact_id in ids:
        if conn.execute("SELECT 1 FROM artifacts WHERE artifact_id = ?", (artifact_id,)).fetchone():
            return artifact_id
    return None


def _checked(
    flt: Filter | None, sort: SortSpec | None, skip: int, limit: int, fields: Any
) -> tuple[list[tuple[str, int]], list[str] | None]:
    """The sort pairs and field names of find options, once all are checked.

    Raises:
        QueryError: an option is not accepted (see `filters`).
    """
    filters.check_filter(flt)
    pairs = filters.check_sort(sort)
    filters.check_paging(skip, limit)
    return pairs, filters.check_fields(fields)


# Rows selected with `_LOAD`, and ``{environment id: packages JSON}`` of theirs.
_Loaded = tuple[list[tuple[Any, ...]], dict[int, str]]
_LOAD = f"environment, {_column_sql('doc')}, labels_json, deleted_json, head_json"
# From this many rows on, documents are decoded on a thread, off the event loop.
_DECODE_OFF_LOOP = 1000


def _environment_texts(conn: sqlite3.Connection, ids: set[Any]) -> dict[int, str]:
    """``{id: packages JSON}`` of the environments ``ids`` (``None`` among them is none)."""
    wanted = sorted(i for i in ids if type(i) is int)  # a planted text id names none
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT id, packages FROM environments WHERE id IN ({marks})"
        found.update(conn.execute(sql, chunk).fetchall())
    return found


def _corrupt(err: Exception) -> CorruptRecordError:
    return CorruptRecordError(
        f"a record in the catalog cannot be decoded ({err!r}); restore the catalog "
        "file from a backup or rebuild it with 'elliptio reindex'"
    )


class _Packages:
    """The ``python_packages`` of environments, each decoded once; every record
    gets a copy of its own, so changing one record's never changes another's."""

    def __init__(self, texts: dict[int, str]) -> None:
        self._texts = texts
        self._values: dict[int, tuple[Any, bool]] = {}

    def __call__(self, env: Any) -> Any:
        if env not in self._values:
            value = codec.loads(self._texts[env])["python_packages"]
            flat = isinstance(value, dict) and not _CONTAINERS & set(map(type, value.values()))
            self._values[env] = (value, flat)
        value, flat = self._values[env]
        if flat:
            return dict(value)
        return codec.loads(self._texts[env])["python_packages"]


def _load_all(
    rows: list[tuple[Any, ...]], envs: dict[int, str], wanted: list[str] | None
) -> list[Document]:
    """The documents of rows selected with `_LOAD`, in order.

    ``rows`` is emptied, so that the rows are freed as soon as they are decoded.

    Raises:
        CorruptRecordError: a stored record is not what this module writes.
    """
    keep = None if wanted is None else frozenset(wanted)
    try:
        values = codec.loads_many([text for row in rows for text in row[1:]])
        packages = _Packages(envs)
        docs: list[Document] = []
        for i, row in enumerate(rows):
            doc, labels, deleted, head = values[4 * i : 4 * i + 4]
            if not isinstance(doc, dict):
                raise TypeError(f"a record is {type(doc).__name__}, not an object")
            if "labels" in doc:
                doc["labels"] = labels["labels"]
            if "deleted" in doc:
                doc["deleted"] = deleted["deleted"]
            for key, value in head.items():
                doc[key] = value
            if "python_packages" in doc and (keep is None or "python_packages" in keep):
                doc["python_packages"] = packages(row[0])
            if keep is not None and not keep.issuperset(doc):
                for key in doc.keys() - keep:
                    del doc[key]
            docs.append(doc)
    except (ValueError, LookupError, TypeError, AttributeError) as err:
        raise _corrupt(err) from err
    rows.clear()
    return docs


def _columns(
    rows: list[tuple[Any, ...]],
    envs: dict[int, str],
    wanted: list[str],
    groups: dict[str, list[str]],
) -> dict[str, list[Any]]:
    """Columns of rows selected by `SQLiteCatalog.find_columns`, in order.

    A row holds the environment, ``artifact_id``, the creation time (its column,
    else its JSON), then for each JSON column of ``groups`` the column itself,
    or for the document an array of its fields' values (padded after a lone
    one). They are decoded a chunk at a time, so what is temporary dies young,
    before the garbage collector's older generations see it.
    """
    table: dict[str, list[Any]] = {}
    try:
        for k, (column, members) in enumerate(groups.items(), start=4):
            cells = [table.setdefault(field, []) for field in members]
            for start in range(0, len(rows), _CHUNK):
                decoded = codec.loads_many([row[k] for row in rows[start : start + _CHUNK]])
                if column != "doc":
                    for cell, field in zip(cells, members, strict=True):
                        cell.extend([value.get(field) for value in decoded])
                    continue
                for cell, values in zip(cells, zip(*decoded, strict=True), strict=False):
                    cell.extend(values)
        if "creation_time" in wanted:
            table["creation_time"] = [
                codec.from_millis(row[2]) if row[2] is not None else codec.loads(row[3])[0]
                for row in rows
            ]
        if "python_packages" in wanted:
            packages = _Packages(envs)
            table["python_packages"] = [
                None if row[0] is None else packages(row[0]) for row in rows
            ]
    except (ValueError, LookupError, TypeError, AttributeError, OverflowError) as err:
        raise _corrupt(err) from err
    return {"artifact_id": [row[1] for row in rows]} | {field: table[field] for field in wanted}


_CHUNK = 200
