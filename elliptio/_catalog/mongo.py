"""The MongoDB catalog: one collection shared by a team, through PyMongo's async API.

`open_mongo_catalog` takes a ``mongodb://`` / ``mongodb+srv://`` URL, or a client,
database or collection object of PyMongo's async API, Motor or mongomock-motor.
For a URL the catalog creates one `pymongo.AsyncMongoClient` (``tz_aware=True``)
on the event loop that first uses it and closes it in `MongoCatalog.close`; an
object passed in stays the caller's and is never closed here.

Every filter, sort, skip, limit and projection is checked by
`elliptio._catalog.filters` before anything is sent, exactly as the SQLite catalog
checks them, and documents are checked and normalised by `codec.normalize`
(datetimes in UTC milliseconds), so both backends store, accept and answer alike.
Errors of the driver become elliptio errors at this boundary, without credentials.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from bson.regex import Regex
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo import errors as mongo_errors

from elliptio._catalog import codec, filters
from elliptio._catalog.base import Catalog, Document, Filter, SortSpec, exists_error
from elliptio._errors import (
    ArtifactNotFoundError,
    CatalogError,
    CatalogUnavailableError,
    ConfigError,
    InvalidLabelsError,
)
from elliptio._redact import redact_text, redact_url

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_DATABASE",
    "DEFAULT_TIMEOUT_MS",
    "INDEXES",
    "MongoCatalog",
    "is_mongo_object",
    "open_mongo_catalog",
    "to_mongo_filter",
]

DEFAULT_DATABASE = "elliptio"
DEFAULT_COLLECTION = "artifacts"
DEFAULT_TIMEOUT_MS = 10_000
"""How long to look for a server before `CatalogUnavailableError`, unless the URL
sets ``serverSelectionTimeoutMS``."""

INDEXES = (
    IndexModel([("artifact_id", ASCENDING)], unique=True, name="elliptio_artifact_id"),
    IndexModel([("creation_time", DESCENDING)], name="elliptio_creation_time"),
    IndexModel([("username", ASCENDING), ("creation_time", DESCENDING)], name="elliptio_username"),
    IndexModel([("based_on", ASCENDING)], name="elliptio_based_on"),
    IndexModel(
        [("labels.datatype", ASCENDING), ("creation_time", DESCENDING)],
        name="elliptio_labels_datatype",
    ),
    IndexModel(
        [("labels.project", ASCENDING), ("creation_time", DESCENDING)],
        name="elliptio_labels_project",
    ),
    IndexModel([("file_relpaths", ASCENDING)], name="elliptio_file_relpaths"),
)
"""Created once per catalog, idempotently; names are elliptio's own."""

_CLIENT_CLASSES = frozenset({"AsyncMongoClient", "AsyncIOMotorClient", "AsyncMongoMockClient"})
_DATABASE_CLASSES = frozenset({"AsyncDatabase", "AsyncIOMotorDatabase", "AsyncMongoMockDatabase"})
_COLLECTION_CLASSES = frozenset(
    {"AsyncCollection", "AsyncIOMotorCollection", "AsyncMongoMockCollection"}
)
_SYNC_CLASSES = frozenset({"MongoClient", "Database", "Collection"})
_BAD_DATABASE_CHARS = re.compile(r'[/\\. "$\x00]')
_DUPLICATE_KEY = 11000
_AUTH_CODES = frozenset({13, 18})


def _class_names(obj: Any) -> set[str]:
    # mongomock-motor's objects masquerade as Motor's through __class__.
    names = {cls.__name__ for cls in type(obj).__mro__}
    names.add(obj.__class__.__name__)
    return names


def _kind(obj: Any) -> str | None:
    names = _class_names(obj)
    for kind, classes in (
        ("client", _CLIENT_CLASSES),
        ("database", _DATABASE_CLASSES),
        ("collection", _COLLECTION_CLASSES),
    ):
        if names & classes:
            return kind
    return None


