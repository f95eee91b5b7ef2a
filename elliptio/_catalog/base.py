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
from collections.abc import Mapping, Sequence
from typing import Any

from elliptio._errors import ArtifactExistsError

__all__ = ["Catalog", "Document", "Filter", "SortSpec", "exists_error"]

Document = dict[str, Any]
Filter = Mapping[str, Any]
SortSpec = Sequence[tuple[str, int]]


class Catalog(abc.ABC):
    """A searchable index of artifact records.

    Implementations must be safe to call from many asyncio tasks at once on the
    loop they were first used on.
    """

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


def exists_error(catalog: str, artifact_id: str) -> ArtifactExistsError:
    """The error every backend raises for an ``artifact_id`` it holds already."""
    return ArtifactExistsError(
        f"artifact {artifact_id!r} exists already in catalog {catalog}; "
        "artifacts are immutable, so commit a new one instead"
    )
