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
import copy
import datetime as dt
import logging
import os
import re
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from bson.errors import InvalidBSON, InvalidDocument
from bson.int64 import Int64
from bson.regex import Regex
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo import errors as mongo_errors

from elliptio._catalog import codec, filters, regex_guard
from elliptio._catalog.base import (
    Catalog,
    Document,
    Filter,
    Lease,
    SortSpec,
    alias_version,
    exists_error,
    grouped_aliases,
    packages_environment,
    read_lease,
    version_taken_error,
)
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    CatalogUnavailableError,
    ConfigError,
    CorruptRecordError,
    InvalidLabelsError,
    QueryError,
)
from elliptio._models import RESTORE_FROM_SIDECAR
from elliptio._names import VERSION_CEILING
from elliptio._redact import known_secrets, redact_text, redact_url

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_DATABASE",
    "DEFAULT_TIMEOUT_MS",
    "INDEXES",
    "MongoCatalog",
    "is_mongo_object",
    "lineage_pipeline",
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
    # Not unique: version numbers come from the atomic counter in ``<name>.names``
    # (`MongoCatalog.reserve_version`), so no two commits share one.
    IndexModel([("name", ASCENDING), ("name_version", DESCENDING)], name="elliptio_name_version"),
    IndexModel([("files.sha256", ASCENDING)], name="elliptio_files_sha256"),
    IndexModel([("logs.sha256", ASCENDING)], name="elliptio_logs_sha256"),
    IndexModel([("files.size", ASCENDING)], name="elliptio_files_size"),
    IndexModel([("logs.size", ASCENDING)], name="elliptio_logs_size"),
    # Who references a file (`Catalog.object_users`), asked before a delete removes it.
    IndexModel([("files.url", ASCENDING)], name="elliptio_files_url"),
    IndexModel([("logs.url", ASCENDING)], name="elliptio_logs_url"),
    # The records of an environment, for conditions on python_packages.
    IndexModel([("_environment", ASCENDING)], name="elliptio_environment"),
    # Every label path (labels.infos.seed, ...): a wildcard index (MongoDB 4.2+).
    IndexModel([("labels.$**", ASCENDING)], name="elliptio_labels"),
)
"""Created once per catalog, idempotently; names are elliptio's own."""

# Companion collections, named after the catalog's collection: ``<name>.names``.
SIDE_INDEXES = {
    "names": (IndexModel([("name", ASCENDING)], unique=True, name="elliptio_name"),),
    "aliases": (
        IndexModel([("name", ASCENDING), ("alias", ASCENDING)], unique=True, name="elliptio_alias"),
    ),
    "leases": (IndexModel([("artifact_id", ASCENDING)], unique=True, name="elliptio_lease"),),
    "run_inputs": (
        IndexModel(
            [("run_id", ASCENDING), ("artifact_id", ASCENDING)], unique=True, name="elliptio_run"
        ),
    ),
}

_CLIENT_CLASSES = frozenset({"AsyncMongoClient", "AsyncIOMotorClient", "AsyncMongoMockClient"})
_DATABASE_CLASSES = frozenset({"AsyncDatabase", "AsyncIOMotorDatabase", "AsyncMongoMockDatabase"})
_COLLECTION_CLASSES = frozenset(
    {"AsyncCollection", "AsyncIOMotorCollection", "AsyncMongoMockCollection"}
)
_SYNC_CLASSES = frozenset({"MongoClient", "Database", "Collection"})
_BAD_DATABASE_CHARS = re.compile(r'[/\\. "$\x00]')
_DUPLICATE_KEY = 11000
# The commands of queries, as PyMongo names one too large ("find command document
# too large"): the filter is at fault, not a record.
_QUERY_COMMANDS = frozenset({"find", "aggregate", "count", "distinct"})
_AUTH_CODES = frozenset({13, 18})
# Clients a forked child inherited and replaced (see `MongoCatalog._forget_parent_client`).
_PARENT_CLIENTS: list[Any] = []


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
        _, _, rest = uri.partition("://")
        main, _, query_text = rest.partition("?")  # as pymongo splits it
        netloc, _, path = main.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        self.hosts = hosts if at else netloc
        password = userinfo.partition(":")[2] if at else ""
        # Also the password as a person meant it, "?" and "/" included (pymongo
        # then reads part of it as options, which its errors may repeat).
        meant = known_secrets([uri])
        self.secrets = {password, urllib.parse.unquote(password), *meant} - {""}
        self.safe = redact_text(redact_url(uri, whole=True), self.secrets)
        database = urllib.parse.unquote_plus(path).split(".", 1)[0] if path else ""
        self.database = database
        self.options = {key.lower(): value for key, value in urllib.parse.parse_qsl(query_text)}
        if "@" in path:
            # pymongo reads 'u:2024/pw@h/db' as host u:2024 and database 'pw@h':
            # a password holding "/" that was not escaped, never to be shown.
            raise ConfigError(
                f"catalog URL {self.safe!r} holds '@' after its first '/': percent-escape "
                "a password that holds '/' or '@' ('/' as %2F, '@' as %40; "
                "urllib.parse.quote_plus does it)"
            )
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