def is_mongo_object(obj: Any) -> bool:
    """Tell whether ``obj`` is an async MongoDB client, database or collection."""
    return _kind(obj) is not None


class _Uri:
    """What elliptio reads from a MongoDB URL without any network access."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.safe = redact_url(uri)
        scheme, _, rest = uri.partition("://")
        self.srv = scheme.lower() == "mongodb+srv"
        main, _, query_text = rest.partition("?")
        netloc, _, path = main.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        self.hosts = hosts if at else netloc
        password = userinfo.partition(":")[2] if at else ""
        self.secrets = {password, urllib.parse.unquote(password)} - {""}
        database = urllib.parse.unquote_plus(path).split(".", 1)[0] if path else ""
        self.database = database
        self.options = {key.lower(): value for key, value in urllib.parse.parse_qsl(query_text)}
        if not self.hosts:
            raise ConfigError(
                f"catalog URL {self.safe!r} names no host; use e.g. "
                "'mongodb://host:27017/elliptio' or 'mongodb+srv://cluster.example.net/elliptio'"
            )

    def timeout_ms(self) -> float:
        text = self.options.get("serverselectiontimeoutms")
        try:
            return float(text) if text is not None else DEFAULT_TIMEOUT_MS
        except ValueError:
            return DEFAULT_TIMEOUT_MS


def _check_names(database: str, collection: str, where: str) -> None:
    if not database or _BAD_DATABASE_CHARS.search(database) or len(database) > 63:
        raise ConfigError(
            f"MongoDB database name {database!r} from {where} cannot be used; use letters, "
            "digits, '_' or '-' (set it in the URL path or ELLIPTIO_MONGODB_DATABASE)"
        )
    if not collection or collection.startswith(("$", "system.")) or "\x00" in collection:
        raise ConfigError(
            f"MongoDB collection name {collection!r} cannot be used; set "
            "ELLIPTIO_MONGODB_COLLECTION to a name such as 'artifacts'"
        )


def open_mongo_catalog(
    spec: str | Any, *, database: str = "", collection: str = ""
) -> MongoCatalog:
    """Open the MongoDB catalog for a URL or a driver object.

    Args:
        spec: a ``mongodb://`` or ``mongodb+srv://`` URL, or a client, database or
            collection of PyMongo's async API, Motor or mongomock-motor.
        database: the database when neither the URL path nor a database or
            collection object names one (default ``elliptio``).
        collection: the collection unless a collection object is given
            (default ``artifacts``).

    Raises:
        ConfigError: the URL, names or object cannot be used.
    """
    collection = collection or DEFAULT_COLLECTION
    if isinstance(spec, str):
        uri = _Uri(spec)
        name = uri.database or database or DEFAULT_DATABASE
        _check_names(name, collection, "the catalog URL" if uri.database else "the settings")
        return MongoCatalog(uri=uri, database=name, collection=collection)
    kind = _kind(spec)
    if kind is None:
        names = _class_names(spec)
        hint = (
            "; pass an async client (pymongo.AsyncMongoClient or Motor's AsyncIOMotorClient)"
            if names & _SYNC_CLASSES
            else ""
        )
        raise ConfigError(
            f"catalog object of type {type(spec).__name__} is not a MongoDB async client, "
            f"database or collection{hint}"
        )
    if kind == "client":
        name = database or DEFAULT_DATABASE
        _check_names(name, collection, "the settings")
        target = spec[name][collection]
    elif kind == "database":
        _check_names(str(spec.name), collection, "the database object")
        target = spec[collection]
    else:
        target = spec
    return MongoCatalog(target=target)


def _regex(pattern: str | re.Pattern[str], options: str | None = None) -> Regex[str]:
    text, flags = filters.regex_parts(pattern, options)
    return Regex(text, flags)


def _value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return codec.normalize(value)


def to_mongo_filter(flt: Mapping[str, Any]) -> dict[str, Any]:
    """The filter as sent to MongoDB: values normalised as documents are stored,
    patterns as BSON regular expressions with only the ``i m s x`` options.

    ``flt`` must have passed `filters.check_filter`.
    """
    return _filter_doc(flt)


def _filter_doc(flt: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, cond in flt.items():
        if key in filters.LOGICAL_OPERATORS:
            out[key] = [_filter_doc(sub) for sub in cond]
        elif key == "$comment":
            out[key] = cond
        else:
            out[key] = _condition(cond)
    return out


def _condition(cond: Any) -> Any:
    if filters.is_operator_doc(cond):
        return _operators(cond)
    if isinstance(cond, re.Pattern):
        return _regex(cond)
    return _value(cond)


def _operators(ops: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, operand in ops.items():
        if op == "$regex":
            text, flags = filters.regex_parts(operand, ops.get("$options"))
            out["$regex"] = text
            if flags:
                out["$options"] = flags
        elif op == "$options":
            continue
        elif op in ("$in", "$nin", "$all"):
            out[op] = [_element(item) for item in operand]
        elif op == "$not":
            out[op] = _regex(operand) if isinstance(operand, re.Pattern) else _operators(operand)
        elif op == "$elemMatch":
            out[op] = _elem_match(operand)
        elif op == "$type":
            out[op] = list(operand) if isinstance(operand, list | tuple) else operand
        elif op in ("$exists", "$size"):
            out[op] = operand
        else:
            out[op] = _value(operand)
    return out


def _elem_match(inner: Mapping[str, Any]) -> dict[str, Any]:
    keys = list(inner)
    if keys and all(k.startswith("$") and k not in filters.LOGICAL_OPERATORS for k in keys):
        return _operators(inner)
    return _filter_doc(inner)


def _element(item: Any) -> Any:
    if isinstance(item, re.Pattern):
        return _regex(item)
    if isinstance(item, Mapping) and "$elemMatch" in item:
        return {"$elemMatch": _elem_match(item["$elemMatch"])}
    return _value(item)


def _aware(value: Any) -> Any:
    """Datetimes in UTC, whatever the client's codec options (mongomock: naive)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dt.datetime | dict | list):
                value[key] = _aware(item)
        return value
    if isinstance(value, list):
        return [_aware(item) for item in value]
    return value


