"""The async interface every catalog backend implements.

A catalog stores one document per committed artifact, keyed by its
``artifact_id`` field. Documents are plain Python data: ``dict`` with ``str`` keys,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None`` and tz-aware
``datetime`` (returned in UTC, truncated to milliseconds as BSON stores them); keys
never start with ``$`` (see `elliptio._catalog.codec.encode`). Filters are MongoDB
filter documents; every backend accepts and refuses the same ones
(`elliptio._catalog.filters`) and answers them alike.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from elliptio._catalog import codec
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    CommitError,
    CorruptRecordError,
    ElliptioError,
)

__all__ = [
    "Catalog",
    "CatalogLostError",
    "Document",
    "Filter",
    "Lease",
    "LeaseState",
    "SortSpec",
    "alias_version",
    "document_columns",
    "exists_error",
    "grouped_aliases",
    "lease_lost_error",
    "record_revision",
    "version_taken_error",
]

log = logging.getLogger(__name__)

Document = dict[str, Any]
Filter = Mapping[str, Any]
SortSpec = Sequence[tuple[str, int]]
LeaseState = Literal["open", "committing", "condemned"]


_URLS_PER_QUERY = 5_000


@dataclass(frozen=True)
class Lease:
    """The catalog's note that an artifact is being written.

    A writer opens a lease before its first byte reaches storage. Committing
    claims it (``open`` -> ``committing``), inserts the record and closes it;
    `gc` condemns an old open lease (``open`` -> ``condemned``) before it removes
    the files. Both claims are atomic, so exactly one of them wins: a commit never
    lands on files that gc is removing, and gc never removes a commit's files.
    """

    artifact_id: str
    prefix: str
    started: datetime
    state: LeaseState


def read_lease(artifact_id: Any, prefix: Any, started: Any, state: Any) -> Lease:
    """A lease as a catalog holds it, checked: one elliptio did not write (a
    catalog writer's: a field missing or of another type, an unknown state) is
    `CorruptRecordError` naming it, as the leases `gc` judges are."""
    if isinstance(started, str):
        with contextlib.suppress(ValueError):
            started = datetime.fromisoformat(started)
    if (
        isinstance(artifact_id, str)
        and isinstance(prefix, str)
        and isinstance(started, datetime)
        and started.tzinfo is not None
        and state in get_args(LeaseState)
    ):
        return Lease(artifact_id, prefix, started, state)
    shown = artifact_id if isinstance(artifact_id, str) else f"({type(artifact_id).__name__})"
    raise CorruptRecordError(
        f"the catalog holds a lease of {shown[:100]!r} that elliptio did not write (its "
        "artifact id, prefix, start time or state is missing or malformed); remove it "
        "from the catalog's leases"
    )


class Catalog(abc.ABC):
    """A searchable index of artifact records.

    Implementations must be safe to call from many asyncio tasks at once on the
    loop they were first used on.
    """

    remote: bool = False
    """Whether the catalog is a network away (``ELLIPTIO_OFFLINE`` keeps off it)."""

    @property
    def identity(self) -> str:
        """What tells this catalog from every other one, the same in every process
        (records kept in the local cache are kept per catalog); may hold secrets."""
        return repr(self)

    @abc.abstractmethod
    async def insert(self, doc: Document) -> None:
        """Insert one document.

        Raises:
            ArtifactExistsError: a document with the same ``artifact_id`` exists.
        """

    @abc.abstractmethod
    async def get(self, artifact_id: str) -> Document:
        """Return the document with this id.

        Raises:
            ArtifactNotFoundError: no document has this id.
        """

    @abc.abstractmethod
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
            sort: ``(key, direction)`` pairs, direction ``1`` or ``-1``, as
                PyMongo takes them; ties come in insertion order, as does
                everything without a sort.
            skip: number of matching documents to leave out first.
            limit: maximum number of documents; ``0`` means no limit.
            fields: top-level fields to return (``artifact_id`` always is), so
                that large fields need not be read; ``None`` returns whole
                documents.

        Raises:
            QueryError: the filter, sort, skip, limit or fields are malformed or
                unsupported (see `elliptio._catalog.filters`).
        """

    async def find_columns(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        fields: Sequence[str],
    ) -> dict[str, list[Any]]:
        """The matching documents as columns: what a DataFrame is built from.

        Returns ``{"artifact_id": [...], field: [...], ...}``, one list per field
        of ``fields``, in the order `find` returns the documents; a cell is
        ``doc.get(field)``.
        Backends override this when they can fill columns without building each
        document first.

        Raises:
            QueryError: as `find`.
        """
        docs = await self.find(filter, sort=sort, skip=skip, limit=limit, fields=fields)
        return document_columns(docs, fields)

    @abc.abstractmethod
    async def count(self, filter: Filter | None = None) -> int:
        """Return how many documents match ``filter``.

        Raises:
            QueryError: the filter is malformed or unsupported.
        """

    @abc.abstractmethod
    async def delete(self, artifact_id: str) -> None:
        """Remove the document with this id, if any (maintenance only)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the catalog is unusable afterwards."""

    async def insert_many(self, docs: Sequence[Document]) -> None:
        """Insert several documents; backends override this with a bulk write."""
        for doc in docs:
            await self.insert(doc)

    # -- changing a record -------------------------------------------------------

    @abc.abstractmethod
    async def replace(self, doc: Document, revision: tuple[bool, int]) -> bool:
        """Replace the record ``doc["artifact_id"]`` by ``doc``, atomically, if its
        stored version still has ``revision`` (see `record_revision`).

        Only new labels and tombstones replace a record (`elliptio._lifecycle`),
        and each moves its revision on, so of two changes made from the same
        version exactly one lands. The file index that deduplication reads
        follows the new record: a tombstone's (absent) files are never found.

        Returns:
            ``False`` (and nothing written) when the record is gone or changed.
        """

    async def object_users(self, urls: Sequence[str]) -> dict[str, set[str]]:
        """For each of ``urls`` that a record's files or logs name, the ids of those
        records: who would lose bytes if the object went.

        Backends with an index of file URLs override this.
        """
        wanted = set(urls)
        found: dict[str, set[str]] = {}
        if not wanted:
            return found
        urls_ = sorted(wanted)
        # A few thousand URLs per query: a MongoDB filter is one BSON document
        # (16 MiB at most), and an artifact may hold a hundred thousand files.
        for start in range(0, len(urls_), _URLS_PER_QUERY):
            some = urls_[start : start + _URLS_PER_QUERY]
            flt = {"$or": [{"files.url": {"$in": some}}, {"logs.url": {"$in": some}}]}
            for doc in await self.find(flt, fields=["files", "logs"]):
                for field in ("files", "logs"):
                    items = doc.get(field)
                    for item in items if isinstance(items, list) else ():
                        url = item.get("url") if isinstance(item, dict) else None
                        if url in wanted:
                            found.setdefault(url, set()).add(doc["artifact_id"])
        return found

    # -- commit leases -----------------------------------------------------------

    @abc.abstractmethod
    async def open_lease(self, artifact_id: str, prefix: str, started: datetime) -> None:
        """Note that ``artifact_id`` is being written under ``prefix``."""

    async def open_lease_finding(
        self,
        artifact_id: str,
        prefix: str,
        started: datetime,
        keys: Sequence[tuple[str, int]],
        url_prefix: str,
    ) -> dict[tuple[str, int], str]:
        """`open_lease` and `find_objects` (a commit's first step), in one trip where
        the catalog can. On an error the lease is not open."""
        found, opened = await asyncio.gather(
            self.find_objects(keys, url_prefix),
            self.open_lease(artifact_id, prefix, started),
            return_exceptions=True,
        )
        if isinstance(opened, BaseException):
            raise opened
        if isinstance(found, BaseException):
            with contextlib.suppress(ElliptioError):
                await self.close_lease(artifact_id)
            raise found
        return found

    @abc.abstractmethod
    async def get_lease(self, artifact_id: str) -> Lease | None:
        """The lease of ``artifact_id``, if one is open, committing or condemned."""

    @abc.abstractmethod
    async def claim_lease(
        self,
        artifact_id: str,
        state: Literal["committing", "condemned"],
        *,
        started_before: datetime | None = None,
    ) -> bool:
        """Atomically move an ``open`` lease (started before ``started_before``,
        if given) to ``state``; ``False`` if it is not there or not open."""

    @abc.abstractmethod
    async def close_lease(self, artifact_id: str) -> None:
        """Forget the lease of ``artifact_id``, if any."""

    @abc.abstractmethod
    async def old_leases(self, started_before: datetime) -> list[Lease]:
        """Every lease started before ``started_before``, oldest first."""

    # -- run inputs ------------------------------------------------------------------

    @abc.abstractmethod
    async def add_run_inputs(self, run_id: str, artifact_ids: Sequence[str]) -> None:
        """Note that ``artifact_ids`` were read in run ``run_id`` (idempotent).

        Every process of a run adds what it reads here, so that a commit in any
        of them lists it in ``based_on``.
        """

    @abc.abstractmethod
    async def run_inputs(self, run_id: str) -> list[str]:
        """The artifact ids read in run ``run_id`` by any process, first read first."""

    async def commit(self, doc: Document) -> None:
        """Insert the record of an artifact whose lease is open, and close the lease.

        Raises:
            CommitError: the lease was condemned by `gc` (the writer took longer
                than the grace period); nothing was inserted.
            ArtifactExistsError: the id, or the name and version, exist already.
        """
        artifact_id = doc["artifact_id"]
        if not await self.claim_lease(artifact_id, "committing"):
            raise lease_lost_error(artifact_id)
        try:
            await self.insert(doc)
        except ArtifactExistsError:
            # reindex may restore this very record from the writer's own sidecar
            # between the claim and the insert: then it is committed.
            if not await self._holds(doc):
                await self._reopen_lease(artifact_id)
                raise
        except BaseException:
            # Not committed after all: the writer discards it, or gc may later.
            await self._reopen_lease(artifact_id)
            raise
        await self.close_lease(artifact_id)

    async def _holds(self, doc: Document) -> bool:
        """Whether the catalog holds exactly ``doc``."""
        try:
            existing = await self.get(doc["artifact_id"])
        except ArtifactNotFoundError:
            return False
        return bool(existing == codec.normalize(doc))

    async def _reopen_lease(self, artifact_id: str) -> None:
        """Move a ``committing`` lease back to ``open`` (backends override)."""
        lease = await self.get_lease(artifact_id)
        await self.close_lease(artifact_id)
        if lease is not None:
            await self.open_lease(artifact_id, lease.prefix, lease.started)

    # -- names, versions and aliases ---------------------------------------------

    @abc.abstractmethod
    async def reserve_version(self, name: str) -> int:
        """Reserve the next version number of ``name`` (1 for a new name), atomically.

        A number is never handed out twice, even to concurrent writers in other
        processes; a commit that fails after reserving leaves a gap. Inserting a
        record with a higher ``name_version`` raises the counter past it.
        """

    @abc.abstractmethod
    async def version_id(self, name: str, version: int | None = None) -> str | None:
        """The artifact id of ``name`` version ``version`` (``None``: the highest
        committed that is not deleted), or ``None`` when there is none. A given
        version is found even when it is a tombstone."""

    @abc.abstractmethod
    async def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``name:alias`` at ``version``; return the version it pointed at."""

    @abc.abstractmethod
    async def remove_alias(self, name: str, alias: str) -> int | None:
        """Remove ``name:alias``; return the version it pointed at, if any."""

    @abc.abstractmethod
    async def aliases(self, name: str) -> dict[str, int]:
        """The aliases of ``name``, each with the version it points at."""

    async def all_aliases(self) -> dict[str, dict[str, int]]:
        """Every name's aliases, each with the version it points at (names without
        aliases left out).

        Backends answer in one query. This default asks `aliases` once for each
        name `names` lists, so it leaves out a name that has aliases but no
        committed artifact.
        """
        found = {name: await self.aliases(name) for name, _, _ in await self.names()}
        return {name: aliases for name, aliases in found.items() if aliases}

    @abc.abstractmethod
    async def names(self) -> list[tuple[str, int, int]]:
        """Every name with committed artifacts: ``(name, count, latest version)``,
        counting only those not deleted."""

    # -- deduplication -------------------------------------------------------------

    @abc.abstractmethod
    async def known_sizes(self, sizes: Sequence[int]) -> set[int]:
        """Which of ``sizes`` some committed file has (a cheap test before hashing)."""

    @abc.abstractmethod
    async def find_objects(
        self, keys: Sequence[tuple[str, int]], url_prefix: str
    ) -> dict[tuple[str, int], str]:
        """For each ``(sha256, size)``, the URL of one committed file with exactly
        that content whose URL starts with ``url_prefix``, where there is one."""

    # -- lineage -----------------------------------------------------------------

    async def lineage_docs(
        self,
        artifact_id: str,
        direction: Literal["up", "down"],
        depth: int | None,
        fields: Sequence[str],
    ) -> list[Document] | None:
        """Every record linked to ``artifact_id`` through ``based_on``, in one query.

        ``up``: the records it names in ``based_on``, the records those name, and
        so on; ``down``: the records naming it, and so on. At most ``depth``
        (>= 1) links away, or any number for ``None``. The root is among them only
        when a cycle leads back to it. Each record holds ``artifact_id`` and the
        (dotted) ``fields`` only; nearest first.

        Returns ``None`` when the backend has no such query (the default), or
        cannot answer this one; `elliptio._lineage.build_lineage` then walks level
        by level with `find`, to the same graph.
        """
        return None


class CatalogLostError(CatalogError):
    """The catalog's database is gone from under an open catalog: its file was
    removed, or replaced by another file.

    The catalog takes no more writes, so that no record lands where no one finds
    it. A commit that fails so after its sidecar was written keeps the artifact's
    files and sidecar in storage, for `reindex` against the right catalog.
    """


def record_revision(doc: Mapping[str, Any]) -> tuple[bool, int]:
    """How far a stored record has changed: deleted, then label replacements made."""
    history = doc.get("label_history")
    return doc.get("deleted") is not None, len(history) if isinstance(history, list) else 0


def lease_lost_error(artifact_id: str) -> CommitError:
    """The error of a commit whose uncommitted files `gc` claimed first."""
    return CommitError(
        f"{artifact_id} cannot commit: gc found it unfinished for longer than its grace "
        "period and removes its files; nothing was committed, so write it again "
        "(and run gc with a grace period longer than your slowest write)"
    )


def version_taken_error(catalog: str, name: str, version: int) -> ArtifactExistsError:
    """The error every backend raises for a name and version it holds already."""
    return ArtifactExistsError(
        f"{name}:v{version} exists already in catalog {catalog}; versions are allocated "
        "by the catalog, so commit again to get the next one"
    )


def grouped_aliases(rows: Iterable[tuple[Any, Any, Any]]) -> dict[str, dict[str, int]]:
    """``{name: {alias: version}}`` from ``(name, alias, version)`` rows, in order,
    without the rows no commit writes (see `alias_version`)."""
    found: dict[str, dict[str, int]] = {}
    for name, alias, version in rows:
        if (number := alias_version(name, alias, version)) is not None:
            found.setdefault(name, {})[alias] = number
    return found


def alias_version(name: Any, alias: Any, version: Any) -> int | None:
    """The version an alias row points at, or ``None`` for a row no commit writes
    (planted in a shared catalog: a version that is no number >= 1, a name or an
    alias that is no text), which is then no alias at all."""
    # A whole float counts: older MongoDB shells and JavaScript clients write numbers so.
    whole = isinstance(version, int) or (isinstance(version, float) and version.is_integer())
    if (
        isinstance(name, str)
        and isinstance(alias, str)
        and whole
        and not isinstance(version, bool)
        and 1 <= version <= 2**63 - 1
    ):
        return int(version)
    log.warning("catalog: an alias row of %.80r points at no version; ignored", name)
    return None


def packages_environment(value: Any) -> tuple[Any, str, str]:
    """A record's ``python_packages`` as its environment: the value as stored,
    ``{"python_packages": value}`` as catalog JSON, and that text's sha256, which
    every backend keys the environment by. Raises TypeError when it cannot be stored.

    The records of one environment carry equal lists: the last one's text is
    kept, and reused when the next list of plain strings is equal (equal strings
    encode alike; numbers would not: ``1 == 1.0``). The list is compared with a
    shallow copy of the last one: records made by one process share its strings,
    so most items compare by identity.
    """
    last = _LAST_ENVIRONMENT[0]
    if last is not None and type(value) is dict and value == last[0]:
        with contextlib.suppress(TypeError):  # joins strings only
            "".join(value.values())
            return last[1]
    # Checked as the rest of a record is: to_text alone would write an int key as
    # text, a "$" or NUL key, an integer over 64 bits, and raise no TypeError
    # for a NaN or a lone surrogate. The text is made of the copy kept, so the
    # two agree even when another task changes the caller's dict in place
    # meanwhile (SQLite encodes on its thread).
    kept = dict(value) if type(value) is dict else None
    doc = {"python_packages": value if kept is None else kept}
    text = codec.to_text(doc if codec.storable(doc["python_packages"]) else codec.encode(doc))
    environment = (
        codec.loads(text)["python_packages"],
        text,
        hashlib.sha256(text.encode()).hexdigest(),
    )
    _LAST_ENVIRONMENT[0] = (kept, environment)
    return environment


# The last list `packages_environment` was given (a shallow copy), and what it made.
_LAST_ENVIRONMENT: list[tuple[dict[Any, Any] | None, tuple[Any, str, str]] | None] = [None]


def document_columns(docs: Sequence[Document], fields: Sequence[str]) -> dict[str, list[Any]]:
    """``artifact_id`` and each of ``fields`` as columns of ``docs``, in order.

    A cell is ``doc.get(field)``; what `Catalog.find_columns` returns.
    """
    wanted = [field for field in dict.fromkeys(fields) if field != "artifact_id"]
    # One pass over the documents, looking up every field of each in C, then the
    # rows turned into columns: cheaper than one pass per field.
    rows = [(doc["artifact_id"], *map(doc.get, wanted)) for doc in docs]
    ids, *values = zip(*rows, strict=True) if rows else [()] * (len(wanted) + 1)
    return {"artifact_id": list(ids)} | {
        field: list(column) for field, column in zip(wanted, values, strict=True)
    }


def exists_error(catalog: str, artifact_id: str) -> ArtifactExistsError:
    """The error every backend raises for an ``artifact_id`` it holds already."""
    return ArtifactExistsError(
        f"artifact {artifact_id!r} exists already in catalog {catalog}; "
        "artifacts are immutable, so commit a new one instead"
    )