_DEPTH = "elliptio_lineage_depth"
# $graphLookup keeps what it found in memory: over 100 MB (or a server's own limit)
# it fails with these codes, and the lineage is walked with find instead.
_TOO_LARGE = frozenset({40099, 292})


def lineage_pipeline(
    collection: str,
    artifact_id: str,
    direction: Literal["up", "down"],
    depth: int | None,
    fields: Sequence[str],
) -> list[dict[str, Any]]:
    """The aggregation behind `MongoCatalog.lineage_docs`: the root's ``$graphLookup``
    through ``based_on`` in one direction, unwound into one projected record each."""
    up = direction == "up"
    source, target = ("based_on", "artifact_id") if up else ("artifact_id", "based_on")
    lookup: dict[str, Any] = {
        "from": collection,
        "startWith": f"${source}",
        "connectFromField": source,
        "connectToField": target,
        "as": "linked",
        "depthField": _DEPTH,
    }
    if depth is not None:
        lookup["maxDepth"] = depth - 1  # depth 0 of $graphLookup is one link away
    return [
        {"$match": {"artifact_id": artifact_id}},
        {"$graphLookup": lookup},
        # Straight after $graphLookup, the server folds $unwind into it, so the
        # root with everything linked never has to fit in one 16 MB document.
        {"$unwind": "$linked"},
        {"$replaceRoot": {"newRoot": "$linked"}},
        {"$project": {"_id": 0, "artifact_id": 1, _DEPTH: 1, **_projected(fields)}},
        {"$sort": {_DEPTH: 1, "artifact_id": 1}},
        {"$project": {_DEPTH: 0}},
    ]


async def _create_indexes(collection: Any, indexes: Sequence[IndexModel]) -> None:
    await collection.create_indexes(list(indexes))


_REGEX_MS = int(regex_guard.QUERY_SECONDS * 1000)
log = logging.getLogger(__name__)


