"""The async core: save, find, get and write artifacts. `Handler` is its sync face."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from ._artifact import Artifact
from ._cache import Cache
from ._catalog import Catalog, open_catalog
from ._config import Settings, load_settings
from ._errors import (
    CatalogUnavailableError,
    ConfigError,
    ElliptioError,
    InvalidLabelsError,
    OfflineError,
    QueryError,
)
from ._frame import DEFAULT_COLUMNS, to_frame
from ._layout import (
    LOGS_DIR,
    METADATA_RELPATH,
    artifact_prefix,
    collect_local_files,
    new_artifact_id,
    validate_artifact_id,
    validate_relpaths,
)
from ._lineage import Direction, LineageGraph, build_lineage
from ._maintenance import GcReport, ReindexReport, VerifyReport, gc, reindex, verify
from ._models import FileRecord, Labels, Metadata, upgrade_record
from ._new import NewArtifact
from ._provenance import current_username, git_info, process_info
from ._runs import Run, RunScope, current_run
from ._storage import Storage
from ._urls import UrlTools

__all__ = ["AsyncHandler", "LabelsLike", "LocalPaths"]

LocalPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
LabelsLike = Labels | Mapping[str, Any] | None
SortLike = str | Sequence[tuple[str, int]] | Mapping[str, int] | None
DEFAULT_SORT: list[tuple[str, int]] = [("creation_time", -1), ("artifact_id", -1)]


def _labels(labels: LabelsLike) -> Labels:
    if labels is None:
        return Labels()
    if isinstance(labels, Labels):
        return labels
    if isinstance(labels, Mapping):
        return Labels(**labels)
    raise InvalidLabelsError(
        f"labels must be eio.Labels(...) or a dict, not {type(labels).__name__}"
    )


def _sort(sort: SortLike) -> list[tuple[str, int]]:
    if sort is None:
        return list(DEFAULT_SORT)
    if isinstance(sort, str):
        return [(sort, 1)]
    if not isinstance(sort, Mapping | Sequence):
        raise QueryError(f"sort {sort!r} must be a key, (key, 1 | -1) pairs or a dict")
    items: list[Any] = list(sort.items()) if isinstance(sort, Mapping) else list(sort)
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise QueryError(f"sort item {item!r} must be a (key, 1 | -1) pair")
    return [(str(k), d) for k, d in items]


def _record_path(cache_root: Path, artifact_id: str) -> Path:
    return cache_root / "records" / f"{artifact_id}.json"


def _keep_record(cache_root: Path, artifact_id: str, doc: Mapping[str, Any]) -> None:
    # Records are immutable: written once, atomically, never updated.
    path = _record_path(cache_root, artifact_id)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(upgrade_record(doc).model_dump_json())
    os.replace(tmp, path)


def _now_ms() -> datetime:
    # Catalogs store milliseconds (BSON dates); keep records equal everywhere.
    now = datetime.now(tz=UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class _Draft:
    artifact_id: str
    creation_time: datetime
    username: str
    prefix: str
    run: Run
    labels: Labels
    local_root: str


class AsyncHandler:
    """Save, find and read artifacts; every method is a coroutine.

    Args:
        storage: fsspec URL or local path of the store's root
            (default ``ELLIPTIO_STORAGE_URL``, else a folder in the user data dir).
        catalog: ``sqlite:////abs/path.db``, ``memory://[name]``, or a `Catalog`
            instance (default ``ELLIPTIO_CATALOG_URL``, else SQLite in the user
            data dir).
        storage_options: fsspec options for the storage (default
            ``ELLIPTIO_STORAGE_OPTIONS``); never written to records.
        max_concurrency: files of one artifact in flight at once.

    Example:
        >>> async with eio.AsyncHandler() as h:  # doctest: +SKIP
        ...     art = await h.upload(["train.csv"], labels=eio.Labels(project="x"))
    """

    def __init__(
        self,
        storage: str | os.PathLike[str] | None = None,
        catalog: str | Catalog | Any = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        if storage is not None and not isinstance(storage, str | os.PathLike):
            raise ConfigError(
                f"storage {storage!r} must be a URL or a path, not {type(storage).__name__}"
            )
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise ConfigError(
                "storage_options must be a dict of fsspec options, "
                f"not {type(storage_options).__name__}"
            )
        self.settings: Settings = load_settings(
            storage_url=os.fspath(storage) if storage is not None else None,
            catalog_url=catalog if isinstance(catalog, str) else None,
            storage_options=dict(storage_options) if storage_options is not None else None,
            max_concurrency=max_concurrency,
        )
        s = self.settings
        self.storage = Storage(
            s.resolved_storage_url(),
            s.storage_options,
            max_workers=s.max_concurrency,
            part_size=s.part_size,
            progress=s.progress,
            cache=Cache(s.resolved_cache_dir(), s.file_mode, s.cache_max_bytes or None),
            offline=s.offline,
        )
        # A URL goes through the settings; any object (a Catalog, or a driver's
        # client, database or collection) goes to open_catalog as it is.
        self.catalog: Catalog = open_catalog(
            s.resolved_catalog_url() if catalog is None or isinstance(catalog, str) else catalog
        )
        self.urls = UrlTools(s)
        """URL tools (open, local_copy, write, ls, exists, cp, mv, rm, cache) on these settings."""
        self._closed = False

    # -- runs and lineage ---------------------------------------------------
    def run(self, name: str | None = None) -> RunScope:
        """Open a new run for a ``with`` / ``async with`` block.

        Artifacts read inside the block become the ``based_on`` of artifacts
        committed inside it; concurrent tasks with their own run stay apart.
        """
        return RunScope(name)

    @property
    def based_on(self) -> list[str]:
        """The artifact ids read so far in the current run."""
        return current_run().inputs

    @property
    def run_id(self) -> str:
        """The id of the current run."""
        return current_run().run_id

    # -- writing ------------------------------------------------------------
    def _draft(self, labels: LabelsLike, local_root: str = "") -> _Draft:
        labels_ = _labels(labels)
        artifact_id = new_artifact_id()
        created = _now_ms()
        username = current_username()
        prefix = artifact_prefix(self.storage.root, created, username, artifact_id)
        return _Draft(artifact_id, created, username, prefix, current_run(), labels_, local_root)

    async def _commit(
        self, draft: _Draft, files: list[FileRecord], logs: list[FileRecord]
    ) -> Artifact:
        info = process_info()
        git = await asyncio.to_thread(git_info)
        record = Metadata(
            artifact_id=draft.artifact_id,
            run_id=draft.run.run_id,
            creation_time=draft.creation_time,
            username=draft.username,
            hostname=info.hostname,
            argv=list(info.argv),
            python_version=info.python_version,
            platform=info.platform,
            python_packages=dict(info.python_packages),
            git=git,
            labels=draft.labels,
            files=files,
            file_relpaths=[f.relpath for f in files],
            logs=logs,
            log_relpaths=[f.relpath for f in logs],
            based_on=[a for a in draft.run.inputs if a != draft.artifact_id],
            remote_root=self.storage.url(draft.prefix),
            local_root=draft.local_root,
        )
        sidecar = record.model_dump_json(indent=2).encode()
        sidecar_path = f"{draft.prefix}/{METADATA_RELPATH}"
        await self.storage.write_bytes(sidecar_path, sidecar)
        prefix = draft.prefix
        await self.storage.seal(
            [f"{prefix}/{f.relpath}" for f in files]
            + [f"{prefix}/{LOGS_DIR}/{f.relpath}" for f in logs]
            + [sidecar_path]
        )
        await self.catalog.insert(record.to_document())
        return Artifact.from_metadata(record, self.storage)

    async def _discard(self, prefix: str) -> None:
        # Best effort: what stays behind has no catalog record, so gc finds it.
        with contextlib.suppress(ElliptioError):
            await self.storage.remove_tree(prefix)

    async def _put_all(
        self, prefix: str, items: list[tuple[Path, str]], progress: Any
    ) -> list[FileRecord]:
        paths = [f"{prefix}/{relpath}" for _, relpath in items]
        results = await self.storage.put_files(
            [(local, path) for (local, _), path in zip(items, paths, strict=True)], progress
        )
        return [
            FileRecord(relpath=relpath, url=self.storage.url(path), size=size, sha256=sha256)
            for (_, relpath), path, (size, sha256) in zip(items, paths, results, strict=True)
        ]

    async def upload(
        self,
        local_paths: LocalPaths,
        labels: LabelsLike = None,
        logs: LocalPaths | None = None,
    ) -> Artifact:
        """Save local files and folders as a new artifact.

        Relpaths are relative to the common parent of ``local_paths``; a folder
        contributes its whole tree. Nothing is written before every path and
        label has been checked; on any failure nothing becomes visible.

        Args:
            local_paths: files and folders to save.
            labels: `Labels` or a dict of their fields.
            logs: log files to keep with the artifact (under ``artifact.logs``).

        Returns:
            The committed `Artifact`.
        """
        parent, items = collect_local_files(local_paths)
        log_items = collect_local_files(logs)[1] if logs is not None else []
        draft = self._draft(labels, local_root=str(parent))
        progress = self.storage.progress_for(
            f"upload {draft.artifact_id}",
            files=len(items) + len(log_items),
            nbytes=lambda: sum(local.stat().st_size for local, _ in items + log_items),
        )
        try:
            files = await self._put_all(draft.prefix, items, progress)
            log_files = await self._put_all(f"{draft.prefix}/{LOGS_DIR}", log_items, progress)
            return await self._commit(draft, files, log_files)
        except BaseException:
            await self._discard(draft.prefix)
            raise
        finally:
            progress.close()

    def new(self, relpaths: str | Sequence[str], labels: LabelsLike = None) -> NewArtifact:
        """Open a new artifact to write files into; it commits when the block ends.

        Use ``async with h.new([...]) as new:`` here (``with`` on `Handler`).
        Write each file at ``new.files[relpath].url`` (``new.file.url`` for a
        single file), through ``.open("wb")`` or at ``.local_path``.
        """
        single = isinstance(relpaths, str | os.PathLike)
        relpaths_ = validate_relpaths([relpaths] if single else relpaths)
        draft = self._draft(labels)

        async def commit(new: NewArtifact, written: dict[str, tuple[int, str]]) -> Artifact:
            files = [
                FileRecord(relpath=r, url=f.url, size=written[r][0], sha256=written[r][1])
                for r, f in new.files.items()
            ]
            return await self._commit(draft, files, [])

        async def discard(new: NewArtifact) -> None:
            await self._discard(draft.prefix)

        return NewArtifact(
            self.storage, draft.artifact_id, draft.prefix, relpaths_, commit, discard
        )

    # -- reading ------------------------------------------------------------
    async def get(self, artifact_id: str) -> Artifact:
        """Return a committed artifact and record it as an input of the current run.

        Records read once are kept in the local cache (they never change), so
        offline, or when the catalog cannot be reached, `get` still returns
        artifacts read before.

        Raises:
            ArtifactNotFoundError: no artifact has this id.
            OfflineError: offline or catalog unreachable, and not read before.
        """
        validate_artifact_id(artifact_id)
        cache = self.storage.cache
        if self.settings.offline:
            doc = self._cached_record(artifact_id)
        else:
            try:
                doc = await self.catalog.get(artifact_id)
            except CatalogUnavailableError as err:
                doc = self._cached_record(artifact_id, err)
            else:
                if cache is not None:
                    await asyncio.to_thread(_keep_record, cache.root, artifact_id, doc)
        record = upgrade_record(doc)
        current_run().record_input(artifact_id)
        return Artifact.from_metadata(record, self.storage)

    def _cached_record(self, artifact_id: str, err: BaseException | None = None) -> dict[str, Any]:
        cache = self.storage.cache
        path = _record_path(cache.root, artifact_id) if cache is not None else None
        try:
            if path is None:
                raise FileNotFoundError
            return upgrade_record(json.loads(path.read_text())).to_document()
        except (OSError, ValueError):
            reason = f"the catalog is unreachable ({err})" if err else "ELLIPTIO_OFFLINE is set"
            raise OfflineError(
                f"{artifact_id} was not read before on this machine and {reason}; "
                "get it once while online"
            ) from err

    async def find(
        self,
        query: Mapping[str, Any] | None = None,
        max_docs: int | None = None,
        *,
        sort: SortLike = None,
        skip: int = 0,
        columns: Sequence[str] | None = None,
        include_packages: bool = False,
    ) -> pd.DataFrame:
        """Find artifacts with a MongoDB filter; a DataFrame indexed by ``artifact_id``.

        Args:
            query: a MongoDB filter document, e.g. ``{"username": "andy",
                "labels.datatype": "annotation_file"}``; ``None`` finds all.
            max_docs: at most this many rows (``None``: all).
            sort: a key, ``(key, 1 | -1)`` pairs or a dict; default newest first.
            skip: rows to leave out first.
            columns: record fields to keep; default all but ``python_packages``.
            include_packages: also return ``python_packages``.

        Raises:
            QueryError: the query, sort or limits are malformed or unsupported.
        """
        if query is not None and not isinstance(query, Mapping):
            raise QueryError(f"query must be a dict (a MongoDB filter), not {type(query).__name__}")
        for name, value in (("max_docs", max_docs), ("skip", skip)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise QueryError(f"{name} must be a non-negative int or None, not {value!r}")
        if columns is None:
            fields = [*DEFAULT_COLUMNS, *(["python_packages"] if include_packages else [])]
        else:
            wanted = [columns] if isinstance(columns, str) else list(columns)
            fields = [c for c in wanted if c != "artifact_id"]
        docs = await self.catalog.find(
            query or {}, sort=_sort(sort), skip=skip, limit=max_docs or 0, fields=fields
        )
        return to_frame(docs, columns=columns, include_packages=include_packages)

    async def count(self, query: Mapping[str, Any] | None = None) -> int:
        """How many artifacts match ``query``."""
        if query is not None and not isinstance(query, Mapping):
            raise QueryError(f"query must be a dict (a MongoDB filter), not {type(query).__name__}")
        return await self.catalog.count(query or {})

    # -- lineage and maintenance --------------------------------------------
    async def lineage(
        self, artifact_id: str, direction: Direction = "both", depth: int | None = None
    ) -> LineageGraph:
        """What ``artifact_id`` was built from (``"up"``), what was built on it
        (``"down"``), or both, as a graph that renders as text, Mermaid or DOT.

        Reading lineage does not count as reading the artifact.
        """
        validate_artifact_id(artifact_id)
        return await build_lineage(self.catalog, artifact_id, direction, depth)

    async def reindex(self) -> ReindexReport:
        """Restore catalog records from the sidecars in storage; safe to repeat."""
        return await reindex(self.storage, self.catalog)

    async def gc(self, grace: timedelta = timedelta(hours=24), delete: bool = False) -> GcReport:
        """List (``delete=True``: remove) storage prefixes that never committed."""
        return await gc(self.storage, self.catalog, grace=grace, delete=delete)

    async def verify(self, artifact_id: str) -> VerifyReport:
        """Re-hash an artifact's stored files against its record."""
        validate_artifact_id(artifact_id)
        record = upgrade_record(await self.catalog.get(artifact_id))
        return await verify(self.storage, record)

    # -- lifecycle ----------------------------------------------------------
    async def close(self) -> None:
        """Close the catalog and storage workers; idempotent."""
        if not self._closed:
            self._closed = True
            await self.catalog.close()
            self.storage.close()

    async def __aenter__(self) -> AsyncHandler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(storage={self.storage.safe_url!r}, "
            f"catalog={type(self.catalog).__name__})"
        )
