"""`Handler`: the sync API, a thin layer running `AsyncHandler` on the IO-loop thread."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._artifact import Artifact
from ._catalog import Catalog
from ._diff import ArtifactDiff
from ._handler import AsyncHandler, LabelsLike, LocalPaths, SortLike
from ._indexer import IndexReport
from ._lifecycle import DeleteReport
from ._lineage import Direction, LineageGraph
from ._maintenance import GcReport, ReindexReport, VerifyReport
from ._new import NewArtifact
from ._process import InProcess
from ._runs import RunScope
from ._sync import sync
from ._urls import UrlTools

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Handler"]


class Handler(InProcess):
    """Save, find and read artifacts; the blocking twin of `AsyncHandler`.

    It works in scripts and inside running event loops such as Jupyter's: calls
    run on elliptio's own IO-loop thread. Arguments are those of `AsyncHandler`.

    Example:
        >>> h = eio.Handler()  # doctest: +SKIP
        >>> art = h.upload(["train.txt", "test.txt"], labels=eio.Labels(project="x"))
        >>> df = h.find({"labels.project": "x"}, max_docs=10)
    """

    def __init__(
        self,
        storage: str | os.PathLike[str] | None = None,
        catalog: str | Catalog | Any = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        reference_roots: Sequence[str] | None = None,
    ) -> None:
        self.aio = AsyncHandler(
            storage,
            catalog,
            storage_options,
            max_concurrency=max_concurrency,
            reference_roots=reference_roots,
        )

    @classmethod
    def _over(cls, aio: AsyncHandler) -> Handler:
        """The sync face of an existing `AsyncHandler` (closing either closes both)."""
        handler = cls.__new__(cls)
        handler.aio = aio
        return handler

    @property
    def storage(self) -> Any:
        """The `Storage` (fsspec filesystem ``.fs`` and ``.root``)."""
        return self.aio.storage

    @property
    def catalog(self) -> Catalog:
        """The catalog backend."""
        return self.aio.catalog

    def run(self, name: str | None = None) -> RunScope:
        """Open a new run for a ``with`` block; see `AsyncHandler.run`."""
        return self.aio.run(name)

    @property
    def based_on(self) -> list[str]:
        """The artifact ids read so far in the current run, in this process.

        A commit lists more when other processes joined the run: what every
        process of it read (see docs/lineage.md).
        """
        return self.aio.based_on

    @property
    def run_id(self) -> str:
        """The id of the current run."""
        return self.aio.run_id

    def upload(
        self,
        local_paths: LocalPaths,
        labels: LabelsLike = None,
        logs: LocalPaths | None = None,
        *,
        name: str | None = None,
        dedup: bool = True,
    ) -> Artifact:
        """Save local files and folders as a new artifact; see `AsyncHandler.upload`."""
        return sync(self.aio.upload(local_paths, labels, logs, name=name, dedup=dedup))

    def add_reference(
        self, urls: str | Sequence[str], labels: LabelsLike = None, *, name: str | None = None
    ) -> Artifact:
        """Commit an artifact whose files stay where they are; see
        `AsyncHandler.add_reference`."""
        return sync(self.aio.add_reference(urls, labels, name=name))

    def new(
        self,
        relpaths: str | Sequence[str],
        labels: LabelsLike = None,
        *,
        name: str | None = None,
        dedup: bool = True,
    ) -> NewArtifact:
        """Open a new artifact for a ``with`` block; see `AsyncHandler.new`."""
        return self.aio.new(relpaths, labels, name=name, dedup=dedup)

    def get(self, artifact_id: str | Artifact) -> Artifact:
        """Return a committed artifact by id or name reference (``train-set:v3``,
        ``train-set:latest``, ``train-set:<alias>``), recording lineage; see
        `AsyncHandler.get`."""
        return sync(self.aio.get(artifact_id))

    def resolve(self, ref: str | Artifact) -> str:
        """The artifact id a reference names; see `AsyncHandler.resolve`."""
        return sync(self.aio.resolve(ref))

    def set_alias(self, ref: str | Artifact, alias: str) -> dict[str, str]:
        """Point ``name:<alias>`` at the named artifact ``ref``; see `AsyncHandler.set_alias`."""
        return sync(self.aio.set_alias(ref, alias))

    def remove_alias(self, name: str, alias: str) -> dict[str, str]:
        """Remove ``name:<alias>``; the name's aliases after; see `AsyncHandler.remove_alias`."""
        return sync(self.aio.remove_alias(name, alias))

    def aliases(self, name: str) -> dict[str, str]:
        """The aliases of ``name``: ``{"production": "v2"}``."""
        return sync(self.aio.aliases(name))

    def names(self) -> pd.DataFrame:
        """Every name with its number of versions, latest version and aliases."""
        return sync(self.aio.names())

    def find(
        self,
        query: Mapping[str, Any] | None = None,
        max_docs: int | None = None,
        *,
        sort: SortLike = None,
        skip: int = 0,
        columns: Sequence[str] | None = None,
        include_packages: bool = False,
        flatten: bool = True,
        include_deleted: bool = False,
    ) -> pd.DataFrame:
        """Find artifacts with a MongoDB filter; see `AsyncHandler.find`.

        Example: ``h.find({"labels.datatype": "model"}, columns=["ref",
        "labels.infos.seed"])``. Nested labels become dotted columns
        (``flatten=True``, the default); ``max_docs=0`` returns no rows.
        """
        return sync(
            self.aio.find(
                query,
                max_docs,
                sort=sort,
                skip=skip,
                columns=columns,
                include_packages=include_packages,
                flatten=flatten,
                include_deleted=include_deleted,
            )
        )

    def count(
        self, query: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> int:
        """How many artifacts match ``query`` (tombstones only with ``include_deleted``)."""
        return sync(self.aio.count(query, include_deleted=include_deleted))

    def set_labels(self, ref: str | Artifact, labels: LabelsLike) -> Artifact:
        """Replace an artifact's labels, keeping the earlier ones; see
        `AsyncHandler.set_labels`."""
        return sync(self.aio.set_labels(ref, labels))

    def delete(self, ref: str | Artifact, *, reason: str) -> DeleteReport:
        """Delete an artifact's files and keep a tombstone; see `AsyncHandler.delete`."""
        return sync(self.aio.delete(ref, reason=reason))

    @property
    def urls(self) -> UrlTools:
        """URL tools (open, local_copy, write, ls, exists, cp, mv, rm, cache)."""
        return self.aio.urls

    def lineage(
        self, artifact_id: str | Artifact, direction: Direction = "both", depth: int | None = None
    ) -> LineageGraph:
        """The lineage graph around an artifact; see `AsyncHandler.lineage`."""
        return sync(self.aio.lineage(artifact_id, direction, depth))

    def reindex(self, prefix: str | None = None, *, aliases: bool = False) -> ReindexReport:
        """Restore catalog records from the sidecars in storage (below ``prefix``;
        with ``aliases``, the aliases too); see `AsyncHandler.reindex`."""
        return sync(self.aio.reindex(prefix, aliases=aliases))

    def index_event(self, event: Any) -> IndexReport:
        """Index the sidecars an S3 event notification announces; see
        `elliptio.index_event`."""
        return sync(self.aio.index_event(event))

    def gc(self, grace: timedelta = timedelta(hours=24), delete: bool = False) -> GcReport:
        """List (``delete=True``: remove) storage prefixes that never committed."""
        return sync(self.aio.gc(grace, delete))

    def diff(self, a: str | Artifact, b: str | Artifact) -> ArtifactDiff:
        """Compare two artifacts; see `AsyncHandler.diff`."""
        return sync(self.aio.diff(a, b))

    def verify(self, artifact_id: str | Artifact) -> VerifyReport:
        """Re-hash an artifact's stored files against its record."""
        return sync(self.aio.verify(artifact_id))

    def ui(self, host: str = "127.0.0.1", port: int = 0, *, open_browser: bool = False) -> Any:
        """Serve the web UI on a background thread and return at once (notebooks).

        Needs ``pip install 'elliptio[ui]'``. Read-only; binds to this machine only
        unless ``host`` says otherwise (then it warns: there is no login).

        Args:
            host: the address to listen on.
            port: the port; ``0`` picks a free one.
            open_browser: also open the page in the default browser.

        Returns:
            A `UiServer`: ``.url`` to open, ``.stop()`` to end it.

        Example:
            >>> server = h.ui()  # doctest: +SKIP
            >>> server.url, server.stop()
        """
        import warnings

        from ._ui import require

        require()
        from ._ui.server import exposure_warning, start

        warning = exposure_warning(host)
        if warning is not None:
            warnings.warn(warning, UserWarning, stacklevel=2)
        server = start(self.aio, host, port)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        return server

    def close(self) -> None:
        """Release the catalog and storage workers; idempotent."""
        sync(self.aio.close())

    def __enter__(self) -> Handler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self.aio).replace("AsyncHandler", "Handler", 1)

    def _travel_hint(self) -> tuple[str, str]:
        return (
            "a Handler",
            "its arguments and make one there with them, or send fsspec.filesystem("
            "'elliptio') or a file's eio_url, which carry its store, catalog and run",
        )