class MongoCatalog(Catalog):
    """A catalog in one MongoDB collection.

    Use `open_mongo_catalog` to make one. Give either ``uri`` (with ``database``
    and ``collection``) or ``target``, a driver collection object.
    """

    def __init__(
        self,
        *,
        uri: _Uri | None = None,
        database: str = "",
        collection: str = "",
        target: Any = None,
    ) -> None:
        self._uri = uri
        self._database = database
        self._collection_name = collection
        self._target = target
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._indexed: asyncio.Future[None] | None = None
        self._closed = False
        if uri is not None:
            self._display = f"{uri.safe} (database {database!r}, collection {collection!r})"
        else:
            full = getattr(target, "full_name", None) or getattr(target, "name", "?")
            self._display = f"MongoDB collection {full!r}"

    def __repr__(self) -> str:
        return f"MongoCatalog({self._display!r})"

    # -- connection ------------------------------------------------------------

    async def _collection(self) -> Any:
        if self._closed:
            raise CatalogError(
                f"catalog {self._display} is closed; open a new catalog to keep working"
            )
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise CatalogError(
                f"catalog {self._display} was first used on another event loop; a MongoDB "
                "client belongs to one loop, so open one catalog per loop"
            )
        if self._target is None:
            assert self._uri is not None
            self._client = self._new_client(self._uri)
            self._target = self._client[self._database][self._collection_name]
        if self._indexed is None:
            self._indexed = loop.create_future()
            try:
                async with self._errors():
                    await self._target.create_indexes(list(INDEXES))
            except BaseException as err:
                self._indexed.set_exception(err)
                self._indexed.exception()  # retrieved: no "never retrieved" warning
                self._indexed = None
                raise
            self._indexed.set_result(None)
        elif not self._indexed.done():
            await asyncio.shield(self._indexed)
        return self._target

    @staticmethod
    def _new_client(uri: _Uri) -> Any:
        from pymongo import AsyncMongoClient

        kwargs: dict[str, Any] = {"tz_aware": True, "appname": "elliptio"}
        if "serverselectiontimeoutms" not in uri.options:
            kwargs["serverSelectionTimeoutMS"] = DEFAULT_TIMEOUT_MS
        try:
            return AsyncMongoClient(uri.uri, **kwargs)
        except (mongo_errors.ConfigurationError, ValueError, TypeError) as err:
            raise ConfigError(
                f"catalog URL {uri.safe!r} cannot be used: {redact_text(str(err), uri.secrets)}; "
                "see https://www.mongodb.com/docs/manual/reference/connection-string/"
            ) from None

    def _reason(self, err: BaseException) -> str:
        text = str(err).split(", Timeout:")[0].split(" Topology Description")[0]
        secrets = self._uri.secrets if self._uri is not None else set()
        text = redact_text(text, secrets)
        return text if len(text) <= 300 else text[:297] + "..."

    @asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """Translate driver errors into elliptio errors, without credentials."""
        try:
            yield
        except mongo_errors.DuplicateKeyError:
            raise
        except mongo_errors.BulkWriteError:
            raise
        except (mongo_errors.ConnectionFailure, mongo_errors.ServerSelectionTimeoutError) as err:
            if self._uri is not None:
                where = f"at {self._uri.hosts}"
                seconds = self._uri.timeout_ms() / 1000
            else:
                where, seconds = "through the given client", 0.0
            within = f" within {seconds:g} s" if seconds else ""
            raise CatalogUnavailableError(
                f"MongoDB catalog {self._display} cannot be reached {where}{within} "
                f"({self._reason(err)}); check that the server runs and that this machine "
                "may reach it (network, firewall, Atlas IP access list), or raise "
                "serverSelectionTimeoutMS in the URL"
            ) from None
        except mongo_errors.OperationFailure as err:
            if err.code in _AUTH_CODES:
                raise CatalogError(
                    f"MongoDB catalog {self._display} refused the credentials or the "
                    f"operation ({self._reason(err)}); check the user, password, authSource "
                    "and the user's roles (readWrite on the database)"
                ) from None
            raise CatalogError(
                f"MongoDB catalog {self._display} failed ({self._reason(err)}); "
                "check the server's log and the user's roles"
            ) from None
        except mongo_errors.ConfigurationError as err:
            raise ConfigError(
                f"MongoDB catalog {self._display} is misconfigured ({self._reason(err)}); "
                "check the URL's host and options"
            ) from None
        except mongo_errors.PyMongoError as err:
            raise CatalogError(
                f"MongoDB catalog {self._display} failed ({self._reason(err)}); retry, or "
                "check the server"
            ) from None

    # -- documents -------------------------------------------------------------

    def _normalize(self, doc: Document) -> Document:
        artifact_id = doc.get("artifact_id") if isinstance(doc, dict) else None
        if not isinstance(artifact_id, str) or not artifact_id:
            raise CatalogError(
                f"cannot insert into catalog {self._display}: the document has no "
                "string 'artifact_id'"
            )
        try:
            normalized: Document = codec.normalize(doc)
        except TypeError as err:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r} cannot be stored in catalog {self._display}: {err}"
            ) from err
        return normalized

    # -- Catalog interface -------------------------------------------------------

    async def insert(self, doc: Document) -> None:
        """Insert one document.

        Raises:
            ArtifactExistsError: a document with the same ``artifact_id`` exists.
            InvalidLabelsError: a value in the document cannot be stored.
            CatalogUnavailableError: the server cannot be reached.
        """
        normalized = self._normalize(doc)
        collection = await self._collection()
        try:
            async with self._errors():
                await collection.insert_one(normalized)
        except mongo_errors.DuplicateKeyError:
            raise exists_error(self._display, normalized["artifact_id"]) from None

    async def insert_many(self, docs: Sequence[Document]) -> None:
        """Insert several documents in one ordered bulk write: all of them or none.

        When an id exists already, the documents this call had written before
        it are removed again before the error is raised.

        Raises:
            ArtifactExistsError: an ``artifact_id`` exists already or repeats.
            InvalidLabelsError: a value in a document cannot be stored.
            CatalogUnavailableError: the server cannot be reached.
        """
        normalized = [self._normalize(doc) for doc in docs]
        if not normalized:
            return
        ids = [doc["artifact_id"] for doc in normalized]
        seen: set[str] = set()
        for artifact_id in ids:
            if artifact_id in seen:
                raise exists_error(self._display, artifact_id)
            seen.add(artifact_id)
        collection = await self._collection()
        try:
            async with self._errors():
                await collection.insert_many(normalized, ordered=True)
        except mongo_errors.BulkWriteError as err:
            details = err.details or {}
            inserted = int(details.get("nInserted", 0))
            async with self._errors():
                if inserted:
                    await collection.delete_many({"artifact_id": {"$in": ids[:inserted]}})
            write_errors = details.get("writeErrors") or [{}]
            first = write_errors[0]
            if first.get("code") == _DUPLICATE_KEY:
                raise exists_error(self._display, ids[int(first.get("index", inserted))]) from None
            raise CatalogError(
                f"MongoDB catalog {self._display} refused a document "
                f"({redact_text(str(first.get('errmsg', '')), set())[:300]}); nothing was written"
            ) from None

    async def get(self, artifact_id: str) -> Document:
        """Return the document with this id.

        Raises:
            ArtifactNotFoundError: no document has this id.
            CatalogUnavailableError: the server cannot be reached.
        """
        collection = await self._collection()
        async with self._errors():
            doc = await collection.find_one({"artifact_id": artifact_id}, {"_id": 0})
        if doc is None:
            raise ArtifactNotFoundError(
                f"no artifact {artifact_id!r} in catalog {self._display}; check the id, "
                "or search with find()"
            )
        result: Document = _aware(dict(doc))
        return result

    async def find(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        fields: Sequence[str] | None = None,
    ) -> list[Document]:
        """Return the documents matching ``filter``; see `Catalog.find`.

        Raises:
            QueryError: the filter, sort, skip, limit or fields are not accepted;
                nothing is sent to the server then.
            CatalogUnavailableError: the server cannot be reached.
        """
        filters.check_filter(filter)
        pairs = filters.check_sort(sort)
        filters.check_paging(skip, limit)
        names = filters.check_fields(fields)
        mongo_filter = to_mongo_filter(filter or {})
        projection: dict[str, int] = {"_id": 0}
        if names is not None:
            projection.update({"artifact_id": 1, **dict.fromkeys(names, 1)})
        # Ties, and everything without a sort, come in insertion order.
        order = [*pairs, ("_id", ASCENDING)]
        collection = await self._collection()
        async with self._errors():
            cursor = collection.find(mongo_filter, projection, sort=order, skip=skip, limit=limit)
            docs = await cursor.to_list(None)
        return [_aware(dict(doc)) for doc in docs]

    async def count(self, filter: Filter | None = None) -> int:
        """Return how many documents match ``filter``.

        Raises:
            QueryError: the filter is not accepted; nothing is sent then.
            CatalogUnavailableError: the server cannot be reached.
        """
        filters.check_filter(filter)
        mongo_filter = to_mongo_filter(filter or {})
        collection = await self._collection()
        async with self._errors():
            return int(await collection.count_documents(mongo_filter))

    async def delete(self, artifact_id: str) -> None:
        """Remove the document with this id, if any (maintenance only)."""
        collection = await self._collection()
        async with self._errors():
            await collection.delete_one({"artifact_id": artifact_id})

    async def close(self) -> None:
        """Close the client this catalog created (never one passed in); idempotent."""
        if self._closed:
            return
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            async with self._errors():
                await client.close()
