"""No catalog: a writer that holds storage credentials only.

With ``catalog="none"`` (``ELLIPTIO_CATALOG_URL=none``) a handler writes each
artifact's files and its sidecar and stops there; an indexer with catalog rights
adds the record later (`elliptio.index_event` on an S3 event, or
``elliptio reindex --prefix``). Such a writer has no leases (gc leaves a prefix
with a whole sidecar alone, so its commits are safe), no deduplication (nothing
to look committed content up in), no names (versions are handed out by a
catalog) and no queries: each of those raises `UsageError` saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NoReturn

from elliptio._errors import UsageError

from .base import Catalog, Document, Filter, Lease, SortSpec

__all__ = ["NO_CATALOG", "StorageOnlyCatalog"]

NO_CATALOG = "none"


def _refuse(what: str) -> NoReturn:
    raise UsageError(
        f"this handler writes to storage only (catalog='none'), so it cannot {what}; "
        "records reach the catalog through an indexer (elliptio.index_event, or "
        "'elliptio reindex --prefix'): use a handler with a catalog for this"
    )


class StorageOnlyCatalog(Catalog):
    """The catalog of a storage-only writer: commits write nothing here."""

    def __repr__(self) -> str:
        return "StorageOnlyCatalog"

    async def commit(self, doc: Document) -> None:
        """Nothing to do: the sidecar, written before, is the artifact's record."""

    async def insert(self, doc: Document) -> None:
        _refuse("insert records")

    async def get(self, artifact_id: str) -> Document:
        _refuse(f"look up {artifact_id}")

    async def find(
        self,
        filter: Filter | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        fields: Sequence[str] | None = None,
    ) -> list[Document]:
        _refuse("search records")

    async def count(self, filter: Filter | None = None) -> int:
        _refuse("count records")

    async def delete(self, artifact_id: str) -> None:
        _refuse("remove records")

    async def close(self) -> None:
        """Nothing to release."""

    async def replace(self, doc: Document, revision: tuple[bool, int]) -> bool:
        _refuse("change records (labels, deletes)")

    async def object_users(self, urls: Sequence[str]) -> dict[str, set[str]]:
        _refuse("tell which records use a file")

    # Leases protect a commit from gc; gc leaves a whole sidecar alone, and a
    # storage-only writer commits by writing one.
    async def open_lease(self, artifact_id: str, prefix: str, started: datetime) -> None:
        """No lease: see the class docstring."""

    async def get_lease(self, artifact_id: str) -> Lease | None:
        return None

    async def claim_lease(
        self,
        artifact_id: str,
        state: Literal["committing", "condemned"],
        *,
        started_before: datetime | None = None,
    ) -> bool:
        return state == "committing"

    async def close_lease(self, artifact_id: str) -> None:
        """No lease to close."""

    async def old_leases(self, started_before: datetime) -> list[Lease]:
        return []

    # A run's inputs stay in this process's memory.
    async def add_run_inputs(self, run_id: str, artifact_ids: Sequence[str]) -> None:
        """Nowhere to share them: reads in other processes are not collected."""

    async def run_inputs(self, run_id: str) -> list[str]:
        return []

    async def reserve_version(self, name: str) -> int:
        _refuse(f"give {name!r} a version (versions are handed out by a catalog)")

    async def version_id(self, name: str, version: int | None = None) -> str | None:
        _refuse(f"resolve {name!r}")

    async def set_alias(self, name: str, alias: str, version: int) -> int | None:
        _refuse("set aliases")

    async def remove_alias(self, name: str, alias: str) -> int | None:
        _refuse("remove aliases")

    async def aliases(self, name: str) -> dict[str, int]:
        _refuse("list aliases")

    async def names(self) -> list[tuple[str, int, int]]:
        _refuse("list names")

    # No committed content to deduplicate against: every file is written.
    async def known_sizes(self, sizes: Sequence[int]) -> set[int]:
        return set()

    async def find_objects(
        self, keys: Sequence[tuple[str, int]], url_prefix: str
    ) -> dict[tuple[str, int], str]:
        return {}

    async def lineage_docs(
        self,
        artifact_id: str,
        direction: Literal["up", "down"],
        depth: int | None,
        fields: Sequence[str],
    ) -> list[Document] | None:
        _refuse("draw lineage")