def _has_regex(value: Any) -> bool:
    """Whether a filter holds a ``$regex`` or a compiled pattern anywhere."""
    if isinstance(value, re.Pattern):
        return True
    if isinstance(value, Mapping):
        return "$regex" in value or any(_has_regex(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_regex(v) for v in value)
    return False


def _whole(value: Any) -> int | None:
    """A whole number as read from MongoDB, as an int: PyMongo decodes one beyond 32
    bits (a size of 2 GiB or more) as ``bson.Int64``; a bool or anything else is none."""
    return int(value) if type(value) is int or type(value) is Int64 else None


def _name_version(doc: Document) -> int | None:
    version = doc.get("name_version")
    if isinstance(doc.get("name"), str) and type(version) is int and version >= 1:
        return version
    return None


# Attempts at setting a planted version counter right (see `reserve_version`),
# and the highest version counted (a planted one past it is not).
_COUNTER_REPAIRS = 5
# What `_name_version` counts as a named record, as a filter: a string ``name`` and a
# whole ``name_version`` of at least 1, neither an array holding one ($type and $gte
# look into arrays; an array's $max, and its place in a sort, are no version).
_NAMED: dict[str, Any] = {
    "name": {"$type": "string"},
    "name.0": {"$exists": False},
    "name_version": {"$gte": 1},
    "name_version.0": {"$exists": False},
    "$or": [{"name_version": {"$type": "int"}}, {"name_version": {"$type": "long"}}],
}


def _hosts_of(target: Any) -> list[str]:
    """The servers a client object talks to, as its repr names them (the same
    in every process): PyMongo's ``host=['h1:27017', ...]`` (IPv6 ones too) or
    ``host='mongodb+srv://...'``, mongomock's ``MongoClient('h', 27017)``; Motor's
    objects through what they wrap. Options and object addresses are left out."""
    shown = repr(target)
    if " object at 0x" in shown and type(target).__module__.startswith(("motor", "mongomock")):
        shown = repr(getattr(target, "delegate", target))
    listed = re.search(r"host=(\[[^\]]*\]|'[^']*')", shown)
    hosts = re.findall(r"'([^']*)'", listed[1]) if listed else []
    hosts += [f"{h}:{p}" for h, p in re.findall(r"MongoClient\('([^']+)', (\d+)\)", shown)]
    return _server_names(hosts)


def _server_names(hosts: Sequence[str]) -> list[str]:
    """Hosts as one spelling, sorted, whether a URL or a client's repr named
    them: percent-escapes undone, IPv6 without brackets, the default port made
    explicit, a socket path as it is, an SRV URL as its name."""
    names = set()
    for host in (urllib.parse.unquote(h.strip()) for h in hosts):
        if host.lower().startswith("mongodb+srv://"):
            names.add("srv:" + host[len("mongodb+srv://") :].rstrip("/").lower())
        elif "/" in host:  # a Unix socket
            names.add(host)
        elif host.startswith("["):  # [::1]:27017, [::1]
            address, _, port = host[1:].partition("]")
            names.add(f"{address.lower()}:{port.lstrip(':') or 27017}")
        elif host.count(":") > 1:  # IPv6 as PyMongo's repr writes it: ::1:27017
            names.add(host.lower())
        elif host:
            names.add(host.lower() if ":" in host else f"{host.lower()}:27017")
    return sorted(names)


def _genuine(environment: Document) -> bool:
    """Whether an environment document is what its id (a sha256) says: a catalog
    writer may have planted another list under it, or values JSON does not hold."""
    try:
        return environment_of(_aware(environment))[1] == environment
    except (TypeError, ValueError, RecursionError):
        return False


def _no_id_error(display: str, doc: Document) -> CorruptRecordError:
    found = doc.get("artifact_id")
    what = "no artifact_id" if found is None else f"an artifact_id of type {type(found).__name__}"
    named = f" (name {doc['name']!r})" if isinstance(doc.get("name"), str) else ""
    return CorruptRecordError(
        f"catalog {display} holds a record{named} with {what}, which elliptio never "
        "writes; remove it from the collection (it matches {'artifact_id': {'$not': "
        "{'$type': 'string'}}})"
    )


def _lease(doc: Document) -> Lease:
    started = _aware({"t": doc.get("started")})["t"]
    return read_lease(doc.get("artifact_id"), doc.get("prefix"), started, doc.get("state"))


def _aware(value: Any) -> Any:
    """Datetimes in UTC, whatever the client's codec options (mongomock: naive), and
    whole numbers as plain ints: PyMongo decodes a BSON int64 (any number beyond 32
    bits: a size of 2 GiB, a seed of 2**40) as ``bson.Int64``, which SQLite never
    gives and which `type(v) is int` checks (pandas' exact-int columns) pass over."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dt.datetime | dict | list | Int64):
                value[key] = _aware(item)
        return value
    if isinstance(value, list):
        return [_aware(item) for item in value]
    return value


# A record's ``python_packages`` are stored once per distinct content, in the
# companion collection ``<name>.environments`` as ``{_id: sha256, python_packages}``;
# the record holds the sha256 under this field instead. Records written before
# keep their own list and are read and queried as they are (see `_packages_filter`).
ENVIRONMENT = "_environment"
PACKAGES = "python_packages"


def environment_of(doc: Document) -> tuple[Document, Document | None]:
    """The record as stored (packages replaced by their sha256) and the environment
    document to store with it, or ``None`` for a record without packages."""
    if PACKAGES not in doc:
        return doc, None
    _, _, sha = packages_environment(doc[PACKAGES])
    stored = {k: v for k, v in doc.items() if k != PACKAGES}
    stored[ENVIRONMENT] = sha
    return stored, {"_id": sha, PACKAGES: doc[PACKAGES]}


def _projected(fields: Sequence[str]) -> dict[str, int]:
    """A projection of ``fields``, with the environment of ``python_packages``."""
    return dict.fromkeys([*fields, *([ENVIRONMENT] if PACKAGES in fields else [])], 1)


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _touches_packages(key: str) -> bool:
    return key == PACKAGES or key.startswith(PACKAGES + ".")


class MongoCatalog(Catalog):
    """A catalog in one MongoDB collection.

    Use `open_mongo_catalog` to make one. Give either ``uri`` (with ``database``
    and ``collection``) or ``target``, a driver collection object.
    """

    remote = True

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
        self._pid = os.getpid()
        # Environments this catalog has stored or seen stored: sha256 -> document.
        self._environments: dict[str, Document] = {}
        if uri is not None:
            self._display = f"{uri.safe} (database {database!r}, collection {collection!r})"
        else:
            full = getattr(target, "full_name", None) or getattr(target, "name", "?")
            self._display = f"MongoDB collection {full!r}"
        # What tells this catalog from another, the same for a URL and a client
        # object of the same servers, in every process: the collection and the
        # servers, sorted, never options (records kept for offline reads, per catalog).
        if uri is not None:
            srv = uri.uri.lower().startswith("mongodb+srv://")
            # An SRV service name picks other servers under the same name.
            service = uri.options.get("srvservicename")
            named = f"{uri.hosts}/{service}" if service else uri.hosts
            servers = [f"mongodb+srv://{named}"] if srv else uri.hosts.split(",")
            where, names = f"{database}.{collection}", _server_names(servers)
        else:
            where = str(getattr(target, "full_name", None) or getattr(target, "name", "?"))
            names = _hosts_of(target)
        self._identity = f"MongoDB {where} at {','.join(names)}"

    def __repr__(self) -> str:
        return f"MongoCatalog({self._display!r})"

    @property
    def identity(self) -> str:
        return self._identity

    # -- connection ------------------------------------------------------------

    async def _collection(self) -> Any:
        if self._closed:
            raise CatalogError(
                f"catalog {self._display} is closed (its handler was closed); open a new "
                "Handler to keep working"
            )
        if self._pid != os.getpid():
            self._forget_parent_client()
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
                    await _create_indexes(self._target, INDEXES)
                    for suffix, indexes in SIDE_INDEXES.items():
                        await _create_indexes(self._sibling(suffix), indexes)
            except BaseException as err:
                self._indexed.set_exception(err)
                self._indexed.exception()  # retrieved: no "never retrieved" warning
                self._indexed = None
                raise
            self._indexed.set_result(None)
        elif not self._indexed.done():
            await asyncio.shield(self._indexed)
        return self._target

    def _forget_parent_client(self) -> None:
        """In a child made by ``fork``: a client of its own, made on first use."""
        if self._uri is None:
            raise CatalogError(
                f"catalog {self._display} was given a MongoDB client made in the process "
                "this one was forked from, and a client cannot be used across fork; "
                "make the client (and the handler) in the child process"
            )
        # Kept, never closed: closing would act on the parent's connections, and
        # dropping it would warn that it was left open.
        if self._client is not None:
            _PARENT_CLIENTS.append(self._client)
        self._client = self._target = self._loop = self._indexed = None
        self._pid = os.getpid()

    def _sibling(self, suffix: str) -> Any:
        return self._target.database[f"{self._target.name}.{suffix}"]

    async def _side(self, suffix: str) -> Any:
        await self._collection()
        return self._sibling(suffix)

    @staticmethod
    def _new_client(uri: _Uri) -> Any:
        from pymongo import AsyncMongoClient

        kwargs: dict[str, Any] = {"tz_aware": True, "appname": "elliptio"}
        if "serverselectiontimeoutms" not in uri.options:
            kwargs["serverSelectionTimeoutMS"] = DEFAULT_TIMEOUT_MS
        try:
            return AsyncMongoClient(uri.uri, **kwargs)
        # OSError: a TLS file named in the URL cannot be read.
        except (mongo_errors.ConfigurationError, ValueError, TypeError, OSError) as err:
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
        except InvalidBSON as err:  # no PyMongoError: PyMongo decoding what it read
            reason = self._reason(err).split(" (Consider")[0]
            raise CorruptRecordError(
                f"MongoDB catalog {self._display} holds a document that does not decode "
                f"({reason}), which elliptio never writes: a date outside years 1 to "
                "9999 or text that is no UTF-8, inserted by someone with write access "
                "to the catalog; find it with mongosh and remove it (`elliptio reindex` "
                "restores a record from its sidecar)"
            ) from None
        except InvalidDocument as err:  # DocumentTooLarge is none either: a write's size
            operation = str(err).partition(" command document too large")[0]
            if operation in _QUERY_COMMANDS:  # a question, not a record, is too large
                raise QueryError(
                    f"the filter is too large for MongoDB catalog {self._display} (one "
                    "command holds at most 16 MiB); split it into several queries with "
                    "fewer $in values or $or entries"
                ) from None
            raise CatalogError(
                f"MongoDB catalog {self._display} cannot take a document "
                f"({self._reason(err)}): a record is one MongoDB document, at most 16 "
                "MiB, which an artifact of tens of thousands of files exceeds; save "
                "its files as several artifacts, or pack them into fewer files"
            ) from None
        except mongo_errors.ExecutionTimeout:
            raise QueryError(
                f"MongoDB catalog {self._display} stopped the query after "
                f"{regex_guard.QUERY_SECONDS:g} s evaluating regular expressions; anchor the "
                "pattern with ^ or narrow the filter with an exact condition first"
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
        if ENVIRONMENT in doc:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r}: field {ENVIRONMENT!r} is internal to the catalog; "
                "rename it"
            )
        try:
            normalized: Document = codec.normalize(doc)
        except TypeError as err:
            raise InvalidLabelsError(
                f"artifact {artifact_id!r} cannot be stored in catalog {self._display}: {err}"
            ) from err
        return normalized

    async def _stored(self, docs: Sequence[Document]) -> list[Document]:
        """The records as stored, once the environments they name are stored."""
        stored, new = [], {}
        for doc in docs:
            record, environment = environment_of(doc)
            stored.append(record)
            if environment is not None and environment["_id"] not in self._environments:
                new[environment["_id"]] = environment
        if new:
            environments = await self._side("environments")
            async with self._errors():
                for sha, environment in new.items():
                    await environments.update_one(
                        {"_id": sha},
                        {"$setOnInsert": {PACKAGES: environment[PACKAGES]}},
                        upsert=True,
                    )
            self._environments.update(new)
        return stored

    async def _loaded(self, docs: list[Any]) -> list[Document]:
        """Records as read: each environment's packages back in the records naming it
        (a copy each), datetimes in UTC. A record with no text ``artifact_id`` (a
        catalog writer's) is left out, with a warning: it names no artifact, and
        one such record must not stop every search."""
        out = [_aware(dict(doc)) for doc in docs]
        if not all(isinstance(doc.get("artifact_id"), str) for doc in out):
            for doc in out:
                if not isinstance(doc.get("artifact_id"), str):
                    log.warning("%s", _no_id_error(self._display, doc))
            out = [doc for doc in out if isinstance(doc.get("artifact_id"), str)]
        wanted = {doc[ENVIRONMENT] for doc in out if _is_sha(doc.get(ENVIRONMENT))}
        if not wanted:
            return out
        environments = await self._side("environments")
        async with self._errors():
            found = await environments.find({"_id": {"$in": sorted(wanted)}}).to_list(None)
        # An environment is what its sha256 says, or no environment at all (a
        # catalog writer could have planted another list under that id).
        packages = {env["_id"]: env.get(PACKAGES) for env in found if _genuine(env)}
        for doc in out:
            if not _is_sha(doc.get(ENVIRONMENT)):
                continue  # no environment (or a field of that name from before 0.5)
            sha = doc.pop(ENVIRONMENT)
            if sha not in packages:
                raise CorruptRecordError(
                    f"record {doc.get('artifact_id')!r} in catalog {self._display} names "
                    f"environment {sha!r}, which is missing from the environments "
                    f"collection or does not hash to its id; {RESTORE_FROM_SIDECAR}"
                )
            doc[PACKAGES] = _aware(copy.deepcopy(packages[sha]))
        return out

    async def _packages_filter(self, flt: Mapping[str, Any]) -> dict[str, Any]:
        """The filter with each condition on ``python_packages`` answered by the
        environments collection: a record matches when the environment it names
        does, or (a record written before environments) when its own list does."""
        out: dict[str, Any] = {}
        answered: list[dict[str, Any]] = []
        for key, cond in flt.items():
            if key in filters.LOGICAL_OPERATORS:
                out[key] = [await self._packages_filter(sub) for sub in cond]
            elif _touches_packages(key):
                environments = await self._side("environments")
                limit_ms = _REGEX_MS if _has_regex(cond) else None
                async with self._errors():
                    cursor = environments.find({key: cond}, {"_id": 1}, max_time_ms=limit_ms)
                    found = [env["_id"] for env in await cursor.to_list(None)]
                answered.append(
                    {
                        "$or": [
                            {ENVIRONMENT: {"$in": sorted(found)}},
                            {ENVIRONMENT: {"$exists": False}, key: cond},
                        ]
                    }
                )
            else:
                out[key] = cond
        if answered:  # beside an $and of the filter's own, never in place of it
            out["$and"] = [*out.get("$and", []), *answered]
        return out

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
        [stored] = await self._stored([normalized])
        try:
            async with self._errors():
                await collection.insert_one(stored)
        except mongo_errors.DuplicateKeyError:
            raise await self._duplicate(normalized) from None
        await self._raise_counters([normalized])

    async def _duplicate(self, doc: Document) -> ArtifactExistsError:
        """The error for a document that hit a unique index: its id, or its version."""
        collection = await self._collection()
        async with self._errors():
            taken = await collection.count_documents({"artifact_id": doc["artifact_id"]})
        version = _name_version(doc)
        if not taken and version is not None:
            return version_taken_error(self._display, doc["name"], version)
        return exists_error(self._display, doc["artifact_id"])

    async def _raise_counters(self, docs: Sequence[Document]) -> None:
        """Keep each name's counter at or above the versions inserted."""
        highest: dict[str, int] = {}
        for doc in docs:
            version = _name_version(doc)
            if version is not None:
                highest[doc["name"]] = max(version, highest.get(doc["name"], 0))
        if not highest:
            return
        names = await self._side("names")
        async with self._errors():
            for name, version in highest.items():
                await names.update_one(
                    {"name": name}, {"$max": {"last_version": version}}, upsert=True
                )

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
        stored = await self._stored(normalized)
        try:
            async with self._errors():
                await collection.insert_many(stored, ordered=True)
        except mongo_errors.BulkWriteError as err:
            details = err.details or {}
            inserted = int(details.get("nInserted", 0))
            async with self._errors():
                if inserted:
                    await collection.delete_many({"artifact_id": {"$in": ids[:inserted]}})
            write_errors = details.get("writeErrors") or [{}]
            first = write_errors[0]
            if first.get("code") == _DUPLICATE_KEY:
                failed = normalized[int(first.get("index", inserted))]
                raise await self._duplicate(failed) from None
            raise CatalogError(
                f"MongoDB catalog {self._display} refused a document "
                f"({redact_text(str(first.get('errmsg', '')), set())[:300]}); nothing was written"
            ) from None
        await self._raise_counters(normalized)

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
        if not isinstance(doc.get("artifact_id"), str):
            # MongoDB matched the id inside an array (or a document) a catalog
            # writer put there: no record of this artifact, but one that blocks it.
            raise _no_id_error(self._display, doc)
        [result] = await self._loaded([doc])
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
        filter = filters.check_filter(filter)
        pairs = filters.check_sort(sort)
        filters.check_paging(skip, limit)
        names = filters.check_fields(fields)
        mongo_filter = await self._packages_filter(to_mongo_filter(filter or {}))
        if any(_touches_packages(key) for key, _ in pairs):
            raise QueryError(
                f"catalog {self._display} cannot sort by {PACKAGES}: on MongoDB the "
                "package lists are stored once per environment, apart from the records; "
                "sort the records found instead"
            )
        projection: dict[str, int] = {"_id": 0}
        if names is not None:
            projection.update({"artifact_id": 1, **_projected(names)})
        # Ties, and everything without a sort, come in insertion order.
        order = [*pairs, ("_id", ASCENDING)]
        collection = await self._collection()
        # The server's time limit bounds regexes as SQLite's does (regex_guard).
        limit_ms = _REGEX_MS if _has_regex(filter) else None
        log.debug(
            "query plan: find %s sort %s skip %d limit %d",
            filters.shape(filter),
            order,
            skip,
            limit,
        )
        async with self._errors():
            cursor = collection.find(
                mongo_filter, projection, sort=order, skip=skip, limit=limit, max_time_ms=limit_ms
            )
            docs = await cursor.to_list(None)
        return await self._loaded(docs)

    async def count(self, filter: Filter | None = None) -> int:
        """Return how many documents match ``filter``.

        Raises:
            QueryError: the filter is not accepted; nothing is sent then.
            CatalogUnavailableError: the server cannot be reached.
        """
        filter = filters.check_filter(filter)
        mongo_filter = await self._packages_filter(to_mongo_filter(filter or {}))
        collection = await self._collection()
        options = {"maxTimeMS": _REGEX_MS} if _has_regex(filter) else {}
        log.debug("query plan: count %s", filters.shape(filter))
        async with self._errors():
            return int(await collection.count_documents(mongo_filter, **options))

    async def replace(self, doc: Document, revision: tuple[bool, int]) -> bool:
        """Replace a record that still has ``revision``; see `Catalog.replace`."""
        normalized = self._normalize(doc)
        deleted, changes = revision
        query: dict[str, Any] = {
            "artifact_id": normalized["artifact_id"],
            "deleted": {"$ne": None} if deleted else None,
        }
        if changes:
            query["label_history"] = {"$size": changes}
        else:
            query["$or"] = [{"label_history": {"$exists": False}}, {"label_history": {"$size": 0}}]
        collection = await self._collection()
        [stored] = await self._stored([normalized])
        async with self._errors():
            result = await collection.replace_one(query, stored)
        return bool(result.matched_count == 1)

    async def delete(self, artifact_id: str) -> None:
        """Remove the document with this id, if any (maintenance only)."""
        collection = await self._collection()
        async with self._errors():
            await collection.delete_one({"artifact_id": artifact_id})

    # -- commit leases ------------------------------------------------------------

    async def open_lease(self, artifact_id: str, prefix: str, started: dt.datetime) -> None:
        """Note that ``artifact_id`` is being written under ``prefix``."""
        leases = await self._side("leases")
        async with self._errors():
            await leases.insert_one(
                {
                    "artifact_id": artifact_id,
                    "prefix": prefix,
                    "started": codec.normalize({"t": started})["t"],
                    "state": "open",
                }
            )

    async def get_lease(self, artifact_id: str) -> Lease | None:
        """The lease of ``artifact_id``, if any."""
        leases = await self._side("leases")
        async with self._errors():
            doc = await leases.find_one({"artifact_id": artifact_id}, {"_id": 0})
        return None if doc is None else _lease(doc)

    async def claim_lease(
        self,
        artifact_id: str,
        state: Literal["committing", "condemned"],
        *,
        started_before: dt.datetime | None = None,
    ) -> bool:
        """Atomically move an ``open`` lease to ``state``; see `Catalog.claim_lease`."""
        leases = await self._side("leases")
        query: dict[str, Any] = {"artifact_id": artifact_id, "state": "open"}
        if started_before is not None:
            query["started"] = {"$lt": codec.normalize({"t": started_before})["t"]}
        async with self._errors():
            result = await leases.update_one(query, {"$set": {"state": state}})
        return int(result.modified_count) == 1

    async def close_lease(self, artifact_id: str) -> None:
        """Forget the lease of ``artifact_id``, if any."""
        leases = await self._side("leases")
        async with self._errors():
            await leases.delete_one({"artifact_id": artifact_id})

    async def old_leases(self, started_before: dt.datetime) -> list[Lease]:
        """Every lease started before ``started_before``, oldest first."""
        leases = await self._side("leases")
        query = {"started": {"$lt": codec.normalize({"t": started_before})["t"]}}
        async with self._errors():
            cursor = leases.find(
                query, {"_id": 0}, sort=[("started", ASCENDING), ("artifact_id", ASCENDING)]
            )
            docs = await cursor.to_list(None)
        return [_lease(d) for d in docs]

    # -- names, versions and aliases ---------------------------------------------

    # -- run inputs -----------------------------------------------------------------

    async def add_run_inputs(self, run_id: str, artifact_ids: Sequence[str]) -> None:
        """Note that ``artifact_ids`` were read in run ``run_id``; one bulk write."""
        if not artifact_ids:
            return
        inputs = await self._side("run_inputs")
        now = codec.normalize({"t": dt.datetime.now(dt.UTC)})["t"]
        docs = [{"run_id": run_id, "artifact_id": a, "read": now} for a in artifact_ids]
        async with self._errors():
            try:
                await inputs.insert_many(docs, ordered=False)
            except mongo_errors.BulkWriteError as err:
                # Ids this run read before, in this process or another, are there.
                if any(e.get("code") != _DUPLICATE_KEY for e in err.details["writeErrors"]):
                    raise CatalogError(
                        f"MongoDB catalog {self._display} could not record what run {run_id} "
                        f"read ({self._reason(err)})"
                    ) from None

    async def run_inputs(self, run_id: str) -> list[str]:
        """The artifact ids read in run ``run_id``, first read first."""
        inputs = await self._side("run_inputs")
        async with self._errors():
            cursor = inputs.find({"run_id": run_id}, {"_id": 0, "artifact_id": 1})
            # By when each was noted: ObjectIds order one process's inserts, but
            # within one second those of two processes by their random bytes.
            cursor = cursor.sort([("read", ASCENDING), ("_id", ASCENDING)])
            return [doc.get("artifact_id") async for doc in cursor]

    async def reserve_version(self, name: str) -> int:
        """Reserve the next version number of ``name``; see `Catalog.reserve_version`.

        A counter that is no whole number, or below a version the records hold
        (planted by someone with insert rights), is set past the highest version
        held, by a compare-and-set, so concurrent writers still never share one.
        """
        names = await self._side("names")
        for _ in range(_COUNTER_REPAIRS):
            own = True
            try:
                async with self._errors():
                    doc = await names.find_one_and_update(
                        {"name": name},
                        {"$inc": {"last_version": 1}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                found = doc["last_version"]
            except (CatalogError, TypeError):  # $inc of a value that is no number
                own = False  # what is read now is no version of this call's own
                async with self._errors():
                    doc = await names.find_one({"name": name})
                found = doc.get("last_version") if doc else None
            held = await self._highest_version(name)
            # A counter past 32 bits comes back as bson.Int64: a number all the same.
            number = _whole(found)
            if number is not None and not 0 <= number <= VERSION_CEILING:
                number = None  # past the versions counted: not trusted either
            if own and number is not None and number > held:
                return number
            mine = max(number or 0, held) + 1
            async with self._errors():
                repaired = await names.find_one_and_update(
                    {"name": name, "last_version": found},
                    {"$set": {"last_version": mine}},
                )
            if repaired is not None:
                return mine
        raise CatalogError(
            f"the version counter of {name!r} in catalog {self._display} kept changing; retry"
        )

    async def _highest_version(self, name: str) -> int:
        """The highest version of ``name`` the records hold (0: none)."""
        collection = await self._collection()
        async with self._errors():
            doc = await collection.find_one(
                {**_NAMED, "name": name, "$and": [{"name_version": {"$lte": VERSION_CEILING}}]},
                {"_id": 0, "name_version": 1},
                sort=[("name_version", DESCENDING)],
            )
        return int(doc["name_version"]) if doc is not None else 0

    async def version_id(self, name: str, version: int | None = None) -> str | None:
        """The artifact id of ``name:v<version>``, or of its highest version."""
        collection = await self._collection()
        if version is None:
            # The latest that is not a tombstone; then that version like any other,
            # so that a record claiming it beside a tombstone is found as well.
            async with self._errors():
                latest = await collection.find_one(
                    {**_NAMED, "name": name, "deleted": None},
                    {"_id": 0, "name_version": 1},
                    sort=[("name_version", DESCENDING)],
                )
            if latest is None:
                return None
            version = int(latest["name_version"])
        query: dict[str, Any] = {**_NAMED, "name": name}
        query["name_version"] = {"$eq": version, "$gte": 1}
        async with self._errors():
            # Two: the unique version has no unique index (see INDEXES), so a record
            # inserted by someone with insert rights can claim a version another holds.
            docs = await collection.find(
                query,
                {"_id": 0, "artifact_id": 1, "name_version": 1},
                sort=[("name_version", DESCENDING)],
                limit=2,
            ).to_list(2)
        if not docs:
            return None
        doc = docs[0]
        if not isinstance(doc.get("artifact_id"), str):
            raise _no_id_error(self._display, {**doc, "name": name})
        if len(docs) == 2 and docs[1].get("name_version") == doc.get("name_version"):
            ids = sorted(str(d.get("artifact_id")) for d in docs)
            raise CorruptRecordError(
                f"{name}:v{doc.get('name_version')} is claimed by two records in catalog "
                f"{self._display} ({ids[0]} and {ids[1]}); elliptio gives each version to "
                "one commit, so one was inserted by hand: remove it from the collection, "
                "or read the one you want by its artifact id"
            )
        return str(doc["artifact_id"])

    async def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``name:alias`` at ``version``; return the version it pointed at."""
        aliases = await self._side("aliases")
        async with self._errors():
            # The whole row, not its version only: MongoDB also matches a row whose
            # name or alias is an array holding them (a catalog writer's), which no
            # read takes for an alias; replaced, it is this alias as elliptio writes it.
            before = await aliases.find_one_and_replace(
                {"name": name, "alias": alias},
                {"name": name, "alias": alias, "version": version},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        if before is None:
            return None
        return alias_version(before.get("name"), before.get("alias"), before.get("version"))

    async def remove_alias(self, name: str, alias: str) -> int | None:
        """Remove ``name:alias``; return the version it pointed at, if any."""
        aliases = await self._side("aliases")
        async with self._errors():
            before = await aliases.find_one_and_delete({"name": name, "alias": alias})
        if before is None:
            return None
        return alias_version(before.get("name"), before.get("alias"), before.get("version"))

    async def aliases(self, name: str) -> dict[str, int]:
        """The aliases of ``name``, each with the version it points at."""
        aliases = await self._side("aliases")
        async with self._errors():
            docs = await aliases.find({"name": name}, sort=[("alias", ASCENDING)]).to_list(None)
        # Each row's own name and alias: one holding them in an array (matched as
        # well) is no alias, as `all_aliases` finds too.
        rows = ((d.get("name"), d.get("alias"), d.get("version")) for d in docs)
        return grouped_aliases(rows).get(name, {})

    async def all_aliases(self) -> dict[str, dict[str, int]]:
        """Every name's aliases, in one query; see `Catalog.all_aliases`."""
        aliases = await self._side("aliases")
        order = [("name", ASCENDING), ("alias", ASCENDING)]
        async with self._errors():
            docs = await aliases.find({}, sort=order).to_list(None)
        return grouped_aliases((d.get("name"), d.get("alias"), d.get("version")) for d in docs)

    async def names(self) -> list[tuple[str, int, int]]:
        """Every name with committed artifacts: ``(name, count, latest version)``."""
        collection = await self._collection()
        pipeline = [
            {"$match": {**_NAMED, "deleted": None}},
            {"$group": {"_id": "$name", "count": {"$sum": 1}, "latest": {"$max": "$name_version"}}},
            {"$sort": {"_id": 1}},
        ]
        async with self._errors():
            cursor = collection.aggregate(pipeline)
            if asyncio.iscoroutine(cursor):  # PyMongo's async API awaits aggregate()
                cursor = await cursor
            docs = await cursor.to_list(None)
        return [(str(d["_id"]), int(d["count"]), int(d["latest"])) for d in docs]

    # -- deduplication -------------------------------------------------------------

    async def known_sizes(self, sizes: Sequence[int]) -> set[int]:
        """Which of ``sizes`` some committed file has."""
        wanted = sorted(set(sizes))
        if not wanted:
            return set()
        collection = await self._collection()
        found: set[int] = set()
        async with self._errors():
            for field in ("files", "logs"):
                values = await collection.distinct(
                    f"{field}.size", {f"{field}.size": {"$in": wanted}}
                )
                found.update(n for n in map(_whole, values) if n is not None)
        return found & set(wanted)

    async def _reopen_lease(self, artifact_id: str) -> None:
        leases = await self._side("leases")
        async with self._errors():
            await leases.update_one(
                {"artifact_id": artifact_id, "state": "committing"}, {"$set": {"state": "open"}}
            )

    async def find_objects(
        self, keys: Sequence[tuple[str, int]], url_prefix: str
    ) -> dict[tuple[str, int], str]:
        """A committed file's URL for each ``(sha256, size)`` that has one under
        ``url_prefix``; see `Catalog.find_objects`."""
        wanted = set(keys)
        if not wanted:
            return {}
        collection = await self._collection()
        shas = sorted({sha for sha, _ in wanted})
        found: dict[tuple[str, int], str] = {}
        for field in ("files", "logs"):
            query = {f"{field}.sha256": {"$in": shas}}
            async with self._errors():
                cursor = collection.find(query, {"_id": 0, field: 1}, sort=[("_id", ASCENDING)])
                docs = await cursor.to_list(None)
            for doc in docs:
                items = doc.get(field)
                # Only well-formed items count, as in SQLite's index of them.
                for item in items if isinstance(items, list) else ():
                    if not isinstance(item, dict):
                        continue
                    sha, size, url = item.get("sha256"), _whole(item.get("size")), item.get("url")
                    if not (isinstance(sha, str) and size is not None and isinstance(url, str)):
                        continue
                    key = (sha, size)
                    if key in wanted and key not in found and url.startswith(url_prefix):
                        found[key] = url
        return found

    # -- lineage ---------------------------------------------------------------------

    async def lineage_docs(
        self,
        artifact_id: str,
        direction: Literal["up", "down"],
        depth: int | None,
        fields: Sequence[str],
    ) -> list[Document] | None:
        """The records linked to ``artifact_id``, by one ``$graphLookup``; see
        `Catalog.lineage_docs`. ``None`` when the graph is too large for it."""
        collection = await self._collection()
        pipeline = lineage_pipeline(collection.name, artifact_id, direction, depth, fields)
        async with self._errors():
            try:
                cursor = collection.aggregate(pipeline)
                if asyncio.iscoroutine(cursor):  # PyMongo's async API awaits aggregate()
                    cursor = await cursor
                docs = await cursor.to_list(None)
            except mongo_errors.OperationFailure as err:
                if err.code in _TOO_LARGE:
                    return None
                raise
        return await self._loaded(docs)

    async def close(self) -> None:
        """Close the client this catalog created (never one passed in); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():
            return  # the client is the parent's, inherited through fork
        client, self._client = self._client, None
        if client is not None:
            async with self._errors():
                await client.close()
